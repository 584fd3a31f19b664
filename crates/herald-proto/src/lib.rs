//! Herald's wire types, shared by the server, the engine and the clients.
//!
//! Everything a client can see on the wire is defined here and nowhere else:
//! positions in the log ([`Offset`], [`Epoch`], [`ResumeToken`]), the event
//! envelope ([`Event`]), write acknowledgements ([`WriteAck`]) and the closed
//! set of error codes ([`ErrorCode`]).
//!
//! # Layout
//! - [`position`]: offsets, epochs, timestamps, versions and the resume token.
//! - [`event`]: the event envelope sent on every transport and stored in the log.
//! - [`message`]: WebSocket messages in both directions and close codes.
//! - [`room`]: room members, leave reasons, and the `join` and `broadcast`
//!   bodies.
//! - [`error`]: error codes and the JSON error body.

pub mod error;
pub mod event;
pub mod message;
pub mod position;
pub mod room;

pub use error::{ErrorBody, ErrorCode};
pub use event::{Event, EventBody, Op, WriteAck};
pub use message::{
    ClientMessage, CloseCode, LagPolicy, ServerMessage, StartFrom, Subscribe, SubscriptionInfo,
    Update,
};
pub use position::{Epoch, Offset, ResumeToken, Timestamp, Version};
pub use room::{Broadcast, Join, LeaveReason, Member};
