//! The attachment index: which interface an attachment id attached, kept from the last region
//! inventory. A DetachNetworkInterface record names only the attachment id, and once the
//! interface is detached EC2 no longer reports that id, so it is resolved from memory.

use std::collections::HashMap;

use crate::inventory::Inventory;

/// Attachment ids to network interface ids.
#[derive(Debug, Default)]
pub struct AttachmentIndex {
    interfaces: HashMap<String, String>,
}

impl AttachmentIndex {
    /// Replaces the index with the attachments of a region-wide inventory.
    pub fn refresh(&mut self, inventory: &Inventory) {
        self.interfaces = inventory
            .instances
            .iter()
            .flat_map(|i| i.network_interfaces.iter())
            .filter_map(|n| Some((n.attachment_id.clone()?, n.id.clone())))
            .collect();
    }

    /// Adds the attachments of a source inventory, so that an interface attached since the last
    /// region pass can still be found when it is detached.
    pub fn add(&mut self, inventory: &Inventory) {
        for interface in inventory.instances.iter().flat_map(|i| i.network_interfaces.iter()) {
            if let Some(attachment_id) = &interface.attachment_id {
                self.interfaces.insert(attachment_id.clone(), interface.id.clone());
            }
        }
    }

    /// Returns the interface an attachment attached, if the last inventory showed it.
    pub fn interface_of(&self, attachment_id: &str) -> Option<&str> {
        self.interfaces.get(attachment_id).map(String::as_str)
    }
}
