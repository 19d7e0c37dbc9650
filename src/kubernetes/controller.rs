//! The kube-runtime controller over MirrorPolicy objects: finalizer, status, Events and
//! per-policy backoff around the shared engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::Store;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::batcher::{PassBatcher, PassError};
use super::status::{self, StatusInput};
use crate::aws::ec2::Ec2;
use crate::engine::Engine;
use crate::policy::{DeletionPolicy, MirrorPolicy, MirrorPolicyStatus};
use crate::report::{PolicyOutcome, PolicyReport};
use crate::validate::validate;

/// The finalizer that keeps a policy until its sessions are handled per deletionPolicy.
pub const FINALIZER: &str = "vpcmirror.dev/sessions";

/// The field manager of status writes.
pub const FIELD_MANAGER: &str = "vpc-mirror-controller";

/// Events a policy may receive per minute; the rest are dropped and counted in the log.
const EVENTS_PER_MINUTE: u32 = 12;

/// Failures of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reconcile pass failed: {0}")]
    Pass(#[source] PassError),
    #[error("failed to delete the sessions of policy {policy}: {source}")]
    Teardown {
        policy: String,
        #[source]
        source: crate::aws::error::Ec2Error,
    },
    #[error("failed to write the status of policy {policy}: {source}")]
    WriteStatus {
        policy: String,
        #[source]
        source: kube::Error,
    },
}

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// Time between reconciles of a converged policy.
    pub resync_interval: Duration,
    /// First delay after a failure; it doubles with each further failure.
    pub backoff_base: Duration,
    /// Maximum delay after failures.
    pub backoff_max: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            resync_interval: Duration::from_secs(300),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// The last successful reconcile of a policy, so that the controller's own status writes,
/// which wake the watch, cost no AWS call.
struct Handled {
    generation: Option<i64>,
    at: Instant,
}

/// Shared state of all reconciles.
pub struct Context<E> {
    pub engine: Arc<Engine<E>>,
    pub client: Client,
    pub recorder: Recorder,
    pub settings: ControllerSettings,
    batcher: PassBatcher,
    handled: Mutex<HashMap<String, Handled>>,
    failures: Mutex<HashMap<String, u32>>,
    event_budget: Mutex<HashMap<String, (Instant, u32)>>,
}

impl<E: Ec2 + 'static> Context<E> {
    pub fn new(engine: Arc<Engine<E>>, client: Client, recorder: Recorder, settings: ControllerSettings) -> Arc<Self> {
        // A short window lets the reconciles that start together share one region pass.
        let batcher = PassBatcher::start(engine.clone(), Duration::from_millis(200));
        Arc::new(Context {
            engine,
            client,
            recorder,
            settings,
            batcher,
            handled: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            event_budget: Mutex::new(HashMap::new()),
        })
    }
}

/// Starts the controller, which runs until `shutdown` resolves and lets reconciles in flight
/// finish. Returns the controller's cache of policies and its task.
pub fn start<E: Ec2 + 'static>(
    context: Arc<Context<E>>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> (Store<MirrorPolicy>, tokio::task::JoinHandle<()>) {
    let api: Api<MirrorPolicy> = Api::all(context.client.clone());
    let controller = Controller::new(api, watcher::Config::default()).graceful_shutdown_on(shutdown);
    let store = controller.store();
    let task = tokio::spawn(controller.run(reconcile, error_policy, context).for_each(|result| async move {
        match result {
            Ok((object, _)) => tracing::debug!(policy = %object.name, "Reconciled"),
            Err(error) => tracing::debug!(error = %error, "Reconcile did not finish"),
        }
    }));
    (store, task)
}

/// Reconciles one policy: the finalizer first, then apply or cleanup.
pub async fn reconcile<E: Ec2 + 'static>(
    policy: Arc<MirrorPolicy>,
    context: Arc<Context<E>>,
) -> Result<Action, kube::runtime::finalizer::Error<ReconcileError>> {
    let api: Api<MirrorPolicy> = Api::all(context.client.clone());
    finalizer(&api, FINALIZER, policy, |event| async {
        match event {
            FinalizerEvent::Apply(policy) => apply(policy, &context).await,
            FinalizerEvent::Cleanup(policy) => cleanup(policy, &context).await,
        }
    })
    .await
}

/// Backs off per policy, exponentially, until a reconcile succeeds.
pub fn error_policy<E: Ec2 + 'static>(
    policy: Arc<MirrorPolicy>,
    error: &kube::runtime::finalizer::Error<ReconcileError>,
    context: Arc<Context<E>>,
) -> Action {
    let name = policy.name_any();
    let failures = {
        let mut failures = context.failures.lock().expect("failure counts lock is not poisoned");
        let count = failures.entry(name.clone()).or_insert(0);
        *count += 1;
        *count
    };
    let delay = backoff(&context.settings, failures);
    tracing::warn!(policy = %name, failures, retry_in = ?delay, error = %crate::aws::error_chain(error), "Reconcile failed");
    Action::requeue(delay)
}

/// Returns the delay after `failures` consecutive failures: base, 2 × base, 4 × base ... up to max.
pub fn backoff(settings: &ControllerSettings, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    settings.backoff_base.saturating_mul(factor).min(settings.backoff_max)
}

async fn apply<E: Ec2 + 'static>(policy: Arc<MirrorPolicy>, context: &Context<E>) -> Result<Action, ReconcileError> {
    let name = policy.name_any();
    let generation = policy.metadata.generation;
    let resync = context.settings.resync_interval;

    // A reconcile woken by the controller's own status write, within the resync interval of a
    // handled generation, has nothing to do.
    if let Some(handled) = context.handled.lock().expect("handled lock is not poisoned").get(&name) {
        let elapsed = handled.at.elapsed();
        if handled.generation == generation && elapsed < resync {
            return Ok(Action::requeue(resync - elapsed));
        }
    }

    if let Err(errors) = validate(&policy) {
        // No AWS call and no retry loop: the next spec change wakes the policy again.
        let report = PolicyReport { policy: name.clone(), partial: false, outcome: PolicyOutcome::Invalid(errors) };
        let now = now_rfc3339();
        let new_status = status::from_report(&report, &status_input(&policy, &now));
        write_status(&policy, &new_status, context).await?;
        let message = first_condition_message(&new_status);
        publish(context, &policy, EventType::Warning, "InvalidSpec", "Validate", message).await;
        mark_handled(context, &name, generation);
        return Ok(Action::await_change());
    }

    match context.batcher.reconcile(policy.clone()).await {
        Ok(report) => {
            let now = now_rfc3339();
            let new_status = status::from_report(&report, &status_input(&policy, &now));
            write_status(&policy, &new_status, context).await?;
            publish_changes(context, &policy, &report).await;
            mark_handled(context, &name, generation);
            context.failures.lock().expect("failure counts lock is not poisoned").remove(&name);
            Ok(Action::requeue(resync))
        }
        Err(error) => {
            let now = now_rfc3339();
            let new_status = status::from_failure(error.throttled, &error.message, &status_input(&policy, &now));
            write_status(&policy, &new_status, context).await?;
            publish(context, &policy, EventType::Warning, "ReconcileFailed", "Reconcile", error.message.clone()).await;
            Err(ReconcileError::Pass(error))
        }
    }
}

async fn cleanup<E: Ec2 + 'static>(policy: Arc<MirrorPolicy>, context: &Context<E>) -> Result<Action, ReconcileError> {
    let name = policy.name_any();
    context.handled.lock().expect("handled lock is not poisoned").remove(&name);
    context.engine.metrics.forget_policy(&name);
    match policy.spec.deletion_policy {
        DeletionPolicy::Retain => {
            tracing::info!(policy = %name, "Policy deleted; its sessions are retained");
            Ok(Action::await_change())
        }
        DeletionPolicy::Delete => match context.engine.teardown(&name).await {
            Ok(deleted) => {
                tracing::info!(policy = %name, deleted, "Policy deleted with its sessions");
                Ok(Action::await_change())
            }
            Err(source) => {
                let message = format!("failed to delete the sessions of the policy; retrying: {source}");
                publish(context, &policy, EventType::Warning, "DeleteFailed", "DeleteSessions", message).await;
                Err(ReconcileError::Teardown { policy: name, source })
            }
        },
    }
}

fn status_input<'a>(policy: &'a MirrorPolicy, now: &'a str) -> StatusInput<'a> {
    StatusInput {
        generation: policy.metadata.generation,
        previous: policy.status.as_ref(),
        now,
        target_id: &policy.spec.target.id,
        filter_id: &policy.spec.filter.id,
    }
}

fn mark_handled<E>(context: &Context<E>, name: &str, generation: Option<i64>) {
    let handled = Handled { generation, at: Instant::now() };
    context.handled.lock().expect("handled lock is not poisoned").insert(name.to_string(), handled);
}

/// Writes the status with server-side apply, only when it changed beyond the sync time.
async fn write_status<E>(
    policy: &MirrorPolicy,
    new_status: &MirrorPolicyStatus,
    context: &Context<E>,
) -> Result<(), ReconcileError> {
    if !status::differs(policy.status.as_ref(), new_status) {
        return Ok(());
    }
    let name = policy.name_any();
    let api: Api<MirrorPolicy> = Api::all(context.client.clone());
    let patch = json!({
        "apiVersion": MirrorPolicy::api_version(&()),
        "kind": MirrorPolicy::kind(&()),
        "status": new_status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&name, &params, &Patch::Apply(&patch))
        .await
        .map_err(|source| ReconcileError::WriteStatus { policy: name, source })?;
    Ok(())
}

fn first_condition_message(status: &MirrorPolicyStatus) -> String {
    status.conditions.first().map(|c| c.message.clone()).unwrap_or_default()
}

/// Publishes one Event per kind of change in the pass: created, repaired, deleted, failed.
async fn publish_changes<E>(context: &Context<E>, policy: &MirrorPolicy, report: &PolicyReport) {
    let PolicyOutcome::Reconciled { applied: Some(applied), .. } = &report.outcome else { return };
    if !applied.created.is_empty() {
        let interfaces: Vec<&str> = applied.created.iter().map(|(s, _)| s.network_interface_id.as_str()).collect();
        let note = summary("Created sessions on", &interfaces);
        publish(context, policy, EventType::Normal, "SessionsCreated", "CreateSessions", note).await;
    }
    if !applied.repaired.is_empty() {
        let interfaces: Vec<&str> = applied.repaired.iter().map(|(s, _, _)| s.network_interface_id.as_str()).collect();
        let note = summary("Repaired drifted sessions on", &interfaces);
        publish(context, policy, EventType::Normal, "SessionsRepaired", "RepairSessions", note).await;
    }
    if !applied.deleted.is_empty() {
        let interfaces: Vec<&str> = applied.deleted.iter().map(|d| d.network_interface_id.as_str()).collect();
        let note = summary("Deleted sessions no longer needed on", &interfaces);
        publish(context, policy, EventType::Normal, "SessionsDeleted", "DeleteSessions", note).await;
    }
    if !applied.failed.is_empty() {
        let failures: Vec<String> =
            applied.failed.iter().map(|f| format!("{} ({})", f.source.network_interface_id, f.reason)).collect();
        let failures: Vec<&str> = failures.iter().map(String::as_str).collect();
        let note = summary("Failed to mirror", &failures);
        publish(context, policy, EventType::Warning, "MirrorFailed", "CreateSessions", note).await;
    }
}

/// Builds an Event note that lists items up to the 1 kB limit Kubernetes sets.
fn summary(prefix: &str, items: &[&str]) -> String {
    let mut note = format!("{prefix} {} network interfaces:", items.len());
    for (index, item) in items.iter().enumerate() {
        if note.len() + item.len() + 20 > 1000 {
            note.push_str(&format!(" and {} more", items.len() - index));
            break;
        }
        note.push(' ');
        note.push_str(item);
    }
    note
}

/// Publishes an Event unless the policy has used its budget for this minute.
async fn publish<E>(
    context: &Context<E>,
    policy: &MirrorPolicy,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let name = policy.name_any();
    {
        let mut budget = context.event_budget.lock().expect("event budget lock is not poisoned");
        let (window_start, used) = budget.entry(name.clone()).or_insert((Instant::now(), 0));
        if window_start.elapsed() >= Duration::from_secs(60) {
            *window_start = Instant::now();
            *used = 0;
        }
        if *used >= EVENTS_PER_MINUTE {
            tracing::debug!(policy = %name, reason, "Event dropped: the policy used its budget for this minute");
            return;
        }
        *used += 1;
    }
    let event =
        Event { type_, reason: reason.to_string(), note: Some(note), action: action.to_string(), secondary: None };
    if let Err(error) = context.recorder.publish(&event, &policy.object_ref(&())).await {
        tracing::warn!(policy = %name, reason, error = %error, "Failed to publish an Event");
    }
}

/// Formats the current time as RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let settings = ControllerSettings {
            resync_interval: Duration::from_secs(300),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(60),
        };
        let delays: Vec<u64> = (1..=6).map(|n| backoff(&settings, n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(&settings, u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn summary_stays_under_one_kilobyte() {
        let names: Vec<String> = (0..200).map(|i| format!("eni-{i:017x}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let note = summary("Created sessions on", &names);
        assert!(note.len() <= 1024, "{}", note.len());
        assert!(note.starts_with("Created sessions on 200 network interfaces: eni-"));
        assert!(note.ends_with("more"));
    }
}
