//! An in-process fake of the Kubernetes API server, for tests that run the real kube client
//! and kube-runtime (`Api`, `watcher`, `Controller`, events `Recorder`) without a cluster.
//!
//! [`FakeApiServer::client`] returns a `kube::Client` whose tower service calls the fake
//! directly, so no socket is opened. The fake serves any registered resource and keeps objects
//! as JSON. It follows the API server's rules where controllers depend on them: a global
//! resourceVersion, optimistic concurrency, generation, the status subresource, finalizers,
//! `Status` errors, and streaming watches that resume from a resourceVersion.
//!
//! The fake does not implement authentication, authorization or admission. It stores objects
//! as sent, with no OpenAPI schema validation or defaulting. It records no
//! `metadata.managedFields` and reports no apply conflicts. It has no garbage collector, so
//! `propagationPolicy` is ignored. Of the subresources it serves only `/status`. Get and list
//! always serve the latest state, whatever their `resourceVersion`. Discovery (`/api`,
//! `/apis`, `/version`), protobuf and table output are not served.

mod errors;
mod patch;
mod selector;
mod store;
mod watch;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, header};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::NamespaceResourceScope;
use kube::{CustomResourceExt, Resource};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use vpc_mirror_controller::policy::MirrorPolicy;

pub use axum::http::Method;

use self::errors::{ApiError, json_response};
use self::patch::{PatchKind, apply_patch, parse_applied_object};
use self::selector::{FieldSelector, LabelSelector};
use self::store::{ObjectKey, Signal, Store, Subresource};
use self::watch::{WatchFilter, WatchOptions, WatchStream};

/// Capacity of the channel that feeds open watches. A watch that falls this many changes
/// behind ends, and its client watches again from the last version it saw.
const WATCH_CHANNEL_CAPACITY: usize = 1024;

/// How long [`FakeApiServer::wait_for_open_watch`] waits.
const OPEN_WATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One kind of object the fake serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// The API group, empty for the core group (`/api/v1`).
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// Whether `/status` is served. Then writes to the main resource keep the stored `status`,
    /// writes to `/status` change only `status`, and create drops `status`.
    pub status_subresource: bool,
    /// Whether a CustomResourceDefinition defines the resource. Then a replace without
    /// `metadata.resourceVersion` is rejected, and strategic merge patches get 415.
    pub custom_resource: bool,
}

impl ResourceType {
    /// Describes the built-in resource of a k8s-openapi type, without a status subresource.
    pub fn of<K>() -> Self
    where
        K: Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        ResourceType {
            group: K::group(&()).into_owned(),
            version: K::version(&()).into_owned(),
            plural: K::plural(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespaced: std::any::TypeId::of::<K::Scope>() == std::any::TypeId::of::<NamespaceResourceScope>(),
            status_subresource: false,
            custom_resource: false,
        }
    }

    /// Describes one resource for each served version of a CustomResourceDefinition.
    pub fn from_crd(crd: &CustomResourceDefinition) -> Vec<Self> {
        let spec = &crd.spec;
        spec.versions
            .iter()
            .filter(|version| version.served)
            .map(|version| ResourceType {
                group: spec.group.clone(),
                version: version.name.clone(),
                plural: spec.names.plural.clone(),
                kind: spec.names.kind.clone(),
                namespaced: spec.scope == "Namespaced",
                status_subresource: version
                    .subresources
                    .as_ref()
                    .is_some_and(|subresources| subresources.status.is_some()),
                custom_resource: true,
            })
            .collect()
    }

    pub fn with_status_subresource(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    /// Returns `group/version`, or only the version for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// Returns `plural.group` as error messages name the resource, for example
    /// `leases.coordination.k8s.io`.
    pub fn group_resource(&self) -> String {
        qualify(&self.plural, &self.group)
    }

    /// Returns `Kind.group`, as validation errors name the resource.
    pub fn group_kind(&self) -> String {
        qualify(&self.kind, &self.group)
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() { name.to_owned() } else { format!("{name}.{group}") }
}

/// One request as the fake received it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    /// Decoded query parameters in their order, for example `("fieldManager", "controller")`.
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// The body parsed as JSON, or as YAML for server-side apply. It is Null when the body is
    /// empty, and a string when the body parses as neither.
    pub body: Value,
    /// The HTTP status of the response, or None when the fake was unavailable.
    pub status: Option<u16>,
}

impl RecordedRequest {
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn is_watch(&self) -> bool {
        matches!(self.query_param("watch"), Some("true" | "1"))
    }
}

/// The fake API server. Clones share one state.
#[derive(Clone)]
pub struct FakeApiServer {
    shared: Arc<Mutex<State>>,
}

struct State {
    store: Store,
    requests: Vec<RecordedRequest>,
    injected_failures: Vec<InjectedFailure>,
    available: bool,
    /// One token per watched path. Every open watch of the path keeps a clone, so the
    /// number of open watches is the strong count minus this one.
    open_watches: HashMap<String, Arc<()>>,
}

struct InjectedFailure {
    method: Method,
    path_prefix: String,
    code: u16,
}

impl Default for FakeApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeApiServer {
    /// Creates a fake that serves Leases (coordination.k8s.io/v1), Events (events.k8s.io/v1 and core
    /// v1) and the `MirrorPolicy` custom resource as its CRD defines it.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(WATCH_CHANNEL_CAPACITY);
        let server = FakeApiServer {
            shared: Arc::new(Mutex::new(State {
                store: Store::new(changes),
                requests: Vec::new(),
                injected_failures: Vec::new(),
                available: true,
                open_watches: HashMap::new(),
            })),
        };
        server.register(ResourceType::of::<Lease>());
        server.register(ResourceType::of::<Event>());
        server.register(ResourceType::of::<CoreEvent>());
        server.install_crd(&MirrorPolicy::crd());
        server
    }

    /// Serves one more resource, or replaces the definition of a served one.
    pub fn register(&self, resource: ResourceType) {
        self.lock().store.register(resource);
    }

    /// Serves every served version of a CustomResourceDefinition.
    pub fn install_crd(&self, crd: &CustomResourceDefinition) {
        for resource in ResourceType::from_crd(crd) {
            self.register(resource);
        }
    }

    /// Returns a client whose requests go to this fake, with default namespace "default".
    /// Call it inside a Tokio runtime, because the client spawns its request buffer there.
    pub fn client(&self) -> kube::Client {
        let server = self.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let server = server.clone();
            async move { server.handle(request).await }
        });
        kube::Client::new(service, "default")
    }

    // ---- objects ----

    /// Stores an object directly, bypassing the API rules: status is kept, and uid,
    /// creationTimestamp and generation are filled only when missing. The resourceVersion is
    /// new, and open watches see ADDED or MODIFIED. Panics when the apiVersion and kind name
    /// no registered resource.
    pub fn insert<T: Serialize>(&self, object: &T) -> Value {
        let object = serde_json::to_value(object).expect("the object serializes to JSON");
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let mut state = self.lock();
        let resource = state
            .store
            .resource_type_of_object(api_version, kind)
            .unwrap_or_else(|| panic!("no registered resource has apiVersion {api_version:?} and kind {kind:?}"));
        state.store.insert(&resource, object)
    }

    /// Removes an object at once, whatever its finalizers, and open watches see DELETED.
    pub fn remove<K>(&self, namespace: Option<&str>, name: &str) -> Option<Value>
    where
        K: Resource<DynamicType = ()>,
    {
        let mut state = self.lock();
        let resource = state.resource_type_of::<K>();
        state.store.remove(&ObjectKey::new(&resource, namespace, name))
    }

    /// Returns the stored object, or None.
    pub fn object<K>(&self, namespace: Option<&str>, name: &str) -> Option<Value>
    where
        K: Resource<DynamicType = ()>,
    {
        let state = self.lock();
        let resource = state.resource_type_of::<K>();
        state.store.objects.get(&ObjectKey::new(&resource, namespace, name)).cloned()
    }

    /// Returns the stored objects of a resource in key order, within `namespace` when given.
    pub fn objects<K>(&self, namespace: Option<&str>) -> Vec<Value>
    where
        K: Resource<DynamicType = ()>,
    {
        let state = self.lock();
        let resource = state.resource_type_of::<K>();
        state
            .store
            .select(&resource, namespace, &LabelSelector::default(), &FieldSelector::default())
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Returns the latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().store.resource_version
    }

    /// Drops the change history, as etcd compaction does: a watch from an older
    /// resourceVersion then gets a 410 Gone error event.
    pub fn compact_history(&self) {
        let mut state = self.lock();
        state.store.history.clear();
        state.store.history_start = state.store.resource_version;
    }

    // ---- requests ----

    /// Returns every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Returns the requests with this method and exactly this path (without query).
    pub fn requests_to(&self, method: Method, path: &str) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|request| request.method == method && request.path == path)
            .cloned()
            .collect()
    }

    pub fn request_count(&self, method: Method, path: &str) -> usize {
        self.requests_to(method, path).len()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Makes the next request with this method and a path starting with `path_prefix` fail
    /// with `code` and a `Status` body. Each call injects one failure.
    pub fn fail_next(&self, method: Method, path_prefix: &str, code: u16) {
        self.lock().injected_failures.push(InjectedFailure { method, path_prefix: path_prefix.to_owned(), code });
    }

    /// Makes the fake unavailable or available again. While unavailable, every request fails
    /// as a refused connection (`kube::Error::Service`) and open watches end.
    pub fn set_available(&self, available: bool) {
        let mut state = self.lock();
        state.available = available;
        if !available {
            // Sending fails only when no watch is open.
            let _ = state.store.changes.send(Signal::Disconnect);
        }
    }

    /// Counts the watches open on `path`, for example
    /// `/apis/vpcmirror.dev/v1alpha1/mirrorpolicies`.
    pub fn open_watch_count(&self, path: &str) -> usize {
        self.lock().open_watches.get(path).map_or(0, |token| Arc::strong_count(token) - 1)
    }

    /// Waits until a watch is open on `path`, so that a test can write an object that the
    /// watcher must see as a change. Panics after 10 seconds.
    pub async fn wait_for_open_watch(&self, path: &str) {
        let deadline = tokio::time::Instant::now() + OPEN_WATCH_TIMEOUT;
        while self.open_watch_count(path) == 0 {
            if tokio::time::Instant::now() > deadline {
                let requests: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|request| format!("{} {} {:?}", request.method, request.path, request.query))
                    .collect();
                panic!("no watch opened on {path} within {OPEN_WATCH_TIMEOUT:?}; requests: {requests:#?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // ---- serving ----

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves a usable state behind.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn handle(&self, request: Request<kube::client::Body>) -> Result<Response<Body>, io::Error> {
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(Body::new(body), usize::MAX).await {
            Ok(body) => body,
            Err(error) => {
                return Ok(ApiError::bad_request(format!("failed to read the request body: {error}")).into_response());
            }
        };
        let path = parts.uri.path().to_owned();
        let query: Vec<(String, String)> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
        let content_type =
            parts.headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let request = RecordedRequest {
            method: parts.method,
            body: parse_body(&body, content_type.as_deref()),
            path,
            query,
            content_type,
            status: None,
        };

        // The whole request runs under one lock, so every request is atomic.
        let mut state = self.lock();
        let index = state.requests.len();
        state.requests.push(request.clone());
        if !state.available {
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "the fake API server is unavailable"));
        }
        let response = match state.take_injected_failure(&request.method, &request.path) {
            Some(code) => ApiError::injected(code).into_response(),
            None => state.respond(&request, &body).unwrap_or_else(ApiError::into_response),
        };
        state.requests[index].status = Some(response.status().as_u16());
        Ok(response)
    }
}

/// The resource, namespace, name and subresource that a request path addresses.
struct Target {
    resource: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Subresource,
}

impl Target {
    fn key(&self) -> ObjectKey {
        ObjectKey::new(&self.resource, self.namespace.as_deref(), self.name.as_deref().unwrap_or_default())
    }
}

impl State {
    fn resource_type_of<K>(&self) -> ResourceType
    where
        K: Resource<DynamicType = ()>,
    {
        let (group, version, plural) = (K::group(&()), K::version(&()), K::plural(&()));
        self.store.resource_type(&group, &version, &plural).unwrap_or_else(|| {
            panic!("the fake API server does not serve {plural}.{group}/{version}: register it first")
        })
    }

    fn take_injected_failure(&mut self, method: &Method, path: &str) -> Option<u16> {
        let index = self
            .injected_failures
            .iter()
            .position(|failure| failure.method == *method && path.starts_with(&failure.path_prefix))?;
        Some(self.injected_failures.remove(index).code)
    }

    /// Parses `/api/v1/...` and `/apis/{group}/{version}/...` paths, with an optional
    /// `namespaces/{namespace}/` segment, into a target of a registered resource.
    fn resolve(&self, path: &str) -> Result<Target, ApiError> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return Err(ApiError::no_route()),
        };
        // `namespaces/{namespace}/{plural}` addresses a namespaced resource. Any other path
        // that starts with `namespaces` addresses the Namespace resource itself.
        let (namespace, rest) = match rest {
            ["namespaces", namespace, plural, ..]
                if self.store.resource_type(group, version, plural).is_some_and(|resource| resource.namespaced) =>
            {
                (Some(*namespace), &rest[2..])
            }
            _ => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [plural] => (*plural, None, None),
            [plural, name] => (*plural, Some(*name), None),
            [plural, name, subresource] => (*plural, Some(*name), Some(*subresource)),
            _ => return Err(ApiError::no_route()),
        };
        let resource = self.store.resource_type(group, version, plural).ok_or_else(ApiError::no_route)?;

        let subresource = match subresource {
            None => Subresource::Main,
            Some("status") if resource.status_subresource => Subresource::Status,
            Some(_) => return Err(ApiError::no_route()),
        };
        // A namespaced object has no path without its namespace.
        if resource.namespaced && namespace.is_none() && name.is_some() {
            return Err(ApiError::no_route());
        }
        Ok(Target { resource, namespace: namespace.map(str::to_owned), name: name.map(str::to_owned), subresource })
    }

    fn respond(&mut self, request: &RecordedRequest, body: &[u8]) -> Result<Response<Body>, ApiError> {
        let target = self.resolve(&request.path)?;
        let dry_run = request.query_param("dryRun").is_some();
        let method = request.method.clone();

        match (method, target.name.as_deref(), target.subresource) {
            (Method::GET, None, Subresource::Main) if request.is_watch() => self.watch(request, &target),
            (Method::GET, None, Subresource::Main) => self.list(request, &target),
            (Method::GET, Some(name), _) => {
                let object = self.store.get(&target.resource, target.namespace.as_deref(), name)?;
                Ok(json_response(200, &object))
            }
            (Method::POST, None, Subresource::Main) => {
                if target.resource.namespaced && target.namespace.is_none() {
                    return Err(ApiError::no_route());
                }
                let object = parse_json_body(body)?;
                let created = self.store.create(&target.resource, target.namespace.as_deref(), object, dry_run)?;
                Ok(json_response(201, &created))
            }
            (Method::PUT, Some(_), subresource) => {
                let object = parse_json_body(body)?;
                let replaced = self.store.replace(&target.resource, &target.key(), object, subresource, dry_run)?;
                Ok(json_response(200, &replaced))
            }
            (Method::PATCH, Some(_), _) => self.patch(request, &target, body, dry_run),
            (Method::DELETE, Some(_), Subresource::Main) => {
                let options = parse_optional_json_body(body)?;
                let result = self.store.delete(&target.resource, &target.key(), &options, dry_run)?;
                Ok(json_response(200, &result))
            }
            (Method::DELETE, None, Subresource::Main) => self.delete_collection(request, &target, body, dry_run),
            (method, _, _) => Err(ApiError::method_not_allowed(method.as_str())),
        }
    }

    fn selectors(request: &RecordedRequest) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels =
            LabelSelector::parse(request.query_param("labelSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
        let fields =
            FieldSelector::parse(request.query_param("fieldSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
        Ok((labels, fields))
    }

    fn list(&self, request: &RecordedRequest, target: &Target) -> Result<Response<Body>, ApiError> {
        let (labels, fields) = Self::selectors(request)?;
        let limit = match request.query_param("limit") {
            Some(limit) => {
                Some(limit.parse::<usize>().map_err(|_| ApiError::bad_request(format!("invalid limit {limit:?}")))?)
            }
            None => None,
        };
        let list = self.store.list(
            &target.resource,
            target.namespace.as_deref(),
            &labels,
            &fields,
            limit,
            request.query_param("continue"),
        )?;
        Ok(json_response(200, &list))
    }

    fn watch(&mut self, request: &RecordedRequest, target: &Target) -> Result<Response<Body>, ApiError> {
        let (labels, fields) = Self::selectors(request)?;
        let resource_version = match request.query_param("resourceVersion").filter(|version| !version.is_empty()) {
            Some(version) => Some(
                version
                    .parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {version:?}")))?,
            ),
            None => None,
        };
        let timeout = match request.query_param("timeoutSeconds") {
            Some(seconds) => Some(Duration::from_secs(
                seconds.parse().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {seconds:?}")))?,
            )),
            None => None,
        };
        let options = WatchOptions {
            resource_version,
            bookmarks: request.query_param("allowWatchBookmarks") == Some("true"),
            send_initial_events: request.query_param("sendInitialEvents") == Some("true"),
            timeout,
        };
        let filter =
            WatchFilter { resource: target.resource.clone(), namespace: target.namespace.clone(), labels, fields };

        let open_watch = self.open_watches.entry(request.path.clone()).or_default().clone();
        let stream = WatchStream::start(&self.store, filter, &options, open_watch);
        Ok(Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .body(stream.into_body())
            .expect("a response with a valid status and header"))
    }

    /// Applies a patch. A server-side apply to a missing object creates it (201), as on a
    /// real server, and the applied object is kept per field manager for the next apply.
    fn patch(
        &mut self,
        request: &RecordedRequest,
        target: &Target,
        body: &[u8],
        dry_run: bool,
    ) -> Result<Response<Body>, ApiError> {
        let kind = PatchKind::from_content_type(&target.resource, request.content_type.as_deref())?;
        let name = target.name.as_deref().unwrap_or_default();
        let key = target.key();
        let field_manager = request.query_param("fieldManager").unwrap_or_default().to_owned();
        if kind == PatchKind::Apply && field_manager.is_empty() {
            return Err(ApiError::invalid_patch_options("fieldManager: Required value: is required for apply patch"));
        }
        let applied_key = (key.clone(), target.subresource, field_manager);

        let Some(current) = self.store.objects.get(&key).cloned() else {
            if kind != PatchKind::Apply || target.subresource != Subresource::Main {
                return Err(ApiError::not_found(&target.resource, name));
            }
            let mut applied = parse_applied_object(body)?;
            if let Some(applied_name) = applied["metadata"]["name"].as_str()
                && applied_name != name
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({applied_name}) does not match the name on the URL ({name})"
                )));
            }
            applied["metadata"]["name"] = json!(name);
            let created = self.store.create(&target.resource, target.namespace.as_deref(), applied, dry_run)?;
            if !dry_run {
                self.store.applied_objects.insert(applied_key, request.body.clone());
            }
            return Ok(json_response(201, &created));
        };

        let previous_apply = self.store.applied_objects.get(&applied_key);
        let candidate = apply_patch(&target.resource, kind, &current, body, previous_apply)?;
        let patched = self.store.patch(&target.resource, &key, &current, candidate, target.subresource, dry_run)?;
        if kind == PatchKind::Apply && !dry_run && self.store.objects.contains_key(&key) {
            self.store.applied_objects.insert(applied_key, request.body.clone());
        }
        Ok(json_response(200, &patched))
    }

    /// Deletes every selected object with the rules of a single delete, and returns them as
    /// a list in their state before the delete.
    fn delete_collection(
        &mut self,
        request: &RecordedRequest,
        target: &Target,
        body: &[u8],
        dry_run: bool,
    ) -> Result<Response<Body>, ApiError> {
        if target.resource.namespaced && target.namespace.is_none() {
            return Err(ApiError::no_route());
        }
        let (labels, fields) = Self::selectors(request)?;
        let options = parse_optional_json_body(body)?;
        let selected: Vec<(ObjectKey, Value)> = self
            .store
            .select(&target.resource, target.namespace.as_deref(), &labels, &fields)
            .map(|(key, object)| (key.clone(), object.clone()))
            .collect();

        let mut items = Vec::new();
        for (key, object) in selected {
            self.store.delete(&target.resource, &key, &options, dry_run)?;
            items.push(object);
        }
        let list = json!({
            "apiVersion": target.resource.api_version(),
            "kind": format!("{}List", target.resource.kind),
            "metadata": { "resourceVersion": self.store.resource_version.to_string() },
            "items": items,
        });
        Ok(json_response(200, &list))
    }
}

fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid JSON in the request body: {error}")))
}

/// Parses the DeleteOptions of a delete, which may be empty.
fn parse_optional_json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    parse_json_body(body)
}

/// Parses the request body for the request log.
fn parse_body(body: &[u8], content_type: Option<&str>) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    let parsed = if content_type.is_some_and(|content_type| content_type.starts_with("application/apply-patch+yaml")) {
        serde_norway::from_slice(body).ok()
    } else {
        serde_json::from_slice(body).ok()
    };
    parsed.unwrap_or_else(|| Value::String(String::from_utf8_lossy(body).into_owned()))
}
