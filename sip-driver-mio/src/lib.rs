//! The mio driver for [`sip_core`]: sockets, timers and DNS feeding the sans-IO core.
//!
//! Not written yet: this crate holds the workspace slot the driver issue fills. Until then it
//! only re-exports the core so the workspace layout is final.

pub use sip_core;
