//! CreateTrafficMirrorFilterRule, ModifyTrafficMirrorFilterRule and DeleteTrafficMirrorFilterRule:
//! the filter of a policy changed.
//!
//! A rule change does not change which sessions should exist, only what they mirror. So when a
//! record does not name the filter, the event is ignored as `NothingNamed` rather than waking
//! every policy of the region, and the resync timer re-checks the filter.

use serde_json::Value;

use super::{FoundId, Outcome, insert_id, wrapped_request_id, wrapped_response_id};
use crate::events::classification::EventScope;
use crate::events::fields::{FILTER_PREFIX, Malformed};

const FILTER_ID_KEY: &str = "TrafficMirrorFilterId";

/// The filter id path of the rule in Create and Modify responses, which return the rule.
const RULE_FILTER_PATH: [&str; 2] = ["trafficMirrorFilterRule", "trafficMirrorFilterId"];

/// Reads `requestParameters.CreateTrafficMirrorFilterRuleRequest.TrafficMirrorFilterId`, which
/// the API requires, or the filter id of the rule in the response without it.
pub(crate) fn parse_create(detail: &Value) -> Result<Outcome, Malformed> {
    let action = "CreateTrafficMirrorFilterRule";
    let found = filter_id(detail, action)?;
    let path = format!("detail.requestParameters.{action}Request.{FILTER_ID_KEY}");
    let found = found.ok_or_else(|| Malformed::missing(&path))?;
    scope_of(found)
}

/// Reads the `trafficMirrorFilterId` of the modified rule in the response, because the request
/// names only `TrafficMirrorFilterRuleId`. Without the response the event names nothing.
pub(crate) fn parse_modify(detail: &Value) -> Result<Outcome, Malformed> {
    match filter_id(detail, "ModifyTrafficMirrorFilterRule")? {
        Some(found) => scope_of(found),
        None => Ok(Outcome::Wake(EventScope::default())),
    }
}

/// Request and response name only the rule (`TrafficMirrorFilterRuleId`), according to the EC2
/// API reference, so the event names nothing unless a record also carries a filter id.
pub(crate) fn parse_delete(detail: &Value) -> Result<Outcome, Malformed> {
    let action = "DeleteTrafficMirrorFilterRule";
    let found = match filter_id(detail, action)? {
        Some(found) => Some(found),
        None => wrapped_response_id(detail, action, &["trafficMirrorFilterId"])?,
    };
    match found {
        Some(found) => scope_of(found),
        None => Ok(Outcome::Wake(EventScope::default())),
    }
}

/// Returns the filter id from the request, or from the rule in the response.
fn filter_id<'a>(detail: &'a Value, action: &str) -> Result<Option<FoundId<'a>>, Malformed> {
    match wrapped_request_id(detail, action, FILTER_ID_KEY)? {
        Some(found) => Ok(Some(found)),
        None => wrapped_response_id(detail, action, &RULE_FILTER_PATH),
    }
}

fn scope_of(found: FoundId<'_>) -> Result<Outcome, Malformed> {
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

    // The request and response members follow the EC2 API reference of the three actions. No
    // real filter rule record was available, so the `<Action>Request` and `<Action>Response`
    // wrappers are assumed from the other traffic-mirror records.

    #[test]
    fn create_rule_names_filter() {
        let request = json!({"CreateTrafficMirrorFilterRuleRequest": {
            "TrafficMirrorFilterId": "tmf-0ff6600770088001",
            "TrafficDirection": "ingress",
            "RuleNumber": "100",
            "RuleAction": "accept",
            "DestinationCidrBlock": "0.0.0.0/0",
            "SourceCidrBlock": "0.0.0.0/0"
        }});
        let response = json!({"CreateTrafficMirrorFilterRuleResponse": {"trafficMirrorFilterRule": {
            "trafficMirrorFilterRuleId": "tmfr-0ff6600770088101",
            "trafficMirrorFilterId": "tmf-0ff6600770088001",
            "ruleNumber": 100
        }}});
        let scope = woken_scope(parse_create, &cloudtrail_detail("CreateTrafficMirrorFilterRule", request, response));
        assert_eq!(scope.filter_ids, ids(&["tmf-0ff6600770088001"]));
    }

    #[test]
    fn create_rule_without_filter() {
        let request = json!({"CreateTrafficMirrorFilterRuleRequest": {"RuleNumber": 100}});
        let error = malformed(parse_create, &cloudtrail_detail("CreateTrafficMirrorFilterRule", request, json!(null)));
        assert_eq!(error.reason, InvalidReason::MissingField);
    }

    #[test]
    fn modify_rule_names_filter_from_response() {
        let request = json!({"ModifyTrafficMirrorFilterRuleRequest": {
            "TrafficMirrorFilterRuleId": "tmfr-0ff6600770088101",
            "RuleAction": "reject"
        }});
        let response = json!({"ModifyTrafficMirrorFilterRuleResponse": {"trafficMirrorFilterRule": {
            "trafficMirrorFilterRuleId": "tmfr-0ff6600770088101",
            "trafficMirrorFilterId": "tmf-0ff6600770088002",
            "ruleAction": "reject"
        }}});
        let scope = woken_scope(parse_modify, &cloudtrail_detail("ModifyTrafficMirrorFilterRule", request, response));
        assert_eq!(scope.filter_ids, ids(&["tmf-0ff6600770088002"]));
    }

    #[test]
    fn modify_rule_without_response() {
        let request =
            json!({"ModifyTrafficMirrorFilterRuleRequest": {"TrafficMirrorFilterRuleId": "tmfr-0ff6600770088101"}});
        let outcome = parse_modify(&cloudtrail_detail("ModifyTrafficMirrorFilterRule", request, json!(null)));
        assert_eq!(outcome, Ok(Outcome::Wake(EventScope::default())));
    }

    #[test]
    fn delete_rule_names_nothing() {
        let request =
            json!({"DeleteTrafficMirrorFilterRuleRequest": {"TrafficMirrorFilterRuleId": "tmfr-0ff6600770088101"}});
        let response =
            json!({"DeleteTrafficMirrorFilterRuleResponse": {"trafficMirrorFilterRuleId": "tmfr-0ff6600770088101"}});
        let outcome = parse_delete(&cloudtrail_detail("DeleteTrafficMirrorFilterRule", request, response));
        assert_eq!(outcome, Ok(Outcome::Wake(EventScope::default())));
    }
}
