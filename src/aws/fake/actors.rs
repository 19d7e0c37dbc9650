//! The other people and tools of an account, acting on the in-memory EC2 while the controller
//! runs: someone deletes or edits a session by hand, the VPC CNI attaches an interface, an
//! autoscaler launches an instance. Each action comes with the EventBridge message that
//! CloudTrail would deliver for it, so that tests can feed the event path too.

use serde_json::{Value, json};

use super::FakeEc2;

/// One action of an external actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternalAction {
    DeletedSession {
        session_id: String,
        network_interface_id: String,
    },
    /// Changed a session's packet length, which drifts it from its policy.
    ModifiedSession {
        session_id: String,
        network_interface_id: String,
    },
    AttachedInterface {
        instance_id: String,
        network_interface_id: String,
    },
    LaunchedInstance {
        instance_id: String,
    },
}

impl ExternalAction {
    /// Returns the EventBridge message body that CloudTrail delivers for this action. `sequence`
    /// makes the EventBridge id unique.
    pub fn event_body(&self, sequence: u64) -> String {
        let (name, request, response) = match self {
            ExternalAction::DeletedSession { session_id, .. } => (
                "DeleteTrafficMirrorSession",
                json!({ "DeleteTrafficMirrorSessionRequest": { "TrafficMirrorSessionId": session_id } }),
                json!({ "DeleteTrafficMirrorSessionResponse": { "trafficMirrorSessionId": session_id } }),
            ),
            ExternalAction::ModifiedSession { session_id, .. } => (
                "ModifyTrafficMirrorSession",
                json!({ "ModifyTrafficMirrorSessionRequest": { "TrafficMirrorSessionId": session_id, "PacketLength": 128 } }),
                json!({ "ModifyTrafficMirrorSessionResponse": { "trafficMirrorSession": { "trafficMirrorSessionId": session_id } } }),
            ),
            ExternalAction::AttachedInterface { instance_id, network_interface_id } => (
                "AttachNetworkInterface",
                json!({ "networkInterfaceId": network_interface_id, "instanceId": instance_id, "deviceIndex": 1 }),
                json!({ "attachmentId": format!("eni-attach-{sequence:017x}"), "networkCardIndex": 0 }),
            ),
            ExternalAction::LaunchedInstance { instance_id } => (
                "RunInstances",
                json!({ "instancesSet": { "items": [{ "minCount": 1, "maxCount": 1 }] } }),
                json!({ "instancesSet": { "items": [{ "instanceId": instance_id }] } }),
            ),
        };
        let body: Value = json!({
            "version": "0",
            "id": format!("00000000-0000-4000-8000-{sequence:012x}"),
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.ec2",
            "account": "111122223333",
            "time": "2026-12-04T10:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "eventVersion": "1.09",
                "eventTime": "2026-12-04T10:00:00Z",
                "eventSource": "ec2.amazonaws.com",
                "eventName": name,
                "awsRegion": "us-east-1",
                "requestParameters": request,
                "responseElements": response,
                "eventType": "AwsApiCall",
                "recipientAccountId": "111122223333"
            }
        });
        body.to_string()
    }
}

/// The tags and type of instances the actors launch.
#[derive(Clone, Debug)]
pub struct LaunchTemplate {
    pub instance_type: String,
    pub tags: Vec<(String, String)>,
}

/// Picks and performs random actions with the in-memory EC2's seeded generator.
pub struct ExternalActors {
    pub launch: LaunchTemplate,
    sequence: u64,
}

impl ExternalActors {
    pub fn new(launch: LaunchTemplate) -> Self {
        ExternalActors { launch, sequence: 0 }
    }

    /// Performs one random action and returns it with its event body, or `None` when the
    /// action found nothing to act on (no session to delete, for example).
    pub fn act(&mut self, ec2: &FakeEc2) -> Option<(ExternalAction, String)> {
        self.sequence += 1;
        let action = match ec2.pick(4) {
            0 => {
                let sessions = ec2.sessions();
                let victim = sessions.get(ec2.pick(sessions.len()))?;
                ec2.delete_session_directly(&victim.id);
                ExternalAction::DeletedSession {
                    session_id: victim.id.clone(),
                    network_interface_id: victim.network_interface_id.clone(),
                }
            }
            1 => {
                let sessions = ec2.sessions();
                let victim = sessions.get(ec2.pick(sessions.len()))?;
                ec2.modify_session_directly(&victim.id, |s| s.packet_length = Some(128));
                ExternalAction::ModifiedSession {
                    session_id: victim.id.clone(),
                    network_interface_id: victim.network_interface_id.clone(),
                }
            }
            2 => {
                let instances = ec2.instance_ids();
                let instance_id = instances.get(ec2.pick(instances.len()))?.clone();
                let network_interface_id = ec2.attach_interface(&instance_id);
                ExternalAction::AttachedInterface { instance_id, network_interface_id }
            }
            _ => {
                let tags: Vec<(&str, &str)> = self.launch.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let (instance_id, _) = ec2.add_instance(&self.launch.instance_type, &tags, &["interface"]);
                ExternalAction::LaunchedInstance { instance_id }
            }
        };
        let body = action.event_body(self.sequence);
        Some((action, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Classification, classify};

    fn launch() -> LaunchTemplate {
        LaunchTemplate { instance_type: "m5.large".into(), tags: vec![("env".into(), "prod".into())] }
    }

    #[test]
    fn action_event_wakes_its_resources() {
        let ec2 = FakeEc2::new();
        let target = ec2.add_target(None);
        let filter = ec2.add_filter();
        let (_, interfaces) = ec2.add_instance("m5.large", &[("env", "prod")], &["interface"]);
        let mut actors = ExternalActors::new(launch());
        let mut kinds = std::collections::HashSet::new();
        for _ in 0..200 {
            // Keep a session around for the session actions to find.
            if ec2.sessions().is_empty() {
                let request = crate::aws::model::CreateSession {
                    network_interface_id: interfaces[0].clone(),
                    target_id: target.clone(),
                    filter_id: filter.clone(),
                    number: 1,
                    packet_length: None,
                    virtual_network_id: None,
                    description: None,
                    tags: Default::default(),
                    client_token: String::new(),
                };
                ec2.add_session_directly(&request).unwrap();
            }
            let Some((action, body)) = actors.act(&ec2) else { continue };
            let Classification::Wake(event) = classify(body.as_bytes()) else {
                panic!("{action:?} gave an event that wakes nothing: {body}");
            };
            let scope = &event.scope;
            let named = match &action {
                ExternalAction::DeletedSession { session_id, .. }
                | ExternalAction::ModifiedSession { session_id, .. } => scope.session_ids.contains(session_id),
                ExternalAction::AttachedInterface { instance_id, .. }
                | ExternalAction::LaunchedInstance { instance_id } => scope.instance_ids.contains(instance_id),
            };
            assert!(named, "{action:?} is missing from {scope:?}");
            kinds.insert(std::mem::discriminant(&action));
        }
        assert_eq!(kinds.len(), 4, "200 draws should have tried every action");
    }
}
