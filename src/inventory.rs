//! The inventory: a snapshot of the EC2 state that mirroring depends on, read with paged,
//! server-side-filtered Describe calls and shared by every policy of a region.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::aws::ec2::Ec2;
use crate::aws::error::Ec2Error;
use crate::aws::model::{Instance, InstanceQuery, Session, Target};

/// The part of a region that one inventory read covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InventoryScope {
    /// Every pending and running instance (narrowed to these VPCs when set) and every session.
    Region { vpc_ids: Option<BTreeSet<String>> },
    /// The named instances in any state, the named interfaces, and the sessions on them.
    Sources(SourceScope),
}

/// Instances and interfaces that an event names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceScope {
    pub instance_ids: BTreeSet<String>,
    pub network_interface_ids: BTreeSet<String>,
}

impl SourceScope {
    pub fn is_empty(&self) -> bool {
        self.instance_ids.is_empty() && self.network_interface_ids.is_empty()
    }

    /// Adds another scope's instances and interfaces to this one.
    pub fn merge(&mut self, other: &SourceScope) {
        self.instance_ids.extend(other.instance_ids.iter().cloned());
        self.network_interface_ids.extend(other.network_interface_ids.iter().cloned());
    }
}

/// The coverage of one inventory read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryRequest {
    pub scope: InventoryScope,
    /// The filters the policies name.
    pub filter_ids: BTreeSet<String>,
}

/// Targets and filters, which change rarely: narrow reads reuse those of the last region read.
/// Deleting a target or filter wakes a region read of the policies that use it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    pub targets: Vec<Target>,
    /// The requested filters that exist.
    pub filters: BTreeSet<String>,
    /// The filters that were requested, found or not.
    pub requested_filters: BTreeSet<String>,
}

/// Instances, sessions, targets and filters as read at one moment.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Instances with their attached network interfaces: pending and running ones for a region
    /// read, the named ones in any state for a source read.
    pub instances: Vec<Instance>,
    /// Every session of the region, or of the read interfaces, by id.
    pub sessions: BTreeMap<String, Session>,
    /// Every target of the region, by id.
    pub targets: BTreeMap<String, Target>,
    /// The requested filters that exist.
    pub filters: BTreeSet<String>,
    sessions_by_interface: HashMap<String, Vec<String>>,
    target_interfaces: HashSet<String>,
}

impl Inventory {
    /// Builds an inventory from parts and computes its lookup indexes.
    pub fn new(
        instances: Vec<Instance>,
        sessions: Vec<Session>,
        targets: Vec<Target>,
        filters: BTreeSet<String>,
    ) -> Self {
        let mut inventory = Inventory {
            instances,
            sessions: BTreeMap::new(),
            targets: targets.into_iter().map(|t| (t.id.clone(), t)).collect(),
            filters,
            sessions_by_interface: HashMap::new(),
            target_interfaces: HashSet::new(),
        };
        inventory.target_interfaces =
            inventory.targets.values().filter_map(|t| t.network_interface_id.clone()).collect();
        for session in sessions {
            inventory.insert_session(session);
        }
        inventory
    }

    /// Returns the sessions whose source is this network interface, lowest number first.
    pub fn sessions_on(&self, network_interface_id: &str) -> Vec<&Session> {
        let mut sessions: Vec<&Session> = self
            .sessions_by_interface
            .get(network_interface_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sessions.get(id))
            .collect();
        sessions.sort_by(|a, b| (a.number, &a.id).cmp(&(b.number, &b.id)));
        sessions
    }

    /// Returns whether the network interface is itself a mirror target.
    pub fn is_target_interface(&self, network_interface_id: &str) -> bool {
        self.target_interfaces.contains(network_interface_id)
    }

    /// Records a session that was created or modified after the read, so that later plans in
    /// the same pass see its number and quota use.
    pub fn insert_session(&mut self, session: Session) {
        if let Some(old) = self.sessions.get(&session.id) {
            let old_interface = old.network_interface_id.clone();
            if let Some(ids) = self.sessions_by_interface.get_mut(&old_interface) {
                ids.retain(|id| id != &session.id);
            }
        }
        self.sessions_by_interface.entry(session.network_interface_id.clone()).or_default().push(session.id.clone());
        self.sessions.insert(session.id.clone(), session);
    }

    /// Forgets a session that was deleted after the read.
    pub fn remove_session(&mut self, session_id: &str) {
        if let Some(session) = self.sessions.remove(session_id) {
            if let Some(ids) = self.sessions_by_interface.get_mut(&session.network_interface_id) {
                ids.retain(|id| id != session_id);
            }
        }
    }
}

/// Reads every page of a Describe call.
macro_rules! read_all_pages {
    ($call:expr) => {{
        let mut items = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = $call(next_token.take()).await?;
            items.extend(page.items);
            match page.next_token {
                Some(token) => next_token = Some(token),
                None => break items,
            }
        }
    }};
}

/// Reads the inventory that a request covers, and the catalog of targets and filters.
///
/// A region read costs one paged sweep per resource type. A source read of instances costs
/// two calls (instances, sessions), and one of interfaces three (interfaces, instances,
/// sessions), when `catalog` already covers the policies' filters, so an event never
/// triggers a region-wide sweep.
pub async fn read<E: Ec2>(
    ec2: &E,
    request: &InventoryRequest,
    catalog: Option<&Catalog>,
) -> Result<(Inventory, Catalog), Ec2Error> {
    let (instances, sessions) = match &request.scope {
        InventoryScope::Region { vpc_ids } => read_region(ec2, vpc_ids.as_ref()).await?,
        InventoryScope::Sources(sources) => read_sources(ec2, sources).await?,
    };

    let reusable = catalog.filter(|c| {
        matches!(request.scope, InventoryScope::Sources(_)) && request.filter_ids.is_subset(&c.requested_filters)
    });
    let catalog = match reusable {
        Some(catalog) => catalog.clone(),
        None => read_catalog(ec2, &request.filter_ids).await?,
    };

    let inventory = Inventory::new(instances, sessions, catalog.targets.clone(), catalog.filters.clone());
    Ok((inventory, catalog))
}

async fn read_region<E: Ec2>(
    ec2: &E,
    vpc_ids: Option<&BTreeSet<String>>,
) -> Result<(Vec<Instance>, Vec<Session>), Ec2Error> {
    // Pending instances are read so that their sessions (kept from before a stop) are not
    // pruned while they start; only running instances get new sessions.
    let mut filters = vec![("instance-state-name".to_string(), vec!["pending".to_string(), "running".to_string()])];
    if let Some(vpc_ids) = vpc_ids {
        filters.push(("vpc-id".to_string(), vpc_ids.iter().cloned().collect()));
    }
    let query = InstanceQuery { instance_ids: vec![], filters };
    let instances = read_all_pages!(|token| ec2.describe_instances(&query, token));

    let sessions = read_all_pages!(|token| ec2.describe_sessions(&[], token));
    Ok((instances, sessions))
}

async fn read_sources<E: Ec2>(ec2: &E, sources: &SourceScope) -> Result<(Vec<Instance>, Vec<Session>), Ec2Error> {
    // Named instances first: a launch event names the interfaces of the instances it names,
    // and those need no DescribeNetworkInterfaces call.
    let mut instances = read_instances_by_id(ec2, &sources.instance_ids).await?;
    let read_interfaces: BTreeSet<&str> =
        instances.iter().flat_map(|i| i.network_interfaces.iter().map(|n| n.id.as_str())).collect();
    let other_interfaces: Vec<String> =
        sources.network_interface_ids.iter().filter(|id| !read_interfaces.contains(id.as_str())).cloned().collect();
    if !other_interfaces.is_empty() {
        let attachments = read_all_pages!(|token| ec2.describe_network_interfaces(&other_interfaces, token));
        let owners: BTreeSet<String> = attachments
            .into_iter()
            .filter_map(|a| a.instance_id)
            .filter(|id| !sources.instance_ids.contains(id))
            .collect();
        instances.extend(read_instances_by_id(ec2, &owners).await?);
    }

    let mut interface_ids: BTreeSet<String> = sources.network_interface_ids.clone();
    interface_ids.extend(instances.iter().flat_map(|i| i.network_interfaces.iter().map(|n| n.id.clone())));
    let sessions = if interface_ids.is_empty() {
        Vec::new()
    } else {
        let filters = [("network-interface-id".to_string(), interface_ids.into_iter().collect())];
        read_all_pages!(|token| ec2.describe_sessions(&filters, token))
    };
    Ok((instances, sessions))
}

/// Reads instances in every state, so that the sessions of stopped instances can be pruned.
/// A filter on the id rather than InstanceIds leaves out an instance that no longer exists
/// instead of failing the call.
async fn read_instances_by_id<E: Ec2>(ec2: &E, instance_ids: &BTreeSet<String>) -> Result<Vec<Instance>, Ec2Error> {
    if instance_ids.is_empty() {
        return Ok(Vec::new());
    }
    let filters = vec![("instance-id".to_string(), instance_ids.iter().cloned().collect())];
    let query = InstanceQuery { instance_ids: vec![], filters };
    Ok(read_all_pages!(|token| ec2.describe_instances(&query, token)))
}

async fn read_catalog<E: Ec2>(ec2: &E, filter_ids: &BTreeSet<String>) -> Result<Catalog, Ec2Error> {
    let targets = read_all_pages!(|token| ec2.describe_targets(token));

    let requested: Vec<String> = filter_ids.iter().cloned().collect();
    let filters = if requested.is_empty() {
        Vec::new()
    } else {
        read_all_pages!(|token| ec2.describe_filters(&requested, token))
    };
    Ok(Catalog { targets, filters: filters.into_iter().map(|f| f.id).collect(), requested_filters: filter_ids.clone() })
}
