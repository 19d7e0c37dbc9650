//! An `Ec2` wrapper that counts every call by operation and outcome, so that all AWS
//! instrumentation lives in one place whatever implementation sits below.

use std::sync::Arc;

use super::ec2::Ec2;
use super::error::{Ec2Error, ErrorKind};
use super::model::{
    CreateSession, Filter, Instance, InstanceQuery, InterfaceAttachment, ModifySession, Page, Session, Target,
};
use crate::metrics::Metrics;

/// Counts the calls of the wrapped `Ec2` in `vpcmirror_aws_calls_total`.
pub struct Instrumented<E> {
    inner: E,
    metrics: Arc<Metrics>,
}

impl<E> Instrumented<E> {
    pub fn new(inner: E, metrics: Arc<Metrics>) -> Self {
        Instrumented { inner, metrics }
    }

    pub fn inner(&self) -> &E {
        &self.inner
    }

    fn observe<T>(&self, operation: &'static str, result: Result<T, Ec2Error>) -> Result<T, Ec2Error> {
        let outcome = match &result {
            Ok(_) => "success",
            Err(error) if error.kind == ErrorKind::Throttled => "throttled",
            Err(_) => "error",
        };
        self.metrics.record_aws_call(operation, outcome);
        result
    }
}

impl<E: Ec2> Ec2 for Instrumented<E> {
    async fn describe_instances(
        &self,
        query: &InstanceQuery,
        next_token: Option<String>,
    ) -> Result<Page<Instance>, Ec2Error> {
        self.observe("DescribeInstances", self.inner.describe_instances(query, next_token).await)
    }

    async fn describe_sessions(
        &self,
        filters: &[(String, Vec<String>)],
        next_token: Option<String>,
    ) -> Result<Page<Session>, Ec2Error> {
        self.observe("DescribeTrafficMirrorSessions", self.inner.describe_sessions(filters, next_token).await)
    }

    async fn describe_targets(&self, next_token: Option<String>) -> Result<Page<Target>, Ec2Error> {
        self.observe("DescribeTrafficMirrorTargets", self.inner.describe_targets(next_token).await)
    }

    async fn describe_network_interfaces(
        &self,
        ids: &[String],
        next_token: Option<String>,
    ) -> Result<Page<InterfaceAttachment>, Ec2Error> {
        self.observe("DescribeNetworkInterfaces", self.inner.describe_network_interfaces(ids, next_token).await)
    }

    async fn describe_filters(&self, ids: &[String], next_token: Option<String>) -> Result<Page<Filter>, Ec2Error> {
        self.observe("DescribeTrafficMirrorFilters", self.inner.describe_filters(ids, next_token).await)
    }

    async fn create_session(&self, request: &CreateSession) -> Result<Session, Ec2Error> {
        self.observe("CreateTrafficMirrorSession", self.inner.create_session(request).await)
    }

    async fn modify_session(&self, request: &ModifySession) -> Result<Session, Ec2Error> {
        self.observe("ModifyTrafficMirrorSession", self.inner.modify_session(request).await)
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), Ec2Error> {
        self.observe("DeleteTrafficMirrorSession", self.inner.delete_session(session_id).await)
    }
}
