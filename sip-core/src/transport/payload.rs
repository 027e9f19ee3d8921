//! Bytes waiting to be sent: a message shared with a transaction or the application, or
//! bytes the core wrote itself (ACK, pong, stateless answers).

use std::sync::Arc;

use crate::OwnedMessage;

/// A message or bytes queued for sending; cloning shares the bytes.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    Message(OwnedMessage),
    Bytes(Arc<[u8]>),
}

impl Payload {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Message(m) => m.as_bytes(),
            Payload::Bytes(b) => b,
        }
    }
}
