//! Failure responses as the API server sends them: a `Status` object (kind Status, apiVersion
//! v1, status Failure) with a reason, and the same code as the HTTP status, so that the kube
//! client decodes them into `kube::Error::Api`.

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use serde_json::{Value, json};

use super::ResourceType;

/// A failed request, turned into a `Status` response by [`ApiError::into_response`].
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None }
    }

    fn with_details(mut self, resource: &ResourceType, name: &str) -> Self {
        self.details = Some(json!({ "name": name, "group": resource.group, "kind": resource.plural }));
        self
    }

    /// Builds the response to a path that names no registered resource, for example a custom
    /// resource whose CRD is not installed.
    pub fn no_route() -> Self {
        ApiError::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub fn not_found(resource: &ResourceType, name: &str) -> Self {
        ApiError::new(404, "NotFound", format!("{} \"{name}\" not found", resource.group_resource()))
            .with_details(resource, name)
    }

    pub fn already_exists(resource: &ResourceType, name: &str) -> Self {
        ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", resource.group_resource()))
            .with_details(resource, name)
    }

    /// Builds the error of a write based on a stale `metadata.resourceVersion`.
    pub fn conflict(resource: &ResourceType, name: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            resource.group_resource()
        );
        ApiError::new(409, "Conflict", message).with_details(resource, name)
    }

    /// Builds the error of a failed precondition (uid or resourceVersion) of a write or delete.
    pub fn precondition_failed(resource: &ResourceType, name: &str, message: String) -> Self {
        let message = format!("Operation cannot be fulfilled on {} \"{name}\": {message}", resource.group_resource());
        ApiError::new(409, "Conflict", message).with_details(resource, name)
    }

    /// Builds the error of a write whose result fails validation. `cause` names the field and
    /// the problem.
    pub fn invalid(resource: &ResourceType, name: &str, cause: &str) -> Self {
        let message = format!("{} \"{name}\" is invalid: {cause}", resource.group_kind());
        ApiError::new(422, "Invalid", message).with_details(resource, name)
    }

    /// Builds the error of invalid patch parameters, for example an apply without `fieldManager`.
    pub fn invalid_patch_options(cause: &str) -> Self {
        ApiError::new(422, "Invalid", format!("PatchOptions.meta.k8s.io \"\" is invalid: {cause}"))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(method: &str) -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource: {method}"),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    /// Builds the error of a watch that starts before the oldest change the fake still keeps.
    pub fn resource_version_too_old(requested: u64, oldest: u64) -> Self {
        ApiError::new(410, "Expired", format!("too old resource version: {requested} ({oldest})"))
    }

    /// Builds a failure that a test injected with `FakeApiServer::fail_next`, with the reason
    /// that the API server uses for that code.
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        ApiError::new(code, reason, format!("failure injected by the test (HTTP {code})"))
    }

    /// Returns the `Status` object of this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    pub fn into_response(self) -> Response<Body> {
        json_response(self.code, &self.to_status())
    }
}

/// Builds a JSON response with the given HTTP status.
pub fn json_response(code: u16, body: &Value) -> Response<Body> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("a response with a valid status and header")
}
