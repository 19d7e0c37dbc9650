//! Command-line entry point: run, plan and crd.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kube::CustomResourceExt;
use tracing_subscriber::EnvFilter;

use vpc_mirror_controller::aws::config::{self, AwsSettings};
use vpc_mirror_controller::aws::ec2::SdkEc2;
use vpc_mirror_controller::aws::instrumented::Instrumented;
use vpc_mirror_controller::aws::rate_limit::{DEFAULT_WRITE_BURST, DEFAULT_WRITE_RATE, RateLimited, TokenBucket};
use vpc_mirror_controller::aws::retry::{DEFAULT_MAX_ATTEMPTS, RetryPolicy, Retrying};

/// The EC2 client of the controller: retries outside the write bucket, which sits outside the
/// per-attempt call counts.
type ControllerEc2 = Retrying<RateLimited<Instrumented<SdkEc2>>>;
use vpc_mirror_controller::engine::{DEFAULT_WRITE_CONCURRENCY, Engine, Mode};
use vpc_mirror_controller::event_consumer::{Consumer, ConsumerOptions};
use vpc_mirror_controller::instance_types::{InstanceTypeSupport, parse_overrides};
use vpc_mirror_controller::kubernetes::{self, controller::ControllerSettings};
use vpc_mirror_controller::metrics::{self, Metrics};
use vpc_mirror_controller::policy::MirrorPolicy;
use vpc_mirror_controller::report::render_plans;
use vpc_mirror_controller::{events, policy_files, standalone};

/// Keeps an AWS Traffic Mirroring session on every network interface that a MirrorPolicy selects.
#[derive(Parser, Debug)]
#[command(name = "vpc-mirror-controller", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Reconcile policies: from files with --policies, otherwise MirrorPolicy objects in the
    /// Kubernetes cluster of the in-cluster configuration or KUBECONFIG.
    Run(RunArgs),
    /// Print what a reconcile would create, repair and delete, and change nothing.
    Plan(PlanArgs),
    /// Print the MirrorPolicy CustomResourceDefinition as YAML.
    Crd,
    /// Print, for each EventBridge message file, its kind and the resources it wakes, or why
    /// it is ignored or invalid. Touches no AWS API.
    Event {
        /// Files holding one SQS message body each.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the EventBridge event pattern that matches exactly the events the controller handles.
    EventPattern,
}

#[derive(Args, Debug)]
struct AwsArgs {
    /// AWS endpoint, for example http://127.0.0.1:5000 for an emulator.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    aws_endpoint_url: Option<String>,

    /// AWS region; defaults to the standard chain (AWS_REGION, profile, instance metadata).
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,

    /// Attempts per AWS call, including the first. Throttled, timed-out and 5xx calls are tried
    /// again after a random pause below a cap that doubles with each attempt.
    #[arg(long, default_value_t = DEFAULT_MAX_ATTEMPTS)]
    aws_max_attempts: u32,

    /// The first backoff cap after a timeout or 5xx; throttling starts at five times this.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    aws_retry_base_delay: Duration,

    /// The largest backoff cap.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    aws_retry_max_delay: Duration,

    /// Session writes in flight at once; the write rate still paces them.
    #[arg(long, default_value_t = DEFAULT_WRITE_CONCURRENCY)]
    aws_write_concurrency: usize,

    /// How long a session the controller created counts as existing while Describe does not
    /// show it yet (EC2 is eventually consistent); 0s trusts Describe alone.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    aws_consistency_window: Duration,

    /// Session writes (create, modify, delete) per second at most. EC2 refills the account's
    /// shared write bucket at 5 per second, so the default leaves most of it to other tools.
    /// A throttled write halves the rate until later writes win it back.
    #[arg(long, default_value_t = DEFAULT_WRITE_RATE)]
    aws_write_rate: f64,

    /// Session writes allowed in a burst before --aws-write-rate applies (the account bucket
    /// has room for 50).
    #[arg(long, default_value_t = DEFAULT_WRITE_BURST)]
    aws_write_burst: u32,

    /// Name of this controller's installation; it goes into the ownership tags, so two
    /// controllers with different names never touch each other's sessions.
    #[arg(long, env = "VPCMIRROR_CLUSTER_NAME", default_value = "default")]
    cluster_name: String,

    /// Instance type verdicts that replace the built-in table, for example
    /// "m6i=supported,t3.nano=unsupported" (a family or an exact type).
    #[arg(long, env = "VPCMIRROR_INSTANCE_TYPE_OVERRIDES", default_value = "")]
    instance_type_overrides: String,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    aws: AwsArgs,

    /// MirrorPolicy YAML files or folders of them (several documents per file); repeatable.
    /// Without it, policies come from the Kubernetes cluster.
    #[arg(long = "policies", value_name = "PATH")]
    policies: Vec<PathBuf>,

    /// Namespace of the leader-election Lease in Kubernetes mode.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,

    /// Time between region passes, for example 5m or 90s; 0s runs one at start and leaves the
    /// rest to events.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    resync_interval: Duration,

    /// SQS queue that EventBridge fills with EC2 events; each message wakes a narrow reconcile.
    #[arg(long, env = "VPCMIRROR_SQS_QUEUE_URL")]
    sqs_queue_url: Option<String>,

    /// Receive loops on the SQS queue.
    #[arg(long, default_value_t = 2)]
    sqs_workers: usize,

    /// Stop after one pass; the exit code is non-zero when the pass failed or a policy is
    /// invalid. Needs --policies.
    #[arg(long)]
    once: bool,

    /// Address for /metrics, /healthz and /readyz; "off" disables the endpoint.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: String,
}

#[derive(Args, Debug)]
struct PlanArgs {
    #[command(flatten)]
    aws: AwsArgs,

    /// MirrorPolicy YAML files or folders of them; repeatable.
    #[arg(long = "policies", value_name = "PATH", required = true)]
    policies: Vec<PathBuf>,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Builds the engine and returns the AWS configuration it was built from, for the SQS client.
async fn build_engine(
    args: &AwsArgs,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(Engine<ControllerEc2>, aws_config::SdkConfig)> {
    let overrides = parse_overrides(&args.instance_type_overrides).map_err(anyhow::Error::msg)?;
    let settings = AwsSettings {
        endpoint_url: args.aws_endpoint_url.clone(),
        region: args.region.clone(),
        max_attempts: args.aws_max_attempts,
    };
    let sdk_config = config::load(&settings).await;
    if sdk_config.region().is_none() {
        anyhow::bail!("no AWS region configured: set --region or AWS_REGION");
    }
    // Every attempt passes the bucket and is counted; the retry layer sits outside both.
    let sdk = Instrumented::new(SdkEc2::new(config::ec2_client(&sdk_config)), metrics.clone());
    let writes = TokenBucket::new(args.aws_write_burst, args.aws_write_rate);
    let limited = RateLimited::new(sdk, writes).with_metrics(metrics.clone());
    let retry = RetryPolicy {
        max_attempts: args.aws_max_attempts.max(1),
        base_delay: args.aws_retry_base_delay,
        max_delay: args.aws_retry_max_delay,
    };
    let ec2 = Retrying::new(limited, retry, metrics.clone());
    let engine = Engine::new(ec2, args.cluster_name.clone(), InstanceTypeSupport::new(overrides), metrics)
        .with_write_concurrency(args.aws_write_concurrency)
        .with_consistency_window(args.aws_consistency_window);
    Ok((engine, sdk_config))
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.aws.log_format);
    let metrics = Metrics::new();
    let (engine, sdk_config) = build_engine(&args.aws, metrics.clone()).await?;
    let engine = Arc::new(engine);
    if args.metrics_addr != "off" {
        let address: SocketAddr = args.metrics_addr.parse().map_err(|e| {
            anyhow::anyhow!("invalid --metrics-addr {:?}: {e}; use HOST:PORT or off", args.metrics_addr)
        })?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("failed to listen on --metrics-addr {address}: {e}"))?;
        tokio::spawn(metrics::serve(listener, metrics.clone()));
    }
    if args.policies.is_empty() {
        if args.once {
            anyhow::bail!("--once needs --policies: Kubernetes mode runs until it is stopped");
        }
        return run_in_kubernetes(args, engine, sdk_config).await;
    }
    let consumer = args.sqs_queue_url.map(|queue_url| {
        let sqs = aws_sdk_sqs::Client::new(&sdk_config);
        let mut options = ConsumerOptions::new(queue_url);
        options.workers = args.sqs_workers;
        let policies = standalone::file_policy_source(args.policies.clone());
        Arc::new(Consumer::new(sqs, engine.clone(), policies, options))
    });
    let options = standalone::StandaloneOptions {
        policy_paths: args.policies,
        resync_interval: (!args.resync_interval.is_zero()).then_some(args.resync_interval),
        once: args.once,
    };
    standalone::run(engine, &options, consumer).await
}

async fn run_in_kubernetes(
    args: RunArgs,
    engine: Arc<Engine<ControllerEc2>>,
    sdk_config: aws_config::SdkConfig,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!(
            "failed to configure the Kubernetes client: {e}; run in a cluster, set KUBECONFIG, or pass --policies"
        )
    })?;
    let sqs = args.sqs_queue_url.map(|queue_url| {
        let mut options = ConsumerOptions::new(queue_url);
        options.workers = args.sqs_workers;
        (aws_sdk_sqs::Client::new(&sdk_config), options)
    });
    let resync_interval =
        if args.resync_interval.is_zero() { Duration::from_secs(24 * 3600) } else { args.resync_interval };
    let options = kubernetes::KubernetesOptions {
        controller: ControllerSettings { resync_interval, ..ControllerSettings::default() },
        lease: kubernetes::default_lease(args.lease_namespace, kubernetes::default_identity()),
        sqs,
    };
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        standalone::shutdown_signal().await;
        tracing::info!("Stopping on signal: finishing the work in hand and releasing the lease");
        let _ = stop_sender.send(true);
    });
    kubernetes::run(engine, client, options, stop).await
}

async fn plan(args: PlanArgs) -> anyhow::Result<()> {
    init_logging(args.aws.log_format);
    let policies = policy_files::load(&args.policies)?;
    let (engine, _) = build_engine(&args.aws, Metrics::new()).await?;
    let reports = engine.reconcile(&policies, Mode::DryRun).await?;
    print!("{}", render_plans(&reports));
    Ok(())
}

/// Prints one line per message file: its kind and scope, or why it is ignored or invalid.
fn explain_events(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        let body = std::fs::read(file).map_err(|e| anyhow::anyhow!("failed to read {}: {e}", file.display()))?;
        println!("{}: {}", file.display(), events::classify(&body));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args).await,
        Command::Plan(args) => plan(args).await,
        Command::Crd => {
            serde_norway::to_string(&MirrorPolicy::crd()).map(|yaml| print!("{yaml}")).map_err(anyhow::Error::from)
        }
        Command::Event { files } => explain_events(&files),
        Command::EventPattern => serde_json::to_string_pretty(&events::event_pattern())
            .map(|json| println!("{json}"))
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
