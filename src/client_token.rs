//! ClientTokens for CreateTrafficMirrorSession.
//!
//! AWS remembers a token: the same token with the same parameters returns the first result,
//! even after that session was deleted, and creates nothing. A token that is a pure function
//! of (interface, target, filter) would therefore never heal a deleted session. The token mixes
//! in the id of the owned session being replaced, taken from the session index: a retry of the
//! same attempt sends the same token, and the attempt after a deletion sends a new one.
//!
//! NOTE: the session index lives in memory. After a restart, the first create on an interface
//! whose session was deleted before the restart can send the token of the original create.
//! AWS then returns the deleted session, and the engine trusts it for the consistency window
//! (`recent_sessions`). The next create sends the token of the second session, and so on: an
//! interface whose sessions were deleted k times heals after up to k extra resyncs, never
//! with a duplicate.

use sha2::{Digest, Sha256};

use crate::aws::model::CreateSession;

/// Length AWS allows for a ClientToken.
pub const MAX_TOKEN_LENGTH: usize = 64;

/// Builds the token of one creation attempt from the cluster, the policy, every request
/// parameter (so a changed policy never hits IdempotentParameterMismatch) and the session
/// being replaced.
pub fn client_token(cluster: &str, policy: &str, request: &CreateSession, replaces: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    let fields = [
        cluster.to_string(),
        policy.to_string(),
        request.network_interface_id.clone(),
        request.target_id.clone(),
        request.filter_id.clone(),
        request.number.to_string(),
        format!("{:?}", request.packet_length),
        format!("{:?}", request.virtual_network_id),
        format!("{:?}", request.description),
        replaces.unwrap_or("first").to_string(),
    ];
    for field in fields {
        // Length-prefixed, so that ("ab", "c") and ("a", "bc") hash differently.
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("vmc-{hex}");
    token[..MAX_TOKEN_LENGTH].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn request() -> CreateSession {
        CreateSession {
            network_interface_id: "eni-0aa11bb22cc33dd11".into(),
            target_id: "tmt-0a1b2c3d4e5f60718".into(),
            filter_id: "tmf-0a1b2c3d4e5f60718".into(),
            number: 1,
            packet_length: None,
            virtual_network_id: None,
            description: Some("d".into()),
            tags: BTreeMap::new(),
            client_token: String::new(),
        }
    }

    #[test]
    fn token_is_stable_and_ascii() {
        let first = client_token("prod", "web", &request(), None);
        assert_eq!(first, client_token("prod", "web", &request(), None));
        assert!(first.len() <= MAX_TOKEN_LENGTH);
        assert!(first.is_ascii());
    }

    #[test]
    fn token_changes_with_replaced_session() {
        let first = client_token("prod", "web", &request(), None);
        let after_delete = client_token("prod", "web", &request(), Some("tms-0dd44ee55ff660001"));
        assert_ne!(first, after_delete);
    }

    #[test]
    fn token_changes_with_parameters() {
        let mut changed = request();
        changed.packet_length = Some(128);
        assert_ne!(client_token("prod", "web", &request(), None), client_token("prod", "web", &changed, None));
    }
}
