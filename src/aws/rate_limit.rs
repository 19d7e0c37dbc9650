//! A client-side token bucket for EC2 writes.
//!
//! EC2 meters mutating calls per account and region in one bucket that every tool of the
//! account shares (50 calls, refilled at 5 per second). The controller keeps its own writes
//! well under that, so that healing a large fleet never starves other tools or itself.
//!
//! The bucket adapts: a throttled write halves its refill rate, because other tools are
//! spending the account's bucket, and each successful write wins back a twentieth of the
//! configured rate. Concurrent writes throttled together halve it once, not once each.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
// Tokio's clock, so that tests can pause and advance time.
use tokio::time::Instant;

use super::ec2::Ec2;
use super::error::{Ec2Error, ErrorKind};
use super::model::{
    CreateSession, Filter, Instance, InstanceQuery, InterfaceAttachment, ModifySession, Page, Session, Target,
};
use crate::metrics::Metrics;

/// Session writes in a burst and per second unless configured otherwise: well under the account's
/// bucket of 50 calls refilled at 5 per second, which every tool of the account shares.
pub const DEFAULT_WRITE_BURST: u32 = 10;
pub const DEFAULT_WRITE_RATE: f64 = 2.0;

/// The slowest refill rate, so that a misconfiguration or a long throttling spell slows
/// writes down instead of stopping them.
const SLOWEST_RATE: f64 = 1.0 / 60.0;

/// The level of a bucket.
#[derive(Debug)]
struct Level {
    tokens: f64,
    last_refill: Instant,
    /// The refill rate now, at most the configured one.
    rate: f64,
    /// When the rate was last halved.
    slowed_at: Option<Instant>,
}

/// A token bucket: up to `capacity` calls at once, refilled at `refill_per_second` unless
/// throttling slowed it down.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    refill_per_second: f64,
    state: Mutex<Level>,
}

impl TokenBucket {
    /// Creates a full bucket. A refill rate of zero or less is raised to one call a minute.
    pub fn new(capacity: u32, refill_per_second: f64) -> Self {
        let capacity = f64::from(capacity.max(1));
        let refill_per_second = refill_per_second.max(SLOWEST_RATE);
        let level = Level { tokens: capacity, last_refill: Instant::now(), rate: refill_per_second, slowed_at: None };
        TokenBucket { capacity, refill_per_second, state: Mutex::new(level) }
    }

    /// Returns the refill rate now.
    pub async fn rate(&self) -> f64 {
        self.state.lock().await.rate
    }

    /// Halves the refill rate and empties the bucket, after AWS throttled a call. Throttles
    /// within one refill interval of the last halving belong to the same spell and change
    /// nothing, so that concurrent writes do not halve the rate once each.
    pub async fn slow_down(&self) -> f64 {
        let mut level = self.state.lock().await;
        let now = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / level.rate);
        if level.slowed_at.is_some_and(|at| now.duration_since(at) < interval) {
            return level.rate;
        }
        level.slowed_at = Some(now);
        level.rate = (level.rate / 2.0).max(SLOWEST_RATE);
        level.tokens = level.tokens.min(0.0);
        level.rate
    }

    /// Wins back a twentieth of the configured rate, after a call went through.
    pub async fn speed_up(&self) -> f64 {
        let mut level = self.state.lock().await;
        level.rate = (level.rate + self.refill_per_second / 20.0).min(self.refill_per_second);
        level.rate
    }

    /// Waits until a token is available, takes it, and returns the time spent waiting.
    pub async fn acquire(&self) -> Duration {
        let started = Instant::now();
        loop {
            let wait = {
                let mut level = self.state.lock().await;
                let now = Instant::now();
                let refilled = now.duration_since(level.last_refill).as_secs_f64() * level.rate;
                level.tokens = (level.tokens + refilled).min(self.capacity);
                level.last_refill = now;
                if level.tokens >= 1.0 {
                    level.tokens -= 1.0;
                    return started.elapsed();
                }
                wait_for_token(level.tokens, level.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Returns how long a bucket with `tokens` (below 1) waits for a whole token at `rate`. The
/// wait is at least a millisecond: rounding can leave a shortfall of a few nanoseconds, and a
/// zero sleep on a paused test clock never lets time advance, so the loop would spin forever.
fn wait_for_token(tokens: f64, rate: f64) -> Duration {
    Duration::from_secs_f64((1.0 - tokens) / rate).max(Duration::from_millis(1))
}

/// Passes reads straight through and makes every write wait for a token; a throttled write
/// slows the bucket down.
pub struct RateLimited<E> {
    inner: E,
    writes: TokenBucket,
    metrics: Option<Arc<Metrics>>,
}

impl<E> RateLimited<E> {
    pub fn new(inner: E, writes: TokenBucket) -> Self {
        RateLimited { inner, writes, metrics: None }
    }

    /// Publishes the wait and the current rate in these metrics.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics.aws_write_rate.set(self.writes.refill_per_second);
        self.metrics = Some(metrics);
        self
    }

    pub fn inner(&self) -> &E {
        &self.inner
    }

    pub fn bucket(&self) -> &TokenBucket {
        &self.writes
    }

    /// Runs one write: waits for a token, then adapts the rate to the outcome.
    async fn write<T>(&self, call: impl Future<Output = Result<T, Ec2Error>>) -> Result<T, Ec2Error> {
        let waited = self.writes.acquire().await;
        let result = call.await;
        let rate = match &result {
            Err(error) if error.kind == ErrorKind::Throttled => self.writes.slow_down().await,
            Ok(_) => self.writes.speed_up().await,
            // A timeout or a 5xx does not show the level of the bucket.
            Err(_) => self.writes.rate().await,
        };
        if let Some(metrics) = &self.metrics {
            metrics.aws_rate_limit_wait_seconds.inc_by(waited.as_secs_f64());
            metrics.aws_write_rate.set(rate);
        }
        result
    }
}

impl<E: Ec2> Ec2 for RateLimited<E> {
    async fn describe_instances(
        &self,
        query: &InstanceQuery,
        next_token: Option<String>,
    ) -> Result<Page<Instance>, Ec2Error> {
        self.inner.describe_instances(query, next_token).await
    }

    async fn describe_sessions(
        &self,
        filters: &[(String, Vec<String>)],
        next_token: Option<String>,
    ) -> Result<Page<Session>, Ec2Error> {
        self.inner.describe_sessions(filters, next_token).await
    }

    async fn describe_targets(&self, next_token: Option<String>) -> Result<Page<Target>, Ec2Error> {
        self.inner.describe_targets(next_token).await
    }

    async fn describe_network_interfaces(
        &self,
        ids: &[String],
        next_token: Option<String>,
    ) -> Result<Page<InterfaceAttachment>, Ec2Error> {
        self.inner.describe_network_interfaces(ids, next_token).await
    }

    async fn describe_filters(&self, ids: &[String], next_token: Option<String>) -> Result<Page<Filter>, Ec2Error> {
        self.inner.describe_filters(ids, next_token).await
    }

    async fn create_session(&self, request: &CreateSession) -> Result<Session, Ec2Error> {
        self.write(self.inner.create_session(request)).await
    }

    async fn modify_session(&self, request: &ModifySession) -> Result<Session, Ec2Error> {
        self.write(self.inner.modify_session(request)).await
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), Ec2Error> {
        self.write(self.inner.delete_session(session_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_spends_burst_then_refills() {
        let bucket = TokenBucket::new(3, 2.0);
        for _ in 0..3 {
            assert_eq!(bucket.acquire().await, Duration::ZERO);
        }
        let waited = bucket.acquire().await;
        assert!(waited >= Duration::from_millis(490), "{waited:?}");
        assert!(waited <= Duration::from_millis(510), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_rate_bounds_many_calls() {
        let bucket = TokenBucket::new(5, 10.0);
        let started = tokio::time::Instant::now();
        for _ in 0..25 {
            bucket.acquire().await;
        }
        // 5 from the burst, then 20 at 10 per second.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1990), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(2100), "{elapsed:?}");
    }

    #[test]
    fn token_wait_at_least_one_millisecond() {
        assert_eq!(wait_for_token(1.0 - 1e-15, 2.0), Duration::from_millis(1));
        assert_eq!(wait_for_token(0.0, 2.0), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_slows_down_and_recovers() {
        let bucket = TokenBucket::new(1, 4.0);
        assert_eq!(bucket.slow_down().await, 2.0);
        // The same spell: within one refill interval (half a second at 2 per second).
        assert_eq!(bucket.slow_down().await, 2.0);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(bucket.slow_down().await, 1.0);
        bucket.acquire().await;
        // The bucket was emptied and refills at 1 per second now.
        let waited = bucket.acquire().await;
        assert!(waited >= Duration::from_millis(990), "{waited:?}");
        for _ in 0..100 {
            bucket.speed_up().await;
        }
        assert_eq!(bucket.rate().await, 4.0);
    }
}
