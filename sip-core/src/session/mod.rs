//! Placeholder for `sip_core::session` (owner: h-session) until its skeleton is merged:
//! only the types h-ext's submodules need, as the contract names them.
#![allow(dead_code)]

mod reliable;
mod timer;
mod update;

/// Reliable provisional responses (RFC 3262).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rel100 {
    /// Never.
    Disabled,
    /// When the peer requires it.
    Supported,
    /// Always.
    Required,
}

/// Session timer settings (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// Session-Expires asked for, in seconds.
    pub expires: u32,
    /// Min-SE, in seconds.
    pub min_se: u32,
}
