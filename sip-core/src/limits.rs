//! Limits that bound what the parser accepts from the network.

/// Upper bounds applied while parsing. Every limit has a safe default; exceeding one is a
/// [`ParseError`](crate::ParseError) naming it, never a panic or an unbounded allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (start line, headers and body) in bytes. Default 65,535: the largest
    /// UDP payload; stream transports use the same bound so a peer cannot make us buffer more.
    pub max_message_size: usize,
    /// Largest number of header lines. Default 256.
    pub max_headers: usize,
    /// Longest header line, continuation lines included, in bytes. Default 16,384.
    pub max_header_line: usize,
    /// Largest number of Via values. Default 64 (RFC 3261 section 16.6 loops end far sooner).
    pub max_vias: usize,
    /// Longest URI in bytes. Default 4,096.
    pub max_uri_length: usize,
}

impl Limits {
    /// The defaults described on each field.
    pub const DEFAULT: Limits = Limits {
        max_message_size: 65_535,
        max_headers: 256,
        max_header_line: 16_384,
        max_vias: 64,
        max_uri_length: 4_096,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
