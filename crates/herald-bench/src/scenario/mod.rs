//! The scenarios, one module each.

mod connections;
mod fanout;
mod resume;
mod subscriber;
mod tables;
mod writer;

pub use connections::{ConnectionsArgs, WorkerArgs, connections, worker};
pub use fanout::{FanoutArgs, fanout};
pub use resume::{ResumeArgs, resume};
pub use tables::{TablesArgs, tables};
