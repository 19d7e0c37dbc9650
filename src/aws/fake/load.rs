//! The load model of the in-memory EC2: the account's token buckets per call class, latency,
//! random faults and eventual consistency, all driven by one seeded random generator so that
//! a run can be repeated.
//!
//! Every clock here is Tokio's, so tests and benchmarks on a paused runtime run hours of
//! throttled traffic in seconds and stay deterministic.

use std::time::Duration;

use tokio::time::Instant;

use crate::aws::error::{Ec2Error, ErrorKind, code};

/// The classes of calls that EC2 meters in separate buckets per account and region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallClass {
    /// Describe calls with filters or ids.
    NonMutating,
    /// DescribeInstances and DescribeNetworkInterfaces without filters or ids. AWS meters them
    /// here only when they are also unpaginated; the model cannot see MaxResults and errs on
    /// the strict side.
    UnfilteredDescribe,
    /// CreateTrafficMirrorSession, ModifyTrafficMirrorSession, DeleteTrafficMirrorSession.
    Mutating,
}

impl CallClass {
    /// Returns the class of an operation; `unfiltered` marks a Describe call without filters or ids.
    pub fn of(operation: &str, unfiltered: bool) -> CallClass {
        match operation {
            "CreateTrafficMirrorSession" | "ModifyTrafficMirrorSession" | "DeleteTrafficMirrorSession" => {
                CallClass::Mutating
            }
            "DescribeInstances" | "DescribeNetworkInterfaces" if unfiltered => CallClass::UnfilteredDescribe,
            _ => CallClass::NonMutating,
        }
    }
}

/// The size and refill rate of one bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketLimit {
    pub capacity: u32,
    pub refill_per_second: f64,
}

/// The account's buckets, one per call class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccountBuckets {
    pub non_mutating: BucketLimit,
    pub unfiltered_describe: BucketLimit,
    pub mutating: BucketLimit,
}

impl AccountBuckets {
    /// The defaults EC2 documents for an account and region.
    pub const AWS_DEFAULTS: AccountBuckets = AccountBuckets {
        non_mutating: BucketLimit { capacity: 100, refill_per_second: 20.0 },
        unfiltered_describe: BucketLimit { capacity: 50, refill_per_second: 10.0 },
        mutating: BucketLimit { capacity: 50, refill_per_second: 5.0 },
    };

    fn limit(&self, class: CallClass) -> BucketLimit {
        match class {
            CallClass::NonMutating => self.non_mutating,
            CallClass::UnfilteredDescribe => self.unfiltered_describe,
            CallClass::Mutating => self.mutating,
        }
    }
}

/// Random faults, each a probability per call between 0 and 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultRates {
    /// RequestLimitExceeded although the bucket has room, as when other tools share it.
    pub throttle: f64,
    /// An HTTP 5xx (InternalError or Unavailable).
    pub server_error: f64,
    /// The response never arrives. Half of these happen after the call took effect, which is
    /// what makes ClientTokens necessary.
    pub timeout: f64,
}

/// The behaviour of the in-memory EC2 under load. The default is an ideal EC2: no buckets, no
/// latency, no faults, every write visible at once.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadModel {
    pub buckets: Option<AccountBuckets>,
    /// Latency of a call, drawn uniformly between the two bounds; half of it passes before
    /// the call takes effect and half after.
    pub latency: (Duration, Duration),
    pub faults: FaultRates,
    /// How long a new session stays invisible to DescribeTrafficMirrorSessions.
    pub visibility_delay: Duration,
    /// Whether the checks of a create (session numbers, sessions per interface) also miss the
    /// sessions Describe does not show yet. AWS documents no read-after-write guarantee for
    /// them, so a strict model turns this on.
    pub stale_checks: bool,
    /// How long a client waits before it gives up on a lost response.
    pub timeout_after: Duration,
    pub seed: u64,
}

impl Default for LoadModel {
    fn default() -> Self {
        LoadModel {
            buckets: None,
            latency: (Duration::ZERO, Duration::ZERO),
            faults: FaultRates::default(),
            visibility_delay: Duration::ZERO,
            stale_checks: false,
            timeout_after: Duration::from_secs(5),
            seed: 1,
        }
    }
}

/// The load model's decision for one admitted call.
#[derive(Clone, Copy, Debug)]
pub struct Admission {
    /// Latency still to pass after the call takes effect.
    pub response_latency: Duration,
    /// The call takes effect but its response is lost.
    pub lose_response: bool,
}

/// The running state of the model: bucket levels and the random generator.
pub(super) struct LoadState {
    pub model: LoadModel,
    rng: fastrand::Rng,
    /// Tokens and last refill per class.
    levels: [(f64, Instant); 3],
}

fn slot(class: CallClass) -> usize {
    match class {
        CallClass::NonMutating => 0,
        CallClass::UnfilteredDescribe => 1,
        CallClass::Mutating => 2,
    }
}

/// Builds the error of a call whose response never arrived.
pub fn timeout_error(operation: &'static str) -> Ec2Error {
    Ec2Error {
        operation,
        kind: ErrorKind::Transient,
        code: None,
        message: "the request timed out before a response arrived".to_string(),
    }
}

impl LoadState {
    pub fn new(model: LoadModel) -> Self {
        let now = Instant::now();
        let full = |class| model.buckets.map(|b| f64::from(b.limit(class).capacity)).unwrap_or(0.0);
        let levels = [
            (full(CallClass::NonMutating), now),
            (full(CallClass::UnfilteredDescribe), now),
            (full(CallClass::Mutating), now),
        ];
        LoadState { rng: fastrand::Rng::with_seed(model.seed), model, levels }
    }

    /// Draws the latency of one call.
    pub fn latency(&mut self) -> Duration {
        let (low, high) = self.model.latency;
        if high <= low {
            return low;
        }
        let span = (high - low).as_micros() as u64;
        low + Duration::from_micros(self.rng.u64(0..=span))
    }

    /// Takes a token of the class, or fails with RequestLimitExceeded when the bucket is empty.
    pub fn take_token(&mut self, operation: &'static str, class: CallClass) -> Result<(), Ec2Error> {
        let Some(buckets) = self.model.buckets else {
            return Ok(());
        };
        let limit = buckets.limit(class);
        let (tokens, last) = &mut self.levels[slot(class)];
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * limit.refill_per_second)
            .min(f64::from(limit.capacity));
        *last = now;
        if *tokens < 1.0 {
            return Err(Ec2Error::rejected(operation, code::REQUEST_LIMIT_EXCEEDED, "Request limit exceeded."));
        }
        *tokens -= 1.0;
        Ok(())
    }

    /// Draws the random faults of one admitted call: an error to return before the call takes
    /// effect, or whether its response is lost after it took effect.
    pub fn draw_fault(&mut self, operation: &'static str) -> Result<bool, Ec2Error> {
        let faults = self.model.faults;
        let draw = self.rng.f64();
        if draw < faults.throttle {
            return Err(Ec2Error::rejected(operation, code::REQUEST_LIMIT_EXCEEDED, "Request limit exceeded."));
        }
        if draw < faults.throttle + faults.server_error {
            let error_code = if self.rng.bool() { "InternalError" } else { "Unavailable" };
            return Err(Ec2Error {
                operation,
                kind: ErrorKind::Transient,
                code: Some(error_code.to_string()),
                message: "An internal error has occurred (injected).".to_string(),
            });
        }
        if draw < faults.throttle + faults.server_error + faults.timeout {
            if self.rng.bool() {
                return Ok(true);
            }
            return Err(timeout_error(operation));
        }
        Ok(false)
    }

    /// Returns a random index below `len`, for callers that pick victims.
    pub fn pick(&mut self, len: usize) -> usize {
        self.rng.usize(0..len.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn mutating_bucket_refills_at_its_rate() {
        let model = LoadModel { buckets: Some(AccountBuckets::AWS_DEFAULTS), ..LoadModel::default() };
        let mut state = LoadState::new(model);
        for _ in 0..50 {
            state.take_token("CreateTrafficMirrorSession", CallClass::Mutating).unwrap();
        }
        let error = state.take_token("CreateTrafficMirrorSession", CallClass::Mutating).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Throttled);
        // Reads have a bucket of their own.
        state.take_token("DescribeInstances", CallClass::NonMutating).unwrap();

        tokio::time::advance(Duration::from_millis(1000)).await;
        for _ in 0..5 {
            state.take_token("CreateTrafficMirrorSession", CallClass::Mutating).unwrap();
        }
        assert!(state.take_token("CreateTrafficMirrorSession", CallClass::Mutating).is_err());
    }

    #[test]
    fn fault_rates_are_close_to_their_settings() {
        let faults = FaultRates { throttle: 0.1, server_error: 0.1, timeout: 0.2 };
        let mut state = LoadState::new(LoadModel { faults, seed: 7, ..LoadModel::default() });
        let (mut throttled, mut server, mut lost, mut timed_out) = (0, 0, 0, 0);
        for _ in 0..10_000 {
            match state.draw_fault("DescribeInstances") {
                Ok(true) => lost += 1,
                Ok(false) => {}
                Err(e) if e.kind == ErrorKind::Throttled => throttled += 1,
                Err(e) if e.code.is_some() => server += 1,
                Err(_) => timed_out += 1,
            }
        }
        for (count, expected) in [(throttled, 1000), (server, 1000), (lost + timed_out, 2000)] {
            assert!((count as i64 - expected).abs() < expected / 5, "{count} is far from {expected}");
        }
        assert!(lost > 0);
        assert!(timed_out > 0);
    }

    #[test]
    fn unfiltered_instance_crawls_have_their_own_class() {
        assert_eq!(CallClass::of("DescribeInstances", true), CallClass::UnfilteredDescribe);
        assert_eq!(CallClass::of("DescribeInstances", false), CallClass::NonMutating);
        assert_eq!(CallClass::of("DescribeTrafficMirrorSessions", true), CallClass::NonMutating);
        assert_eq!(CallClass::of("DeleteTrafficMirrorSession", false), CallClass::Mutating);
    }
}
