//! The `MirrorPolicy` custom resource: what to mirror, where to, and how.
//!
//! The same YAML is read by Kubernetes mode (as objects) and by standalone mode (as files).
//! The OpenAPI schema rejects what a schema can express; `validate` checks the rest and names
//! the field and the fix.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired Traffic Mirroring coverage: every network interface that `selector` picks gets a
/// session to `target` through `filter`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "vpcmirror.dev",
    version = "v1alpha1",
    kind = "MirrorPolicy",
    plural = "mirrorpolicies",
    shortname = "mp",
    status = "MirrorPolicyStatus",
    doc = "A MirrorPolicy keeps an AWS Traffic Mirroring session on every network interface of the instances it selects.",
    printcolumn(
        name = "Coverage",
        type_ = "string",
        json_path = ".status.coverage.percent",
        description = "Mirrored share of the eligible network interfaces"
    ),
    printcolumn(
        name = "Mirrored",
        type_ = "integer",
        json_path = ".status.coverage.mirrored",
        description = "Network interfaces with a session to the target"
    ),
    printcolumn(
        name = "Eligible",
        type_ = "integer",
        json_path = ".status.coverage.eligible",
        description = "Selected network interfaces that AWS can mirror"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every eligible network interface is mirrored"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct MirrorPolicySpec {
    /// The Traffic Mirror target that receives the mirrored packets.
    pub target: TargetRef,

    /// The Traffic Mirror filter that decides which packets are mirrored.
    pub filter: FilterRef,

    /// The instances to mirror. All given fields must match (AND), and values inside one list
    /// are alternatives (OR). At least one field is required, so a policy never selects a whole
    /// region by accident.
    pub selector: InstanceSelector,

    /// The network interfaces of each selected instance to mirror: All (every attached
    /// interface, including those the VPC CNI adds) or Primary (device index 0 only).
    #[serde(default)]
    pub interfaces: InterfaceSelection,

    /// Settings of every session this policy creates.
    #[serde(default)]
    pub session: SessionTemplate,

    /// Delete sessions this policy created whose network interface is no longer selected,
    /// attached to a running instance, or eligible. Sessions of others are never deleted.
    #[serde(default = "default_true")]
    pub prune: bool,

    /// The action on this policy's sessions when the policy is deleted. Delete removes them,
    /// and Retain leaves them in place, no longer managed.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_true() -> bool {
    true
}

/// A reference to an existing Traffic Mirror target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct TargetRef {
    /// The target id, for example tmt-0a1b2c3d4e5f60718.
    #[schemars(regex(pattern = r"^tmt-[0-9a-f]{8,17}$"))]
    pub id: String,
}

/// A reference to an existing Traffic Mirror filter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct FilterRef {
    /// The filter id, for example tmf-0a1b2c3d4e5f60718.
    #[schemars(regex(pattern = r"^tmf-[0-9a-f]{8,17}$"))]
    pub id: String,
}

/// Instance selection. Every field that is set must match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct InstanceSelector {
    /// Instance ids, for example i-0a1b2c3d4e5f60718.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub instance_ids: Option<Vec<InstanceId>>,

    /// A label selector over the instance's EC2 tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagSelector>,

    /// VPC ids, for example vpc-0a1b2c3d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub vpc_ids: Option<Vec<VpcId>>,

    /// Subnet ids, for example subnet-0a1b2c3d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub subnet_ids: Option<Vec<SubnetId>>,

    /// Availability Zone names, for example us-east-1a.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub availability_zones: Option<Vec<AvailabilityZone>>,
}

/// An EC2 instance id.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct InstanceId(#[schemars(regex(pattern = r"^i-[0-9a-f]{8,17}$"))] pub String);

/// A VPC id.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct VpcId(#[schemars(regex(pattern = r"^vpc-[0-9a-f]{8,17}$"))] pub String);

/// A subnet id.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct SubnetId(#[schemars(regex(pattern = r"^subnet-[0-9a-f]{8,17}$"))] pub String);

/// An Availability Zone name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct AvailabilityZone(#[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]$"))] pub String);

/// A Kubernetes-style label selector applied to EC2 tags.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct TagSelector {
    /// Tags that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,

    /// Tag requirements; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<TagRequirement>,
}

/// One requirement on a tag key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TagRequirement {
    /// The tag key.
    #[schemars(length(min = 1, max = 128))]
    pub key: String,

    /// The comparison of the tag value with `values`.
    pub operator: TagOperator,

    /// The values for In and NotIn (at least one); must be empty for Exists and DoesNotExist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Operators of a tag requirement, with Kubernetes label-selector semantics.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TagOperator {
    /// The tag is present and its value is one of `values`.
    In,
    /// The tag is absent, or its value is not in `values`.
    NotIn,
    /// The tag is present, whatever its value.
    Exists,
    /// The tag is absent.
    DoesNotExist,
}

/// The network interfaces of a selected instance that become sources.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum InterfaceSelection {
    /// Every attached network interface.
    #[default]
    All,
    /// The primary network interface (device index 0) only.
    Primary,
}

/// The action on owned sessions when the policy goes away.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the sessions this policy created.
    #[default]
    Delete,
    /// Leave the sessions in place; they stay tagged but nothing manages them.
    Retain,
}

/// Settings of the sessions a policy creates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionTemplate {
    /// Session number, 1 to 32766; lower numbers are evaluated first, and each packet is mirrored
    /// only by the first session whose filter accepts it. Omit it to take the lowest number that
    /// is free on each network interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32766))]
    pub number: Option<i32>,

    /// Bytes of each packet to mirror, 1 to 8500. Omit it to mirror whole packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8500))]
    pub packet_length: Option<i32>,

    /// VXLAN network identifier, 0 to 16777215. Omit it to let AWS choose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16777215))]
    pub virtual_network_id: Option<i32>,

    /// Session description. Omit it for one that names the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub description: Option<String>,
}

/// The observed state of a policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorPolicyStatus {
    /// The spec generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready and Degraded conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PolicyCondition>,

    /// Counts of selected, eligible and mirrored network interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageStatus>,

    /// A capped sample of network interfaces that are selected but not mirrored, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmirrored: Vec<UnmirroredSource>,

    /// The target id the last reconcile used, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,

    /// The filter id the last reconcile used, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_id: Option<String>,

    /// When the last reconcile finished, in RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
}

/// A status condition in the Kubernetes convention.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCondition {
    /// Condition type: Ready or Degraded.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// A CamelCase reason, for example FullyMirrored or TargetNotFound.
    pub reason: String,
    /// A message for people, naming the cause and the fix.
    pub message: String,
    /// When the status last changed, in RFC 3339.
    pub last_transition_time: String,
    /// The generation this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Coverage counts of one policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CoverageStatus {
    /// Network interfaces the selector picks.
    pub selected: u32,
    /// Selected network interfaces that AWS can mirror (supported instance and interface type,
    /// not a mirror target themselves).
    pub eligible: u32,
    /// Eligible network interfaces with a session to the policy's target.
    pub mirrored: u32,
    /// Mirrored divided by eligible, as a percentage with one decimal, for example "98.5%".
    pub percent: String,
    /// Selected but unmirrored network interfaces, counted by reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unmirrored_by_reason: BTreeMap<String, u32>,
}

/// A selected network interface that is not mirrored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnmirroredSource {
    /// The network interface id.
    pub network_interface_id: String,
    /// The instance it is attached to.
    pub instance_id: String,
    /// The reason it is not mirrored, for example UnsupportedInstanceType.
    pub reason: String,
}

impl MirrorPolicy {
    /// Returns the policy's name, which keys its sessions' ownership tag.
    pub fn policy_name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }
}
