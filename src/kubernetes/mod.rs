//! Kubernetes mode: MirrorPolicy objects reconciled by a kube-runtime controller, with leader
//! election so that only one replica calls AWS and writes status.

pub mod batcher;
pub mod controller;
pub mod leader;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::watch;

use crate::aws::ec2::Ec2;
use crate::engine::Engine;
use crate::event_consumer::{Consumer, ConsumerOptions, PolicySource};
use controller::{Context, ControllerSettings};
use leader::{LeaderElector, LeaseSettings};

/// Settings of Kubernetes mode.
#[derive(Clone, Debug)]
pub struct KubernetesOptions {
    pub controller: ControllerSettings,
    pub lease: LeaseSettings,
    /// The SQS consumer to run while leading, if events are configured.
    pub sqs: Option<(aws_sdk_sqs::Client, ConsumerOptions)>,
}

/// Runs until `stop` turns true: competes for the lease, and while holding it runs the
/// controller and the event consumer. On stop, work in flight finishes and the lease is
/// released, so another replica takes over at once.
pub async fn run<E: Ec2 + 'static>(
    engine: Arc<Engine<E>>,
    client: Client,
    options: KubernetesOptions,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let elector = LeaderElector::new(client.clone(), options.lease.clone());
    let metrics = engine.metrics.clone();
    let renew_interval = options.lease.renew_interval;
    loop {
        if *stop.borrow() {
            break;
        }
        match elector.try_acquire_or_renew().await {
            Ok(true) => {
                metrics.set_ready(true);
                metrics.set_leader(true);
                tracing::info!(identity = %options.lease.identity, lease = %options.lease.name, "Leading");
                lead(&engine, &client, &options, &elector, stop.clone()).await;
                metrics.set_leader(false);
                tracing::info!(identity = %options.lease.identity, "Stopped leading");
            }
            Ok(false) => metrics.set_ready(true),
            Err(error) => {
                metrics.set_ready(false);
                tracing::warn!(error = %error, lease = %options.lease.name, "Failed to read the lease; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(renew_interval) => {}
            _ = stop.changed() => {}
        }
    }
    if let Err(error) = elector.release().await {
        tracing::warn!(error = %error, "Failed to release the lease; another replica takes over when it expires");
    }
    Ok(())
}

/// Runs the controller and the consumer while this replica holds the lease, renewing it.
/// Returns when the lease is lost or `stop` turns true, after work in flight has finished.
async fn lead<E: Ec2 + 'static>(
    engine: &Arc<Engine<E>>,
    client: &Client,
    options: &KubernetesOptions,
    elector: &LeaderElector,
    mut stop: watch::Receiver<bool>,
) {
    let (leading_sender, leading) = watch::channel(false);
    let reporter =
        Reporter { controller: "vpc-mirror-controller".into(), instance: Some(options.lease.identity.clone()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let context = Context::new(engine.clone(), client.clone(), recorder, options.controller.clone());

    let mut shutdown = leading.clone();
    let (store, controller_task) = controller::start(context, async move {
        let _ = shutdown.wait_for(|stopped| *stopped).await;
    });
    let consumer_task = options.sqs.clone().map(|(sqs, consumer_options)| {
        let store = store.clone();
        let policies: PolicySource = Arc::new(move || {
            Ok(store
                .state()
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| (**p).clone())
                .collect())
        });
        let consumer = Arc::new(Consumer::new(sqs, engine.clone(), policies, consumer_options));
        tokio::spawn(consumer.run(leading.clone()))
    });

    loop {
        tokio::select! {
            _ = tokio::time::sleep(options.lease.renew_interval) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        match elector.try_acquire_or_renew().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("Lost the lease to another replica");
                break;
            }
            Err(error) => {
                // Without a renewal another replica may take over after the lease duration,
                // so this one stops writing now.
                tracing::warn!(error = %error, "Failed to renew the lease; stopping work");
                break;
            }
        }
    }

    let _ = leading_sender.send(true);
    let _ = controller_task.await;
    if let Some(task) = consumer_task {
        let _ = task.await;
    }
}

/// Returns this replica's identity: the pod name, or the host name, with the process id.
pub fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "vpc-mirror-controller".to_string());
    format!("{host}-{}", std::process::id())
}

/// Builds the default lease settings: a 15 s lease, renewed every 5 s.
pub fn default_lease(namespace: String, identity: String) -> LeaseSettings {
    LeaseSettings {
        namespace,
        name: "vpc-mirror-controller".to_string(),
        identity,
        lease_duration: Duration::from_secs(15),
        renew_interval: Duration::from_secs(5),
    }
}
