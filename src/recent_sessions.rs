//! Sessions the controller created lately, which DescribeTrafficMirrorSessions may not show yet.
//!
//! The EC2 API is eventually consistent: a session can stay invisible to Describe calls for a
//! while after CreateTrafficMirrorSession returned it. A pass in that window would see its
//! source unmirrored and create a second session. So every pass adds the recent sessions its
//! inventory lacks, until Describe shows them, a DeleteTrafficMirrorSession event or our own
//! delete removes them, or the window ends.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::aws::model::Session;
use crate::inventory::Inventory;

/// How long a created session is trusted without Describe showing it. EC2 documents eventual
/// consistency without a bound; a few seconds is usual.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(120);

/// Recent creations by session id, with the time each was created.
#[derive(Debug)]
pub struct RecentSessions {
    window: Duration,
    created: HashMap<String, (Session, Instant)>,
}

impl Default for RecentSessions {
    fn default() -> Self {
        RecentSessions::new(DEFAULT_WINDOW)
    }
}

impl RecentSessions {
    pub fn new(window: Duration) -> Self {
        RecentSessions { window, created: HashMap::new() }
    }

    /// Records a session that CreateTrafficMirrorSession returned.
    pub fn record(&mut self, session: &Session) {
        if !self.window.is_zero() {
            self.created.insert(session.id.clone(), (session.clone(), Instant::now()));
        }
    }

    /// Replaces the remembered copy of a session that was modified, if it is remembered.
    pub fn update(&mut self, session: &Session) {
        if let Some((remembered, _)) = self.created.get_mut(&session.id) {
            *remembered = session.clone();
        }
    }

    /// Forgets a session that is known to be deleted.
    pub fn forget(&mut self, session_id: &str) {
        self.created.remove(session_id);
    }

    /// Returns the recent sessions that carry these tags, for a teardown that Describe may not
    /// show them to.
    pub fn matching(&self, wanted: impl Fn(&Session) -> bool) -> Vec<Session> {
        self.created.values().map(|(session, _)| session).filter(|s| wanted(s)).cloned().collect()
    }

    /// Adds the recent sessions the inventory lacks on the interfaces it covers, and drops
    /// those it shows and those older than the window. Returns how many were added.
    pub fn fill_in(&mut self, inventory: &mut Inventory) -> usize {
        let now = Instant::now();
        self.created.retain(|id, (_, created_at)| {
            !inventory.sessions.contains_key(id) && now.duration_since(*created_at) < self.window
        });
        if self.created.is_empty() {
            return 0;
        }
        let covered: HashSet<&str> =
            inventory.instances.iter().flat_map(|i| i.network_interfaces.iter().map(|n| n.id.as_str())).collect();
        let missing: Vec<Session> = self
            .created
            .values()
            .map(|(session, _)| session)
            .filter(|s| covered.contains(s.network_interface_id.as_str()))
            .cloned()
            .collect();
        let added = missing.len();
        for session in missing {
            inventory.insert_session(session);
        }
        added
    }

    pub fn len(&self) -> usize {
        self.created.len()
    }

    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::model::{Instance, NetworkInterface};

    fn session(id: &str, interface: &str) -> Session {
        Session {
            id: id.into(),
            network_interface_id: interface.into(),
            target_id: "tmt-1".into(),
            filter_id: "tmf-1".into(),
            number: 1,
            packet_length: None,
            virtual_network_id: Some(1),
            description: None,
            tags: Default::default(),
        }
    }

    fn inventory(interface: &str, sessions: Vec<Session>) -> Inventory {
        let instance = Instance {
            id: "i-1".into(),
            instance_type: "m5.large".into(),
            state: "running".into(),
            vpc_id: None,
            subnet_id: None,
            availability_zone: None,
            tags: Default::default(),
            network_interfaces: vec![NetworkInterface {
                id: interface.into(),
                interface_type: "interface".into(),
                device_index: 0,
                network_card_index: 0,
                attachment_id: None,
            }],
        };
        Inventory::new(vec![instance], sessions, vec![], Default::default())
    }

    #[tokio::test(start_paused = true)]
    async fn fills_in_until_describe_shows_the_session() {
        let mut recent = RecentSessions::new(Duration::from_secs(60));
        recent.record(&session("tms-1", "eni-1"));

        let mut stale = inventory("eni-1", vec![]);
        assert_eq!(recent.fill_in(&mut stale), 1);
        assert!(stale.sessions.contains_key("tms-1"));

        let mut fresh = inventory("eni-1", vec![session("tms-1", "eni-1")]);
        assert_eq!(recent.fill_in(&mut fresh), 0);
        assert!(recent.is_empty(), "a visible session needs no memory");
    }

    #[tokio::test(start_paused = true)]
    async fn update_replaces_the_remembered_copy() {
        let mut recent = RecentSessions::new(Duration::from_secs(60));
        recent.record(&session("tms-1", "eni-1"));
        let repaired = Session { packet_length: Some(128), ..session("tms-1", "eni-1") };
        recent.update(&repaired);
        recent.update(&session("tms-2", "eni-1"));

        let mut stale = inventory("eni-1", vec![]);
        recent.fill_in(&mut stale);

        assert_eq!(stale.sessions["tms-1"].packet_length, Some(128));
        assert!(!stale.sessions.contains_key("tms-2"), "update never adds a session");
    }

    #[tokio::test(start_paused = true)]
    async fn forgets_after_the_window_and_on_delete() {
        let mut recent = RecentSessions::new(Duration::from_secs(60));
        recent.record(&session("tms-1", "eni-1"));
        recent.record(&session("tms-2", "eni-1"));
        recent.forget("tms-2");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(recent.fill_in(&mut inventory("eni-1", vec![])), 0);
        assert!(recent.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn leaves_interfaces_outside_the_read_alone() {
        let mut recent = RecentSessions::new(Duration::from_secs(60));
        recent.record(&session("tms-1", "eni-9"));
        assert_eq!(recent.fill_in(&mut inventory("eni-1", vec![])), 0);
        assert_eq!(recent.len(), 1, "kept for the pass that reads eni-9");
    }
}
