//! One reconcile pass over a set of policies: validate, read one shared inventory, then plan,
//! apply and report each policy in turn.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::apply::{ApplyContext, apply};
use crate::attachment_index::AttachmentIndex;
use crate::aws::ec2::Ec2;
use crate::aws::error::{Ec2Error, code};
use crate::instance_types::InstanceTypeSupport;
use crate::inventory::{self, Catalog, InventoryRequest, InventoryScope, SourceScope};
use crate::metrics::Metrics;
use crate::ownership;
use crate::plan::{DeleteReason, DesiredSession, plan};
use crate::policy::MirrorPolicy;
use crate::recent_sessions::RecentSessions;
use crate::report::{Coverage, PolicyOutcome, PolicyReport};
use crate::session_index::SessionIndex;
use crate::validate::validate;

/// Whether a pass writes to AWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Apply,
    DryRun,
}

/// The reconcile engine of one region and set of credentials.
pub struct Engine<E> {
    pub ec2: E,
    pub cluster: String,
    pub support: InstanceTypeSupport,
    pub index: Mutex<SessionIndex>,
    pub attachments: Mutex<AttachmentIndex>,
    /// Targets and filters of the last region read, reused by source reads.
    catalog: Mutex<Option<Catalog>>,
    /// Serialises passes: two passes planning the same interface at once could both create a
    /// session on it.
    pass_lock: tokio::sync::Mutex<()>,
    pub metrics: Arc<Metrics>,
    /// Sessions created lately, which Describe may not show yet.
    pub recent: Mutex<RecentSessions>,
    /// Writes in flight at once within one step of an apply.
    write_concurrency: usize,
}

/// Writes in flight at once unless configured otherwise.
pub const DEFAULT_WRITE_CONCURRENCY: usize = 4;

impl<E: Ec2> Engine<E> {
    pub fn new(ec2: E, cluster: impl Into<String>, support: InstanceTypeSupport, metrics: Arc<Metrics>) -> Self {
        Engine {
            ec2,
            cluster: cluster.into(),
            support,
            index: Mutex::new(SessionIndex::default()),
            attachments: Mutex::new(AttachmentIndex::default()),
            catalog: Mutex::new(None),
            pass_lock: tokio::sync::Mutex::new(()),
            metrics,
            recent: Mutex::new(RecentSessions::default()),
            write_concurrency: DEFAULT_WRITE_CONCURRENCY,
        }
    }

    /// Sets how many writes run at once within one step of an apply (at least 1).
    pub fn with_write_concurrency(mut self, concurrency: usize) -> Self {
        self.write_concurrency = concurrency.max(1);
        self
    }

    /// Sets how long a created session is trusted while Describe does not show it; zero trusts
    /// Describe alone.
    pub fn with_consistency_window(mut self, window: std::time::Duration) -> Self {
        self.recent = Mutex::new(RecentSessions::new(window));
        self
    }

    /// Forgets a recent session that a DeleteTrafficMirrorSession event reports deleted, so the
    /// next pass replaces it without waiting for the consistency window.
    pub fn session_deleted(&self, session_id: &str) {
        self.recent.lock().expect("recent sessions lock is not poisoned").forget(session_id);
    }

    /// Reconciles every policy against one region-wide inventory read. Invalid policies are
    /// reported and skipped without any AWS call. A failed inventory read fails the pass before
    /// any write, because a partial inventory would make sessions look unneeded.
    pub async fn reconcile(&self, policies: &[MirrorPolicy], mode: Mode) -> Result<Vec<PolicyReport>, Ec2Error> {
        self.pass(policies, None, mode).await
    }

    /// Reconciles every policy, but only on the named instances and interfaces: the cheap pass
    /// an event wakes. Its reports cover those sources only, so coverage metrics are left to
    /// region passes.
    pub async fn reconcile_sources(
        &self,
        policies: &[MirrorPolicy],
        sources: &SourceScope,
        mode: Mode,
    ) -> Result<Vec<PolicyReport>, Ec2Error> {
        self.pass(policies, Some(sources), mode).await
    }

    async fn pass(
        &self,
        policies: &[MirrorPolicy],
        sources: Option<&SourceScope>,
        mode: Mode,
    ) -> Result<Vec<PolicyReport>, Ec2Error> {
        let _pass = self.pass_lock.lock().await;
        let started = Instant::now();
        let mut reports = Vec::new();
        let mut valid = Vec::new();
        for policy in policies {
            match validate(policy) {
                Ok(()) => valid.push(policy),
                Err(errors) => {
                    for error in &errors {
                        tracing::error!(policy = policy.policy_name(), field = %error.field, "Invalid policy: {}", error.message);
                    }
                    self.metrics.reconciles.with_label_values(&["invalid"]).inc();
                    reports.push(PolicyReport {
                        policy: policy.policy_name().to_string(),
                        partial: sources.is_some(),
                        outcome: PolicyOutcome::Invalid(errors),
                    });
                }
            }
        }
        if valid.is_empty() {
            return Ok(reports);
        }

        let request = inventory_request(&valid, sources);
        let cached = self.catalog.lock().expect("catalog lock is not poisoned").clone();
        let (mut inventory, catalog) = match inventory::read(&self.ec2, &request, cached.as_ref()).await {
            Ok(read) => read,
            Err(error) => {
                self.metrics.reconciles.with_label_values(&["error"]).inc_by(valid.len() as u64);
                return Err(error);
            }
        };
        // Kept from any pass: a source pass that had to read the catalog for a new policy's
        // filter spares the next one that read.
        *self.catalog.lock().expect("catalog lock is not poisoned") = Some(catalog);
        let filled = self.recent.lock().expect("recent sessions lock is not poisoned").fill_in(&mut inventory);
        if filled > 0 {
            tracing::debug!(sessions = filled, "Added recent sessions that Describe does not show yet");
        }
        if sources.is_none() {
            self.index.lock().expect("session index lock is not poisoned").refresh(&self.cluster, &inventory);
            self.attachments.lock().expect("attachment index lock is not poisoned").refresh(&inventory);
        } else {
            self.index.lock().expect("session index lock is not poisoned").add_owned(&self.cluster, &inventory);
            self.attachments.lock().expect("attachment index lock is not poisoned").add(&inventory);
        }
        tracing::debug!(
            instances = inventory.instances.len(),
            sessions = inventory.sessions.len(),
            targets = inventory.targets.len(),
            "Read inventory"
        );

        for policy in valid {
            let name = policy.policy_name();
            let snapshot = self.support.snapshot(Instant::now());
            let plan = plan(policy, &self.cluster, &inventory, &snapshot);
            let (applied, coverage) = match mode {
                Mode::DryRun => (None, Coverage::before_apply(&plan)),
                Mode::Apply => {
                    let context = ApplyContext {
                        ec2: &self.ec2,
                        cluster: &self.cluster,
                        index: &self.index,
                        support: &self.support,
                        metrics: &self.metrics,
                        recent: &self.recent,
                        concurrency: self.write_concurrency,
                    };
                    let outcome = apply(&context, &plan, &DesiredSession::of(policy), &mut inventory).await;
                    let coverage = Coverage::after_apply(&plan, &outcome);
                    (Some(outcome), coverage)
                }
            };
            if mode == Mode::Apply {
                if sources.is_none() {
                    self.metrics.record_coverage(name, &coverage);
                }
                self.metrics.reconciles.with_label_values(&["success"]).inc();
            }
            tracing::info!(
                policy = name,
                selected = coverage.selected,
                eligible = coverage.eligible,
                mirrored = coverage.mirrored,
                coverage = %coverage.percent(),
                "Reconciled policy"
            );
            reports.push(PolicyReport {
                policy: name.to_string(),
                partial: sources.is_some(),
                outcome: PolicyOutcome::Reconciled { plan, applied, coverage },
            });
        }
        let scope = if sources.is_some() { "sources" } else { "region" };
        self.metrics.reconcile_duration.with_label_values(&[scope]).observe(started.elapsed().as_secs_f64());
        Ok(reports)
    }
}

impl<E: Ec2> Engine<E> {
    /// Deletes every session the policy owns, for deletionPolicy Delete. The sessions are found
    /// by their ownership tags, so the policy's spec no longer matters. Returns the number of
    /// sessions deleted, or the first error, after which the caller retries.
    pub async fn teardown(&self, policy: &str) -> Result<usize, Ec2Error> {
        let _pass = self.pass_lock.lock().await;
        let filters = [
            (format!("tag:{}", ownership::MANAGED_BY_KEY), vec![ownership::MANAGED_BY_VALUE.to_string()]),
            (format!("tag:{}", ownership::CLUSTER_KEY), vec![self.cluster.clone()]),
            (format!("tag:{}", ownership::POLICY_KEY), vec![policy.to_string()]),
        ];
        let mut sessions = Vec::new();
        let mut next_token = None;
        loop {
            let page = self.ec2.describe_sessions(&filters, next_token.take()).await?;
            sessions.extend(page.items);
            match page.next_token {
                Some(token) => next_token = Some(token),
                None => break,
            }
        }

        // Sessions created lately may not show in Describe yet.
        // NOTE: only this process's creations are remembered. A session created just before a
        // restart, or by a create whose response was lost on every attempt, can escape a
        // teardown while Describe does not show it, and then stays after the finalizer goes.
        let recent = self
            .recent
            .lock()
            .expect("recent sessions lock is not poisoned")
            .matching(|s| ownership::is_owned_by(s, &self.cluster, policy));
        for session in recent {
            if !sessions.iter().any(|s| s.id == session.id) {
                sessions.push(session);
            }
        }

        let mut deleted = 0;
        // The tags are checked again, because the server-side filter is only a pre-selection.
        for session in sessions.iter().filter(|s| ownership::is_owned_by(s, &self.cluster, policy)) {
            match self.ec2.delete_session(&session.id).await {
                Ok(()) => {}
                Err(error) if error.has_code(code::SESSION_NOT_FOUND) => {}
                Err(error) => return Err(error),
            }
            self.session_deleted(&session.id);
            tracing::info!(policy, network_interface_id = %session.network_interface_id, session_id = %session.id, "Deleted session of a deleted policy");
            self.metrics.sessions_deleted.with_label_values(&[policy, DeleteReason::PolicyDeleted.as_str()]).inc();
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// Builds the read of a pass: the named sources, or the region narrowed to VPCs when every
/// policy names VPCs, plus the filters the policies use. One read serves all policies, so N
/// policies never cost N sweeps.
fn inventory_request(policies: &[&MirrorPolicy], sources: Option<&SourceScope>) -> InventoryRequest {
    let every_policy_names_vpcs = policies.iter().all(|p| p.spec.selector.vpc_ids.is_some());
    let vpc_ids = every_policy_names_vpcs.then(|| {
        policies
            .iter()
            .flat_map(|p| p.spec.selector.vpc_ids.iter().flatten().map(|id| id.0.clone()))
            .collect::<BTreeSet<String>>()
    });
    let filter_ids = policies.iter().map(|p| p.spec.filter.id.clone()).collect();
    let scope = match sources {
        Some(sources) => InventoryScope::Sources(sources.clone()),
        None => InventoryScope::Region { vpc_ids },
    };
    InventoryRequest { scope, filter_ids }
}
