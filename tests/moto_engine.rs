//! The engine through the real aws-sdk-ec2 client against moto's server: the wire format and
//! the end-to-end flow of create, adopt, repair, prune and dry runs.

mod support;

use std::sync::Arc;

use support::fleet::Fleet;
use support::moto::MotoServer;
use support::prod_policy;
use vpc_mirror_controller::aws::ec2::SdkEc2;
use vpc_mirror_controller::aws::instrumented::Instrumented;
use vpc_mirror_controller::engine::{Engine, Mode};
use vpc_mirror_controller::instance_types::InstanceTypeSupport;
use vpc_mirror_controller::inventory::SourceScope;
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::ownership::{CLUSTER_KEY, MANAGED_BY_KEY, MANAGED_BY_VALUE, POLICY_KEY};
use vpc_mirror_controller::plan::UnmirroredReason;
use vpc_mirror_controller::policy::{MirrorPolicy, VpcId};
use vpc_mirror_controller::report::{PolicyOutcome, PolicyReport};

const WRITES: [&str; 3] = ["CreateTrafficMirrorSession", "ModifyTrafficMirrorSession", "DeleteTrafficMirrorSession"];

/// One test's view of the shared moto server: its own VPC, and an engine with its own
/// cluster name, so that concurrent tests never see each other's instances or sessions.
struct Setup {
    fleet: Fleet,
    engine: Engine<Instrumented<SdkEc2>>,
    metrics: Arc<Metrics>,
}

async fn setup(cluster: &str) -> Setup {
    let moto = MotoServer::shared();
    let fleet = Fleet::new(moto.ec2_client().await).await;
    let metrics = Metrics::new();
    let ec2 = Instrumented::new(SdkEc2::new(moto.ec2_client().await), metrics.clone());
    let engine = Engine::new(ec2, cluster, InstanceTypeSupport::default(), metrics.clone());
    Setup { fleet, engine, metrics }
}

impl Setup {
    /// Builds a policy selecting env=prod instances of this test's VPC.
    fn policy(&self, name: &str, target: &str, filter: &str, extra_spec: &str) -> MirrorPolicy {
        let mut policy = prod_policy(name, target, filter, extra_spec);
        policy.spec.selector.vpc_ids = Some(vec![VpcId(self.fleet.vpc.clone())]);
        policy
    }
}

/// Sums the calls of one operation over all outcomes.
fn calls(metrics: &Metrics, operation: &str) -> u64 {
    ["success", "throttled", "error"].iter().map(|o| metrics.aws_calls.with_label_values(&[operation, o]).get()).sum()
}

fn writes(metrics: &Metrics) -> u64 {
    WRITES.iter().map(|op| calls(metrics, op)).sum()
}

fn coverage(report: &PolicyReport) -> (usize, usize, usize) {
    match &report.outcome {
        PolicyOutcome::Reconciled { coverage, .. } => (coverage.selected, coverage.eligible, coverage.mirrored),
        PolicyOutcome::Invalid(errors) => panic!("policy {} is invalid: {errors:?}", report.policy),
    }
}

fn tag<'a>(session: &'a aws_sdk_ec2::types::TrafficMirrorSession, key: &str) -> Option<&'a str> {
    session.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

#[tokio::test]
async fn first_pass_mirrors_every_eligible_interface() {
    let s = setup("first_pass_mirrors_every_eligible_interface").await;
    let target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (_, web) = s.fleet.launch("m5.large", &[("env", "prod")], 2).await;
    let (_, old) = s.fleet.launch("t2.micro", &[("env", "prod")], 1).await;
    let (_, dev) = s.fleet.launch("m5.large", &[("env", "dev")], 1).await;
    let policy = s.policy("web", &target, &filter, "");

    let reports = s.engine.reconcile(&[policy], Mode::Apply).await.unwrap();

    assert_eq!(coverage(&reports[0]), (3, 2, 2));
    for eni in &web {
        let sessions = s.fleet.sessions_on(eni).await;
        assert_eq!(sessions.len(), 1, "{eni}");
        let session = &sessions[0];
        assert_eq!(session.traffic_mirror_target_id(), Some(target.as_str()));
        assert_eq!(session.traffic_mirror_filter_id(), Some(filter.as_str()));
        assert_eq!(session.session_number(), Some(1));
        assert_eq!(tag(session, MANAGED_BY_KEY), Some(MANAGED_BY_VALUE));
        assert_eq!(tag(session, CLUSTER_KEY), Some("first_pass_mirrors_every_eligible_interface"));
        assert_eq!(tag(session, POLICY_KEY), Some("web"));
    }
    assert!(s.fleet.sessions_on(&old[0]).await.is_empty());
    assert!(s.fleet.sessions_on(&dev[0]).await.is_empty());
    let reasons: Vec<UnmirroredReason> = reports[0].unmirrored().iter().map(|u| u.reason).collect();
    assert_eq!(reasons, [UnmirroredReason::UnsupportedInstanceType]);
}

#[tokio::test]
async fn converged_pass_makes_no_writes() {
    let s = setup("converged_pass_makes_no_writes").await;
    let target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    s.fleet.launch("m5.large", &[("env", "prod")], 3).await;
    let policy =
        s.policy("web", &target, &filter, "  session: { number: 7, packetLength: 128, virtualNetworkId: 42 }\n");
    s.engine.reconcile(std::slice::from_ref(&policy), Mode::Apply).await.unwrap();
    let writes_after_first = writes(&s.metrics);

    let reports = s.engine.reconcile(&[policy], Mode::Apply).await.unwrap();

    assert_eq!(writes_after_first, 3);
    assert_eq!(writes(&s.metrics), 3);
    assert_eq!(coverage(&reports[0]), (3, 3, 3));
}

#[tokio::test]
async fn equivalent_foreign_session_is_adopted() {
    let s = setup("equivalent_foreign_session_is_adopted").await;
    let target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (_, enis) = s.fleet.launch("m5.large", &[("env", "prod")], 1).await;
    let foreign = s.fleet.session(&enis[0], &target, &filter, 4, &[("owner", "netops")]).await;

    let reports = s.engine.reconcile(&[s.policy("web", &target, &filter, "")], Mode::Apply).await.unwrap();

    assert_eq!(coverage(&reports[0]), (1, 1, 1));
    assert_eq!(writes(&s.metrics), 0);
    let sessions = s.fleet.sessions_on(&enis[0]).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].traffic_mirror_session_id(), Some(foreign.as_str()));
    assert_eq!(sessions[0].session_number(), Some(4));
}

#[tokio::test]
async fn foreign_session_keeps_its_number() {
    let s = setup("foreign_session_keeps_its_number").await;
    let target = s.fleet.target(None).await;
    let other_target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (_, enis) = s.fleet.launch("m5.large", &[("env", "prod")], 1).await;
    let foreign = s.fleet.session(&enis[0], &other_target, &filter, 1, &[]).await;

    s.engine.reconcile(&[s.policy("web", &target, &filter, "  prune: true\n")], Mode::Apply).await.unwrap();

    let sessions = s.fleet.sessions_on(&enis[0]).await;
    assert_eq!(sessions.len(), 2);
    let theirs = sessions.iter().find(|x| x.traffic_mirror_session_id() == Some(foreign.as_str())).unwrap();
    assert_eq!(theirs.traffic_mirror_target_id(), Some(other_target.as_str()));
    assert_eq!(theirs.session_number(), Some(1));
    let ours = sessions.iter().find(|x| x.traffic_mirror_session_id() != Some(foreign.as_str())).unwrap();
    assert_eq!(ours.session_number(), Some(2));
}

#[tokio::test]
async fn drifted_owned_session_is_repaired() {
    let s = setup("drifted_owned_session_is_repaired").await;
    let target = s.fleet.target(None).await;
    let other_target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (_, enis) = s.fleet.launch("m5.large", &[("env", "prod")], 1).await;
    let policy = s.policy("web", &target, &filter, "");
    s.engine.reconcile(std::slice::from_ref(&policy), Mode::Apply).await.unwrap();
    let session = s.fleet.sessions_on(&enis[0]).await[0].traffic_mirror_session_id().unwrap().to_string();
    s.fleet
        .ec2
        .modify_traffic_mirror_session()
        .traffic_mirror_session_id(&session)
        .traffic_mirror_target_id(&other_target)
        .description("changed by hand")
        .send()
        .await
        .unwrap();

    s.engine.reconcile(&[policy], Mode::Apply).await.unwrap();

    let sessions = s.fleet.sessions_on(&enis[0]).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].traffic_mirror_session_id(), Some(session.as_str()));
    assert_eq!(sessions[0].traffic_mirror_target_id(), Some(target.as_str()));
    assert_eq!(sessions[0].description(), Some("Mirrored by vpc-mirror-controller for policy web"));
    assert_eq!(calls(&s.metrics, "ModifyTrafficMirrorSession"), 1);
}

#[tokio::test]
async fn deleted_owned_session_is_recreated() {
    let s = setup("deleted_owned_session_is_recreated").await;
    let target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (_, enis) = s.fleet.launch("m5.large", &[("env", "prod")], 1).await;
    let policy = s.policy("web", &target, &filter, "");
    s.engine.reconcile(std::slice::from_ref(&policy), Mode::Apply).await.unwrap();
    let first = s.fleet.sessions_on(&enis[0]).await[0].traffic_mirror_session_id().unwrap().to_string();
    s.fleet.ec2.delete_traffic_mirror_session().traffic_mirror_session_id(&first).send().await.unwrap();
    // The consumer passes this on from the DeleteTrafficMirrorSession event.
    s.engine.session_deleted(&first);

    s.engine.reconcile(&[policy], Mode::Apply).await.unwrap();

    let sessions = s.fleet.sessions_on(&enis[0]).await;
    assert_eq!(sessions.len(), 1);
    assert_ne!(sessions[0].traffic_mirror_session_id(), Some(first.as_str()));
    assert_eq!(s.metrics.sessions_created.with_label_values(&["web", "Replaced"]).get(), 1);
}

#[tokio::test]
async fn deselected_instance_is_pruned() {
    let s = setup("deselected_instance_is_pruned").await;
    let target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (ours, our_enis) = s.fleet.launch("m5.large", &[("env", "prod")], 1).await;
    let (theirs, their_enis) = s.fleet.launch("m5.large", &[("env", "prod")], 1).await;
    let foreign = s.fleet.session(&their_enis[0], &target, &filter, 9, &[]).await;
    let policy = s.policy("web", &target, &filter, "");
    s.engine.reconcile(std::slice::from_ref(&policy), Mode::Apply).await.unwrap();
    assert_eq!(s.fleet.sessions_on(&our_enis[0]).await.len(), 1);
    s.fleet
        .ec2
        .delete_tags()
        .resources(&ours)
        .resources(&theirs)
        .tags(aws_sdk_ec2::types::Tag::builder().key("env").build())
        .send()
        .await
        .unwrap();

    let reports = s.engine.reconcile(&[policy], Mode::Apply).await.unwrap();

    assert!(s.fleet.sessions_on(&our_enis[0]).await.is_empty());
    let remaining = s.fleet.sessions_on(&their_enis[0]).await;
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].traffic_mirror_session_id(), Some(foreign.as_str()));
    assert_eq!(coverage(&reports[0]), (0, 0, 0));
    assert_eq!(s.metrics.sessions_deleted.with_label_values(&["web", "SourceNotSelected"]).get(), 1);
}

#[tokio::test]
async fn stopped_instance_sessions_are_pruned() {
    let s = setup("stopped_instance_sessions_are_pruned").await;
    let target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (instance, enis) = s.fleet.launch("m5.large", &[("env", "prod")], 2).await;
    let policy = s.policy("web", &target, &filter, "");
    s.engine.reconcile(std::slice::from_ref(&policy), Mode::Apply).await.unwrap();
    assert_eq!(s.fleet.sessions_on(&enis[0]).await.len() + s.fleet.sessions_on(&enis[1]).await.len(), 2);
    s.fleet.ec2.stop_instances().instance_ids(&instance).send().await.unwrap();

    let reports = s.engine.reconcile(&[policy], Mode::Apply).await.unwrap();

    for eni in &enis {
        assert!(s.fleet.sessions_on(eni).await.is_empty(), "{eni}");
    }
    assert_eq!(coverage(&reports[0]), (0, 0, 0));
}

#[tokio::test]
async fn other_cluster_sessions_are_untouched() {
    let s = setup("other_cluster_sessions_are_untouched").await;
    let target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (_, enis) = s.fleet.launch("m5.large", &[("env", "dev")], 1).await;
    let theirs = s
        .fleet
        .session(
            &enis[0],
            &target,
            &filter,
            1,
            &[(MANAGED_BY_KEY, MANAGED_BY_VALUE), (CLUSTER_KEY, "other-cluster"), (POLICY_KEY, "web")],
        )
        .await;

    s.engine.reconcile(&[s.policy("web", &target, &filter, "")], Mode::Apply).await.unwrap();

    let sessions = s.fleet.sessions_on(&enis[0]).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].traffic_mirror_session_id(), Some(theirs.as_str()));
    assert_eq!(writes(&s.metrics), 0);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let s = setup("dry_run_changes_nothing").await;
    let target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (_, enis) = s.fleet.launch("m5.large", &[("env", "prod")], 2).await;

    let reports = s.engine.reconcile(&[s.policy("web", &target, &filter, "")], Mode::DryRun).await.unwrap();

    assert!(s.fleet.sessions_on(&enis[0]).await.is_empty());
    assert!(s.fleet.sessions_on(&enis[1]).await.is_empty());
    assert_eq!(writes(&s.metrics), 0);
    match &reports[0].outcome {
        PolicyOutcome::Reconciled { plan, applied, .. } => {
            assert_eq!(plan.creates.len(), 2);
            assert!(applied.is_none());
        }
        PolicyOutcome::Invalid(errors) => panic!("{errors:?}"),
    }
}

#[tokio::test]
async fn missing_target_is_reported() {
    let s = setup("missing_target_is_reported").await;
    let filter = s.fleet.filter().await;
    let (_, enis) = s.fleet.launch("m5.large", &[("env", "prod")], 1).await;

    let reports =
        s.engine.reconcile(&[s.policy("web", "tmt-0123456789abcdef0", &filter, "")], Mode::Apply).await.unwrap();

    let reasons: Vec<UnmirroredReason> = reports[0].unmirrored().iter().map(|u| u.reason).collect();
    assert_eq!(reasons, [UnmirroredReason::TargetNotFound]);
    assert!(s.fleet.sessions_on(&enis[0]).await.is_empty());
    assert_eq!(writes(&s.metrics), 0);
}

#[tokio::test]
async fn invalid_policy_makes_no_aws_call() {
    let s = setup("invalid_policy_makes_no_aws_call").await;
    let mut policy = s.policy("web", "tmt-0123456789abcdef0", "tmf-0123456789abcdef0", "");
    policy.spec.session.packet_length = Some(9001);

    let reports = s.engine.reconcile(&[policy], Mode::Apply).await.unwrap();

    match &reports[0].outcome {
        PolicyOutcome::Invalid(errors) => assert_eq!(errors[0].field, "spec.session.packetLength"),
        PolicyOutcome::Reconciled { .. } => panic!("an invalid policy was reconciled"),
    }
    assert_eq!(calls(&s.metrics, "DescribeInstances"), 0);
}

#[tokio::test]
async fn source_pass_reads_named_interfaces() {
    let s = setup("source_pass_reads_named_interfaces").await;
    let target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (_, enis) = s.fleet.launch("m5.large", &[("env", "prod")], 2).await;
    let policy = s.policy("web", &target, &filter, "");
    s.engine.reconcile(std::slice::from_ref(&policy), Mode::Apply).await.unwrap();
    let deleted = s.fleet.sessions_on(&enis[1]).await[0].traffic_mirror_session_id().unwrap().to_string();
    s.fleet.ec2.delete_traffic_mirror_session().traffic_mirror_session_id(&deleted).send().await.unwrap();
    s.engine.session_deleted(&deleted);
    let reads_before = calls(&s.metrics, "DescribeInstances") + calls(&s.metrics, "DescribeNetworkInterfaces");
    let sources = SourceScope { network_interface_ids: [enis[1].clone()].into(), ..SourceScope::default() };

    let reports = s.engine.reconcile_sources(&[policy], &sources, Mode::Apply).await.unwrap();

    assert!(reports[0].partial);
    assert_eq!(coverage(&reports[0]), (2, 2, 2));
    assert_eq!(s.fleet.sessions_on(&enis[1]).await.len(), 1);
    assert_eq!(calls(&s.metrics, "DescribeNetworkInterfaces"), 1);
    assert_eq!(
        calls(&s.metrics, "DescribeInstances") + calls(&s.metrics, "DescribeNetworkInterfaces") - reads_before,
        2
    );
    assert_eq!(calls(&s.metrics, "CreateTrafficMirrorSession"), 3);
}

#[tokio::test]
async fn teardown_finds_sessions_by_tags() {
    let s = setup("teardown_finds_sessions_by_tags").await;
    let target = s.fleet.target(None).await;
    let filter = s.fleet.filter().await;
    let (_, enis) = s.fleet.launch("m5.large", &[("env", "prod")], 2).await;
    s.engine.reconcile(&[s.policy("web", &target, &filter, "")], Mode::Apply).await.unwrap();
    let foreign = s.fleet.session(&enis[0], &target, &filter, 9, &[(POLICY_KEY, "web")]).await;

    let deleted = s.engine.teardown("web").await.unwrap();

    assert_eq!(deleted, 2);
    let left = s.fleet.sessions_on(&enis[0]).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].traffic_mirror_session_id(), Some(foreign.as_str()));
    assert!(s.fleet.sessions_on(&enis[1]).await.is_empty());
}
