//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod chaos;
pub mod fleet;
pub mod kube_api;
pub mod moto;

use vpc_mirror_controller::policy::MirrorPolicy;

/// Parses a policy from YAML, panicking with the parse error on a typo in a test.
pub fn policy_from_yaml(yaml: &str) -> MirrorPolicy {
    serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("test policy does not parse: {e}\n{yaml}"))
}

/// Builds a policy selecting instances tagged env=prod, with extra spec lines appended.
pub fn prod_policy(name: &str, target: &str, filter: &str, extra_spec: &str) -> MirrorPolicy {
    let yaml = format!(
        "apiVersion: vpcmirror.dev/v1alpha1\nkind: MirrorPolicy\nmetadata: {{ name: {name} }}\nspec:\n  target: {{ id: {target} }}\n  filter: {{ id: {filter} }}\n  selector: {{ tags: {{ matchLabels: {{ env: prod }} }} }}\n{extra_spec}"
    );
    policy_from_yaml(&yaml)
}
