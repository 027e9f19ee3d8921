//! Stream framing must not depend on how the stream is split into reads.
//!
//! Input layout: byte 0 = `n`; the next `n % 16` bytes give chunk lengths (`b + 1`, used
//! cyclically); the rest is the stream. The stream is framed once whole and once fed chunk by
//! chunk into a growing buffer.
//!
//! Invariants: nothing panics; a `Message` frame uses `0 < used <= buffer length` bytes and
//! its view is exactly the first `used` bytes; both feedings give the same messages (byte for
//! byte) and end the same way (error or not).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::{Limits, MessageView, OwnedMessage, StreamFrame};

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// All bytes consumed, or a partial message left at the end.
    Clean,
    /// A framing error.
    Error,
}

/// Frames `buf` from the start as far as it goes; returns the bytes consumed.
fn drain(buf: &[u8], limits: &Limits, out: &mut Vec<Vec<u8>>) -> (usize, Option<End>) {
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        if rest.is_empty() {
            return (pos, None);
        }
        match MessageView::parse_stream(rest, limits) {
            Ok(StreamFrame::Message(view, used)) => {
                assert!(used > 0, "Message frame used 0 bytes");
                assert!(used <= rest.len(), "used {used} > buffer {}", rest.len());
                assert_eq!(view.as_bytes(), &rest[..used], "view is not the used prefix");
                let owned = OwnedMessage::from_view(&view);
                assert_eq!(owned.view().as_bytes(), view.as_bytes());
                let _ = owned.message();
                out.push(view.as_bytes().to_vec());
                pos += used;
            }
            Ok(StreamFrame::Ping) => {
                assert!(rest.len() >= 4, "Ping on {} bytes", rest.len());
                pos += 4;
            }
            Ok(StreamFrame::Pong) => {
                assert!(rest.len() >= 2, "Pong on {} bytes", rest.len());
                pos += 2;
            }
            Ok(StreamFrame::Partial) => return (pos, None),
            Err(_) => return (pos, Some(End::Error)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = (n % 16) as usize;
    if rest.len() < n {
        return;
    }
    let (lens, stream) = rest.split_at(n);
    let limits = Limits::DEFAULT;

    // All at once.
    let mut whole = Vec::new();
    let (_, end) = drain(stream, &limits, &mut whole);
    let whole_end = end.unwrap_or(End::Clean);

    // Chunk by chunk.
    let mut chunked = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut i = 0;
    let mut chunk_end = End::Clean;
    while fed < stream.len() {
        let len = lens.get(i % n.max(1)).map_or(stream.len(), |&b| b as usize + 1);
        i += 1;
        let next = (fed + len).min(stream.len());
        buf.extend_from_slice(&stream[fed..next]);
        fed = next;
        let (used, end) = drain(&buf, &limits, &mut chunked);
        buf.drain(..used);
        if let Some(e) = end {
            chunk_end = e;
            break;
        }
    }

    assert_eq!(whole.len(), chunked.len(), "different number of messages");
    for (a, b) in whole.iter().zip(&chunked) {
        assert!(a == b, "different message:\n{:?}\n{:?}", String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    }
    assert_eq!(whole_end, chunk_end, "framing ended differently");
});
