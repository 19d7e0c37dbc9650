//! Coverage of a policy and the tables that `run` and `plan` print.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::apply::ApplyOutcome;
use crate::plan::{Plan, Unmirrored, UnmirroredReason};
use crate::validate::FieldError;

/// Coverage counts of one policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    pub selected: usize,
    pub eligible: usize,
    pub mirrored: usize,
    pub unmirrored_by_reason: BTreeMap<UnmirroredReason, usize>,
}

impl Coverage {
    /// Coverage before any write: only sessions already in place count as mirrored.
    pub fn before_apply(plan: &Plan) -> Self {
        Self::count(plan.selected, plan.mirrored.len(), plan.unmirrored.iter())
    }

    /// Coverage after an apply: sessions in place, created and repaired count as mirrored.
    pub fn after_apply(plan: &Plan, outcome: &ApplyOutcome) -> Self {
        let mirrored = plan.mirrored.len() + outcome.created.len() + outcome.repaired.len();
        Self::count(plan.selected, mirrored, plan.unmirrored.iter().chain(outcome.failed.iter()))
    }

    fn count<'a>(selected: usize, mirrored: usize, unmirrored: impl Iterator<Item = &'a Unmirrored>) -> Self {
        let mut unmirrored_by_reason = BTreeMap::new();
        let mut ineligible = 0;
        for source in unmirrored {
            *unmirrored_by_reason.entry(source.reason).or_insert(0) += 1;
            if source.reason.is_ineligible() {
                ineligible += 1;
            }
        }
        Coverage { selected, eligible: selected - ineligible, mirrored, unmirrored_by_reason }
    }

    /// Mirrored divided by eligible; 1 when nothing is eligible, since nothing is missing.
    pub fn ratio(&self) -> f64 {
        if self.eligible == 0 { 1.0 } else { self.mirrored as f64 / self.eligible as f64 }
    }

    /// Formats the ratio as a percentage with one decimal, for example "98.5%".
    pub fn percent(&self) -> String {
        format!("{:.1}%", self.ratio() * 100.0)
    }
}

/// The result of one policy in one pass.
#[derive(Clone, Debug)]
pub enum PolicyOutcome {
    /// The policy failed validation; nothing was read or written for it.
    Invalid(Vec<FieldError>),
    /// The policy was planned, and applied unless this was a dry run.
    Reconciled { plan: Plan, applied: Option<ApplyOutcome>, coverage: Coverage },
}

/// One policy's outcome, named.
#[derive(Clone, Debug)]
pub struct PolicyReport {
    pub policy: String,
    /// True when the pass read only some sources, so the counts cover those sources only.
    pub partial: bool,
    pub outcome: PolicyOutcome,
}

impl PolicyReport {
    /// Returns the sources that stay unmirrored, from the plan and from failed writes.
    pub fn unmirrored(&self) -> Vec<&Unmirrored> {
        match &self.outcome {
            PolicyOutcome::Invalid(_) => Vec::new(),
            PolicyOutcome::Reconciled { plan, applied, .. } => {
                plan.unmirrored.iter().chain(applied.iter().flat_map(|a| a.failed.iter())).collect()
            }
        }
    }
}

/// Renders rows under headers with columns padded to their widest cell.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    let header_cells: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_cells).chain(rows) {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        let _ = writeln!(text, "{}", line.join("  ").trim_end());
    }
    text
}

/// Renders the coverage table of a pass, followed by every unmirrored source with its reason.
pub fn render_coverage(reports: &[PolicyReport]) -> String {
    let mut rows = Vec::new();
    let mut invalid = String::new();
    for report in reports {
        match &report.outcome {
            PolicyOutcome::Invalid(errors) => {
                rows.push(vec![
                    report.policy.clone(),
                    "invalid".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
                for error in errors {
                    let _ = writeln!(invalid, "policy {}: {error}", report.policy);
                }
            }
            PolicyOutcome::Reconciled { coverage, applied, .. } => {
                let (created, repaired, deleted) =
                    applied.as_ref().map(|a| (a.created.len(), a.repaired.len(), a.deleted.len())).unwrap_or_default();
                rows.push(vec![
                    report.policy.clone(),
                    coverage.percent(),
                    coverage.mirrored.to_string(),
                    coverage.eligible.to_string(),
                    coverage.selected.to_string(),
                    created.to_string(),
                    repaired.to_string(),
                    deleted.to_string(),
                ]);
            }
        }
    }
    let mut text = render_table(
        &["POLICY", "COVERAGE", "MIRRORED", "ELIGIBLE", "SELECTED", "CREATED", "REPAIRED", "DELETED"],
        &rows,
    );
    text.push_str(&invalid);

    let unmirrored: Vec<Vec<String>> = reports
        .iter()
        .flat_map(|report| {
            report.unmirrored().into_iter().map(|u| {
                vec![
                    report.policy.clone(),
                    u.source.instance_id.clone(),
                    u.source.network_interface_id.clone(),
                    u.reason.to_string(),
                    u.detail.clone(),
                ]
            })
        })
        .collect();
    if !unmirrored.is_empty() {
        text.push('\n');
        text.push_str(&render_table(&["POLICY", "INSTANCE", "INTERFACE", "REASON", "DETAIL"], &unmirrored));
    }
    text
}

/// Renders each policy's plan: what would be created, repaired, deleted, kept and skipped.
pub fn render_plans(reports: &[PolicyReport]) -> String {
    let mut text = String::new();
    for report in reports {
        match &report.outcome {
            PolicyOutcome::Invalid(errors) => {
                let _ = writeln!(text, "Policy {}: invalid, nothing planned", report.policy);
                for error in errors {
                    let _ = writeln!(text, "  {error}");
                }
            }
            PolicyOutcome::Reconciled { plan, coverage, .. } => {
                let _ = writeln!(
                    text,
                    "Policy {}: {} selected, {} eligible, {} mirrored now ({}); {} to create, {} to repair, {} to delete",
                    report.policy,
                    coverage.selected,
                    coverage.eligible,
                    coverage.mirrored,
                    coverage.percent(),
                    plan.creates.len(),
                    plan.repairs.len(),
                    plan.deletes.len()
                );
                let mut rows = Vec::new();
                for create in &plan.creates {
                    rows.push(vec![
                        "create".into(),
                        create.source.instance_id.clone(),
                        create.source.network_interface_id.clone(),
                        "-".into(),
                        format!("session number {}", create.number),
                    ]);
                }
                for repair in &plan.repairs {
                    rows.push(vec![
                        "repair".into(),
                        repair.source.instance_id.clone(),
                        repair.source.network_interface_id.clone(),
                        repair.change.session_id.clone(),
                        repair.drifts.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", "),
                    ]);
                }
                for delete in &plan.deletes {
                    rows.push(vec![
                        "delete".into(),
                        "-".into(),
                        delete.network_interface_id.clone(),
                        delete.session_id.clone(),
                        delete.reason.as_str().into(),
                    ]);
                }
                for mirrored in &plan.mirrored {
                    let detail = if mirrored.adopted { "in place, not owned: left alone" } else { "in place" };
                    rows.push(vec![
                        "keep".into(),
                        mirrored.source.instance_id.clone(),
                        mirrored.source.network_interface_id.clone(),
                        mirrored.session_id.clone(),
                        detail.into(),
                    ]);
                }
                for skipped in &plan.unmirrored {
                    rows.push(vec![
                        "skip".into(),
                        skipped.source.instance_id.clone(),
                        skipped.source.network_interface_id.clone(),
                        "-".into(),
                        format!("{}: {}", skipped.reason, skipped.detail),
                    ]);
                }
                if !rows.is_empty() {
                    text.push_str(&render_table(&["ACTION", "INSTANCE", "INTERFACE", "SESSION", "DETAIL"], &rows));
                }
                text.push('\n');
            }
        }
    }
    text
}
