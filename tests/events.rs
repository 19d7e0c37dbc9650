//! Tests of `events::classify` and `events::event_pattern` through the public API: the sample
//! messages, the tolerance rules for real queue bodies, the event pattern, and property tests
//! that no input makes `classify` panic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};

use vpc_mirror_controller::events::{
    Classification, EventKind, EventScope, IgnoreReason, InvalidReason, MAX_BODY_BYTES, WakeEvent, classify,
    event_pattern,
};

// ---------------------------------------------------------------------------------------------
// Sample messages

/// Sample EventBridge messages, one SQS body per file, kept beside the repository.
fn samples_folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/events")
}

fn read_sample(name: &str) -> Vec<u8> {
    let path = samples_folder().join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn sample_json(name: &str) -> Value {
    serde_json::from_slice(&read_sample(name)).unwrap_or_else(|error| panic!("{name} is not JSON: {error}"))
}

/// Names of the message files in the samples folder, every file except the README.
fn sample_names() -> Vec<String> {
    let folder = samples_folder();
    let entries =
        std::fs::read_dir(&folder).unwrap_or_else(|error| panic!("cannot list {}: {error}", folder.display()));
    let mut names: Vec<String> = entries
        .map(|entry| entry.expect("directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name != "README.md")
        .collect();
    names.sort();
    names
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

/// Returns the expected outcome of each sample file.
fn expected_outcomes() -> BTreeMap<&'static str, Expected> {
    let mut expected = BTreeMap::new();

    expected.insert(
        "run-instances.json",
        Expected::Wake(
            EventKind::RunInstances,
            EventScope {
                instance_ids: set(&["i-0aa11bb22cc33dd01", "i-0aa11bb22cc33dd02"]),
                network_interface_ids: set(&[
                    "eni-0aa11bb22cc33dd11",
                    "eni-0aa11bb22cc33dd12",
                    "eni-0aa11bb22cc33dd21",
                ]),
                ..EventScope::default()
            },
        ),
    );

    expected.insert(
        "run-instances-failed.json",
        Expected::Ignored(Some(EventKind::RunInstances), IgnoreReason::FailedApiCall),
    );

    expected.insert(
        "start-instances.json",
        Expected::Wake(
            EventKind::StartInstances,
            EventScope { instance_ids: set(&["i-0bb22cc33dd44ee01", "i-0bb22cc33dd44ee02"]), ..EventScope::default() },
        ),
    );

    expected.insert(
        "attach-network-interface.json",
        Expected::Wake(
            EventKind::AttachNetworkInterface,
            EventScope {
                instance_ids: set(&["i-0aa11bb22cc33dd01"]),
                network_interface_ids: set(&["eni-0cc33dd44ee55ff01"]),
                attachment_ids: set(&["eni-attach-0cc33dd44ee55ff01"]),
                ..EventScope::default()
            },
        ),
    );

    expected.insert(
        "detach-network-interface.json",
        Expected::Wake(
            EventKind::DetachNetworkInterface,
            EventScope { attachment_ids: set(&["eni-attach-0cc33dd44ee55ff01"]), ..EventScope::default() },
        ),
    );

    expected.insert(
        "delete-traffic-mirror-session.json",
        Expected::Wake(
            EventKind::DeleteTrafficMirrorSession,
            EventScope { session_ids: set(&["tms-0dd44ee55ff660001"]), ..EventScope::default() },
        ),
    );

    expected.insert(
        "modify-traffic-mirror-session.json",
        Expected::Wake(
            EventKind::ModifyTrafficMirrorSession,
            EventScope {
                session_ids: set(&["tms-0dd44ee55ff660002"]),
                network_interface_ids: set(&["eni-0aa11bb22cc33dd11"]),
                ..EventScope::default()
            },
        ),
    );

    expected.insert(
        "create-tags.json",
        Expected::Wake(
            EventKind::CreateTags,
            EventScope { instance_ids: set(&["i-0bb22cc33dd44ee01"]), ..EventScope::default() },
        ),
    );

    expected.insert(
        "delete-traffic-mirror-target.json",
        Expected::Wake(
            EventKind::DeleteTrafficMirrorTarget,
            EventScope { target_ids: set(&["tmt-0ee55ff6600770001"]), ..EventScope::default() },
        ),
    );

    expected.insert(
        "instance-state-running.json",
        Expected::Wake(
            EventKind::InstanceRunning,
            EventScope { instance_ids: set(&["i-0cc33dd44ee55ff02"]), ..EventScope::default() },
        ),
    );

    expected.insert("unrelated-console-sign-in.json", Expected::Ignored(None, IgnoreReason::UnhandledKind));
    expected.insert("not-json.txt", Expected::Invalid(InvalidReason::NotJson));
    expected
}

#[derive(Debug)]
enum Expected {
    Wake(EventKind, EventScope),
    Ignored(Option<EventKind>, IgnoreReason),
    Invalid(InvalidReason),
}

#[test]
fn samples_match_expected_outcomes() {
    let expected = expected_outcomes();
    let names = sample_names();
    let listed: BTreeSet<&str> = expected.keys().copied().collect();
    let present: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(present, listed, "sample files and expected outcomes differ");

    for (name, outcome) in &expected {
        let classification = classify(&read_sample(name));
        match (outcome, &classification) {
            (Expected::Wake(kind, scope), Classification::Wake(event)) => {
                assert_eq!(event.kind, *kind, "{name}");
                assert_eq!(&event.scope, scope, "{name}");
            }
            (Expected::Ignored(kind, reason), Classification::Ignored { kind: got_kind, reason: got_reason }) => {
                assert_eq!(got_kind, kind, "{name}");
                assert_eq!(got_reason, reason, "{name}");
            }
            (Expected::Invalid(reason), Classification::Invalid { reason: got_reason, .. }) => {
                assert_eq!(got_reason, reason, "{name}");
            }
            (outcome, classification) => panic!("{name}: expected {outcome:?}, got {classification:?}"),
        }
    }
}

#[test]
fn samples_readme_lists_every_file() {
    let readme = std::fs::read_to_string(samples_folder().join("README.md")).expect("the samples README is readable");
    let listed: BTreeSet<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|rest| rest.split(' ').next())
        .filter(|name| name.ends_with(".json") || name.ends_with(".txt"))
        .map(str::to_string)
        .collect();
    let present: BTreeSet<String> = sample_names().into_iter().collect();
    assert_eq!(listed, present);
}

#[test]
fn sample_wake_carries_envelope_context() {
    let Classification::Wake(event) = classify(&read_sample("run-instances.json")) else {
        panic!("run-instances.json must wake");
    };
    let WakeEvent { event_id, region, account, time, event_time, .. } = event;
    assert_eq!(event_id.as_deref(), Some("380fd523-ac75-5151-9564-57aa8faf3a5d"));
    assert_eq!(region.as_deref(), Some("us-east-1"));
    assert_eq!(account.as_deref(), Some("111122223333"));
    assert_eq!(time.as_deref(), Some("2026-11-20T10:15:30Z"));
    assert_eq!(event_time.as_deref(), Some("2026-11-20T10:15:27Z"));
}

#[test]
fn native_event_has_no_event_time() {
    let Classification::Wake(event) = classify(&read_sample("instance-state-running.json")) else {
        panic!("instance-state-running.json must wake");
    };
    assert_eq!(event.event_time, None);
    assert_eq!(event.time.as_deref(), Some("2026-11-20T10:15:30Z"));
}

#[test]
fn display_is_one_line_per_sample() {
    for name in sample_names() {
        let line = classify(&read_sample(&name)).to_string();
        assert!(!line.contains('\n'), "{name}: {line}");
        assert!(!line.is_empty(), "{name}");
    }
}

#[test]
fn display_names_kind_and_ids() {
    let line = classify(&read_sample("run-instances.json")).to_string();
    assert!(line.starts_with("wake RunInstances: instances i-0aa11bb22cc33dd01 i-0aa11bb22cc33dd02"), "{line}");
    assert!(line.contains("network interfaces eni-0aa11bb22cc33dd11"), "{line}");
    assert!(
        line.ends_with("(event 380fd523-ac75-5151-9564-57aa8faf3a5d, region us-east-1, time 2026-11-20T10:15:30Z)"),
        "{line}"
    );

    let line = classify(&read_sample("run-instances-failed.json")).to_string();
    assert!(line.starts_with("ignored RunInstances (FailedApiCall)"), "{line}");

    let line = classify(&read_sample("unrelated-console-sign-in.json")).to_string();
    assert!(line.contains("UnhandledKind"), "{line}");

    let line = classify(&read_sample("not-json.txt")).to_string();
    assert!(line.starts_with("invalid message (NotJson)"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// Tolerance of real queue bodies

fn classify_value(value: &Value) -> Classification {
    classify(value.to_string().as_bytes())
}

fn woken(classification: Classification) -> WakeEvent {
    match classification {
        Classification::Wake(event) => event,
        other => panic!("expected a wake, got {other}"),
    }
}

fn invalid_reason(classification: &Classification) -> Option<InvalidReason> {
    match classification {
        Classification::Invalid { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[test]
fn single_object_in_place_of_list() {
    let mut body = sample_json("run-instances.json");
    let first = body["detail"]["responseElements"]["instancesSet"]["items"][0].clone();
    body["detail"]["responseElements"]["instancesSet"]["items"] = first;
    let event = woken(classify_value(&body));
    assert_eq!(event.scope.instance_ids, set(&["i-0aa11bb22cc33dd01"]));
    assert_eq!(event.scope.network_interface_ids, set(&["eni-0aa11bb22cc33dd11", "eni-0aa11bb22cc33dd12"]));

    let mut body = sample_json("create-tags.json");
    body["detail"]["requestParameters"]["resourcesSet"] = json!({"item": {"resourceId": "i-0bb22cc33dd44ee01"}});
    let event = woken(classify_value(&body));
    assert_eq!(event.scope.instance_ids, set(&["i-0bb22cc33dd44ee01"]));
}

#[test]
fn numbers_as_strings() {
    let mut body = sample_json("run-instances.json");
    body["account"] = json!(111122223333u64);
    body["version"] = json!(0);
    let instance = &mut body["detail"]["responseElements"]["instancesSet"]["items"][0];
    instance["instanceState"]["code"] = json!("0");
    instance["amiLaunchIndex"] = json!("0");
    instance["networkInterfaceSet"]["items"][0]["attachment"]["deviceIndex"] = json!("0");
    body["detail"]["requestParameters"]["instancesSet"]["items"][0]["minCount"] = json!("2");
    let event = woken(classify_value(&body));
    assert_eq!(event.account.as_deref(), Some("111122223333"));
    assert_eq!(event.scope.instance_ids.len(), 2);

    let mut body = sample_json("modify-traffic-mirror-session.json");
    let session = &mut body["detail"]["responseElements"]["ModifyTrafficMirrorSessionResponse"]["trafficMirrorSession"];
    session["sessionNumber"] = json!("10");
    session["virtualNetworkId"] = json!("4242");
    let event = woken(classify_value(&body));
    assert_eq!(event.scope.session_ids, set(&["tms-0dd44ee55ff660002"]));
}

#[test]
fn null_response_elements() {
    let mut body = sample_json("attach-network-interface.json");
    body["detail"]["responseElements"] = Value::Null;
    let event = woken(classify_value(&body));
    assert_eq!(event.scope.instance_ids, set(&["i-0aa11bb22cc33dd01"]));
    assert!(event.scope.attachment_ids.is_empty());

    let mut body = sample_json("delete-traffic-mirror-session.json");
    body["detail"]["responseElements"] = Value::Null;
    let event = woken(classify_value(&body));
    assert_eq!(event.scope.session_ids, set(&["tms-0dd44ee55ff660001"]));

    // RunInstances names its instances only in the response, so without an errorCode a null
    // response leaves a record that can never be handled.
    let mut body = sample_json("run-instances.json");
    body["detail"]["responseElements"] = Value::Null;
    assert_eq!(invalid_reason(&classify_value(&body)), Some(InvalidReason::MissingField));
}

#[test]
fn null_in_place_of_objects() {
    let mut body = sample_json("start-instances.json");
    body["detail"]["responseElements"]["instancesSet"]["items"][0]["currentState"] = Value::Null;
    body["detail"]["userIdentity"] = Value::Null;
    assert_eq!(woken(classify_value(&body)).scope.instance_ids.len(), 2);

    let mut body = sample_json("create-tags.json");
    body["detail"]["requestParameters"]["tagSet"] = json!("");
    assert_eq!(woken(classify_value(&body)).scope.instance_ids, set(&["i-0bb22cc33dd44ee01"]));

    let mut body = sample_json("create-tags.json");
    body["detail"]["requestParameters"] = Value::Null;
    assert_eq!(invalid_reason(&classify_value(&body)), Some(InvalidReason::MissingField));
}

#[test]
fn missing_detail() {
    for name in ["run-instances.json", "instance-state-running.json"] {
        let mut body = sample_json(name);
        body.as_object_mut().expect("the sample is an object").remove("detail");
        assert_eq!(invalid_reason(&classify_value(&body)), Some(InvalidReason::MissingField), "{name}");
        body["detail"] = Value::Null;
        assert_eq!(invalid_reason(&classify_value(&body)), Some(InvalidReason::MissingField), "{name}");
        body["detail"] = json!("RunInstances");
        assert_eq!(invalid_reason(&classify_value(&body)), Some(InvalidReason::WrongType), "{name}");
    }

    // A kind the controller does not handle needs no detail.
    let mut body = sample_json("unrelated-console-sign-in.json");
    body.as_object_mut().expect("the sample is an object").remove("detail");
    let expected = Classification::Ignored { kind: None, reason: IgnoreReason::UnhandledKind };
    assert_eq!(classify_value(&body), expected);
}

#[test]
fn missing_event_name() {
    let mut body = sample_json("run-instances.json");
    body["detail"].as_object_mut().expect("detail is an object").remove("eventName");
    assert_eq!(invalid_reason(&classify_value(&body)), Some(InvalidReason::MissingField));
    body["detail"]["eventName"] = json!(["RunInstances"]);
    assert_eq!(invalid_reason(&classify_value(&body)), Some(InvalidReason::WrongType));
}

#[test]
fn unhandled_event_name_is_ignored() {
    let mut body = sample_json("run-instances.json");
    body["detail"]["eventName"] = json!("TerminateInstances");
    let expected = Classification::Ignored { kind: None, reason: IgnoreReason::UnhandledKind };
    assert_eq!(classify_value(&body), expected);
}

#[test]
fn oversized_body_is_too_large() {
    let mut body = sample_json("run-instances.json");
    body["detail"]["padding"] = json!("x".repeat(300 * 1024));
    let classification = classify_value(&body);
    assert_eq!(invalid_reason(&classification), Some(InvalidReason::TooLarge));

    // The limit applies to the bytes, before any parsing.
    let garbage = vec![b'{'; 300 * 1024];
    assert_eq!(invalid_reason(&classify(&garbage)), Some(InvalidReason::TooLarge));
}

#[test]
fn body_under_limit_is_parsed() {
    let mut body = sample_json("run-instances.json");
    body["detail"]["padding"] = json!("x".repeat(200 * 1024));
    let bytes = body.to_string().into_bytes();
    assert!(bytes.len() < MAX_BODY_BYTES);
    assert_eq!(woken(classify(&bytes)).scope.instance_ids.len(), 2);
}

#[test]
fn state_change_to_stopped_is_ignored() {
    let mut body = sample_json("instance-state-running.json");
    body["detail"]["state"] = json!("stopped");
    let expected = Classification::Ignored { kind: Some(EventKind::InstanceRunning), reason: IgnoreReason::NotRunning };
    assert_eq!(classify_value(&body), expected);
}

#[test]
fn tags_on_security_group_are_ignored() {
    let mut body = sample_json("create-tags.json");
    body["detail"]["eventName"] = json!("DeleteTags");
    body["detail"]["requestParameters"]["resourcesSet"]["items"][0]["resourceId"] = json!("sg-0bb22cc33dd44ee99");
    let expected = Classification::Ignored { kind: Some(EventKind::DeleteTags), reason: IgnoreReason::NotAnInstance };
    assert_eq!(classify_value(&body), expected);
}

#[test]
fn bodies_that_are_not_envelopes() {
    for body in [&b"[]"[..], b"\"text\"", b"42", b"null", b"{}", b"{\"source\": \"aws.ec2\"}"] {
        let classification = classify(body);
        assert_eq!(invalid_reason(&classification), Some(InvalidReason::NotAnEnvelope), "{classification}");
    }
    for body in [&b""[..], b"\xff\xfe", b"{\"source\": ", b"\xef\xbb\xbf{}"] {
        let classification = classify(body);
        assert_eq!(invalid_reason(&classification), Some(InvalidReason::NotJson), "{classification}");
    }
}

// ---------------------------------------------------------------------------------------------
// Event pattern

#[test]
fn pattern_names_every_kind() {
    let pattern = event_pattern();
    let branches = pattern["$or"].as_array().expect("the pattern has $or branches");
    for kind in EventKind::ALL {
        let named = branches.iter().any(|branch| match kind {
            EventKind::InstanceRunning => {
                branch["detail-type"] == json!(["EC2 Instance State-change Notification"])
                    && branch["detail"]["state"] == json!(["running"])
            }
            _ => {
                branch["detail-type"] == json!(["AWS API Call via CloudTrail"])
                    && branch["detail"]["eventName"]
                        .as_array()
                        .is_some_and(|names| names.contains(&json!(kind.as_str())))
            }
        });
        assert!(named, "{kind} is missing from {pattern}");
    }
}

#[test]
fn pattern_matches_exactly_handled_samples() {
    let pattern = event_pattern();
    for name in sample_names().into_iter().filter(|name| name.ends_with(".json")) {
        let event = sample_json(&name);
        let wakes = matches!(classify_value(&event), Classification::Wake(_));
        assert_eq!(pattern_matches(&pattern, &event), wakes, "{name} against {pattern}");
    }

    let mut stopped = sample_json("instance-state-running.json");
    stopped["detail"]["state"] = json!("stopped");
    assert!(!pattern_matches(&pattern, &stopped));

    let mut terminate = sample_json("run-instances.json");
    terminate["detail"]["eventName"] = json!("TerminateInstances");
    assert!(!pattern_matches(&pattern, &terminate));

    // Only a CloudTrail record is classified by its event name, not a state-change notification.
    let mut mixed = sample_json("instance-state-running.json");
    mixed["detail"]["eventName"] = json!("RunInstances");
    mixed["detail"]["state"] = json!("pending");
    assert!(!pattern_matches(&pattern, &mixed));
}

/// Evaluates the subset of EventBridge pattern syntax that `event_pattern` uses: nested objects,
/// lists of exact values, `{"exists": false}` and a top-level `$or`.
fn pattern_matches(pattern: &Value, event: &Value) -> bool {
    let Some(pattern) = pattern.as_object() else {
        return false;
    };
    pattern.iter().all(|(key, condition)| {
        if key == "$or" {
            let branches = condition.as_array().expect("$or holds a list");
            return branches.iter().any(|branch| pattern_matches(branch, event));
        }
        let field = event.get(key);
        match condition {
            Value::Object(_) => field.is_some_and(|field| pattern_matches(condition, field)),
            Value::Array(alternatives) => alternatives.iter().any(|alternative| value_matches(alternative, field)),
            other => panic!("unsupported pattern condition {other}"),
        }
    })
}

fn value_matches(alternative: &Value, field: Option<&Value>) -> bool {
    match alternative.get("exists").and_then(Value::as_bool) {
        Some(exists) => field.is_some() == exists,
        None => field == Some(alternative),
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Checks what every classification must satisfy, whatever the input.
fn check_invariants(classification: &Classification) -> Result<(), TestCaseError> {
    let line = classification.to_string();
    prop_assert!(!line.contains('\n'), "the line has a break: {line}");
    match classification {
        Classification::Wake(event) => {
            prop_assert!(!event.scope.is_empty(), "a wake names nothing: {line}");
        }
        Classification::Ignored { kind, reason } => {
            prop_assert_eq!(kind.is_none(), *reason == IgnoreReason::UnhandledKind, "{}", line);
            prop_assert!(!reason.as_str().is_empty());
        }
        Classification::Invalid { reason, detail } => {
            prop_assert!(!detail.is_empty(), "no detail for {}", reason.as_str());
        }
    }
    Ok(())
}

/// Keys that the parsers read, so that random objects reach their branches.
const KNOWN_KEYS: &[&str] = &[
    "source",
    "detail-type",
    "detail",
    "eventName",
    "errorCode",
    "state",
    "instance-id",
    "requestParameters",
    "responseElements",
    "items",
    "item",
    "instancesSet",
    "instanceId",
    "networkInterfaceSet",
    "networkInterfaceId",
    "attachmentId",
    "resourcesSet",
    "resourceId",
    "attribute",
    "instanceType",
    "fleetInstanceSet",
    "instanceIds",
    "CreateFleetResponse",
    "DeleteTrafficMirrorSessionRequest",
    "ModifyTrafficMirrorSessionResponse",
    "trafficMirrorSession",
    "TrafficMirrorSessionId",
    "trafficMirrorSessionId",
    "TrafficMirrorTargetId",
    "TrafficMirrorFilterId",
    "trafficMirrorFilterRule",
    "trafficMirrorFilterId",
];

/// Strings that the parsers compare against or accept as ids.
const KNOWN_STRINGS: &[&str] = &[
    "aws.ec2",
    "AWS API Call via CloudTrail",
    "EC2 Instance State-change Notification",
    "RunInstances",
    "CreateFleet",
    "CreateTags",
    "running",
    "instanceType",
    "i-0aa11bb22cc33dd01",
    "eni-0aa11bb22cc33dd11",
    "eni-attach-0cc33dd44ee55ff01",
    "tms-0dd44ee55ff660001",
    "tmt-0ee55ff6600770001",
    "tmf-0ff6600770088001",
    "",
];

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(KNOWN_KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z-]{0,8}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        proptest::sample::select(KNOWN_STRINGS).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "[\\x00-\\x1f\\n\"\\\\]{0,4}".prop_map(Value::String),
    ]
}

/// Arbitrary JSON values up to 5 levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((json_key(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// EventBridge envelopes of a handled kind around an arbitrary request and response.
fn handled_envelope() -> impl Strategy<Value = Value> {
    let kinds: Vec<EventKind> = EventKind::ALL.to_vec();
    (proptest::sample::select(kinds), json_value(), json_value(), json_value(), any::<bool>()).prop_map(
        |(kind, request, response, extra, failed)| {
            if kind == EventKind::InstanceRunning {
                return json!({
                    "source": "aws.ec2",
                    "detail-type": "EC2 Instance State-change Notification",
                    "detail": {"instance-id": request, "state": if failed { json!("running") } else { extra }}
                });
            }
            let mut detail = json!({
                "eventName": kind.as_str(),
                "requestParameters": request,
                "responseElements": response,
                "awsRegion": extra
            });
            if failed {
                detail["errorCode"] = json!("Client.UnauthorizedOperation");
            }
            json!({"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "detail": detail})
        },
    )
}

/// A step into a JSON value: an object member or an array element.
#[derive(Clone, Debug)]
enum Step {
    Member(String),
    Element(usize),
}

/// Collects the path of every node below `value`, the root included.
fn collect_paths(value: &Value, prefix: &mut Vec<Step>, paths: &mut Vec<Vec<Step>>) {
    paths.push(prefix.clone());
    match value {
        Value::Object(members) => {
            for (key, child) in members {
                prefix.push(Step::Member(key.clone()));
                collect_paths(child, prefix, paths);
                prefix.pop();
            }
        }
        Value::Array(elements) => {
            for (index, child) in elements.iter().enumerate() {
                prefix.push(Step::Element(index));
                collect_paths(child, prefix, paths);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node_at<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |node, step| match step {
        Step::Member(key) => &mut node[key.as_str()],
        Step::Element(index) => &mut node[*index],
    })
}

/// A change to one node of a sample message.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(Value),
    Remove,
    /// Wraps the node in `{"items": node}`, the shape of a list of one.
    WrapInItems,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => json_value().prop_map(Mutation::Replace),
        1 => Just(Mutation::Remove),
        1 => Just(Mutation::WrapInItems),
    ]
}

fn apply_mutation(mut sample: Value, node: Index, mutation: Mutation) -> Value {
    let mut paths = Vec::new();
    collect_paths(&sample, &mut Vec::new(), &mut paths);
    let path = node.get(&paths).clone();
    match mutation {
        Mutation::Replace(replacement) => *node_at(&mut sample, &path) = replacement,
        Mutation::WrapInItems => {
            let target = node_at(&mut sample, &path);
            let inner = target.take();
            *target = json!({"items": inner});
        }
        Mutation::Remove => match path.split_last() {
            Some((Step::Member(key), parent)) => {
                if let Some(members) = node_at(&mut sample, parent).as_object_mut() {
                    members.remove(key);
                }
            }
            Some((Step::Element(index), parent)) => {
                if let Some(elements) = node_at(&mut sample, parent).as_array_mut() {
                    elements.remove(*index);
                }
            }
            None => sample = Value::Null,
        },
    }
    sample
}

fn json_samples() -> Vec<Value> {
    sample_names().into_iter().filter(|name| name.ends_with(".json")).map(|name| sample_json(&name)).collect()
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_invariants(&classify(&bytes))?;
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        check_invariants(&classify_value(&value))?;
    }

    #[test]
    fn arbitrary_envelope_never_panics(value in json_value(), source in json_leaf(), detail_type in json_leaf()) {
        let body = json!({"source": source, "detail-type": detail_type, "detail": value});
        check_invariants(&classify_value(&body))?;
    }

    #[test]
    fn handled_kind_never_panics(body in handled_envelope()) {
        let classification = classify_value(&body);
        check_invariants(&classification)?;
        let unhandled = matches!(classification, Classification::Ignored { reason: IgnoreReason::UnhandledKind, .. });
        prop_assert!(!unhandled, "a handled kind was reported as unhandled: {}", classification);
    }

    #[test]
    fn mutated_sample_never_panics(sample in proptest::sample::select(json_samples()), node in any::<Index>(), change in mutation()) {
        let body = apply_mutation(sample, node, change);
        check_invariants(&classify_value(&body))?;
    }

    #[test]
    fn truncated_sample_never_panics(sample in proptest::sample::select(json_samples()), cut in any::<Index>()) {
        let bytes = sample.to_string().into_bytes();
        let end = cut.index(bytes.len() + 1);
        check_invariants(&classify(&bytes[..end]))?;
    }
}
