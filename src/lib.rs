//! vpc-mirror-controller keeps an AWS Traffic Mirroring session on every network interface
//! that a `MirrorPolicy` selects, and reports coverage honestly.
//!
//! A pass reads one inventory per region, plans each policy as a pure function of (policy,
//! inventory), applies the plan with owned, idempotent writes, and reports coverage.

pub mod apply;
pub mod attachment_index;
pub mod aws;
pub mod client_token;
pub mod engine;
pub mod event_consumer;
pub mod events;
pub mod instance_types;
pub mod inventory;
pub mod kubernetes;
pub mod metrics;
pub mod ownership;
pub mod plan;
pub mod policy;
pub mod policy_files;
pub mod recent_sessions;
pub mod report;
pub mod selector;
pub mod session_index;
pub mod standalone;
pub mod validate;
