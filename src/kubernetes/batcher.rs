//! Batching of policy reconciles into shared region passes.
//!
//! The kube-runtime controller reconciles one object at a time, but N policies must not cost N
//! region-wide sweeps. Each reconcile requests its policy's result from the batcher, which
//! gathers the requests that arrive within a short window and serves them all from one pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::aws::ec2::Ec2;
use crate::aws::error::ErrorKind;
use crate::engine::{Engine, Mode};
use crate::policy::MirrorPolicy;
use crate::report::PolicyReport;

/// A pass that failed before it produced a report, for example because EC2 was unreachable.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct PassError {
    /// True when AWS throttled the pass, so that the status reports throttling.
    pub throttled: bool,
    pub message: String,
}

struct Request {
    policy: Arc<MirrorPolicy>,
    reply: oneshot::Sender<Result<PolicyReport, PassError>>,
}

/// A handle to the batching task; cloning it shares the task.
#[derive(Clone)]
pub struct PassBatcher {
    requests: mpsc::UnboundedSender<Request>,
}

impl PassBatcher {
    /// Starts the batching task on the current runtime.
    pub fn start<E: Ec2 + 'static>(engine: Arc<Engine<E>>, window: Duration) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_batches(engine, window, receiver));
        PassBatcher { requests }
    }

    /// Reconciles the policy in the next region pass and returns its report.
    pub async fn reconcile(&self, policy: Arc<MirrorPolicy>) -> Result<PolicyReport, PassError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || PassError { throttled: false, message: "the reconcile task stopped".to_string() };
        self.requests.send(Request { policy, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run_batches<E: Ec2>(engine: Arc<Engine<E>>, window: Duration, mut receiver: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = receiver.recv().await {
        tokio::time::sleep(window).await;
        let mut batch = vec![first];
        while let Ok(request) = receiver.try_recv() {
            batch.push(request);
        }

        // The newest copy of each policy wins, and every requester gets the result.
        let mut policies: BTreeMap<String, MirrorPolicy> = BTreeMap::new();
        for request in &batch {
            policies.insert(request.policy.policy_name().to_string(), (*request.policy).clone());
        }
        let policies: Vec<MirrorPolicy> = policies.into_values().collect();
        match engine.reconcile(&policies, Mode::Apply).await {
            Ok(reports) => {
                for request in batch {
                    let name = request.policy.policy_name();
                    let report = reports.iter().find(|r| r.policy == name).cloned().ok_or_else(|| PassError {
                        throttled: false,
                        message: format!("the pass returned no report for policy {name}"),
                    });
                    let _ = request.reply.send(report);
                }
            }
            Err(error) => {
                let failure = PassError { throttled: error.kind == ErrorKind::Throttled, message: error.to_string() };
                for request in batch {
                    let _ = request.reply.send(Err(failure.clone()));
                }
            }
        }
    }
}
