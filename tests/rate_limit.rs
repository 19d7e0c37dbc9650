//! The client-side bucket for writes against an account bucket modelled by the in-memory EC2.

mod support;

use support::prod_policy;
use vpc_mirror_controller::aws::fake::FakeEc2;
use vpc_mirror_controller::aws::rate_limit::{RateLimited, TokenBucket};
use vpc_mirror_controller::aws::retry::{RetryPolicy, Retrying};
use vpc_mirror_controller::engine::{Engine, Mode};
use vpc_mirror_controller::instance_types::InstanceTypeSupport;
use vpc_mirror_controller::metrics::Metrics;
use vpc_mirror_controller::plan::UnmirroredReason;
use vpc_mirror_controller::report::PolicyReport;

/// A fleet of 60 interfaces in an account whose write bucket has room for 10 calls, refilled at 100 a
/// second: a burst of 60 creates overflows it.
fn fleet() -> (FakeEc2, String, String) {
    let ec2 = FakeEc2::new();
    let target = ec2.add_target(None);
    let filter = ec2.add_filter();
    for _ in 0..30 {
        ec2.add_instance("m5.large", &[("env", "prod")], &["interface", "interface"]);
    }
    ec2.set_write_bucket(10, 100.0);
    (ec2, target, filter)
}

fn throttled(report: &PolicyReport) -> usize {
    report.unmirrored().iter().filter(|u| u.reason == UnmirroredReason::Throttled).count()
}

#[tokio::test]
async fn unlimited_writes_get_throttled() {
    let (ec2, target, filter) = fleet();
    let engine = Engine::new(ec2, "test", InstanceTypeSupport::default(), Metrics::new());

    let reports = engine.reconcile(&[prod_policy("web", &target, &filter, "")], Mode::Apply).await.unwrap();

    assert!(throttled(&reports[0]) > 0, "the account bucket never overflowed, so this test proves nothing");
}

#[tokio::test]
async fn limited_writes_stay_under_account_bucket() {
    let (ec2, target, filter) = fleet();
    // Half the account's refill rate, and a burst under its capacity.
    let limited = RateLimited::new(ec2, TokenBucket::new(5, 50.0));
    let engine = Engine::new(limited, "test", InstanceTypeSupport::default(), Metrics::new());

    let reports = engine.reconcile(&[prod_policy("web", &target, &filter, "")], Mode::Apply).await.unwrap();

    assert_eq!(throttled(&reports[0]), 0);
    assert_eq!(engine.ec2.inner().sessions().len(), 60);
    assert_eq!(engine.ec2.inner().calls("CreateTrafficMirrorSession"), 60);
}

#[tokio::test(start_paused = true)]
async fn throttled_writes_slow_down_and_lose_nothing() {
    let (ec2, target, filter) = fleet();
    // The account refills at 5 writes a second; the client starts at four times that.
    ec2.set_write_bucket(10, 5.0);
    let metrics = Metrics::new();
    let limited = RateLimited::new(ec2, TokenBucket::new(10, 20.0)).with_metrics(metrics.clone());
    let retrying = Retrying::new(limited, RetryPolicy::default(), metrics.clone()).with_seed(5);
    let engine = Engine::new(retrying, "test", InstanceTypeSupport::default(), metrics.clone());
    let policy = prod_policy("web", &target, &filter, "");

    let mut passes = 0;
    loop {
        passes += 1;
        let reports = engine.reconcile(std::slice::from_ref(&policy), Mode::Apply).await.unwrap();
        if reports[0].unmirrored().is_empty() || passes == 5 {
            break;
        }
    }

    let fake = engine.ec2.inner().inner();
    assert_eq!(fake.sessions().len(), 60, "every interface got its session after {passes} passes");
    let retried = metrics.aws_retries.with_label_values(&["CreateTrafficMirrorSession", "throttled"]).get();
    assert!(retried > 0, "the account bucket never throttled, so this test proves nothing");
    assert!(metrics.aws_write_rate.get() < 20.0, "the client bucket did not slow down");
    // Retries with backoff keep the throttled share small: most creates pass the first time.
    assert!(fake.calls("CreateTrafficMirrorSession") < 60 + 60 / 2);
}
