//! The event kinds the controller handles and the EventBridge fields that identify each one.

use std::fmt;

/// The EventBridge `source` of every handled event, CloudTrail records of EC2 calls included.
pub(crate) const EC2_SOURCE: &str = "aws.ec2";

/// The `detail-type` of a CloudTrail record of an API call.
pub(crate) const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// The `detail-type` of the native EC2 event sent when an instance changes state.
pub(crate) const STATE_CHANGE_DETAIL_TYPE: &str = "EC2 Instance State-change Notification";

/// The CloudTrail `eventSource` of EC2 API calls.
pub(crate) const EC2_EVENT_SOURCE: &str = "ec2.amazonaws.com";

/// The `detail.state` of a state-change notification that wakes a reconcile.
pub(crate) const RUNNING_STATE: &str = "running";

/// A kind of event that can wake a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    RunInstances,
    /// CreateFleet. Only fleets of type `instant`, which Karpenter uses, list their instances in
    /// the response.
    CreateFleet,
    StartInstances,
    /// The native "EC2 Instance State-change Notification" with state `running`.
    InstanceRunning,
    AttachNetworkInterface,
    DetachNetworkInterface,
    CreateTags,
    DeleteTags,
    ModifyInstanceAttribute,
    DeleteTrafficMirrorSession,
    ModifyTrafficMirrorSession,
    DeleteTrafficMirrorTarget,
    DeleteTrafficMirrorFilter,
    CreateTrafficMirrorFilterRule,
    ModifyTrafficMirrorFilterRule,
    DeleteTrafficMirrorFilterRule,
}

/// The envelope fields that identify the events of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RegistryKey {
    pub source: &'static str,
    pub detail_type: &'static str,
    /// The CloudTrail `detail.eventName`, or None for a native event.
    pub event_name: Option<&'static str>,
}

impl EventKind {
    /// Every kind, in declaration order. The registry and the event pattern are built from it.
    pub const ALL: [EventKind; 16] = [
        EventKind::RunInstances,
        EventKind::CreateFleet,
        EventKind::StartInstances,
        EventKind::InstanceRunning,
        EventKind::AttachNetworkInterface,
        EventKind::DetachNetworkInterface,
        EventKind::CreateTags,
        EventKind::DeleteTags,
        EventKind::ModifyInstanceAttribute,
        EventKind::DeleteTrafficMirrorSession,
        EventKind::ModifyTrafficMirrorSession,
        EventKind::DeleteTrafficMirrorTarget,
        EventKind::DeleteTrafficMirrorFilter,
        EventKind::CreateTrafficMirrorFilterRule,
        EventKind::ModifyTrafficMirrorFilterRule,
        EventKind::DeleteTrafficMirrorFilterRule,
    ];

    /// Returns the PascalCase name of the kind, a bounded value that may serve as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunInstances => "RunInstances",
            EventKind::CreateFleet => "CreateFleet",
            EventKind::StartInstances => "StartInstances",
            EventKind::InstanceRunning => "InstanceRunning",
            EventKind::AttachNetworkInterface => "AttachNetworkInterface",
            EventKind::DetachNetworkInterface => "DetachNetworkInterface",
            EventKind::CreateTags => "CreateTags",
            EventKind::DeleteTags => "DeleteTags",
            EventKind::ModifyInstanceAttribute => "ModifyInstanceAttribute",
            EventKind::DeleteTrafficMirrorSession => "DeleteTrafficMirrorSession",
            EventKind::ModifyTrafficMirrorSession => "ModifyTrafficMirrorSession",
            EventKind::DeleteTrafficMirrorTarget => "DeleteTrafficMirrorTarget",
            EventKind::DeleteTrafficMirrorFilter => "DeleteTrafficMirrorFilter",
            EventKind::CreateTrafficMirrorFilterRule => "CreateTrafficMirrorFilterRule",
            EventKind::ModifyTrafficMirrorFilterRule => "ModifyTrafficMirrorFilterRule",
            EventKind::DeleteTrafficMirrorFilterRule => "DeleteTrafficMirrorFilterRule",
        }
    }

    /// Returns the envelope fields that identify events of this kind. Every CloudTrail kind is
    /// named after its API call, so its event name is `as_str()`.
    pub(crate) fn registry_key(self) -> RegistryKey {
        match self {
            EventKind::InstanceRunning => {
                RegistryKey { source: EC2_SOURCE, detail_type: STATE_CHANGE_DETAIL_TYPE, event_name: None }
            }
            api_call => RegistryKey {
                source: EC2_SOURCE,
                detail_type: CLOUDTRAIL_DETAIL_TYPE,
                event_name: Some(api_call.as_str()),
            },
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}
