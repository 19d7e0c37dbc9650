//! Reading MirrorPolicy documents from YAML files, the policy source of standalone mode.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::policy::MirrorPolicy;

/// A policy file that cannot be used, with the file, the document and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid YAML in {path}, document {document}: {message}")]
    Parse { path: PathBuf, document: usize, message: String },
    #[error(
        "{path}, document {document}: expected apiVersion vpcmirror.dev/v1alpha1 and kind MirrorPolicy, found {api_version} {kind}"
    )]
    WrongKind { path: PathBuf, document: usize, api_version: String, kind: String },
    #[error("policy {name} is defined twice (again in {path}): give each policy a unique metadata.name")]
    DuplicateName { name: String, path: PathBuf },
    #[error("no policy files (*.yaml, *.yml) found in {path}")]
    Empty { path: PathBuf },
}

/// Lists the YAML files under a path: the file itself, or a folder's *.yaml and *.yml files
/// in name order (not recursive).
fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, PolicyFileError> {
    let read_error = |source| PolicyFileError::Read { path: path.to_path_buf(), source };
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let file = entry.map_err(read_error)?.path();
        let is_yaml = matches!(file.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if is_yaml && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every MirrorPolicy from the given files and folders. Empty documents are skipped.
pub fn load(paths: &[PathBuf]) -> Result<Vec<MirrorPolicy>, PolicyFileError> {
    let mut policies = Vec::new();
    let mut names = BTreeSet::new();
    for path in paths {
        let files = yaml_files(path)?;
        if files.is_empty() {
            return Err(PolicyFileError::Empty { path: path.clone() });
        }
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|source| PolicyFileError::Read { path: file.clone(), source })?;
            for policy in parse_documents(&file, &text)? {
                let name = policy.policy_name().to_string();
                if !names.insert(name.clone()) {
                    return Err(PolicyFileError::DuplicateName { name, path: file });
                }
                policies.push(policy);
            }
        }
    }
    Ok(policies)
}

/// Parses the MirrorPolicy documents of one file's text.
pub fn parse_documents(path: &Path, text: &str) -> Result<Vec<MirrorPolicy>, PolicyFileError> {
    let mut policies = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let parse_error =
            |message: String| PolicyFileError::Parse { path: path.to_path_buf(), document: number, message };
        let value = serde_norway::Value::deserialize(document).map_err(|e| parse_error(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let api_version = value.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("(none)").to_string();
        let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or("(none)").to_string();
        if api_version != "vpcmirror.dev/v1alpha1" || kind != "MirrorPolicy" {
            return Err(PolicyFileError::WrongKind { path: path.to_path_buf(), document: number, api_version, kind });
        }
        let policy: MirrorPolicy = serde_norway::from_value(value).map_err(|e| parse_error(e.to_string()))?;
        policies.push(policy);
    }
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_POLICIES: &str = r#"
apiVersion: vpcmirror.dev/v1alpha1
kind: MirrorPolicy
metadata: { name: web }
spec:
  target: { id: tmt-0a1b2c3d4e5f60718 }
  filter: { id: tmf-0a1b2c3d4e5f60718 }
  selector: { tags: { matchLabels: { env: prod } } }
---
apiVersion: vpcmirror.dev/v1alpha1
kind: MirrorPolicy
metadata: { name: db }
spec:
  target: { id: tmt-0a1b2c3d4e5f60718 }
  filter: { id: tmf-0a1b2c3d4e5f60718 }
  selector: { vpcIds: [vpc-0a1b2c3d] }
  interfaces: Primary
"#;

    #[test]
    fn several_documents_per_file() {
        let policies = parse_documents(Path::new("p.yaml"), TWO_POLICIES).unwrap();
        let names: Vec<&str> = policies.iter().map(|p| p.policy_name()).collect();
        assert_eq!(names, ["web", "db"]);
        assert!(policies[0].spec.prune);
    }

    #[test]
    fn wrong_kind_names_document() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n";
        let error = parse_documents(Path::new("p.yaml"), text).unwrap_err();
        assert!(error.to_string().contains("document 1"), "{error}");
    }

    #[test]
    fn unknown_interfaces_value_rejected() {
        let text = TWO_POLICIES.replace("interfaces: Primary", "interfaces: Secondary");
        let error = parse_documents(Path::new("p.yaml"), &text).unwrap_err();
        assert!(error.to_string().contains("document 2"), "{error}");
        assert!(error.to_string().contains("Secondary"), "{error}");
    }
}
