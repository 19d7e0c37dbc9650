//! Parsers of the EventBridge messages that the SQS queue delivers.
//!
//! `classify` turns one message body into a `Classification`: a wake of named resources, an
//! ignored event or an invalid body. It makes no AWS or network calls and never panics. Events
//! are hints that narrow and speed up a reconcile, and the resync timer remains the guarantee.
//!
//! Handled kinds are listed once, in `EventKind::ALL`. The registry that picks a parser and the
//! EventBridge pattern from `event_pattern` are both built from that list.

mod classification;
mod envelope;
mod fields;
mod kind;
mod kinds;
mod pattern;
mod registry;

pub use classification::{Classification, EventScope, IgnoreReason, InvalidReason, WakeEvent};
pub use envelope::MAX_BODY_BYTES;
pub use kind::EventKind;
pub use pattern::event_pattern;

/// Classifies one SQS message body. Never panics, whatever the bytes.
pub fn classify(body: &[u8]) -> Classification {
    let result = envelope::parse_envelope(body).and_then(|envelope| registry::classify_envelope(&envelope));
    match result {
        Ok(classification) => classification,
        Err(malformed) => Classification::Invalid { reason: malformed.reason, detail: malformed.detail },
    }
}
