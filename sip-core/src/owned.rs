//! An owned message for what outlives the input (transactions, dialogs): one shared byte
//! buffer plus the spans the parse found, not a tree of strings. Cloning is a reference-count
//! increment; getting a view back does not re-frame the message.

use std::sync::Arc;

use crate::message::view::Layout;
use crate::{Limits, Message, MessageView, ParseError};

/// A message that owns its bytes. See the module docs.
#[derive(Debug, Clone)]
pub struct OwnedMessage {
    buf: Arc<[u8]>,
    layout: Arc<Layout>,
}

impl OwnedMessage {
    /// Copies the bytes of a view (start line to end of body) into a shared buffer.
    pub fn from_view(view: &MessageView<'_>) -> OwnedMessage {
        OwnedMessage {
            buf: Arc::from(view.as_bytes()),
            layout: Arc::new(Layout::clone(&view.layout)),
        }
    }

    /// Parses a datagram and keeps it (default [`Limits`]).
    pub fn parse(data: &[u8]) -> Result<OwnedMessage, ParseError> {
        Ok(Self::from_view(&MessageView::parse(data)?))
    }

    /// Parses a datagram with the given limits, checks every known header types correctly,
    /// and keeps it.
    pub fn parse_typed(data: &[u8], limits: &Limits) -> Result<OwnedMessage, ParseError> {
        let m = Message::parse_with(data, limits)?;
        Ok(Self::from_view(m.view()))
    }

    /// The borrowed view over the owned bytes.
    pub fn view(&self) -> MessageView<'_> {
        let head_end = self.layout.head_end as usize;
        // The header section was checked to be UTF-8 when this message was made, so this
        // conversion cannot fail; an empty head would only make every span read as empty.
        // (It costs one ASCII pass over the head; the spans themselves are borrowed.)
        let head = std::str::from_utf8(self.buf.get(..head_end).unwrap_or(&[])).unwrap_or("");
        MessageView {
            head,
            bytes: &self.buf,
            layout: std::borrow::Cow::Borrowed(&self.layout),
        }
    }

    /// The message with every known header typed.
    pub fn message(&self) -> Result<Message<'_>, ParseError> {
        Message::from_view(self.view(), &Limits::DEFAULT)
    }

    /// The message's bytes as received or built.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

impl OwnedMessage {
    /// The shared buffer, for queueing the bytes without copying them.
    pub(crate) fn shared_bytes(&self) -> Arc<[u8]> {
        Arc::clone(&self.buf)
    }
}
