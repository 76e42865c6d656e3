//! The campaign pipeline: expander → sender → aggregator over the bus, and the sending policies
//! applied around every channel (`limits`). Each worker is a long-running loop that takes a
//! [`worker::Shutdown`] signal; any number of each kind may run at once, in one process or many
//! (they compete for the same bus groups, and every step is idempotent).

pub mod aggregator;
pub mod expander;
pub mod launch;
pub mod limits;
pub mod replies;
pub mod sender;
pub mod webhook;
pub mod worker;
