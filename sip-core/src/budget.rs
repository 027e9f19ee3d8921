//! The byte budget: what peers can make the endpoint hold (stored messages of transactions,
//! buffers of partly received stream messages) is counted against one limit, so memory is
//! bounded in bytes and not only in entries (a million transactions of 64 KiB each is
//! 64 GiB). New holdings that do not fit are refused: a request is answered 503 instead of
//! getting a transaction (RFC 3261 section 21.5.4), a stream flow that needs more buffer is
//! closed.
//!
//! Partial stream messages may hold at most half of the budget: peers that send headers
//! slowly on many connections (each within the per-source limits) could otherwise spend
//! all of it, and every request from anyone would get 503 until their messages time out.

/// Bytes held, against a limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    limit: usize,
    used: usize,
    /// The part of `used` held by partial stream messages.
    streams: usize,
}

impl Budget {
    /// An empty budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: 0,
            streams: 0,
        }
    }

    /// Would `n` more bytes fit?
    pub(crate) fn fits(&self, n: usize) -> bool {
        n <= self.limit.saturating_sub(self.used)
    }

    /// Takes `n` bytes whether or not they fit: for what cannot be refused any more (the
    /// response of a transaction that already exists). Admission checks see the excess.
    pub(crate) fn charge(&mut self, n: usize) {
        self.used = self.used.saturating_add(n);
    }

    /// Gives `n` bytes back.
    pub(crate) fn release(&mut self, n: usize) {
        debug_assert!(n <= self.used, "released more than was taken");
        self.used = self.used.saturating_sub(n);
    }

    /// Would `n` more bytes of partial stream messages fit? They may take half the budget.
    pub(crate) fn fits_stream(&self, n: usize) -> bool {
        self.fits(n) && n <= (self.limit / 2).saturating_sub(self.streams)
    }

    /// Takes `n` bytes for a partial stream message.
    pub(crate) fn charge_stream(&mut self, n: usize) {
        self.charge(n);
        self.streams = self.streams.saturating_add(n);
    }

    /// Gives back `n` bytes of a partial stream message.
    pub(crate) fn release_stream(&mut self, n: usize) {
        debug_assert!(n <= self.streams, "released more than was taken");
        self.release(n);
        self.streams = self.streams.saturating_sub(n);
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_tells_what_does_not_fit_and_takes_back_what_is_released() {
        let mut b = Budget::new(100);
        b.charge(60);
        assert!(!b.fits(41), "60 + 41 > 100");
        assert!(b.fits(40));
        b.charge(40);
        assert!(!b.fits(1));
        b.release(60);
        assert_eq!(b.used(), 40);
        b.charge(100);
        assert_eq!(b.used(), 140);
        assert!(!b.fits(1), "over the limit, nothing more fits");
    }

    // RFC 3261 21.5.4: partial stream messages cannot take the whole budget, so requests
    // still get transactions while slow senders hold what they may.
    #[test]
    fn partial_stream_messages_take_at_most_half_the_budget() {
        let mut b = Budget::new(100);
        assert!(b.fits_stream(50));
        assert!(!b.fits_stream(51));
        b.charge_stream(50);
        assert!(!b.fits_stream(1), "the streams' half is spent");
        assert!(b.fits(50), "the other half is left for transactions");
        b.release_stream(20);
        assert!(b.fits_stream(20));
        assert_eq!(b.used(), 30);
    }
}
