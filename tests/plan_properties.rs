//! Property tests of `plan::plan` over random inventories: a few supported and unsupported
//! instances, ENIs of mixed interface types, and up to three pre-existing sessions per ENI
//! owned by this policy, another policy or another cluster, or untagged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

use vpc_mirror_controller::apply::{ApplyContext, apply};
use vpc_mirror_controller::aws::fake::FakeEc2;
use vpc_mirror_controller::aws::model::{CreateSession, Instance, NetworkInterface, Session, Target};
use vpc_mirror_controller::instance_types::InstanceTypeSupport;
use vpc_mirror_controller::inventory::{self, Inventory, InventoryRequest, InventoryScope};
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::ownership::{is_owned_by, ownership_tags};
use vpc_mirror_controller::plan::{
    DeleteReason, DesiredSession, MAX_SESSION_NUMBER, MAX_SESSIONS_PER_INTERFACE, Plan, plan,
};
use vpc_mirror_controller::policy::{
    FilterRef, InstanceSelector, InterfaceSelection, MirrorPolicy, MirrorPolicySpec, SessionTemplate, TagSelector,
    TargetRef,
};
use vpc_mirror_controller::recent_sessions::RecentSessions;
use vpc_mirror_controller::session_index::SessionIndex;

const CLUSTER: &str = "prod";
const POLICY: &str = "web";
const POLICY_TARGET: &str = "tmt-0000000000000a001";
const OTHER_TARGET: &str = "tmt-0000000000000a002";
const POLICY_FILTER: &str = "tmf-0000000000000b001";
const OTHER_FILTER: &str = "tmf-0000000000000b002";

/// The owner of a pre-existing session, as its tags name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    ThisPolicy,
    OtherPolicy,
    OtherCluster,
    /// No tags at all, as a session made by hand or by another tool.
    Foreign,
}

impl Owner {
    fn tags(self) -> BTreeMap<String, String> {
        match self {
            Owner::ThisPolicy => ownership_tags(CLUSTER, POLICY),
            Owner::OtherPolicy => ownership_tags(CLUSTER, "api"),
            Owner::OtherCluster => ownership_tags("staging", POLICY),
            Owner::Foreign => BTreeMap::new(),
        }
    }
}

/// A pre-existing session before ids are assigned.
#[derive(Clone, Debug)]
struct SessionSketch {
    number: i32,
    owner: Owner,
    to_policy_target: bool,
    through_policy_filter: bool,
    packet_length: Option<i32>,
    virtual_network_id: i32,
    /// Whether the description equals the one the policy wants.
    policy_description: bool,
}

#[derive(Clone, Debug)]
struct InterfaceSketch {
    interface_type: &'static str,
    sessions: Vec<SessionSketch>,
}

#[derive(Clone, Debug)]
struct InstanceSketch {
    instance_type: &'static str,
    running: bool,
    /// Whether the instance carries the tag the policy selects.
    tagged: bool,
    interfaces: Vec<InterfaceSketch>,
}

#[derive(Clone, Debug)]
struct PolicySketch {
    number: Option<i32>,
    interfaces: InterfaceSelection,
    prune: bool,
    packet_length: Option<i32>,
    virtual_network_id: Option<i32>,
    description: Option<String>,
}

#[derive(Clone, Debug)]
struct Scenario {
    instances: Vec<InstanceSketch>,
    /// ENIs detached from every instance whose sessions AWS keeps.
    detached: Vec<Vec<SessionSketch>>,
    policy: PolicySketch,
    target_exists: bool,
    filter_exists: bool,
    /// When set, the other target is an ENI target on this attached ENI (by position).
    target_interface: Option<Index>,
}

fn owner_strategy() -> impl Strategy<Value = Owner> {
    prop_oneof![
        2 => Just(Owner::ThisPolicy),
        1 => Just(Owner::OtherPolicy),
        1 => Just(Owner::OtherCluster),
        2 => Just(Owner::Foreign),
    ]
}

/// Zero to three sessions with unique numbers from 1 to 6, so that they often hold the
/// policy's number (1 to 4) and leave gaps for automatic numbering. Full interfaces are
/// drawn more often than the other sizes, so that the quota matters in many cases.
fn sessions_strategy() -> impl Strategy<Value = Vec<SessionSketch>> {
    let fields = || {
        (
            owner_strategy(),
            prop::bool::weighted(0.3),
            prop::bool::weighted(0.8),
            prop::sample::select(vec![None, Some(128)]),
            1..=4i32,
            prop::bool::weighted(0.7),
        )
    };
    let count = prop_oneof![1 => 0..MAX_SESSIONS_PER_INTERFACE, 1 => Just(MAX_SESSIONS_PER_INTERFACE)];
    count
        .prop_flat_map(|count| prop::sample::subsequence((1..=6).collect::<Vec<i32>>(), count))
        .prop_flat_map(move |numbers| {
            let count = numbers.len();
            (Just(numbers), prop::collection::vec(fields(), count))
        })
        .prop_map(|(numbers, fields)| {
            numbers
                .into_iter()
                .zip(fields)
                .map(
                    |(
                        number,
                        (
                            owner,
                            to_policy_target,
                            through_policy_filter,
                            packet_length,
                            virtual_network_id,
                            policy_description,
                        ),
                    )| {
                        SessionSketch {
                            number,
                            owner,
                            to_policy_target,
                            through_policy_filter,
                            packet_length,
                            virtual_network_id,
                            policy_description,
                        }
                    },
                )
                .collect()
        })
}

fn interface_strategy() -> impl Strategy<Value = InterfaceSketch> {
    let interface_type = prop_oneof![
        8 => Just("interface"),
        1 => Just("trunk"),
        1 => Just("branch"),
        1 => Just("efa"),
    ];
    (interface_type, sessions_strategy())
        .prop_map(|(interface_type, sessions)| InterfaceSketch { interface_type, sessions })
}

fn instance_strategy() -> impl Strategy<Value = InstanceSketch> {
    (
        prop_oneof![3 => Just("m5.large"), 1 => Just("t2.micro")],
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.8),
        prop::collection::vec(interface_strategy(), 1..=3),
    )
        .prop_map(|(instance_type, running, tagged, interfaces)| InstanceSketch {
            instance_type,
            running,
            tagged,
            interfaces,
        })
}

fn policy_strategy() -> impl Strategy<Value = PolicySketch> {
    (
        prop::option::of(1..5i32),
        prop::sample::select(vec![InterfaceSelection::All, InterfaceSelection::Primary]),
        any::<bool>(),
        prop::sample::select(vec![None, Some(128)]),
        prop::option::of(1..=4i32),
        prop::sample::select(vec![None, Some("mirrored for the web team".to_string())]),
    )
        .prop_map(|(number, interfaces, prune, packet_length, virtual_network_id, description)| PolicySketch {
            number,
            interfaces,
            prune,
            packet_length,
            virtual_network_id,
            description,
        })
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(instance_strategy(), 1..=4),
        prop::collection::vec(sessions_strategy(), 0..=2),
        policy_strategy(),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
        prop::option::weighted(0.2, any::<Index>()),
    )
        .prop_map(|(instances, detached, policy, target_exists, filter_exists, target_interface)| Scenario {
            instances,
            detached,
            policy,
            target_exists,
            filter_exists,
            target_interface,
        })
}

fn mirror_policy(sketch: &PolicySketch) -> MirrorPolicy {
    let spec = MirrorPolicySpec {
        target: TargetRef { id: POLICY_TARGET.to_string() },
        filter: FilterRef { id: POLICY_FILTER.to_string() },
        selector: InstanceSelector {
            tags: Some(TagSelector {
                match_labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
                match_expressions: vec![],
            }),
            ..InstanceSelector::default()
        },
        interfaces: sketch.interfaces,
        session: SessionTemplate {
            number: sketch.number,
            packet_length: sketch.packet_length,
            virtual_network_id: sketch.virtual_network_id,
            description: sketch.description.clone(),
        },
        prune: sketch.prune,
        deletion_policy: Default::default(),
    };
    MirrorPolicy::new(POLICY, spec)
}

fn tags_of(tagged: bool) -> BTreeMap<String, String> {
    let env = if tagged { "prod" } else { "dev" };
    BTreeMap::from([("env".to_string(), env.to_string())])
}

fn session_of(sketch: &SessionSketch, id: String, interface_id: &str, desired: &DesiredSession) -> Session {
    Session {
        id,
        network_interface_id: interface_id.to_string(),
        target_id: if sketch.to_policy_target { POLICY_TARGET } else { OTHER_TARGET }.to_string(),
        filter_id: if sketch.through_policy_filter { POLICY_FILTER } else { OTHER_FILTER }.to_string(),
        number: sketch.number,
        packet_length: sketch.packet_length,
        virtual_network_id: Some(sketch.virtual_network_id),
        description: Some(if sketch.policy_description {
            desired.description.clone()
        } else {
            "made by hand".to_string()
        }),
        tags: sketch.owner.tags(),
    }
}

/// Turns a scenario into the policy and the inventory the plan reads.
fn build(scenario: &Scenario) -> (MirrorPolicy, Inventory) {
    let policy = mirror_policy(&scenario.policy);
    let desired = DesiredSession::of(&policy);
    let mut next_id = 0u64;
    let mut new_id = |prefix: &str| {
        next_id += 1;
        format!("{prefix}-{next_id:017x}")
    };

    let mut instances = Vec::new();
    let mut sessions = Vec::new();
    let mut attached_interfaces = Vec::new();
    for instance_sketch in &scenario.instances {
        let mut interfaces = Vec::new();
        for (index, interface_sketch) in instance_sketch.interfaces.iter().enumerate() {
            let interface_id = new_id("eni");
            for session_sketch in &interface_sketch.sessions {
                sessions.push(session_of(session_sketch, new_id("tms"), &interface_id, &desired));
            }
            attached_interfaces.push(interface_id.clone());
            interfaces.push(NetworkInterface {
                id: interface_id,
                interface_type: interface_sketch.interface_type.to_string(),
                device_index: index as i32,
                network_card_index: 0,
                attachment_id: Some(new_id("eni-attach")),
            });
        }
        instances.push(Instance {
            id: new_id("i"),
            instance_type: instance_sketch.instance_type.to_string(),
            state: if instance_sketch.running { "running" } else { "pending" }.to_string(),
            vpc_id: Some("vpc-0000000000000000a".to_string()),
            subnet_id: Some("subnet-0000000000000000a".to_string()),
            availability_zone: Some("us-east-1a".to_string()),
            tags: tags_of(instance_sketch.tagged),
            network_interfaces: interfaces,
        });
    }
    for detached_sessions in &scenario.detached {
        let interface_id = new_id("eni");
        for session_sketch in detached_sessions {
            sessions.push(session_of(session_sketch, new_id("tms"), &interface_id, &desired));
        }
    }

    let other_target_interface = scenario.target_interface.map(|index| index.get(&attached_interfaces).clone());
    let mut targets = vec![Target {
        id: OTHER_TARGET.to_string(),
        target_type: Some(
            if other_target_interface.is_some() { "network-interface" } else { "network-load-balancer" }.to_string(),
        ),
        network_interface_id: other_target_interface,
    }];
    if scenario.target_exists {
        targets.push(Target {
            id: POLICY_TARGET.to_string(),
            network_interface_id: None,
            target_type: Some("network-load-balancer".to_string()),
        });
    }
    let mut filters = BTreeSet::from([OTHER_FILTER.to_string()]);
    if scenario.filter_exists {
        filters.insert(POLICY_FILTER.to_string());
    }
    (policy, Inventory::new(instances, sessions, targets, filters))
}

fn plan_of(policy: &MirrorPolicy, inventory: &Inventory) -> Plan {
    let support = InstanceTypeSupport::default();
    plan(policy, CLUSTER, inventory, &support.snapshot(Instant::now()))
}

/// Returns the interface ids the plan lists as creates, repairs, mirrored or unmirrored,
/// with how often each appears.
fn listed_interfaces(plan: &Plan) -> BTreeMap<String, usize> {
    let sources = plan
        .creates
        .iter()
        .map(|c| &c.source)
        .chain(plan.repairs.iter().map(|r| &r.source))
        .chain(plan.mirrored.iter().map(|m| &m.source))
        .chain(plan.unmirrored.iter().map(|u| &u.source));
    let mut counts = BTreeMap::new();
    for source in sources {
        *counts.entry(source.network_interface_id.clone()).or_insert(0) += 1;
    }
    counts
}

/// Returns the ENIs the policy selects on running instances, as the policy defines them.
fn selected_interfaces(scenario: &Scenario, inventory: &Inventory) -> BTreeSet<String> {
    let mut selected = BTreeSet::new();
    for instance in &inventory.instances {
        let tagged = instance.tags.get("env").map(String::as_str) == Some("prod");
        if !tagged || instance.state != "running" {
            continue;
        }
        for interface in &instance.network_interfaces {
            let picked = match scenario.policy.interfaces {
                InterfaceSelection::All => true,
                InterfaceSelection::Primary => interface.device_index == 0,
            };
            if picked {
                selected.insert(interface.id.clone());
            }
        }
    }
    selected
}

/// Applies the plan to the inventory as AWS would after every write succeeded: deletes
/// removed, repairs changed in place, creates added with this policy's tags.
fn apply_in_memory(inventory: &Inventory, plan: &Plan, desired: &DesiredSession) -> Inventory {
    let mut sessions = inventory.sessions.clone();
    for delete in &plan.deletes {
        let removed = sessions.remove(&delete.session_id);
        assert!(removed.is_some(), "delete of unknown session {}", delete.session_id);
    }
    for repair in &plan.repairs {
        let change = &repair.change;
        let session = sessions.get_mut(&change.session_id).expect("a repaired session exists and is not deleted");
        if let Some(target_id) = &change.target_id {
            session.target_id = target_id.clone();
        }
        if let Some(filter_id) = &change.filter_id {
            session.filter_id = filter_id.clone();
        }
        if let Some(number) = change.number {
            session.number = number;
        }
        if let Some(length) = change.packet_length {
            session.packet_length = Some(length);
        }
        if change.remove_packet_length {
            session.packet_length = None;
        }
        if let Some(vni) = change.virtual_network_id {
            session.virtual_network_id = Some(vni);
        }
        if let Some(description) = &change.description {
            session.description = Some(description.clone());
        }
        if change.remove_description {
            session.description = None;
        }
    }
    for (position, create) in plan.creates.iter().enumerate() {
        let id = format!("tms-f{position:016x}");
        // AWS picks a virtual network id when the policy leaves it open, and any unused one will do.
        let assigned_vni = 1_000 + position as i32;
        let session = Session {
            id: id.clone(),
            network_interface_id: create.source.network_interface_id.clone(),
            target_id: desired.target_id.clone(),
            filter_id: desired.filter_id.clone(),
            number: create.number,
            packet_length: desired.packet_length,
            virtual_network_id: Some(desired.virtual_network_id.unwrap_or(assigned_vni)),
            description: Some(desired.description.clone()),
            tags: ownership_tags(CLUSTER, POLICY),
        };
        sessions.insert(id, session);
    }
    Inventory::new(
        inventory.instances.clone(),
        sessions.into_values().collect(),
        inventory.targets.values().cloned().collect(),
        inventory.filters.clone(),
    )
}

fn config() -> Config {
    // No regression files: a failure prints its minimal case instead.
    Config { cases: 200, failure_persistence: None, ..Config::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn deletes_and_repairs_only_owned(scenario in scenario_strategy()) {
        let (policy, inventory) = build(&scenario);

        let plan = plan_of(&policy, &inventory);

        for delete in &plan.deletes {
            let session = inventory.sessions.get(&delete.session_id);
            prop_assert!(session.is_some(), "delete of unknown session {}", delete.session_id);
            let session = session.unwrap();
            prop_assert!(is_owned_by(session, CLUSTER, POLICY), "delete of session not owned by the policy: {session:?}");
            prop_assert_eq!(&session.tags, &ownership_tags(CLUSTER, POLICY));
            prop_assert_eq!(&delete.network_interface_id, &session.network_interface_id);
        }
        for repair in &plan.repairs {
            let session = inventory.sessions.get(&repair.change.session_id);
            prop_assert!(session.is_some(), "repair of unknown session {}", repair.change.session_id);
            let session = session.unwrap();
            prop_assert!(is_owned_by(session, CLUSTER, POLICY), "repair of session not owned by the policy: {session:?}");
            prop_assert_eq!(&repair.source.network_interface_id, &session.network_interface_id);
        }
        let deleted: BTreeSet<&str> = plan.deletes.iter().map(|d| d.session_id.as_str()).collect();
        prop_assert_eq!(deleted.len(), plan.deletes.len(), "a session is deleted twice");
        for repair in &plan.repairs {
            prop_assert!(!deleted.contains(repair.change.session_id.as_str()), "session {} is both repaired and deleted", repair.change.session_id);
        }
    }

    #[test]
    fn selected_interfaces_listed_once(scenario in scenario_strategy()) {
        let (policy, inventory) = build(&scenario);
        let selected = selected_interfaces(&scenario, &inventory);

        let plan = plan_of(&policy, &inventory);

        let listed = listed_interfaces(&plan);
        for interface in &selected {
            prop_assert_eq!(listed.get(interface).copied(), Some(1), "selected interface {} is not listed exactly once", interface);
        }
        for interface in listed.keys() {
            prop_assert!(selected.contains(interface), "interface {} is listed but not selected", interface);
        }
        prop_assert_eq!(plan.selected, selected.len());
    }

    #[test]
    fn creates_respect_quota_and_numbers(scenario in scenario_strategy()) {
        let (policy, inventory) = build(&scenario);

        let plan = plan_of(&policy, &inventory);

        for create in &plan.creates {
            let existing = inventory.sessions_on(&create.source.network_interface_id);
            let numbers: BTreeSet<i32> = existing.iter().map(|s| s.number).collect();
            prop_assert!(existing.len() < MAX_SESSIONS_PER_INTERFACE, "create on a full interface: {:?}", create);
            prop_assert!(!numbers.contains(&create.number), "create reuses number {} on {}", create.number, create.source.network_interface_id);
            prop_assert!((1..=MAX_SESSION_NUMBER).contains(&create.number), "create number {} out of range", create.number);
            match scenario.policy.number {
                Some(number) => prop_assert_eq!(create.number, number),
                None => {
                    let lowest_free = (1..=MAX_SESSION_NUMBER).find(|n| !numbers.contains(n));
                    prop_assert_eq!(Some(create.number), lowest_free);
                }
            }
        }
        let created: BTreeSet<&str> = plan.creates.iter().map(|c| c.source.network_interface_id.as_str()).collect();
        prop_assert_eq!(created.len(), plan.creates.len(), "two creates on one interface");
    }

    #[test]
    fn plan_is_idempotent(scenario in scenario_strategy()) {
        let (policy, inventory) = build(&scenario);
        let desired = DesiredSession::of(&policy);

        let first = plan_of(&policy, &inventory);
        let after = apply_in_memory(&inventory, &first, &desired);
        let second = plan_of(&policy, &after);

        for interface in after.sessions.values().map(|s| s.network_interface_id.as_str()).collect::<BTreeSet<_>>() {
            let on_interface = after.sessions_on(interface);
            let numbers: BTreeSet<i32> = on_interface.iter().map(|s| s.number).collect();
            prop_assert!(on_interface.len() <= MAX_SESSIONS_PER_INTERFACE, "{} sessions on {} after the plan", on_interface.len(), interface);
            prop_assert_eq!(numbers.len(), on_interface.len(), "duplicate session numbers on {} after the plan", interface);
        }
        prop_assert!(second.is_converged(), "second plan is not converged: {:?}", second);
        prop_assert_eq!(second.selected, first.selected);
    }

    #[test]
    fn no_prune_deletes_only_duplicates(scenario in scenario_strategy()) {
        let mut scenario = scenario;
        scenario.policy.prune = false;
        let (policy, inventory) = build(&scenario);

        let plan = plan_of(&policy, &inventory);

        for delete in &plan.deletes {
            prop_assert_eq!(delete.reason, DeleteReason::Duplicate, "delete without prune: {:?}", delete);
        }
    }
}

// Applying through the real apply and the in-memory EC2 ----------------------------------------

/// The fake EC2 seeded with a scenario, and the policy with the fake's target and filter ids.
struct Seeded {
    ec2: FakeEc2,
    policy: MirrorPolicy,
}

/// Seeds a fake EC2 with the scenario. The fake rejects sessions on interfaces other than
/// type `interface`, so such sketches get none. Every other session is created as sketched.
fn seed_fake(scenario: &Scenario) -> Seeded {
    let ec2 = FakeEc2::new();
    // Instances of unsupported types get sessions too, as an instance whose type changed keeps
    // its sessions, so the type check is off while seeding.
    ec2.set_unsupported_types(&[]);
    let policy_target = ec2.add_target(None);
    let other_target = ec2.add_target(None);
    let policy_filter = ec2.add_filter();
    let other_filter = ec2.add_filter();
    let mut sketch_policy = mirror_policy(&scenario.policy);
    sketch_policy.spec.target.id = policy_target.clone();
    if scenario.filter_exists {
        sketch_policy.spec.filter.id = policy_filter.clone();
    } else {
        sketch_policy.spec.filter.id = "tmf-0ffffffffffffffff".to_string();
    }
    let desired = DesiredSession::of(&sketch_policy);

    let seed_sessions = |interface_id: &str, sessions: &[SessionSketch]| {
        for sketch in sessions {
            let filter =
                if sketch.through_policy_filter && scenario.filter_exists { &policy_filter } else { &other_filter };
            let request = CreateSession {
                network_interface_id: interface_id.to_string(),
                target_id: if sketch.to_policy_target { &policy_target } else { &other_target }.clone(),
                filter_id: filter.clone(),
                number: sketch.number,
                packet_length: sketch.packet_length,
                virtual_network_id: Some(sketch.virtual_network_id),
                description: Some(if sketch.policy_description {
                    desired.description.clone()
                } else {
                    "made by hand".to_string()
                }),
                tags: sketch.owner.tags(),
                client_token: String::new(),
            };
            ec2.add_session_directly(&request).expect("a sketched session is valid");
        }
    };

    let mut attached_interfaces = Vec::new();
    for instance_sketch in &scenario.instances {
        let types: Vec<&str> = instance_sketch.interfaces.iter().map(|i| i.interface_type).collect();
        let tags = [("env", if instance_sketch.tagged { "prod" } else { "dev" })];
        let (instance_id, interface_ids) = ec2.add_instance(instance_sketch.instance_type, &tags, &types);
        for (interface_id, interface_sketch) in interface_ids.iter().zip(&instance_sketch.interfaces) {
            if interface_sketch.interface_type == "interface" {
                seed_sessions(interface_id, &interface_sketch.sessions);
            }
        }
        attached_interfaces.extend(interface_ids);
        if !instance_sketch.running {
            ec2.update_instance(&instance_id, |instance| instance.state = "pending".to_string());
        }
    }
    for detached_sessions in &scenario.detached {
        let (instance_id, interface_ids) = ec2.add_instance("m5.large", &[], &["interface"]);
        seed_sessions(&interface_ids[0], detached_sessions);
        ec2.remove_instance(&instance_id);
    }

    // The fake rejects a target's ENI as a source, so the ENI target is made after the
    // sessions exist. The plan must report that ENI as ineligible whatever sessions it has.
    if let Some(index) = scenario.target_interface {
        let interface = index.get(&attached_interfaces);
        ec2.remove_target(&other_target);
        let interface_target = ec2.add_target(Some(interface));
        retarget_sessions(&ec2, &other_target, &interface_target);
    }
    if !scenario.target_exists {
        ec2.remove_target(&policy_target);
    }
    ec2.set_unsupported_types(&["t2.micro"]);
    Seeded { ec2, policy: sketch_policy }
}

/// Points every session of one target at another, as if it had been created that way.
fn retarget_sessions(ec2: &FakeEc2, from: &str, to: &str) {
    for session in ec2.sessions().into_iter().filter(|s| s.target_id == from) {
        ec2.modify_session_directly(&session.id, |s| s.target_id = to.to_string());
    }
}

async fn read_inventory(ec2: &FakeEc2, policy: &MirrorPolicy) -> Inventory {
    let request = InventoryRequest {
        scope: InventoryScope::Region { vpc_ids: None },
        filter_ids: BTreeSet::from([policy.spec.filter.id.clone()]),
    };
    inventory::read(ec2, &request, None).await.expect("the fake answers every read").0
}

/// Plans, applies through `apply`, reads again and plans again. Returns the failed writes
/// and the second plan.
async fn plan_apply_replan(seeded: &Seeded) -> (Vec<String>, Plan) {
    let support = InstanceTypeSupport::default();
    let metrics = Metrics::new();
    let index = Mutex::new(SessionIndex::default());
    let recent = Mutex::new(RecentSessions::default());
    // Writes run four at a time, as in the controller.
    let context = ApplyContext {
        ec2: &seeded.ec2,
        cluster: CLUSTER,
        index: &index,
        support: &support,
        metrics: &metrics,
        recent: &recent,
        concurrency: 4,
    };
    let desired = DesiredSession::of(&seeded.policy);

    let mut inventory = read_inventory(&seeded.ec2, &seeded.policy).await;
    index.lock().unwrap().refresh(CLUSTER, &inventory);
    let first = plan(&seeded.policy, CLUSTER, &inventory, &support.snapshot(Instant::now()));
    let outcome = apply(&context, &first, &desired, &mut inventory).await;
    let mut failures: Vec<String> =
        outcome.failed.iter().map(|f| format!("{}: {}", f.source.network_interface_id, f.detail)).collect();
    failures
        .extend(outcome.failed_deletes.iter().map(|(delete, error)| format!("delete {}: {error}", delete.session_id)));

    let after = read_inventory(&seeded.ec2, &seeded.policy).await;
    let second = plan(&seeded.policy, CLUSTER, &after, &support.snapshot(Instant::now()));
    (failures, second)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fake_apply_converges_in_one_pass(scenario in scenario_strategy()) {
        let seeded = seed_fake(&scenario);
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime starts");

        let (failures, second) = runtime.block_on(plan_apply_replan(&seeded));

        prop_assert!(failures.is_empty(), "writes failed: {:?}", failures);
        prop_assert!(second.is_converged(), "second plan is not converged: {:?}", second);
    }
}

/// Builds one ENI with two sessions of this policy, number 1 to another target and number 2
/// to the policy's target. The policy wants number 1, so the plan keeps the second session,
/// deletes the first as a duplicate and renumbers the kept one to 1.
fn duplicate_holds_policy_number() -> Scenario {
    let owned = |number, to_policy_target| SessionSketch {
        number,
        owner: Owner::ThisPolicy,
        to_policy_target,
        through_policy_filter: true,
        packet_length: None,
        virtual_network_id: 1,
        policy_description: true,
    };
    let interface = InterfaceSketch { interface_type: "interface", sessions: vec![owned(1, false), owned(2, true)] };
    Scenario {
        instances: vec![InstanceSketch {
            instance_type: "m5.large",
            running: true,
            tagged: true,
            interfaces: vec![interface],
        }],
        detached: vec![],
        policy: PolicySketch {
            number: Some(1),
            interfaces: InterfaceSelection::All,
            prune: true,
            packet_length: None,
            virtual_network_id: None,
            description: None,
        },
        target_exists: true,
        filter_exists: true,
        target_interface: None,
    }
}

#[test]
fn duplicate_delete_frees_keeper_number() {
    let (policy, inventory) = build(&duplicate_holds_policy_number());

    let plan = plan_of(&policy, &inventory);

    assert_eq!(plan.deletes.len(), 1);
    assert_eq!(plan.deletes[0].reason, DeleteReason::Duplicate);
    assert_eq!(plan.repairs.len(), 1);
    assert_eq!(plan.repairs[0].change.number, Some(1));
}

#[test]
fn keeper_takes_duplicate_number() {
    let seeded = seed_fake(&duplicate_holds_policy_number());
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime starts");

    let (failures, second) = runtime.block_on(plan_apply_replan(&seeded));

    assert_eq!(failures, Vec::<String>::new());
    assert!(second.is_converged(), "second plan is not converged: {second:?}");
}
