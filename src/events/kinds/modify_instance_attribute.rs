//! ModifyInstanceAttribute: an instance type change may change whether mirroring is supported.

use serde_json::Value;

use super::{Outcome, insert_id, request_parameters};
use crate::events::classification::{EventScope, IgnoreReason};
use crate::events::fields::{INSTANCE_PREFIX, Malformed, member, optional_string};

/// The attribute name in the `attribute` form of the request.
const INSTANCE_TYPE_ATTRIBUTE: &str = "instanceType";

/// Request members that name the instance or the call rather than a changed attribute.
const NON_ATTRIBUTE_MEMBERS: [&str; 2] = ["instanceId", "dryRun"];

/// Reads `requestParameters.instanceId` and decides whether the instance type changed.
///
/// Records carry the change in one of two forms: a member per attribute, such as
/// `"instanceType": {"value": "m5.large"}`, or `"attribute": "<name>"` with a `value` that
/// CloudTrail may redact. Only an instance type change matters for mirroring, so a record that
/// shows another attribute is ignored. A record that shows no attribute at all wakes the
/// instance anyway, because a type change cannot be ruled out.
pub(crate) fn parse(detail: &Value) -> Result<Outcome, Malformed> {
    let request = request_parameters(detail).ok_or_else(|| Malformed::missing("detail.requestParameters"))?;
    let id_path = "detail.requestParameters.instanceId";
    let instance_id = optional_string(request, "instanceId", id_path)?.ok_or_else(|| Malformed::missing(id_path))?;

    if !changes_instance_type(request)? {
        return Ok(Outcome::Ignore(IgnoreReason::OtherAttribute));
    }
    let mut scope = EventScope::default();
    insert_id(&mut scope.instance_ids, instance_id, INSTANCE_PREFIX, id_path)?;
    Ok(Outcome::Wake(scope))
}

/// Returns false only when the request shows that an attribute other than the instance type
/// changed.
fn changes_instance_type(request: &Value) -> Result<bool, Malformed> {
    if member(request, INSTANCE_TYPE_ATTRIBUTE).is_some() {
        return Ok(true);
    }
    let attribute_path = "detail.requestParameters.attribute";
    if let Some(attribute) = optional_string(request, "attribute", attribute_path)? {
        return Ok(attribute == INSTANCE_TYPE_ATTRIBUTE);
    }
    let Some(members) = request.as_object() else {
        return Ok(true);
    };
    let names_other_attribute =
        members.iter().any(|(name, value)| !value.is_null() && !NON_ATTRIBUTE_MEMBERS.contains(&name.as_str()));
    Ok(!names_other_attribute)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::classification::InvalidReason;
    use crate::events::kinds::test_support::{cloudtrail_detail, ids, malformed, woken_scope};

    // The member form with `{"value": ...}` and the `attribute` form with a redacted `value`
    // follow published CloudTrail excerpts. The full records are not verified.

    #[test]
    fn instance_type_member_wakes() {
        let request = json!({"instanceId": "i-0cc33dd44ee55ff04", "instanceType": {"value": "m5.xlarge"}});
        let detail = cloudtrail_detail("ModifyInstanceAttribute", request, json!({"_return": true}));
        let scope = woken_scope(parse, &detail);
        assert_eq!(scope.instance_ids, ids(&["i-0cc33dd44ee55ff04"]));
    }

    #[test]
    fn instance_type_attribute_wakes() {
        let request = json!({
            "instanceId": "i-0cc33dd44ee55ff04",
            "attribute": "instanceType",
            "value": "<sensitiveDataRemoved>"
        });
        let detail = cloudtrail_detail("ModifyInstanceAttribute", request, json!({"_return": true}));
        let scope = woken_scope(parse, &detail);
        assert_eq!(scope.instance_ids, ids(&["i-0cc33dd44ee55ff04"]));
    }

    #[test]
    fn other_attribute_is_ignored() {
        let requests = [
            json!({"instanceId": "i-0cc33dd44ee55ff04", "attribute": "disableApiTermination", "value": "true"}),
            json!({"instanceId": "i-0cc33dd44ee55ff04", "disableApiTermination": {"value": true}}),
            json!({"instanceId": "i-0cc33dd44ee55ff04", "groupSet": {"items": [{"groupId": "sg-0abc"}]}}),
        ];
        for request in requests {
            let detail = cloudtrail_detail("ModifyInstanceAttribute", request.clone(), json!({"_return": true}));
            assert_eq!(parse(&detail), Ok(Outcome::Ignore(IgnoreReason::OtherAttribute)), "{request}");
        }
    }

    #[test]
    fn unknown_attribute_wakes() {
        let request = json!({"instanceId": "i-0cc33dd44ee55ff04"});
        let scope = woken_scope(parse, &cloudtrail_detail("ModifyInstanceAttribute", request, json!(null)));
        assert_eq!(scope.instance_ids, ids(&["i-0cc33dd44ee55ff04"]));
    }

    #[test]
    fn attribute_without_instance_id() {
        let request = json!({"instanceType": {"value": "m5.xlarge"}});
        let error = malformed(parse, &cloudtrail_detail("ModifyInstanceAttribute", request, json!(null)));
        assert_eq!(error.reason, InvalidReason::MissingField);
    }
}
