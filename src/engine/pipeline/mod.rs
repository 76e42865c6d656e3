//! The campaign pipeline: expander → sender → aggregator over the bus, and the sending policies
//! applied around every channel (`limits`).

pub mod limits;
