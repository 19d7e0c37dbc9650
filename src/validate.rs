//! Checks of a policy beyond its OpenAPI schema. Policy files in standalone mode never pass
//! through an API server, so every schema rule is checked here too.

use std::fmt;

use crate::policy::{MirrorPolicy, TagOperator};

/// One invalid field, with the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, for example `spec.session.packetLength`.
    pub field: String,
    /// The problem and its fix.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Maximum length of an EC2 tag value, which the policy name becomes.
const MAX_TAG_VALUE: usize = 256;

fn has_id_shape(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|hex| {
        (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Validates a policy; returns every invalid field, not only the first.
pub fn validate(policy: &MirrorPolicy) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut reject = |field: &str, message: String| errors.push(FieldError { field: field.to_string(), message });
    let spec = &policy.spec;

    match policy.metadata.name.as_deref() {
        None | Some("") => {
            reject("metadata.name", "missing: every policy needs a name, which tags its sessions".into())
        }
        Some(name) if name.len() > MAX_TAG_VALUE => reject(
            "metadata.name",
            format!(
                "{} characters is too long: EC2 tag values allow {MAX_TAG_VALUE}, so use a shorter name",
                name.len()
            ),
        ),
        Some(_) => {}
    }

    if !has_id_shape(&spec.target.id, "tmt-") {
        reject(
            "spec.target.id",
            format!(
                "invalid target id {:?}: use a Traffic Mirror target id such as tmt-0a1b2c3d4e5f60718",
                spec.target.id
            ),
        );
    }
    if !has_id_shape(&spec.filter.id, "tmf-") {
        reject(
            "spec.filter.id",
            format!(
                "invalid filter id {:?}: use a Traffic Mirror filter id such as tmf-0a1b2c3d4e5f60718",
                spec.filter.id
            ),
        );
    }

    let selector = &spec.selector;
    let no_field_set = selector.instance_ids.is_none()
        && selector.tags.is_none()
        && selector.vpc_ids.is_none()
        && selector.subnet_ids.is_none()
        && selector.availability_zones.is_none();
    if no_field_set {
        reject(
            "spec.selector",
            "empty selector: set at least one of instanceIds, tags, vpcIds, subnetIds or availabilityZones, so that the policy never mirrors a whole region by accident".into(),
        );
    }
    let id_lists: [(&str, Option<Vec<&str>>, &str); 3] = [
        (
            "spec.selector.instanceIds",
            selector.instance_ids.as_ref().map(|v| v.iter().map(|i| i.0.as_str()).collect()),
            "i-",
        ),
        ("spec.selector.vpcIds", selector.vpc_ids.as_ref().map(|v| v.iter().map(|i| i.0.as_str()).collect()), "vpc-"),
        (
            "spec.selector.subnetIds",
            selector.subnet_ids.as_ref().map(|v| v.iter().map(|i| i.0.as_str()).collect()),
            "subnet-",
        ),
    ];
    for (field, ids, prefix) in id_lists {
        let Some(ids) = ids else { continue };
        if ids.is_empty() {
            reject(field, "empty list: remove the field or name at least one id".into());
        }
        for (index, id) in ids.iter().enumerate() {
            if !has_id_shape(id, prefix) {
                reject(
                    &format!("{field}[{index}]"),
                    format!("invalid id {id:?}: expected {prefix} followed by 8 to 17 lowercase hex digits"),
                );
            }
        }
    }
    if let Some(zones) = &selector.availability_zones {
        if zones.is_empty() {
            reject("spec.selector.availabilityZones", "empty list: remove the field or name at least one zone".into());
        }
    }
    if let Some(tags) = &selector.tags {
        if tags.match_labels.is_empty() && tags.match_expressions.is_empty() {
            reject(
                "spec.selector.tags",
                "empty tag selector: set matchLabels or matchExpressions, or remove tags".into(),
            );
        }
        for (index, requirement) in tags.match_expressions.iter().enumerate() {
            let field = format!("spec.selector.tags.matchExpressions[{index}]");
            if requirement.key.is_empty() {
                reject(&format!("{field}.key"), "missing: name the tag key".into());
            }
            match requirement.operator {
                TagOperator::In | TagOperator::NotIn if requirement.values.is_empty() => reject(
                    &format!("{field}.values"),
                    format!("missing: operator {:?} needs at least one value", requirement.operator),
                ),
                TagOperator::Exists | TagOperator::DoesNotExist if !requirement.values.is_empty() => reject(
                    &format!("{field}.values"),
                    format!("must be empty for operator {:?}: remove the values", requirement.operator),
                ),
                _ => {}
            }
        }
    }

    let session = &spec.session;
    if let Some(number) = session.number {
        if !(1..=32766).contains(&number) {
            reject(
                "spec.session.number",
                format!("{number} is out of range: use 1 to 32766, or omit it to take the lowest free number"),
            );
        }
    }
    if let Some(length) = session.packet_length {
        if !(1..=8500).contains(&length) {
            reject(
                "spec.session.packetLength",
                format!("{length} is out of range: use 1 to 8500 bytes, or omit it to mirror whole packets"),
            );
        }
    }
    if let Some(vni) = session.virtual_network_id {
        if !(0..=16_777_215).contains(&vni) {
            reject(
                "spec.session.virtualNetworkId",
                format!("{vni} is out of range: use 0 to 16777215, or omit it to let AWS choose"),
            );
        }
    }
    if let Some(description) = &session.description {
        if description.len() > 255 {
            reject(
                "spec.session.description",
                format!("{} characters is too long: use at most 255", description.len()),
            );
        }
    }

    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> MirrorPolicy {
        serde_norway::from_str(yaml).expect("test policy parses")
    }

    const VALID: &str = r#"
apiVersion: vpcmirror.dev/v1alpha1
kind: MirrorPolicy
metadata: { name: prod-web }
spec:
  target: { id: tmt-0a1b2c3d4e5f60718 }
  filter: { id: tmf-0a1b2c3d4e5f60718 }
  selector: { tags: { matchLabels: { env: prod } } }
"#;

    #[test]
    fn valid_policy_passes() {
        assert_eq!(validate(&policy(VALID)), Ok(()));
    }

    #[test]
    fn packet_length_out_of_range() {
        let mut invalid = policy(VALID);
        invalid.spec.session.packet_length = Some(9000);
        let errors = validate(&invalid).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.session.packetLength");
        assert!(errors[0].message.contains("1 to 8500"), "{}", errors[0].message);
    }

    #[test]
    fn empty_selector_rejected() {
        let mut invalid = policy(VALID);
        invalid.spec.selector = Default::default();
        let errors = validate(&invalid).unwrap_err();
        assert_eq!(errors[0].field, "spec.selector");
    }

    #[test]
    fn bad_ids_named_by_index() {
        let mut invalid = policy(VALID);
        invalid.spec.target.id = "traf-mir-tar-123".into();
        invalid.spec.selector.vpc_ids =
            Some(vec![crate::policy::VpcId("vpc-0a1b2c3d".into()), crate::policy::VpcId("vpc-XYZ".into())]);
        let fields: Vec<String> = validate(&invalid).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["spec.target.id", "spec.selector.vpcIds[1]"]);
    }

    #[test]
    fn in_operator_needs_values() {
        let mut invalid = policy(VALID);
        invalid.spec.selector.tags.as_mut().unwrap().match_expressions.push(crate::policy::TagRequirement {
            key: "team".into(),
            operator: TagOperator::In,
            values: vec![],
        });
        let errors = validate(&invalid).unwrap_err();
        assert_eq!(errors[0].field, "spec.selector.tags.matchExpressions[0].values");
    }
}
