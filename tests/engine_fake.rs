//! Engine scenarios on the in-memory EC2: the AWS rules moto does not enforce, call budgets,
//! and failures.

mod support;

use std::sync::Arc;

use support::prod_policy;
use vpc_mirror_controller::aws::error::{Ec2Error, ErrorKind, code};
use vpc_mirror_controller::aws::fake::FakeEc2;
use vpc_mirror_controller::aws::fake::load::LoadModel;
use vpc_mirror_controller::aws::model::{CreateSession, Session};
use vpc_mirror_controller::engine::{Engine, Mode};
use vpc_mirror_controller::instance_types::InstanceTypeSupport;
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::ownership::ownership_tags;
use vpc_mirror_controller::plan::UnmirroredReason;
use vpc_mirror_controller::policy::MirrorPolicy;
use vpc_mirror_controller::recent_sessions;
use vpc_mirror_controller::report::{PolicyOutcome, PolicyReport};

const CLUSTER: &str = "test";

/// A fake fleet with one NLB target and one filter.
struct World {
    engine: Engine<FakeEc2>,
    target: String,
    filter: String,
}

impl World {
    fn new() -> Self {
        let ec2 = FakeEc2::new();
        let target = ec2.add_target(None);
        let filter = ec2.add_filter();
        World { engine: Engine::new(ec2, CLUSTER, InstanceTypeSupport::default(), Metrics::new()), target, filter }
    }

    fn ec2(&self) -> &FakeEc2 {
        &self.engine.ec2
    }

    fn policy(&self, extra_spec: &str) -> MirrorPolicy {
        prod_policy("web", &self.target, &self.filter, extra_spec)
    }

    async fn reconcile(&self, policies: &[MirrorPolicy]) -> Vec<PolicyReport> {
        self.engine.reconcile(policies, Mode::Apply).await.expect("the pass succeeds")
    }

    fn foreign_session(&self, eni: &str, target: &str, number: i32) -> Session {
        let request = CreateSession {
            network_interface_id: eni.to_string(),
            target_id: target.to_string(),
            filter_id: self.filter.clone(),
            number,
            packet_length: None,
            virtual_network_id: None,
            description: None,
            tags: Default::default(),
            client_token: String::new(),
        };
        self.ec2().add_session_directly(&request).expect("the foreign session is valid")
    }

    fn sessions_on(&self, eni: &str) -> Vec<Session> {
        self.ec2().sessions().into_iter().filter(|s| s.network_interface_id == eni).collect()
    }

    /// Mirrors one new interface with a pass, then deletes its session as another tool would.
    /// Returns the interface, the policy and the deleted session.
    async fn mirror_one_then_delete_it(&self) -> (String, MirrorPolicy, Session) {
        let (_, enis) = self.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
        let policy = self.policy("");
        self.reconcile(std::slice::from_ref(&policy)).await;
        let first = self.sessions_on(&enis[0]).remove(0);
        self.ec2().delete_session_directly(&first.id);
        (enis[0].clone(), policy, first)
    }
}

fn unmirrored_reasons(report: &PolicyReport) -> Vec<UnmirroredReason> {
    report.unmirrored().iter().map(|u| u.reason).collect()
}

fn mirrored(report: &PolicyReport) -> usize {
    match &report.outcome {
        PolicyOutcome::Reconciled { coverage, .. } => coverage.mirrored,
        PolicyOutcome::Invalid(errors) => panic!("invalid policy: {errors:?}"),
    }
}

#[tokio::test]
async fn full_interface_reports_quota() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    for number in 1..=3 {
        let other = world.ec2().add_target(None);
        world.foreign_session(&enis[0], &other, number);
    }

    let reports = world.reconcile(&[world.policy("")]).await;

    assert_eq!(unmirrored_reasons(&reports[0]), [UnmirroredReason::SessionQuotaReached]);
    assert_eq!(world.ec2().calls("CreateTrafficMirrorSession"), 0);
    assert_eq!(world.sessions_on(&enis[0]).len(), 3);
}

#[tokio::test]
async fn taken_number_reports_conflict() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let other = world.ec2().add_target(None);
    let holder = world.foreign_session(&enis[0], &other, 5);

    let reports = world.reconcile(&[world.policy("  session: { number: 5 }\n")]).await;

    assert_eq!(unmirrored_reasons(&reports[0]), [UnmirroredReason::SessionNumberInUse]);
    assert!(reports[0].unmirrored()[0].detail.contains(&holder.id));
    assert_eq!(world.ec2().calls("CreateTrafficMirrorSession"), 0);
}

#[tokio::test]
async fn automatic_number_takes_lowest_free() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let other = world.ec2().add_target(None);
    world.foreign_session(&enis[0], &other, 1);
    world.foreign_session(&enis[0], &other, 3);

    world.reconcile(&[world.policy("")]).await;

    let ours: Vec<Session> = world.sessions_on(&enis[0]).into_iter().filter(|s| s.target_id == world.target).collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].number, 2);
}

#[tokio::test]
async fn inventory_pages_beyond_one_page() {
    let world = World::new();
    for _ in 0..1200 {
        world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    }
    let policy = world.policy("");

    let first = world.reconcile(std::slice::from_ref(&policy)).await;
    let second = world.reconcile(&[policy]).await;

    assert_eq!(mirrored(&first[0]), 1200);
    assert_eq!(mirrored(&second[0]), 1200);
    // Two pages of instances per pass; two pages of sessions in the second pass.
    assert_eq!(world.ec2().calls("DescribeInstances"), 4);
    assert_eq!(world.ec2().calls("DescribeTrafficMirrorSessions"), 1 + 2);
    assert_eq!(world.ec2().calls("CreateTrafficMirrorSession"), 1200);
}

#[tokio::test]
async fn small_pages_are_all_read() {
    let world = World::new();
    world.ec2().set_page_size(2);
    for _ in 0..5 {
        world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
    }

    let reports = world.reconcile(&[world.policy("")]).await;

    assert_eq!(mirrored(&reports[0]), 10);
    assert_eq!(world.ec2().calls("DescribeInstances"), 3);
}

#[tokio::test]
async fn deleted_session_heals_despite_token_memory() {
    let world = World::new();
    let (eni, policy, first) = world.mirror_one_then_delete_it().await;
    // What the consumer does with the DeleteTrafficMirrorSession event; without it the engine
    // trusts its own creation for the consistency window (see below).
    world.engine.session_deleted(&first.id);

    world.reconcile(std::slice::from_ref(&policy)).await;

    // The fake returns the deleted session for a reused token, as AWS does; a fresh token
    // creates a real one.
    let sessions = world.sessions_on(&eni);
    assert_eq!(sessions.len(), 1);
    assert_ne!(sessions[0].id, first.id);
}

#[tokio::test(start_paused = true)]
async fn restart_heals_within_two_passes() {
    let world = World::new();
    let (eni, policy, first) = world.mirror_one_then_delete_it().await;
    // A new engine on the same account: the session index starts empty.
    let engine = Engine::new(take_fake(world), CLUSTER, InstanceTypeSupport::default(), Metrics::new());

    engine.reconcile(std::slice::from_ref(&policy), Mode::Apply).await.unwrap();
    let after_first_pass = sessions_on(&engine.ec2, &eni);
    // The engine cannot tell the returned session from a new one that Describe does not show
    // yet, so it trusts it for the consistency window, which is shorter than the resync interval.
    tokio::time::advance(recent_sessions::DEFAULT_WINDOW).await;
    engine.reconcile(&[policy], Mode::Apply).await.unwrap();

    assert!(after_first_pass.is_empty(), "AWS returns the deleted session for the original token");
    let sessions = sessions_on(&engine.ec2, &eni);
    assert_eq!(sessions.len(), 1);
    assert_ne!(sessions[0].id, first.id);
}

#[tokio::test(start_paused = true)]
async fn session_hidden_from_describe_is_not_created_twice() {
    let world = World::new();
    let model = LoadModel { visibility_delay: std::time::Duration::from_secs(30), ..LoadModel::default() };
    world.ec2().set_load_model(model);
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let policy = world.policy("");

    world.reconcile(std::slice::from_ref(&policy)).await;
    // Describe does not show the session yet, and its replacement would get a fresh token.
    let reports = world.reconcile(std::slice::from_ref(&policy)).await;

    assert_eq!(world.sessions_on(&enis[0]).len(), 1);
    assert_eq!(world.ec2().calls("CreateTrafficMirrorSession"), 1);
    assert_eq!(mirrored(&reports[0]), 1);
}

#[tokio::test(start_paused = true)]
async fn session_deleted_without_event_heals_after_consistency_window() {
    let world = World::new();
    let (eni, policy, first) = world.mirror_one_then_delete_it().await;

    // Within the window the engine cannot tell a deleted session from an unseen one.
    world.reconcile(std::slice::from_ref(&policy)).await;
    let within_window = world.sessions_on(&eni).len();
    tokio::time::advance(recent_sessions::DEFAULT_WINDOW).await;
    world.reconcile(std::slice::from_ref(&policy)).await;

    assert_eq!(within_window, 0);
    let sessions = world.sessions_on(&eni);
    assert_eq!(sessions.len(), 1);
    assert_ne!(sessions[0].id, first.id);
}

fn take_fake(world: World) -> FakeEc2 {
    world.engine.ec2
}

fn sessions_on(ec2: &FakeEc2, eni: &str) -> Vec<Session> {
    ec2.sessions().into_iter().filter(|s| s.network_interface_id == eni).collect()
}

#[tokio::test]
async fn rejected_type_is_learned() {
    let world = World::new();
    world.ec2().set_unsupported_types(&["m5.large"]);
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
    let policy = world.policy("");

    let first = world.reconcile(std::slice::from_ref(&policy)).await;
    let creates_after_first = world.ec2().calls("CreateTrafficMirrorSession");
    let second = world.reconcile(&[policy]).await;

    assert_eq!(unmirrored_reasons(&first[0]), [UnmirroredReason::UnsupportedInstanceType; 2]);
    assert_eq!(unmirrored_reasons(&second[0]), [UnmirroredReason::UnsupportedInstanceType; 2]);
    // Both interfaces are tried in the first pass, whose plan predates the rejection; the
    // second pass tries none.
    assert_eq!(creates_after_first, 2);
    assert_eq!(world.ec2().calls("CreateTrafficMirrorSession"), 2);
    assert!(world.sessions_on(&enis[0]).is_empty());
}

#[tokio::test]
async fn many_policies_share_one_sweep() {
    let world = World::new();
    for team in ["a", "b", "c", "d", "e"] {
        world.ec2().add_instance("m5.large", &[("env", "prod"), ("team", team)], &["interface"]);
    }
    let policies: Vec<MirrorPolicy> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|team| {
            let mut policy = prod_policy(&format!("team-{team}"), &world.target, &world.filter, "");
            policy.spec.selector.tags.as_mut().unwrap().match_labels.insert("team".into(), team.to_string());
            policy
        })
        .collect();

    let reports = world.reconcile(&policies).await;

    assert_eq!(reports.iter().map(mirrored).sum::<usize>(), 5);
    assert_eq!(world.ec2().calls("DescribeInstances"), 1);
    assert_eq!(world.ec2().calls("DescribeTrafficMirrorSessions"), 1);
    assert_eq!(world.ec2().calls("DescribeTrafficMirrorTargets"), 1);
    assert_eq!(world.ec2().calls("DescribeTrafficMirrorFilters"), 1);
}

#[tokio::test]
async fn overlapping_policies_share_a_session() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod"), ("team", "web")], &["interface"]);
    let broad = world.policy("");
    let mut narrow = prod_policy("web-only", &world.target, &world.filter, "");
    narrow.spec.selector.tags.as_mut().unwrap().match_labels.insert("team".into(), "web".into());

    let first = world.reconcile(&[broad.clone(), narrow.clone()]).await;
    let writes_after_first = world.ec2().write_calls();
    world.reconcile(&[broad, narrow]).await;

    assert_eq!(first.iter().map(mirrored).sum::<usize>(), 2);
    assert_eq!(world.sessions_on(&enis[0]).len(), 1);
    assert_eq!(writes_after_first, 1);
    assert_eq!(world.ec2().write_calls(), 1);
}

#[tokio::test]
async fn prune_disabled_keeps_sessions() {
    let world = World::new();
    let (instance, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let policy = world.policy("  prune: false\n");
    world.reconcile(std::slice::from_ref(&policy)).await;
    world.ec2().update_instance(&instance, |i| {
        i.tags.remove("env");
    });

    world.reconcile(&[policy]).await;

    assert_eq!(world.sessions_on(&enis[0]).len(), 1);
    assert_eq!(world.ec2().calls("DeleteTrafficMirrorSession"), 0);
}

#[tokio::test]
async fn duplicate_owned_sessions_are_reduced() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    for number in [4, 2] {
        let mut request = CreateSession {
            network_interface_id: enis[0].clone(),
            target_id: world.target.clone(),
            filter_id: world.filter.clone(),
            number,
            packet_length: None,
            virtual_network_id: None,
            description: Some("Mirrored by vpc-mirror-controller for policy web".into()),
            tags: ownership_tags(CLUSTER, "web"),
            client_token: String::new(),
        };
        request.client_token.clear();
        world.ec2().add_session_directly(&request).unwrap();
    }

    world.reconcile(&[world.policy("")]).await;

    let sessions = world.sessions_on(&enis[0]);
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].number, 2);
}

#[tokio::test]
async fn primary_selection_skips_secondary_interfaces() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface", "interface", "interface"]);

    world.reconcile(&[world.policy("  interfaces: Primary\n")]).await;

    assert_eq!(world.sessions_on(&enis[0]).len(), 1);
    assert!(world.sessions_on(&enis[1]).is_empty());
    assert!(world.sessions_on(&enis[2]).is_empty());
}

#[tokio::test]
async fn trunk_and_target_interfaces_are_ineligible() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface", "trunk", "interface"]);
    world.ec2().add_target(Some(&enis[2]));

    let reports = world.reconcile(&[world.policy("")]).await;

    assert_eq!(
        unmirrored_reasons(&reports[0]),
        [UnmirroredReason::UnsupportedInterfaceType, UnmirroredReason::SourceIsTarget]
    );
    match &reports[0].outcome {
        PolicyOutcome::Reconciled { coverage, .. } => {
            assert_eq!(coverage.selected, 3);
            assert_eq!(coverage.eligible, 1);
            assert_eq!(coverage.mirrored, 1);
        }
        PolicyOutcome::Invalid(errors) => panic!("{errors:?}"),
    }
}

#[tokio::test]
async fn throttled_create_heals_next_pass() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    world.ec2().fail_next(
        "CreateTrafficMirrorSession",
        Ec2Error::rejected("CreateTrafficMirrorSession", code::REQUEST_LIMIT_EXCEEDED, "Request limit exceeded."),
    );
    let policy = world.policy("");

    let first = world.reconcile(std::slice::from_ref(&policy)).await;
    let second = world.reconcile(&[policy]).await;

    assert_eq!(unmirrored_reasons(&first[0]), [UnmirroredReason::Throttled]);
    assert_eq!(mirrored(&second[0]), 1);
    assert_eq!(world.sessions_on(&enis[0]).len(), 1);
}

#[tokio::test]
async fn failed_read_writes_nothing() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let policy = world.policy("");
    world.reconcile(std::slice::from_ref(&policy)).await;
    world.ec2().reset_calls();
    world.ec2().fail_next(
        "DescribeTrafficMirrorSessions",
        Ec2Error {
            operation: "DescribeTrafficMirrorSessions",
            kind: ErrorKind::Transient,
            code: None,
            message: "timed out".into(),
        },
    );

    let result = world.engine.reconcile(&[policy], Mode::Apply).await;

    assert!(result.is_err());
    assert_eq!(world.ec2().write_calls(), 0);
    assert_eq!(world.sessions_on(&enis[0]).len(), 1);
}

#[tokio::test]
async fn missing_filter_blocks_creates() {
    let world = World::new();
    world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let policy = prod_policy("web", &world.target, "tmf-0123456789abcdef0", "");

    let reports = world.reconcile(&[policy]).await;

    assert_eq!(unmirrored_reasons(&reports[0]), [UnmirroredReason::FilterNotFound]);
    assert_eq!(world.ec2().write_calls(), 0);
}

#[tokio::test]
async fn metrics_count_by_policy_and_reason() {
    let world = World::new();
    let metrics = Arc::clone(&world.engine.metrics);
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
    world.ec2().add_instance("t2.micro", &[("env", "prod")], &["interface"]);
    let policy = world.policy("");
    world.reconcile(std::slice::from_ref(&policy)).await;
    let session = world.sessions_on(&enis[0]).remove(0);
    world.ec2().modify_session_directly(&session.id, |s| s.filter_id = "tmf-0000000000000ffff".into());

    world.reconcile(&[policy]).await;

    let text = metrics.render();
    assert!(text.contains(r#"vpcmirror_sessions_created_total{policy="web",reason="NewSource"} 2"#), "{text}");
    assert!(text.contains(r#"vpcmirror_sessions_repaired_total{policy="web",reason="FilterChanged"} 1"#), "{text}");
    assert!(
        text.contains(
            r#"vpcmirror_policy_unmirrored_network_interfaces{policy="web",reason="UnsupportedInstanceType"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"vpcmirror_policy_network_interfaces{policy="web",state="eligible"} 2"#), "{text}");
    assert!(!text.contains("eni-"), "no interface id may become a label");
}

#[tokio::test]
async fn foreign_equivalent_retires_drifted_owned() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let policy = world.policy("");
    world.reconcile(std::slice::from_ref(&policy)).await;
    let ours = world.sessions_on(&enis[0]).remove(0);
    let elsewhere = world.ec2().add_target(None);
    world.ec2().modify_session_directly(&ours.id, |s| s.target_id = elsewhere.clone());
    let foreign = world.foreign_session(&enis[0], &world.target, 7);

    let reports = world.reconcile(&[policy]).await;

    // Repairing ours would mirror every packet twice to the same target.
    let sessions = world.sessions_on(&enis[0]);
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id, foreign.id);
    assert_eq!(mirrored(&reports[0]), 1);
}

#[tokio::test]
async fn unsupported_type_change_prunes() {
    let world = World::new();
    let (instance, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let policy = world.policy("");
    world.reconcile(std::slice::from_ref(&policy)).await;
    world.ec2().update_instance(&instance, |i| i.instance_type = "m6i.large".into());

    let reports = world.reconcile(&[policy]).await;

    // AWS keeps the session after a type change, but it no longer mirrors anything.
    assert!(world.sessions_on(&enis[0]).is_empty());
    assert_eq!(unmirrored_reasons(&reports[0]), [UnmirroredReason::UnsupportedInstanceType]);
}

#[tokio::test]
async fn teardown_deletes_only_owned_sessions() {
    let world = World::new();
    let (_, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
    world.reconcile(&[world.policy("")]).await;
    let other = world.ec2().add_target(None);
    let foreign = world.foreign_session(&enis[0], &other, 9);
    let mut other_cluster = CreateSession {
        network_interface_id: enis[1].clone(),
        target_id: other.clone(),
        filter_id: world.filter.clone(),
        number: 8,
        packet_length: None,
        virtual_network_id: None,
        description: None,
        tags: ownership_tags("another-cluster", "web"),
        client_token: String::new(),
    };
    other_cluster.client_token.clear();
    let theirs = world.ec2().add_session_directly(&other_cluster).unwrap();

    let deleted = world.engine.teardown("web").await.unwrap();

    let left: Vec<String> = world.ec2().sessions().into_iter().map(|s| s.id).collect();
    assert_eq!(deleted, 2);
    assert_eq!(left.len(), 2);
    assert!(left.contains(&foreign.id));
    assert!(left.contains(&theirs.id));
}

#[tokio::test]
async fn teardown_failure_is_returned() {
    let world = World::new();
    world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    world.reconcile(&[world.policy("")]).await;
    world.ec2().fail_next(
        "DeleteTrafficMirrorSession",
        Ec2Error {
            operation: "DeleteTrafficMirrorSession",
            kind: ErrorKind::Transient,
            code: None,
            message: "timed out".into(),
        },
    );

    let result = world.engine.teardown("web").await;

    assert!(result.is_err());
    assert_eq!(world.ec2().sessions().len(), 1);
}
