//! The one error type of the crate.

use herald_proto::{ErrorCode, Offset, ResumeToken};
use std::time::Duration;
use tokio_tungstenite::tungstenite;

/// Everything that can go wrong between the application and the server.
///
/// Expected conditions each have their own variant, so applications can match
/// on them: a request the server refused is [`ClientError::Server`], an answer
/// lost with its connection is [`ClientError::ConnectionLost`], and so on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is not `http://`, `https://`, `ws://` or `wss://` with a host.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The WebSocket connection could not be opened (refused, HTTP error
    /// status such as 401, TLS not compiled in, ...).
    #[error("could not connect to {url}: {source}")]
    Connect {
        /// The WebSocket URL that was dialled.
        url: String,
        /// Why it failed.
        #[source]
        source: tungstenite::Error,
    },
    /// The server answered a request with an `error` message.
    #[error("server refused the request ({}): {message}", code.as_str())]
    Server {
        /// The machine-readable reason.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
        /// For [`ErrorCode::UnrecoverablePosition`]: the earliest offset the
        /// server can still replay from.
        earliest: Option<Offset>,
    },
    /// The connection dropped after the request was sent and before its answer
    /// arrived. The request may or may not have taken effect; the client does
    /// not send it again.
    #[error("the connection was lost before the answer arrived")]
    ConnectionLost,
    /// The client was closed (by [`Client::close`](crate::Client::close) or
    /// because every handle was dropped).
    #[error("the client is closed")]
    Closed,
    /// No answer arrived in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server sent something the protocol does not allow here.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A message is larger than the server accepts (`max_message_bytes` of
    /// its `welcome`); it was not sent.
    #[error("message of {size} bytes exceeds the server's limit of {limit} bytes")]
    MessageTooBig {
        /// The serialized message's size.
        size: usize,
        /// The server's limit.
        limit: usize,
    },
    /// The application did not read a subscription's stream fast enough and
    /// its buffer filled up; the subscription was ended. Subscribe again from
    /// `resume_from` to continue without a gap.
    #[error(
        "subscription buffer overflowed (resume from {})",
        DisplayOpt(resume_from)
    )]
    Overflow {
        /// The position of the last item delivered before this error.
        resume_from: Option<ResumeToken>,
    },
}

impl ClientError {
    /// The server's error code, if the server refused the request.
    #[must_use]
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Shows `None` as `the start`, for the `Overflow` message.
struct DisplayOpt<'a>(&'a Option<ResumeToken>);

impl std::fmt::Display for DisplayOpt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(token) => token.fmt(f),
            None => f.write_str("the start"),
        }
    }
}
