//! StartInstances: stopped instances starting again.

use serde_json::Value;

use super::{Outcome, insert_id, request_parameters, response_elements};
use crate::events::classification::EventScope;
use crate::events::fields::{INSTANCE_PREFIX, Malformed, ids_of_elements, member};

/// Reads `responseElements.instancesSet.items[].instanceId`, or the same path under
/// `requestParameters` when the response is absent. Both name the same instances.
pub(crate) fn parse(detail: &Value) -> Result<Outcome, Malformed> {
    let response_set = response_elements(detail).and_then(|response| member(response, "instancesSet"));
    let request_set = request_parameters(detail).and_then(|request| member(request, "instancesSet"));
    let (instances, path) = match (response_set, request_set) {
        (Some(set), _) => (set, "detail.responseElements.instancesSet"),
        (None, Some(set)) => (set, "detail.requestParameters.instancesSet"),
        (None, None) => return Err(Malformed::missing("detail.responseElements.instancesSet")),
    };

    let mut scope = EventScope::default();
    let id_path = format!("{path}[].instanceId");
    for instance_id in ids_of_elements(Some(instances), "instanceId", path)? {
        insert_id(&mut scope.instance_ids, instance_id, INSTANCE_PREFIX, &id_path)?;
    }
    Ok(Outcome::Wake(scope))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::classification::InvalidReason;
    use crate::events::kinds::test_support::{cloudtrail_detail, ids, malformed, woken_scope};

    #[test]
    fn start_instances_null_response_uses_request() {
        let request = json!({"instancesSet": {"items": [{"instanceId": "i-0bb22cc33dd44ee07"}]}});
        let scope = woken_scope(parse, &cloudtrail_detail("StartInstances", request, json!(null)));
        assert_eq!(scope.instance_ids, ids(&["i-0bb22cc33dd44ee07"]));
    }

    #[test]
    fn start_instances_single_item_object() {
        let response = json!({"instancesSet": {"items": {
            "instanceId": "i-0bb22cc33dd44ee08",
            "currentState": {"code": "0", "name": "pending"}
        }}});
        let scope = woken_scope(parse, &cloudtrail_detail("StartInstances", json!(null), response));
        assert_eq!(scope.instance_ids, ids(&["i-0bb22cc33dd44ee08"]));
    }

    #[test]
    fn start_instances_without_any_set() {
        let error = malformed(parse, &cloudtrail_detail("StartInstances", json!({}), json!({})));
        assert_eq!(error.reason, InvalidReason::MissingField);
    }
}
