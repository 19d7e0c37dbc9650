//! CreateFleet: instances launched by an EC2 Fleet of type `instant`, as Karpenter launches them.

use serde_json::Value;

use super::{Outcome, insert_id, response_elements};
use crate::events::classification::EventScope;
use crate::events::fields::{INSTANCE_PREFIX, Malformed, action_block, list_elements, member, string_elements};

/// Reads `responseElements.CreateFleetResponse.fleetInstanceSet.item[].instanceIds.item[]`.
///
/// The EC2 API reference (CreateFleet, CreateFleetInstance) documents `fleetInstanceSet` as the
/// instances of an `instant` fleet, each entry with a list `instanceIds`. A published CloudTrail
/// excerpt of a Karpenter launch shows the XML-to-JSON shape of one launch: `item` is an object
/// and `instanceIds.item` a single string. A fleet of type `maintain` or `request` lists no
/// instances, so its event wakes nothing, and its instances wake reconciles through their own
/// state-change notifications.
///
/// NOTE: no complete CloudTrail CreateFleet record was available. The `CreateFleetResponse`
/// wrapper comes from the aws.ec2 CloudTrail schema in AWS CDK's generated event bindings, so
/// a response without it is read as well.
pub(crate) fn parse(detail: &Value) -> Result<Outcome, Malformed> {
    let response = action_block(response_elements(detail), "CreateFleetResponse")
        .ok_or_else(|| Malformed::missing("detail.responseElements"))?;
    let fleet_path = "detail.responseElements.CreateFleetResponse.fleetInstanceSet";
    let ids_path = format!("{fleet_path}[].instanceIds");

    let mut scope = EventScope::default();
    for launch in list_elements(member(response, "fleetInstanceSet"), fleet_path)? {
        if !launch.is_object() {
            return Err(Malformed::wrong_type(&format!("{fleet_path}[]"), "an object", launch));
        }
        for instance_id in string_elements(member(launch, "instanceIds"), &ids_path)? {
            insert_id(&mut scope.instance_ids, instance_id, INSTANCE_PREFIX, &ids_path)?;
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

    fn instant_fleet_request() -> Value {
        json!({"CreateFleetRequest": {
            "Type": "instant",
            "TargetCapacitySpecification": {"TotalTargetCapacity": "1", "DefaultTargetCapacityType": "spot"}
        }})
    }

    #[test]
    fn create_fleet_one_launch_as_objects() {
        // The shape of one launch follows a published excerpt of a CloudTrail record of a
        // Karpenter launch. The wrapper and the surrounding fields are not verified.
        let response = json!({"CreateFleetResponse": {
            "requestId": "5b1c0d7e-0000-4000-8000-000000000011",
            "fleetId": "fleet-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
            "errorSet": "",
            "fleetInstanceSet": {"item": {
                "lifecycle": "spot",
                "instanceType": "m5.large",
                "instanceIds": {"item": "i-0dd44ee55ff660701"}
            }}
        }});
        let detail = cloudtrail_detail("CreateFleet", instant_fleet_request(), response);
        let scope = woken_scope(parse, &detail);
        assert_eq!(scope.instance_ids, ids(&["i-0dd44ee55ff660701"]));
    }

    #[test]
    fn create_fleet_several_launches_as_lists() {
        // A fleet of two instance types, three instances. Lists of several elements are arrays
        // under `item`, which is not verified against a real record.
        let response = json!({"CreateFleetResponse": {
            "fleetId": "fleet-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
            "fleetInstanceSet": {"item": [
                {"instanceType": "m5.large", "instanceIds": {"item": ["i-0dd44ee55ff660701", "i-0dd44ee55ff660702"]}},
                {"instanceType": "c5.large", "instanceIds": {"item": "i-0dd44ee55ff660703"}}
            ]}
        }});
        let scope = woken_scope(parse, &cloudtrail_detail("CreateFleet", instant_fleet_request(), response));
        assert_eq!(scope.instance_ids, ids(&["i-0dd44ee55ff660701", "i-0dd44ee55ff660702", "i-0dd44ee55ff660703"]));
    }

    #[test]
    fn create_fleet_without_wrapper() {
        let response = json!({"fleetInstanceSet": {"items": [{"instanceIds": ["i-0dd44ee55ff660701"]}]}});
        let scope = woken_scope(parse, &cloudtrail_detail("CreateFleet", json!({}), response));
        assert_eq!(scope.instance_ids, ids(&["i-0dd44ee55ff660701"]));
    }

    #[test]
    fn create_fleet_maintain_names_nothing() {
        let request = json!({"CreateFleetRequest": {"Type": "maintain"}});
        let response = json!({"CreateFleetResponse": {"fleetId": "fleet-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"}});
        let outcome = parse(&cloudtrail_detail("CreateFleet", request, response));
        assert_eq!(outcome, Ok(Outcome::Wake(EventScope::default())));
    }

    #[test]
    fn create_fleet_numeric_instance_id() {
        let response = json!({"CreateFleetResponse": {"fleetInstanceSet": {"item": {"instanceIds": {"item": 5}}}}});
        let error = malformed(parse, &cloudtrail_detail("CreateFleet", json!({}), response));
        assert_eq!(error.reason, InvalidReason::WrongType);
    }
}
