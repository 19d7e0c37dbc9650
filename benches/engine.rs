//! `make bench`: the controller's costs against the in-memory EC2, printed as one Markdown table.
//! Its goal column names the performance goal a row checks and whether it was met.
//!
//! Each fleet size runs in two child processes: one for the dry run and one for everything that
//! writes (`--size N --phase plan|apply`). The throttled creation runs in a third (`--creation`).
//! So each starts from a fresh heap, and its peak memory belongs to it alone. Sizes come from
//! VPCMIRROR_BENCH_SIZES (network interfaces, comma-separated; default 1000,10000,100000).
//!
//! The in-memory EC2 runs in the same process, so the CPU time and peak memory columns include
//! its share. To check the goals on the controller alone, a stopwatch adds up the time spent
//! inside the in-memory EC2's calls, and a counting allocator measures how much heap it keeps.
//! CPU time is user plus system time from /proc/self/stat, in clock ticks of 10 ms. Peak memory
//! is VmHWM from /proc/self/status, reset before each row by writing 5 to /proc/self/clear_refs.
//! Rows that model the account's token buckets run on Tokio's paused clock, so their times are
//! virtual: what the calls would take against AWS, not what the benchmark took.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

// The chaos scenario of `make test`, shared so that the large run here is the same code.
#[allow(dead_code)]
#[path = "../tests/support/chaos.rs"]
mod chaos;

use vpc_mirror_controller::aws::ec2::Ec2;
use vpc_mirror_controller::aws::error::{Ec2Error, ErrorKind, code};
use vpc_mirror_controller::aws::fake::load::{AccountBuckets, LoadModel};
use vpc_mirror_controller::aws::fake::{ACCOUNT_SESSION_LIMIT, FakeEc2};
use vpc_mirror_controller::aws::instrumented::Instrumented;
use vpc_mirror_controller::aws::model::{
    CreateSession, Filter, Instance, InstanceQuery, InterfaceAttachment, MAX_RESULTS, ModifySession, Page, Session,
    Target,
};
use vpc_mirror_controller::aws::rate_limit::{DEFAULT_WRITE_BURST, DEFAULT_WRITE_RATE, RateLimited, TokenBucket};
use vpc_mirror_controller::aws::retry::{RetryPolicy, Retrying};
use vpc_mirror_controller::engine::{DEFAULT_WRITE_CONCURRENCY, Engine, Mode};
use vpc_mirror_controller::instance_types::InstanceTypeSupport;
use vpc_mirror_controller::inventory::{self, InventoryRequest, InventoryScope, SourceScope};
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::plan::plan;
use vpc_mirror_controller::policy::MirrorPolicy;
use vpc_mirror_controller::report::{PolicyOutcome, PolicyReport};

const DEFAULT_SIZES: &str = "1000,10000,100000";
/// Sizes when the benchmark runs as a test of itself.
const SMOKE_SIZES: &str = "200";
const EVENTS_PER_KIND: usize = 200;
/// Policies that share the fleet, each selecting a quarter of it, so that the converged resync
/// shows whether they share one sweep.
const POLICIES: usize = 4;
/// Latency of every call in the rows that model the account's buckets, drawn uniformly. This is
/// an estimate of EC2 API latency, not a measurement.
const API_LATENCY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(150));

/// Reads that one event may cost.
const MAX_READS_PER_EVENT: usize = 3;
/// The fleet size at which the CPU and memory goals apply.
const GOAL_INTERFACES: usize = 100_000;
const CPU_GOAL: Duration = Duration::from_secs(2);
const MEMORY_GOAL_MIB: f64 = 200.0;
/// How far over the token-bucket bound a throttled creation may take.
const BOUND_TOLERANCE: f64 = 0.10;

/// Network interfaces in the throttled creation rows: 5,000 instances with 2 interfaces.
const CREATION_INTERFACES: usize = 10_000;
/// Region passes a throttled creation may take before the row gives up.
const MAX_PASSES: usize = 20;

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let value_of = |flag: &str| arguments.iter().position(|a| a == flag).and_then(|i| arguments.get(i + 1));
    if let Some(size) = value_of("--size") {
        let size: usize = size.parse().expect("--size takes a number of network interfaces");
        match value_of("--phase").map(String::as_str) {
            Some("plan") => measure_plan_phase(size),
            Some("apply") => measure_apply_phase(size),
            other => panic!("--phase must be plan or apply, not {other:?}"),
        }
        return;
    }
    if arguments.iter().any(|a| a == "--creation") {
        measure_creation();
        return;
    }
    if let Some(scale) = value_of("--chaos") {
        measure_chaos(scale == "large");
        return;
    }

    // `cargo bench` passes --bench. Without it, `cargo test --all-targets` is running the
    // benchmark as a test, so a small run proves that every row still works.
    let benchmarking = arguments.iter().any(|a| a == "--bench");
    let default_sizes = if benchmarking { DEFAULT_SIZES } else { SMOKE_SIZES };
    let sizes = std::env::var("VPCMIRROR_BENCH_SIZES").unwrap_or_else(|_| default_sizes.to_string());
    println!("| interfaces | measurement | wall time | CPU time | peak memory | AWS calls | goal |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for size in sizes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        run_child(&arguments[0], &["--size", size, "--phase", "plan"]);
        run_child(&arguments[0], &["--size", size, "--phase", "apply"]);
    }
    if benchmarking {
        run_child(&arguments[0], &["--creation"]);
    }
    run_child(&arguments[0], &["--chaos", if benchmarking { "large" } else { "small" }]);
}

fn run_child(program: &str, arguments: &[&str]) {
    let status = Command::new(program).args(arguments).status().expect("the benchmark can run itself");
    assert!(status.success(), "the benchmark child {arguments:?} failed with {status}");
}

// ---------------------------------------------------------------------------------------------
// The chaos scenario
// ---------------------------------------------------------------------------------------------

/// Runs the chaos scenario of `make test` on a large fleet, or on its small one when the
/// benchmark runs as a test, and prints one row.
fn measure_chaos(large: bool) {
    let config = if large { chaos::ChaosConfig::large(1) } else { chaos::ChaosConfig::small(1) };
    let paused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a paused runtime starts");
    reset_peak_memory();
    let cpu_before = cpu_time();
    let report = paused.block_on(chaos::run(&config));
    let cpu = cpu_time() - cpu_before;

    let faults = config.faults;
    let measurement = format!(
        "chaos: {} rounds of {} external actions (session deletes and edits, attached interfaces, launches), \
         {:.0}% throttles, {:.0}% 5xx and {:.0}% timeouts per call, new sessions hidden from Describe for {} s, \
         {:.0}% of events duplicated and {:.0}% lost, order shuffled, a restart in the middle of a pass every {} rounds \
         ({} passes cut); then resyncs every {} s until full coverage",
        config.rounds,
        config.actions_per_round,
        faults.throttle * 100.0,
        faults.server_error * 100.0,
        faults.timeout * 100.0,
        config.visibility_delay.as_secs(),
        config.duplicate_events * 100.0,
        config.lost_events * 100.0,
        config.restart_every,
        report.passes_cut,
        config.resync_interval.as_secs(),
    );
    let converged = report.resyncs_to_converge.filter(|r| *r <= report.resync_bound);
    let clean = report.max_duplicates == 0 && report.foreign_sessions_touched == 0 && report.foreign_sessions_lost == 0;
    let verdict = if converged.is_some() && clean { "met" } else { "missed" };
    let resyncs = report.resyncs_to_converge.map_or("no convergence".to_string(), |r| count_text(r, "resync"));
    Row {
        interfaces: format!("{} at the start, {} at the end", config.instances * 2, report.eligible),
        measurement,
        wall: virtual_text(report.virtual_time),
        cpu: duration_text(cpu),
        memory: mib(memory_mib("VmHWM")),
        calls: format!("{} calls in all", report.aws_calls),
        goal: format!(
            "{verdict}: {}/{} mirrored after {resyncs} (bound {}), {} duplicates, {} foreign sessions touched",
            report.mirrored,
            report.eligible,
            report.resync_bound,
            report.max_duplicates,
            report.foreign_sessions_touched
        ),
    }
    .print();
}

// ---------------------------------------------------------------------------------------------
// Measuring a step
// ---------------------------------------------------------------------------------------------

/// The system allocator, counting the live heap bytes of the benchmark's thread. Everything
/// measured here runs on that one thread, and a thread-local counter costs far less than an
/// atomic one, which would slow the measured steps down.
struct CountingAllocator;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread; only differences mean anything.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count_bytes(change: isize) {
    LIVE_BYTES.with(|live| live.set(live.get() + change));
}

// SAFETY: every call is passed to the system allocator unchanged, and the counter only observes.
// Its thread-local slot has a constant initialiser and no destructor, so it never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is forwarded as it is.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            count_bytes(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed` is forwarded as it is.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count_bytes(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is forwarded as it is.
        unsafe { System.dealloc(pointer, layout) };
        count_bytes(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is forwarded as it is.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count_bytes(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Returns the heap bytes of this thread, in MiB, counted from an arbitrary zero.
fn live_heap_mib() -> f64 {
    LIVE_BYTES.with(Cell::get) as f64 / (1024.0 * 1024.0)
}

/// CPU time of this process (user and system), from /proc/self/stat in clock ticks of 10 ms.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Returns a field of /proc/self/status in MiB, such as VmHWM (peak resident memory).
fn memory_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Resets VmHWM to the current resident memory, so that the next reading is the peak of one
/// step. Returns false where the kernel refuses (before Linux 4.0).
fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Wall time, CPU time and memory of one step.
struct Sample {
    wall: Duration,
    cpu: Duration,
    peak_mib: f64,
    /// Resident memory when the step started: the fleet and whatever earlier steps left.
    start_mib: f64,
    /// False when the peak could not be reset, so that it covers the whole process.
    peak_is_own: bool,
}

impl Sample {
    fn memory(&self) -> String {
        if self.peak_is_own { mib(self.peak_mib) } else { format!("{} (process peak)", mib(self.peak_mib)) }
    }
}

/// Runs one step and measures it.
async fn measured<F, Fut, T>(step: F) -> (T, Sample)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let peak_is_own = reset_peak_memory();
    let start_mib = memory_mib("VmRSS");
    let cpu_before = cpu_time();
    let started = Instant::now();
    let output = step().await;
    let wall = started.elapsed();
    let sample = Sample { wall, cpu: cpu_time() - cpu_before, peak_mib: memory_mib("VmHWM"), start_mib, peak_is_own };
    (output, sample)
}

/// The in-memory EC2 behind a stopwatch that adds up the wall time spent inside its calls.
/// Without a load model the in-memory EC2 never sleeps, and the runtime has one thread, so this
/// is also its CPU time unless the operating system preempts the benchmark.
struct Stopwatched {
    fake: Arc<FakeEc2>,
    inside_nanos: AtomicU64,
}

impl Stopwatched {
    fn new(fake: Arc<FakeEc2>) -> Self {
        Stopwatched { fake, inside_nanos: AtomicU64::new(0) }
    }

    /// Returns the time spent inside the in-memory EC2 so far.
    fn inside(&self) -> Duration {
        Duration::from_nanos(self.inside_nanos.load(Ordering::Relaxed))
    }

    async fn time<T>(&self, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let output = call.await;
        self.inside_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        output
    }
}

impl Ec2 for Stopwatched {
    async fn describe_instances(
        &self,
        query: &InstanceQuery,
        next_token: Option<String>,
    ) -> Result<Page<Instance>, Ec2Error> {
        self.time(self.fake.describe_instances(query, next_token)).await
    }

    async fn describe_sessions(
        &self,
        filters: &[(String, Vec<String>)],
        next_token: Option<String>,
    ) -> Result<Page<Session>, Ec2Error> {
        self.time(self.fake.describe_sessions(filters, next_token)).await
    }

    async fn describe_targets(&self, next_token: Option<String>) -> Result<Page<Target>, Ec2Error> {
        self.time(self.fake.describe_targets(next_token)).await
    }

    async fn describe_network_interfaces(
        &self,
        ids: &[String],
        next_token: Option<String>,
    ) -> Result<Page<InterfaceAttachment>, Ec2Error> {
        self.time(self.fake.describe_network_interfaces(ids, next_token)).await
    }

    async fn describe_filters(&self, ids: &[String], next_token: Option<String>) -> Result<Page<Filter>, Ec2Error> {
        self.time(self.fake.describe_filters(ids, next_token)).await
    }

    async fn create_session(&self, request: &CreateSession) -> Result<Session, Ec2Error> {
        self.time(self.fake.create_session(request)).await
    }

    async fn modify_session(&self, request: &ModifySession) -> Result<Session, Ec2Error> {
        self.time(self.fake.modify_session(request)).await
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), Ec2Error> {
        self.time(self.fake.delete_session(session_id)).await
    }
}

type BenchEngine = Engine<Stopwatched>;

fn new_engine(fake: &Arc<FakeEc2>) -> BenchEngine {
    Engine::new(Stopwatched::new(fake.clone()), "bench", InstanceTypeSupport::default(), Metrics::new())
}

// ---------------------------------------------------------------------------------------------
// Printing a row
// ---------------------------------------------------------------------------------------------

/// One line of the table.
struct Row {
    interfaces: String,
    measurement: String,
    wall: String,
    cpu: String,
    memory: String,
    calls: String,
    goal: String,
}

impl Row {
    fn print(&self) {
        let cells = [&self.interfaces, &self.measurement, &self.wall, &self.cpu, &self.memory, &self.calls, &self.goal];
        let cells: Vec<&str> = cells.iter().map(|c| c.as_str()).collect();
        println!("| {} |", cells.join(" | "));
    }
}

fn duration_text(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1000.0)
    } else if seconds < 10.0 {
        format!("{seconds:.2} s")
    } else {
        format!("{seconds:.0} s")
    }
}

fn virtual_text(duration: Duration) -> String {
    format!("{} virtual", duration_text(duration))
}

fn mib(value: f64) -> String {
    format!("{value:.0} MiB")
}

/// Returns "1 write" or "2 writes"; nouns ending in s get "es".
fn count_text(count: usize, noun: &str) -> String {
    match (count, noun.ends_with('s')) {
        (1, _) => format!("1 {noun}"),
        (_, true) => format!("{count} {noun}es"),
        (_, false) => format!("{count} {noun}s"),
    }
}

/// Formats call counts by operation, for example "DescribeInstances 5, ...".
fn calls_text(counts: &BTreeMap<&'static str, usize>) -> String {
    let parts: Vec<String> = counts.iter().filter(|(_, n)| **n > 0).map(|(op, n)| format!("{op} {n}")).collect();
    if parts.is_empty() { "none".to_string() } else { parts.join(", ") }
}

fn is_write(operation: &str) -> bool {
    matches!(operation, "CreateTrafficMirrorSession" | "ModifyTrafficMirrorSession" | "DeleteTrafficMirrorSession")
}

/// Returns the calls made since `before`, by operation.
fn calls_since(ec2: &FakeEc2, before: &BTreeMap<&'static str, usize>) -> BTreeMap<&'static str, usize> {
    let mut counts = ec2.call_counts();
    for (operation, count) in counts.iter_mut() {
        *count -= before.get(operation).copied().unwrap_or(0);
    }
    counts.retain(|_, count| *count > 0);
    counts
}

/// Returns "met: ..." or "missed: ...", whichever applies.
fn verdict(met: bool, detail: String) -> String {
    if met { format!("met: {detail}") } else { format!("missed: {detail}") }
}

// ---------------------------------------------------------------------------------------------
// The fleet of one size
// ---------------------------------------------------------------------------------------------

fn policy(name: &str, target: &str, filter: &str, labels: &str) -> MirrorPolicy {
    let yaml = format!(
        "apiVersion: vpcmirror.dev/v1alpha1\nkind: MirrorPolicy\nmetadata: {{ name: {name} }}\nspec:\n  target: {{ id: {target} }}\n  filter: {{ id: {filter} }}\n  selector: {{ tags: {{ matchLabels: {{ {labels} }} }} }}\n"
    );
    serde_norway::from_str(&yaml).expect("the benchmark policy parses")
}

/// A fleet of instances with 2 interfaces each. Selected instances carry env=prod and one of
/// POLICIES shards, and each shard has a policy.
struct Fleet {
    interfaces: usize,
    target: String,
    filter: String,
    policies: Vec<MirrorPolicy>,
    /// Selected instances with their interface ids in device-index order.
    selected: Vec<(String, Vec<String>)>,
    selected_interfaces: usize,
    /// The raised account session quota, when the fleet needs more than AWS's default.
    raised_quota: Option<usize>,
}

fn build_fleet(ec2: &FakeEc2, interfaces: usize) -> Fleet {
    let target = ec2.add_target(None);
    let filter = ec2.add_filter();
    // Up to 1000 interfaces stay unselected (env=dev), so that at 10,000 interfaces the
    // sessions of the events below still fit AWS's default quota of 10,000 per account.
    let unselected = (interfaces / 2).min(1000);
    let mut selected = Vec::new();
    for index in 0..interfaces / 2 {
        let shard = (index % POLICIES).to_string();
        let env = if index * 2 < unselected { "dev" } else { "prod" };
        let (instance, interface_ids) =
            ec2.add_instance("m5.large", &[("env", env), ("shard", &shard)], &["interface", "interface"]);
        if env == "prod" {
            selected.push((instance, interface_ids));
        }
    }
    let selected_interfaces = selected.len() * 2;
    // Launches add 2 sessions per event and attaches add 1, which detaches remove again.
    let needed = selected_interfaces + 3 * EVENTS_PER_KIND;
    let raised_quota = (needed > ACCOUNT_SESSION_LIMIT).then(|| needed.next_multiple_of(10_000));
    if let Some(quota) = raised_quota {
        ec2.set_account_session_limit(quota);
    }
    let policies = (0..POLICIES)
        .map(|shard| policy(&format!("shard-{shard}"), &target, &filter, &format!("env: prod, shard: '{shard}'")))
        .collect();
    Fleet { interfaces, target, filter, policies, selected, selected_interfaces, raised_quota }
}

/// Returns the id of a session on the interface; the fleet keeps one on every selected one.
fn session_on(ec2: &FakeEc2, interface_id: &str) -> String {
    let sessions = ec2.sessions_on_interface(interface_id);
    sessions.first().map(|s| s.id.clone()).expect("every selected interface has a session")
}

fn pages(items: usize) -> usize {
    items.div_ceil(MAX_RESULTS as usize).max(1)
}

/// Returns the calls of one region-wide sweep: every page of instances and sessions, targets
/// and the policies' filter.
fn one_sweep(ec2: &FakeEc2) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("DescribeInstances", pages(ec2.instance_ids().len())),
        ("DescribeTrafficMirrorFilters", 1),
        ("DescribeTrafficMirrorSessions", pages(ec2.sessions().len())),
        ("DescribeTrafficMirrorTargets", 1),
    ])
}

// ---------------------------------------------------------------------------------------------
// The CPU and memory goals, on the controller alone
// ---------------------------------------------------------------------------------------------

/// The in-memory EC2's share of a step.
struct FakeShare {
    /// Time spent inside its calls.
    time: Duration,
    /// Resident memory it holds: the process at the start of the step, which is mostly the
    /// fleet, plus the heap it kept during the step.
    memory_mib: f64,
}

/// Checks the CPU and memory goals on the controller's share of a step, which is the process's
/// cost minus the in-memory EC2's. The goals apply to the largest fleet only.
fn controller_goal(interfaces: usize, sample: &Sample, fake: &FakeShare) -> String {
    if interfaces != GOAL_INTERFACES {
        return "-".to_string();
    }
    let cpu = sample.cpu.saturating_sub(fake.time);
    let memory = (sample.peak_mib - fake.memory_mib).max(0.0);
    let cpu_met = cpu < CPU_GOAL;
    let memory_met = memory < MEMORY_GOAL_MIB;
    let detail = format!(
        "controller alone (estimate) {} CPU {} {}, {} {} {}, after subtracting the in-memory EC2's {} and {}",
        duration_text(cpu),
        if cpu_met { "<" } else { ">" },
        duration_text(CPU_GOAL),
        mib(memory),
        if memory_met { "<" } else { ">" },
        mib(MEMORY_GOAL_MIB),
        duration_text(fake.time),
        mib(fake.memory_mib)
    );
    verdict(cpu_met && memory_met, detail)
}

// ---------------------------------------------------------------------------------------------
// The plan phase: a dry run and the planning step alone
// ---------------------------------------------------------------------------------------------

fn measure_plan_phase(interfaces: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime starts");
    runtime.block_on(async {
        let fake = Arc::new(FakeEc2::new());
        let fleet = build_fleet(&fake, interfaces);
        let engine = new_engine(&fake);
        measure_dry_run(&engine, &fleet).await;
        measure_plan_only(&engine, &fleet).await;
    });
}

async fn measure_dry_run(engine: &BenchEngine, fleet: &Fleet) {
    let inside_before = engine.ec2.inside();
    let (reports, sample) = measured(|| engine.reconcile(&fleet.policies, Mode::DryRun)).await;
    reports.expect("the dry run reads every page");
    // A dry run writes nothing, so the in-memory EC2 keeps only the fleet.
    let fake = FakeShare { time: engine.ec2.inside() - inside_before, memory_mib: sample.start_mib };
    Row {
        interfaces: fleet.interfaces.to_string(),
        measurement: format!(
            "region pass, dry run: read and plan {POLICIES} policies; {} of the wall time was inside the in-memory EC2",
            duration_text(fake.time)
        ),
        wall: duration_text(sample.wall),
        cpu: duration_text(sample.cpu),
        memory: sample.memory(),
        calls: calls_text(&engine.ec2.fake.call_counts()),
        goal: controller_goal(fleet.interfaces, &sample, &fake),
    }
    .print();
}

/// Measures the pure planning step alone, on an inventory read once beforehand.
async fn measure_plan_only(engine: &BenchEngine, fleet: &Fleet) {
    let request =
        InventoryRequest { scope: InventoryScope::Region { vpc_ids: None }, filter_ids: [fleet.filter.clone()].into() };
    let (snapshot, _) =
        inventory::read(&engine.ec2, &request, None).await.expect("the in-memory EC2 returns every page");
    let support = engine.support.snapshot(Instant::now());
    let (creates, sample) = measured(|| async {
        fleet.policies.iter().map(|p| plan(p, "bench", &snapshot, &support).creates.len()).sum::<usize>()
    })
    .await;
    Row {
        interfaces: fleet.interfaces.to_string(),
        measurement: format!("plan only: {POLICIES} policies, {creates} creates"),
        wall: duration_text(sample.wall),
        cpu: duration_text(sample.cpu),
        memory: sample.memory(),
        calls: "none".to_string(),
        goal: "-".to_string(),
    }
    .print();
}

// ---------------------------------------------------------------------------------------------
// The apply phase: full reconcile, converged resync, events and the Lambda approach
// ---------------------------------------------------------------------------------------------

fn measure_apply_phase(interfaces: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime starts");
    let (fake, fleet, controller_calls) = runtime.block_on(async {
        let fake = Arc::new(FakeEc2::new());
        let fleet = build_fleet(&fake, interfaces);
        measure_full_reconcile(&fake, &fleet).await;

        // The full reconcile's engine is gone, so that its heap could be separated from the
        // in-memory EC2's. A new one needs a region pass to fill its session index before the resync
        // measured below is the steady state of a running controller.
        let engine = new_engine(&fake);
        engine.reconcile(&fleet.policies, Mode::Apply).await.expect("the region pass succeeds");
        measure_converged_resync(&engine, &fleet).await;
        let mut fixture = EventFixture { fleet: &fleet, attached: Vec::new() };
        let mut controller_calls = 0.0;
        for kind in EventKind::ALL {
            let calls = measure_event_kind(&engine, &mut fixture, kind).await;
            if kind == EventKind::SessionDeleted {
                controller_calls = calls;
            }
        }
        measure_lambda(&fake, &fleet, controller_calls).await;
        (fake, fleet, controller_calls)
    });
    drop(runtime);

    // The buckets of the load model run on Tokio's clock, so this part runs paused.
    let paused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a paused runtime starts");
    paused.block_on(measure_under_account_buckets(&fake, &fleet, controller_calls));
}

async fn measure_full_reconcile(fake: &Arc<FakeEc2>, fleet: &Fleet) {
    let heap_before = live_heap_mib();
    let engine = new_engine(fake);
    let (reports, sample) = measured(|| engine.reconcile(&fleet.policies, Mode::Apply)).await;
    let reports = reports.expect("the full reconcile reads every page");
    let mirrored: usize = reports.iter().map(mirrored_count).sum();
    assert_eq!(mirrored, fleet.selected_interfaces, "the full reconcile mirrors every selected interface");
    let fake_time = engine.ec2.inside();
    let calls = fake.call_counts();
    // What stays on the heap once the controller's state is gone is what the in-memory EC2
    // kept: the new sessions, their ClientTokens and its indexes.
    drop(reports);
    drop(engine);
    let fake = FakeShare { time: fake_time, memory_mib: sample.start_mib + (live_heap_mib() - heap_before).max(0.0) };

    let quota = match fleet.raised_quota {
        Some(quota) => format!("; account session quota raised from AWS's {ACCOUNT_SESSION_LIMIT} to {quota}"),
        None => String::new(),
    };
    Row {
        interfaces: fleet.interfaces.to_string(),
        measurement: format!(
            "full reconcile: region pass creating {mirrored} sessions{quota}; {} of the wall time was inside the \
             in-memory EC2",
            duration_text(fake.time)
        ),
        wall: duration_text(sample.wall),
        cpu: duration_text(sample.cpu),
        memory: sample.memory(),
        calls: calls_text(&calls),
        goal: controller_goal(fleet.interfaces, &sample, &fake),
    }
    .print();
}

fn mirrored_count(report: &PolicyReport) -> usize {
    match &report.outcome {
        PolicyOutcome::Reconciled { coverage, .. } => coverage.mirrored,
        PolicyOutcome::Invalid(errors) => panic!("policy {} is invalid: {errors:?}", report.policy),
    }
}

async fn measure_converged_resync(engine: &BenchEngine, fleet: &Fleet) {
    let fake = &engine.ec2.fake;
    fake.reset_calls();
    let inside_before = engine.ec2.inside();
    let (reports, sample) = measured(|| engine.reconcile(&fleet.policies, Mode::Apply)).await;
    reports.expect("the resync reads every page");
    let fake_time = engine.ec2.inside() - inside_before;

    let calls = fake.call_counts();
    let writes = fake.write_calls();
    let sweep = one_sweep(fake);
    let reads: BTreeMap<&'static str, usize> =
        calls.iter().filter(|(op, _)| !is_write(op)).map(|(op, n)| (*op, *n)).collect();
    let one_sweep_only = reads == sweep;

    let sweep_text = if one_sweep_only {
        format!("1 sweep for {POLICIES} policies")
    } else {
        format!("reads differ from 1 sweep ({})", calls_text(&sweep))
    };
    Row {
        interfaces: fleet.interfaces.to_string(),
        measurement: format!(
            "converged resync of {POLICIES} policies; {} of the wall time was inside the in-memory EC2",
            duration_text(fake_time)
        ),
        wall: duration_text(sample.wall),
        cpu: duration_text(sample.cpu),
        memory: sample.memory(),
        calls: calls_text(&calls),
        goal: verdict(writes == 0 && one_sweep_only, format!("{}, {sweep_text}", count_text(writes, "write"))),
    }
    .print();
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventKind {
    InstanceLaunched,
    InterfaceAttached,
    SessionDeleted,
    SessionModified,
    /// Detaches an interface that an earlier InterfaceAttached event added.
    InterfaceDetached,
}

impl EventKind {
    /// In this order, because detaches need the interfaces that attaches added.
    const ALL: [EventKind; 5] = [
        EventKind::InstanceLaunched,
        EventKind::InterfaceAttached,
        EventKind::SessionDeleted,
        EventKind::SessionModified,
        EventKind::InterfaceDetached,
    ];

    fn label(self) -> &'static str {
        match self {
            EventKind::InstanceLaunched => "instance launched with 2 interfaces",
            EventKind::InterfaceAttached => "interface attached",
            EventKind::SessionDeleted => "owned session deleted",
            EventKind::SessionModified => "owned session modified",
            EventKind::InterfaceDetached => "interface detached",
        }
    }

    /// Writes the event calls for: one create per missing session, one modify per drifted
    /// session, one delete per owned session left on a detached interface.
    fn needed_writes(self) -> usize {
        match self {
            EventKind::InstanceLaunched => 2,
            _ => 1,
        }
    }

    fn needed_text(self) -> &'static str {
        match self {
            EventKind::InstanceLaunched => "2 missing sessions",
            EventKind::InterfaceAttached | EventKind::SessionDeleted => "1 missing session",
            EventKind::SessionModified => "1 drifted session",
            EventKind::InterfaceDetached => "1 session to prune",
        }
    }
}

/// The scope an event gives the controller: instances and interfaces, or a session id that the
/// session index resolves to its interface, as the event consumer does.
enum Wake {
    Sources(SourceScope),
    Session { session_id: String, deleted: bool },
}

struct EventFixture<'a> {
    fleet: &'a Fleet,
    /// Interfaces that InterfaceAttached events added, for the InterfaceDetached events.
    attached: Vec<String>,
}

impl EventFixture<'_> {
    /// Changes the in-memory EC2 as the event's cause would, and returns the event's scope.
    fn prepare(&mut self, ec2: &FakeEc2, kind: EventKind, sequence: usize) -> Wake {
        let selected = &self.fleet.selected;
        match kind {
            EventKind::InstanceLaunched => {
                let shard = (sequence % POLICIES).to_string();
                let (instance, _) =
                    ec2.add_instance("m5.large", &[("env", "prod"), ("shard", &shard)], &["interface", "interface"]);
                Wake::Sources(SourceScope { instance_ids: [instance].into(), ..Default::default() })
            }
            EventKind::InterfaceAttached => {
                let (instance, _) = &selected[sequence % selected.len()];
                let interface = ec2.attach_interface(instance);
                self.attached.push(interface.clone());
                Wake::Sources(SourceScope { network_interface_ids: [interface].into(), ..Default::default() })
            }
            EventKind::SessionDeleted => {
                let (_, interfaces) = &selected[sequence % selected.len()];
                let session_id = session_on(ec2, &interfaces[0]);
                ec2.delete_session_directly(&session_id);
                Wake::Session { session_id, deleted: true }
            }
            EventKind::SessionModified => {
                // Starts in the other half of the fleet from the deletes.
                let (_, interfaces) = &selected[(sequence + selected.len() / 2) % selected.len()];
                let session_id = session_on(ec2, &interfaces[0]);
                ec2.modify_session_directly(&session_id, |session| session.packet_length = Some(128));
                Wake::Session { session_id, deleted: false }
            }
            EventKind::InterfaceDetached => {
                let interface = self.attached[sequence].clone();
                ec2.detach_interface(&interface);
                Wake::Sources(SourceScope { network_interface_ids: [interface].into(), ..Default::default() })
            }
        }
    }
}

/// Runs the source pass that an event wakes, after resolving a session id through the session
/// index as the event consumer does.
async fn handle_event(engine: &BenchEngine, policies: &[MirrorPolicy], wake: Wake) {
    let scope = match wake {
        Wake::Sources(scope) => scope,
        Wake::Session { session_id, deleted } => {
            if deleted {
                engine.session_deleted(&session_id);
            }
            let index = engine.index.lock().expect("session index lock is not poisoned");
            let owner = index.owner_of(&session_id).expect("the session index knows every owned session");
            SourceScope { network_interface_ids: [owner.network_interface_id.clone()].into(), ..Default::default() }
        }
    };
    engine.reconcile_sources(policies, &scope, Mode::Apply).await.expect("the source pass succeeds");
}

/// Returns the value at `quantile` (between 0 and 1) of sorted samples, by nearest rank.
fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn percentiles_text(latencies: &mut [Duration]) -> String {
    latencies.sort();
    format!("{} / {}", duration_text(percentile(latencies, 0.50)), duration_text(percentile(latencies, 0.99)))
}

/// Measures EVENTS_PER_KIND events of one kind on the converged fleet and prints their row.
/// Returns the mean calls per event.
async fn measure_event_kind(engine: &BenchEngine, fixture: &mut EventFixture<'_>, kind: EventKind) -> f64 {
    let fake = &engine.ec2.fake;
    let mut controller_latencies = Vec::with_capacity(EVENTS_PER_KIND);
    let mut total_latencies = Vec::with_capacity(EVENTS_PER_KIND);
    let mut totals: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut max_reads, mut max_writes, mut min_writes) = (0, 0, usize::MAX);
    for sequence in 0..EVENTS_PER_KIND {
        let wake = fixture.prepare(fake, kind, sequence);
        let before = fake.call_counts();
        let inside_before = engine.ec2.inside();
        let started = Instant::now();
        handle_event(engine, &fixture.fleet.policies, wake).await;
        let latency = started.elapsed();
        total_latencies.push(latency);
        controller_latencies.push(latency.saturating_sub(engine.ec2.inside() - inside_before));

        let calls = calls_since(fake, &before);
        let writes: usize = calls.iter().filter(|(op, _)| is_write(op)).map(|(_, n)| n).sum();
        let reads: usize = calls.iter().filter(|(op, _)| !is_write(op)).map(|(_, n)| n).sum();
        max_reads = max_reads.max(reads);
        max_writes = max_writes.max(writes);
        min_writes = min_writes.min(writes);
        for (operation, count) in calls {
            *totals.entry(operation).or_default() += count;
        }
    }

    let events = EVENTS_PER_KIND as f64;
    let per_event: Vec<String> = totals.iter().map(|(op, n)| format!("{op} {:.1}", *n as f64 / events)).collect();
    let needed = kind.needed_writes();
    let reads_met = max_reads <= MAX_READS_PER_EVENT;
    let writes_met = min_writes == needed && max_writes == needed;
    let writes_text = if min_writes == max_writes {
        count_text(max_writes, "write")
    } else {
        format!("{min_writes} to {max_writes} writes")
    };
    Row {
        interfaces: fixture.fleet.interfaces.to_string(),
        measurement: format!(
            "event: {}, {EVENTS_PER_KIND} times; wall time is the controller-side latency p50 / p99 (with the \
             in-memory EC2's time: {})",
            kind.label(),
            percentiles_text(&mut total_latencies)
        ),
        wall: percentiles_text(&mut controller_latencies),
        cpu: "-".to_string(),
        memory: "-".to_string(),
        calls: format!("per event: {}", per_event.join(", ")),
        goal: verdict(
            reads_met && writes_met,
            format!("at most {}, {writes_text} for {}", count_text(max_reads, "read"), kind.needed_text()),
        ),
    }
    .print();
    totals.values().sum::<usize>() as f64 / events
}

// ---------------------------------------------------------------------------------------------
// The Lambda approach
// ---------------------------------------------------------------------------------------------

/// Calls of the Lambda approach to one deleted session.
#[derive(Default)]
struct LambdaOutcome {
    calls: BTreeMap<&'static str, usize>,
    crawl_pages: usize,
    /// Calls rejected with RequestLimitExceeded, by operation.
    throttled: BTreeMap<&'static str, usize>,
    /// Creates rejected because session number 1 is taken on the interface.
    duplicates: usize,
    created: usize,
    /// Other failures; a failed crawl page also ends the crawl.
    other_errors: usize,
}

impl LambdaOutcome {
    fn total(&self) -> usize {
        self.calls.values().sum()
    }

    fn record<T>(&mut self, operation: &'static str, result: &Result<T, Ec2Error>) {
        *self.calls.entry(operation).or_default() += 1;
        match result {
            Ok(_) => {}
            Err(error) if error.kind == ErrorKind::Throttled => *self.throttled.entry(operation).or_default() += 1,
            Err(error)
                if operation == "CreateTrafficMirrorSession" && error.has_code(code::INVALID_PARAMETER_VALUE) =>
            {
                self.duplicates += 1
            }
            Err(_) => self.other_errors += 1,
        }
    }

    fn summary(&self, victim_healed: bool) -> String {
        let mut text = format!(
            "{} created, {} rejected as duplicates, {}",
            self.created,
            self.duplicates,
            if victim_healed { "healed" } else { "not healed" }
        );
        if self.other_errors > 0 {
            text.push_str(&format!(", {} other errors", self.other_errors));
        }
        text
    }
}

/// Models the usual CloudTrail-triggered Lambda function's response to a
/// DeleteTrafficMirrorSession event. It crawls every instance of the region with unfiltered
/// DescribeInstances pages, then describes each instance again by id and, when the instance
/// carries env=prod, tries to create session number 1 on its first interface without a
/// ClientToken. The create fails as a duplicate on every interface except the one whose session
/// was deleted. Calls run one at a time and are never retried.
async fn lambda_heal<E: Ec2>(ec2: &E, target: &str, filter: &str) -> LambdaOutcome {
    let mut outcome = LambdaOutcome::default();
    let mut instance_ids = Vec::new();
    let mut next_token = None;
    loop {
        let page = ec2.describe_instances(&InstanceQuery::default(), next_token.take()).await;
        outcome.record("DescribeInstances", &page);
        let Ok(page) = page else { break };
        outcome.crawl_pages += 1;
        instance_ids.extend(page.items.into_iter().map(|instance| instance.id));
        match page.next_token {
            Some(token) => next_token = Some(token),
            None => break,
        }
    }

    for instance_id in instance_ids {
        let query = InstanceQuery { instance_ids: vec![instance_id], filters: vec![] };
        let described = ec2.describe_instances(&query, None).await;
        outcome.record("DescribeInstances", &described);
        let Ok(page) = described else { continue };
        let Some(instance) = page.items.into_iter().next() else { continue };
        if instance.tags.get("env").map(String::as_str) != Some("prod") {
            continue;
        }
        let Some(first) = instance.network_interfaces.iter().find(|i| i.device_index == 0) else { continue };
        let request = CreateSession {
            network_interface_id: first.id.clone(),
            target_id: target.to_string(),
            filter_id: filter.to_string(),
            number: 1,
            packet_length: None,
            virtual_network_id: None,
            description: Some("mirrored by a Lambda function".to_string()),
            tags: BTreeMap::new(),
            client_token: String::new(),
        };
        let created = ec2.create_session(&request).await;
        outcome.record("CreateTrafficMirrorSession", &created);
        if created.is_ok() {
            outcome.created += 1;
        }
    }
    outcome
}

/// Deletes the session on the first interface of a selected instance, as someone would by hand,
/// and returns that interface and the deleted session's id.
fn delete_victim(ec2: &FakeEc2, fleet: &Fleet, position: usize) -> (String, String) {
    let (_, interfaces) = &fleet.selected[position % fleet.selected.len()];
    let session_id = session_on(ec2, &interfaces[0]);
    ec2.delete_session_directly(&session_id);
    (interfaces[0].clone(), session_id)
}

/// Runs the Lambda approach on the ideal in-memory EC2 and prints its calls beside the
/// controller's for the same event.
async fn measure_lambda(fake: &FakeEc2, fleet: &Fleet, controller_calls: f64) {
    let (victim, _) = delete_victim(fake, fleet, fleet.selected.len() - 1);
    fake.reset_calls();
    let (outcome, sample) = measured(|| lambda_heal(fake, &fleet.target, &fleet.filter)).await;
    assert_eq!(outcome.total(), fake.call_counts().values().sum::<usize>(), "the Lambda model counts every call");
    let healed = !fake.sessions_on_interface(&victim).is_empty();
    Row {
        interfaces: fleet.interfaces.to_string(),
        measurement: format!(
            "Lambda approach, one owned session deleted: unfiltered DescribeInstances crawl ({}), then per instance \
             DescribeInstances by id and, if env=prod, CreateTrafficMirrorSession number 1 on device 0 without \
             ClientToken, one call at a time: {}",
            count_text(outcome.crawl_pages, "page"),
            outcome.summary(healed)
        ),
        wall: duration_text(sample.wall),
        cpu: duration_text(sample.cpu),
        memory: sample.memory(),
        calls: calls_text(&outcome.calls),
        goal: format!(
            "{} calls = {:.0} × the controller's {controller_calls:.1} for this event",
            outcome.total(),
            outcome.total() as f64 / controller_calls
        ),
    }
    .print();
}

/// Returns the account's default buckets with API_LATENCY on every call.
fn account_load_model() -> LoadModel {
    LoadModel { buckets: Some(AccountBuckets::AWS_DEFAULTS), latency: API_LATENCY, seed: 1, ..LoadModel::default() }
}

fn latency_text() -> String {
    format!("{}-{} ms per call", API_LATENCY.0.as_millis(), API_LATENCY.1.as_millis())
}

/// Runs the same owned-session delete event through the controller and through the Lambda
/// approach against the account's default buckets, each starting with full buckets, on
/// Tokio's paused clock.
async fn measure_under_account_buckets(fake: &Arc<FakeEc2>, fleet: &Fleet, controller_calls: f64) {
    let engine = new_engine(fake);
    // The engine's first pass is a region pass, which fills its session index.
    engine.reconcile(&fleet.policies, Mode::Apply).await.expect("the region pass succeeds");

    fake.set_load_model(account_load_model());
    let (victim, session_id) = delete_victim(fake, fleet, fleet.selected.len() - 2);
    fake.reset_calls();
    let started = tokio::time::Instant::now();
    let wake = Wake::Session { session_id, deleted: true };
    let ((), sample) = measured(|| handle_event(&engine, &fleet.policies, wake)).await;
    let elapsed = started.elapsed();
    let healed = !fake.sessions_on_interface(&victim).is_empty();
    Row {
        interfaces: fleet.interfaces.to_string(),
        measurement: format!(
            "controller, one owned session deleted, under AWS's default buckets ({}): {}",
            latency_text(),
            if healed { "healed" } else { "not healed" }
        ),
        wall: virtual_text(elapsed),
        cpu: duration_text(sample.cpu),
        memory: "-".to_string(),
        calls: calls_text(&fake.call_counts()),
        goal: "-".to_string(),
    }
    .print();

    fake.set_load_model(account_load_model());
    let (victim, _) = delete_victim(fake, fleet, fleet.selected.len() - 3);
    fake.reset_calls();
    let started = tokio::time::Instant::now();
    let (outcome, sample) = measured(|| lambda_heal(fake.as_ref(), &fleet.target, &fleet.filter)).await;
    let elapsed = started.elapsed();
    let healed = !fake.sessions_on_interface(&victim).is_empty();
    let throttled: usize = outcome.throttled.values().sum();
    let creates = outcome.calls.get("CreateTrafficMirrorSession").copied().unwrap_or(0);
    let write_share = creates as f64
        / elapsed.as_secs_f64().max(f64::EPSILON)
        / AccountBuckets::AWS_DEFAULTS.mutating.refill_per_second;
    Row {
        interfaces: fleet.interfaces.to_string(),
        measurement: format!(
            "Lambda approach, same event, under AWS's default buckets ({}, no retries): {}; its creates use {:.0}% of \
             the account's write refill rate for the whole run",
            latency_text(),
            outcome.summary(healed),
            write_share * 100.0
        ),
        wall: virtual_text(elapsed),
        cpu: duration_text(sample.cpu),
        memory: "-".to_string(),
        calls: format!(
            "{}; RequestLimitExceeded on {} of {} calls",
            calls_text(&outcome.calls),
            throttled,
            outcome.total()
        ),
        goal: format!("{:.0} × the controller's calls", outcome.total() as f64 / controller_calls),
    }
    .print();
}

// ---------------------------------------------------------------------------------------------
// Creating 10,000 sessions under the account's write bucket
// ---------------------------------------------------------------------------------------------

fn measure_creation() {
    let paused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a paused runtime starts");
    paused.block_on(async {
        let account = AccountBuckets::AWS_DEFAULTS.mutating;
        let scenarios = [
            CreationScenario {
                label: format!(
                    "client bucket at the account's own rate (burst {}, {}/s)",
                    account.capacity, account.refill_per_second
                ),
                client_bucket: Some((account.capacity, account.refill_per_second)),
            },
            CreationScenario {
                label: format!(
                    "shipped defaults (--aws-write-burst {DEFAULT_WRITE_BURST}, --aws-write-rate {DEFAULT_WRITE_RATE})"
                ),
                client_bucket: Some((DEFAULT_WRITE_BURST, DEFAULT_WRITE_RATE)),
            },
            CreationScenario { label: "no client bucket, retries alone".to_string(), client_bucket: None },
        ];
        for scenario in scenarios {
            let result = scenario.run().await;
            scenario.print(&result);
        }
    });
}

/// Returns the shortest time in which a bucket of `capacity` refilled at `rate` per second admits
/// CREATION_INTERFACES writes: the burst at once, then the rest at the refill rate.
fn bound(capacity: u32, rate: f64) -> Duration {
    Duration::from_secs_f64((CREATION_INTERFACES - capacity as usize) as f64 / rate)
}

struct CreationScenario {
    label: String,
    /// Burst and rate of the client-side write bucket; `None` leaves writes unpaced.
    client_bucket: Option<(u32, f64)>,
}

/// The outcome of a throttled creation.
struct CreationResult {
    passes: usize,
    failed_passes: usize,
    elapsed: Duration,
    sample: Sample,
    calls: BTreeMap<&'static str, usize>,
    /// Calls that the account's buckets rejected with RequestLimitExceeded.
    throttled: u64,
    /// Selected interfaces left without a session.
    lost: usize,
    /// Interfaces with more than one session.
    duplicated: usize,
    /// The client bucket's refill rate at the end, after adapting to throttles.
    final_rate: Option<f64>,
}

impl CreationScenario {
    async fn run(&self) -> CreationResult {
        let fake = FakeEc2::new();
        let target = fake.add_target(None);
        let filter = fake.add_filter();
        let mut interfaces = Vec::with_capacity(CREATION_INTERFACES);
        for _ in 0..CREATION_INTERFACES / 2 {
            let (_, ids) = fake.add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
            interfaces.extend(ids);
        }
        fake.set_load_model(account_load_model());
        let policy = policy("fleet", &target, &filter, "env: prod");
        let metrics = Metrics::new();
        let instrumented = Instrumented::new(fake, metrics.clone());

        // The production stack: retries outside the client bucket, which sits outside the
        // instrumented client.
        match self.client_bucket {
            Some((burst, rate)) => {
                let limited =
                    RateLimited::new(instrumented, TokenBucket::new(burst, rate)).with_metrics(metrics.clone());
                let engine = engine_for(Retrying::new(limited, RetryPolicy::default(), metrics.clone()).with_seed(1));
                let fake = engine.ec2.inner().inner().inner();
                let mut result = create_all(&engine, &policy, &metrics, fake, &interfaces).await;
                result.final_rate = Some(engine.ec2.inner().bucket().rate().await);
                result
            }
            None => {
                let engine =
                    engine_for(Retrying::new(instrumented, RetryPolicy::default(), metrics.clone()).with_seed(1));
                create_all(&engine, &policy, &metrics, engine.ec2.inner().inner(), &interfaces).await
            }
        }
    }

    fn print(&self, result: &CreationResult) {
        let account = AccountBuckets::AWS_DEFAULTS.mutating;
        let account_bound = bound(account.capacity, account.refill_per_second);
        let account_ratio = result.elapsed.as_secs_f64() / account_bound.as_secs_f64();
        let lost_text = format!("{} lost, {} duplicated", result.lost, result.duplicated);
        let nothing_lost = result.lost == 0 && result.duplicated == 0;
        let goal = match self.client_bucket {
            Some((burst, rate)) if rate < account.refill_per_second => {
                let own_bound = bound(burst, rate);
                let own_ratio = result.elapsed.as_secs_f64() / own_bound.as_secs_f64();
                verdict(
                    own_ratio <= 1.0 + BOUND_TOLERANCE && nothing_lost,
                    format!(
                        "{own_ratio:.3} × its own bound of {}, {lost_text}; {account_ratio:.2} × the account's bound \
                         of {}, because the shipped rate leaves the rest of the account's to other tools",
                        duration_text(own_bound),
                        duration_text(account_bound)
                    ),
                )
            }
            _ => verdict(
                account_ratio <= 1.0 + BOUND_TOLERANCE && nothing_lost,
                format!("{account_ratio:.3} × the account's bound of {}, {lost_text}", duration_text(account_bound)),
            ),
        };
        let rate = match result.final_rate {
            Some(rate) => format!("; client rate at the end {rate:.2}/s"),
            None => String::new(),
        };
        let failed = if result.failed_passes > 0 {
            format!(" ({} failed on a throttled read)", result.failed_passes)
        } else {
            String::new()
        };
        Row {
            interfaces: CREATION_INTERFACES.to_string(),
            measurement: format!(
                "create {CREATION_INTERFACES} sessions under AWS's default buckets ({}): {}, \
                 {DEFAULT_WRITE_CONCURRENCY} writes in flight, {} attempts per call; {}{failed} to 100% coverage",
                latency_text(),
                self.label,
                RetryPolicy::default().max_attempts,
                count_text(result.passes, "region pass")
            ),
            wall: virtual_text(result.elapsed),
            cpu: duration_text(result.sample.cpu),
            memory: result.sample.memory(),
            calls: format!("{}; {} throttled{rate}", calls_text(&result.calls), result.throttled),
            goal,
        }
        .print();
    }
}

fn engine_for<E: Ec2>(ec2: E) -> Engine<E> {
    Engine::new(ec2, "bench", InstanceTypeSupport::default(), Metrics::new())
        .with_write_concurrency(DEFAULT_WRITE_CONCURRENCY)
}

/// Runs region passes until the policy covers every interface, or MAX_PASSES ran.
async fn create_all<E: Ec2>(
    engine: &Engine<E>,
    policy: &MirrorPolicy,
    metrics: &Metrics,
    fake: &FakeEc2,
    interfaces: &[String],
) -> CreationResult {
    let policies = std::slice::from_ref(policy);
    let started = tokio::time::Instant::now();
    let ((passes, failed_passes), sample) = measured(|| async {
        let (mut passes, mut failed_passes) = (0, 0);
        while passes < MAX_PASSES {
            passes += 1;
            match engine.reconcile(policies, Mode::Apply).await {
                Ok(reports) if reports.iter().all(is_fully_covered) => break,
                Ok(_) => {}
                Err(_) => failed_passes += 1,
            }
        }
        (passes, failed_passes)
    })
    .await;
    let elapsed = started.elapsed();

    let mut sessions_per_interface: BTreeMap<String, usize> = BTreeMap::new();
    for session in fake.sessions() {
        *sessions_per_interface.entry(session.network_interface_id).or_default() += 1;
    }
    let lost = interfaces.iter().filter(|id| !sessions_per_interface.contains_key(*id)).count();
    let duplicated = sessions_per_interface.values().filter(|n| **n > 1).count();
    let calls = fake.call_counts();
    let throttled = calls.keys().map(|op| metrics.aws_calls.with_label_values(&[op, "throttled"]).get()).sum();
    CreationResult { passes, failed_passes, elapsed, sample, calls, throttled, lost, duplicated, final_rate: None }
}

fn is_fully_covered(report: &PolicyReport) -> bool {
    match &report.outcome {
        PolicyOutcome::Reconciled { coverage, .. } => coverage.mirrored == coverage.eligible,
        PolicyOutcome::Invalid(_) => false,
    }
}
