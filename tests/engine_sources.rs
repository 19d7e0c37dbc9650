//! Source passes: the narrow reconciles that events wake, with their read budgets.

mod support;

use std::collections::BTreeSet;

use support::prod_policy;
use vpc_mirror_controller::aws::ec2::Ec2;
use vpc_mirror_controller::aws::fake::FakeEc2;
use vpc_mirror_controller::aws::model::{Instance, InstanceQuery, Session};
use vpc_mirror_controller::engine::{Engine, Mode};
use vpc_mirror_controller::instance_types::InstanceTypeSupport;
use vpc_mirror_controller::inventory::SourceScope;
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::policy::MirrorPolicy;

const READS: [&str; 5] = [
    "DescribeInstances",
    "DescribeNetworkInterfaces",
    "DescribeTrafficMirrorSessions",
    "DescribeTrafficMirrorTargets",
    "DescribeTrafficMirrorFilters",
];

struct World {
    engine: Engine<FakeEc2>,
    policy: MirrorPolicy,
}

impl World {
    /// Builds a fleet of ten mirrored instances, after one region pass and with call counts reset.
    async fn converged() -> Self {
        let ec2 = FakeEc2::new();
        let target = ec2.add_target(None);
        let filter = ec2.add_filter();
        for _ in 0..10 {
            ec2.add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
        }
        let engine = Engine::new(ec2, "test", InstanceTypeSupport::default(), Metrics::new());
        let policy = prod_policy("web", &target, &filter, "");
        engine.reconcile(std::slice::from_ref(&policy), Mode::Apply).await.unwrap();
        engine.ec2.reset_calls();
        World { engine, policy }
    }

    fn ec2(&self) -> &FakeEc2 {
        &self.engine.ec2
    }

    async fn reconcile(&self, instances: &[&str], interfaces: &[&str]) {
        let scope = SourceScope {
            instance_ids: instances.iter().map(|s| s.to_string()).collect(),
            network_interface_ids: interfaces.iter().map(|s| s.to_string()).collect(),
        };
        self.engine.reconcile_sources(std::slice::from_ref(&self.policy), &scope, Mode::Apply).await.unwrap();
    }

    fn reads(&self) -> usize {
        READS.iter().map(|op| self.ec2().calls(op)).sum()
    }

    /// Returns the instance an interface is attached to, without counting the lookup.
    async fn instance_with(&self, eni: &str) -> Instance {
        let query = InstanceQuery::default();
        let page = self.ec2().describe_instances(&query, None).await.unwrap();
        self.ec2().reset_calls();
        page.items
            .into_iter()
            .find(|i| i.network_interfaces.iter().any(|n| n.id == eni))
            .expect("the interface is attached")
    }

    fn sessions_on(&self, eni: &str) -> Vec<Session> {
        self.ec2().sessions().into_iter().filter(|s| s.network_interface_id == eni).collect()
    }
}

#[tokio::test]
async fn new_instance_costs_two_reads() {
    let world = World::converged().await;
    let (instance, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);

    world.reconcile(&[&instance], &[]).await;

    assert_eq!(world.reads(), 2);
    assert_eq!(world.ec2().calls("CreateTrafficMirrorSession"), 2);
    assert_eq!(world.ec2().write_calls(), 2);
    assert_eq!(world.sessions_on(&enis[0]).len(), 1);
    assert_eq!(world.sessions_on(&enis[1]).len(), 1);
}

#[tokio::test]
async fn attached_interface_costs_three_reads() {
    let world = World::converged().await;
    let (instance, _) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    world.reconcile(&[&instance], &[]).await;
    world.ec2().reset_calls();
    let eni = world.ec2().attach_interface(&instance);

    world.reconcile(&[], &[&eni]).await;

    assert_eq!(world.reads(), 3);
    assert_eq!(world.ec2().write_calls(), 1);
    assert_eq!(world.sessions_on(&eni).len(), 1);
}

#[tokio::test]
async fn deleted_session_heals_through_index() {
    let world = World::converged().await;
    let victim = world.ec2().sessions().remove(3);
    world.ec2().delete_session_directly(&victim.id);
    let owner = world.engine.index.lock().unwrap().owner_of(&victim.id).cloned().expect("the index knows the session");
    // The consumer passes the DeleteTrafficMirrorSession event on to the engine.
    world.engine.session_deleted(&victim.id);

    world.reconcile(&[], &[&owner.network_interface_id]).await;

    assert_eq!(owner.policy, "web");
    assert_eq!(world.reads(), 3);
    assert_eq!(world.ec2().write_calls(), 1);
    let healed = world.sessions_on(&victim.network_interface_id);
    assert_eq!(healed.len(), 1);
    assert_ne!(healed[0].id, victim.id);
}

#[tokio::test]
async fn detached_interface_session_is_pruned() {
    let world = World::converged().await;
    let victim = world.ec2().sessions().remove(0);
    let instance = world.instance_with(&victim.network_interface_id).await;
    let interface = instance.network_interfaces.iter().find(|n| n.id == victim.network_interface_id).unwrap();
    let attachment = interface.attachment_id.clone().unwrap();
    world.ec2().detach_interface(&victim.network_interface_id);

    let eni = world.engine.attachments.lock().unwrap().interface_of(&attachment).map(str::to_string);
    world.reconcile(&[], &[eni.as_deref().unwrap()]).await;

    assert_eq!(eni.as_deref(), Some(victim.network_interface_id.as_str()));
    assert!(world.sessions_on(&victim.network_interface_id).is_empty());
    assert_eq!(world.ec2().calls("DeleteTrafficMirrorSession"), 1);
    assert_eq!(world.reads(), 2);
}

#[tokio::test]
async fn stopped_instance_is_pruned_by_event() {
    let world = World::converged().await;
    let victim = world.ec2().sessions().remove(0);
    let instance = world.instance_with(&victim.network_interface_id).await;
    world.ec2().update_instance(&instance.id, |i| i.state = "stopped".into());

    world.reconcile(&[&instance.id], &[]).await;

    for interface in &instance.network_interfaces {
        assert!(world.sessions_on(&interface.id).is_empty(), "{}", interface.id);
    }
    assert_eq!(world.ec2().calls("DeleteTrafficMirrorSession"), 2);
    assert_eq!(world.reads(), 2);
}

#[tokio::test]
async fn source_pass_leaves_other_sources_alone() {
    let world = World::converged().await;
    let (kept, kept_enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    world.reconcile(&[&kept], &[]).await;
    world.ec2().update_instance(&kept, |i| {
        i.tags.clear();
    });
    let (other, _) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    world.ec2().reset_calls();

    world.reconcile(&[&other], &[]).await;

    // The deselected instance was not named, so its session waits for a region pass.
    assert_eq!(world.sessions_on(&kept_enis[0]).len(), 1);
    assert_eq!(world.ec2().calls("DeleteTrafficMirrorSession"), 0);
    assert_eq!(world.ec2().write_calls(), 1);
}

#[tokio::test]
async fn unknown_instance_costs_no_write() {
    let world = World::converged().await;

    world.reconcile(&["i-0ffffffffffffffff"], &[]).await;

    assert_eq!(world.reads(), 1);
    assert_eq!(world.ec2().write_calls(), 0);
}

#[tokio::test]
async fn source_pass_without_catalog_reads_it() {
    let ec2 = FakeEc2::new();
    let target = ec2.add_target(None);
    let filter = ec2.add_filter();
    let (instance, enis) = ec2.add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let engine = Engine::new(ec2, "test", InstanceTypeSupport::default(), Metrics::new());
    let scope = SourceScope { instance_ids: BTreeSet::from([instance]), ..Default::default() };

    let policy = prod_policy("web", &target, &filter, "");
    engine.reconcile_sources(&[policy], &scope, Mode::Apply).await.unwrap();

    assert_eq!(engine.ec2.calls("DescribeTrafficMirrorTargets"), 1);
    assert_eq!(engine.ec2.calls("DescribeTrafficMirrorFilters"), 1);
    assert_eq!(engine.ec2.sessions().iter().filter(|s| s.network_interface_id == enis[0]).count(), 1);
}

#[tokio::test]
async fn launch_with_interfaces_costs_two_reads() {
    let world = World::converged().await;
    let (instance, enis) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);

    // A RunInstances record names the instance and its interfaces.
    world.reconcile(&[&instance], &[&enis[0], &enis[1]]).await;

    assert_eq!(world.ec2().calls("DescribeNetworkInterfaces"), 0);
    assert_eq!(world.reads(), 2);
    assert_eq!(world.ec2().write_calls(), 2);
}

#[tokio::test]
async fn catalog_read_once_for_new_policies() {
    let world = World::converged().await;
    let other_filter = world.ec2().add_filter();
    let mut second = prod_policy("db", &world.policy.spec.target.id, &other_filter, "");
    second.spec.selector.tags.as_mut().unwrap().match_labels.insert("team".into(), "db".into());
    let policies = [world.policy.clone(), second];
    let (first_instance, _) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let (second_instance, _) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let scope = |id: &str| SourceScope { instance_ids: BTreeSet::from([id.to_string()]), ..Default::default() };

    // The cached catalog lacks the new policy's filter, so the first source pass reads it.
    world.engine.reconcile_sources(&policies, &scope(&first_instance), Mode::Apply).await.unwrap();
    let reads_of_first = world.reads();
    world.ec2().reset_calls();
    world.engine.reconcile_sources(&policies, &scope(&second_instance), Mode::Apply).await.unwrap();

    assert_eq!(reads_of_first, 4);
    assert_eq!(world.reads(), 2);
}

#[tokio::test]
async fn detach_after_event_attach_is_resolved() {
    let world = World::converged().await;
    let (instance, _) = world.ec2().add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let eni = world.ec2().attach_interface(&instance);
    world.reconcile(&[&instance], &[&eni]).await;
    let attachment = world
        .instance_with(&eni)
        .await
        .network_interfaces
        .into_iter()
        .find(|n| n.id == eni)
        .unwrap()
        .attachment_id
        .unwrap();

    // No region pass ran since the attachment, yet the detach record's id resolves.
    let resolved = world.engine.attachments.lock().unwrap().interface_of(&attachment).map(str::to_string);

    assert_eq!(resolved.as_deref(), Some(eni.as_str()));
}
