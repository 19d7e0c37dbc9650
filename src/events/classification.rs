//! The outcome of classifying one message body, and its one-line text form.

use std::collections::BTreeSet;
use std::fmt;

use super::kind::EventKind;

/// The outcome of classifying one message body.
// Wake is the common variant, so boxing it would add an allocation to most messages.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classification {
    /// A handled event that wakes a reconcile of the named resources. The scope is never empty.
    Wake(WakeEvent),
    /// A well-formed event that wakes nothing: a failed API call (`detail.errorCode` present), an
    /// event kind the controller does not handle, tags on resources that are not instances, a
    /// state change to a state other than running, and so on.
    Ignored { kind: Option<EventKind>, reason: IgnoreReason },
    /// A body that can never be handled: not JSON, not an EventBridge envelope, or a handled kind
    /// whose required fields are missing or of the wrong type.
    Invalid { reason: InvalidReason, detail: String },
}

/// A handled event and the resources whose reconcile it wakes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WakeEvent {
    pub kind: EventKind,
    pub scope: EventScope,
    /// EventBridge `id`, which stays the same when SQS delivers the message again.
    pub event_id: Option<String>,
    /// EventBridge `region`, or CloudTrail `detail.awsRegion` when the envelope lacks it.
    pub region: Option<String>,
    /// EventBridge `account`, or CloudTrail `detail.recipientAccountId` when the envelope lacks it.
    pub account: Option<String>,
    /// EventBridge `time` (RFC 3339 string).
    pub time: Option<String>,
    /// CloudTrail `detail.eventTime` when present.
    pub event_time: Option<String>,
}

/// The AWS resources an event names, by resource type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventScope {
    pub instance_ids: BTreeSet<String>,
    pub network_interface_ids: BTreeSet<String>,
    /// Network interface attachment ids (`eni-attach-...`), named by DetachNetworkInterface.
    pub attachment_ids: BTreeSet<String>,
    pub session_ids: BTreeSet<String>,
    pub target_ids: BTreeSet<String>,
    pub filter_ids: BTreeSet<String>,
}

impl EventScope {
    /// Returns true when the scope names no resource at all.
    pub fn is_empty(&self) -> bool {
        self.labelled_sets().iter().all(|(_, ids)| ids.is_empty())
    }

    fn labelled_sets(&self) -> [(&'static str, &BTreeSet<String>); 6] {
        [
            ("instances", &self.instance_ids),
            ("network interfaces", &self.network_interface_ids),
            ("attachments", &self.attachment_ids),
            ("sessions", &self.session_ids),
            ("targets", &self.target_ids),
            ("filters", &self.filter_ids),
        ]
    }
}

/// Reason that a well-formed event wakes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IgnoreReason {
    /// The CloudTrail record has an `errorCode`, so the call changed nothing.
    FailedApiCall,
    /// The (source, detail-type, event name) is not one the controller handles.
    UnhandledKind,
    /// CreateTags or DeleteTags named only resources that are not instances.
    NotAnInstance,
    /// A state-change notification to a state other than `running`.
    NotRunning,
    /// ModifyInstanceAttribute changed an attribute other than the instance type.
    OtherAttribute,
    /// A handled event that names no resource, such as a CreateFleet of type `maintain` or a
    /// filter rule change whose record lacks the filter id.
    NothingNamed,
}

impl IgnoreReason {
    /// Returns the PascalCase name of the reason, a bounded value that may serve as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::FailedApiCall => "FailedApiCall",
            IgnoreReason::UnhandledKind => "UnhandledKind",
            IgnoreReason::NotAnInstance => "NotAnInstance",
            IgnoreReason::NotRunning => "NotRunning",
            IgnoreReason::OtherAttribute => "OtherAttribute",
            IgnoreReason::NothingNamed => "NothingNamed",
        }
    }

    fn description(self) -> &'static str {
        match self {
            IgnoreReason::FailedApiCall => "the API call failed, so it changed nothing",
            IgnoreReason::UnhandledKind => "the controller does not handle this kind of event",
            IgnoreReason::NotAnInstance => "no tagged resource is an instance",
            IgnoreReason::NotRunning => "the instance did not enter the running state",
            IgnoreReason::OtherAttribute => "an attribute other than the instance type changed",
            IgnoreReason::NothingNamed => "the event names no instance, interface, session, target or filter",
        }
    }
}

/// Reason that a message body can never be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InvalidReason {
    /// The body is not valid UTF-8 JSON.
    NotJson,
    /// The body is JSON but lacks the EventBridge `source` and `detail-type` strings.
    NotAnEnvelope,
    /// A field that the event kind requires is absent or null.
    MissingField,
    /// A field has a JSON type that the event kind does not allow there.
    WrongType,
    /// A resource id does not have the form `<prefix>-<letters and digits>` of its resource type.
    MalformedId,
    /// The body exceeds the size limit of an EventBridge event.
    TooLarge,
}

impl InvalidReason {
    /// Returns the PascalCase name of the reason, a bounded value that may serve as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::NotJson => "NotJson",
            InvalidReason::NotAnEnvelope => "NotAnEnvelope",
            InvalidReason::MissingField => "MissingField",
            InvalidReason::WrongType => "WrongType",
            InvalidReason::MalformedId => "MalformedId",
            InvalidReason::TooLarge => "TooLarge",
        }
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Writes one line per message. Ids and details come from the message, so control characters
/// in them, line breaks included, are escaped.
impl fmt::Display for Classification {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Classification::Wake(event) => write!(formatter, "{event}"),
            Classification::Ignored { kind, reason } => {
                let kind = kind.map_or("unhandled event", EventKind::as_str);
                write!(formatter, "ignored {kind} ({reason}): {}", reason.description())
            }
            Classification::Invalid { reason, detail } => {
                write!(formatter, "invalid message ({reason}): ")?;
                write_escaped(formatter, detail)
            }
        }
    }
}

/// Writes for example `wake RunInstances: instances i-1 i-2; network interfaces eni-1 (event
/// 380fd523-..., region us-east-1, time 2026-11-20T10:15:30Z)`.
impl fmt::Display for WakeEvent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "wake {}: {}", self.kind, self.scope)?;
        let context = [("event", &self.event_id), ("region", &self.region), ("time", &self.time)];
        let mut separator = " (";
        for (label, value) in context {
            if let Some(value) = value {
                write!(formatter, "{separator}{label} ")?;
                write_escaped(formatter, value)?;
                separator = ", ";
            }
        }
        if separator == ", " {
            formatter.write_str(")")?;
        }
        Ok(())
    }
}

/// Writes the non-empty id sets, for example `instances i-1 i-2; network interfaces eni-1`.
impl fmt::Display for EventScope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return formatter.write_str("nothing named");
        }
        let mut separator = "";
        for (label, ids) in self.labelled_sets() {
            if ids.is_empty() {
                continue;
            }
            write!(formatter, "{separator}{label}")?;
            separator = "; ";
            for id in ids {
                formatter.write_str(" ")?;
                write_escaped(formatter, id)?;
            }
        }
        Ok(())
    }
}

/// Writes `text` with control characters escaped, so that the output stays on one line.
fn write_escaped(formatter: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for character in text.chars() {
        if character.is_control() {
            write!(formatter, "{}", character.escape_default())?;
        } else {
            write!(formatter, "{character}")?;
        }
    }
    Ok(())
}
