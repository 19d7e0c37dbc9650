//! Executing a plan: idempotent writes, each failure turned into a reason on its source.

use std::sync::Mutex;
use std::time::Instant;

use crate::aws::ec2::Ec2;
use crate::aws::error::{Ec2Error, ErrorKind, code};
use crate::aws::model::{CreateSession, Session};
use crate::client_token::client_token;
use crate::instance_types::InstanceTypeSupport;
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::ownership::ownership_tags;
use crate::plan::{Delete, DeleteReason, DesiredSession, Drift, Plan, Source, Unmirrored, UnmirroredReason};
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
/// source is never left without a session while its replacement is pending. The inventory and the session index
/// are updated with every change, so that later plans in the same pass see them.
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

    for repair in &plan.repairs {
        match context.ec2.modify_session(&repair.change).await {
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

    for create in &plan.creates {
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

        match context.ec2.create_session(&request).await {
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

/// Deletes sessions, counting a session that is already gone as deleted.
async fn delete_sessions<'p, E: Ec2>(
    context: &ApplyContext<'_, E>,
    policy: &str,
    deletes: impl Iterator<Item = &'p Delete>,
    inventory: &mut Inventory,
    outcome: &mut ApplyOutcome,
) {
    for delete in deletes {
        match context.ec2.delete_session(&delete.session_id).await {
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
                inventory.remove_session(&delete.session_id);
                outcome.deleted.push(delete.clone());
            }
        }
    }
}
