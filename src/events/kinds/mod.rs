//! One parser per event kind. Each reads the `detail` object of the envelope and returns the
//! resources the event names, or why it names none.
//!
//! The registry has already checked that `detail` is an object and, for CloudTrail records, that
//! the call did not fail (no `errorCode`).

pub(crate) mod attach_network_interface;
pub(crate) mod create_fleet;
pub(crate) mod detach_network_interface;
pub(crate) mod instance_running;
pub(crate) mod modify_instance_attribute;
pub(crate) mod run_instances;
pub(crate) mod start_instances;
pub(crate) mod tags;
pub(crate) mod traffic_mirror_filter;
pub(crate) mod traffic_mirror_filter_rule;
pub(crate) mod traffic_mirror_session;
pub(crate) mod traffic_mirror_target;

use std::collections::BTreeSet;

use serde_json::Value;

use super::classification::{EventScope, IgnoreReason};
use super::fields::{Malformed, action_block, checked_id, member, optional_string};

/// Result of parsing a well-formed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The event names these resources. An empty scope is reported as `NothingNamed`.
    Wake(EventScope),
    Ignore(IgnoreReason),
}

/// A parser of the `detail` object of one event kind.
pub(crate) type Parser = fn(&Value) -> Result<Outcome, Malformed>;

/// Adds `id` to `set` after checking that it has the form of an id with `prefix`.
pub(crate) fn insert_id(set: &mut BTreeSet<String>, id: &str, prefix: &str, path: &str) -> Result<(), Malformed> {
    set.insert(checked_id(id, prefix, path)?);
    Ok(())
}

/// Returns `detail.requestParameters`, or None when it is absent or null.
pub(crate) fn request_parameters(detail: &Value) -> Option<&Value> {
    member(detail, "requestParameters")
}

/// Returns `detail.responseElements`, or None when it is absent or null.
pub(crate) fn response_elements(detail: &Value) -> Option<&Value> {
    member(detail, "responseElements")
}

/// An id found in a record, with the path it was read from for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FoundId<'a> {
    pub id: &'a str,
    pub path: String,
}

/// Returns the id `key` of a traffic-mirror request, found in
/// `requestParameters.<action>Request.<key>`. The key is PascalCase, as in real records, and
/// the camelCase spelling is accepted too.
pub(crate) fn wrapped_request_id<'a>(
    detail: &'a Value,
    action: &str,
    key: &str,
) -> Result<Option<FoundId<'a>>, Malformed> {
    let wrapper = format!("{action}Request");
    let Some(request) = action_block(request_parameters(detail), &wrapper) else {
        return Ok(None);
    };
    for spelling in [key.to_string(), camel_case(key)] {
        let path = format!("detail.requestParameters.{wrapper}.{spelling}");
        if let Some(id) = optional_string(request, &spelling, &path)? {
            return Ok(Some(FoundId { id, path }));
        }
    }
    Ok(None)
}

/// Returns the id at `path` below `responseElements.<action>Response`, where the keys are
/// camelCase.
pub(crate) fn wrapped_response_id<'a>(
    detail: &'a Value,
    action: &str,
    path: &[&str],
) -> Result<Option<FoundId<'a>>, Malformed> {
    let wrapper = format!("{action}Response");
    let Some((key, parents)) = path.split_last() else {
        return Ok(None);
    };
    let Some(mut block) = action_block(response_elements(detail), &wrapper) else {
        return Ok(None);
    };
    for parent in parents {
        match member(block, parent) {
            Some(child) => block = child,
            None => return Ok(None),
        }
    }
    let full_path = format!("detail.responseElements.{wrapper}.{}", path.join("."));
    let id = optional_string(block, key, &full_path)?;
    Ok(id.map(|id| FoundId { id, path: full_path }))
}

/// Returns `PascalCase` as `pascalCase`.
fn camel_case(key: &str) -> String {
    let mut characters = key.chars();
    match characters.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + characters.as_str(),
        None => String::new(),
    }
}

/// Wraps a detail object in a CloudTrail record for the tests of each kind.
#[cfg(test)]
pub(crate) mod test_support {
    use serde_json::{Value, json};

    use super::{Outcome, Parser};
    use crate::events::classification::EventScope;
    use crate::events::fields::Malformed;

    /// Returns a CloudTrail `detail` with the given event name, request and response.
    pub fn cloudtrail_detail(event_name: &str, request: Value, response: Value) -> Value {
        json!({
            "eventVersion": "1.09",
            "eventTime": "2026-11-20T10:15:27Z",
            "eventSource": "ec2.amazonaws.com",
            "eventName": event_name,
            "awsRegion": "us-east-1",
            "requestParameters": request,
            "responseElements": response,
            "eventType": "AwsApiCall",
            "recipientAccountId": "111122223333"
        })
    }

    /// Runs a parser and returns the scope it wakes, failing the test on any other outcome.
    pub fn woken_scope(parser: Parser, detail: &Value) -> EventScope {
        match parser(detail) {
            Ok(Outcome::Wake(scope)) => scope,
            other => panic!("expected a wake, got {other:?} for {detail}"),
        }
    }

    /// Runs a parser and returns its error, failing the test on success.
    pub fn malformed(parser: Parser, detail: &Value) -> Malformed {
        match parser(detail) {
            Err(error) => error,
            other => panic!("expected an error, got {other:?} for {detail}"),
        }
    }

    /// Returns the given ids as the owned, sorted set a scope holds.
    pub fn ids(values: &[&str]) -> std::collections::BTreeSet<String> {
        values.iter().map(|value| value.to_string()).collect()
    }
}
