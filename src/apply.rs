//! Executing a plan: idempotent writes, each failure turned into a reason on its source.

use std::sync::Mutex;
use std::time::Instant;

use futures::StreamExt;
use futures::stream;

use crate::aws::ec2::Ec2;
use crate::aws::error::{Ec2Error, ErrorKind, code};
use crate::aws::model::{CreateSession, Session};
use crate::client_token::client_token;
use crate::instance_types::InstanceTypeSupport;
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::ownership::ownership_tags;
use crate::plan::{Delete, DeleteReason, DesiredSession, Drift, Plan, Source, Unmirrored, UnmirroredReason};
use crate::recent_sessions::RecentSessions;
use crate::session_index::SessionIndex;

/// Everything one apply changed or failed to change.
#[derive(Clone, Debug, Default)]
pub struct ApplyOutcome {
    pub created: Vec<(Source, Session)>,
    pub repaired: Vec<(Source, Session, Vec<Drift>)>,
    pub deleted: Vec<Delete>,
    /// Sources whose create or repair failed, with the reason.
    pub failed: Vec<Unmirrored>,
    /// Deletes that failed; the sessions are retried on the next pass.
    pub failed_deletes: Vec<(Delete, Ec2Error)>,
}

impl ApplyOutcome {
    /// Returns whether any write failed for a reason that a later attempt can fix.
    pub fn has_retryable_failure(&self) -> bool {
        self.failed.iter().any(|f| matches!(f.reason, UnmirroredReason::AwsError | UnmirroredReason::Throttled))
            || self.failed_deletes.iter().any(|(_, e)| e.is_retryable())
    }
}

/// The dependencies of apply besides the plan.
pub struct ApplyContext<'a, E> {
    pub ec2: &'a E,
    pub cluster: &'a str,
    pub index: &'a Mutex<SessionIndex>,
    pub support: &'a InstanceTypeSupport,
    pub metrics: &'a Metrics,
    pub recent: &'a Mutex<RecentSessions>,
    /// Writes in flight at once; the client-side bucket still paces them.
    pub concurrency: usize,
}

/// Maps a failed create or repair to the reason reported on its source.
fn reason_for(error: &Ec2Error) -> UnmirroredReason {
    let Some(error_code) = error.code.as_deref() else {
        return UnmirroredReason::AwsError;
    };
    match error_code {
        code::NETWORK_INTERFACE_NOT_SUPPORTED => UnmirroredReason::UnsupportedInstanceType,
        code::SESSIONS_PER_INTERFACE_LIMIT => UnmirroredReason::SessionQuotaReached,
        code::SOURCES_PER_TARGET_LIMIT => UnmirroredReason::TargetSourceLimitReached,
        code::SESSION_LIMIT => UnmirroredReason::AccountSessionLimitReached,
        code::TARGET_NOT_FOUND => UnmirroredReason::TargetNotFound,
        code::FILTER_NOT_FOUND => UnmirroredReason::FilterNotFound,
        _ if error.kind == ErrorKind::Throttled => UnmirroredReason::Throttled,
        _ => UnmirroredReason::AwsError,
    }
}

/// Applies a plan: duplicate deletes, repairs, creates, then the other deletes, so that a
/// source is never left without a session while its replacement is pending. Within each step
/// up to `concurrency` writes run at once; they touch distinct sources, so their order does
/// not matter. The inventory and the session index are updated with every change, so that
/// later plans in the same pass see them.
pub async fn apply<E: Ec2>(
    context: &ApplyContext<'_, E>,
    plan: &Plan,
    desired: &DesiredSession,
    inventory: &mut Inventory,
) -> ApplyOutcome {
    let mut outcome = ApplyOutcome::default();
    let policy = plan.policy.as_str();

    // Duplicates go first: the session that stays may need the number a duplicate holds.
    let duplicates = plan.deletes.iter().filter(|d| d.reason == DeleteReason::Duplicate);
    delete_sessions(context, policy, duplicates, inventory, &mut outcome).await;

    let limit = context.concurrency.max(1);
    let repairs = plan
        .repairs
        .iter()
        .map(|repair| async move { (repair, context.ec2.modify_session(&repair.change).await) })
        .collect();
    let repairs = bounded(repairs, limit).await;
    for (repair, result) in repairs {
        match result {
            Ok(session) => {
                tracing::info!(
                    policy,
                    instance_id = %repair.source.instance_id,
                    network_interface_id = %repair.source.network_interface_id,
                    session_id = %session.id,
                    drift = ?repair.drifts,
                    "Repaired session"
                );
                let first_drift = repair.drifts.first().map(|d| d.as_str()).unwrap_or_default();
                context.metrics.sessions_repaired.with_label_values(&[policy, first_drift]).inc();
                // A session Describe does not show yet comes back from this memory on the next
                // pass, so it has to hold the repaired copy.
                context.recent.lock().expect("recent sessions lock is not poisoned").update(&session);
                inventory.insert_session(session.clone());
                outcome.repaired.push((repair.source.clone(), session, repair.drifts.clone()));
            }
            Err(error) => {
                tracing::warn!(
                    policy,
                    network_interface_id = %repair.source.network_interface_id,
                    session_id = %repair.change.session_id,
                    error = %error,
                    "Failed to repair session"
                );
                let detail = if error.has_code(code::SESSION_NOT_FOUND) {
                    "the session was deleted during the reconcile; the next pass creates a new one".to_string()
                } else {
                    error.to_string()
                };
                outcome.failed.push(Unmirrored { source: repair.source.clone(), reason: reason_for(&error), detail });
            }
        }
    }

    let requests: Vec<_> = plan
        .creates
        .iter()
        .map(|create| {
            let source = &create.source;
            let mut request = CreateSession {
                network_interface_id: source.network_interface_id.clone(),
                target_id: desired.target_id.clone(),
                filter_id: desired.filter_id.clone(),
                number: create.number,
                packet_length: desired.packet_length,
                virtual_network_id: desired.virtual_network_id,
                description: Some(desired.description.clone()),
                tags: ownership_tags(context.cluster, policy),
                client_token: String::new(),
            };
            let replaces = {
                let index = context.index.lock().expect("session index lock is not poisoned");
                index.latest_session(policy, &source.network_interface_id).map(str::to_string)
            };
            request.client_token = client_token(context.cluster, policy, &request, replaces.as_deref());
            (source, request, replaces)
        })
        .collect();
    let created = requests
        .into_iter()
        .map(|(source, request, replaces)| async move {
            let result = context.ec2.create_session(&request).await;
            (source, replaces, result)
        })
        .collect();
    let created = bounded(created, limit).await;
    for (source, replaces, result) in created {
        match result {
            Ok(session) => {
                let reason = if replaces.is_some() { "Replaced" } else { "NewSource" };
                tracing::info!(
                    policy,
                    instance_id = %source.instance_id,
                    network_interface_id = %source.network_interface_id,
                    session_id = %session.id,
                    session_number = session.number,
                    replaces = replaces.as_deref().unwrap_or(""),
                    "Created session"
                );
                context.metrics.sessions_created.with_label_values(&[policy, reason]).inc();
                context.index.lock().expect("session index lock is not poisoned").record(
                    policy,
                    &source.network_interface_id,
                    &session.id,
                );
                context.recent.lock().expect("recent sessions lock is not poisoned").record(&session);
                inventory.insert_session(session.clone());
                outcome.created.push((source.clone(), session));
            }
            Err(error) => {
                let reason = reason_for(&error);
                if reason == UnmirroredReason::UnsupportedInstanceType {
                    context.support.learn_unsupported(&source.instance_type, Instant::now());
                }
                tracing::warn!(
                    policy,
                    instance_id = %source.instance_id,
                    network_interface_id = %source.network_interface_id,
                    reason = reason.as_str(),
                    error = %error,
                    "Failed to create session"
                );
                outcome.failed.push(Unmirrored { source: source.clone(), reason, detail: error.to_string() });
            }
        }
    }

    let leftovers = plan.deletes.iter().filter(|d| d.reason != DeleteReason::Duplicate);
    delete_sessions(context, policy, leftovers, inventory, &mut outcome).await;
    outcome
}

/// Runs futures with at most `limit` in flight and returns their outputs in input order. A slow
/// future (a lost response waits for its timeout) does not hold back the start of later ones, as
/// it would with `buffered`.
async fn bounded<F: Future>(futures: Vec<F>, limit: usize) -> Vec<F::Output> {
    let indexed = futures.into_iter().enumerate().map(|(index, future)| async move { (index, future.await) });
    let mut outputs: Vec<(usize, F::Output)> = stream::iter(indexed).buffer_unordered(limit).collect().await;
    outputs.sort_by_key(|(index, _)| *index);
    outputs.into_iter().map(|(_, output)| output).collect()
}

/// Deletes sessions, counting a session that is already gone as deleted.
async fn delete_sessions<'p, E: Ec2>(
    context: &ApplyContext<'_, E>,
    policy: &str,
    deletes: impl Iterator<Item = &'p Delete>,
    inventory: &mut Inventory,
    outcome: &mut ApplyOutcome,
) {
    let results =
        deletes.map(|delete| async move { (delete, context.ec2.delete_session(&delete.session_id).await) }).collect();
    let results = bounded(results, context.concurrency.max(1)).await;
    for (delete, result) in results {
        match result {
            // A session that is already gone is what a delete wants.
            Err(error) if !error.has_code(code::SESSION_NOT_FOUND) => {
                tracing::warn!(
                    policy,
                    network_interface_id = %delete.network_interface_id,
                    session_id = %delete.session_id,
                    error = %error,
                    "Failed to delete session"
                );
                outcome.failed_deletes.push((delete.clone(), error));
            }
            _ => {
                tracing::info!(
                    policy,
                    network_interface_id = %delete.network_interface_id,
                    session_id = %delete.session_id,
                    reason = delete.reason.as_str(),
                    "Deleted session"
                );
                context.metrics.sessions_deleted.with_label_values(&[policy, delete.reason.as_str()]).inc();
                context.recent.lock().expect("recent sessions lock is not poisoned").forget(&delete.session_id);
                inventory.remove_session(&delete.session_id);
                outcome.deleted.push(delete.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bounded_slow_first_future_blocks_nothing() {
        let started = Instant::now();
        let starts = Mutex::new(Vec::new());
        // The first write waits 10 s, as a lost response waits for its timeout.
        let futures = (0..8)
            .map(|index| {
                let starts = &starts;
                async move {
                    starts.lock().unwrap().push(started.elapsed());
                    let wait = if index == 0 { Duration::from_secs(10) } else { Duration::from_millis(100) };
                    tokio::time::sleep(wait).await;
                    index
                }
            })
            .collect();

        let outputs = bounded(futures, 4).await;

        assert_eq!(outputs, (0..8).collect::<Vec<_>>(), "outputs keep the input order");
        let last_start = starts.lock().unwrap().iter().copied().max().unwrap();
        assert!(last_start < Duration::from_secs(1), "the last write started at {last_start:?}");
    }
}
