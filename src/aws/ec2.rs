//! The `Ec2` trait, the only way the engine reaches EC2, and its aws-sdk-ec2 implementation.

use std::future::Future;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter as SdkFilter, ResourceType, Tag, TagSpecification, TrafficMirrorSessionField};

use super::error::{Ec2Error, ErrorKind};
use super::error_chain;
use super::model::{
    CreateSession, Filter, Instance, InstanceQuery, InterfaceAttachment, MAX_RESULTS, ModifySession, NetworkInterface,
    Page, Session, Target,
};

/// The EC2 calls the controller makes. Describe calls return one page; callers follow
/// `next_token` until it is `None`.
pub trait Ec2: Send + Sync {
    /// Describes instances matching `query`, one page at a time.
    fn describe_instances(
        &self,
        query: &InstanceQuery,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Instance>, Ec2Error>> + Send;

    /// Describes sessions matching server-side filters such as ("network-interface-id", [...]).
    fn describe_sessions(
        &self,
        filters: &[(String, Vec<String>)],
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Session>, Ec2Error>> + Send;

    /// Describes every target of the account and region.
    fn describe_targets(
        &self,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Target>, Ec2Error>> + Send;

    /// Describes the network interfaces with these ids and the instances they are attached to;
    /// ids that do not exist are left out, not an error.
    fn describe_network_interfaces(
        &self,
        ids: &[String],
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<InterfaceAttachment>, Ec2Error>> + Send;

    /// Describes the filters with these ids; ids that do not exist are left out, not an error.
    fn describe_filters(
        &self,
        ids: &[String],
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<Filter>, Ec2Error>> + Send;

    /// Creates a session, or returns the first result for a repeated client token.
    fn create_session(&self, request: &CreateSession) -> impl Future<Output = Result<Session, Ec2Error>> + Send;

    /// Changes a session in place.
    fn modify_session(&self, request: &ModifySession) -> impl Future<Output = Result<Session, Ec2Error>> + Send;

    /// Deletes a session.
    fn delete_session(&self, session_id: &str) -> impl Future<Output = Result<(), Ec2Error>> + Send;
}

/// A shared `Ec2`, so that a test can keep a handle on the in-memory EC2 that an engine uses,
/// and a restarted engine can find the same account.
impl<E: Ec2> Ec2 for std::sync::Arc<E> {
    async fn describe_instances(
        &self,
        query: &InstanceQuery,
        next_token: Option<String>,
    ) -> Result<Page<Instance>, Ec2Error> {
        (**self).describe_instances(query, next_token).await
    }

    async fn describe_sessions(
        &self,
        filters: &[(String, Vec<String>)],
        next_token: Option<String>,
    ) -> Result<Page<Session>, Ec2Error> {
        (**self).describe_sessions(filters, next_token).await
    }

    async fn describe_targets(&self, next_token: Option<String>) -> Result<Page<Target>, Ec2Error> {
        (**self).describe_targets(next_token).await
    }

    async fn describe_network_interfaces(
        &self,
        ids: &[String],
        next_token: Option<String>,
    ) -> Result<Page<InterfaceAttachment>, Ec2Error> {
        (**self).describe_network_interfaces(ids, next_token).await
    }

    async fn describe_filters(&self, ids: &[String], next_token: Option<String>) -> Result<Page<Filter>, Ec2Error> {
        (**self).describe_filters(ids, next_token).await
    }

    async fn create_session(&self, request: &CreateSession) -> Result<Session, Ec2Error> {
        (**self).create_session(request).await
    }

    async fn modify_session(&self, request: &ModifySession) -> Result<Session, Ec2Error> {
        (**self).modify_session(request).await
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), Ec2Error> {
        (**self).delete_session(session_id).await
    }
}

/// `Ec2` over the real aws-sdk-ec2 client.
#[derive(Clone)]
pub struct SdkEc2 {
    client: aws_sdk_ec2::Client,
}

impl SdkEc2 {
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        SdkEc2 { client }
    }
}

fn sdk_filters(filters: &[(String, Vec<String>)]) -> Option<Vec<SdkFilter>> {
    if filters.is_empty() {
        return None;
    }
    let built = filters
        .iter()
        .map(|(name, values)| SdkFilter::builder().name(name).set_values(Some(values.clone())).build())
        .collect();
    Some(built)
}

fn tag_map(tags: &[Tag]) -> std::collections::BTreeMap<String, String> {
    tags.iter().filter_map(|tag| Some((tag.key()?.to_string(), tag.value().unwrap_or_default().to_string()))).collect()
}

/// Converts an SDK error into an `Ec2Error`, keeping the AWS code and sorting out throttling.
fn classify<E>(operation: &'static str, error: SdkError<E>) -> Ec2Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error.code().map(str::to_string);
    let message = error.message().map(str::to_string).unwrap_or_else(|| error_chain(&error));
    let kind = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorKind::Transient,
        SdkError::ResponseError(_) => ErrorKind::Transient,
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            match code.as_deref() {
                Some("RequestLimitExceeded" | "Throttling" | "ThrottlingException") => ErrorKind::Throttled,
                _ if status >= 500 => ErrorKind::Transient,
                _ => ErrorKind::Rejected,
            }
        }
        _ => ErrorKind::Rejected,
    };
    Ec2Error { operation, kind, code, message }
}

fn convert_instance(instance: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let network_interfaces = instance
        .network_interfaces()
        .iter()
        .filter_map(|interface| {
            let attachment = interface.attachment();
            Some(NetworkInterface {
                id: interface.network_interface_id()?.to_string(),
                interface_type: interface.interface_type().unwrap_or("interface").to_string(),
                device_index: attachment.and_then(|a| a.device_index()).unwrap_or(0),
                network_card_index: attachment.and_then(|a| a.network_card_index()).unwrap_or(0),
                attachment_id: attachment.and_then(|a| a.attachment_id()).map(str::to_string),
            })
        })
        .collect();
    Some(Instance {
        id: instance.instance_id()?.to_string(),
        instance_type: instance.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        state: instance.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
        vpc_id: instance.vpc_id().map(str::to_string),
        subnet_id: instance.subnet_id().map(str::to_string),
        availability_zone: instance.placement().and_then(|p| p.availability_zone()).map(str::to_string),
        tags: tag_map(instance.tags()),
        network_interfaces,
    })
}

fn convert_session(session: &aws_sdk_ec2::types::TrafficMirrorSession) -> Option<Session> {
    Some(Session {
        id: session.traffic_mirror_session_id()?.to_string(),
        network_interface_id: session.network_interface_id()?.to_string(),
        target_id: session.traffic_mirror_target_id().unwrap_or_default().to_string(),
        filter_id: session.traffic_mirror_filter_id().unwrap_or_default().to_string(),
        number: session.session_number().unwrap_or(0),
        packet_length: session.packet_length(),
        virtual_network_id: session.virtual_network_id(),
        description: session.description().filter(|d| !d.is_empty()).map(str::to_string),
        tags: tag_map(session.tags()),
    })
}

impl Ec2 for SdkEc2 {
    async fn describe_instances(
        &self,
        query: &InstanceQuery,
        next_token: Option<String>,
    ) -> Result<Page<Instance>, Ec2Error> {
        let mut request =
            self.client.describe_instances().set_filters(sdk_filters(&query.filters)).set_next_token(next_token);
        if query.instance_ids.is_empty() {
            request = request.max_results(MAX_RESULTS);
        } else {
            request = request.set_instance_ids(Some(query.instance_ids.clone()));
        }
        let output = request.send().await.map_err(|e| classify("DescribeInstances", e))?;
        let items = output
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .filter_map(convert_instance)
            .collect();
        Ok(Page { items, next_token: output.next_token().filter(|t| !t.is_empty()).map(str::to_string) })
    }

    async fn describe_sessions(
        &self,
        filters: &[(String, Vec<String>)],
        next_token: Option<String>,
    ) -> Result<Page<Session>, Ec2Error> {
        let output = self
            .client
            .describe_traffic_mirror_sessions()
            .set_filters(sdk_filters(filters))
            .max_results(MAX_RESULTS)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| classify("DescribeTrafficMirrorSessions", e))?;
        let items = output.traffic_mirror_sessions().iter().filter_map(convert_session).collect();
        Ok(Page { items, next_token: output.next_token().filter(|t| !t.is_empty()).map(str::to_string) })
    }

    async fn describe_targets(&self, next_token: Option<String>) -> Result<Page<Target>, Ec2Error> {
        let output = self
            .client
            .describe_traffic_mirror_targets()
            .max_results(MAX_RESULTS)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| classify("DescribeTrafficMirrorTargets", e))?;
        let items = output
            .traffic_mirror_targets()
            .iter()
            .filter_map(|target| {
                Some(Target {
                    id: target.traffic_mirror_target_id()?.to_string(),
                    network_interface_id: target.network_interface_id().map(str::to_string),
                    target_type: target.r#type().map(|t| t.as_str().to_string()),
                })
            })
            .collect();
        Ok(Page { items, next_token: output.next_token().filter(|t| !t.is_empty()).map(str::to_string) })
    }

    async fn describe_network_interfaces(
        &self,
        ids: &[String],
        next_token: Option<String>,
    ) -> Result<Page<InterfaceAttachment>, Ec2Error> {
        // A filter on the id, so that an interface deleted since the event is left out instead
        // of failing the call.
        let filters = [("network-interface-id".to_string(), ids.to_vec())];
        let output = self
            .client
            .describe_network_interfaces()
            .set_filters(sdk_filters(&filters))
            .max_results(MAX_RESULTS)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| classify("DescribeNetworkInterfaces", e))?;
        let items = output
            .network_interfaces()
            .iter()
            .filter_map(|interface| {
                Some(InterfaceAttachment {
                    network_interface_id: interface.network_interface_id()?.to_string(),
                    instance_id: interface.attachment().and_then(|a| a.instance_id()).map(str::to_string),
                })
            })
            .collect();
        Ok(Page { items, next_token: output.next_token().filter(|t| !t.is_empty()).map(str::to_string) })
    }

    async fn describe_filters(&self, ids: &[String], next_token: Option<String>) -> Result<Page<Filter>, Ec2Error> {
        // A filter on the id, not TrafficMirrorFilterIds, so that a missing id yields an empty
        // page instead of an error that would hide the filters that do exist.
        let filters = [("traffic-mirror-filter-id".to_string(), ids.to_vec())];
        let output = self
            .client
            .describe_traffic_mirror_filters()
            .set_filters(sdk_filters(&filters))
            .max_results(MAX_RESULTS)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| classify("DescribeTrafficMirrorFilters", e))?;
        let items = output
            .traffic_mirror_filters()
            .iter()
            .filter_map(|filter| Some(Filter { id: filter.traffic_mirror_filter_id()?.to_string() }))
            .collect();
        Ok(Page { items, next_token: output.next_token().filter(|t| !t.is_empty()).map(str::to_string) })
    }

    async fn create_session(&self, request: &CreateSession) -> Result<Session, Ec2Error> {
        let tags = request.tags.iter().map(|(key, value)| Tag::builder().key(key).value(value).build()).collect();
        let output = self
            .client
            .create_traffic_mirror_session()
            .network_interface_id(&request.network_interface_id)
            .traffic_mirror_target_id(&request.target_id)
            .traffic_mirror_filter_id(&request.filter_id)
            .session_number(request.number)
            .set_packet_length(request.packet_length)
            .set_virtual_network_id(request.virtual_network_id)
            .set_description(request.description.clone())
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::TrafficMirrorSession)
                    .set_tags(Some(tags))
                    .build(),
            )
            .client_token(&request.client_token)
            .send()
            .await
            .map_err(|e| classify("CreateTrafficMirrorSession", e))?;
        output.traffic_mirror_session().and_then(convert_session).ok_or_else(|| Ec2Error {
            operation: "CreateTrafficMirrorSession",
            kind: ErrorKind::Transient,
            code: None,
            message: "the response carries no session".to_string(),
        })
    }

    async fn modify_session(&self, request: &ModifySession) -> Result<Session, Ec2Error> {
        let mut remove = Vec::new();
        if request.remove_packet_length {
            remove.push(TrafficMirrorSessionField::PacketLength);
        }
        if request.remove_description {
            remove.push(TrafficMirrorSessionField::Description);
        }
        let output = self
            .client
            .modify_traffic_mirror_session()
            .traffic_mirror_session_id(&request.session_id)
            .set_traffic_mirror_target_id(request.target_id.clone())
            .set_traffic_mirror_filter_id(request.filter_id.clone())
            .set_session_number(request.number)
            .set_packet_length(request.packet_length)
            .set_virtual_network_id(request.virtual_network_id)
            .set_description(request.description.clone())
            .set_remove_fields((!remove.is_empty()).then_some(remove))
            .send()
            .await
            .map_err(|e| classify("ModifyTrafficMirrorSession", e))?;
        output.traffic_mirror_session().and_then(convert_session).ok_or_else(|| Ec2Error {
            operation: "ModifyTrafficMirrorSession",
            kind: ErrorKind::Transient,
            code: None,
            message: "the response carries no session".to_string(),
        })
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), Ec2Error> {
        self.client
            .delete_traffic_mirror_session()
            .traffic_mirror_session_id(session_id)
            .send()
            .await
            .map_err(|e| classify("DeleteTrafficMirrorSession", e))?;
        Ok(())
    }
}
