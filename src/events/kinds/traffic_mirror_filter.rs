//! DeleteTrafficMirrorFilter: the filter of a policy may be gone.

use serde_json::Value;

use super::{Outcome, insert_id, wrapped_request_id, wrapped_response_id};
use crate::events::classification::EventScope;
use crate::events::fields::{FILTER_PREFIX, Malformed};

/// Reads `requestParameters.DeleteTrafficMirrorFilterRequest.TrafficMirrorFilterId`, or
/// `responseElements.DeleteTrafficMirrorFilterResponse.trafficMirrorFilterId` without it.
pub(crate) fn parse_delete(detail: &Value) -> Result<Outcome, Malformed> {
    let action = "DeleteTrafficMirrorFilter";
    let found = match wrapped_request_id(detail, action, "TrafficMirrorFilterId")? {
        Some(found) => Some(found),
        None => wrapped_response_id(detail, action, &["trafficMirrorFilterId"])?,
    };
    let path = "detail.requestParameters.DeleteTrafficMirrorFilterRequest.TrafficMirrorFilterId";
    let found = found.ok_or_else(|| Malformed::missing(path))?;

    let mut scope = EventScope::default();
    insert_id(&mut scope.filter_ids, found.id, FILTER_PREFIX, &found.path)?;
    Ok(Outcome::Wake(scope))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::classification::InvalidReason;
    use crate::events::kinds::test_support::{cloudtrail_detail, ids, malformed, woken_scope};

    #[test]
    fn delete_filter_from_request() {
        // Shaped like a DeleteTrafficMirrorTarget record with the filter in place of the target.
        // No real DeleteTrafficMirrorFilter record was available.
        let request = json!({"DeleteTrafficMirrorFilterRequest": {"TrafficMirrorFilterId": "tmf-0ff6600770088003"}});
        let response = json!({"DeleteTrafficMirrorFilterResponse": {
            "requestId": "5b1c0d7e-0000-4000-8000-000000000009",
            "trafficMirrorFilterId": "tmf-0ff6600770088003"
        }});
        let scope = woken_scope(parse_delete, &cloudtrail_detail("DeleteTrafficMirrorFilter", request, response));
        assert_eq!(scope.filter_ids, ids(&["tmf-0ff6600770088003"]));
    }

    #[test]
    fn delete_filter_without_id() {
        let detail = cloudtrail_detail("DeleteTrafficMirrorFilter", json!({}), json!({}));
        let error = malformed(parse_delete, &detail);
        assert_eq!(error.reason, InvalidReason::MissingField);
    }
}
