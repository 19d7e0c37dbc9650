//! The four patch content types of a PATCH request, applied to a stored object.

use json_patch::PatchOperation;
use serde_json::Value;

use super::ResourceType;
use super::errors::ApiError;

/// A patch content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`: RFC 7386.
    Merge,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
    /// `application/json-patch+json`: RFC 6902.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
}

impl PatchKind {
    pub fn from_content_type(resource: &ResourceType, content_type: Option<&str>) -> Result<Self, ApiError> {
        let media_type = content_type.unwrap_or("").split(';').next().unwrap_or("").trim();
        match media_type {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/apply-patch+yaml" => Ok(PatchKind::Apply),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            _ => Err(unsupported_patch_type(resource)),
        }
    }
}

/// Applies a patch body to `current` and returns the object the client asked for, before the
/// update rules of the store run on it. `previous_apply` is the object that the same field
/// manager applied last to this object and subresource, for a server-side apply.
///
/// Server-side apply removes the fields that the manager applied last time and omits now, then
/// merges the applied object, with lists replaced whole (atomic, the default of a CRD schema).
/// NOTE: `metadata.managedFields` is not recorded and ownership is not shared between managers.
/// So apply never reports a conflict, `force` changes nothing, and a field that a manager stops
/// applying is removed even when another manager applied it too.
pub fn apply_patch(
    resource: &ResourceType,
    kind: PatchKind,
    current: &Value,
    body: &[u8],
    previous_apply: Option<&Value>,
) -> Result<Value, ApiError> {
    let mut candidate = current.clone();
    match kind {
        PatchKind::Merge => json_patch::merge(&mut candidate, &parse_json(body)?),
        PatchKind::Apply => {
            let applied = parse_applied_object(body)?;
            if let Some(previous_apply) = previous_apply {
                remove_fields_no_longer_applied(&mut candidate, previous_apply, &applied);
            }
            json_patch::merge(&mut candidate, &applied);
        }
        PatchKind::Json => apply_json_patch(resource, &mut candidate, body)?,
        // The API server rejects strategic merge patches of custom resources with 415, because
        // they have no Go struct tags that name the merge keys of lists.
        PatchKind::Strategic if resource.custom_resource => return Err(unsupported_patch_type(resource)),
        // NOTE: for built-in resources a strategic merge patch is applied as a merge patch:
        // lists are replaced whole instead of merged by their patchMergeKey, and `$patch`
        // directives are not understood.
        PatchKind::Strategic => json_patch::merge(&mut candidate, &parse_json(body)?),
    }
    Ok(candidate)
}

/// Removes from `object` every field that `previous` contains and `applied` does not,
/// descending into maps that both contain.
fn remove_fields_no_longer_applied(object: &mut Value, previous: &Value, applied: &Value) {
    let (Some(fields), Some(previous_fields)) = (object.as_object_mut(), previous.as_object()) else {
        return;
    };
    for (name, previous_value) in previous_fields {
        match applied.get(name) {
            None => {
                fields.remove(name);
            }
            Some(applied_value) if previous_value.is_object() && applied_value.is_object() => {
                if let Some(value) = fields.get_mut(name) {
                    remove_fields_no_longer_applied(value, previous_value, applied_value);
                }
            }
            Some(_) => {}
        }
    }
}

/// Parses the body of a server-side apply: YAML or JSON, which is a subset of YAML.
pub fn parse_applied_object(body: &[u8]) -> Result<Value, ApiError> {
    let object: Value = serde_norway::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("failed to parse the applied object as YAML: {error}")))?;
    if !object.is_object() {
        return Err(ApiError::bad_request("the applied object is not a map"));
    }
    for field in ["apiVersion", "kind"] {
        if !object[field].is_string() {
            return Err(ApiError::bad_request(format!("invalid object to apply: {field} must be set")));
        }
    }
    Ok(object)
}

/// Applies RFC 6902 operations in order, all or none.
///
/// A `test` whose value is null passes when the path is missing or null. This follows the
/// JSON patch library of the API server (github.com/evanphx/json-patch) rather than RFC 6902,
/// and kube-runtime's `finalizer` helper relies on it to add the first finalizer.
fn apply_json_patch(resource: &ResourceType, document: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    let operations: Vec<PatchOperation> =
        serde_json::from_slice(body).map_err(|error| ApiError::bad_request(format!("invalid JSON patch: {error}")))?;
    let name = document["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let mut patched = document.clone();

    for operation in &operations {
        if let PatchOperation::Test(test) = operation
            && test.value.is_null()
        {
            let target = patched.pointer(test.path.as_str());
            if target.is_some_and(|value| !value.is_null()) {
                let cause = format!("test operation for path {:?} failed: expected null", test.path.as_str());
                return Err(ApiError::invalid(resource, &name, &cause));
            }
            continue;
        }
        json_patch::patch(&mut patched, std::slice::from_ref(operation))
            .map_err(|error| ApiError::invalid(resource, &name, &format!("JSON patch failed: {error}")))?;
    }

    *document = patched;
    Ok(())
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::bad_request(format!("invalid JSON in the patch: {error}")))
}

fn unsupported_patch_type(resource: &ResourceType) -> ApiError {
    let accepted = if resource.custom_resource {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
    };
    ApiError::unsupported_media_type(format!(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    ))
}
