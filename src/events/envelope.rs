//! The EventBridge envelope around every message: `version`, `id`, `detail-type`, `source`,
//! `account`, `time`, `region`, `resources` and `detail`.

use serde_json::{Map, Value};

use super::classification::InvalidReason;
use super::fields::{Malformed, member, type_name};

/// Maximum size of a message body in bytes. EventBridge limits an event entry to 256 KB
/// (Amazon EventBridge User Guide, "Calculating PutEvents event entry size"), and the delivered
/// event adds the envelope keys on top, so 4 KiB of room is added for them. Larger bodies are
/// rejected before parsing.
pub const MAX_BODY_BYTES: usize = 260 * 1024;

/// The envelope fields of one message, with `detail` left as JSON for the parser of its kind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Envelope {
    pub source: String,
    pub detail_type: String,
    pub id: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub time: Option<String>,
    /// `detail`, or None when it is absent or null.
    pub detail: Option<Value>,
}

/// Parses a message body into its envelope.
pub(crate) fn parse_envelope(body: &[u8]) -> Result<Envelope, Malformed> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Malformed {
            reason: InvalidReason::TooLarge,
            detail: format!("the body has {} bytes, more than the maximum of {MAX_BODY_BYTES}", body.len()),
        });
    }
    // serde_json rejects nesting deeper than 128 levels, so a hostile body cannot exhaust the stack.
    let value: Value = serde_json::from_slice(body).map_err(|error| Malformed {
        reason: InvalidReason::NotJson,
        detail: format!("the body is not valid JSON: {error}"),
    })?;
    let Value::Object(mut members) = value else {
        return Err(not_an_envelope(format!("the body is {}, not a JSON object", type_name(&value))));
    };

    let source = envelope_string(&members, "source")?;
    let detail_type = envelope_string(&members, "detail-type")?;
    let detail = members.remove("detail").filter(|detail| !detail.is_null());
    let envelope = Value::Object(members);
    Ok(Envelope {
        source,
        detail_type,
        id: text(member(&envelope, "id")),
        account: text(member(&envelope, "account")),
        region: text(member(&envelope, "region")),
        time: text(member(&envelope, "time")),
        detail,
    })
}

/// Returns a required string member of the envelope.
fn envelope_string(members: &Map<String, Value>, key: &str) -> Result<String, Malformed> {
    match members.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(other) => Err(not_an_envelope(format!("`{key}` is {}, not a non-empty string", type_name(other)))),
        None if members.contains_key("Type") && members.contains_key("Message") => Err(not_an_envelope(format!(
            "`{key}` is missing, and the body looks like an SNS notification: \
             enable raw message delivery on the SNS subscription"
        ))),
        None => Err(not_an_envelope(format!("`{key}` is missing"))),
    }
}

fn not_an_envelope(detail: String) -> Malformed {
    Malformed { reason: InvalidReason::NotAnEnvelope, detail: format!("not an EventBridge event: {detail}") }
}

/// Returns a string or number as text, or None for other values. Optional context fields such
/// as `account` may arrive as numbers.
pub(crate) fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_reads_context_fields() {
        let body = br#"{"id": "e-1", "source": "aws.ec2", "detail-type": "X", "account": 111122223333,
            "region": "us-east-1", "time": "2026-11-20T10:15:30Z", "detail": {"a": 1}}"#;
        let envelope = parse_envelope(body).expect("the body is an envelope");
        assert_eq!(envelope.source, "aws.ec2");
        assert_eq!(envelope.detail_type, "X");
        assert_eq!(envelope.id.as_deref(), Some("e-1"));
        assert_eq!(envelope.account.as_deref(), Some("111122223333"));
        assert_eq!(envelope.region.as_deref(), Some("us-east-1"));
        assert_eq!(envelope.time.as_deref(), Some("2026-11-20T10:15:30Z"));
        assert!(envelope.detail.is_some());
    }

    #[test]
    fn envelope_null_detail_is_absent() {
        let envelope = parse_envelope(br#"{"source": "aws.ec2", "detail-type": "X", "detail": null}"#)
            .expect("the body is an envelope");
        assert_eq!(envelope.detail, None);
    }

    #[test]
    fn envelope_rejects_sns_notification() {
        let body = br#"{"Type": "Notification", "MessageId": "m-1", "Message": "{}"}"#;
        let error = parse_envelope(body).expect_err("an SNS notification is not an envelope");
        assert_eq!(error.reason, InvalidReason::NotAnEnvelope);
        assert!(error.detail.contains("raw message delivery"), "{}", error.detail);
    }

    #[test]
    fn envelope_rejects_numeric_source() {
        let error = parse_envelope(br#"{"source": 7, "detail-type": "X"}"#).expect_err("source is a number");
        assert_eq!(error.reason, InvalidReason::NotAnEnvelope);
    }

    #[test]
    fn envelope_rejects_deep_nesting() {
        let body = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let error = parse_envelope(body.as_bytes()).expect_err("the nesting is too deep");
        assert_eq!(error.reason, InvalidReason::NotJson);
    }
}
