//! Instance types that can be mirror sources.
//!
//! Being Nitro is not enough: AWS lists Nitro families without Traffic Mirroring, excludes
//! bare-metal sizes, and supports a few Xen families. The table below is built from the
//! "Instance types" list in the AWS Traffic Mirroring guide (Traffic mirror session concepts),
//! as published on [`TABLE_DATE`]. The list changes, so users can override any family or type,
//! and a `NetworkInterfaceNotSupported` error from CreateTrafficMirrorSession marks the type
//! unsupported for [`LEARNED_TTL`], after which it is tried again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The date the built-in table was checked against the AWS documentation.
pub const TABLE_DATE: &str = "2026-12-04";

/// How long a type learned from a `NetworkInterfaceNotSupported` error stays unsupported.
pub const LEARNED_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Nitro families that AWS lists as not supporting Traffic Mirroring.
const UNSUPPORTED_NITRO_FAMILIES: &[&str] = &[
    // General purpose
    "m8g", "m6a", "m6i", "m6id", "m6idn", "m6in", "m7a", "m7g", "m7gd", "m7i", "m7i-flex",
    // Compute optimized
    "c8g", "c6a", "c6gd", "c6gn", "c6i", "c6id", "c6in", "c7a", "c7g", "c7gd", "c7gn", "c7i",
    // Memory optimized
    "r8g", "r6a", "r6i", "r6id", "r6idn", "r6in", "r7a", "r7g", "r7gd", "r7i", "r7iz", "x8g", "x2idn", "x2iedn",
    "x2iezn", // Storage optimized
    "i4g", "i4i", "im4gn", "is4gen", // Accelerated computing
    "inf2", "p5", "trn1", "trn1n", // High-performance computing
    "hpc6a", "hpc6id", "hpc7a", "hpc7g",
];

/// The only Xen (non-Nitro) families that support Traffic Mirroring.
const SUPPORTED_XEN_FAMILIES: &[&str] = &["c4", "d2", "g3", "g3s", "h1", "i3", "m4", "p2", "p3", "r4", "x1", "x1e"];

/// Xen families that are not in the supported list (T2 is named explicitly by AWS).
const UNSUPPORTED_XEN_FAMILIES: &[&str] =
    &["t1", "t2", "m1", "m2", "m3", "c1", "c3", "cc2", "cg1", "cr1", "g2", "hi1", "hs1", "i2", "r3", "f1"];

/// A verdict on an instance type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Supported,
    Unsupported,
}

/// Returns the built-in verdict for an instance type such as "m5.large".
///
/// Families missing from the table are assumed to be supported Nitro types, because new
/// families are Nitro. A wrong guess is corrected by the first `NetworkInterfaceNotSupported`
/// error.
pub fn table_verdict(instance_type: &str) -> Verdict {
    let (family, size) = split_type(instance_type);
    if size.starts_with("metal") {
        return Verdict::Unsupported;
    }
    if UNSUPPORTED_NITRO_FAMILIES.contains(&family) || UNSUPPORTED_XEN_FAMILIES.contains(&family) {
        return Verdict::Unsupported;
    }
    if SUPPORTED_XEN_FAMILIES.contains(&family) {
        return Verdict::Supported;
    }
    Verdict::Supported
}

/// Splits "m7i-flex.large" into ("m7i-flex", "large").
fn split_type(instance_type: &str) -> (&str, &str) {
    instance_type.split_once('.').unwrap_or((instance_type, ""))
}

/// The instance-type verdicts in force: the table, user overrides, and learned errors.
#[derive(Debug, Default)]
pub struct InstanceTypeSupport {
    /// Overrides keyed by family ("m6i") or exact type ("m6i.large"); an exact type wins.
    overrides: BTreeMap<String, Verdict>,
    learned: Mutex<HashMap<String, Instant>>,
}

impl InstanceTypeSupport {
    pub fn new(overrides: BTreeMap<String, Verdict>) -> Self {
        InstanceTypeSupport { overrides, learned: Mutex::new(HashMap::new()) }
    }

    /// Marks an instance type unsupported after AWS rejected one of its interfaces.
    pub fn learn_unsupported(&self, instance_type: &str, now: Instant) {
        let mut learned = self.learned.lock().expect("learned-types lock is not poisoned");
        learned.insert(instance_type.to_string(), now + LEARNED_TTL);
    }

    /// Takes a snapshot for one plan, dropping learned entries that have expired.
    pub fn snapshot(&self, now: Instant) -> SupportSnapshot<'_> {
        let mut learned = self.learned.lock().expect("learned-types lock is not poisoned");
        learned.retain(|_, expires| *expires > now);
        SupportSnapshot { overrides: &self.overrides, learned: learned.keys().cloned().collect() }
    }
}

/// The verdicts for one plan, so that planning stays a pure function.
#[derive(Clone, Debug)]
pub struct SupportSnapshot<'a> {
    overrides: &'a BTreeMap<String, Verdict>,
    learned: HashSet<String>,
}

impl SupportSnapshot<'_> {
    /// Returns whether interfaces of this instance type can be mirror sources.
    pub fn supports(&self, instance_type: &str) -> bool {
        if let Some(verdict) = self.overrides.get(instance_type) {
            return *verdict == Verdict::Supported;
        }
        if self.learned.contains(instance_type) {
            return false;
        }
        let (family, _) = split_type(instance_type);
        if let Some(verdict) = self.overrides.get(family) {
            return *verdict == Verdict::Supported;
        }
        table_verdict(instance_type) == Verdict::Supported
    }
}

/// Parses overrides such as "m6i=supported,t3.nano=unsupported".
pub fn parse_overrides(text: &str) -> Result<BTreeMap<String, Verdict>, String> {
    let mut overrides = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, verdict) = entry.split_once('=').ok_or_else(|| {
            format!("invalid instance type override {entry:?}: expected FAMILY_OR_TYPE=supported or =unsupported")
        })?;
        let verdict = match verdict.trim() {
            "supported" => Verdict::Supported,
            "unsupported" => Verdict::Unsupported,
            other => {
                return Err(format!(
                    "invalid verdict {other:?} in instance type override {entry:?}: use supported or unsupported"
                ));
            }
        };
        overrides.insert(name.trim().to_ascii_lowercase(), verdict);
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_supports_current_nitro_types() {
        for instance_type in ["m5.large", "c5n.xlarge", "r5.2xlarge", "t3.medium", "m6g.large"] {
            assert_eq!(table_verdict(instance_type), Verdict::Supported, "{instance_type}");
        }
    }

    #[test]
    fn table_rejects_listed_nitro_families() {
        for instance_type in ["m6i.large", "c7g.xlarge", "r8g.large", "m7i-flex.large", "p5.48xlarge"] {
            assert_eq!(table_verdict(instance_type), Verdict::Unsupported, "{instance_type}");
        }
    }

    #[test]
    fn table_rejects_bare_metal() {
        assert_eq!(table_verdict("m5.metal"), Verdict::Unsupported);
        assert_eq!(table_verdict("c5.metal"), Verdict::Unsupported);
    }

    #[test]
    fn table_xen_families() {
        assert_eq!(table_verdict("c4.large"), Verdict::Supported);
        assert_eq!(table_verdict("x1e.xlarge"), Verdict::Supported);
        assert_eq!(table_verdict("t2.micro"), Verdict::Unsupported);
        assert_eq!(table_verdict("m3.medium"), Verdict::Unsupported);
    }

    #[test]
    fn override_by_type_beats_family() {
        let overrides = parse_overrides("m6i=supported, m6i.large=unsupported").unwrap();
        let support = InstanceTypeSupport::new(overrides);
        let snapshot = support.snapshot(Instant::now());
        assert!(snapshot.supports("m6i.xlarge"));
        assert!(!snapshot.supports("m6i.large"));
    }

    #[test]
    fn override_rejects_unknown_verdict() {
        let error = parse_overrides("m6i=maybe").unwrap_err();
        assert!(error.contains("\"maybe\""), "{error}");
    }

    #[test]
    fn learned_type_expires() {
        let support = InstanceTypeSupport::default();
        let start = Instant::now();
        support.learn_unsupported("m5.large", start);
        assert!(!support.snapshot(start).supports("m5.large"));
        assert!(support.snapshot(start + LEARNED_TTL + Duration::from_secs(1)).supports("m5.large"));
    }
}
