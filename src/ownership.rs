//! The ownership tag scheme: how the controller recognises the sessions it created.
//!
//! Every session the controller creates carries three tags, set in the create request itself
//! (so an IAM condition can require them):
//!
//! | key | value |
//! | --- | --- |
//! | `vpcmirror.dev/managed-by` | `vpc-mirror-controller` |
//! | `vpcmirror.dev/cluster` | the `--cluster-name` of the controller that created it |
//! | `vpcmirror.dev/policy` | the name of the policy that wants it |
//!
//! A session is owned by a policy only when all three match. Two controllers with different
//! cluster names can share an account without touching each other's sessions. Descriptions
//! are for people and are never used to decide ownership.

use std::collections::BTreeMap;

use crate::aws::model::Session;

pub const MANAGED_BY_KEY: &str = "vpcmirror.dev/managed-by";
pub const MANAGED_BY_VALUE: &str = "vpc-mirror-controller";
pub const CLUSTER_KEY: &str = "vpcmirror.dev/cluster";
pub const POLICY_KEY: &str = "vpcmirror.dev/policy";

/// The owner of a session, as read from its tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership<'a> {
    /// Created by this controller (same cluster name) for the named policy.
    Ours { policy: &'a str },
    /// Created by a vpc-mirror-controller of another cluster.
    OtherCluster,
    /// Not created by any vpc-mirror-controller.
    Foreign,
}

/// Returns the tags that mark a session as owned by `policy` of `cluster`.
pub fn ownership_tags(cluster: &str, policy: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string()),
        (CLUSTER_KEY.to_string(), cluster.to_string()),
        (POLICY_KEY.to_string(), policy.to_string()),
    ])
}

/// Reads a session's owner from its tags.
pub fn ownership<'a>(session: &'a Session, cluster: &str) -> Ownership<'a> {
    if session.tags.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return Ownership::Foreign;
    }
    if session.tags.get(CLUSTER_KEY).map(String::as_str) != Some(cluster) {
        return Ownership::OtherCluster;
    }
    match session.tags.get(POLICY_KEY) {
        Some(policy) => Ownership::Ours { policy },
        // Our managed-by and cluster tags without a policy tag: someone edited the tags,
        // so the controller cannot tell which policy wants it and leaves it alone.
        None => Ownership::Foreign,
    }
}

/// Returns whether `policy` of `cluster` owns the session.
pub fn is_owned_by(session: &Session, cluster: &str, policy: &str) -> bool {
    ownership(session, cluster) == Ownership::Ours { policy }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_with_tags(tags: BTreeMap<String, String>) -> Session {
        Session {
            id: "tms-0123456789abcdef0".into(),
            network_interface_id: "eni-0123456789abcdef0".into(),
            target_id: "tmt-0123456789abcdef0".into(),
            filter_id: "tmf-0123456789abcdef0".into(),
            number: 1,
            packet_length: None,
            virtual_network_id: None,
            description: None,
            tags,
        }
    }

    #[test]
    fn ownership_requires_all_three_tags() {
        let session = session_with_tags(ownership_tags("prod", "web"));
        assert_eq!(ownership(&session, "prod"), Ownership::Ours { policy: "web" });
        assert!(is_owned_by(&session, "prod", "web"));
        assert!(!is_owned_by(&session, "prod", "api"));
    }

    #[test]
    fn ownership_of_other_cluster() {
        let session = session_with_tags(ownership_tags("staging", "web"));
        assert_eq!(ownership(&session, "prod"), Ownership::OtherCluster);
    }

    #[test]
    fn ownership_ignores_description() {
        let mut session = session_with_tags(BTreeMap::new());
        session.description = Some("Mirrored by vpc-mirror-controller for policy web".into());
        assert_eq!(ownership(&session, "prod"), Ownership::Foreign);
    }

    #[test]
    fn ownership_without_policy_tag() {
        let mut tags = ownership_tags("prod", "web");
        tags.remove(POLICY_KEY);
        assert_eq!(ownership(&session_with_tags(tags), "prod"), Ownership::Foreign);
    }
}
