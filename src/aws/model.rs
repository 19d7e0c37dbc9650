//! EC2 state as the controller models it, independent of the SDK's types.

use std::collections::BTreeMap;

/// An EC2 instance with the fields that selection and eligibility depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub instance_type: String,
    /// The state name, for example "running" or "stopped".
    pub state: String,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub availability_zone: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub network_interfaces: Vec<NetworkInterface>,
}

/// A network interface attached to an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: String,
    /// "interface" for ordinary ENIs; "trunk", "branch", "efa" and others cannot be sources.
    pub interface_type: String,
    pub device_index: i32,
    pub network_card_index: i32,
    pub attachment_id: Option<String>,
}

/// A Traffic Mirror session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub network_interface_id: String,
    pub target_id: String,
    pub filter_id: String,
    pub number: i32,
    pub packet_length: Option<i32>,
    pub virtual_network_id: Option<i32>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// A Traffic Mirror target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    /// The ENI behind an ENI target; an ENI target cannot also be a source.
    pub network_interface_id: Option<String>,
    /// "network-interface", "network-load-balancer" or "gateway-load-balancer-endpoint".
    pub target_type: Option<String>,
}

/// A Traffic Mirror filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub id: String,
}

/// The attachment of a network interface, as DescribeNetworkInterfaces reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceAttachment {
    pub network_interface_id: String,
    /// `None` for a detached interface.
    pub instance_id: Option<String>,
}

/// A request to create one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateSession {
    pub network_interface_id: String,
    pub target_id: String,
    pub filter_id: String,
    pub number: i32,
    pub packet_length: Option<i32>,
    pub virtual_network_id: Option<i32>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Idempotency token, at most 64 ASCII characters.
    pub client_token: String,
}

/// Changes to one session. `None` leaves a field as it is; the `remove_*` flags clear
/// optional fields (AWS then mirrors whole packets or drops the description).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifySession {
    pub session_id: String,
    pub target_id: Option<String>,
    pub filter_id: Option<String>,
    pub number: Option<i32>,
    pub packet_length: Option<i32>,
    pub virtual_network_id: Option<i32>,
    pub description: Option<String>,
    pub remove_packet_length: bool,
    pub remove_description: bool,
}

/// The instances a DescribeInstances call requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceQuery {
    /// Instance ids; AWS rejects MaxResults together with ids, so such a query is not paged.
    pub instance_ids: Vec<String>,
    /// Server-side filters as (name, values), for example ("instance-state-name", ["running"]).
    pub filters: Vec<(String, Vec<String>)>,
}

/// One page of a Describe call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// Largest page that the EC2 Describe calls accept.
pub const MAX_RESULTS: i32 = 1000;
