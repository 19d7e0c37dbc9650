//! CreateTags and DeleteTags: selection by tag may have changed for the tagged instances.

use serde_json::Value;

use super::{Outcome, insert_id, request_parameters};
use crate::events::classification::{EventScope, IgnoreReason};
use crate::events::fields::{INSTANCE_PREFIX, Malformed, ids_of_elements, member};

/// Reads `requestParameters.resourcesSet.items[].resourceId` and keeps the instance ids. Policies
/// select instances by their tags, so tags on other resources, interfaces included, change no
/// selection.
pub(crate) fn parse(detail: &Value) -> Result<Outcome, Malformed> {
    let request = request_parameters(detail).ok_or_else(|| Malformed::missing("detail.requestParameters"))?;
    let path = "detail.requestParameters.resourcesSet";
    let resources = member(request, "resourcesSet").ok_or_else(|| Malformed::missing(path))?;
    let resource_ids = ids_of_elements(Some(resources), "resourceId", path)?;

    let mut scope = EventScope::default();
    let id_path = format!("{path}[].resourceId");
    for resource_id in &resource_ids {
        if resource_id.starts_with(INSTANCE_PREFIX) {
            insert_id(&mut scope.instance_ids, resource_id, INSTANCE_PREFIX, &id_path)?;
        }
    }
    if scope.is_empty() && !resource_ids.is_empty() {
        return Ok(Outcome::Ignore(IgnoreReason::NotAnInstance));
    }
    Ok(Outcome::Wake(scope))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::classification::InvalidReason;
    use crate::events::kinds::test_support::{cloudtrail_detail, ids, malformed, woken_scope};

    fn tag_request(resource_ids: &[&str]) -> Value {
        let items: Vec<Value> = resource_ids.iter().map(|id| json!({"resourceId": id})).collect();
        json!({
            "resourcesSet": {"items": items},
            "tagSet": {"items": [{"key": "env", "value": "prod"}]}
        })
    }

    #[test]
    fn tags_keep_only_instances() {
        let request = tag_request(&["i-0bb22cc33dd44ee05", "eni-0bb22cc33dd44ee55", "sg-0bb22cc33dd44ee66"]);
        for event_name in ["CreateTags", "DeleteTags"] {
            let detail = cloudtrail_detail(event_name, request.clone(), json!({"_return": true}));
            let scope = woken_scope(parse, &detail);
            assert_eq!(scope.instance_ids, ids(&["i-0bb22cc33dd44ee05"]), "{event_name}");
            assert!(scope.network_interface_ids.is_empty(), "{event_name}");
        }
    }

    #[test]
    fn tags_on_interfaces_only() {
        let request = tag_request(&["eni-0bb22cc33dd44ee55", "subnet-0a1b2c3d4e5f60011"]);
        let detail = cloudtrail_detail("DeleteTags", request, json!({"_return": true}));
        assert_eq!(parse(&detail), Ok(Outcome::Ignore(IgnoreReason::NotAnInstance)));
    }

    #[test]
    fn tags_single_resource_as_object() {
        let request = json!({"resourcesSet": {"items": {"resourceId": "i-0bb22cc33dd44ee05"}}});
        let scope = woken_scope(parse, &cloudtrail_detail("CreateTags", request, json!(null)));
        assert_eq!(scope.instance_ids, ids(&["i-0bb22cc33dd44ee05"]));
    }

    #[test]
    fn tags_without_resources_set() {
        let request = json!({"tagSet": {"items": [{"key": "env", "value": "prod"}]}});
        let error = malformed(parse, &cloudtrail_detail("CreateTags", request, json!(null)));
        assert_eq!(error.reason, InvalidReason::MissingField);
    }

    #[test]
    fn tags_with_empty_resources_set() {
        let request = json!({"resourcesSet": {}});
        let outcome = parse(&cloudtrail_detail("CreateTags", request, json!(null)));
        assert_eq!(outcome, Ok(Outcome::Wake(EventScope::default())));
    }
}
