//! Watch responses: a streaming body of newline-separated watch events, replayed from the
//! change history and then fed by the broadcast channel of the store.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::ResourceType;
use super::errors::ApiError;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Change, EventType, Signal, Store};

/// Which objects a watch reports.
pub struct WatchFilter {
    pub resource: ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl WatchFilter {
    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// Returns the event this watch sends for a change, if any. An object that starts matching the
    /// selectors is ADDED and one that stops matching is DELETED, as on a real server.
    fn event_for<'a>(&self, change: &'a Change) -> Option<(EventType, &'a Value)> {
        let key = &change.key;
        if key.api_version != self.resource.api_version() || key.plural != self.resource.plural {
            return None;
        }
        if self.namespace.is_some() && key.namespace != self.namespace {
            return None;
        }
        let matches_now = self.matches(&change.object);
        let matched_before = change.previous.as_ref().is_some_and(|previous| self.matches(previous));
        let event_type = match (change.event_type, matched_before, matches_now) {
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            (EventType::Deleted, _, true) => EventType::Deleted,
            _ => return None,
        };
        Some((event_type, &change.object))
    }
}

/// The query parameters of a watch request.
pub struct WatchOptions {
    /// `resourceVersion`. None or Some(0) starts with ADDED events for the current objects,
    /// and Some(n) sends every change after version n.
    pub resource_version: Option<u64>,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: the current objects, then a bookmark annotated
    /// `k8s.io/initial-events-end`, as a streaming list.
    pub send_initial_events: bool,
    /// `timeoutSeconds`. None or zero keeps the watch open until the client or an outage
    /// ends it.
    pub timeout: Option<Duration>,
}

/// An open watch. [`WatchStream::into_body`] turns it into a response body.
pub struct WatchStream {
    pending: VecDeque<String>,
    receiver: broadcast::Receiver<Signal>,
    filter: WatchFilter,
    deadline: Option<Instant>,
    bookmarks: bool,
    latest_version: u64,
    finished: bool,
    /// A clone of the token that counts the open watches of this path, dropped with the
    /// stream.
    _open_watch: Arc<()>,
}

impl WatchStream {
    /// Starts a watch. The caller keeps the lock on `store`, so no change can fall between
    /// the replay and the subscription.
    pub fn start(store: &Store, filter: WatchFilter, options: &WatchOptions, open_watch: Arc<()>) -> Self {
        let mut stream = WatchStream {
            pending: VecDeque::new(),
            receiver: store.changes.subscribe(),
            filter,
            deadline: options.timeout.filter(|timeout| !timeout.is_zero()).map(|timeout| Instant::now() + timeout),
            bookmarks: options.bookmarks,
            latest_version: store.resource_version,
            finished: false,
            _open_watch: open_watch,
        };

        match options.resource_version.filter(|version| *version != 0) {
            None => {
                let current: Vec<Value> = store
                    .select(
                        &stream.filter.resource,
                        stream.filter.namespace.as_deref(),
                        &stream.filter.labels,
                        &stream.filter.fields,
                    )
                    .map(|(_, object)| object.clone())
                    .collect();
                for object in &current {
                    stream.pending.push_back(event_line(EventType::Added.as_str(), object));
                }
                if options.send_initial_events {
                    let bookmark = stream.bookmark(json!({ "k8s.io/initial-events-end": "true" }));
                    stream.pending.push_back(bookmark);
                }
            }
            Some(version) if version < store.history_start => {
                let error = ApiError::resource_version_too_old(version, store.history_start);
                stream.pending.push_back(event_line("ERROR", &error.to_status()));
                stream.finished = true;
            }
            Some(version) => {
                for change in store.history.iter().filter(|change| change.resource_version > version) {
                    if let Some((event_type, object)) = stream.filter.event_for(change) {
                        stream.pending.push_back(event_line(event_type.as_str(), object));
                    }
                }
            }
        }
        stream
    }

    pub fn into_body(self) -> Body {
        let lines = futures::stream::unfold(self, |mut stream| async move {
            let line = stream.next_line().await?;
            Some((Ok::<_, Infallible>(line), stream))
        });
        Body::from_stream(lines)
    }

    async fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            if self.finished {
                return None;
            }

            let received = match self.deadline {
                Some(deadline) => tokio::select! {
                    received = self.receiver.recv() => Some(received),
                    () = tokio::time::sleep_until(deadline) => None,
                },
                None => Some(self.receiver.recv().await),
            };

            match received {
                // The timeout ended the watch. The watch cache of the API server (cacheWatcher
                // in k8s.io/apiserver) sends a bookmark 2 s before the deadline, so the client
                // resumes from it. NOTE: its bookmarks of about once a minute are not sent.
                None => {
                    if self.bookmarks {
                        let bookmark = self.bookmark(json!({}));
                        self.pending.push_back(bookmark);
                    }
                    self.finished = true;
                }
                Some(Ok(Signal::Change(change))) => {
                    self.latest_version = self.latest_version.max(change.resource_version);
                    if let Some((event_type, object)) = self.filter.event_for(&change) {
                        self.pending.push_back(event_line(event_type.as_str(), object));
                    }
                }
                // An outage, or a watch too slow for the channel: the stream ends as a dropped
                // connection would, and the client watches again from the last version it saw.
                Some(Ok(Signal::Disconnect) | Err(RecvError::Lagged(_) | RecvError::Closed)) => return None,
            }
        }
    }

    fn bookmark(&self, annotations: Value) -> String {
        let mut metadata = json!({ "resourceVersion": self.latest_version.to_string() });
        if annotations.as_object().is_some_and(|annotations| !annotations.is_empty()) {
            metadata["annotations"] = annotations;
        }
        let object = json!({
            "apiVersion": self.filter.resource.api_version(),
            "kind": self.filter.resource.kind,
            "metadata": metadata,
        });
        event_line("BOOKMARK", &object)
    }
}

fn event_line(event_type: &str, object: &Value) -> String {
    format!("{}\n", json!({ "type": event_type, "object": object }))
}
