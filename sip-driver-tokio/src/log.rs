//! One tracing event per SIP message sent or received (method or status and reason,
//! Call-ID, peer, transport), emitted by the socket tasks.

use std::net::SocketAddr;

use sip_core::message::StartLine;
use sip_core::{HeaderName, Limits, MessageView, StreamFrame, Transport};
use tracing::Level;

/// The tracing target of the per-message events.
pub(crate) const TARGET: &str = "sip_driver_tokio::wire";

/// Which way a message went.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dir {
    Recv,
    Sent,
}

impl Dir {
    fn as_str(self) -> &'static str {
        match self {
            Dir::Recv => "recv",
            Dir::Sent => "sent",
        }
    }
}

pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: TARGET, Level::INFO)
}

/// Logs one whole message (a datagram, or a message framed off a stream).
pub(crate) fn message(
    dir: Dir,
    transport: Transport,
    local: SocketAddr,
    peer: SocketAddr,
    bytes: &[u8],
) {
    if !enabled() {
        return;
    }
    if bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) {
        tracing::debug!(
            target: TARGET,
            transport = transport.via_token(),
            %peer,
            %local,
            "{} keep-alive ({} bytes)",
            dir.as_str(),
            bytes.len()
        );
        return;
    }
    match MessageView::parse(bytes) {
        Ok(view) => view_event(dir, transport, local, peer, &view),
        Err(e) => tracing::info!(
            target: TARGET,
            transport = transport.via_token(),
            %peer,
            %local,
            bytes = bytes.len(),
            "{} unparsable message: {e}",
            dir.as_str()
        ),
    }
}

fn view_event(
    dir: Dir,
    transport: Transport,
    local: SocketAddr,
    peer: SocketAddr,
    view: &MessageView<'_>,
) {
    let what = match (view.method(), view.status()) {
        (Some(m), _) => m.as_str().to_owned(),
        (None, Some(code)) => code.to_string(),
        _ => "?".to_owned(),
    };
    let call_id = view.header(HeaderName::CallId).unwrap_or("");
    let cseq = view.header(HeaderName::CSeq).unwrap_or("");
    // A response's reason phrase (recorded as a string: formatters escape what a peer put
    // in it); none for a request.
    let reason = match view.start_line() {
        StartLine::Response { reason, .. } => Some(reason),
        StartLine::Request { .. } => None,
    };
    tracing::info!(
        target: TARGET,
        transport = transport.via_token(),
        %peer,
        %local,
        call_id,
        cseq,
        reason,
        bytes = view.as_bytes().len(),
        "{} {what}",
        dir.as_str()
    );
    // The whole message, at TRACE (`sipc -v` prints the ones it receives).
    if tracing::enabled!(target: TARGET, Level::TRACE) {
        let text = String::from_utf8_lossy(view.as_bytes());
        tracing::trace!(target: TARGET, text = %text, "{} message", dir.as_str());
    }
}

/// Frames what arrives on a stream a second time, only to log each message (the endpoint
/// does the real framing). Costs nothing while the events are disabled.
#[derive(Debug, Default)]
pub(crate) struct StreamLog {
    buf: Vec<u8>,
}

impl StreamLog {
    pub(crate) fn feed(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
    ) {
        if !enabled() {
            self.buf.clear();
            return;
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while at < self.buf.len() {
            match MessageView::parse_stream(&self.buf[at..], &Limits::DEFAULT) {
                Ok(StreamFrame::Message(view, used)) => {
                    view_event(Dir::Recv, transport, local, peer, &view);
                    at += used;
                }
                Ok(StreamFrame::Ping) => {
                    message(Dir::Recv, transport, local, peer, b"\r\n\r\n");
                    at += 4;
                }
                Ok(StreamFrame::Pong) => at += 2,
                Ok(StreamFrame::Partial) => break,
                Err(_) => {
                    at = self.buf.len();
                }
            }
        }
        self.buf.drain(..at);
    }
}
