//! Kubernetes mode against the in-process fake API server: the real kube-runtime controller,
//! with the in-memory EC2 behind the engine. Each scenario asserts what was written.

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::events::{Recorder, Reporter};
use serde_json::Value;
use support::kube_api::{FakeApiServer, Method};
use vpc_mirror_controller::aws::error::{Ec2Error, ErrorKind};
use vpc_mirror_controller::aws::fake::FakeEc2;
use vpc_mirror_controller::engine::Engine;
use vpc_mirror_controller::instance_types::InstanceTypeSupport;
use vpc_mirror_controller::kubernetes::controller::{self, Context, ControllerSettings, FINALIZER};
use vpc_mirror_controller::kubernetes::leader::{LeaderElector, LeaseSettings};
use vpc_mirror_controller::kubernetes::{self as kubernetes_mode, KubernetesOptions};
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::policy::MirrorPolicy;

const POLICIES: &str = "/apis/vpcmirror.dev/v1alpha1/mirrorpolicies";

struct Cluster {
    api_server: FakeApiServer,
    engine: Arc<Engine<FakeEc2>>,
    target: String,
    filter: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn settings() -> ControllerSettings {
    ControllerSettings {
        resync_interval: Duration::from_millis(300),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
    }
}

/// Starts the controller on a fleet of two prod interfaces and one dev interface.
async fn start() -> Cluster {
    let api_server = FakeApiServer::new();
    let ec2 = FakeEc2::new();
    let target = ec2.add_target(None);
    let filter = ec2.add_filter();
    ec2.add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
    ec2.add_instance("m5.large", &[("env", "dev")], &["interface"]);
    let engine = Arc::new(Engine::new(ec2, "test", InstanceTypeSupport::default(), Metrics::new()));

    let client = api_server.client();
    let reporter = Reporter { controller: "vpc-mirror-controller".into(), instance: None };
    let context = Context::new(engine.clone(), client.clone(), Recorder::new(client, reporter), settings());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (_, task) = controller::start(context, async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    });
    api_server.wait_for_open_watch(POLICIES).await;
    Cluster { api_server, engine, target, filter, stop, task }
}

fn policy(name: &str, target: &str, filter: &str, extra_spec: &str) -> MirrorPolicy {
    support::prod_policy(name, target, filter, extra_spec)
}

impl Cluster {
    fn api(&self) -> Api<MirrorPolicy> {
        Api::all(self.api_server.client())
    }

    async fn create(&self, policy: &MirrorPolicy) {
        self.api().create(&PostParams::default(), policy).await.unwrap();
    }

    fn object(&self, name: &str) -> Option<Value> {
        self.api_server.object::<MirrorPolicy>(None, name)
    }

    fn condition(&self, name: &str, type_: &str) -> Option<Value> {
        let object = self.object(name)?;
        let conditions = object["status"]["conditions"].as_array()?.clone();
        conditions.into_iter().find(|c| c["type"] == type_)
    }

    fn status_patches(&self, name: &str) -> usize {
        self.api_server.request_count(Method::PATCH, &format!("{POLICIES}/{name}/status"))
    }

    fn event_reasons(&self) -> Vec<String> {
        self.api_server
            .objects::<k8s_openapi::api::events::v1::Event>(Some("default"))
            .iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .collect()
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("the controller stops").unwrap();
    }
}

/// Polls a condition every 50 ms for up to 10 s.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn first_reconcile_writes_status() {
    let cluster = start().await;

    cluster.create(&policy("web", &cluster.target, &cluster.filter, "")).await;
    eventually("Ready is True", || cluster.condition("web", "Ready").is_some_and(|c| c["status"] == "True")).await;

    let object = cluster.object("web").unwrap();
    assert_eq!(object["metadata"]["finalizers"], serde_json::json!([FINALIZER]));
    assert_eq!(object["status"]["observedGeneration"], 1);
    assert_eq!(object["status"]["coverage"]["mirrored"], 2);
    assert_eq!(object["status"]["coverage"]["eligible"], 2);
    assert_eq!(object["status"]["coverage"]["percent"], "100.0%");
    assert_eq!(cluster.condition("web", "Ready").unwrap()["reason"], "FullyMirrored");
    assert_eq!(cluster.condition("web", "Degraded").unwrap()["status"], "False");
    assert_eq!(cluster.engine.ec2.sessions().len(), 2);
    let patch = &cluster.api_server.requests_to(Method::PATCH, &format!("{POLICIES}/web/status"))[0];
    assert_eq!(patch.content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!(patch.query_param("fieldManager"), Some("vpc-mirror-controller"));
    eventually("a SessionsCreated Event", || cluster.event_reasons().contains(&"SessionsCreated".to_string())).await;
    cluster.stop().await;
}

#[tokio::test]
async fn converged_reconcile_writes_nothing() {
    let cluster = start().await;
    cluster.create(&policy("web", &cluster.target, &cluster.filter, "")).await;
    eventually("Ready is True", || cluster.condition("web", "Ready").is_some_and(|c| c["status"] == "True")).await;
    let sweeps_before = cluster.engine.ec2.calls("DescribeInstances");

    // Several resync intervals of 300 ms.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    assert!(cluster.engine.ec2.calls("DescribeInstances") > sweeps_before, "no resync happened");
    assert_eq!(cluster.engine.ec2.write_calls(), 2);
    assert_eq!(cluster.status_patches("web"), 1);
    cluster.stop().await;
}

#[tokio::test]
async fn invalid_spec_waits_for_change() {
    let cluster = start().await;
    let mut invalid = policy("web", &cluster.target, &cluster.filter, "");
    invalid.spec.selector.tags.as_mut().unwrap().match_expressions.push(
        vpc_mirror_controller::policy::TagRequirement {
            key: "team".into(),
            operator: vpc_mirror_controller::policy::TagOperator::In,
            values: vec![],
        },
    );

    cluster.create(&invalid).await;
    eventually("Ready is InvalidSpec", || {
        cluster.condition("web", "Ready").is_some_and(|c| c["reason"] == "InvalidSpec")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let ready = cluster.condition("web", "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    assert!(ready["message"].as_str().unwrap().contains("spec.selector.tags.matchExpressions[0].values"), "{ready}");
    assert_eq!(cluster.engine.ec2.call_counts().values().sum::<usize>(), 0);
    assert_eq!(cluster.status_patches("web"), 1);
    assert!(cluster.event_reasons().contains(&"InvalidSpec".to_string()));
    cluster.stop().await;
}

#[tokio::test]
async fn missing_target_is_reported() {
    let cluster = start().await;

    cluster.create(&policy("web", "tmt-0123456789abcdef0", &cluster.filter, "")).await;
    eventually("Ready is TargetNotFound", || {
        cluster.condition("web", "Ready").is_some_and(|c| c["reason"] == "TargetNotFound")
    })
    .await;

    let ready = cluster.condition("web", "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    assert!(ready["message"].as_str().unwrap().contains("spec.target.id"));
    assert_eq!(cluster.engine.ec2.write_calls(), 0);
    cluster.stop().await;
}

#[tokio::test]
async fn deletion_removes_owned_sessions() {
    let cluster = start().await;
    cluster.create(&policy("web", &cluster.target, &cluster.filter, "")).await;
    eventually("two sessions", || cluster.engine.ec2.sessions().len() == 2).await;

    cluster.api().delete("web", &DeleteParams::default()).await.unwrap();
    eventually("the policy is gone", || cluster.object("web").is_none()).await;

    assert!(cluster.engine.ec2.sessions().is_empty());
    assert_eq!(cluster.engine.ec2.calls("DeleteTrafficMirrorSession"), 2);
    cluster.stop().await;
}

#[tokio::test]
async fn deletion_retains_sessions() {
    let cluster = start().await;
    cluster.create(&policy("web", &cluster.target, &cluster.filter, "  deletionPolicy: Retain\n")).await;
    eventually("two sessions", || cluster.engine.ec2.sessions().len() == 2).await;

    cluster.api().delete("web", &DeleteParams::default()).await.unwrap();
    eventually("the policy is gone", || cluster.object("web").is_none()).await;

    assert_eq!(cluster.engine.ec2.sessions().len(), 2);
    assert_eq!(cluster.engine.ec2.calls("DeleteTrafficMirrorSession"), 0);
    cluster.stop().await;
}

#[tokio::test]
async fn deletion_waits_while_aws_fails() {
    let cluster = start().await;
    cluster.create(&policy("web", &cluster.target, &cluster.filter, "")).await;
    eventually("two sessions", || cluster.engine.ec2.sessions().len() == 2).await;
    for _ in 0..3 {
        let timeout = Ec2Error {
            operation: "DeleteTrafficMirrorSession",
            kind: ErrorKind::Transient,
            code: None,
            message: "timed out".into(),
        };
        cluster.engine.ec2.fail_next("DeleteTrafficMirrorSession", timeout);
    }

    cluster.api().delete("web", &DeleteParams::default()).await.unwrap();
    eventually("the first delete failed", || cluster.engine.ec2.calls("DeleteTrafficMirrorSession") >= 1).await;
    let while_failing = cluster.object("web").expect("the policy stays while its sessions remain");

    eventually("the policy is gone", || cluster.object("web").is_none()).await;
    assert_eq!(while_failing["metadata"]["finalizers"], serde_json::json!([FINALIZER]));
    assert!(while_failing["metadata"]["deletionTimestamp"].is_string());
    assert!(cluster.engine.ec2.sessions().is_empty());
    assert!(cluster.event_reasons().contains(&"DeleteFailed".to_string()));
    cluster.stop().await;
}

#[tokio::test]
async fn transient_failure_backs_off_then_recovers() {
    let cluster = start().await;
    for _ in 0..2 {
        let timeout = Ec2Error {
            operation: "DescribeInstances",
            kind: ErrorKind::Transient,
            code: None,
            message: "timed out".into(),
        };
        cluster.engine.ec2.fail_next("DescribeInstances", timeout);
    }

    cluster.create(&policy("web", &cluster.target, &cluster.filter, "")).await;
    eventually("Ready is AwsError", || cluster.condition("web", "Ready").is_some_and(|c| c["reason"] == "AwsError"))
        .await;
    eventually("Ready is True", || cluster.condition("web", "Ready").is_some_and(|c| c["status"] == "True")).await;

    assert_eq!(cluster.engine.ec2.sessions().len(), 2);
    assert!(cluster.event_reasons().contains(&"ReconcileFailed".to_string()));
    cluster.stop().await;
}

fn lease(identity: &str) -> LeaseSettings {
    LeaseSettings {
        namespace: "default".into(),
        name: "vpc-mirror-controller".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(1),
        renew_interval: Duration::from_millis(200),
    }
}

#[tokio::test]
async fn standby_takes_over_expired_lease() {
    let api_server = FakeApiServer::new();
    let first = LeaderElector::new(api_server.client(), lease("first"));
    let second = LeaderElector::new(api_server.client(), lease("second"));

    assert!(first.try_acquire_or_renew().await.unwrap());
    assert!(!second.try_acquire_or_renew().await.unwrap());
    assert!(first.try_acquire_or_renew().await.unwrap());
    // The first replica stops renewing, as a crashed one would.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(second.try_acquire_or_renew().await.unwrap());
    assert!(!first.try_acquire_or_renew().await.unwrap());

    let stored = api_server.object::<Lease>(Some("default"), "vpc-mirror-controller").unwrap();
    assert_eq!(stored["spec"]["holderIdentity"], "second");
    assert_eq!(stored["spec"]["leaseTransitions"], 1);
}

#[tokio::test]
async fn released_lease_is_taken_at_once() {
    let api_server = FakeApiServer::new();
    let first = LeaderElector::new(api_server.client(), lease("first"));
    let second = LeaderElector::new(api_server.client(), lease("second"));
    assert!(first.try_acquire_or_renew().await.unwrap());

    first.release().await.unwrap();

    assert!(second.try_acquire_or_renew().await.unwrap());
}

#[tokio::test]
async fn leader_runs_and_releases_on_stop() {
    let api_server = FakeApiServer::new();
    let ec2 = FakeEc2::new();
    let target = ec2.add_target(None);
    let filter = ec2.add_filter();
    ec2.add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let engine = Arc::new(Engine::new(ec2, "test", InstanceTypeSupport::default(), Metrics::new()));
    let options = KubernetesOptions { controller: settings(), lease: lease("only"), sqs: None };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(kubernetes_mode::run(engine.clone(), api_server.client(), options, stopped));
    Api::<MirrorPolicy>::all(api_server.client())
        .create(&PostParams::default(), &policy("web", &target, &filter, ""))
        .await
        .unwrap();

    eventually("one session", || engine.ec2.sessions().len() == 1).await;
    let leading = engine.metrics.leader.get();
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("Kubernetes mode stops").unwrap().unwrap();

    assert_eq!(leading, 1);
    assert_eq!(engine.metrics.leader.get(), 0);
    let stored = api_server.object::<Lease>(Some("default"), "vpc-mirror-controller").unwrap();
    assert!(stored["spec"]["holderIdentity"].is_null(), "{stored}");
}

#[tokio::test]
async fn standby_makes_no_aws_call() {
    let api_server = FakeApiServer::new();
    let holder = LeaderElector::new(api_server.client(), lease("holder"));
    assert!(holder.try_acquire_or_renew().await.unwrap());
    let ec2 = FakeEc2::new();
    let target = ec2.add_target(None);
    let filter = ec2.add_filter();
    ec2.add_instance("m5.large", &[("env", "prod")], &["interface"]);
    let engine = Arc::new(Engine::new(ec2, "test", InstanceTypeSupport::default(), Metrics::new()));
    let mut lease_settings = lease("standby");
    lease_settings.lease_duration = Duration::from_secs(30);
    let options = KubernetesOptions { controller: settings(), lease: lease_settings, sqs: None };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(kubernetes_mode::run(engine.clone(), api_server.client(), options, stopped));
    Api::<MirrorPolicy>::all(api_server.client())
        .create(&PostParams::default(), &policy("web", &target, &filter, ""))
        .await
        .unwrap();

    // The holder keeps renewing while the standby waits.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(holder.try_acquire_or_renew().await.unwrap());
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap().unwrap();

    assert_eq!(engine.ec2.call_counts().values().sum::<usize>(), 0);
    assert_eq!(engine.metrics.leader.get(), 0);
    assert!(engine.metrics.is_ready());
}
