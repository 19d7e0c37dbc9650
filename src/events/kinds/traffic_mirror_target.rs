//! DeleteTrafficMirrorTarget: the target of a policy may be gone.

use serde_json::Value;

use super::{Outcome, insert_id, wrapped_request_id, wrapped_response_id};
use crate::events::classification::EventScope;
use crate::events::fields::{Malformed, TARGET_PREFIX};

/// Reads `requestParameters.DeleteTrafficMirrorTargetRequest.TrafficMirrorTargetId`, or
/// `responseElements.DeleteTrafficMirrorTargetResponse.trafficMirrorTargetId` without it.
pub(crate) fn parse_delete(detail: &Value) -> Result<Outcome, Malformed> {
    let action = "DeleteTrafficMirrorTarget";
    let found = match wrapped_request_id(detail, action, "TrafficMirrorTargetId")? {
        Some(found) => Some(found),
        None => wrapped_response_id(detail, action, &["trafficMirrorTargetId"])?,
    };
    let path = "detail.requestParameters.DeleteTrafficMirrorTargetRequest.TrafficMirrorTargetId";
    let found = found.ok_or_else(|| Malformed::missing(path))?;

    let mut scope = EventScope::default();
    insert_id(&mut scope.target_ids, found.id, TARGET_PREFIX, &found.path)?;
    Ok(Outcome::Wake(scope))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::classification::InvalidReason;
    use crate::events::kinds::test_support::{cloudtrail_detail, ids, malformed, woken_scope};

    #[test]
    fn delete_target_from_response() {
        let response = json!({"DeleteTrafficMirrorTargetResponse": {"trafficMirrorTargetId": "tmt-0ee55ff6600770007"}});
        let scope = woken_scope(parse_delete, &cloudtrail_detail("DeleteTrafficMirrorTarget", json!({}), response));
        assert_eq!(scope.target_ids, ids(&["tmt-0ee55ff6600770007"]));
    }

    #[test]
    fn delete_target_with_moto_style_id() {
        // moto names targets `traf-mir-tar-...`, but only AWS sends events, and AWS uses `tmt-...`.
        let request = json!({"DeleteTrafficMirrorTargetRequest": {"TrafficMirrorTargetId": "traf-mir-tar-0ee55ff6"}});
        let error = malformed(parse_delete, &cloudtrail_detail("DeleteTrafficMirrorTarget", request, json!(null)));
        assert_eq!(error.reason, InvalidReason::MalformedId);
    }
}
