//! The plan: the diff between what a policy wants and what the inventory shows.
//!
//! `plan` is a pure function of (policy, cluster name, inventory, instance-type verdicts). It
//! contains every mirroring rule, so most behaviour is tested here without any I/O.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::aws::model::{Instance, ModifySession, NetworkInterface, Session};
use crate::instance_types::SupportSnapshot;
use crate::inventory::Inventory;
use crate::ownership::is_owned_by;
use crate::policy::{InterfaceSelection, MirrorPolicy};
use crate::selector::selects;

/// Sessions AWS allows on one source network interface.
pub const MAX_SESSIONS_PER_INTERFACE: usize = 3;

/// Highest session number AWS accepts.
pub const MAX_SESSION_NUMBER: i32 = 32766;

/// The reason a selected network interface is not mirrored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnmirroredReason {
    /// The instance type cannot be a mirror source.
    UnsupportedInstanceType,
    /// The interface is not of type `interface` (trunk, branch, EFA and others).
    UnsupportedInterfaceType,
    /// The interface is a mirror target, which cannot also be a source.
    SourceIsTarget,
    /// The interface already carries the maximum of three sessions.
    SessionQuotaReached,
    /// The policy's session number is taken by another session on the interface.
    SessionNumberInUse,
    /// The policy's target does not exist.
    TargetNotFound,
    /// The policy's filter does not exist.
    FilterNotFound,
    /// The ENI target already receives from its maximum number of sources.
    TargetSourceLimitReached,
    /// The account has reached its session quota.
    AccountSessionLimitReached,
    /// AWS kept throttling the create call.
    Throttled,
    /// Another AWS error; the detail names it.
    AwsError,
}

impl UnmirroredReason {
    pub const ALL: [UnmirroredReason; 11] = [
        UnmirroredReason::UnsupportedInstanceType,
        UnmirroredReason::UnsupportedInterfaceType,
        UnmirroredReason::SourceIsTarget,
        UnmirroredReason::SessionQuotaReached,
        UnmirroredReason::SessionNumberInUse,
        UnmirroredReason::TargetNotFound,
        UnmirroredReason::FilterNotFound,
        UnmirroredReason::TargetSourceLimitReached,
        UnmirroredReason::AccountSessionLimitReached,
        UnmirroredReason::Throttled,
        UnmirroredReason::AwsError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UnmirroredReason::UnsupportedInstanceType => "UnsupportedInstanceType",
            UnmirroredReason::UnsupportedInterfaceType => "UnsupportedInterfaceType",
            UnmirroredReason::SourceIsTarget => "SourceIsTarget",
            UnmirroredReason::SessionQuotaReached => "SessionQuotaReached",
            UnmirroredReason::SessionNumberInUse => "SessionNumberInUse",
            UnmirroredReason::TargetNotFound => "TargetNotFound",
            UnmirroredReason::FilterNotFound => "FilterNotFound",
            UnmirroredReason::TargetSourceLimitReached => "TargetSourceLimitReached",
            UnmirroredReason::AccountSessionLimitReached => "AccountSessionLimitReached",
            UnmirroredReason::Throttled => "Throttled",
            UnmirroredReason::AwsError => "AwsError",
        }
    }

    /// Returns whether AWS can never mirror such an interface, so it does not count as eligible.
    pub fn is_ineligible(self) -> bool {
        matches!(
            self,
            UnmirroredReason::UnsupportedInstanceType
                | UnmirroredReason::UnsupportedInterfaceType
                | UnmirroredReason::SourceIsTarget
        )
    }
}

impl fmt::Display for UnmirroredReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first field in which an owned session differs from the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drift {
    TargetChanged,
    FilterChanged,
    NumberChanged,
    PacketLengthChanged,
    VirtualNetworkIdChanged,
    DescriptionChanged,
}

impl Drift {
    pub fn as_str(self) -> &'static str {
        match self {
            Drift::TargetChanged => "TargetChanged",
            Drift::FilterChanged => "FilterChanged",
            Drift::NumberChanged => "NumberChanged",
            Drift::PacketLengthChanged => "PacketLengthChanged",
            Drift::VirtualNetworkIdChanged => "VirtualNetworkIdChanged",
            Drift::DescriptionChanged => "DescriptionChanged",
        }
    }
}

/// The reason an owned session is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// Its interface is no longer selected, attached to a live instance, or eligible.
    SourceNotSelected,
    /// Another session of the same policy already mirrors the interface.
    Duplicate,
    /// The policy was deleted with deletionPolicy Delete.
    PolicyDeleted,
}

impl DeleteReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteReason::SourceNotSelected => "SourceNotSelected",
            DeleteReason::Duplicate => "Duplicate",
            DeleteReason::PolicyDeleted => "PolicyDeleted",
        }
    }
}

/// A selected network interface and the instance it is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub instance_id: String,
    pub instance_type: String,
    pub network_interface_id: String,
}

impl Source {
    fn of(instance: &Instance, interface: &NetworkInterface) -> Self {
        Source {
            instance_id: instance.id.clone(),
            instance_type: instance.instance_type.clone(),
            network_interface_id: interface.id.clone(),
        }
    }
}

/// A session to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    pub source: Source,
    pub number: i32,
}

/// An owned session to modify back to the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    pub source: Source,
    pub change: ModifySession,
    /// Every drifted field, in a fixed order; the first labels metrics.
    pub drifts: Vec<Drift>,
}

/// An owned session to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    pub session_id: String,
    pub network_interface_id: String,
    pub reason: DeleteReason,
}

/// A selected interface that is already mirrored to the policy's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirrored {
    pub source: Source,
    pub session_id: String,
    /// True when the session belongs to someone else and is left alone.
    pub adopted: bool,
}

/// A selected interface that stays unmirrored, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmirrored {
    pub source: Source,
    pub reason: UnmirroredReason,
    pub detail: String,
}

/// The diff for one policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub policy: String,
    /// Selected interfaces of running instances.
    pub selected: usize,
    pub creates: Vec<Create>,
    pub repairs: Vec<Repair>,
    pub deletes: Vec<Delete>,
    pub mirrored: Vec<Mirrored>,
    pub unmirrored: Vec<Unmirrored>,
}

impl Plan {
    /// Returns whether applying the plan makes no AWS write.
    pub fn is_converged(&self) -> bool {
        self.creates.is_empty() && self.repairs.is_empty() && self.deletes.is_empty()
    }
}

/// The session a policy wants on each source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredSession {
    pub target_id: String,
    pub filter_id: String,
    /// `None` takes the lowest free number on each interface.
    pub number: Option<i32>,
    pub packet_length: Option<i32>,
    pub virtual_network_id: Option<i32>,
    pub description: String,
}

impl DesiredSession {
    pub fn of(policy: &MirrorPolicy) -> Self {
        let spec = &policy.spec;
        DesiredSession {
            target_id: spec.target.id.clone(),
            filter_id: spec.filter.id.clone(),
            number: spec.session.number,
            packet_length: spec.session.packet_length,
            virtual_network_id: spec.session.virtual_network_id,
            description: spec
                .session
                .description
                .clone()
                .unwrap_or_else(|| format!("Mirrored by vpc-mirror-controller for policy {}", policy.policy_name())),
        }
    }
}

/// Returns the interfaces of an instance that the policy's `interfaces` setting picks.
fn picked_interfaces(instance: &Instance, selection: InterfaceSelection) -> impl Iterator<Item = &NetworkInterface> {
    instance.network_interfaces.iter().filter(move |interface| match selection {
        InterfaceSelection::All => true,
        InterfaceSelection::Primary => interface.device_index == 0 && interface.network_card_index == 0,
    })
}

/// Computes the plan of one valid policy against an inventory.
pub fn plan(policy: &MirrorPolicy, cluster: &str, inventory: &Inventory, support: &SupportSnapshot) -> Plan {
    let name = policy.policy_name();
    let spec = &policy.spec;
    let desired = DesiredSession::of(policy);
    let target_missing = !inventory.targets.contains_key(&desired.target_id);
    let filter_missing = !inventory.filters.contains(&desired.filter_id);

    let mut owned_by_interface: HashMap<&str, Vec<&Session>> = HashMap::new();
    for session in inventory.sessions.values() {
        if is_owned_by(session, cluster, name) {
            owned_by_interface.entry(session.network_interface_id.as_str()).or_default().push(session);
        }
    }

    let mut plan = Plan { policy: name.to_string(), ..Plan::default() };
    // Interfaces whose owned sessions stay: selected and eligible, or not decidable right now.
    let mut keep: HashSet<&str> = HashSet::new();

    for instance in inventory.instances.iter().filter(|i| selects(&spec.selector, i)) {
        for interface in picked_interfaces(instance, spec.interfaces) {
            match instance.state.as_str() {
                "running" => {}
                // A starting instance keeps its sessions; it is judged once it runs.
                "pending" => {
                    keep.insert(interface.id.as_str());
                    continue;
                }
                // Stopping, stopped or terminated: AWS keeps (and bills) the sessions, which no
                // longer mirror anything, so owned ones are pruned.
                _ => continue,
            }
            plan.selected += 1;
            let source = Source::of(instance, interface);
            let owned = owned_by_interface.get(interface.id.as_str()).map(Vec::as_slice).unwrap_or_default();
            let on_interface = inventory.sessions_on(&interface.id);
            let unmirrored = |reason, detail: String| Unmirrored { source: source.clone(), reason, detail };

            if interface.interface_type != "interface" {
                let detail = format!("interface type {} cannot be a mirror source", interface.interface_type);
                plan.unmirrored.push(unmirrored(UnmirroredReason::UnsupportedInterfaceType, detail));
                continue;
            }
            if inventory.is_target_interface(&interface.id) {
                let detail = "the interface is a Traffic Mirror target".to_string();
                plan.unmirrored.push(unmirrored(UnmirroredReason::SourceIsTarget, detail));
                continue;
            }
            // An existing session proves nothing here: AWS keeps sessions when an instance
            // changes to an unsupported type, and they stop mirroring.
            if !support.supports(&instance.instance_type) {
                let detail = format!("instance type {} does not support Traffic Mirroring", instance.instance_type);
                plan.unmirrored.push(unmirrored(UnmirroredReason::UnsupportedInstanceType, detail));
                continue;
            }
            keep.insert(interface.id.as_str());
            if target_missing {
                let detail = format!("target {} not found", desired.target_id);
                plan.unmirrored.push(unmirrored(UnmirroredReason::TargetNotFound, detail));
                continue;
            }
            if filter_missing {
                let detail = format!("filter {} not found", desired.filter_id);
                plan.unmirrored.push(unmirrored(UnmirroredReason::FilterNotFound, detail));
                continue;
            }

            let owned_to_target = owned.iter().any(|s| s.target_id == desired.target_id);
            let equivalent =
                on_interface.iter().find(|s| s.target_id == desired.target_id && !owned.iter().any(|o| o.id == s.id));
            if let (Some(existing), false) = (equivalent, owned_to_target) {
                // Someone else's session already mirrors to the target. Repairing a drifted
                // session of ours would mirror every packet twice, so ours are retired.
                for session in owned {
                    plan.deletes.push(Delete {
                        session_id: session.id.clone(),
                        network_interface_id: interface.id.clone(),
                        reason: DeleteReason::Duplicate,
                    });
                }
                plan.mirrored.push(Mirrored { source, session_id: existing.id.clone(), adopted: true });
                continue;
            }
            if !owned.is_empty() {
                plan_owned(&mut plan, source, owned, &on_interface, &desired);
                continue;
            }
            if on_interface.len() >= MAX_SESSIONS_PER_INTERFACE {
                let detail = format!("the interface already has {} sessions, the AWS maximum", on_interface.len());
                plan.unmirrored.push(unmirrored(UnmirroredReason::SessionQuotaReached, detail));
                continue;
            }
            match choose_number(desired.number, &on_interface) {
                Ok(number) => plan.creates.push(Create { source, number }),
                Err(holder) => {
                    let detail =
                        format!("session number {} is used by session {holder}", desired.number.unwrap_or_default());
                    plan.unmirrored.push(unmirrored(UnmirroredReason::SessionNumberInUse, detail));
                }
            }
        }
    }

    if spec.prune {
        for (interface_id, sessions) in &owned_by_interface {
            if keep.contains(interface_id) {
                continue;
            }
            for session in sessions {
                plan.deletes.push(Delete {
                    session_id: session.id.clone(),
                    network_interface_id: interface_id.to_string(),
                    reason: DeleteReason::SourceNotSelected,
                });
            }
        }
        // Sorted so that the plan does not depend on hash order.
        plan.deletes.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    }
    plan
}

/// Plans one interface that already has sessions of this policy: keep one, repair it if it
/// drifted, and delete the others.
fn plan_owned(
    plan: &mut Plan,
    source: Source,
    owned: &[&Session],
    on_interface: &[&Session],
    desired: &DesiredSession,
) {
    let keeper = owned
        .iter()
        .min_by_key(|s| (s.target_id != desired.target_id, s.filter_id != desired.filter_id, s.number, s.id.as_str()))
        .expect("owned is not empty");
    for duplicate in owned.iter().filter(|s| s.id != keeper.id) {
        plan.deletes.push(Delete {
            session_id: duplicate.id.clone(),
            network_interface_id: source.network_interface_id.clone(),
            reason: DeleteReason::Duplicate,
        });
    }
    // Duplicates are being deleted, so their numbers do not block the keeper's.
    let others: Vec<&Session> =
        on_interface.iter().copied().filter(|s| s.id != keeper.id && !owned.iter().any(|o| o.id == s.id)).collect();
    match drift(keeper, desired, &others) {
        Some((change, drifts)) => plan.repairs.push(Repair { source, change, drifts }),
        None => plan.mirrored.push(Mirrored { source, session_id: keeper.id.clone(), adopted: false }),
    }
}

/// Compares an owned session with the policy and returns the change that repairs it.
fn drift(session: &Session, desired: &DesiredSession, others: &[&Session]) -> Option<(ModifySession, Vec<Drift>)> {
    let mut change = ModifySession { session_id: session.id.clone(), ..ModifySession::default() };
    let mut drifts = Vec::new();
    if session.target_id != desired.target_id {
        change.target_id = Some(desired.target_id.clone());
        drifts.push(Drift::TargetChanged);
    }
    if session.filter_id != desired.filter_id {
        change.filter_id = Some(desired.filter_id.clone());
        drifts.push(Drift::FilterChanged);
    }
    if let Some(number) = desired.number {
        // When another session uses the policy's number, the current number stays, because
        // renumbering would fail and the session mirrors all the same.
        if session.number != number && !others.iter().any(|s| s.number == number) {
            change.number = Some(number);
            drifts.push(Drift::NumberChanged);
        }
    }
    if session.packet_length != desired.packet_length {
        match desired.packet_length {
            Some(length) => change.packet_length = Some(length),
            None => change.remove_packet_length = true,
        }
        drifts.push(Drift::PacketLengthChanged);
    }
    if let Some(vni) = desired.virtual_network_id {
        if session.virtual_network_id != Some(vni) {
            change.virtual_network_id = Some(vni);
            drifts.push(Drift::VirtualNetworkIdChanged);
        }
    }
    if session.description.as_deref() != Some(desired.description.as_str()) {
        change.description = Some(desired.description.clone());
        drifts.push(Drift::DescriptionChanged);
    }
    (!drifts.is_empty()).then_some((change, drifts))
}

/// Returns the policy's number when it is free, or the lowest free number when the policy
/// leaves it open. On a conflict, returns the id of the session that uses the number.
fn choose_number(wanted: Option<i32>, on_interface: &[&Session]) -> Result<i32, String> {
    match wanted {
        Some(number) => match on_interface.iter().find(|s| s.number == number) {
            Some(holder) => Err(holder.id.clone()),
            None => Ok(number),
        },
        None => {
            let lowest_free = (1..=MAX_SESSION_NUMBER)
                .find(|n| !on_interface.iter().any(|s| s.number == *n))
                .expect("at most three sessions use numbers, so one of 32766 is free");
            Ok(lowest_free)
        }
    }
}
