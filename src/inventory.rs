//! The inventory: a snapshot of the EC2 state that mirroring depends on, read with paged,
//! server-side-filtered Describe calls and shared by every policy of a region.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::aws::ec2::Ec2;
use crate::aws::error::Ec2Error;
use crate::aws::model::{Instance, InstanceQuery, Session, Target};

/// What one inventory read covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InventoryRequest {
    /// When every policy is limited to VPCs, the union of those VPCs; `None` reads the region.
    pub vpc_ids: Option<BTreeSet<String>>,
    /// The filters the policies name.
    pub filter_ids: BTreeSet<String>,
}

/// Instances, sessions, targets and filters as read at one moment.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Pending and running instances, with their attached network interfaces.
    pub instances: Vec<Instance>,
    /// Every session of the region, by id.
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
        inventory.target_interfaces = inventory
            .targets
            .values()
            .filter_map(|t| t.network_interface_id.clone())
            .collect();
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
        self.sessions_by_interface
            .entry(session.network_interface_id.clone())
            .or_default()
            .push(session.id.clone());
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

/// Reads the inventory of a region: pending and running instances (narrowed to the policies' VPCs when
/// every policy names VPCs), all sessions and targets, and the policies' filters.
pub async fn read<E: Ec2>(ec2: &E, request: &InventoryRequest) -> Result<Inventory, Ec2Error> {
    // Pending instances are read so that their sessions (kept from before a stop) are not pruned
    // while they start; only running instances get new sessions.
    let mut filters = vec![(
        "instance-state-name".to_string(),
        vec!["pending".to_string(), "running".to_string()],
    )];
    if let Some(vpc_ids) = &request.vpc_ids {
        filters.push(("vpc-id".to_string(), vpc_ids.iter().cloned().collect()));
    }
    let query = InstanceQuery {
        instance_ids: vec![],
        filters,
    };
    let instances = read_all_pages!(|token| ec2.describe_instances(&query, token));

    let sessions = read_all_pages!(|token| ec2.describe_sessions(&[], token));

    let targets = read_all_pages!(|token| ec2.describe_targets(token));

    let filter_ids: Vec<String> = request.filter_ids.iter().cloned().collect();
    let filters = if filter_ids.is_empty() {
        Vec::new()
    } else {
        read_all_pages!(|token| ec2.describe_filters(&filter_ids, token))
    };
    let filters = filters.into_iter().map(|f| f.id).collect();

    Ok(Inventory::new(instances, sessions, targets, filters))
}
