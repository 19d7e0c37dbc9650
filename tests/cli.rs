//! The command-line interface end to end: the binary against moto, and the committed CRD.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use kube::CustomResourceExt;
use support::fleet::Fleet;
use support::moto::MotoServer;
use vpc_mirror_controller::policy::MirrorPolicy;
use vpc_mirror_controller::{policy_files, validate};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vpc-mirror-controller"));
    command
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env("RUST_LOG", "warn");
    command
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Writes policy YAML into a fresh folder of the test's own and returns the folder.
fn policy_folder(test: &str, yaml: &str) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(test);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("policies.yaml"), yaml).unwrap();
    folder
}

fn policy_yaml(name: &str, target: &str, filter: &str, vpc: &str, session: &str) -> String {
    format!(
        "apiVersion: vpcmirror.dev/v1alpha1\nkind: MirrorPolicy\nmetadata: {{ name: {name} }}\nspec:\n  target: {{ id: {target} }}\n  filter: {{ id: {filter} }}\n  selector:\n    vpcIds: [{vpc}]\n    tags: {{ matchLabels: {{ env: prod }} }}\n  session: {session}\n"
    )
}

#[test]
fn committed_crd_matches_types() {
    let committed =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds/mirrorpolicy.yaml")).unwrap();
    let generated = serde_norway::to_string(&MirrorPolicy::crd()).unwrap();
    assert!(committed == generated, "crds/mirrorpolicy.yaml is out of date: run `make crd` and commit it");

    let output = binary().arg("crd").output().unwrap();
    assert!(output.status.success());
    assert_eq!(text(&output).0, committed);
}

#[test]
fn example_policies_are_valid() {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/policies");
    let policies = policy_files::load(&[folder]).unwrap();
    assert!(policies.len() >= 2);
    for policy in &policies {
        assert_eq!(validate::validate(policy), Ok(()), "{}", policy.policy_name());
    }
}

#[tokio::test]
async fn plan_then_run_once() {
    let moto = MotoServer::shared();
    let fleet = Fleet::new(moto.ec2_client().await).await;
    let target = fleet.target(None).await;
    let filter = fleet.filter().await;
    let (_, enis) = fleet.launch("m5.large", &[("env", "prod")], 2).await;
    fleet.launch("t2.micro", &[("env", "prod")], 1).await;
    let folder =
        policy_folder("plan_then_run_once", &policy_yaml("cli-web", &target, &filter, &fleet.vpc, "{ number: 3 }"));
    let common =
        ["--aws-endpoint-url", &moto.endpoint, "--cluster-name", "cli-plan", "--policies", folder.to_str().unwrap()];

    let plan = binary().arg("plan").args(common).output().unwrap();
    let (plan_out, plan_err) = text(&plan);
    assert!(plan.status.success(), "{plan_err}");
    assert!(plan_out.contains("Policy cli-web: 3 selected, 2 eligible, 0 mirrored now"), "{plan_out}");
    assert!(plan_out.contains("session number 3"), "{plan_out}");
    assert!(plan_out.contains("UnsupportedInstanceType"), "{plan_out}");
    assert!(fleet.sessions_on(&enis[0]).await.is_empty());

    let run = binary().args(["run", "--once", "--metrics-addr", "off"]).args(common).output().unwrap();
    let (run_out, run_err) = text(&run);
    assert!(run.status.success(), "{run_err}");
    assert!(run_out.contains("cli-web  100.0%    2         2         3         2"), "{run_out}");
    for eni in &enis {
        let sessions = fleet.sessions_on(eni).await;
        assert_eq!(sessions.len(), 1, "{eni}");
        assert_eq!(sessions[0].session_number(), Some(3));
    }
}

#[tokio::test]
async fn invalid_policy_fails_run_once() {
    let moto = MotoServer::shared();
    let yaml = policy_yaml(
        "cli-bad",
        "tmt-0123456789abcdef0",
        "tmf-0123456789abcdef0",
        "vpc-0123456789abcdef0",
        "{ packetLength: 9000 }",
    );
    let folder = policy_folder("invalid_policy_fails_run_once", &yaml);

    let run = binary()
        .args(["run", "--once", "--metrics-addr", "off", "--aws-endpoint-url", &moto.endpoint])
        .args(["--policies", folder.to_str().unwrap()])
        .output()
        .unwrap();

    let (out, err) = text(&run);
    assert!(!run.status.success());
    assert!(out.contains("spec.session.packetLength: 9000 is out of range: use 1 to 8500 bytes"), "{out}");
    assert!(err.contains("1 of 1 policies are invalid"), "{err}");
}

#[test]
fn wrong_kind_names_file_and_document() {
    let folder = policy_folder("wrong_kind_names_file_and_document", "apiVersion: v1\nkind: ConfigMap\n");

    let run = binary().args(["plan", "--policies", folder.to_str().unwrap()]).output().unwrap();

    let (_, err) = text(&run);
    assert!(!run.status.success());
    assert!(
        err.contains("policies.yaml, document 1: expected apiVersion vpcmirror.dev/v1alpha1 and kind MirrorPolicy"),
        "{err}"
    );
}

#[test]
fn bad_override_is_rejected() {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/policies");

    let run = binary()
        .args(["plan", "--instance-type-overrides", "m6i=yes", "--policies", folder.to_str().unwrap()])
        .output()
        .unwrap();

    let (_, err) = text(&run);
    assert!(!run.status.success());
    assert!(err.contains("invalid verdict \"yes\""), "{err}");
}

#[test]
fn template_pattern_matches_printed() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/eventbridge-sqs.yaml");
    let template: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let in_template = serde_json::to_value(&template["Resources"]["EventRule"]["Properties"]["EventPattern"]).unwrap();

    let output = binary().arg("event-pattern").output().unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    assert!(output.status.success());
    assert_eq!(printed, vpc_mirror_controller::events::event_pattern());
    assert!(
        in_template == printed,
        "deploy/eventbridge-sqs.yaml has another pattern than `event-pattern` prints:\n{in_template:#}"
    );
}

#[test]
fn event_command_explains_files() {
    let events = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/events");

    let output = binary()
        .arg("event")
        .arg(events.join("delete-traffic-mirror-session.json"))
        .arg(events.join("not-json.txt"))
        .arg(events.join("run-instances-failed.json"))
        .output()
        .unwrap();

    let (out, err) = text(&output);
    assert!(output.status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].contains("wake DeleteTrafficMirrorSession: sessions tms-0dd44ee55ff660001"), "{out}");
    assert!(lines[1].contains("invalid message (NotJson)"), "{out}");
    assert!(lines[2].contains("ignored RunInstances (FailedApiCall)"), "{out}");
}
