//! Stream framing that remembers where it stopped (RFC 3261 section 18.3, RFC 5626 section
//! 3.5.1): messages are cut out of a byte stream by Content-Length, across any split into
//! reads.
//!
//! Re-framing the buffered prefix of a message on every read costs the square of its length
//! when a peer sends it a byte at a time (a 60 KiB message took about a second of CPU). So
//! the framer keeps what it learnt between reads: while the header section is incomplete,
//! the buffer is known to hold no empty line and only the new bytes are searched for one;
//! once it is complete, the message's length is known and nothing is framed again until
//! that many bytes are there. Every byte is then searched, copied and parsed a bounded
//! number of times, whatever the split. Bytes are copied only when a message is split
//! across reads; a message that arrives whole is framed in place.

use memchr::memmem;

use crate::budget::Budget;
use crate::message::{MessageView, StreamFrame};
use crate::{ErrorKind, Limits, ParseError};

/// A buffer up to this size is kept for the next partial message; a larger one is freed once
/// its message is delivered (a flow that carried one 60 KB message does not keep 60 KB).
const KEEP_CAPACITY: usize = 4096;

/// The smallest buffer allocated for a partial message.
const MIN_CAPACITY: usize = 256;

/// The empty line that ends a header section (after the CRLF of the last header line).
const HEAD_END: &[u8; 4] = b"\r\n\r\n";

/// What the next call of [`Framer::next`] found.
// The view is returned by value on purpose: boxing it would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Frame<'a> {
    /// A whole message.
    Message(MessageView<'a>),
    /// A keep-alive ping (CRLFCRLF): answer with a pong.
    Ping,
    /// A lone CRLF: a pong, or a CRLF before a start line (RFC 3261 section 7.5).
    Pong,
    /// Input went into the buffer and more may follow: call again.
    Buffered,
    /// Every byte of the input is taken; what does not make a message yet is buffered.
    Done,
}

/// Why framing stopped for good: the flow must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The stream cannot be framed (no Content-Length, too large, garbage).
    Invalid(ParseError),
    /// The partial message needs more buffer than the byte budget has left.
    OverBudget,
}

/// How much work framing did, for the tests that hold it linear.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FramingWork {
    /// Bytes handed to the message parser.
    pub(crate) parsed: u64,
    /// Bytes searched for the end of a header section.
    pub(crate) searched: u64,
    /// Bytes copied into the buffer.
    pub(crate) copied: u64,
}

/// The framing state of one stream: the start of a message not yet complete, and what is
/// known about it.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    /// The partial message; it never holds bytes beyond that message. When it starts with
    /// a CR, it holds the start of a keep-alive (CR, CRLF or CRLFCR) and nothing else.
    buf: Vec<u8>,
    /// The message's whole length, once its header section is complete. While it is not,
    /// `buf` holds no empty line.
    need: Option<usize>,
    /// How far into the current read's input framing has got.
    at: usize,
    /// The buffer's length when its incomplete header section was last parsed (see
    /// [`Framer::check_early`]).
    checked: usize,
    /// `buf` holds the message returned by the last call: cleared on the next one.
    delivered: bool,
    /// Bytes of the budget this framer holds (the buffer's capacity).
    charged: usize,
    work: FramingWork,
}

impl Framer {
    /// The next message, keep-alive or step in `data`, the input of the current read. Call
    /// until it returns [`Frame::Done`] (or an error), with the same `data` each time; the
    /// next read starts afresh.
    pub(crate) fn next<'b>(
        &'b mut self,
        data: &'b [u8],
        limits: &Limits,
        budget: &mut Budget,
    ) -> Result<Frame<'b>, FrameError> {
        if self.delivered {
            self.delivered = false;
            self.clear(budget);
        }
        let rest = data.get(self.at..).unwrap_or(&[]);
        if rest.is_empty() {
            self.at = 0;
            return Ok(Frame::Done);
        }
        if self.buf.is_empty() {
            return self.frame_input(rest, limits, budget);
        }
        if self.buf[0] == b'\r' {
            return self.finish_keepalive(rest, limits, budget);
        }
        match self.need {
            Some(total) => {
                let take = total.saturating_sub(self.buf.len()).min(rest.len());
                self.append(&rest[..take], limits, budget)?;
                self.at += take;
                if self.buf.len() < total {
                    self.at = 0;
                    return Ok(Frame::Done);
                }
                self.frame_buffer(limits)
            }
            None => {
                let found = head_end_across(&self.buf, rest);
                self.work.searched += found.unwrap_or(rest.len()) as u64;
                match found {
                    None => {
                        if self.buf.len() + rest.len() >= limits.max_message_size {
                            return Err(FrameError::Invalid(ParseError::new(
                                ErrorKind::TooLarge,
                                limits.max_message_size,
                            )));
                        }
                        self.append(rest, limits, budget)?;
                        self.at = 0;
                        self.check_early(limits)?;
                        Ok(Frame::Done)
                    }
                    Some(n) => {
                        self.append(&rest[..n], limits, budget)?;
                        self.at += n;
                        self.frame_buffer(limits)
                    }
                }
            }
        }
    }

    /// Does a partial message wait for more bytes? (The start of a keep-alive is not one.)
    pub(crate) fn holds_partial(&self) -> bool {
        !self.delivered && !self.buf.is_empty() && !HEAD_END.starts_with(&self.buf)
    }

    /// Does the stream end, for now, with a lone CRLF: a pong, or the first half of a
    /// ping (RFC 5626 section 3.5.1), which only the next bytes tell apart?
    pub(crate) fn holds_crlf(&self) -> bool {
        !self.delivered && self.buf.as_slice() == b"\r\n"
    }

    /// Bytes of the budget this framer holds.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn held(&self) -> usize {
        self.charged
    }

    /// The work done so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn work(&self) -> FramingWork {
        self.work
    }

    /// Gives the buffer back to the budget (the flow is gone).
    pub(crate) fn release(self, budget: &mut Budget) {
        budget.release_stream(self.charged);
    }

    /// Frames straight from the input: nothing is buffered, so a whole message is viewed in
    /// place and only a partial tail is copied.
    fn frame_input<'d>(
        &mut self,
        rest: &'d [u8],
        limits: &Limits,
        budget: &mut Budget,
    ) -> Result<Frame<'d>, FrameError> {
        if rest.len() < 4 && HEAD_END.starts_with(rest) {
            // The start of a ping, or a pong: the next bytes tell.
            self.append(rest, limits, budget)?;
            self.at = 0;
            return Ok(Frame::Done);
        }
        let (frame, total) =
            MessageView::parse_stream_sized(rest, limits).map_err(FrameError::Invalid)?;
        Ok(match frame {
            StreamFrame::Message(view, used) => {
                self.work.parsed += used as u64;
                self.at += used;
                Frame::Message(view)
            }
            StreamFrame::Ping => {
                self.at += 4;
                Frame::Ping
            }
            StreamFrame::Pong => {
                self.at += 2;
                Frame::Pong
            }
            StreamFrame::Partial => {
                // The parse went through every line of `rest`: no header section ends in
                // it unless `total` says how long the message is.
                self.work.parsed += rest.len() as u64;
                self.need = total;
                self.checked = rest.len();
                self.append(rest, limits, budget)?;
                self.at = 0;
                Frame::Done
            }
        })
    }

    /// The buffer holds a whole header section: parse it. A message without a body (or
    /// whose body is there) is returned; otherwise its length is remembered.
    fn frame_buffer(&mut self, limits: &Limits) -> Result<Frame<'_>, FrameError> {
        self.work.parsed += self.buf.len() as u64;
        let (frame, total) =
            MessageView::parse_stream_sized(&self.buf, limits).map_err(FrameError::Invalid)?;
        match frame {
            StreamFrame::Message(view, used) => {
                // The buffer ends where the message does: at the first empty line, or at
                // the length its header section gave.
                debug_assert_eq!(used, self.buf.len());
                self.delivered = true;
                Ok(Frame::Message(view))
            }
            StreamFrame::Partial => {
                self.need = total;
                Ok(Frame::Buffered)
            }
            // The buffer does not start with a CR here (see `buf`).
            StreamFrame::Ping | StreamFrame::Pong => Err(FrameError::Invalid(ParseError::new(
                ErrorKind::InvalidLineEnding,
                0,
            ))),
        }
    }

    /// The buffer holds the start of a keep-alive (CR, CRLF or CRLFCR): with the next bytes
    /// it is a ping or a pong, decided as if the stream had come in one read.
    fn finish_keepalive<'d>(
        &mut self,
        rest: &[u8],
        limits: &Limits,
        budget: &mut Budget,
    ) -> Result<Frame<'d>, FrameError> {
        let have = self.buf.len();
        let k = rest.len().min(4 - have);
        let mut bytes = [0; 4];
        bytes[..have].copy_from_slice(&self.buf);
        bytes[have..have + k].copy_from_slice(&rest[..k]);
        let bytes = &bytes[..have + k];
        self.work.parsed += bytes.len() as u64;
        if bytes.len() < 4 && HEAD_END.starts_with(bytes) {
            self.append(rest, limits, budget)?;
            self.at = 0;
            return Ok(Frame::Done);
        }
        let frame = MessageView::parse_stream(bytes, limits).map_err(FrameError::Invalid)?;
        let used = match frame {
            StreamFrame::Ping => 4,
            StreamFrame::Pong => 2,
            _ => {
                return Err(FrameError::Invalid(ParseError::new(
                    ErrorKind::InvalidLineEnding,
                    0,
                )))
            }
        };
        if used >= have {
            self.buf.clear();
            self.at += used - have;
        } else {
            // CRLFCR then something else: a pong, and the CR starts what follows.
            self.buf.drain(..used);
        }
        Ok(if used == 4 { Frame::Ping } else { Frame::Pong })
    }

    /// Parses an incomplete header section again each time it has doubled, so that garbage,
    /// too many headers or an overlong line close the flow without waiting for the end of
    /// the header section or the size limit, at a cost linear in the length.
    fn check_early(&mut self, limits: &Limits) -> Result<(), FrameError> {
        if self.buf.len() < (2 * self.checked).max(MIN_CAPACITY) {
            return Ok(());
        }
        self.checked = self.buf.len();
        self.work.parsed += self.buf.len() as u64;
        match MessageView::parse_stream_sized(&self.buf, limits) {
            Ok(_) => Ok(()),
            Err(e) => Err(FrameError::Invalid(e)),
        }
    }

    /// Appends to the buffer, growing it (geometrically, up to the message's length or the
    /// size limit) only when the budget allows.
    fn append(
        &mut self,
        bytes: &[u8],
        limits: &Limits,
        budget: &mut Budget,
    ) -> Result<(), FrameError> {
        let needed = self.buf.len() + bytes.len();
        if needed > self.buf.capacity() {
            let ceiling = self.need.unwrap_or(limits.max_message_size).max(needed);
            let target = (self.buf.capacity() * 2)
                .max(MIN_CAPACITY)
                .max(needed)
                .min(ceiling);
            if !budget.fits_stream(target.saturating_sub(self.charged)) {
                return Err(FrameError::OverBudget);
            }
            self.buf.reserve_exact(target - self.buf.len());
            budget.charge_stream(self.buf.capacity().saturating_sub(self.charged));
            self.charged = self.charged.max(self.buf.capacity());
        }
        self.buf.extend_from_slice(bytes);
        self.work.copied += bytes.len() as u64;
        Ok(())
    }

    /// Forgets the delivered message; a large buffer goes back to the allocator and the
    /// budget.
    fn clear(&mut self, budget: &mut Budget) {
        self.buf.clear();
        self.need = None;
        self.checked = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
            budget.release_stream(self.charged);
            self.charged = 0;
        }
    }
}

/// Where the first empty line ends, as a count of bytes of `rest`, when the header section
/// in `buf` (which holds none) continues with `rest`. The terminator may start in `buf`.
fn head_end_across(buf: &[u8], rest: &[u8]) -> Option<usize> {
    let tail = &buf[buf.len().saturating_sub(3)..];
    // The earliest match first: the more of it in `buf`, the earlier it starts.
    for k in (1..=tail.len()).rev() {
        if tail.ends_with(&HEAD_END[..k]) && rest.starts_with(&HEAD_END[k..]) {
            return Some(4 - k);
        }
    }
    memmem::find(rest, HEAD_END).map(|p| p + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body_len: usize) -> Vec<u8> {
        let mut m = format!(
            "MESSAGE sip:bob@127.0.0.2 SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.1>;tag=a1\r\n\
             To: <sip:bob@127.0.0.2>\r\n\
             Call-ID: c1\r\n\
             CSeq: 1 MESSAGE\r\n\
             Content-Type: text/plain\r\n\
             Content-Length: {body_len}\r\n\r\n"
        )
        .into_bytes();
        m.resize(m.len() + body_len, b'x');
        m
    }

    /// Feeds `stream` in reads of `split` bytes; returns the messages and pings seen.
    fn feed(framer: &mut Framer, stream: &[u8], split: usize) -> (Vec<Vec<u8>>, usize) {
        let limits = Limits::DEFAULT;
        let mut budget = Budget::new(usize::MAX);
        let mut messages = Vec::new();
        let mut pings = 0;
        for read in stream.chunks(split) {
            loop {
                match framer.next(read, &limits, &mut budget).unwrap() {
                    Frame::Message(view) => messages.push(view.as_bytes().to_vec()),
                    Frame::Ping => pings += 1,
                    Frame::Pong | Frame::Buffered => {}
                    Frame::Done => break,
                }
            }
        }
        (messages, pings)
    }

    // RFC 3261 section 18.3: framing by Content-Length does not depend on how the stream is
    // split into reads.
    #[test]
    fn rfc3261_18_3_messages_and_keepalives_are_framed_alike_across_any_split() {
        let mut stream = message(0);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend(message(300));
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend(message(5));
        let (whole, whole_pings) = feed(&mut Framer::default(), &stream, stream.len());
        assert_eq!(whole.len(), 3);
        assert_eq!(whole_pings, 2);
        for split in 1..40 {
            let mut framer = Framer::default();
            let got = feed(&mut framer, &stream, split);
            assert_eq!(
                got,
                (whole.clone(), whole_pings),
                "split every {split} bytes"
            );
            assert!(!framer.holds_partial());
        }
    }

    // RFC 3261 section 18.3: a 60 KiB message dribbled one byte per read costs what it
    // costs in one read, within a constant: each byte is searched, copied and parsed a
    // bounded number of times (re-framing the buffered prefix on every read did about
    // n^2 / 2 = 1.9e9 byte steps here).
    #[test]
    fn rfc3261_18_3_a_message_dribbled_a_byte_per_read_is_framed_in_linear_work() {
        let msg = message(60 * 1024 - 300);
        let n = msg.len() as u64;
        let mut framer = Framer::default();
        let (got, _) = feed(&mut framer, &msg, 1);
        assert_eq!(got, std::slice::from_ref(&msg));
        let w = framer.work();
        assert!(w.copied <= n, "copied {} bytes for {n}", w.copied);
        assert!(w.searched <= n, "searched {} bytes for {n}", w.searched);
        assert!(w.parsed <= 3 * n, "parsed {} bytes for {n}", w.parsed);
        // and split in the header and the body alike, at every position near the ends
        for split in [2, 3, 7, 1000, 4096] {
            let mut framer = Framer::default();
            let (got, _) = feed(&mut framer, &msg, split);
            assert_eq!(got, std::slice::from_ref(&msg));
            let w = framer.work();
            assert!(
                w.copied + w.searched + w.parsed <= 4 * n,
                "split {split}: {w:?}"
            );
        }
    }

    #[test]
    fn the_header_end_is_found_when_it_straddles_two_reads() {
        let msg = message(0);
        let cut = msg.len() - 4;
        for k in 0..=4 {
            let mut framer = Framer::default();
            let limits = Limits::DEFAULT;
            let mut budget = Budget::new(usize::MAX);
            let mut got = 0;
            for read in [&msg[..cut + k], &msg[cut + k..]] {
                loop {
                    match framer.next(read, &limits, &mut budget).unwrap() {
                        Frame::Message(_) => got += 1,
                        Frame::Done => break,
                        _ => {}
                    }
                }
            }
            assert_eq!(got, 1, "{k} bytes of the empty line in the first read");
        }
    }

    // Garbage in an incomplete header section closes the flow long before the size limit.
    #[test]
    fn garbage_in_an_incomplete_header_section_is_refused_early() {
        let limits = Limits::DEFAULT;
        let mut budget = Budget::new(usize::MAX);
        let mut framer = Framer::default();
        let mut stream = b"OPTIONS sip:bob@127.0.0.2 SIP/2.0\r\n".to_vec();
        for _ in 0..6000 {
            stream.extend_from_slice(b"X-Pad: 1\r\n");
        }
        let mut fed = 0;
        let err = stream.chunks(7).find_map(|read| {
            fed += read.len();
            loop {
                match framer.next(read, &limits, &mut budget) {
                    Ok(Frame::Done) => return None,
                    Ok(_) => {}
                    Err(e) => return Some(e),
                }
            }
        });
        match err {
            Some(FrameError::Invalid(e)) => assert_eq!(e.kind, ErrorKind::TooManyHeaders),
            other => panic!("not refused: {other:?}"),
        }
        // 257 header lines end 2,606 bytes in; a check each time the buffer doubles finds
        // them before twice that
        assert!(fed <= 2 * 2606 + 7, "refused after {fed} bytes");
    }

    /// Feeds `stream` in reads of the given sizes (cycled); returns the messages and whether
    /// framing failed.
    fn feed_reads(stream: &[u8], sizes: &[usize]) -> (Vec<Vec<u8>>, bool) {
        let limits = Limits::DEFAULT;
        let mut budget = Budget::new(usize::MAX);
        let mut framer = Framer::default();
        let mut messages = Vec::new();
        let mut fed = 0;
        let mut i = 0;
        while fed < stream.len() {
            let size = sizes
                .get(i % sizes.len().max(1))
                .copied()
                .unwrap_or(stream.len());
            i += 1;
            let read = &stream[fed..(fed + size.max(1)).min(stream.len())];
            fed += read.len();
            loop {
                match framer.next(read, &limits, &mut budget) {
                    Ok(Frame::Message(view)) => messages.push(view.as_bytes().to_vec()),
                    Ok(Frame::Done) => break,
                    Ok(_) => {}
                    Err(_) => return (messages, true),
                }
            }
        }
        (messages, false)
    }

    fn pieces() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            (0..400usize).prop_map(message),
            Just(b"\r\n\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
            proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a')], 0..6),
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        // RFC 3261 section 18.3: the messages framed do not depend on how the stream is split
        // into reads. A split stream may stop short of an error the whole stream shows (a
        // header section not complete yet is judged later), never the other way round.
        #[test]
        fn rfc3261_18_3_framing_does_not_depend_on_the_split(
            stream in pieces(),
            sizes in proptest::collection::vec(1..40usize, 1..6),
        ) {
            let (whole, whole_failed) = feed_reads(&stream, &[stream.len().max(1)]);
            let (split, split_failed) = feed_reads(&stream, &sizes);
            proptest::prop_assert_eq!(&split, &whole);
            proptest::prop_assert!(whole_failed || !split_failed, "only the split stream failed");
        }
    }

    // The buffer of a partial message is charged to the budget and refused beyond it; a
    // large one is given back once its message is delivered.
    #[test]
    fn a_partial_message_holds_budget_until_it_is_delivered() {
        let limits = Limits::DEFAULT;
        let msg = message(20_000);
        let mut budget = Budget::new(1 << 20);
        let mut framer = Framer::default();
        assert!(matches!(
            framer.next(&msg[..10_000], &limits, &mut budget),
            Ok(Frame::Done)
        ));
        assert!(budget.used() >= 10_000);
        assert_eq!(budget.used(), framer.held());
        loop {
            match framer.next(&msg[10_000..], &limits, &mut budget).unwrap() {
                Frame::Done => break,
                _ => continue,
            }
        }
        assert_eq!(
            budget.used(),
            0,
            "a large buffer is freed after its message"
        );
        assert!(!framer.holds_partial());

        let mut small = Budget::new(1000);
        let mut framer = Framer::default();
        assert!(matches!(
            framer.next(&msg[..5_000], &limits, &mut small),
            Err(FrameError::OverBudget)
        ));
        assert_eq!(small.used(), 0);
    }
}
