//! Retries of failed EC2 calls, with exponential backoff and full jitter.
//!
//! Throttled and transient failures (timeouts, connection errors, 5xx) are tried again; a
//! rejection is final. Jitter spreads the retries of concurrent writes, so that they do not
//! hit a refilling bucket together. A retried create sends the same ClientToken, so a create
//! whose response was lost returns the session it made instead of a second one.
//!
//! The SDK's own retries are turned off (one attempt per SDK call) so that every attempt
//! passes the client-side bucket and shows in the metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ec2::Ec2;
use super::error::{Ec2Error, ErrorKind};
use super::model::{
    CreateSession, Filter, Instance, InstanceQuery, InterfaceAttachment, ModifySession, Page, Session, Target,
};
use crate::metrics::Metrics;

/// The retry settings of EC2 calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// The first backoff cap after a transient failure; it doubles with each attempt.
    pub base_delay: Duration,
    /// The largest backoff cap.
    pub max_delay: Duration,
}

/// Throttling backs off this many times longer than a transient failure, because the bucket
/// refills at a fixed rate whatever the client does.
const THROTTLE_FACTOR: u32 = 5;

/// Attempts per call unless configured otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// Returns the backoff cap before attempt `attempt + 1`, after `attempt` failures.
    pub fn cap(&self, attempt: u32, kind: ErrorKind) -> Duration {
        let base = if kind == ErrorKind::Throttled { self.base_delay * THROTTLE_FACTOR } else { self.base_delay };
        let doubled = base.saturating_mul(1 << attempt.saturating_sub(1).min(16));
        doubled.min(self.max_delay)
    }
}

/// Retries the calls of the wrapped `Ec2`.
pub struct Retrying<E> {
    inner: E,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
    rng: Mutex<fastrand::Rng>,
}

impl<E> Retrying<E> {
    pub fn new(inner: E, policy: RetryPolicy, metrics: Arc<Metrics>) -> Self {
        Retrying { inner, policy, metrics, rng: Mutex::new(fastrand::Rng::new()) }
    }

    /// Draws jitter from a seeded generator, so that a test run can be repeated.
    pub fn with_seed(self, seed: u64) -> Self {
        Retrying { rng: Mutex::new(fastrand::Rng::with_seed(seed)), ..self }
    }

    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Runs `call` until it succeeds, fails for good, or runs out of attempts.
    async fn run<T, F, Fut>(&self, operation: &'static str, call: F) -> Result<T, Ec2Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Ec2Error>>,
    {
        let mut attempt = 1;
        loop {
            let error = match call().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if !error.is_retryable() || attempt >= self.policy.max_attempts {
                return Err(error);
            }
            let reason = if error.kind == ErrorKind::Throttled { "throttled" } else { "transient" };
            self.metrics.aws_retries.with_label_values(&[operation, reason]).inc();
            let cap = self.policy.cap(attempt, error.kind);
            // Full jitter: anywhere between zero and the cap.
            let delay = cap.mul_f64(self.rng.lock().expect("jitter lock is not poisoned").f64());
            tracing::debug!(operation, attempt, delay_ms = delay.as_millis() as u64, error = %error, "Retrying AWS call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

impl<E: Ec2> Ec2 for Retrying<E> {
    async fn describe_instances(
        &self,
        query: &InstanceQuery,
        next_token: Option<String>,
    ) -> Result<Page<Instance>, Ec2Error> {
        self.run("DescribeInstances", || self.inner.describe_instances(query, next_token.clone())).await
    }

    async fn describe_sessions(
        &self,
        filters: &[(String, Vec<String>)],
        next_token: Option<String>,
    ) -> Result<Page<Session>, Ec2Error> {
        self.run("DescribeTrafficMirrorSessions", || self.inner.describe_sessions(filters, next_token.clone())).await
    }

    async fn describe_targets(&self, next_token: Option<String>) -> Result<Page<Target>, Ec2Error> {
        self.run("DescribeTrafficMirrorTargets", || self.inner.describe_targets(next_token.clone())).await
    }

    async fn describe_network_interfaces(
        &self,
        ids: &[String],
        next_token: Option<String>,
    ) -> Result<Page<InterfaceAttachment>, Ec2Error> {
        self.run("DescribeNetworkInterfaces", || self.inner.describe_network_interfaces(ids, next_token.clone())).await
    }

    async fn describe_filters(&self, ids: &[String], next_token: Option<String>) -> Result<Page<Filter>, Ec2Error> {
        self.run("DescribeTrafficMirrorFilters", || self.inner.describe_filters(ids, next_token.clone())).await
    }

    async fn create_session(&self, request: &CreateSession) -> Result<Session, Ec2Error> {
        self.run("CreateTrafficMirrorSession", || self.inner.create_session(request)).await
    }

    async fn modify_session(&self, request: &ModifySession) -> Result<Session, Ec2Error> {
        self.run("ModifyTrafficMirrorSession", || self.inner.modify_session(request)).await
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), Ec2Error> {
        self.run("DeleteTrafficMirrorSession", || self.inner.delete_session(session_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::error::code;
    use crate::aws::fake::FakeEc2;

    fn throttled() -> Ec2Error {
        Ec2Error::rejected("DeleteTrafficMirrorSession", code::REQUEST_LIMIT_EXCEEDED, "Request limit exceeded.")
    }

    #[test]
    fn caps_double_up_to_the_limit() {
        let policy =
            RetryPolicy { max_attempts: 10, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        assert_eq!(policy.cap(1, ErrorKind::Transient), Duration::from_millis(100));
        assert_eq!(policy.cap(2, ErrorKind::Transient), Duration::from_millis(200));
        assert_eq!(policy.cap(3, ErrorKind::Throttled), Duration::from_secs(1));
        assert_eq!(policy.cap(40, ErrorKind::Transient), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_retried_and_counted() {
        let fake = FakeEc2::new();
        for _ in 0..2 {
            fake.fail_next("DeleteTrafficMirrorSession", throttled());
        }
        let metrics = Metrics::new();
        let retrying = Retrying::new(fake, RetryPolicy::default(), metrics.clone()).with_seed(3);

        let error = retrying.delete_session("tms-00000000000000001").await.unwrap_err();

        // Two throttles were retried; the third attempt reached the session check.
        assert!(error.has_code(code::SESSION_NOT_FOUND), "{error}");
        assert_eq!(retrying.inner().calls("DeleteTrafficMirrorSession"), 3);
        let retries = metrics.aws_retries.with_label_values(&["DeleteTrafficMirrorSession", "throttled"]).get();
        assert_eq!(retries, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn last_attempt_and_rejection_final() {
        let fake = FakeEc2::new();
        for _ in 0..3 {
            fake.fail_next("DeleteTrafficMirrorSession", throttled());
        }
        let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        let retrying = Retrying::new(fake, policy, Metrics::new());

        let error = retrying.delete_session("tms-00000000000000001").await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Throttled);
        assert_eq!(retrying.inner().calls("DeleteTrafficMirrorSession"), 3);

        // NotFound is a rejection: one attempt only.
        let before = retrying.inner().calls("DeleteTrafficMirrorSession");
        let error = retrying.delete_session("tms-00000000000000001").await.unwrap_err();
        assert!(error.has_code(code::SESSION_NOT_FOUND));
        assert_eq!(retrying.inner().calls("DeleteTrafficMirrorSession"), before + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_under_the_cap() {
        let fake = FakeEc2::new();
        for _ in 0..3 {
            fake.fail_next("DeleteTrafficMirrorSession", throttled());
        }
        let policy = RetryPolicy { max_attempts: 4, ..RetryPolicy::default() };
        let retrying = Retrying::new(fake, policy, Metrics::new()).with_seed(11);
        let started = tokio::time::Instant::now();
        let _ = retrying.delete_session("tms-00000000000000001").await;
        let bound = policy.cap(1, ErrorKind::Throttled)
            + policy.cap(2, ErrorKind::Throttled)
            + policy.cap(3, ErrorKind::Throttled);
        let waited = started.elapsed();
        assert!(waited <= bound, "{waited:?} > {bound:?}");
        assert!(waited > Duration::ZERO);
    }
}
