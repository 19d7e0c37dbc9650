//! RunInstances: new instances, named with their network interfaces in the response.

use serde_json::Value;

use super::{Outcome, insert_id, response_elements};
use crate::events::classification::EventScope;
use crate::events::fields::{
    INSTANCE_PREFIX, Malformed, NETWORK_INTERFACE_PREFIX, ids_of_elements, list_elements, member, optional_string,
};

/// Reads `responseElements.instancesSet.items[].instanceId` and the
/// `networkInterfaceSet.items[].networkInterfaceId` of each instance. The request names no
/// instance ids, so a record without the response cannot be handled.
pub(crate) fn parse(detail: &Value) -> Result<Outcome, Malformed> {
    let response = response_elements(detail).ok_or_else(|| Malformed::missing("detail.responseElements"))?;
    let instances_path = "detail.responseElements.instancesSet";
    let instances = member(response, "instancesSet").ok_or_else(|| Malformed::missing(instances_path))?;

    let mut scope = EventScope::default();
    for instance in list_elements(Some(instances), instances_path)? {
        if !instance.is_object() {
            return Err(Malformed::wrong_type(&format!("{instances_path}[]"), "an object", instance));
        }
        let instance_id_path = format!("{instances_path}[].instanceId");
        if let Some(instance_id) = optional_string(instance, "instanceId", &instance_id_path)? {
            insert_id(&mut scope.instance_ids, instance_id, INSTANCE_PREFIX, &instance_id_path)?;
        }
        let interfaces_path = format!("{instances_path}[].networkInterfaceSet");
        let interface_id_path = format!("{interfaces_path}[].networkInterfaceId");
        let interfaces = member(instance, "networkInterfaceSet");
        for interface_id in ids_of_elements(interfaces, "networkInterfaceId", &interfaces_path)? {
            insert_id(&mut scope.network_interface_ids, interface_id, NETWORK_INTERFACE_PREFIX, &interface_id_path)?;
        }
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
    fn run_instances_single_instance_as_object() {
        // Shaped like a CloudTrail RunInstances record of one instance, with the list of one
        // element written as an object, as CloudTrail does for some XML lists. Whether a real
        // RunInstances record ever does this was not verified.
        let response = json!({
            "instancesSet": {"items": {
                "instanceId": "i-0aa11bb22cc33dd09",
                "networkInterfaceSet": {"items": {"networkInterfaceId": "eni-0aa11bb22cc33dd91"}}
            }}
        });
        let detail = cloudtrail_detail("RunInstances", json!({}), response);
        let scope = woken_scope(parse, &detail);
        assert_eq!(scope.instance_ids, ids(&["i-0aa11bb22cc33dd09"]));
        assert_eq!(scope.network_interface_ids, ids(&["eni-0aa11bb22cc33dd91"]));
    }

    #[test]
    fn run_instances_without_interface_set() {
        let response = json!({"instancesSet": {"items": [{"instanceId": "i-0aa11bb22cc33dd09"}]}});
        let scope = woken_scope(parse, &cloudtrail_detail("RunInstances", json!({}), response));
        assert_eq!(scope.instance_ids, ids(&["i-0aa11bb22cc33dd09"]));
        assert!(scope.network_interface_ids.is_empty());
    }

    #[test]
    fn run_instances_null_response_is_missing() {
        let detail = cloudtrail_detail("RunInstances", json!({}), json!(null));
        let error = malformed(parse, &detail);
        assert_eq!(error.reason, InvalidReason::MissingField);
        assert!(error.detail.contains("responseElements"), "{}", error.detail);
    }

    #[test]
    fn run_instances_numeric_instance_id() {
        let response = json!({"instancesSet": {"items": [{"instanceId": 17}]}});
        let error = malformed(parse, &cloudtrail_detail("RunInstances", json!({}), response));
        assert_eq!(error.reason, InvalidReason::WrongType);
    }

    #[test]
    fn run_instances_malformed_instance_id() {
        let response = json!({"instancesSet": {"items": [{"instanceId": "i-*"}]}});
        let error = malformed(parse, &cloudtrail_detail("RunInstances", json!({}), response));
        assert_eq!(error.reason, InvalidReason::MalformedId);
    }
}
