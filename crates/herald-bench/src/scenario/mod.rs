//! The scenarios, one module each, and what their clients share.

mod connections;
mod fanout;
mod helper;
mod publisher;
mod receivers;
mod resume;
mod rooms;
mod schedule;
mod subscriber;
mod tables;
mod writer;

pub use connections::{ConnectionsArgs, WorkerArgs, connections, worker};
pub use fanout::{FanoutArgs, fanout};
pub use receivers::{ReceiversArgs, receivers};
pub use resume::{ResumeArgs, resume};
pub use rooms::{RoomsArgs, rooms};
pub use tables::{TablesArgs, tables};
