//! Prometheus metrics and the HTTP endpoint that serves them with the health probes.
//!
//! Labels take bounded values only: policy names (a handful per cluster), AWS operation names,
//! and fixed reason words. ENI, instance and session ids never become labels.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::report::Coverage;

/// Every metric the controller exports, registered in one registry.
pub struct Metrics {
    pub registry: Registry,
    pub policy_network_interfaces: IntGaugeVec,
    pub policy_unmirrored: IntGaugeVec,
    pub policy_coverage_ratio: GaugeVec,
    pub sessions_created: IntCounterVec,
    pub sessions_repaired: IntCounterVec,
    pub sessions_deleted: IntCounterVec,
    pub aws_calls: IntCounterVec,
    pub aws_retries: IntCounterVec,
    pub aws_write_rate: prometheus::Gauge,
    pub aws_rate_limit_wait_seconds: prometheus::Counter,
    pub reconcile_duration: HistogramVec,
    pub reconciles: IntCounterVec,
    pub event_messages_received: IntCounterVec,
    pub event_messages_ignored: IntCounterVec,
    pub event_messages_invalid: IntCounterVec,
    pub event_messages_failed: IntCounter,
    pub event_messages_deleted: IntCounter,
    pub event_queue_seconds: Histogram,
    pub heal_latency_seconds: Histogram,
    pub leader: IntGauge,
    ready: AtomicBool,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let policy_network_interfaces = IntGaugeVec::new(
            Opts::new(
                "vpcmirror_policy_network_interfaces",
                "Network interfaces of a policy by state: selected, eligible or mirrored.",
            ),
            &["policy", "state"],
        )
        .expect("metric definition is valid");
        let policy_unmirrored = IntGaugeVec::new(
            Opts::new(
                "vpcmirror_policy_unmirrored_network_interfaces",
                "Selected network interfaces of a policy that are not mirrored, by reason.",
            ),
            &["policy", "reason"],
        )
        .expect("metric definition is valid");
        let policy_coverage_ratio = GaugeVec::new(
            Opts::new(
                "vpcmirror_policy_coverage_ratio",
                "Mirrored divided by eligible network interfaces of a policy (1 when none are eligible).",
            ),
            &["policy"],
        )
        .expect("metric definition is valid");
        let sessions_created = IntCounterVec::new(
            Opts::new("vpcmirror_sessions_created_total", "Sessions created, by policy and reason."),
            &["policy", "reason"],
        )
        .expect("metric definition is valid");
        let sessions_repaired = IntCounterVec::new(
            Opts::new(
                "vpcmirror_sessions_repaired_total",
                "Owned sessions modified back to the policy, by policy and drifted field.",
            ),
            &["policy", "reason"],
        )
        .expect("metric definition is valid");
        let sessions_deleted = IntCounterVec::new(
            Opts::new("vpcmirror_sessions_deleted_total", "Owned sessions deleted, by policy and reason."),
            &["policy", "reason"],
        )
        .expect("metric definition is valid");
        let aws_calls = IntCounterVec::new(
            Opts::new(
                "vpcmirror_aws_calls_total",
                "AWS API calls by operation and outcome (success, throttled, error).",
            ),
            &["operation", "outcome"],
        )
        .expect("metric definition is valid");
        let aws_retries = IntCounterVec::new(
            Opts::new(
                "vpcmirror_aws_retries_total",
                "AWS calls attempted again after a failure, by operation and reason (throttled, transient).",
            ),
            &["operation", "reason"],
        )
        .expect("metric definition is valid");
        let aws_write_rate = prometheus::Gauge::new(
            "vpcmirror_aws_write_rate_limit",
            "Session writes per second the client-side bucket allows now; it drops after throttling.",
        )
        .expect("metric definition is valid");
        let aws_rate_limit_wait_seconds = prometheus::Counter::new(
            "vpcmirror_aws_rate_limit_wait_seconds_total",
            "Time session writes spent waiting for the client-side bucket.",
        )
        .expect("metric definition is valid");
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "vpcmirror_reconcile_duration_seconds",
                "Wall time of one reconcile pass over all policies.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
            &["scope"],
        )
        .expect("metric definition is valid");
        let reconciles = IntCounterVec::new(
            Opts::new("vpcmirror_reconciles_total", "Policy reconciles by outcome (success, invalid, error)."),
            &["outcome"],
        )
        .expect("metric definition is valid");

        let event_messages_received = IntCounterVec::new(
            Opts::new(
                "vpcmirror_event_messages_received_total",
                "SQS messages received, by event kind (Invalid for unparseable ones).",
            ),
            &["kind"],
        )
        .expect("metric definition is valid");
        let event_messages_ignored = IntCounterVec::new(
            Opts::new("vpcmirror_event_messages_ignored_total", "Well-formed messages that wake nothing, by reason."),
            &["reason"],
        )
        .expect("metric definition is valid");
        let event_messages_invalid = IntCounterVec::new(
            Opts::new(
                "vpcmirror_event_messages_invalid_total",
                "Messages that can never be handled and were deleted, by reason.",
            ),
            &["reason"],
        )
        .expect("metric definition is valid");
        let event_messages_failed = IntCounter::new(
            "vpcmirror_event_messages_failed_total",
            "Messages whose work failed for a transient reason and were left for redelivery.",
        )
        .expect("metric definition is valid");
        let event_messages_deleted =
            IntCounter::new("vpcmirror_event_messages_deleted_total", "Messages deleted from the queue.")
                .expect("metric definition is valid");
        let event_queue_seconds = Histogram::with_opts(
            HistogramOpts::new("vpcmirror_event_queue_seconds", "Receive time minus the EventBridge event time.")
                .buckets(vec![0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0]),
        )
        .expect("metric definition is valid");
        let heal_latency_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "vpcmirror_heal_latency_seconds",
                "Time from the CloudTrail event to the end of the writes it woke.",
            )
            .buckets(vec![1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0]),
        )
        .expect("metric definition is valid");

        let leader =
            IntGauge::new("vpcmirror_leader", "1 while this replica holds the lease and does the work, else 0.")
                .expect("metric definition is valid");

        for collector in [
            Box::new(policy_network_interfaces.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(policy_unmirrored.clone()),
            Box::new(policy_coverage_ratio.clone()),
            Box::new(sessions_created.clone()),
            Box::new(sessions_repaired.clone()),
            Box::new(sessions_deleted.clone()),
            Box::new(aws_calls.clone()),
            Box::new(aws_retries.clone()),
            Box::new(aws_write_rate.clone()),
            Box::new(aws_rate_limit_wait_seconds.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(reconciles.clone()),
            Box::new(event_messages_received.clone()),
            Box::new(event_messages_ignored.clone()),
            Box::new(event_messages_invalid.clone()),
            Box::new(event_messages_failed.clone()),
            Box::new(event_messages_deleted.clone()),
            Box::new(event_queue_seconds.clone()),
            Box::new(heal_latency_seconds.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }

        Arc::new(Metrics {
            registry,
            policy_network_interfaces,
            policy_unmirrored,
            policy_coverage_ratio,
            sessions_created,
            sessions_repaired,
            sessions_deleted,
            aws_calls,
            aws_retries,
            aws_write_rate,
            aws_rate_limit_wait_seconds,
            reconcile_duration,
            reconciles,
            event_messages_received,
            event_messages_ignored,
            event_messages_invalid,
            event_messages_failed,
            event_messages_deleted,
            event_queue_seconds,
            heal_latency_seconds,
            leader,
            ready: AtomicBool::new(false),
        })
    }

    /// Publishes a policy's coverage, replacing the reasons of its previous report.
    pub fn record_coverage(&self, policy: &str, coverage: &Coverage) {
        self.policy_network_interfaces.with_label_values(&[policy, "selected"]).set(coverage.selected as i64);
        self.policy_network_interfaces.with_label_values(&[policy, "eligible"]).set(coverage.eligible as i64);
        self.policy_network_interfaces.with_label_values(&[policy, "mirrored"]).set(coverage.mirrored as i64);
        self.policy_coverage_ratio.with_label_values(&[policy]).set(coverage.ratio());
        for reason in crate::plan::UnmirroredReason::ALL {
            let count = coverage.unmirrored_by_reason.get(&reason).copied().unwrap_or(0);
            self.policy_unmirrored.with_label_values(&[policy, reason.as_str()]).set(count as i64);
        }
    }

    /// Removes the series of a deleted policy, so that dashboards stop showing it.
    pub fn forget_policy(&self, policy: &str) {
        for state in ["selected", "eligible", "mirrored"] {
            let _ = self.policy_network_interfaces.remove_label_values(&[policy, state]);
        }
        let _ = self.policy_coverage_ratio.remove_label_values(&[policy]);
        for reason in crate::plan::UnmirroredReason::ALL {
            let _ = self.policy_unmirrored.remove_label_values(&[policy, reason.as_str()]);
        }
    }

    /// Counts one AWS call.
    pub fn record_aws_call(&self, operation: &str, outcome: &str) {
        self.aws_calls.with_label_values(&[operation, outcome]).inc();
    }

    /// Marks the controller ready: in standalone mode once its first pass has finished, in
    /// Kubernetes mode while the API server responds.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding of gathered metrics does not fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], metrics.render())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let role = if metrics.leader.get() == 1 { "leader" } else { "standby" };
    if metrics.is_ready() {
        (StatusCode::OK, format!("ready ({role})"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no finished pass or no answer from the Kubernetes API".to_string(),
        )
    }
}

/// Serves /metrics, /healthz and /readyz on a bound listener until the process stops.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    let address = listener.local_addr()?;
    tracing::info!(%address, "Serving metrics and health probes");
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(address: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn endpoint_serves_probes_and_metrics() {
        let metrics = Metrics::new();
        metrics.record_aws_call("DescribeInstances", "throttled");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, metrics.clone()));

        let not_ready = get(address, "/readyz").await;
        metrics.set_ready(true);
        let ready = get(address, "/readyz").await;
        let health = get(address, "/healthz").await;
        let scrape = get(address, "/metrics").await;

        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(
            scrape.contains(r#"vpcmirror_aws_calls_total{operation="DescribeInstances",outcome="throttled"} 1"#),
            "{scrape}"
        );
    }
}
