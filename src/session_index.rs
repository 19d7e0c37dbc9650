//! The session index: which owned session mirrors which source, kept across inventories.
//!
//! It answers two questions the inventory alone cannot. First, which policy and source a
//! session id belonged to after the session is gone, so that a DeleteTrafficMirrorSession
//! event can wake a one-interface repair. Second, which owned session a new one replaces, so
//! that the ClientToken of the replacement differs from the one of the deleted session.

use std::collections::{HashMap, HashSet};

use crate::inventory::Inventory;
use crate::ownership::{Ownership, ownership};

/// The policy and source network interface of an owned session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOwner {
    pub policy: String,
    pub network_interface_id: String,
}

/// Owned sessions by id, and the latest owned session of each (policy, source).
#[derive(Debug, Default)]
pub struct SessionIndex {
    by_session: HashMap<String, SessionOwner>,
    latest: HashMap<(String, String), String>,
}

impl SessionIndex {
    /// Adds the owned sessions of a region-wide inventory and drops entries of interfaces that
    /// no longer belong to a live instance, so the index never outgrows the fleet.
    pub fn refresh(&mut self, cluster: &str, inventory: &Inventory) {
        self.add_owned(cluster, inventory);
        let live: HashSet<&str> =
            inventory.instances.iter().flat_map(|i| i.network_interfaces.iter().map(|n| n.id.as_str())).collect();
        self.by_session.retain(|_, owner| live.contains(owner.network_interface_id.as_str()));
        self.latest.retain(|(_, interface), _| live.contains(interface.as_str()));
    }

    /// Adds the owned sessions of a source inventory, forgetting nothing.
    pub fn add_owned(&mut self, cluster: &str, inventory: &Inventory) {
        for session in inventory.sessions.values() {
            if let Ownership::Ours { policy } = ownership(session, cluster) {
                self.record(policy, &session.network_interface_id, &session.id);
            }
        }
    }

    /// Records a session that the controller created or found.
    pub fn record(&mut self, policy: &str, network_interface_id: &str, session_id: &str) {
        let owner = SessionOwner { policy: policy.to_string(), network_interface_id: network_interface_id.to_string() };
        self.by_session.insert(session_id.to_string(), owner);
        self.latest.insert((policy.to_string(), network_interface_id.to_string()), session_id.to_string());
    }

    /// Returns the owner of a session id, if the controller has seen it.
    pub fn owner_of(&self, session_id: &str) -> Option<&SessionOwner> {
        self.by_session.get(session_id)
    }

    /// Returns the latest owned session the policy had on the interface, even if it is gone.
    pub fn latest_session(&self, policy: &str, network_interface_id: &str) -> Option<&str> {
        self.latest.get(&(policy.to_string(), network_interface_id.to_string())).map(String::as_str)
    }
}
