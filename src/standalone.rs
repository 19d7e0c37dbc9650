//! Standalone mode: policies from files, status to logs, metrics and standard output.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::aws::ec2::Ec2;
use crate::engine::{Engine, Mode};
use crate::event_consumer::{Consumer, PolicySource};
use crate::policy_files;
use crate::report::{PolicyOutcome, render_coverage};

/// Options of standalone mode.
#[derive(Clone, Debug)]
pub struct StandaloneOptions {
    pub policy_paths: Vec<PathBuf>,
    /// Time between region passes; `None` runs region passes only at start, leaving the rest
    /// to events.
    pub resync_interval: Option<Duration>,
    /// Stop after one pass.
    pub once: bool,
}

/// Returns a policy source that reads the files again on every call, so edits apply without
/// a restart.
pub fn file_policy_source(paths: Vec<PathBuf>) -> PolicySource {
    Arc::new(move || Ok(policy_files::load(&paths)?))
}

/// Runs region passes until stopped, or once, with an optional event consumer beside them.
/// A file that fails to load skips that pass and leaves every session as it is.
///
/// Returns an error for `--once` when the pass failed or a policy is invalid, so scripts see a
/// non-zero exit.
pub async fn run<E: Ec2 + 'static>(
    engine: Arc<Engine<E>>,
    options: &StandaloneOptions,
    consumer: Option<Arc<Consumer<E>>>,
) -> anyhow::Result<()> {
    // The signal is watched for the whole run, so a SIGTERM during a pass lets that pass
    // finish and then stops.
    let (stop_sender, mut stop) = watch::channel(false);
    let signal_sender = stop_sender.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("Stopping on signal: finishing the work in hand");
        let _ = signal_sender.send(true);
    });
    // A standalone controller is the only writer, so it leads for dashboards and alerts.
    engine.metrics.set_leader(true);
    let consuming = consumer.map(|consumer| tokio::spawn(consumer.run(stop.clone())));
    let policies = file_policy_source(options.policy_paths.clone());

    let result = loop {
        match region_pass(&engine, &policies).await {
            Ok((invalid, total)) if invalid > 0 && options.once => {
                break Err(anyhow::anyhow!("{invalid} of {total} policies are invalid; fix the fields named above"));
            }
            Ok(_) => {}
            Err(error) if options.once => break Err(error),
            Err(error) => tracing::error!(error = %error, "Reconcile pass failed; retrying at the next resync"),
        }
        if options.once || *stop.borrow() {
            break Ok(());
        }
        let wait = options.resync_interval.unwrap_or(Duration::MAX);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break Ok(()),
        }
    };

    if let Some(consuming) = consuming {
        // After a signal the consumer is already stopping. After `--once` it is stopped here.
        let _ = stop_sender.send(true);
        let _ = consuming.await;
    }
    result
}

/// Runs one region pass, prints its coverage table and returns the number of invalid policies
/// and of all policies.
async fn region_pass<E: Ec2>(engine: &Engine<E>, policies: &PolicySource) -> anyhow::Result<(usize, usize)> {
    let policies = policies()?;
    let reports = engine.reconcile(&policies, Mode::Apply).await?;
    engine.metrics.set_ready(true);
    print!("{}", render_coverage(&reports));
    let invalid = reports.iter().filter(|r| matches!(r.outcome, PolicyOutcome::Invalid(_))).count();
    Ok((invalid, reports.len()))
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler succeeds in a tokio runtime");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
