//! A client-side token bucket for EC2 writes.
//!
//! EC2 meters mutating calls per account and region in one bucket that every tool of the
//! account shares (50 calls, refilled at 5 per second). The controller keeps its own writes
//! well under that, so that healing a large fleet never starves other tools or itself.

use std::time::Duration;

use tokio::sync::Mutex;
// Tokio's clock, so that tests can pause and advance time.
use tokio::time::Instant;

use super::ec2::Ec2;
use super::error::Ec2Error;
use super::model::{
    CreateSession, Filter, Instance, InstanceQuery, InterfaceAttachment, ModifySession, Page, Session, Target,
};

/// A token bucket: up to `capacity` calls at once, refilled at `refill_per_second`.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    refill_per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// Creates a full bucket. A refill rate of zero or less is raised to one call a minute, so
    /// that a misconfiguration slows writes down instead of stopping them forever.
    pub fn new(capacity: u32, refill_per_second: f64) -> Self {
        let capacity = f64::from(capacity.max(1));
        let refill_per_second = refill_per_second.max(1.0 / 60.0);
        TokenBucket { capacity, refill_per_second, state: Mutex::new((capacity, Instant::now())) }
    }

    /// Waits until a token is available, takes it, and returns the time spent waiting.
    pub async fn acquire(&self) -> Duration {
        let started = Instant::now();
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let (tokens, last) = &mut *state;
                let now = Instant::now();
                *tokens =
                    (*tokens + now.duration_since(*last).as_secs_f64() * self.refill_per_second).min(self.capacity);
                *last = now;
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    return started.elapsed();
                }
                Duration::from_secs_f64((1.0 - *tokens) / self.refill_per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Passes reads straight through and makes every write wait for a token.
pub struct RateLimited<E> {
    inner: E,
    writes: TokenBucket,
}

impl<E> RateLimited<E> {
    pub fn new(inner: E, writes: TokenBucket) -> Self {
        RateLimited { inner, writes }
    }

    pub fn inner(&self) -> &E {
        &self.inner
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
        self.writes.acquire().await;
        self.inner.create_session(request).await
    }

    async fn modify_session(&self, request: &ModifySession) -> Result<Session, Ec2Error> {
        self.writes.acquire().await;
        self.inner.modify_session(request).await
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), Ec2Error> {
        self.writes.acquire().await;
        self.inner.delete_session(session_id).await
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
}
