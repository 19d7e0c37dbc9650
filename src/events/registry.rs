//! The registry of handled events: it maps (source, detail-type) and, for CloudTrail records,
//! the event name to an event kind and its parser.

use super::classification::{Classification, IgnoreReason, WakeEvent};
use super::envelope::{Envelope, text};
use super::fields::{Malformed, member, optional_string};
use super::kind::EventKind;
use super::kinds::{self, Outcome, Parser};

/// Returns the kind registered for the envelope fields, if any. The registry has 16 entries,
/// so a linear scan over `EventKind::ALL` is as fast as a map and cannot drift from it.
pub(crate) fn lookup(source: &str, detail_type: &str, event_name: Option<&str>) -> Option<EventKind> {
    EventKind::ALL.into_iter().find(|kind| {
        let key = kind.registry_key();
        key.source == source && key.detail_type == detail_type && key.event_name == event_name
    })
}

/// Returns true when the kinds registered for (source, detail-type) are distinguished by the
/// CloudTrail event name.
fn keyed_by_event_name(source: &str, detail_type: &str) -> bool {
    EventKind::ALL.into_iter().any(|kind| {
        let key = kind.registry_key();
        key.source == source && key.detail_type == detail_type && key.event_name.is_some()
    })
}

/// Returns the parser of a kind.
pub(crate) fn parser(kind: EventKind) -> Parser {
    match kind {
        EventKind::RunInstances => kinds::run_instances::parse,
        EventKind::CreateFleet => kinds::create_fleet::parse,
        EventKind::StartInstances => kinds::start_instances::parse,
        EventKind::InstanceRunning => kinds::instance_running::parse,
        EventKind::AttachNetworkInterface => kinds::attach_network_interface::parse,
        EventKind::DetachNetworkInterface => kinds::detach_network_interface::parse,
        EventKind::CreateTags | EventKind::DeleteTags => kinds::tags::parse,
        EventKind::ModifyInstanceAttribute => kinds::modify_instance_attribute::parse,
        EventKind::DeleteTrafficMirrorSession => kinds::traffic_mirror_session::parse_delete,
        EventKind::ModifyTrafficMirrorSession => kinds::traffic_mirror_session::parse_modify,
        EventKind::DeleteTrafficMirrorTarget => kinds::traffic_mirror_target::parse_delete,
        EventKind::DeleteTrafficMirrorFilter => kinds::traffic_mirror_filter::parse_delete,
        EventKind::CreateTrafficMirrorFilterRule => kinds::traffic_mirror_filter_rule::parse_create,
        EventKind::ModifyTrafficMirrorFilterRule => kinds::traffic_mirror_filter_rule::parse_modify,
        EventKind::DeleteTrafficMirrorFilterRule => kinds::traffic_mirror_filter_rule::parse_delete,
    }
}

/// Classifies a parsed envelope: finds its kind, skips failed calls and runs the parser.
pub(crate) fn classify_envelope(envelope: &Envelope) -> Result<Classification, Malformed> {
    let detail = envelope.detail.as_ref();
    let event_name = if keyed_by_event_name(&envelope.source, &envelope.detail_type) {
        let detail = detail.ok_or_else(|| Malformed::missing("detail"))?;
        if !detail.is_object() {
            return Err(Malformed::wrong_type("detail", "an object", detail));
        }
        let path = "detail.eventName";
        Some(optional_string(detail, "eventName", path)?.ok_or_else(|| Malformed::missing(path))?)
    } else {
        None
    };

    let Some(kind) = lookup(&envelope.source, &envelope.detail_type, event_name) else {
        return Ok(Classification::Ignored { kind: None, reason: IgnoreReason::UnhandledKind });
    };
    let detail = detail.ok_or_else(|| Malformed::missing("detail"))?;
    if !detail.is_object() {
        return Err(Malformed::wrong_type("detail", "an object", detail));
    }
    // A failed call changed nothing. Its responseElements are usually null, so the parser
    // would report the record as malformed.
    if kind.registry_key().event_name.is_some() && member(detail, "errorCode").is_some() {
        return Ok(Classification::Ignored { kind: Some(kind), reason: IgnoreReason::FailedApiCall });
    }

    let classification = match parser(kind)(detail)? {
        Outcome::Wake(scope) if scope.is_empty() => {
            Classification::Ignored { kind: Some(kind), reason: IgnoreReason::NothingNamed }
        }
        Outcome::Wake(scope) => Classification::Wake(WakeEvent {
            kind,
            scope,
            event_id: envelope.id.clone(),
            region: envelope.region.clone().or_else(|| text(member(detail, "awsRegion"))),
            account: envelope.account.clone().or_else(|| text(member(detail, "recipientAccountId"))),
            time: envelope.time.clone(),
            event_time: text(member(detail, "eventTime")),
        }),
        Outcome::Ignore(reason) => Classification::Ignored { kind: Some(kind), reason },
    };
    Ok(classification)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;
    use crate::events::envelope::parse_envelope;
    use crate::events::kind::{CLOUDTRAIL_DETAIL_TYPE, EC2_SOURCE, STATE_CHANGE_DETAIL_TYPE};

    fn classify_value(body: &Value) -> Result<Classification, Malformed> {
        let envelope = parse_envelope(body.to_string().as_bytes())?;
        classify_envelope(&envelope)
    }

    #[test]
    fn registry_keys_are_unique() {
        let keys: BTreeSet<_> = EventKind::ALL.into_iter().map(EventKind::registry_key).collect();
        assert_eq!(keys.len(), EventKind::ALL.len());
    }

    #[test]
    fn registry_finds_every_kind() {
        for kind in EventKind::ALL {
            let key = kind.registry_key();
            assert_eq!(lookup(key.source, key.detail_type, key.event_name), Some(kind), "{kind}");
        }
    }

    #[test]
    fn registry_ignores_other_event_names() {
        assert_eq!(lookup(EC2_SOURCE, CLOUDTRAIL_DETAIL_TYPE, Some("TerminateInstances")), None);
        assert_eq!(lookup(EC2_SOURCE, CLOUDTRAIL_DETAIL_TYPE, None), None);
        assert_eq!(lookup("aws.signin", CLOUDTRAIL_DETAIL_TYPE, Some("RunInstances")), None);
        assert_eq!(lookup(EC2_SOURCE, STATE_CHANGE_DETAIL_TYPE, None), Some(EventKind::InstanceRunning));
    }

    #[test]
    fn failed_call_is_ignored_before_parsing() {
        let body = json!({
            "source": "aws.ec2",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventName": "ModifyTrafficMirrorSession", "errorCode": "Client.InvalidTrafficMirrorSessionId.NotFound"}
        });
        let expected = Classification::Ignored {
            kind: Some(EventKind::ModifyTrafficMirrorSession),
            reason: IgnoreReason::FailedApiCall,
        };
        assert_eq!(classify_value(&body), Ok(expected));
    }

    #[test]
    fn empty_scope_is_nothing_named() {
        let body = json!({
            "source": "aws.ec2",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventName": "RunInstances", "responseElements": {"instancesSet": {}}}
        });
        let expected =
            Classification::Ignored { kind: Some(EventKind::RunInstances), reason: IgnoreReason::NothingNamed };
        assert_eq!(classify_value(&body), Ok(expected));
    }

    #[test]
    fn context_falls_back_to_cloudtrail_fields() {
        let body = json!({
            "source": "aws.ec2",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {
                "eventName": "DetachNetworkInterface",
                "awsRegion": "eu-west-1",
                "recipientAccountId": "444455556666",
                "eventTime": "2026-11-20T10:15:27Z",
                "requestParameters": {"attachmentId": "eni-attach-0cc33dd44ee55ff01"}
            }
        });
        let Ok(Classification::Wake(event)) = classify_value(&body) else {
            panic!("expected a wake for {body}");
        };
        assert_eq!(event.region.as_deref(), Some("eu-west-1"));
        assert_eq!(event.account.as_deref(), Some("444455556666"));
        assert_eq!(event.event_time.as_deref(), Some("2026-11-20T10:15:27Z"));
        assert_eq!(event.event_id, None);
        assert_eq!(event.time, None);
    }
}
