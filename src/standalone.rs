//! Standalone mode: policies from files, status to logs, metrics and standard output.

use std::path::PathBuf;
use std::time::Duration;

use crate::aws::ec2::Ec2;
use crate::engine::{Engine, Mode};
use crate::policy_files;
use crate::report::{PolicyOutcome, render_coverage};

/// Options of standalone mode.
#[derive(Clone, Debug)]
pub struct StandaloneOptions {
    pub policy_paths: Vec<PathBuf>,
    pub resync_interval: Duration,
    /// Stop after one pass.
    pub once: bool,
}

/// Runs reconcile passes until stopped, or once. Policy files are read again before every
/// pass, so edits apply without a restart. A file that fails to load skips that pass and
/// leaves every session as it is.
///
/// Returns an error for `--once` when the pass failed or a policy is invalid, so scripts see a
/// non-zero exit.
pub async fn run<E: Ec2>(engine: &Engine<E>, options: &StandaloneOptions) -> anyhow::Result<()> {
    loop {
        let pass = async {
            let policies = policy_files::load(&options.policy_paths)?;
            let reports = engine.reconcile(&policies, Mode::Apply).await?;
            anyhow::Ok(reports)
        };
        match pass.await {
            Ok(reports) => {
                engine.metrics.set_ready(true);
                print!("{}", render_coverage(&reports));
                let invalid = reports.iter().filter(|r| matches!(r.outcome, PolicyOutcome::Invalid(_))).count();
                if options.once && invalid > 0 {
                    anyhow::bail!("{invalid} of {} policies are invalid; fix the fields named above", reports.len());
                }
            }
            Err(error) if options.once => return Err(error),
            Err(error) => tracing::error!(error = %error, "Reconcile pass failed; retrying at the next resync"),
        }
        if options.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(options.resync_interval) => {}
            _ = shutdown_signal() => {
                tracing::info!("Stopping on signal");
                return Ok(());
            }
        }
    }
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
