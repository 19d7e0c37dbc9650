//! The SQS consumer: EventBridge messages become narrow reconciles.
//!
//! A message is deleted once its work is done, and also when it can never succeed (not JSON,
//! not an EventBridge envelope, an unhandled kind, a failed API call). It stays in the queue
//! when its work failed for a transient reason, so that SQS delivers it again and the queue's
//! redrive policy can move it to a dead-letter queue. Messages received together coalesce
//! into one source pass; duplicates and out-of-order deliveries are harmless because every
//! pass reads current state before it writes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};
use tokio::sync::watch;

use crate::apply::ApplyOutcome;
use crate::aws::ec2::Ec2;
use crate::engine::{Engine, Mode};
use crate::events::{Classification, EventKind, WakeEvent, classify};
use crate::inventory::SourceScope;
use crate::metrics::Metrics;
use crate::policy::MirrorPolicy;
use crate::report::{PolicyOutcome, PolicyReport};

/// Loads the current policies; standalone mode reads files, Kubernetes mode its cache.
pub type PolicySource = Arc<dyn Fn() -> anyhow::Result<Vec<MirrorPolicy>> + Send + Sync>;

/// Settings of the consumer.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    pub queue_url: String,
    /// Receive loops running at once.
    pub workers: usize,
    /// Long-poll wait of one receive, at most 20 seconds.
    pub wait_time: Duration,
    /// Pause after a failed receive, so an unreachable queue is not polled in a tight loop.
    pub receive_error_backoff: Duration,
}

impl ConsumerOptions {
    pub fn new(queue_url: impl Into<String>) -> Self {
        ConsumerOptions {
            queue_url: queue_url.into(),
            workers: 2,
            wait_time: Duration::from_secs(20),
            receive_error_backoff: Duration::from_secs(5),
        }
    }
}

/// The fate of the messages of one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub deleted: usize,
    /// Messages left in the queue for redelivery after a transient failure.
    pub kept: usize,
    pub ignored: usize,
    pub invalid: usize,
    /// Sessions created, repaired and deleted by the passes the batch woke.
    pub writes: usize,
}

/// Consumes one queue with a few workers until `stop` turns true.
pub struct Consumer<E> {
    sqs: aws_sdk_sqs::Client,
    engine: Arc<Engine<E>>,
    policies: PolicySource,
    options: ConsumerOptions,
}

/// One received message and its classification.
struct Received {
    receipt_handle: String,
    message_id: String,
    classification: Classification,
}

impl<E: Ec2 + 'static> Consumer<E> {
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        engine: Arc<Engine<E>>,
        policies: PolicySource,
        options: ConsumerOptions,
    ) -> Self {
        Consumer { sqs, engine, policies, options }
    }

    fn metrics(&self) -> &Metrics {
        &self.engine.metrics
    }

    /// Runs the workers until `stop` turns true. A worker finishes its current batch before it
    /// stops, so no message is left half handled.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut workers = Vec::new();
        for worker in 0..self.options.workers.max(1) {
            let consumer = Arc::clone(&self);
            let mut stop = stop.clone();
            workers.push(tokio::spawn(async move {
                tracing::info!(worker, queue_url = %consumer.options.queue_url, "Consuming events");
                while !*stop.borrow() {
                    // Only the wait for messages is cut short by a stop: a received batch is
                    // always handled to the end.
                    let messages = tokio::select! {
                        _ = stop.changed() => break,
                        messages = consumer.receive() => messages,
                    };
                    consumer.handle_batch(&messages).await;
                }
            }));
        }
        for worker in workers {
            let _ = worker.await;
        }
    }

    /// Receives one batch (long poll, up to 10 messages) and handles it.
    pub async fn receive_and_handle(&self) -> BatchOutcome {
        let messages = self.receive().await;
        self.handle_batch(&messages).await
    }

    /// Receives up to 10 messages with a long poll. A failed receive is logged and followed by
    /// a pause, and yields no message.
    async fn receive(&self) -> Vec<Message> {
        let wait_seconds = self.options.wait_time.as_secs().min(20) as i32;
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.options.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_seconds)
            .send()
            .await;
        match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(error) => {
                tracing::error!(queue_url = %self.options.queue_url, error = %crate::aws::error_chain(&error), "Failed to receive messages; retrying");
                self.metrics().record_aws_call("ReceiveMessage", "error");
                tokio::time::sleep(self.options.receive_error_backoff).await;
                Vec::new()
            }
        }
    }

    /// Handles messages received together: classify each, run one coalesced pass for all the
    /// wake events, then delete what is done or hopeless and keep what failed transiently.
    pub async fn handle_batch(&self, messages: &[Message]) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        if messages.is_empty() {
            return outcome;
        }
        self.metrics().record_aws_call("ReceiveMessage", "success");
        let received_at = SystemTime::now();
        let batch: Vec<Received> = messages
            .iter()
            .filter_map(|m| {
                Some(Received {
                    receipt_handle: m.receipt_handle()?.to_string(),
                    message_id: m.message_id().unwrap_or_default().to_string(),
                    classification: classify(m.body().unwrap_or_default().as_bytes()),
                })
            })
            .collect();

        let mut done = Vec::new();
        let mut wakes = Vec::new();
        for message in &batch {
            match &message.classification {
                Classification::Wake(event) => {
                    self.metrics().event_messages_received.with_label_values(&[event.kind.as_str()]).inc();
                    if let Some(seconds) = age_seconds(event.time.as_deref(), received_at) {
                        self.metrics().event_queue_seconds.observe(seconds);
                    }
                    wakes.push((message, event));
                }
                Classification::Ignored { kind, reason } => {
                    let kind = kind.map(|k| k.as_str()).unwrap_or("Unhandled");
                    self.metrics().event_messages_received.with_label_values(&[kind]).inc();
                    self.metrics().event_messages_ignored.with_label_values(&[reason.as_str()]).inc();
                    tracing::debug!(message_id = %message.message_id, reason = reason.as_str(), "Ignored event");
                    outcome.ignored += 1;
                    done.push(message);
                }
                Classification::Invalid { reason, detail } => {
                    self.metrics().event_messages_received.with_label_values(&["Invalid"]).inc();
                    self.metrics().event_messages_invalid.with_label_values(&[reason.as_str()]).inc();
                    tracing::warn!(message_id = %message.message_id, reason = reason.as_str(), detail = %detail, "Deleting a message that can never be handled");
                    outcome.invalid += 1;
                    done.push(message);
                }
            }
        }

        if !wakes.is_empty() {
            let events: Vec<&WakeEvent> = wakes.iter().map(|(_, event)| *event).collect();
            match self.reconcile_events(&events).await {
                Ok(writes) => {
                    outcome.writes = writes;
                    if writes > 0 {
                        let healed_at = SystemTime::now();
                        for event in &events {
                            if let Some(seconds) =
                                age_seconds(event.event_time.as_deref().or(event.time.as_deref()), healed_at)
                            {
                                self.metrics().heal_latency_seconds.observe(seconds);
                            }
                        }
                    }
                    done.extend(wakes.iter().map(|(message, _)| *message));
                }
                Err(error) => {
                    let ids: Vec<&str> = wakes.iter().map(|(m, _)| m.message_id.as_str()).collect();
                    tracing::warn!(message_ids = ?ids, error = %error, "Event work failed; the messages stay for redelivery");
                    self.metrics().event_messages_failed.inc_by(wakes.len() as u64);
                    outcome.kept = wakes.len();
                }
            }
        }

        outcome.deleted = self.delete(&done).await;
        outcome
    }

    /// Resolves the events to sources and policies and runs the passes they need. Returns the
    /// number of writes, or an error when any part failed for a reason worth a redelivery.
    pub async fn reconcile_events(&self, events: &[&WakeEvent]) -> anyhow::Result<usize> {
        let policies = (self.policies)()?;
        let mut sources = SourceScope::default();
        let mut changed_targets = BTreeSet::new();
        let mut changed_filters = BTreeSet::new();
        for event in events {
            let scope = &event.scope;
            if event.kind == EventKind::DeleteTrafficMirrorSession {
                // Deleted for sure, since failed calls wake nothing: a session created moments
                // ago that Describe does not show yet must not count as mirroring any more.
                for session_id in &scope.session_ids {
                    self.engine.session_deleted(session_id);
                }
            }
            sources.instance_ids.extend(scope.instance_ids.iter().cloned());
            sources.network_interface_ids.extend(scope.network_interface_ids.iter().cloned());
            {
                let index = self.engine.index.lock().expect("session index lock is not poisoned");
                for session_id in &scope.session_ids {
                    // An unknown id changes nothing until the next resync: it is not ours, or it
                    // was created and deleted between two inventories.
                    if let Some(owner) = index.owner_of(session_id) {
                        sources.network_interface_ids.insert(owner.network_interface_id.clone());
                    }
                }
            }
            {
                let attachments = self.engine.attachments.lock().expect("attachment index lock is not poisoned");
                for attachment_id in &scope.attachment_ids {
                    if let Some(interface) = attachments.interface_of(attachment_id) {
                        sources.network_interface_ids.insert(interface.to_string());
                    }
                }
            }
            changed_targets.extend(scope.target_ids.iter().cloned());
            changed_filters.extend(scope.filter_ids.iter().cloned());
        }

        let mut writes = 0;
        let affected: Vec<MirrorPolicy> = policies
            .iter()
            .filter(|p| changed_targets.contains(&p.spec.target.id) || changed_filters.contains(&p.spec.filter.id))
            .cloned()
            .collect();
        if !affected.is_empty() {
            // A deleted target or filter changes what every source of the policy can get, so
            // those policies get a region pass, which also refreshes the cached catalog.
            let reports = self.engine.reconcile(&affected, Mode::Apply).await?;
            writes += check_reports(&reports)?;
        }
        if !sources.is_empty() {
            let reports = self.engine.reconcile_sources(&policies, &sources, Mode::Apply).await?;
            writes += check_reports(&reports)?;
        }
        Ok(writes)
    }

    /// Deletes handled messages in batches of ten, the SQS maximum, and returns how many went.
    async fn delete(&self, messages: &[&Received]) -> usize {
        let mut deleted = 0;
        for chunk in messages.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(index, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(&m.receipt_handle)
                        .build()
                        .ok()
                })
                .collect();
            let result = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.options.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Ok(output) => {
                    self.metrics().record_aws_call("DeleteMessageBatch", "success");
                    for failure in output.failed() {
                        tracing::warn!(code = failure.code(), message = ?failure.message(), "Failed to delete a message; SQS delivers it again");
                    }
                    let count = output.successful().len();
                    self.metrics().event_messages_deleted.inc_by(count as u64);
                    deleted += count;
                }
                Err(error) => {
                    self.metrics().record_aws_call("DeleteMessageBatch", "error");
                    tracing::warn!(error = %crate::aws::error_chain(&error), "Failed to delete messages; SQS delivers them again");
                }
            }
        }
        deleted
    }
}

/// Counts the writes of a pass, and fails when a write failed for a reason that a later
/// attempt can fix, so that the messages stay for redelivery.
fn check_reports(reports: &[PolicyReport]) -> anyhow::Result<usize> {
    let mut writes = 0;
    for report in reports {
        if let PolicyOutcome::Reconciled { applied: Some(applied), .. } = &report.outcome {
            if applied.has_retryable_failure() {
                anyhow::bail!("policy {}: {}", report.policy, first_failure(applied));
            }
            writes += applied.created.len() + applied.repaired.len() + applied.deleted.len();
        }
    }
    Ok(writes)
}

fn first_failure(applied: &ApplyOutcome) -> String {
    applied
        .failed
        .first()
        .map(|f| format!("{} on {}: {}", f.reason, f.source.network_interface_id, f.detail))
        .or_else(|| applied.failed_deletes.first().map(|(d, e)| format!("delete of {} failed: {e}", d.session_id)))
        .unwrap_or_else(|| "a write failed".to_string())
}

/// Returns the seconds from an RFC 3339 time to `now`, or `None` when the time is missing,
/// invalid or in the future.
fn age_seconds(time: Option<&str>, now: SystemTime) -> Option<f64> {
    let then: SystemTime = humantime::parse_rfc3339_weak(time?).ok()?;
    now.duration_since(then).ok().map(|d| d.as_secs_f64())
}
