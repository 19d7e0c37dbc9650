//! Everything that talks to AWS, behind the narrow `Ec2` trait.

pub mod config;
pub mod ec2;
pub mod error;
pub mod fake;
pub mod instrumented;
pub mod model;
pub mod rate_limit;
pub mod retry;

/// Joins an error and its sources into one line, because the SDK's top-level messages
/// ("dispatch failure") hide the cause.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
