//! The SQS consumer against moto's SQS, with the in-memory EC2 behind the engine so that
//! faults and call counts are exact.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::moto::MotoServer;
use support::prod_policy;
use vpc_mirror_controller::aws::error::{Ec2Error, ErrorKind};
use vpc_mirror_controller::aws::fake::FakeEc2;
use vpc_mirror_controller::engine::{Engine, Mode};
use vpc_mirror_controller::event_consumer::{BatchOutcome, Consumer, ConsumerOptions, PolicySource};
use vpc_mirror_controller::instance_types::InstanceTypeSupport;
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::policy::MirrorPolicy;

struct Setup {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    engine: Arc<Engine<FakeEc2>>,
    consumer: Consumer<FakeEc2>,
    target: String,
}

/// Builds a converged fleet of one instance, a fresh queue with a one-second visibility timeout,
/// and a consumer that polls briefly.
async fn setup(queue: &str) -> Setup {
    let moto = MotoServer::shared();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let queue_url = sqs
        .create_queue()
        .queue_name(queue)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let ec2 = FakeEc2::new();
    let target = ec2.add_target(None);
    let filter = ec2.add_filter();
    ec2.add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let policy = prod_policy("web", &target, &filter, "");
    let engine = Arc::new(Engine::new(ec2, "test", InstanceTypeSupport::default(), Metrics::new()));
    engine.reconcile(std::slice::from_ref(&policy), Mode::Apply).await.unwrap();
    engine.ec2.reset_calls();

    let policies: PolicySource = Arc::new(move || Ok::<Vec<MirrorPolicy>, anyhow::Error>(vec![policy.clone()]));
    let mut options = ConsumerOptions::new(queue_url.clone());
    options.wait_time = Duration::from_secs(1);
    let consumer = Consumer::new(sqs.clone(), engine.clone(), policies, options);
    Setup { sqs, queue_url, engine, consumer, target }
}

impl Setup {
    async fn send(&self, body: &str) {
        self.sqs.send_message().queue_url(&self.queue_url).message_body(body).send().await.unwrap();
    }

    /// Receives until a batch with messages arrives, or five empty polls.
    async fn handle(&self) -> BatchOutcome {
        for _ in 0..5 {
            let outcome = self.consumer.receive_and_handle().await;
            if outcome != BatchOutcome::default() {
                return outcome;
            }
        }
        BatchOutcome::default()
    }

    async fn queued(&self) -> usize {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        attributes.attributes().unwrap().values().map(|v| v.parse::<usize>().unwrap()).sum()
    }
}

fn run_instances_message(instance_id: &str) -> String {
    cloudtrail(
        "RunInstances",
        serde_json::json!({"instancesSet": {"items": [{"minCount": 1, "maxCount": 1}]}}),
        serde_json::json!({"instancesSet": {"items": [{"instanceId": instance_id}]}}),
    )
}

fn delete_session_message(session_id: &str) -> String {
    cloudtrail(
        "DeleteTrafficMirrorSession",
        serde_json::json!({"DeleteTrafficMirrorSessionRequest": {"TrafficMirrorSessionId": session_id}}),
        serde_json::json!({"DeleteTrafficMirrorSessionResponse": {"trafficMirrorSessionId": session_id}}),
    )
}

#[tokio::test]
async fn handled_message_is_deleted() {
    let s = setup("handled_message_is_deleted").await;
    let (instance, enis) = s.engine.ec2.add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
    s.send(&run_instances_message(&instance)).await;

    let outcome = s.handle().await;

    assert_eq!(outcome.deleted, 1);
    assert_eq!(outcome.writes, 2);
    assert_eq!(s.queued().await, 0);
    for eni in &enis {
        assert_eq!(s.engine.ec2.sessions().iter().filter(|x| &x.network_interface_id == eni).count(), 1);
    }
    assert_eq!(s.engine.ec2.calls("DescribeInstances"), 1);
    assert_eq!(s.engine.ec2.calls("DescribeTrafficMirrorSessions"), 1);
}

#[tokio::test]
async fn unparseable_message_is_deleted() {
    let s = setup("unparseable_message_is_deleted").await;
    s.send("this is not an EventBridge message").await;

    let outcome = s.handle().await;

    assert_eq!(outcome.invalid, 1);
    assert_eq!(outcome.deleted, 1);
    assert_eq!(s.queued().await, 0);
    assert_eq!(s.engine.ec2.call_counts().len(), 0);
    let text = s.engine.metrics.render();
    assert!(text.contains(r#"vpcmirror_event_messages_invalid_total{reason="NotJson"} 1"#), "{text}");
}

#[tokio::test]
async fn unhandled_kind_is_deleted() {
    let s = setup("unhandled_kind_is_deleted").await;
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/events/unrelated-console-sign-in.json"
    ))
    .unwrap();
    s.send(&body).await;

    let outcome = s.handle().await;

    assert_eq!(outcome.ignored, 1);
    assert_eq!(outcome.deleted, 1);
    assert_eq!(s.queued().await, 0);
}

#[tokio::test]
async fn transient_failure_keeps_message() {
    let s = setup("transient_failure_keeps_message").await;
    let (instance, enis) = s.engine.ec2.add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let timeout = Ec2Error {
        operation: "DescribeInstances",
        kind: ErrorKind::Transient,
        code: None,
        message: "timed out".into(),
    };
    s.engine.ec2.fail_next("DescribeInstances", timeout);
    s.send(&run_instances_message(&instance)).await;

    let first = s.handle().await;
    let queued_after_failure = s.queued().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = s.handle().await;

    assert_eq!(first.kept, 1);
    assert_eq!(first.deleted, 0);
    assert_eq!(queued_after_failure, 1);
    assert_eq!(second.deleted, 1);
    assert_eq!(second.writes, 1);
    assert_eq!(s.queued().await, 0);
    assert_eq!(s.engine.ec2.sessions().iter().filter(|x| x.network_interface_id == enis[0]).count(), 1);
}

#[tokio::test]
async fn duplicate_delivery_is_harmless() {
    let s = setup("duplicate_delivery_is_harmless").await;
    let (instance, enis) = s.engine.ec2.add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let body = run_instances_message(&instance);
    s.send(&body).await;
    s.send(&body).await;

    let mut outcomes = vec![s.handle().await];
    if s.queued().await > 0 {
        outcomes.push(s.handle().await);
    }

    assert_eq!(outcomes.iter().map(|o| o.deleted).sum::<usize>(), 2);
    assert_eq!(outcomes.iter().map(|o| o.writes).sum::<usize>(), 1);
    assert_eq!(s.engine.ec2.sessions().iter().filter(|x| x.network_interface_id == enis[0]).count(), 1);
}

#[tokio::test]
async fn delete_before_launch_is_harmless() {
    let s = setup("delete_before_launch_is_harmless").await;
    let victim = s.engine.ec2.sessions().remove(0);
    let (instance, enis) = s.engine.ec2.add_instance("m5.large", &[("env", "prod")], &["interface"]);
    s.engine.ec2.delete_session_directly(&victim.id);
    // The later event first: the session deletion, then the older launch.
    s.send(&delete_session_message(&victim.id)).await;
    s.handle().await;
    s.send(&run_instances_message(&instance)).await;
    s.handle().await;
    // A redelivery of the deletion after everything healed.
    s.send(&delete_session_message(&victim.id)).await;
    let last = s.handle().await;

    let sessions = s.engine.ec2.sessions();
    assert_eq!(sessions.iter().filter(|x| x.network_interface_id == victim.network_interface_id).count(), 1);
    assert_eq!(sessions.iter().filter(|x| x.network_interface_id == enis[0]).count(), 1);
    assert!(sessions.iter().all(|x| x.target_id == s.target));
    assert_eq!(last.writes, 0);
    assert_eq!(s.queued().await, 0);
}

#[tokio::test]
async fn unknown_session_changes_nothing() {
    let s = setup("unknown_session_changes_nothing").await;
    s.send(&delete_session_message("tms-0ffffffffffffffff")).await;

    let outcome = s.handle().await;

    assert_eq!(outcome.deleted, 1);
    assert_eq!(outcome.writes, 0);
    assert_eq!(s.engine.ec2.call_counts().values().sum::<usize>(), 0);
}

#[tokio::test]
async fn workers_stop_on_signal() {
    let s = setup("workers_stop_on_signal").await;
    let consumer = Arc::new(s.consumer);
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(consumer.run(stop));
    tokio::time::sleep(Duration::from_millis(200)).await;

    stop_sender.send(true).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(5), running).await;

    assert!(stopped.is_ok(), "the workers did not stop within 5 s");
}

/// Reads one sample message and replaces its invented ids with the fake's.
fn sample(file: &str, replacements: &[(&str, &str)]) -> String {
    let path = format!("{}/../shared/events/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("failed to read {path}: {e}"));
    for (from, to) in replacements {
        assert!(body.contains(from), "{file} does not name {from}");
        body = body.replace(from, to);
    }
    body
}

const READS: [&str; 5] = [
    "DescribeInstances",
    "DescribeNetworkInterfaces",
    "DescribeTrafficMirrorSessions",
    "DescribeTrafficMirrorTargets",
    "DescribeTrafficMirrorFilters",
];

impl Setup {
    /// Handles one message from a clean call count, and returns (reads, writes).
    async fn cost_of(&self, body: &str) -> (usize, usize) {
        self.engine.ec2.reset_calls();
        self.send(body).await;
        let outcome = self.handle().await;
        assert_eq!(outcome.deleted, 1, "the message was not handled: {outcome:?}");
        let reads = READS.iter().map(|op| self.engine.ec2.calls(op)).sum();
        (reads, self.engine.ec2.write_calls())
    }

    fn attachment_of(&self, instance_id: &str, eni: &str) -> String {
        let mut attachment = None;
        self.engine.ec2.update_instance(instance_id, |i| {
            attachment = i.network_interfaces.iter().find(|n| n.id == eni).and_then(|n| n.attachment_id.clone());
        });
        attachment.expect("the interface is attached")
    }
}

#[tokio::test]
async fn each_event_kind_keeps_budget() {
    let s = setup("each_event_kind_keeps_budget").await;
    let ec2 = &s.engine.ec2;
    let prod = [("env", "prod")];

    let (first, first_enis) = ec2.add_instance("m5.large", &prod, &["interface", "interface"]);
    let (second, second_enis) = ec2.add_instance("m5.large", &prod, &["interface"]);
    let launch = sample(
        "run-instances.json",
        &[
            ("i-0aa11bb22cc33dd01", &first),
            ("i-0aa11bb22cc33dd02", &second),
            ("eni-0aa11bb22cc33dd11", &first_enis[0]),
            ("eni-0aa11bb22cc33dd12", &first_enis[1]),
            ("eni-0aa11bb22cc33dd21", &second_enis[0]),
        ],
    );
    assert_eq!(s.cost_of(&launch).await, (2, 3));

    let (started_a, _) = ec2.add_instance("m5.large", &prod, &["interface"]);
    let (started_b, _) = ec2.add_instance("m5.large", &prod, &["interface"]);
    let start =
        sample("start-instances.json", &[("i-0bb22cc33dd44ee01", &started_a), ("i-0bb22cc33dd44ee02", &started_b)]);
    assert_eq!(s.cost_of(&start).await, (2, 2));

    let (running, _) = ec2.add_instance("m5.large", &prod, &["interface"]);
    let state = sample("instance-state-running.json", &[("i-0cc33dd44ee55ff02", &running)]);
    assert_eq!(s.cost_of(&state).await, (2, 1));

    let attached = ec2.attach_interface(&first);
    let attachment = s.attachment_of(&first, &attached);
    let attach = sample(
        "attach-network-interface.json",
        &[
            ("i-0aa11bb22cc33dd01", &first),
            ("eni-0cc33dd44ee55ff01", &attached),
            ("eni-attach-0cc33dd44ee55ff01", &attachment),
        ],
    );
    let (reads, writes) = s.cost_of(&attach).await;
    assert!(reads <= 3, "AttachNetworkInterface read {reads} times");
    assert_eq!(writes, 1);

    let (tagged, tagged_enis) = ec2.add_instance("m5.large", &[], &["interface", "interface"]);
    ec2.update_instance(&tagged, |i| {
        i.tags.insert("env".into(), "prod".into());
    });
    let tags = sample("create-tags.json", &[("i-0bb22cc33dd44ee01", &tagged)]);
    assert_eq!(s.cost_of(&tags).await, (2, tagged_enis.len()));

    let victim = ec2.sessions().into_iter().find(|x| x.network_interface_id == second_enis[0]).unwrap();
    ec2.delete_session_directly(&victim.id);
    let delete = sample("delete-traffic-mirror-session.json", &[("tms-0dd44ee55ff660001", &victim.id)]);
    assert_eq!(s.cost_of(&delete).await, (3, 1));

    let drifted = ec2.sessions().into_iter().find(|x| x.network_interface_id == first_enis[0]).unwrap();
    let elsewhere = ec2.add_target(None);
    ec2.modify_session_directly(&drifted.id, |x| x.target_id = elsewhere.clone());
    let modify = sample(
        "modify-traffic-mirror-session.json",
        &[("tms-0dd44ee55ff660002", &drifted.id), ("eni-0aa11bb22cc33dd11", &first_enis[0])],
    );
    let (reads, writes) = s.cost_of(&modify).await;
    assert!(reads <= 3, "ModifyTrafficMirrorSession read {reads} times");
    assert_eq!(writes, 1);

    // The engine learned the attachment id in a region pass, as the controller does at start.
    let policies = vec![prod_policy("web", &s.target, &ec2.sessions()[0].filter_id, "")];
    s.engine.reconcile(&policies, Mode::Apply).await.unwrap();
    ec2.detach_interface(&attached);
    let detach = sample("detach-network-interface.json", &[("eni-attach-0cc33dd44ee55ff01", &attachment)]);
    assert_eq!(s.cost_of(&detach).await, (2, 1));
    assert!(ec2.sessions().iter().all(|x| x.network_interface_id != attached));
}

/// Builds a CloudTrail record in its EventBridge envelope.
fn cloudtrail(event_name: &str, request: serde_json::Value, response: serde_json::Value) -> String {
    serde_json::json!({
        "version": "0",
        "id": format!("event-{event_name}"),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2026-11-20T10:15:30Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventTime": "2026-11-20T10:15:27Z",
            "eventSource": "ec2.amazonaws.com",
            "eventName": event_name,
            "awsRegion": "us-east-1",
            "requestParameters": request,
            "responseElements": response
        }
    })
    .to_string()
}

#[tokio::test]
async fn instance_kinds_without_samples_keep_budget() {
    let s = setup("instance_kinds_without_samples_keep_budget").await;
    let ec2 = &s.engine.ec2;
    let prod = [("env", "prod")];

    let (launched, _) = ec2.add_instance("m5.large", &prod, &["interface"]);
    let fleet = cloudtrail(
        "CreateFleet",
        serde_json::json!({"CreateFleetRequest": {"Type": "instant"}}),
        serde_json::json!({"CreateFleetResponse": {"fleetInstanceSet": {"item": {"instanceIds": {"item": launched}}}}}),
    );
    assert_eq!(s.cost_of(&fleet).await, (2, 1));

    let (untagged, untagged_enis) = ec2.add_instance("m5.large", &prod, &["interface"]);
    s.engine
        .reconcile_sources(
            &[prod_policy("web", &s.target, &ec2.sessions()[0].filter_id, "")],
            &sources(&untagged),
            Mode::Apply,
        )
        .await
        .unwrap();
    ec2.update_instance(&untagged, |i| {
        i.tags.remove("env");
    });
    let delete_tags = cloudtrail(
        "DeleteTags",
        serde_json::json!({"resourcesSet": {"items": [{"resourceId": untagged}]}, "tagSet": {"items": [{"key": "env"}]}}),
        serde_json::json!({"_return": true}),
    );
    assert_eq!(s.cost_of(&delete_tags).await, (2, 1));
    assert!(ec2.sessions().iter().all(|x| x.network_interface_id != untagged_enis[0]));

    let (resized, resized_enis) = ec2.add_instance("m5.large", &prod, &["interface"]);
    s.engine
        .reconcile_sources(
            &[prod_policy("web", &s.target, &ec2.sessions()[0].filter_id, "")],
            &sources(&resized),
            Mode::Apply,
        )
        .await
        .unwrap();
    ec2.update_instance(&resized, |i| i.instance_type = "m6i.large".into());
    let modify = cloudtrail(
        "ModifyInstanceAttribute",
        serde_json::json!({"instanceId": resized, "instanceType": {"value": "m6i.large"}}),
        serde_json::json!({"_return": true}),
    );
    assert_eq!(s.cost_of(&modify).await, (2, 1));
    assert!(ec2.sessions().iter().all(|x| x.network_interface_id != resized_enis[0]));
}

fn sources(instance_id: &str) -> vpc_mirror_controller::inventory::SourceScope {
    vpc_mirror_controller::inventory::SourceScope {
        instance_ids: [instance_id.to_string()].into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn deleted_target_rechecks_its_policies() {
    let s = setup("deleted_target_rechecks_its_policies").await;
    s.engine.ec2.remove_target(&s.target);
    let body = cloudtrail(
        "DeleteTrafficMirrorTarget",
        serde_json::json!({"DeleteTrafficMirrorTargetRequest": {"TrafficMirrorTargetId": s.target}}),
        serde_json::json!({"DeleteTrafficMirrorTargetResponse": {"trafficMirrorTargetId": s.target}}),
    );

    let (_, writes) = s.cost_of(&body).await;

    // The region pass of the policy reads the catalog again and finds the target gone.
    assert_eq!(writes, 0);
    assert_eq!(s.engine.ec2.calls("DescribeTrafficMirrorTargets"), 1);
    assert_eq!(s.engine.ec2.calls("DescribeInstances"), 1);
    let text = s.engine.metrics.render();
    assert!(
        text.contains(r#"vpcmirror_policy_unmirrored_network_interfaces{policy="web",reason="TargetNotFound"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn messages_received_together_coalesce() {
    let s = setup("messages_received_together_coalesce").await;
    let (first, _) = s.engine.ec2.add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let (second, _) = s.engine.ec2.add_instance("m5.large", &[("env", "prod")], &["interface"]);
    s.send(&run_instances_message(&first)).await;
    s.send(&run_instances_message(&second)).await;
    s.send(&run_instances_message(&first)).await;

    let mut handled = 0;
    let mut batches = 0;
    while handled < 3 && batches < 5 {
        handled += s.handle().await.deleted;
        batches += 1;
    }

    assert_eq!(handled, 3);
    // moto's SQS hands all three over in one receive, and the batch costs one pass.
    assert_eq!(batches, 1);
    assert_eq!(s.engine.ec2.calls("DescribeInstances"), 1);
    assert_eq!(s.engine.ec2.write_calls(), 2);
}
