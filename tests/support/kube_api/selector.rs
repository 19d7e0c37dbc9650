//! Label and field selectors of list, watch and deletecollection requests.

use serde_json::Value;

/// A parsed `labelSelector` query parameter: every requirement must hold.
#[derive(Clone, Debug, Default)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

#[derive(Clone, Debug)]
enum LabelRequirement {
    Equals(String, String),
    /// Matches when the label is absent or has another value, as in Kubernetes.
    NotEquals(String, String),
    In(String, Vec<String>),
    /// Matches when the label is absent or has none of the values, as in Kubernetes.
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelSelector {
    /// Parses the equality-based (`a=b`, `a==b`, `a!=b`) and set-based (`a in (x,y)`,
    /// `a notin (x)`, `a`, `!a`) forms, joined by commas.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_top_level_commas(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_label_requirement(term)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// Checks the selector against `metadata.labels` of an object.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        self.requirements.iter().all(|requirement| match requirement {
            LabelRequirement::Equals(key, value) => label(key) == Some(value.as_str()),
            LabelRequirement::NotEquals(key, value) => label(key) != Some(value.as_str()),
            LabelRequirement::In(key, values) => label(key).is_some_and(|v| values.iter().any(|x| x == v)),
            LabelRequirement::NotIn(key, values) => !label(key).is_some_and(|v| values.iter().any(|x| x == v)),
            LabelRequirement::Exists(key) => label(key).is_some(),
            LabelRequirement::DoesNotExist(key) => label(key).is_none(),
        })
    }
}

/// Splits on commas outside parentheses, so `a in (x,y),b` gives two terms.
fn split_top_level_commas(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn parse_label_requirement(term: &str) -> Result<LabelRequirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelRequirement::DoesNotExist(parse_label_key(key)?));
    }

    if let Some(open) = term.find('(') {
        let Some(inner) = term[open + 1..].strip_suffix(')') else {
            return Err(format!("invalid label selector term {term:?}: missing closing parenthesis"));
        };
        let mut words = term[..open].split_whitespace();
        let (Some(key), Some(operator), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("invalid label selector term {term:?}: expected `key in (values)`"));
        };
        let values: Vec<String> =
            inner.split(',').map(str::trim).filter(|value| !value.is_empty()).map(str::to_owned).collect();
        let key = parse_label_key(key)?;
        return match operator {
            "in" => Ok(LabelRequirement::In(key, values)),
            "notin" => Ok(LabelRequirement::NotIn(key, values)),
            other => Err(format!("invalid label selector operator {other:?} in {term:?}: use in or notin")),
        };
    }

    if let Some((key, value)) = term.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(parse_label_key(key)?, value.trim().to_owned()));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelRequirement::Equals(parse_label_key(key)?, value.trim().to_owned()));
    }
    Ok(LabelRequirement::Exists(parse_label_key(term)?))
}

fn parse_label_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(key.to_owned())
}

/// A parsed `fieldSelector` query parameter. Only `metadata.name` and `metadata.namespace` are
/// supported, which are the field labels every resource of a real API server supports.
#[derive(Clone, Debug, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

#[derive(Clone, Debug)]
struct FieldRequirement {
    field: String,
    value: String,
    negated: bool,
}

impl FieldSelector {
    /// Parses terms of the form `field=value`, `field==value` or `field!=value`, joined by commas.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in text.split(',').map(str::trim).filter(|term| !term.is_empty()) {
            let (field, value, negated) = if let Some((field, value)) = term.split_once("!=") {
                (field, value, true)
            } else if let Some((field, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (field, value, false)
            } else {
                return Err(format!("invalid field selector term {term:?}: expected field=value"));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            requirements.push(FieldRequirement { field: field.to_owned(), value: value.trim().to_owned(), negated });
        }
        Ok(FieldSelector { requirements })
    }

    /// Checks the selector against the object's name and namespace.
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|requirement| {
            let key = requirement.field.trim_start_matches("metadata.");
            let actual = object["metadata"][key].as_str().unwrap_or("");
            (actual == requirement.value) != requirement.negated
        })
    }
}
