//! The chaos scenario: the controller against a loaded, faulty, eventually consistent EC2
//! while other actors delete and edit sessions, attach interfaces and launch instances.
//!
//! Events reach the controller through the same classification and consumer code as SQS
//! messages, duplicated, reordered and sometimes lost. Every few rounds the controller is
//! restarted in the middle of a pass: the pass is dropped mid-flight and a new engine,
//! with empty memory, takes over the same account. After the chaos rounds the actors stop
//! (faults go on) and the scenario counts the resyncs until full coverage.
//!
//! It runs on a paused Tokio clock, so latency, backoff and bucket refills cost no real time.
//! This file is self-contained because `make bench` includes it for its large run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use vpc_mirror_controller::aws::fake::FakeEc2;
use vpc_mirror_controller::aws::fake::actors::{ExternalAction, ExternalActors, LaunchTemplate};
use vpc_mirror_controller::aws::fake::load::{AccountBuckets, FaultRates, LoadModel};
use vpc_mirror_controller::aws::model::{CreateSession, Session};
use vpc_mirror_controller::aws::rate_limit::{DEFAULT_WRITE_BURST, DEFAULT_WRITE_RATE, RateLimited, TokenBucket};
use vpc_mirror_controller::aws::retry::{RetryPolicy, Retrying};
use vpc_mirror_controller::engine::{Engine, Mode};
use vpc_mirror_controller::event_consumer::{Consumer, ConsumerOptions, PolicySource};
use vpc_mirror_controller::events::{Classification, WakeEvent, classify};
use vpc_mirror_controller::instance_types::InstanceTypeSupport;
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::ownership;
use vpc_mirror_controller::policy::MirrorPolicy;

const CLUSTER: &str = "chaos";
const POLICY: &str = "fleet";

/// The size and the harshness of one run.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    pub seed: u64,
    /// Selected instances at the start, each with two interfaces.
    pub instances: usize,
    /// Sessions on random interfaces, a third each: another tool's to the policy's target (the
    /// controller adopts them), another tool's to another target, and those of a controller of
    /// another cluster.
    pub foreign_sessions: usize,
    pub rounds: usize,
    /// External actions per round.
    pub actions_per_round: usize,
    pub faults: FaultRates,
    pub latency: (Duration, Duration),
    /// How long a new session stays invisible to Describe.
    pub visibility_delay: Duration,
    /// How long the controller trusts a session it created while Describe does not show it.
    pub consistency_window: Duration,
    pub resync_interval: Duration,
    /// Every this many rounds the controller restarts in the middle of a pass.
    pub restart_every: usize,
    /// Share of events that are delivered twice, and share that are lost.
    pub duplicate_events: f64,
    pub lost_events: f64,
    /// Resyncs after the chaos before the run stops waiting for full coverage.
    pub max_resyncs: usize,
}

impl ChaosConfig {
    /// Returns a run for `make test`: 40 interfaces at the start, well under a second of CPU.
    pub fn small(seed: u64) -> Self {
        ChaosConfig {
            seed,
            instances: 20,
            foreign_sessions: 6,
            rounds: 15,
            actions_per_round: 6,
            faults: FaultRates { throttle: 0.05, server_error: 0.05, timeout: 0.05 },
            latency: (Duration::from_millis(20), Duration::from_millis(200)),
            visibility_delay: Duration::from_secs(5),
            consistency_window: Duration::from_secs(20),
            resync_interval: Duration::from_secs(30),
            restart_every: 3,
            duplicate_events: 0.3,
            lost_events: 0.1,
            max_resyncs: 8,
        }
    }

    /// Returns a run for `make bench`: 8,000 interfaces at the start, so that the fleet the
    /// actors grow stays under AWS's quota of 10,000 sessions per account.
    pub fn large(seed: u64) -> Self {
        ChaosConfig {
            instances: 4_000,
            foreign_sessions: 200,
            rounds: 20,
            actions_per_round: 100,
            ..ChaosConfig::small(seed)
        }
    }
}

/// What a run observed.
#[derive(Clone, Debug, Default)]
pub struct ChaosReport {
    /// Resyncs after the chaos until full coverage; `None` when `max_resyncs` did not suffice.
    pub resyncs_to_converge: Option<usize>,
    /// The resyncs that full coverage may take; see `resync_bound`.
    pub resync_bound: usize,
    /// The maximum number of sessions the actors deleted on one interface.
    pub max_deletions_on_one_interface: usize,
    /// The largest number of interfaces seen with more than one session of the policy, checked
    /// after every round's events and resync.
    pub max_duplicates: usize,
    /// Modify and delete calls of the controller on sessions it does not own.
    pub foreign_sessions_touched: usize,
    /// Foreign sessions that changed or vanished, other than by the external actors.
    pub foreign_sessions_lost: usize,
    pub mirrored: usize,
    pub eligible: usize,
    pub external_actions: usize,
    pub events_delivered: usize,
    pub events_lost: usize,
    pub restarts: usize,
    /// Restarts that dropped a pass before it finished.
    pub passes_cut: usize,
    pub aws_calls: usize,
    pub throttled_or_failed_passes: usize,
    pub virtual_time: Duration,
}

type ChaosEc2 = Retrying<RateLimited<Arc<FakeEc2>>>;

/// The controller process: an engine and the consumer that feeds it events.
struct Controller {
    engine: Arc<Engine<ChaosEc2>>,
    consumer: Consumer<ChaosEc2>,
}

fn policy(target: &str, filter: &str) -> MirrorPolicy {
    let yaml = format!(
        "apiVersion: vpcmirror.dev/v1alpha1\nkind: MirrorPolicy\nmetadata: {{ name: {POLICY} }}\nspec:\n  target: {{ id: {target} }}\n  filter: {{ id: {filter} }}\n  selector: {{ tags: {{ matchLabels: {{ env: prod }} }} }}\n"
    );
    serde_norway::from_str(&yaml).expect("the chaos policy parses")
}

/// Builds an SQS client that is never called, because the scenario hands events to the
/// consumer directly.
fn unused_sqs() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

fn start_controller(
    ec2: &Arc<FakeEc2>,
    config: &ChaosConfig,
    policies: &[MirrorPolicy],
    generation: u64,
) -> Controller {
    // The shipped client-side protection, with jitter that repeats per seed and restart.
    let metrics = Metrics::new();
    let limited = RateLimited::new(Arc::clone(ec2), TokenBucket::new(DEFAULT_WRITE_BURST, DEFAULT_WRITE_RATE));
    let retrying = Retrying::new(limited, RetryPolicy::default(), metrics.clone()).with_seed(config.seed + generation);
    let engine = Arc::new(
        Engine::new(retrying, CLUSTER, InstanceTypeSupport::default(), metrics)
            .with_consistency_window(config.consistency_window),
    );
    let policies = policies.to_vec();
    let source: PolicySource = Arc::new(move || Ok(policies.clone()));
    let consumer = Consumer::new(unused_sqs(), Arc::clone(&engine), source, ConsumerOptions::new("chaos"));
    Controller { engine, consumer }
}

/// Returns the ground truth of coverage as (mirrored, eligible): an interface is mirrored when
/// it has a session to the target (owned ones also with the policy's filter and packet length).
fn coverage(ec2: &FakeEc2, target: &str, filter: &str) -> (usize, usize) {
    let sessions = ec2.sessions();
    let mut by_interface: BTreeMap<&str, Vec<&Session>> = BTreeMap::new();
    for session in &sessions {
        by_interface.entry(session.network_interface_id.as_str()).or_default().push(session);
    }
    let (mut mirrored, mut eligible) = (0, 0);
    for interface in ec2.selected_interfaces("env", "prod") {
        eligible += 1;
        let covered = by_interface.get(interface.as_str()).is_some_and(|list| {
            list.iter().any(|s| match is_ours(s) {
                true => s.target_id == target && s.filter_id == filter && s.packet_length.is_none(),
                false => s.target_id == target,
            })
        });
        mirrored += usize::from(covered);
    }
    (mirrored, eligible)
}

/// Returns whether the policy owns the session, read from the tag scheme written out here rather
/// than through the library, so that a bug in the library's ownership check cannot hide itself.
fn is_ours(session: &Session) -> bool {
    let tag = |key: &str| session.tags.get(key).map(String::as_str);
    tag("vpcmirror.dev/managed-by") == Some("vpc-mirror-controller")
        && tag("vpcmirror.dev/cluster") == Some(CLUSTER)
        && tag("vpcmirror.dev/policy") == Some(POLICY)
}

/// Interfaces with more than one session of the policy.
fn duplicates(ec2: &FakeEc2) -> usize {
    let mut owned: BTreeMap<String, usize> = BTreeMap::new();
    for session in ec2.sessions() {
        if is_ours(&session) {
            *owned.entry(session.network_interface_id).or_default() += 1;
        }
    }
    owned.values().filter(|n| **n > 1).count()
}

/// Adds sessions of other tools and of a controller of another cluster.
fn add_foreign_sessions(ec2: &FakeEc2, config: &ChaosConfig, target: &str, filter: &str) -> Vec<Session> {
    let other_target = ec2.add_target(None);
    let interfaces = ec2.selected_interfaces("env", "prod");
    let mut foreign = Vec::new();
    for index in 0..config.foreign_sessions {
        let interface = &interfaces[ec2.pick(interfaces.len())];
        let (target_id, number, tags) = match index % 3 {
            0 => (target.to_string(), 1, BTreeMap::new()),
            1 => (other_target.clone(), 7, BTreeMap::from([("team".to_string(), "netops".to_string())])),
            _ => (other_target.clone(), 8, ownership::ownership_tags("another-cluster", POLICY)),
        };
        let request = CreateSession {
            network_interface_id: interface.clone(),
            target_id,
            filter_id: filter.to_string(),
            number,
            packet_length: None,
            virtual_network_id: None,
            description: Some("created by another tool".to_string()),
            tags,
            client_token: String::new(),
        };
        // A number already taken on that interface just means one foreign session fewer.
        if let Ok(session) = ec2.add_session_directly(&request) {
            foreign.push(session);
        }
    }
    foreign
}

/// Classifies message bodies and hands them to the consumer in batches of four, a second
/// apart, so that later passes run while earlier creations are still invisible to Describe.
/// Returns the bodies whose work failed, for redelivery.
async fn deliver(controller: &Controller, bodies: Vec<String>) -> Vec<String> {
    let mut failed = Vec::new();
    for batch in bodies.chunks(4) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let events: Vec<WakeEvent> = batch
            .iter()
            .filter_map(|body| match classify(body.as_bytes()) {
                Classification::Wake(event) => Some(event),
                _ => None,
            })
            .collect();
        let refs: Vec<&WakeEvent> = events.iter().collect();
        if !refs.is_empty() && controller.consumer.reconcile_events(&refs).await.is_err() {
            failed.extend(batch.iter().cloned());
        }
    }
    failed
}

/// Returns the resyncs that full coverage may take once the actors stop. A restarted controller
/// has lost the record of the sessions it replaced, so it sends the ClientToken of the first session
/// it created on an interface. When that session was deleted, AWS returns it again, and the
/// controller trusts it for the consistency window: one resync. The next create replays the
/// token of the second session, and so on, one resync per session the actors deleted on that
/// interface. Then one resync for the real create, and one for a write that ran out of
/// attempts under the injected faults.
pub fn resync_bound(max_deletions_on_one_interface: usize) -> usize {
    max_deletions_on_one_interface + 2
}

/// Runs a region pass and drops it `cut_after` its first write call reached EC2, as a crash
/// would. Returns whether the pass finished first.
async fn restart_during_pass(
    ec2: &FakeEc2,
    controller: &Controller,
    policies: &[MirrorPolicy],
    cut_after: Duration,
) -> bool {
    let writes_before = ec2.write_calls();
    let crash = async {
        while ec2.write_calls() == writes_before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(cut_after).await;
    };
    tokio::select! {
        _ = controller.engine.reconcile(policies, Mode::Apply) => true,
        _ = crash => false,
    }
}

/// Runs one scenario. Call it on a paused current-thread runtime.
pub async fn run(config: &ChaosConfig) -> ChaosReport {
    let started = tokio::time::Instant::now();
    let ec2 = Arc::new(FakeEc2::new());
    let target = ec2.add_target(None);
    let filter = ec2.add_filter();
    for _ in 0..config.instances {
        ec2.add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
    }
    ec2.set_load_model(LoadModel {
        buckets: Some(AccountBuckets::AWS_DEFAULTS),
        latency: config.latency,
        faults: config.faults,
        visibility_delay: config.visibility_delay,
        // The strict model: a create's own checks miss hidden sessions too, so only the
        // controller's memory of its creations prevents a duplicate in a fast second pass.
        stale_checks: true,
        timeout_after: Duration::from_secs(5),
        seed: config.seed,
    });
    let foreign = add_foreign_sessions(&ec2, config, &target, &filter);
    let policies = vec![policy(&target, &filter)];
    let mut report = ChaosReport::default();
    let mut generation = 0;
    let mut controller = start_controller(&ec2, config, &policies, generation);
    let mut actors = ExternalActors::new(LaunchTemplate {
        instance_type: "m5.large".to_string(),
        tags: vec![("env".to_string(), "prod".to_string())],
    });
    let mut delivery = fastrand::Rng::with_seed(config.seed ^ 0x5eed);
    let mut touched_by_actors = BTreeSet::new();
    let mut deletions: BTreeMap<String, usize> = BTreeMap::new();
    let mut redeliver = Vec::new();

    for round in 0..config.rounds {
        // The world changes, and CloudTrail reports it: twice, out of order, or not at all.
        let mut bodies = std::mem::take(&mut redeliver);
        for _ in 0..config.actions_per_round {
            let Some((action, body)) = actors.act(&ec2) else { continue };
            report.external_actions += 1;
            match &action {
                ExternalAction::DeletedSession { session_id, network_interface_id } => {
                    touched_by_actors.insert(session_id.clone());
                    *deletions.entry(network_interface_id.clone()).or_default() += 1;
                }
                ExternalAction::ModifiedSession { session_id, .. } => {
                    touched_by_actors.insert(session_id.clone());
                }
                _ => {}
            }
            if delivery.f64() < config.lost_events {
                report.events_lost += 1;
                continue;
            }
            if delivery.f64() < config.duplicate_events {
                bodies.push(body.clone());
            }
            bodies.push(body);
        }
        delivery.shuffle(&mut bodies);
        report.events_delivered += bodies.len();

        if (round + 1) % config.restart_every == 0 {
            // The controller dies in the middle of the resync, while the events are still in
            // the queue; its successor gets them.
            let cut_after = Duration::from_millis(delivery.u64(0..=150));
            let finished = restart_during_pass(&ec2, &controller, &policies, cut_after).await;
            report.passes_cut += usize::from(!finished);
            report.restarts += 1;
            generation += 1;
            controller = start_controller(&ec2, config, &policies, generation);
            redeliver = deliver(&controller, bodies).await;
        } else {
            redeliver = deliver(&controller, bodies).await;
            report.max_duplicates = report.max_duplicates.max(duplicates(&ec2));
            if controller.engine.reconcile(&policies, Mode::Apply).await.is_err() {
                report.throttled_or_failed_passes += 1;
            }
        }
        report.max_duplicates = report.max_duplicates.max(duplicates(&ec2));
        tokio::time::sleep(config.resync_interval).await;
    }

    report.max_deletions_on_one_interface = deletions.values().copied().max().unwrap_or(0);
    report.resync_bound = resync_bound(report.max_deletions_on_one_interface);

    // The actors stop; faults and the events still queued go on.
    let pending = std::mem::take(&mut redeliver);
    redeliver = deliver(&controller, pending).await;
    for resync in 1..=config.max_resyncs {
        if !redeliver.is_empty() {
            redeliver = deliver(&controller, std::mem::take(&mut redeliver)).await;
        }
        if controller.engine.reconcile(&policies, Mode::Apply).await.is_err() {
            report.throttled_or_failed_passes += 1;
        }
        report.max_duplicates = report.max_duplicates.max(duplicates(&ec2));
        let (mirrored, eligible) = coverage(&ec2, &target, &filter);
        report.mirrored = mirrored;
        report.eligible = eligible;
        if mirrored == eligible && duplicates(&ec2) == 0 {
            report.resyncs_to_converge = Some(resync);
            break;
        }
        tokio::time::sleep(config.resync_interval).await;
    }

    report.foreign_sessions_touched = ec2.session_writes().iter().filter(|(_, before)| !is_ours(before)).count();
    let now: BTreeMap<String, Session> = ec2.sessions().into_iter().map(|s| (s.id.clone(), s)).collect();
    report.foreign_sessions_lost =
        foreign.iter().filter(|s| !touched_by_actors.contains(&s.id)).filter(|s| now.get(&s.id) != Some(*s)).count();
    report.aws_calls = ec2.call_counts().values().sum();
    report.virtual_time = started.elapsed();
    report
}
