//! The deployment files against the code: the IAM policy against the AWS calls the source
//! makes, the chart's CRD against the generated one, and the dashboard and alert queries
//! against the metrics the controller registers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use prometheus::core::Collector;
use prometheus::proto::MetricType;
use serde_json::Value;
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::ownership::{CLUSTER_KEY, MANAGED_BY_KEY, MANAGED_BY_VALUE, POLICY_KEY};

const CHART: &str = "charts/vpc-mirror-controller";
const SESSION_ARN: &str = "arn:aws:ec2:*:*:traffic-mirror-session/*";

fn repository_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    let path = repository_file(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// IAM policy

/// Finds every `.<receiver>.<method>()` call in a Rust file and returns the method names.
/// Whitespace is removed first, so a call that rustfmt split over two lines still matches.
fn sdk_calls(relative: &str, receiver: &str) -> BTreeSet<String> {
    let source: String = read(relative).chars().filter(|c| !c.is_whitespace()).collect();
    let needle = format!(".{receiver}.");
    let mut calls = BTreeSet::new();
    for (start, _) in source.match_indices(&needle) {
        let rest = &source[start + needle.len()..];
        let name: String =
            rest.chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        if !name.is_empty() && rest[name.len()..].starts_with("()") {
            calls.insert(name);
        }
    }
    calls
}

/// Converts an SDK method name such as `describe_instances` to its operation, `DescribeInstances`.
fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Returns the IAM action that authorizes an operation. SQS has no actions of its own for the
/// batch operations: `sqs:DeleteMessage` also authorizes DeleteMessageBatch, and likewise for
/// SendMessageBatch and ChangeMessageVisibilityBatch.
fn iam_action(service: &str, operation: &str) -> String {
    let action = match (service, operation) {
        ("sqs", "DeleteMessageBatch") => "DeleteMessage",
        ("sqs", "SendMessageBatch") => "SendMessage",
        ("sqs", "ChangeMessageVisibilityBatch") => "ChangeMessageVisibility",
        _ => operation,
    };
    format!("{service}:{action}")
}

/// Returns the IAM actions the code needs: one for every EC2 call in the SDK adapter and every
/// SQS call in the event consumer.
fn actions_the_code_calls() -> BTreeSet<String> {
    let ec2 = sdk_calls("src/aws/ec2.rs", "client");
    let sqs = sdk_calls("src/event_consumer.rs", "sqs");
    assert!(ec2.contains("describe_instances"), "no EC2 call found in src/aws/ec2.rs: {ec2:?}");
    assert!(sqs.contains("receive_message"), "no SQS call found in src/event_consumer.rs: {sqs:?}");
    let ec2_actions = ec2.iter().map(|call| iam_action("ec2", &pascal_case(call)));
    let sqs_actions = sqs.iter().map(|call| iam_action("sqs", &pascal_case(call)));
    ec2_actions.chain(sqs_actions).collect()
}

fn iam_policy() -> Value {
    serde_json::from_str(&read("deploy/iam-policy.json")).expect("deploy/iam-policy.json is JSON")
}

/// Returns a string-or-list field of a statement as a list.
fn string_list(statement: &Value, field: &str) -> Vec<String> {
    match &statement[field] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many.iter().map(|v| v.as_str().expect("a list of strings").to_string()).collect(),
        Value::Null => Vec::new(),
        other => panic!("{field} is neither a string nor a list: {other}"),
    }
}

fn statements(policy: &Value) -> Vec<Value> {
    policy["Statement"].as_array().expect("Statement is a list").clone()
}

/// Returns the statements that allow `action` on `resource` (exactly as written in the policy).
fn statements_allowing(policy: &Value, action: &str, resource: &str) -> Vec<Value> {
    statements(policy)
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .filter(|s| string_list(s, "Action").iter().any(|a| a == action))
        .filter(|s| string_list(s, "Resource").iter().any(|r| r == resource))
        .collect()
}

fn allowed_actions(policy: &Value) -> BTreeSet<String> {
    statements(policy).iter().filter(|s| s["Effect"] == "Allow").flat_map(|s| string_list(s, "Action")).collect()
}

#[test]
fn iam_policy_allows_every_call() {
    let allowed = allowed_actions(&iam_policy());
    for action in actions_the_code_calls() {
        assert!(allowed.contains(&action), "deploy/iam-policy.json does not allow {action}, which the code calls");
    }
}

#[test]
fn iam_policy_allows_nothing_else() {
    let policy = iam_policy();
    // CreateTags is not called: EC2 authorizes it for the tags inside CreateTrafficMirrorSession.
    let mut expected = actions_the_code_calls();
    expected.insert("ec2:CreateTags".to_string());
    let allowed = allowed_actions(&policy);
    let extra: Vec<&String> = allowed.difference(&expected).collect();
    assert!(extra.is_empty(), "deploy/iam-policy.json allows actions the code never needs: {extra:?}");
    for action in &allowed {
        assert!(!action.contains('*'), "deploy/iam-policy.json allows the wildcard action {action}");
    }
    for statement in statements(&policy) {
        assert!(statement.get("NotAction").is_none(), "NotAction allows everything it does not name: {statement}");
        assert!(statement.get("NotResource").is_none(), "NotResource allows everything it does not name: {statement}");
    }
}

#[test]
fn iam_wildcard_resource_only_for_describe() {
    // Only Describe calls, which support no resource-level permissions, may use Resource "*".
    for statement in statements(&iam_policy()) {
        if string_list(&statement, "Resource").iter().any(|r| r == "*") {
            for action in string_list(&statement, "Action") {
                assert!(action.starts_with("ec2:Describe"), "{action} is allowed on every resource");
            }
        }
    }
}

#[test]
fn iam_create_requires_ownership_tags() {
    let policy = iam_policy();
    let on_sessions = statements_allowing(&policy, "ec2:CreateTrafficMirrorSession", SESSION_ARN);
    assert_eq!(on_sessions.len(), 1, "expected one statement for creating sessions");
    let condition = &on_sessions[0]["Condition"];
    let managed_by = format!("aws:RequestTag/{MANAGED_BY_KEY}");
    assert_eq!(condition["StringEquals"][&managed_by], MANAGED_BY_VALUE);
    for key in [CLUSTER_KEY, POLICY_KEY] {
        assert_eq!(condition["Null"][format!("aws:RequestTag/{key}")], "false", "the {key} tag is not required");
    }
    let tag_keys: BTreeSet<String> = condition["ForAllValues:StringEquals"]["aws:TagKeys"]
        .as_array()
        .expect("aws:TagKeys lists the ownership keys")
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let ownership_keys: BTreeSet<String> = [MANAGED_BY_KEY, CLUSTER_KEY, POLICY_KEY].map(String::from).into();
    assert_eq!(tag_keys, ownership_keys);

    // A create also authorizes the interface, target and filter it names.
    for resource in ["network-interface", "traffic-mirror-target", "traffic-mirror-filter"] {
        let arn = format!("arn:aws:ec2:*:*:{resource}/*");
        assert_eq!(statements_allowing(&policy, "ec2:CreateTrafficMirrorSession", &arn).len(), 1, "{arn}");
    }
}

#[test]
fn iam_tags_only_at_creation() {
    let policy = iam_policy();
    let tagging: Vec<Value> = statements(&policy)
        .into_iter()
        .filter(|s| string_list(s, "Action").contains(&"ec2:CreateTags".into()))
        .collect();
    assert_eq!(tagging.len(), 1);
    assert_eq!(string_list(&tagging[0], "Resource"), vec![SESSION_ARN.to_string()]);
    assert_eq!(tagging[0]["Condition"]["StringEquals"]["ec2:CreateAction"], "CreateTrafficMirrorSession");
}

#[test]
fn iam_modify_and_delete_need_owned_sessions() {
    let policy = iam_policy();
    let resource_tag = format!("aws:ResourceTag/{MANAGED_BY_KEY}");
    for action in ["ec2:ModifyTrafficMirrorSession", "ec2:DeleteTrafficMirrorSession"] {
        let on_sessions = statements_allowing(&policy, action, SESSION_ARN);
        assert_eq!(on_sessions.len(), 1, "expected one statement allowing {action} on sessions");
        assert_eq!(on_sessions[0]["Condition"]["StringEquals"][&resource_tag], MANAGED_BY_VALUE, "{action}");
        let any_session = statements(&policy).into_iter().filter(|s| string_list(s, "Action").contains(&action.into()));
        for statement in any_session {
            let resources = string_list(&statement, "Resource");
            let reaches_sessions = resources.iter().any(|r| r.contains("traffic-mirror-session") || r == "*");
            if reaches_sessions {
                assert!(!statement["Condition"].is_null(), "{action} reaches sessions without a tag condition");
            }
        }
    }
}

#[test]
fn iam_queue_access_is_one_queue() {
    let policy = iam_policy();
    let queue_statements: Vec<Value> = statements(&policy)
        .into_iter()
        .filter(|s| string_list(s, "Action").iter().any(|a| a.starts_with("sqs:")))
        .collect();
    assert_eq!(queue_statements.len(), 1);
    let resources = string_list(&queue_statements[0], "Resource");
    assert_eq!(resources.len(), 1);
    assert!(resources[0].starts_with("arn:aws:sqs:") && !resources[0].ends_with('*'), "{resources:?}");
}

// ---------------------------------------------------------------------------------------------
// Chart

#[test]
fn chart_crd_matches_committed_crd() {
    let committed = read("crds/mirrorpolicy.yaml");
    let in_chart = read(&format!("{CHART}/crds/mirrorpolicy.yaml"));
    assert!(
        committed == in_chart,
        "{CHART}/crds/mirrorpolicy.yaml differs from crds/mirrorpolicy.yaml: copy it with `cp crds/mirrorpolicy.yaml {CHART}/crds/`"
    );
}

/// Returns every series name the controller can export: counters and gauges under their own
/// name, histograms as `_bucket`, `_sum` and `_count`. `Registry::gather` skips vectors without
/// children, so the families come from each collector instead.
fn exported_series() -> BTreeSet<String> {
    let metrics = Metrics::new();
    let collectors: [&dyn Collector; 20] = [
        &metrics.policy_network_interfaces,
        &metrics.policy_unmirrored,
        &metrics.policy_coverage_ratio,
        &metrics.sessions_created,
        &metrics.sessions_repaired,
        &metrics.sessions_deleted,
        &metrics.aws_calls,
        &metrics.aws_retries,
        &metrics.aws_write_rate,
        &metrics.aws_rate_limit_wait_seconds,
        &metrics.reconcile_duration,
        &metrics.reconciles,
        &metrics.event_messages_received,
        &metrics.event_messages_ignored,
        &metrics.event_messages_invalid,
        &metrics.event_messages_failed,
        &metrics.event_messages_deleted,
        &metrics.event_queue_seconds,
        &metrics.heal_latency_seconds,
        &metrics.leader,
    ];
    let mut series = BTreeSet::new();
    for family in collectors.iter().flat_map(|c| c.collect()) {
        let name = family.name().to_string();
        if family.get_field_type() == MetricType::HISTOGRAM {
            for suffix in ["_bucket", "_sum", "_count"] {
                series.insert(format!("{name}{suffix}"));
            }
        } else {
            series.insert(name);
        }
    }
    // `gather` returns the registered metrics without labels even before they are touched, so a
    // new one of those that is missing above fails here. A new labelled vector is only caught
    // once it is added to the list.
    for family in metrics.registry.gather() {
        assert!(
            series.contains(family.name()) || series.contains(&format!("{}_count", family.name())),
            "{} is registered but missing from exported_series",
            family.name()
        );
    }
    series
}

/// Returns the `vpcmirror_*` names in a PromQL expression.
fn metric_names(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in expression.match_indices("vpcmirror_") {
        let preceded_by_word = expression[..start].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_');
        if preceded_by_word {
            continue;
        }
        let name: String =
            expression[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
        names.insert(name);
    }
    names
}

/// Collects the value of every `key` field anywhere in a JSON document.
fn collect_fields(value: &Value, key: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (field, inner) in map {
                match inner {
                    Value::String(text) if field == key => found.push(text.clone()),
                    _ => collect_fields(inner, key, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_fields(item, key, found)),
        _ => {}
    }
}

fn assert_queries_use_exported_metrics(source: &str, queries: &[String]) {
    let exported = exported_series();
    let mut unknown: BTreeMap<String, String> = BTreeMap::new();
    for query in queries {
        for name in metric_names(query) {
            if !exported.contains(&name) {
                unknown.insert(name, query.clone());
            }
        }
    }
    assert!(unknown.is_empty(), "{source} queries metrics the controller does not export: {unknown:#?}");
}

#[test]
fn dashboard_queries_exported_metrics() {
    let path = format!("{CHART}/dashboards/vpc-mirror-controller.json");
    let dashboard: Value = serde_json::from_str(&read(&path)).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    collect_fields(&dashboard, "expr", &mut queries);
    collect_fields(&dashboard["templating"], "query", &mut queries);
    assert!(queries.len() >= 10, "{path} has only {} queries", queries.len());
    assert_queries_use_exported_metrics(&path, &queries);
}

#[test]
fn alerts_query_exported_metrics() {
    let path = format!("{CHART}/alerts/vpc-mirror-controller.rules.yaml");
    let rules: serde_json::Value = serde_norway::from_str(&read(&path)).expect("the alert rules are YAML");
    let mut queries = Vec::new();
    collect_fields(&rules, "expr", &mut queries);
    assert!(queries.len() >= 4, "{path} has only {} rules", queries.len());
    assert_queries_use_exported_metrics(&path, &queries);
}

#[test]
fn metric_names_skip_longer_words() {
    let names = metric_names("sum(rate(vpcmirror_aws_calls_total{outcome=\"throttled\"}[5m])) / x_vpcmirror_y");
    assert_eq!(names, BTreeSet::from(["vpcmirror_aws_calls_total".to_string()]));
}

#[test]
fn sdk_calls_find_split_chains() {
    let calls = sdk_calls("src/aws/ec2.rs", "client");
    assert!(calls.contains("create_traffic_mirror_session"), "{calls:?}");
    assert!(calls.iter().all(|call| !call.starts_with("client")), "{calls:?}");
}
