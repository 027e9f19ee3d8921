//! The endpoint's timer table: every armed deadline of every transaction and flow, ordered
//! by time, so that the next deadline and the expired timers are found without looking at
//! each transaction.
//!
//! The owners keep their own deadlines (a transaction machine's two slots, a flow's idle
//! deadline); the table only indexes them. Arming, cancelling and moving a timer go through
//! [`TimerTable::arm`], [`TimerTable::cancel`] and [`TimerTable::sync`]; the endpoint's
//! `handle_timeout` takes the expired ones with [`TimerTable::pop_expired`] and its
//! `poll_timeout` asks [`TimerTable::next_deadline`].

use std::collections::BTreeSet;
use std::time::Instant;

use crate::id::Key;
use crate::transaction::Slots;

/// What a deadline in the table belongs to: a slot of a client or server transaction
/// machine. (Flows keep their idle and message deadlines in `transport::flow::Flows`,
/// which the endpoint asks beside this table.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerRef {
    Client(Key, u8),
    Server(Key, u8),
}

/// The deadlines, earliest first. Ties are broken by owner, so the order is deterministic.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    index: BTreeSet<(Instant, TimerRef)>,
}

impl TimerTable {
    /// An empty table.
    pub(crate) fn new() -> TimerTable {
        TimerTable::default()
    }

    /// Arms `owner`'s timer for `at`.
    pub(crate) fn arm(&mut self, at: Instant, owner: TimerRef) {
        self.index.insert((at, owner));
    }

    /// Cancels `owner`'s timer armed for `at` (nothing if it is not armed).
    pub(crate) fn cancel(&mut self, at: Instant, owner: TimerRef) {
        self.index.remove(&(at, owner));
    }

    /// The earliest armed deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.index.first().map(|(at, _)| *at)
    }

    /// Takes the earliest timer due at `now` (deadline at or before it), if any. The
    /// endpoint calls it until it returns `None`, so that timers armed by what a fired
    /// timer did are run in the same call when they are due too.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<TimerRef> {
        match self.index.first() {
            Some(&(at, _)) if at <= now => self.index.pop_first().map(|(_, owner)| owner),
            _ => None,
        }
    }

    /// Brings the table in line with a machine's slots: cancels what `before` had and
    /// `after` has not, arms what `after` has new. `owner` names a slot.
    pub(crate) fn sync(&mut self, owner: impl Fn(u8) -> TimerRef, before: Slots, after: Slots) {
        for slot in 0..2 {
            if before[slot] == after[slot] {
                continue;
            }
            if let Some((at, _)) = before[slot] {
                self.cancel(at, owner(slot as u8));
            }
            if let Some((at, _)) = after[slot] {
                self.arm(at, owner(slot as u8));
            }
        }
    }

    /// Armed timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::id::Slab;
    use crate::transaction::Timer;

    fn keys() -> (Key, Key) {
        let mut slab = Slab::default();
        (slab.insert(()), slab.insert(()))
    }

    #[test]
    fn pop_expired_returns_due_timers_earliest_first_and_leaves_later_ones() {
        let t0 = Instant::now();
        let (a, b) = keys();
        let mut table = TimerTable::new();
        table.arm(t0 + Duration::from_secs(3), TimerRef::Server(a, 0));
        table.arm(t0 + Duration::from_secs(1), TimerRef::Client(b, 0));
        table.arm(t0 + Duration::from_secs(2), TimerRef::Server(a, 1));
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(1)));
        let now = t0 + Duration::from_secs(2);
        assert_eq!(table.pop_expired(now), Some(TimerRef::Client(b, 0)));
        assert_eq!(table.pop_expired(now), Some(TimerRef::Server(a, 1)));
        assert_eq!(table.pop_expired(now), None);
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn cancel_removes_only_the_named_timer() {
        let t0 = Instant::now();
        let (a, b) = keys();
        let mut table = TimerTable::new();
        let at = t0 + Duration::from_secs(1);
        table.arm(at, TimerRef::Server(a, 0));
        table.arm(at, TimerRef::Server(b, 0));
        table.cancel(at, TimerRef::Server(a, 0));
        // A deadline that was never armed: nothing happens.
        table.cancel(at + Duration::from_secs(1), TimerRef::Server(b, 0));
        assert_eq!(table.len(), 1);
        assert_eq!(table.pop_expired(at), Some(TimerRef::Server(b, 0)));
    }

    #[test]
    fn sync_moves_changed_slots_and_keeps_unchanged_ones() {
        let t0 = Instant::now();
        let (a, _) = keys();
        let mut table = TimerTable::new();
        let owner = |s| TimerRef::Client(a, s);
        let s1 = t0 + Duration::from_secs(1);
        let s32 = t0 + Duration::from_secs(32);
        let before: Slots = [Some((s1, Timer::A)), Some((s32, Timer::B))];
        table.sync(owner, [None, None], before);
        assert_eq!(table.len(), 2);
        let s3 = t0 + Duration::from_secs(3);
        let after: Slots = [Some((s3, Timer::A)), Some((s32, Timer::B))];
        table.sync(owner, before, after);
        assert_eq!(table.next_deadline(), Some(s3));
        table.sync(owner, after, [None, None]);
        assert_eq!(table.len(), 0);
        assert_eq!(table.next_deadline(), None);
    }
}
