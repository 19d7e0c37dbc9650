//! Tolerant reads from the JSON of CloudTrail records.
//!
//! CloudTrail converts the XML responses of EC2 to JSON, so a list of one element may arrive as
//! `{"items": {...}}` or `{"item": "i-..."}` instead of `{"items": [...]}`, an empty list as `{}`
//! or `""`, and an absent block as null. These helpers accept all of those shapes. A field that
//! is present with a JSON type no record could contain is reported as `WrongType`.

use serde_json::Value;

use super::classification::InvalidReason;

/// Maximum length of the part of a resource id after its prefix. AWS ids have 8 or 17
/// hexadecimal digits there. The limit leaves room for longer ids without letting a
/// message put an unbounded string into an EC2 request.
const MAX_ID_SUFFIX_LEN: usize = 40;

/// Id prefixes of the resource types an event scope names.
pub(crate) const INSTANCE_PREFIX: &str = "i-";
pub(crate) const NETWORK_INTERFACE_PREFIX: &str = "eni-";
pub(crate) const ATTACHMENT_PREFIX: &str = "eni-attach-";
pub(crate) const SESSION_PREFIX: &str = "tms-";
pub(crate) const TARGET_PREFIX: &str = "tmt-";
pub(crate) const FILTER_PREFIX: &str = "tmf-";

/// Parse failure of a handled event, with a message that names the offending field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub reason: InvalidReason,
    pub detail: String,
}

impl Malformed {
    pub fn missing(path: &str) -> Self {
        Malformed { reason: InvalidReason::MissingField, detail: format!("{path} is missing") }
    }

    pub fn wrong_type(path: &str, expected: &str, found: &Value) -> Self {
        Malformed {
            reason: InvalidReason::WrongType,
            detail: format!("{path} must be {expected}, found {}", type_name(found)),
        }
    }
}

/// Returns the JSON type of a value as a word for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Returns the member `key` of an object, or None when the value is not an object or the member
/// is absent or null.
pub(crate) fn member<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_object()?.get(key).filter(|member| !member.is_null())
}

/// Returns the block of an action from `requestParameters` or `responseElements`. The
/// traffic-mirror and fleet APIs wrap their fields in `<Action>Request` or `<Action>Response`,
/// the older EC2 APIs do not, so an absent wrapper yields the parent itself.
pub(crate) fn action_block<'a>(parent: Option<&'a Value>, wrapper: &str) -> Option<&'a Value> {
    let parent = parent?;
    Some(member(parent, wrapper).unwrap_or(parent))
}

/// Returns the string at `key`, or None when it is absent, null or empty.
pub(crate) fn optional_string<'a>(value: &'a Value, key: &str, path: &str) -> Result<Option<&'a str>, Malformed> {
    match member(value, key) {
        None => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(Malformed::wrong_type(path, "a string", other)),
    }
}

/// Returns the elements of a list in any of the shapes CloudTrail produces. A list is an array,
/// or an object whose `items` or `item` member is an array or a single element, or a single
/// element without that wrapper. An empty object, an empty string and null are empty lists.
pub(crate) fn list_elements<'a>(value: Option<&'a Value>, path: &str) -> Result<Vec<&'a Value>, Malformed> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let wrapped = value.as_object().and_then(|object| object.get("items").or_else(|| object.get("item")));
    match (value, wrapped) {
        (_, Some(inner)) => unwrapped_elements(inner, path),
        (Value::Object(object), None) if object.is_empty() => Ok(Vec::new()),
        _ => unwrapped_elements(value, path),
    }
}

fn unwrapped_elements<'a>(value: &'a Value, path: &str) -> Result<Vec<&'a Value>, Malformed> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::Array(elements) => Ok(elements.iter().filter(|element| !element.is_null()).collect()),
        Value::Object(_) | Value::String(_) => Ok(vec![value]),
        Value::Bool(_) | Value::Number(_) => Err(Malformed::wrong_type(path, "a list", value)),
    }
}

/// Collects the string member `key` of every object in a list. Objects without the member are
/// skipped, because CloudTrail omits empty members.
pub(crate) fn ids_of_elements<'a>(list: Option<&'a Value>, key: &str, path: &str) -> Result<Vec<&'a str>, Malformed> {
    let mut ids = Vec::new();
    for element in list_elements(list, path)? {
        if !element.is_object() {
            return Err(Malformed::wrong_type(&format!("{path}[]"), "an object", element));
        }
        if let Some(id) = optional_string(element, key, &format!("{path}[].{key}"))? {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Collects the elements of a list of strings, such as the `instanceIds` of a fleet.
pub(crate) fn string_elements<'a>(list: Option<&'a Value>, path: &str) -> Result<Vec<&'a str>, Malformed> {
    let mut strings = Vec::new();
    for element in list_elements(list, path)? {
        match element {
            Value::String(text) if text.is_empty() => {}
            Value::String(text) => strings.push(text.as_str()),
            other => return Err(Malformed::wrong_type(&format!("{path}[]"), "a string", other)),
        }
    }
    Ok(strings)
}

/// Returns true when `id` is `prefix` followed by 1 to 40 ASCII letters and digits.
pub(crate) fn has_id_form(id: &str, prefix: &str) -> bool {
    let Some(suffix) = id.strip_prefix(prefix) else {
        return false;
    };
    !suffix.is_empty() && suffix.len() <= MAX_ID_SUFFIX_LEN && suffix.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

/// Checks that `id` has the form of an id with `prefix`, so that a damaged message cannot put
/// an id into an EC2 request that would fail the whole call.
pub(crate) fn checked_id(id: &str, prefix: &str, path: &str) -> Result<String, Malformed> {
    if has_id_form(id, prefix) {
        return Ok(id.to_string());
    }
    let mut excerpt: String = id.chars().take(64).collect();
    if excerpt.len() < id.len() {
        excerpt.push_str("...");
    }
    Err(Malformed {
        reason: InvalidReason::MalformedId,
        detail: format!("{path} is {excerpt:?}, which is not an id of the form {prefix}<letters and digits>"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn list_elements_accepts_every_list_shape() {
        let cases = [
            (json!({"items": [{"a": 1}, {"a": 2}]}), 2),
            (json!({"items": {"a": 1}}), 1),
            (json!({"item": "i-0abc"}), 1),
            (json!({"item": ["i-0abc", "i-0def"]}), 2),
            (json!([{"a": 1}, null]), 1),
            (json!({"a": 1}), 1),
            (json!({}), 0),
            (json!({"items": null}), 0),
            (json!({"items": []}), 0),
            (json!(""), 0),
            (json!(null), 0),
        ];
        for (value, expected) in cases {
            let elements = list_elements(Some(&value), "list").expect("every shape is a list");
            assert_eq!(elements.len(), expected, "elements of {value}");
        }
    }

    #[test]
    fn list_elements_rejects_scalars() {
        for value in [json!(7), json!(true), json!({"items": 7})] {
            let error = list_elements(Some(&value), "list").expect_err("a scalar is not a list");
            assert_eq!(error.reason, InvalidReason::WrongType, "for {value}");
        }
    }

    #[test]
    fn optional_string_treats_empty_as_absent() {
        let value = json!({"empty": "", "null": null, "id": "i-1", "number": 7});
        assert_eq!(optional_string(&value, "empty", "empty"), Ok(None));
        assert_eq!(optional_string(&value, "null", "null"), Ok(None));
        assert_eq!(optional_string(&value, "absent", "absent"), Ok(None));
        assert_eq!(optional_string(&value, "id", "id"), Ok(Some("i-1")));
        let error = optional_string(&value, "number", "number").expect_err("a number is not a string");
        assert_eq!(error.reason, InvalidReason::WrongType);
    }

    #[test]
    fn has_id_form_checks_prefix_and_suffix() {
        assert!(has_id_form("i-0aa11bb22cc33dd01", INSTANCE_PREFIX));
        assert!(has_id_form("i-1a2b3c4d", INSTANCE_PREFIX));
        assert!(has_id_form("eni-attach-0cc33dd44ee55ff01", ATTACHMENT_PREFIX));
        assert!(!has_id_form("eni-attach-0cc33dd44ee55ff01", NETWORK_INTERFACE_PREFIX));
        assert!(!has_id_form("i-", INSTANCE_PREFIX));
        assert!(!has_id_form("i-*", INSTANCE_PREFIX));
        assert!(!has_id_form("sg-0abc", INSTANCE_PREFIX));
        assert!(!has_id_form(&format!("i-{}", "a".repeat(41)), INSTANCE_PREFIX));
    }

    #[test]
    fn checked_id_shortens_long_values() {
        let long = format!("i-{}", "x!".repeat(500));
        let error = checked_id(&long, INSTANCE_PREFIX, "id").expect_err("the id is malformed");
        assert_eq!(error.reason, InvalidReason::MalformedId);
        assert!(error.detail.len() < 200, "detail is {} bytes", error.detail.len());
    }
}
