//! The objects of the fake API server and the rules of every write: resource versions, uids,
//! generations, the status subresource, finalizers and the change history that watches read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::ResourceType;
use super::errors::ApiError;
use super::selector::{FieldSelector, LabelSelector};

/// The place of one object: api group/version, plural, namespace (None for cluster-scoped
/// resources) and name. The derived order is the order of a list, as etcd keys sort.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub api_version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn new(resource: &ResourceType, namespace: Option<&str>, name: &str) -> Self {
        ObjectKey {
            api_version: resource.api_version(),
            plural: resource.plural.clone(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    fn belongs_to(&self, resource: &ResourceType, namespace: Option<&str>) -> bool {
        self.api_version == resource.api_version()
            && self.plural == resource.plural
            && namespace.is_none_or(|namespace| self.namespace.as_deref() == Some(namespace))
    }
}

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed write, as watches see it.
#[derive(Clone, Debug)]
pub struct Change {
    pub resource_version: u64,
    pub key: ObjectKey,
    pub event_type: EventType,
    /// The object after the write. For a deletion, it is the last state with the deletion's
    /// version.
    pub object: Value,
    /// The object before the write, which a watch with a selector needs to notice an object
    /// that stops or starts matching.
    pub previous: Option<Value>,
}

/// A message to open watches.
#[derive(Clone, Debug)]
pub enum Signal {
    Change(Arc<Change>),
    /// The fake became unavailable: every open watch ends, as its connection would.
    Disconnect,
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subresource {
    Main,
    Status,
}

pub struct Store {
    pub resource_types: Vec<ResourceType>,
    pub objects: BTreeMap<ObjectKey, Value>,
    /// The latest resourceVersion, global across resources as in etcd. It starts at 1, so the
    /// first write stores version 2, and "0" keeps its special meaning in watches.
    pub resource_version: u64,
    /// Every change after `history_start`, oldest first.
    pub history: Vec<Arc<Change>>,
    /// The resourceVersion up to which history was dropped. A watch from an older version
    /// gets 410 Gone.
    pub history_start: u64,
    pub changes: broadcast::Sender<Signal>,
    /// The last object each field manager applied with server-side apply, per object and
    /// subresource, which `patch::apply_patch` compares with the next apply.
    pub applied_objects: HashMap<(ObjectKey, Subresource, String), Value>,
    next_uid: u64,
}

impl Store {
    pub fn new(changes: broadcast::Sender<Signal>) -> Self {
        Store {
            resource_types: Vec::new(),
            objects: BTreeMap::new(),
            resource_version: 1,
            history: Vec::new(),
            history_start: 1,
            changes,
            applied_objects: HashMap::new(),
            next_uid: 1,
        }
    }

    pub fn register(&mut self, resource: ResourceType) {
        self.resource_types.retain(|known| {
            (&known.group, &known.version, &known.plural) != (&resource.group, &resource.version, &resource.plural)
        });
        self.resource_types.push(resource);
    }

    pub fn resource_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.resource_types
            .iter()
            .find(|known| known.group == group && known.version == version && known.plural == plural)
            .cloned()
    }

    pub fn resource_type_of_object(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        self.resource_types.iter().find(|known| known.api_version() == api_version && known.kind == kind).cloned()
    }

    // ---- reads ----

    pub fn get(&self, resource: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&ObjectKey::new(resource, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(resource, name))
    }

    /// Returns the objects of `resource` that match the selectors, in key order, within `namespace`
    /// when it is given.
    pub fn select<'a>(
        &'a self,
        resource: &'a ResourceType,
        namespace: Option<&'a str>,
        labels: &'a LabelSelector,
        fields: &'a FieldSelector,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        self.objects.iter().filter(move |(key, object)| {
            key.belongs_to(resource, namespace) && labels.matches(object) && fields.matches(object)
        })
    }

    /// Builds a `{Kind}List` of the selected objects, one page of `limit` items when a limit is given.
    ///
    /// NOTE: every page is read from the current objects. A real server serves all pages of
    /// one list from the snapshot of the first page, so an object written between two pages
    /// can show here with a newer version than the list's resourceVersion.
    pub fn list(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Value, ApiError> {
        let (list_version, after) = match continue_token {
            Some(token) => {
                let (version, namespace, name) = parse_continue_token(token)?;
                (version, Some((namespace, name)))
            }
            None => (self.resource_version, None),
        };

        let mut selected: Vec<(&ObjectKey, &Value)> = self
            .select(resource, namespace, labels, fields)
            .filter(|(key, _)| {
                after.as_ref().is_none_or(|(namespace, name)| (&key.namespace, &key.name) > (namespace, name))
            })
            .collect();

        let mut metadata = json!({ "resourceVersion": list_version.to_string() });
        if let Some(limit) = limit.filter(|limit| *limit > 0)
            && selected.len() > limit
        {
            let remaining = selected.len() - limit;
            selected.truncate(limit);
            let (last, _) = selected[limit - 1];
            let token = format!("{list_version}/{}/{}", last.namespace.as_deref().unwrap_or(""), last.name);
            metadata["continue"] = json!(token);
            metadata["remainingItemCount"] = json!(remaining);
        }

        let items: Vec<Value> = selected.into_iter().map(|(_, object)| object.clone()).collect();
        Ok(json!({
            "apiVersion": resource.api_version(),
            "kind": format!("{}List", resource.kind),
            "metadata": metadata,
            "items": items,
        }))
    }

    // ---- writes through the API ----

    /// Creates an object the way the API server does: the server sets uid, creationTimestamp,
    /// generation 1 and the resourceVersion, and drops `status` when the resource has a status
    /// subresource.
    pub fn create(
        &mut self,
        resource: &ResourceType,
        namespace: Option<&str>,
        body: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut object = body;
        if !object.is_object() {
            return Err(ApiError::bad_request("the request body is not a JSON object"));
        }
        check_type_meta(resource, &object)?;
        let metadata = metadata_mut(&mut object);

        let name = match (
            metadata.get("name").and_then(Value::as_str),
            metadata.get("generateName").and_then(Value::as_str),
        ) {
            (Some(name), _) if !name.is_empty() => name.to_owned(),
            (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{:05x}", self.next_uid),
            _ => {
                return Err(ApiError::invalid(
                    resource,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        };
        metadata.insert("name".into(), json!(name));

        if resource.namespaced {
            let path_namespace = namespace.ok_or_else(ApiError::no_route)?;
            if let Some(body_namespace) = metadata.get("namespace").and_then(Value::as_str)
                && !body_namespace.is_empty()
                && body_namespace != path_namespace
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            metadata.insert("namespace".into(), json!(path_namespace));
        } else {
            metadata.remove("namespace");
        }

        if metadata.get("resourceVersion").and_then(Value::as_str).is_some_and(|version| !version.is_empty()) {
            // NOTE: the etcd storage of the API server rejects this with a plain error, which
            // becomes 500 here. Whether a current server maps it to another code is unchecked.
            return Err(ApiError::internal("resourceVersion should not be set on objects to be created"));
        }

        let key = ObjectKey::new(resource, namespace.filter(|_| resource.namespaced), &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(resource, &name));
        }

        let uid = self.next_uid();
        let metadata = metadata_mut(&mut object);
        metadata.insert("uid".into(), json!(uid));
        metadata.insert("creationTimestamp".into(), now());
        metadata.insert("generation".into(), json!(1));
        for server_owned in ["deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"] {
            metadata.remove(server_owned);
        }
        if resource.status_subresource
            && let Some(fields) = object.as_object_mut()
        {
            fields.remove("status");
        }
        set_type_meta(resource, &mut object);
        normalize_metadata(&mut object);

        if dry_run {
            return Ok(object);
        }
        Ok(self.store_object(key, object, EventType::Added, None))
    }

    /// Replaces an object (PUT) with optimistic concurrency on `metadata.resourceVersion`.
    pub fn replace(
        &mut self,
        resource: &ResourceType,
        key: &ObjectKey,
        body: Value,
        subresource: Subresource,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(resource, key.namespace.as_deref(), &key.name)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("the request body is not a JSON object"));
        }
        check_type_meta(resource, &body)?;
        match body["metadata"]["resourceVersion"].as_str().filter(|version| !version.is_empty()) {
            Some(_) => {}
            None if resource.custom_resource => {
                return Err(ApiError::invalid(
                    resource,
                    &key.name,
                    "metadata.resourceVersion: Invalid value: 0: must be specified for an update",
                ));
            }
            // Built-in resources accept an update without a resourceVersion unconditionally.
            None => {}
        }
        let next = prepare_update(resource, &current, body, subresource)?;
        Ok(self.commit_update(key, &current, next, dry_run))
    }

    /// Writes the result of a patch: `candidate` is the stored object with the patch applied.
    pub fn patch(
        &mut self,
        resource: &ResourceType,
        key: &ObjectKey,
        current: &Value,
        candidate: Value,
        subresource: Subresource,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let next = prepare_update(resource, current, candidate, subresource)?;
        Ok(self.commit_update(key, current, next, dry_run))
    }

    /// Deletes an object. With finalizers present it only sets `metadata.deletionTimestamp`
    /// (once) and returns the object. Without finalizers it removes the object and returns a
    /// `Status` of kind Success, as the API server does for custom resources.
    ///
    /// NOTE: `propagationPolicy` is ignored. There is no garbage collector, so the
    /// `foregroundDeletion` and `orphan` finalizers that a real server adds are never added.
    pub fn delete(
        &mut self,
        resource: &ResourceType,
        key: &ObjectKey,
        options: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(resource, key.namespace.as_deref(), &key.name)?;
        check_preconditions(resource, &current, &options["preconditions"])?;

        if has_finalizers(&current) {
            if current["metadata"]["deletionTimestamp"].is_string() {
                return Ok(current);
            }
            let mut next = current.clone();
            let metadata = metadata_mut(&mut next);
            metadata.insert("deletionTimestamp".into(), now());
            metadata.insert("deletionGracePeriodSeconds".into(), json!(0));
            if dry_run {
                return Ok(next);
            }
            return Ok(self.store_object(key.clone(), next, EventType::Modified, Some(current)));
        }

        let success = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": key.name,
                "group": resource.group,
                "kind": resource.plural,
                "uid": current["metadata"]["uid"],
            },
        });
        if !dry_run {
            self.remove_object(key, current);
        }
        Ok(success)
    }

    // ---- writes that bypass the API (test helpers) ----

    /// Stores `object` as given, status included, filling uid, creationTimestamp and generation
    /// when they are missing and setting a new resourceVersion. Emits ADDED or MODIFIED.
    pub fn insert(&mut self, resource: &ResourceType, mut object: Value) -> Value {
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("an inserted object needs metadata.name: {object}"))
            .to_owned();
        assert_eq!(
            namespace.is_some(),
            resource.namespaced,
            "metadata.namespace of an inserted {} must be set exactly when the resource is namespaced: {object}",
            resource.kind
        );
        let key = ObjectKey::new(resource, namespace.as_deref(), &name);

        let uid = self.next_uid();
        let metadata = metadata_mut(&mut object);
        metadata.entry("uid").or_insert_with(|| json!(uid));
        metadata.entry("creationTimestamp").or_insert_with(now);
        metadata.entry("generation").or_insert_with(|| json!(1));
        set_type_meta(resource, &mut object);
        normalize_metadata(&mut object);

        let previous = self.objects.get(&key).cloned();
        let event_type = if previous.is_some() { EventType::Modified } else { EventType::Added };
        self.store_object(key, object, event_type, previous)
    }

    /// Removes an object at once, whatever its finalizers, and emits DELETED.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Value> {
        let current = self.objects.get(key)?.clone();
        Some(self.remove_object(key, current))
    }

    // ---- commit ----

    /// Stores the prepared result of an update. A write that changes nothing gets no new
    /// resourceVersion and no watch event, as etcd storage of the API server skips it. A write
    /// that removes the last finalizer of an object being deleted deletes it.
    fn commit_update(&mut self, key: &ObjectKey, current: &Value, next: Value, dry_run: bool) -> Value {
        if next == *current || dry_run {
            return next;
        }
        if next["metadata"]["deletionTimestamp"].is_string() && !has_finalizers(&next) {
            return self.remove_object(key, next);
        }
        self.store_object(key.clone(), next, EventType::Modified, Some(current.clone()))
    }

    fn store_object(
        &mut self,
        key: ObjectKey,
        mut object: Value,
        event_type: EventType,
        previous: Option<Value>,
    ) -> Value {
        self.resource_version += 1;
        metadata_mut(&mut object).insert("resourceVersion".into(), json!(self.resource_version.to_string()));
        self.objects.insert(key.clone(), object.clone());
        self.record_change(key, event_type, object.clone(), previous);
        object
    }

    /// Removes the object and emits DELETED with `last_state` at the deletion's version.
    fn remove_object(&mut self, key: &ObjectKey, mut last_state: Value) -> Value {
        self.resource_version += 1;
        metadata_mut(&mut last_state).insert("resourceVersion".into(), json!(self.resource_version.to_string()));
        let previous = self.objects.remove(key);
        self.applied_objects.retain(|(applied_key, _, _), _| applied_key != key);
        self.record_change(key.clone(), EventType::Deleted, last_state.clone(), previous);
        last_state
    }

    fn record_change(&mut self, key: ObjectKey, event_type: EventType, object: Value, previous: Option<Value>) {
        let change = Arc::new(Change { resource_version: self.resource_version, key, event_type, object, previous });
        self.history.push(change.clone());
        // Sending fails only when no watch is open, which is fine.
        let _ = self.changes.send(Signal::Change(change));
    }

    fn next_uid(&mut self) -> String {
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.next_uid);
        self.next_uid += 1;
        uid
    }
}

/// Applies the API server's update rules to `candidate`, the object as the client wants it.
///
/// - A write to `/status` changes only `status`. A write to the main resource of a resource
///   with a status subresource keeps the stored `status`.
/// - The server owns name, namespace, uid, creationTimestamp, deletionTimestamp and generation.
///   managedFields are dropped because the fake does not track them.
/// - No finalizer can be added while the object is being deleted.
/// - `metadata.generation` grows by one when anything outside `metadata` (and outside
///   `status` when there is a status subresource) changes, the rule for custom resources.
///   The fake applies it to built-in resources too.
fn prepare_update(
    resource: &ResourceType,
    current: &Value,
    candidate: Value,
    subresource: Subresource,
) -> Result<Value, ApiError> {
    let name = current["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    if !candidate.is_object() {
        return Err(ApiError::bad_request("the request body is not a JSON object"));
    }
    if let Some(candidate_name) = candidate["metadata"]["name"].as_str()
        && candidate_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({candidate_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(candidate_version) = candidate["metadata"]["resourceVersion"].as_str()
        && !candidate_version.is_empty()
        && Some(candidate_version) != current["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::conflict(resource, &name));
    }
    if let Some(candidate_uid) = candidate["metadata"]["uid"].as_str()
        && !candidate_uid.is_empty()
        && Some(candidate_uid) != current["metadata"]["uid"].as_str()
    {
        let message = format!(
            "Precondition failed: UID in precondition: {candidate_uid}, UID in object meta: {}",
            current["metadata"]["uid"].as_str().unwrap_or_default()
        );
        return Err(ApiError::precondition_failed(resource, &name, message));
    }

    let mut next = match subresource {
        Subresource::Status => {
            let mut next = current.clone();
            set_or_remove(&mut next, "status", candidate.get("status").cloned());
            next
        }
        Subresource::Main => {
            let mut next = candidate;
            if resource.status_subresource {
                set_or_remove(&mut next, "status", current.get("status").cloned());
            }
            let metadata = metadata_mut(&mut next);
            for server_owned in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match current["metadata"].get(server_owned) {
                    Some(value) => metadata.insert(server_owned.into(), value.clone()),
                    None => metadata.remove(server_owned),
                };
            }
            metadata.remove("managedFields");
            metadata.remove("selfLink");
            next
        }
    };
    set_type_meta(resource, &mut next);
    normalize_metadata(&mut next);
    metadata_mut(&mut next).insert("resourceVersion".into(), current["metadata"]["resourceVersion"].clone());

    if current["metadata"]["deletionTimestamp"].is_string() {
        let new_finalizers: Vec<&Value> =
            finalizers(&next).iter().filter(|finalizer| !finalizers(current).contains(finalizer)).collect();
        if !new_finalizers.is_empty() {
            let cause = format!(
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {}",
                Value::from(new_finalizers.into_iter().cloned().collect::<Vec<_>>())
            );
            return Err(ApiError::invalid(resource, &name, &cause));
        }
    }

    if content_outside_metadata(resource, current) != content_outside_metadata(resource, &next) {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        metadata_mut(&mut next).insert("generation".into(), json!(generation));
    }
    Ok(next)
}

/// Returns the part of an object whose change increments `metadata.generation`.
fn content_outside_metadata(resource: &ResourceType, object: &Value) -> Value {
    let mut content = object.clone();
    if let Some(fields) = content.as_object_mut() {
        fields.remove("metadata");
        if resource.status_subresource {
            fields.remove("status");
        }
    }
    content
}

fn check_preconditions(resource: &ResourceType, current: &Value, preconditions: &Value) -> Result<(), ApiError> {
    let name = current["metadata"]["name"].as_str().unwrap_or_default();
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(expected) = preconditions[field].as_str() {
            let actual = current["metadata"][field].as_str().unwrap_or_default();
            if expected != actual {
                let message = format!(
                    "Precondition failed: {label} in precondition: {expected}, {label} in object meta: {actual}"
                );
                return Err(ApiError::precondition_failed(resource, name, message));
            }
        }
    }
    Ok(())
}

/// Rejects a body whose apiVersion or kind, when given, names another resource.
pub fn check_type_meta(resource: &ResourceType, object: &Value) -> Result<(), ApiError> {
    let expected_api_version = resource.api_version();
    if let Some(api_version) = object["apiVersion"].as_str()
        && api_version != expected_api_version
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected_api_version})"
        )));
    }
    if let Some(kind) = object["kind"].as_str()
        && kind != resource.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            resource.kind
        )));
    }
    Ok(())
}

fn set_type_meta(resource: &ResourceType, object: &mut Value) {
    object["apiVersion"] = json!(resource.api_version());
    object["kind"] = json!(resource.kind);
}

/// Drops null and empty fields of `metadata`: every ObjectMeta field is omitted when empty,
/// so a real server never stores `finalizers: []` or `labels: {}`.
fn normalize_metadata(object: &mut Value) {
    metadata_mut(object).retain(|_, value| {
        !(value.is_null()
            || value.as_str() == Some("")
            || value.as_array().is_some_and(Vec::is_empty)
            || value.as_object().is_some_and(Map::is_empty))
    });
}

/// Returns the `metadata` map of an object, creating it when missing or not a map.
fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().expect("metadata was just made a map")
}

fn set_or_remove(object: &mut Value, field: &str, value: Option<Value>) {
    let Some(fields) = object.as_object_mut() else {
        return;
    };
    match value {
        Some(value) => fields.insert(field.to_owned(), value),
        None => fields.remove(field),
    };
}

fn finalizers(object: &Value) -> &[Value] {
    object["metadata"]["finalizers"].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn has_finalizers(object: &Value) -> bool {
    !finalizers(object).is_empty()
}

/// Returns the current time as Kubernetes serializes a `metav1.Time`.
fn now() -> Value {
    serde_json::to_value(Time(Timestamp::now())).expect("a timestamp serializes")
}

/// Splits a continue token made by [`Store::list`]: `{resourceVersion}/{namespace}/{name}`.
fn parse_continue_token(token: &str) -> Result<(u64, Option<String>, String), ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let mut parts = token.splitn(3, '/');
    let (Some(version), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let version = version.parse().map_err(|_| invalid())?;
    let namespace = Some(namespace.to_owned()).filter(|namespace| !namespace.is_empty());
    Ok((version, namespace, name.to_owned()))
}
