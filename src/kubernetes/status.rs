//! The status a policy reports: conditions with typed reasons, coverage, and a capped sample of
//! unmirrored interfaces. Building it is pure, so every rule is a unit test.

use std::collections::BTreeMap;

use crate::plan::UnmirroredReason;
use crate::policy::{CoverageStatus, MirrorPolicyStatus, PolicyCondition, UnmirroredSource};
use crate::report::{PolicyOutcome, PolicyReport};

/// Condition type: every eligible interface is mirrored.
pub const READY: &str = "Ready";
/// Condition type: something needs attention (a missing target, an AWS error, a conflict).
pub const DEGRADED: &str = "Degraded";

/// Most unmirrored interfaces listed in status; the counts by reason cover all of them.
pub const UNMIRRORED_SAMPLE: usize = 20;

/// Reasons of the Ready and Degraded conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionReason {
    FullyMirrored,
    PartiallyMirrored,
    TargetNotFound,
    FilterNotFound,
    InvalidSpec,
    AwsError,
    Throttled,
}

impl ConditionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionReason::FullyMirrored => "FullyMirrored",
            ConditionReason::PartiallyMirrored => "PartiallyMirrored",
            ConditionReason::TargetNotFound => "TargetNotFound",
            ConditionReason::FilterNotFound => "FilterNotFound",
            ConditionReason::InvalidSpec => "InvalidSpec",
            ConditionReason::AwsError => "AwsError",
            ConditionReason::Throttled => "Throttled",
        }
    }
}

/// The facts a status is built from, besides the report.
pub struct StatusInput<'a> {
    pub generation: Option<i64>,
    pub previous: Option<&'a MirrorPolicyStatus>,
    /// The current time in RFC 3339.
    pub now: &'a str,
    pub target_id: &'a str,
    pub filter_id: &'a str,
}

/// Builds the status after a reconcile of the policy.
pub fn from_report(report: &PolicyReport, input: &StatusInput) -> MirrorPolicyStatus {
    match &report.outcome {
        PolicyOutcome::Invalid(errors) => {
            let message: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            let message = message.join("; ");
            // An invalid spec was never applied, so the last coverage stays as it was.
            let mut status = carried_over(input);
            status.conditions = conditions(input, false, ConditionReason::InvalidSpec, &message);
            status
        }
        PolicyOutcome::Reconciled { coverage, .. } => {
            let unmirrored = report.unmirrored();
            let mut by_reason: BTreeMap<UnmirroredReason, u32> = BTreeMap::new();
            for source in &unmirrored {
                *by_reason.entry(source.reason).or_default() += 1;
            }
            let (ready, reason, message) = summarize(coverage.eligible, coverage.mirrored, &by_reason, input);
            MirrorPolicyStatus {
                observed_generation: input.generation,
                conditions: conditions(input, ready, reason, &message),
                coverage: Some(CoverageStatus {
                    selected: coverage.selected as u32,
                    eligible: coverage.eligible as u32,
                    mirrored: coverage.mirrored as u32,
                    percent: coverage.percent(),
                    unmirrored_by_reason: by_reason.iter().map(|(r, n)| (r.as_str().to_string(), *n)).collect(),
                }),
                unmirrored: unmirrored
                    .iter()
                    .take(UNMIRRORED_SAMPLE)
                    .map(|u| UnmirroredSource {
                        network_interface_id: u.source.network_interface_id.clone(),
                        instance_id: u.source.instance_id.clone(),
                        reason: u.reason.as_str().to_string(),
                    })
                    .collect(),
                target_id: (!by_reason.contains_key(&UnmirroredReason::TargetNotFound))
                    .then(|| input.target_id.to_string()),
                filter_id: (!by_reason.contains_key(&UnmirroredReason::FilterNotFound))
                    .then(|| input.filter_id.to_string()),
                last_sync_time: Some(input.now.to_string()),
            }
        }
    }
}

/// Builds the status after a reconcile that failed before any result, keeping the last
/// coverage: it is the best knowledge there is.
pub fn from_failure(throttled: bool, message: &str, input: &StatusInput) -> MirrorPolicyStatus {
    let reason = if throttled { ConditionReason::Throttled } else { ConditionReason::AwsError };
    let mut status = carried_over(input);
    status.conditions = conditions(input, false, reason, message);
    status
}

/// Returns whether two statuses differ in anything but the sync time, which alone is not worth
/// a write.
pub fn differs(old: Option<&MirrorPolicyStatus>, new: &MirrorPolicyStatus) -> bool {
    let Some(old) = old else { return true };
    let mut old = old.clone();
    old.last_sync_time = new.last_sync_time.clone();
    old != *new
}

fn carried_over(input: &StatusInput) -> MirrorPolicyStatus {
    let mut status = input.previous.cloned().unwrap_or_default();
    status.observed_generation = input.generation;
    status.last_sync_time = Some(input.now.to_string());
    status
}

/// Picks the Ready state, the reason that explains it best, and a message with the numbers.
fn summarize(
    eligible: usize,
    mirrored: usize,
    by_reason: &BTreeMap<UnmirroredReason, u32>,
    input: &StatusInput,
) -> (bool, ConditionReason, String) {
    if by_reason.contains_key(&UnmirroredReason::TargetNotFound) {
        let message = format!("target {} not found: create it or fix spec.target.id", input.target_id);
        return (false, ConditionReason::TargetNotFound, message);
    }
    if by_reason.contains_key(&UnmirroredReason::FilterNotFound) {
        let message = format!("filter {} not found: create it or fix spec.filter.id", input.filter_id);
        return (false, ConditionReason::FilterNotFound, message);
    }
    if mirrored >= eligible {
        let message = format!("{mirrored} of {eligible} eligible network interfaces mirrored");
        return (true, ConditionReason::FullyMirrored, message);
    }
    let counts: Vec<String> =
        by_reason.iter().filter(|(r, _)| !r.is_ineligible()).map(|(r, n)| format!("{n} {}", r.as_str())).collect();
    let message =
        format!("{mirrored} of {eligible} eligible network interfaces mirrored; unmirrored: {}", counts.join(", "));
    let reason = if by_reason.contains_key(&UnmirroredReason::Throttled) {
        ConditionReason::Throttled
    } else if by_reason.contains_key(&UnmirroredReason::AwsError) {
        ConditionReason::AwsError
    } else {
        ConditionReason::PartiallyMirrored
    };
    (false, reason, message)
}

/// Builds Ready and Degraded, keeping each condition's lastTransitionTime unless its status
/// flips.
fn conditions(input: &StatusInput, ready: bool, reason: ConditionReason, message: &str) -> Vec<PolicyCondition> {
    let degraded_reason = if ready { ConditionReason::FullyMirrored } else { reason };
    vec![condition(input, READY, ready, reason, message), condition(input, DEGRADED, !ready, degraded_reason, message)]
}

fn condition(input: &StatusInput, type_: &str, value: bool, reason: ConditionReason, message: &str) -> PolicyCondition {
    let status = if value { "True" } else { "False" };
    let previous = input.previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == type_));
    let last_transition_time = match previous {
        Some(previous) if previous.status == status => previous.last_transition_time.clone(),
        _ => input.now.to_string(),
    };
    PolicyCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.as_str().to_string(),
        message: message.to_string(),
        last_transition_time,
        observed_generation: input.generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Plan, Source, Unmirrored};
    use crate::report::Coverage;
    use crate::validate::FieldError;

    fn input<'a>(previous: Option<&'a MirrorPolicyStatus>, now: &'a str) -> StatusInput<'a> {
        StatusInput {
            generation: Some(3),
            previous,
            now,
            target_id: "tmt-0a1b2c3d4e5f60718",
            filter_id: "tmf-0a1b2c3d4e5f60718",
        }
    }

    fn unmirrored(reason: UnmirroredReason, index: usize) -> Unmirrored {
        Unmirrored {
            source: Source {
                instance_id: format!("i-{index:017x}"),
                instance_type: "m5.large".into(),
                network_interface_id: format!("eni-{index:017x}"),
            },
            reason,
            detail: String::new(),
        }
    }

    fn report(selected: usize, mirrored: usize, unmirrored_sources: Vec<Unmirrored>) -> PolicyReport {
        let plan = Plan { policy: "web".into(), selected, unmirrored: unmirrored_sources, ..Plan::default() };
        let mut coverage = Coverage::before_apply(&plan);
        coverage.mirrored = mirrored;
        PolicyReport {
            policy: "web".into(),
            partial: false,
            outcome: PolicyOutcome::Reconciled { plan, applied: None, coverage },
        }
    }

    fn ready(status: &MirrorPolicyStatus) -> &PolicyCondition {
        status.conditions.iter().find(|c| c.type_ == READY).unwrap()
    }

    #[test]
    fn full_coverage_is_ready() {
        let status = from_report(
            &report(3, 2, vec![unmirrored(UnmirroredReason::UnsupportedInstanceType, 1)]),
            &input(None, "t1"),
        );
        assert_eq!(ready(&status).status, "True");
        assert_eq!(ready(&status).reason, "FullyMirrored");
        let coverage = status.coverage.unwrap();
        assert_eq!(coverage.eligible, 2);
        assert_eq!(coverage.percent, "100.0%");
        assert_eq!(coverage.unmirrored_by_reason.get("UnsupportedInstanceType"), Some(&1));
        assert_eq!(status.observed_generation, Some(3));
    }

    #[test]
    fn missing_target_names_field() {
        let status =
            from_report(&report(1, 0, vec![unmirrored(UnmirroredReason::TargetNotFound, 1)]), &input(None, "t1"));
        assert_eq!(ready(&status).reason, "TargetNotFound");
        assert!(ready(&status).message.contains("spec.target.id"));
        assert_eq!(status.target_id, None);
        assert_eq!(status.filter_id.as_deref(), Some("tmf-0a1b2c3d4e5f60718"));
    }

    #[test]
    fn transition_time_moves_only_on_change() {
        let first = from_report(&report(1, 1, vec![]), &input(None, "t1"));
        let same = from_report(&report(1, 1, vec![]), &input(Some(&first), "t2"));
        let flipped =
            from_report(&report(2, 1, vec![unmirrored(UnmirroredReason::AwsError, 1)]), &input(Some(&same), "t3"));
        assert_eq!(ready(&same).last_transition_time, "t1");
        assert_eq!(ready(&flipped).last_transition_time, "t3");
        assert_eq!(ready(&flipped).reason, "AwsError");
    }

    #[test]
    fn sync_time_alone_is_no_change() {
        let first = from_report(&report(1, 1, vec![]), &input(None, "t1"));
        let second = from_report(&report(1, 1, vec![]), &input(Some(&first), "t2"));
        assert!(!differs(Some(&first), &second));
        assert!(differs(None, &second));
    }

    #[test]
    fn sample_is_capped() {
        let many = (0..50).map(|i| unmirrored(UnmirroredReason::SessionQuotaReached, i)).collect();
        let status = from_report(&report(50, 0, many), &input(None, "t1"));
        assert_eq!(status.unmirrored.len(), UNMIRRORED_SAMPLE);
        assert_eq!(status.coverage.unwrap().unmirrored_by_reason.get("SessionQuotaReached"), Some(&50));
    }

    #[test]
    fn invalid_spec_keeps_coverage() {
        let first = from_report(&report(1, 1, vec![]), &input(None, "t1"));
        let errors =
            vec![FieldError { field: "spec.session.packetLength".into(), message: "9000 is out of range".into() }];
        let invalid = PolicyReport { policy: "web".into(), partial: false, outcome: PolicyOutcome::Invalid(errors) };
        let status = from_report(&invalid, &input(Some(&first), "t2"));
        assert_eq!(ready(&status).reason, "InvalidSpec");
        assert!(ready(&status).message.contains("spec.session.packetLength"));
        assert_eq!(status.coverage, first.coverage);
    }

    #[test]
    fn failure_reports_throttling() {
        let status = from_failure(true, "DescribeInstances failed: RequestLimitExceeded", &input(None, "t1"));
        assert_eq!(ready(&status).status, "False");
        assert_eq!(ready(&status).reason, "Throttled");
    }
}
