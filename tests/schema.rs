//! Every policy the project shows users (examples and docs) against the CRD's OpenAPI schema,
//! with a JSON Schema validator, and through the code's own validation.

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use serde_json::Value;
use vpc_mirror_controller::policy::MirrorPolicy;
use vpc_mirror_controller::{policy_files, validate};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Returns the openAPIV3Schema of the generated CRD.
fn crd_schema() -> Value {
    let crd = serde_json::to_value(MirrorPolicy::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Returns the MirrorPolicy documents of a Markdown file: YAML code blocks, and here-documents
/// (`<<EOF` to `EOF`) inside shell code blocks, such as `kubectl apply -f - <<EOF`.
fn policy_blocks(markdown: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(markdown).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    let mut in_shell = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed.starts_with("```yaml") => current = Some(String::new()),
            None if trimmed.starts_with("```sh") => in_shell = true,
            None if in_shell && trimmed == "```" => in_shell = false,
            None if in_shell && trimmed.ends_with("<<EOF") => current = Some(String::new()),
            Some(block) if trimmed == "```" || (in_shell && trimmed == "EOF") => {
                if block.contains("kind: MirrorPolicy") {
                    blocks.push(block.clone());
                }
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn check(source: &str, yaml: &str, validator: &jsonschema::Validator) {
    for (index, document) in policy_files::parse_documents(Path::new(source), yaml).unwrap().into_iter().enumerate() {
        let value = serde_json::to_value(&document).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{}: {e}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{source}, document {}: {errors:?}", index + 1);
        assert_eq!(validate::validate(&document), Ok(()), "{source}, document {}", index + 1);
    }
}

#[test]
fn example_policies_match_schema() {
    let validator = jsonschema::validator_for(&crd_schema()).unwrap();
    let folder = root().join("examples/policies");
    let mut checked = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        check(&path.display().to_string(), &std::fs::read_to_string(&path).unwrap(), &validator);
        checked += 1;
    }
    assert!(checked >= 2);
}

#[test]
fn documented_policies_match_schema() {
    let validator = jsonschema::validator_for(&crd_schema()).unwrap();
    let mut files = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut checked = 0;
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "md")) {
        for block in policy_blocks(file) {
            check(&file.display().to_string(), &block, &validator);
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} documented policies found");
}

#[test]
fn schema_rejects_bad_policies() {
    let validator = jsonschema::validator_for(&crd_schema()).unwrap();
    let valid = serde_json::json!({
        "apiVersion": "vpcmirror.dev/v1alpha1",
        "kind": "MirrorPolicy",
        "metadata": {"name": "web"},
        "spec": {
            "target": {"id": "tmt-0a1b2c3d4e5f60718"},
            "filter": {"id": "tmf-0a1b2c3d4e5f60718"},
            "selector": {"vpcIds": ["vpc-0a1b2c3d"]}
        }
    });
    assert!(validator.is_valid(&valid));

    let mut empty_selector = valid.clone();
    empty_selector["spec"]["selector"] = serde_json::json!({});
    assert!(!validator.is_valid(&empty_selector));

    let mut moto_target = valid.clone();
    moto_target["spec"]["target"]["id"] = "traf-mir-tar-0a1b2c3d".into();
    assert!(!validator.is_valid(&moto_target));

    let mut long_packets = valid.clone();
    long_packets["spec"]["session"] = serde_json::json!({"packetLength": 9001});
    assert!(!validator.is_valid(&long_packets));

    let mut empty_tags = valid;
    empty_tags["spec"]["selector"] = serde_json::json!({"tags": {}});
    assert!(!validator.is_valid(&empty_tags));
}
