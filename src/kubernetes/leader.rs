//! Leader election on a coordination.k8s.io Lease: of several replicas, only the holder of
//! the lease calls AWS and writes status.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// The location and timing of the lease.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's identity, usually the pod name.
    pub identity: String,
    /// Time after the last renewal at which another replica may take the lease over.
    pub lease_duration: Duration,
    /// Time between renewals by the holder; well under the lease duration.
    pub renew_interval: Duration,
}

/// Acquires, renews and releases one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl LeaderElector {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        LeaderElector { api: Api::namespaced(client, &settings.namespace), settings }
    }

    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// Takes the lease when it is free, expired or already ours, and renews it. Returns
    /// whether this replica is the holder now. A conflict means another replica won the race.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = match self.api.get_opt(&self.settings.name).await? {
            Some(lease) => lease,
            None => return self.create(now).await,
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.settings.identity;
        if !ours && !holder.is_empty() && !expired(&spec, now) {
            return Ok(false);
        }

        let mut lease = current;
        let mut spec = spec;
        if !ours {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.settings.identity.clone());
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(self.settings.lease_duration.as_secs() as i32);
        lease.spec = Some(spec);
        // The resourceVersion from the read makes the replace fail if another replica wrote
        // in between.
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn create(&self, now: Timestamp) -> Result<bool, kube::Error> {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(self.settings.name.clone()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.settings.identity.clone()),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_duration_seconds: Some(self.settings.lease_duration.as_secs() as i32),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the lease up so that another replica takes over at once instead of after the
    /// lease duration. Does nothing when another replica is the holder.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api.replace(&self.settings.name, &PostParams::default(), &lease).await?;
        Ok(())
    }
}

/// Returns whether the holder failed to renew within the lease duration.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(MicroTime(renewed)) = spec.renew_time else { return true };
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    renewed + duration < now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed_seconds_ago: i64, duration: i32) -> (LeaseSpec, Timestamp) {
        let now = Timestamp::now();
        let renewed = now - SignedDuration::from_secs(renewed_seconds_ago);
        let spec = LeaseSpec {
            holder_identity: Some("other".into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        };
        (spec, now)
    }

    #[test]
    fn lease_expires_after_duration() {
        let (fresh, now) = spec(5, 15);
        assert!(!expired(&fresh, now));
        let (stale, now) = spec(16, 15);
        assert!(expired(&stale, now));
    }

    #[test]
    fn lease_without_renewal_is_expired() {
        let lease = LeaseSpec { holder_identity: Some("other".into()), ..LeaseSpec::default() };
        assert!(expired(&lease, Timestamp::now()));
    }
}
