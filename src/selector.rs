//! Instance selection: which instances a policy's selector picks.

use std::collections::BTreeMap;

use crate::aws::model::Instance;
use crate::policy::{InstanceSelector, TagOperator, TagSelector};

/// Returns whether the selector picks the instance. Every field that is set must match.
pub fn selects(selector: &InstanceSelector, instance: &Instance) -> bool {
    if let Some(ids) = &selector.instance_ids {
        if !ids.iter().any(|id| id.0 == instance.id) {
            return false;
        }
    }
    if let Some(vpc_ids) = &selector.vpc_ids {
        if !vpc_ids.iter().any(|id| Some(&id.0) == instance.vpc_id.as_ref()) {
            return false;
        }
    }
    if let Some(subnet_ids) = &selector.subnet_ids {
        if !subnet_ids.iter().any(|id| Some(&id.0) == instance.subnet_id.as_ref()) {
            return false;
        }
    }
    if let Some(zones) = &selector.availability_zones {
        if !zones.iter().any(|zone| Some(&zone.0) == instance.availability_zone.as_ref()) {
            return false;
        }
    }
    if let Some(tags) = &selector.tags {
        if !matches_tags(tags, &instance.tags) {
            return false;
        }
    }
    true
}

/// Applies Kubernetes label-selector rules to EC2 tags.
pub fn matches_tags(selector: &TagSelector, tags: &BTreeMap<String, String>) -> bool {
    let labels_match = selector.match_labels.iter().all(|(key, value)| tags.get(key) == Some(value));
    labels_match
        && selector.match_expressions.iter().all(|requirement| {
            let value = tags.get(&requirement.key);
            match requirement.operator {
                TagOperator::In => value.is_some_and(|v| requirement.values.contains(v)),
                TagOperator::NotIn => value.is_none_or(|v| !requirement.values.contains(v)),
                TagOperator::Exists => value.is_some(),
                TagOperator::DoesNotExist => value.is_none(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AvailabilityZone, InstanceId, TagRequirement, VpcId};

    fn instance(tags: &[(&str, &str)]) -> Instance {
        Instance {
            id: "i-0aa11bb22cc33dd01".into(),
            instance_type: "m5.large".into(),
            state: "running".into(),
            vpc_id: Some("vpc-0a1b2c3d".into()),
            subnet_id: Some("subnet-0a1b2c3d".into()),
            availability_zone: Some("us-east-1a".into()),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            network_interfaces: vec![],
        }
    }

    fn requirement(key: &str, operator: TagOperator, values: &[&str]) -> TagRequirement {
        TagRequirement { key: key.into(), operator, values: values.iter().map(|v| v.to_string()).collect() }
    }

    fn by_tags(labels: &[(&str, &str)], expressions: Vec<TagRequirement>) -> InstanceSelector {
        InstanceSelector {
            tags: Some(TagSelector {
                match_labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                match_expressions: expressions,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn match_labels_need_equal_values() {
        let selector = by_tags(&[("env", "prod")], vec![]);
        assert!(selects(&selector, &instance(&[("env", "prod")])));
        assert!(!selects(&selector, &instance(&[("env", "dev")])));
        assert!(!selects(&selector, &instance(&[])));
    }

    #[test]
    fn expression_operators() {
        let cases = [
            (TagOperator::In, vec!["web", "api"], vec![("team", "web")], true),
            (TagOperator::In, vec!["web", "api"], vec![("team", "db")], false),
            (TagOperator::In, vec!["web"], vec![], false),
            (TagOperator::NotIn, vec!["db"], vec![("team", "web")], true),
            (TagOperator::NotIn, vec!["db"], vec![("team", "db")], false),
            (TagOperator::NotIn, vec!["db"], vec![], true),
            (TagOperator::Exists, vec![], vec![("team", "")], true),
            (TagOperator::Exists, vec![], vec![], false),
            (TagOperator::DoesNotExist, vec![], vec![], true),
            (TagOperator::DoesNotExist, vec![], vec![("team", "web")], false),
        ];
        for (operator, values, tags, expected) in cases {
            let selector = by_tags(&[], vec![requirement("team", operator, &values)]);
            assert_eq!(selects(&selector, &instance(&tags)), expected, "{operator:?} {values:?} on {tags:?}");
        }
    }

    #[test]
    fn all_fields_must_match() {
        let mut selector = by_tags(&[("env", "prod")], vec![]);
        selector.vpc_ids = Some(vec![VpcId("vpc-0a1b2c3d".into())]);
        selector.availability_zones = Some(vec![AvailabilityZone("us-east-1b".into())]);
        assert!(!selects(&selector, &instance(&[("env", "prod")])));
        selector.availability_zones = Some(vec![AvailabilityZone("us-east-1a".into())]);
        assert!(selects(&selector, &instance(&[("env", "prod")])));
    }

    #[test]
    fn instance_ids_are_alternatives() {
        let selector = InstanceSelector {
            instance_ids: Some(vec![
                InstanceId("i-0ffffffffffffffff".into()),
                InstanceId("i-0aa11bb22cc33dd01".into()),
            ]),
            ..Default::default()
        };
        assert!(selects(&selector, &instance(&[])));
    }
}
