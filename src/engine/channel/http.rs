//! What every channel over HTTP shares: how a request that got no answer is classified, and
//! how long a 429 asks us to wait.

use super::ChannelError;
use std::time::Duration;

/// A request that got no answer: timeouts, refused or reset connections are all worth a retry;
/// a request that could not even be built is not.
pub(crate) fn transport(err: reqwest::Error) -> ChannelError {
    if err.is_builder() {
        return ChannelError::Permanent(format!("cannot build the request: {err}"));
    }
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    ChannelError::Transient(format!("{what}: {}", error_chain(&err)))
}

/// The same for a vendor that takes no idempotency key (Twilio): a request that never
/// connected did not leave and is retried, but once it may have reached the vendor (a timeout
/// waiting for the answer, a connection dropped mid-request) the outcome is unknown, and
/// sending again could send twice: [`ChannelError::Ambiguous`], which the sender records as
/// UNCERTAIN for an operator to resolve.
pub(crate) fn transport_unkeyed(err: reqwest::Error) -> ChannelError {
    if err.is_builder() || err.is_connect() {
        return transport(err);
    }
    let what = if err.is_timeout() { "no answer in time" } else { "the connection failed mid-request" };
    ChannelError::Ambiguous(format!("{what}, so the message may have been sent: {}", error_chain(&err)))
}

/// An error and its causes, joined with `: `.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `Retry-After` of an answer's headers in seconds, or `default` when it has none that
/// parses.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap, default: Duration) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(default, Duration::from_secs)
}
