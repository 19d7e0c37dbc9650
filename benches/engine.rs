//! `make bench`: reconcile costs against the in-memory EC2, printed as one Markdown table.
//!
//! Each fleet size runs in a child process of its own, so that the peak memory it reports
//! belongs to that size alone. Sizes come from VPCMIRROR_BENCH_SIZES (network interfaces,
//! comma-separated; default 1000,10000,100000). The fake EC2 runs in the same process, so CPU
//! time and memory include its share; the "plan only" row isolates the pure planning step.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vpc_mirror_controller::aws::fake::{ACCOUNT_SESSION_LIMIT, FakeEc2};
use vpc_mirror_controller::engine::{Engine, Mode};
use vpc_mirror_controller::instance_types::InstanceTypeSupport;
use vpc_mirror_controller::inventory::{self, InventoryRequest, InventoryScope, SourceScope};
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::plan::plan;
use vpc_mirror_controller::policy::MirrorPolicy;

const EVENTS_PER_KIND: usize = 200;

/// CPU time of this process (user and system), from /proc/self/stat in clock ticks of 10 ms.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Peak resident memory of this process in MiB, from /proc/self/status.
fn peak_memory_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn policy(target: &str, filter: &str) -> MirrorPolicy {
    let yaml = format!(
        "apiVersion: vpcmirror.dev/v1alpha1\nkind: MirrorPolicy\nmetadata: {{ name: fleet }}\nspec:\n  target: {{ id: {target} }}\n  filter: {{ id: {filter} }}\n  selector: {{ tags: {{ matchLabels: {{ env: prod }} }} }}\n"
    );
    serde_norway::from_str(&yaml).expect("the bench policy parses")
}

fn calls_text(ec2: &FakeEc2) -> String {
    let counts: BTreeMap<&str, usize> = ec2.call_counts();
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(op, n)| format!("{} {n}", op.trim_start_matches("Describe").replace("TrafficMirror", "")))
        .collect();
    if parts.is_empty() { "none".to_string() } else { parts.join(", ") }
}

fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

/// Measures one fleet size and prints its rows.
async fn measure(interfaces: usize) {
    let ec2 = FakeEc2::new();
    let target = ec2.add_target(None);
    let filter = ec2.add_filter();
    // Up to 1000 interfaces stay unselected, so that the events below have headroom under the
    // account's session quota after "create all".
    let unselected = (interfaces / 2).min(1000);
    for index in 0..interfaces / 2 {
        let env = if index * 2 < unselected { "dev" } else { "prod" };
        ec2.add_instance("m5.large", &[("env", env)], &["interface", "interface"]);
    }
    let policy = policy(&target, &filter);
    let engine = Arc::new(Engine::new(ec2, "bench", InstanceTypeSupport::default(), Metrics::new()));
    let size = format!("{interfaces}");

    // A region pass that plans every interface and writes nothing.
    engine.ec2.reset_calls();
    let (wall, cpu) = timed(|| engine.reconcile(std::slice::from_ref(&policy), Mode::DryRun)).await;
    row(&[size.clone(), "region pass, dry run".into(), ms(wall), ms(cpu), mib(), calls_text(&engine.ec2)]);

    // The pure planning step alone, on an inventory read once.
    let request =
        InventoryRequest { scope: InventoryScope::Region { vpc_ids: None }, filter_ids: [filter.clone()].into() };
    let (snapshot, _) =
        inventory::read(&engine.ec2, &request, None).await.expect("the in-memory EC2 returns every read");
    let support = InstanceTypeSupport::default();
    let cpu_before = cpu_time();
    let started = Instant::now();
    let planned = plan(&policy, "bench", &snapshot, &support.snapshot(Instant::now()));
    let (wall, cpu) = (started.elapsed(), cpu_time() - cpu_before);
    row(&[
        size.clone(),
        format!("plan only ({} creates)", planned.creates.len()),
        ms(wall),
        ms(cpu),
        mib(),
        "none".into(),
    ]);
    drop(snapshot);

    if interfaces > ACCOUNT_SESSION_LIMIT {
        row(&[
            size,
            "apply and resync".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            format!("skipped: AWS allows {ACCOUNT_SESSION_LIMIT} sessions per account"),
        ]);
        return;
    }

    engine.ec2.reset_calls();
    let (wall, cpu) = timed(|| engine.reconcile(std::slice::from_ref(&policy), Mode::Apply)).await;
    row(&[size.clone(), "region pass, create all".into(), ms(wall), ms(cpu), mib(), calls_text(&engine.ec2)]);

    engine.ec2.reset_calls();
    let (wall, cpu) = timed(|| engine.reconcile(std::slice::from_ref(&policy), Mode::Apply)).await;
    let writes = engine.ec2.write_calls();
    row(&[
        size.clone(),
        format!("converged resync ({writes} writes)"),
        ms(wall),
        ms(cpu),
        mib(),
        calls_text(&engine.ec2),
    ]);

    // Events: each kind repeated, on a converged fleet with the catalog cached.
    let kinds: [(&str, fn(&FakeEc2) -> SourceScope); 3] = [
        ("event: new instance, 2 interfaces", |ec2| {
            let (instance, _) = ec2.add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
            SourceScope { instance_ids: [instance].into(), ..Default::default() }
        }),
        ("event: interface attached", |ec2| {
            let mirrored = ec2.sessions().into_iter().last().expect("a session exists");
            let instance = ec2.instance_of_interface(&mirrored.network_interface_id).expect("the source is attached");
            let eni = ec2.attach_interface(&instance);
            SourceScope { network_interface_ids: [eni].into(), ..Default::default() }
        }),
        ("event: owned session deleted", |ec2| {
            let victim = ec2.sessions().into_iter().next().expect("a session exists");
            ec2.delete_session_directly(&victim.id);
            SourceScope { network_interface_ids: [victim.network_interface_id].into(), ..Default::default() }
        }),
    ];
    for (label, prepare) in kinds {
        let mut latencies = Vec::new();
        engine.ec2.reset_calls();
        for _ in 0..EVENTS_PER_KIND {
            let scope = prepare(&engine.ec2);
            let started = Instant::now();
            engine
                .reconcile_sources(std::slice::from_ref(&policy), &scope, Mode::Apply)
                .await
                .expect("the source pass succeeds");
            latencies.push(started.elapsed());
        }
        latencies.sort();
        let p50 = latencies[latencies.len() / 2];
        let p99 = latencies[latencies.len() * 99 / 100];
        let per_event: Vec<String> = engine
            .ec2
            .call_counts()
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(op, n)| {
                format!(
                    "{} {:.1}",
                    op.trim_start_matches("Describe").replace("TrafficMirror", ""),
                    *n as f64 / EVENTS_PER_KIND as f64
                )
            })
            .collect();
        row(&[
            size.clone(),
            format!("{label} (p50 / p99 latency)"),
            format!("{} / {}", ms(p50), ms(p99)),
            "-".into(),
            "-".into(),
            format!("per event: {}", per_event.join(", ")),
        ]);
    }
}

async fn timed<F, Fut, T>(run: F) -> (Duration, Duration)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let cpu_before = cpu_time();
    let started = Instant::now();
    let _ = run().await;
    (started.elapsed(), cpu_time() - cpu_before)
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn mib() -> String {
    format!("{:.0} MiB", peak_memory_mib())
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if let Some(position) = arguments.iter().position(|a| a == "--size") {
        let size: usize = arguments[position + 1].parse().expect("--size takes a number of interfaces");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime starts");
        runtime.block_on(measure(size));
        return;
    }

    let sizes = std::env::var("VPCMIRROR_BENCH_SIZES").unwrap_or_else(|_| "1000,10000,100000".to_string());
    println!("| interfaces | measurement | wall time | CPU time | peak memory | AWS calls |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for size in sizes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let status = Command::new(&arguments[0]).args(["--size", size]).status().expect("the bench runs itself");
        assert!(status.success(), "the measurement of {size} interfaces failed");
    }
}
