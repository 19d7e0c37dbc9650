//! Errors of EC2 calls, classified so that callers can decide to retry, learn or report.

/// Error codes of the EC2 API that the controller acts on.
pub mod code {
    pub const NETWORK_INTERFACE_NOT_SUPPORTED: &str = "NetworkInterfaceNotSupported";
    pub const SESSIONS_PER_INTERFACE_LIMIT: &str = "TrafficMirrorSessionsPerInterfaceLimitExceeded";
    pub const SESSION_LIMIT: &str = "TrafficMirrorSessionLimitExceeded";
    pub const SOURCES_PER_TARGET_LIMIT: &str = "TrafficMirrorSourcesPerTargetLimitExceeded";
    pub const SESSION_NOT_FOUND: &str = "InvalidTrafficMirrorSessionId.NotFound";
    pub const TARGET_NOT_FOUND: &str = "InvalidTrafficMirrorTargetId.NotFound";
    pub const FILTER_NOT_FOUND: &str = "InvalidTrafficMirrorFilterId.NotFound";
    pub const NETWORK_INTERFACE_NOT_FOUND: &str = "InvalidNetworkInterfaceID.NotFound";
    pub const INSTANCE_NOT_FOUND: &str = "InvalidInstanceID.NotFound";
    pub const IDEMPOTENT_PARAMETER_MISMATCH: &str = "IdempotentParameterMismatch";
    pub const REQUEST_LIMIT_EXCEEDED: &str = "RequestLimitExceeded";
    pub const INVALID_PARAMETER_VALUE: &str = "InvalidParameterValue";
    pub const INVALID_PARAMETER_COMBINATION: &str = "InvalidParameterCombination";
}

/// The handling class of a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Over the account's request rate; retry after a pause.
    Throttled,
    /// A timeout, a connection failure or a 5xx; retry.
    Transient,
    /// AWS rejected the request; retrying the same request fails again.
    Rejected,
}

/// A failed EC2 call with the operation, the AWS error code and message.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{operation} failed: {}: {message}", code.as_deref().unwrap_or("no error code"))]
pub struct Ec2Error {
    pub operation: &'static str,
    pub kind: ErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl Ec2Error {
    /// Builds a rejection with an AWS error code, as the EC2 API returns it.
    pub fn rejected(operation: &'static str, code: &str, message: impl Into<String>) -> Self {
        let kind = if code == code::REQUEST_LIMIT_EXCEEDED { ErrorKind::Throttled } else { ErrorKind::Rejected };
        Ec2Error { operation, kind, code: Some(code.to_string()), message: message.into() }
    }

    /// Returns whether the error carries this AWS error code.
    pub fn has_code(&self, expected: &str) -> bool {
        self.code.as_deref() == Some(expected)
    }

    /// Returns whether retrying the same call later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Transient)
    }
}
