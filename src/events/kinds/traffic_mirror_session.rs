//! DeleteTrafficMirrorSession and ModifyTrafficMirrorSession: drift on a session the controller
//! may own. The consumer finds the source of the session in its session index.

use serde_json::Value;

use super::{Outcome, insert_id, wrapped_request_id, wrapped_response_id};
use crate::events::classification::EventScope;
use crate::events::fields::{Malformed, NETWORK_INTERFACE_PREFIX, SESSION_PREFIX};

const SESSION_ID_KEY: &str = "TrafficMirrorSessionId";

/// Reads `requestParameters.DeleteTrafficMirrorSessionRequest.TrafficMirrorSessionId`, or
/// `responseElements.DeleteTrafficMirrorSessionResponse.trafficMirrorSessionId` without it.
pub(crate) fn parse_delete(detail: &Value) -> Result<Outcome, Malformed> {
    let action = "DeleteTrafficMirrorSession";
    let found = match wrapped_request_id(detail, action, SESSION_ID_KEY)? {
        Some(found) => Some(found),
        None => wrapped_response_id(detail, action, &["trafficMirrorSessionId"])?,
    };
    let found = found.ok_or_else(|| Malformed::missing(&request_path(action)))?;

    let mut scope = EventScope::default();
    insert_id(&mut scope.session_ids, found.id, SESSION_PREFIX, &found.path)?;
    Ok(Outcome::Wake(scope))
}

/// Reads the session id like `parse_delete`, with the response path
/// `ModifyTrafficMirrorSessionResponse.trafficMirrorSession.trafficMirrorSessionId`, and adds
/// the source interface that the response names.
pub(crate) fn parse_modify(detail: &Value) -> Result<Outcome, Malformed> {
    let action = "ModifyTrafficMirrorSession";
    let found = match wrapped_request_id(detail, action, SESSION_ID_KEY)? {
        Some(found) => Some(found),
        None => wrapped_response_id(detail, action, &["trafficMirrorSession", "trafficMirrorSessionId"])?,
    };
    let found = found.ok_or_else(|| Malformed::missing(&request_path(action)))?;

    let mut scope = EventScope::default();
    insert_id(&mut scope.session_ids, found.id, SESSION_PREFIX, &found.path)?;
    let interface_path = ["trafficMirrorSession", "networkInterfaceId"];
    if let Some(interface) = wrapped_response_id(detail, action, &interface_path)? {
        insert_id(&mut scope.network_interface_ids, interface.id, NETWORK_INTERFACE_PREFIX, &interface.path)?;
    }
    Ok(Outcome::Wake(scope))
}

fn request_path(action: &str) -> String {
    format!("detail.requestParameters.{action}Request.{SESSION_ID_KEY}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::classification::InvalidReason;
    use crate::events::kinds::test_support::{cloudtrail_detail, ids, malformed, woken_scope};

    #[test]
    fn delete_session_from_response() {
        let response =
            json!({"DeleteTrafficMirrorSessionResponse": {"trafficMirrorSessionId": "tms-0dd44ee55ff660009"}});
        let detail = cloudtrail_detail("DeleteTrafficMirrorSession", json!(null), response);
        let scope = woken_scope(parse_delete, &detail);
        assert_eq!(scope.session_ids, ids(&["tms-0dd44ee55ff660009"]));
    }

    #[test]
    fn delete_session_without_any_id() {
        let detail = cloudtrail_detail(
            "DeleteTrafficMirrorSession",
            json!({"DeleteTrafficMirrorSessionRequest": {}}),
            json!(null),
        );
        let error = malformed(parse_delete, &detail);
        assert_eq!(error.reason, InvalidReason::MissingField);
    }

    #[test]
    fn modify_session_names_source_interface() {
        // The response shape follows the ModifyTrafficMirrorSession response of the EC2 API
        // reference, wrapped as CloudTrail wraps traffic-mirror responses. Numbers arrive as
        // strings here, which the parser does not read.
        let request = json!({"ModifyTrafficMirrorSessionRequest": {
            "TrafficMirrorSessionId": "tms-0dd44ee55ff660008",
            "SessionNumber": "2",
            "RemoveField": {"item": "packet-length"}
        }});
        let response = json!({"ModifyTrafficMirrorSessionResponse": {"trafficMirrorSession": {
            "trafficMirrorSessionId": "tms-0dd44ee55ff660008",
            "networkInterfaceId": "eni-0aa11bb22cc33dd18",
            "sessionNumber": "2"
        }}});
        let scope = woken_scope(parse_modify, &cloudtrail_detail("ModifyTrafficMirrorSession", request, response));
        assert_eq!(scope.session_ids, ids(&["tms-0dd44ee55ff660008"]));
        assert_eq!(scope.network_interface_ids, ids(&["eni-0aa11bb22cc33dd18"]));
    }

    #[test]
    fn modify_session_with_camel_case_request() {
        let request = json!({"ModifyTrafficMirrorSessionRequest": {"trafficMirrorSessionId": "tms-0dd44ee55ff660008"}});
        let scope = woken_scope(parse_modify, &cloudtrail_detail("ModifyTrafficMirrorSession", request, json!(null)));
        assert_eq!(scope.session_ids, ids(&["tms-0dd44ee55ff660008"]));
        assert!(scope.network_interface_ids.is_empty());
    }

    #[test]
    fn modify_session_with_numeric_id() {
        let request = json!({"ModifyTrafficMirrorSessionRequest": {"TrafficMirrorSessionId": 42}});
        let error = malformed(parse_modify, &cloudtrail_detail("ModifyTrafficMirrorSession", request, json!(null)));
        assert_eq!(error.reason, InvalidReason::WrongType);
    }
}
