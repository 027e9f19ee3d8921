//! Reliable provisional responses (RFC 3262), sans-IO.
//!
//! UAS side ([`UasReliable`], one per INVITE received): decides whether the 1xx responses to
//! an INVITE go reliably ([`uas_mode`]), numbers them with RSeq (a random start, then +1),
//! keeps at most one unacknowledged at a time (later ones wait in order), retransmits it at
//! T1 doubling until the PRACK, matches PRACKs by RAck, gives up at 64*T1 and holds back a
//! 2xx while a 1xx with a session description is unacknowledged.
//!
//! UAC side ([`UacReliable`], one per early dialog): the RSeq order of section 4, so that
//! each reliable 1xx is processed and PRACKed once, in order, and [`rack_value`] for the
//! PRACK.
//!
//! Offer/answer in reliable 1xx and PRACK (section 5) is the session's offer/answer state:
//! this module reports whether a 1xx carried a session description so the session can hold
//! the 2xx back and route the PRACK body.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Rel100;
use crate::message::{HeaderName, HeaderValue, Message};
use crate::{OwnedMessage, Rng, Timers};

/// The option tag of RFC 3262 (section 8.1).
pub(crate) const TAG_100REL: &str = "100rel";

/// The most reliable 1xx that may wait behind an unacknowledged one. The application, not a
/// peer, makes them (each `ring`), but a loop calling `ring` must not grow the queue for ever.
pub(crate) const MAX_QUEUED: usize = 4;

/// Does a token-list header of `msg` hold `tag` (case-insensitive, RFC 3261 19.2)?
pub(crate) fn has_tag(msg: &Message<'_>, name: HeaderName, tag: &str) -> bool {
    msg.tokens(name).any(|t| t.eq_ignore_ascii_case(tag))
}

/// How a UAS treats the 1xx responses to one INVITE (RFC 3262 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UasMode {
    /// Provisional responses go unreliably (RFC 3261 as is).
    Unreliable,
    /// Every 1xx but 100 goes reliably.
    Reliable,
    /// Refuse the INVITE with this status and header: 420 with `Unsupported: 100rel` when
    /// the INVITE requires 100rel and it is disabled here (RFC 3262 section 3, RFC 3261
    /// 8.2.2.3); 421 with `Require: 100rel` when we require it and the UAC does not list it
    /// in Supported (RFC 3261 21.4.16: "Extension Required").
    Reject {
        /// 420 or 421.
        status: u16,
        /// The header name to add with the value `100rel`.
        header: &'static str,
    },
}

/// The treatment of an INVITE's provisional responses under our `mode` (RFC 3262 section 3):
/// a `Require: 100rel` INVITE must get reliable 1xx (or 420); a `Supported: 100rel` one may,
/// which we do when we require it ourselves; without either, 1xx must not go reliably, so a
/// UAS that requires it answers 421.
pub(crate) fn uas_mode(mode: Rel100, invite: &Message<'_>) -> UasMode {
    let required = has_tag(invite, HeaderName::Require, TAG_100REL);
    let supported = required || has_tag(invite, HeaderName::Supported, TAG_100REL);
    match mode {
        Rel100::Disabled if required => UasMode::Reject {
            status: 420,
            header: "Unsupported",
        },
        Rel100::Disabled => UasMode::Unreliable,
        Rel100::Supported if required => UasMode::Reliable,
        Rel100::Supported => UasMode::Unreliable,
        Rel100::Required if supported => UasMode::Reliable,
        Rel100::Required => UasMode::Reject {
            status: 421,
            header: "Require",
        },
    }
}

/// The header a UAC puts in its INVITE under `mode` (RFC 3262 section 4): `Supported:
/// 100rel` (which it SHOULD), `Require: 100rel` when it insists, nothing when disabled.
pub(crate) fn uac_header(mode: Rel100) -> Option<(&'static str, &'static str)> {
    match mode {
        Rel100::Disabled => None,
        Rel100::Supported => Some(("Supported", TAG_100REL)),
        Rel100::Required => Some(("Require", TAG_100REL)),
    }
}

/// A first RSeq between 1 and 2**31 - 1 (RFC 3262 section 3), from the caller's generator so
/// that a peer cannot predict it.
pub(crate) fn initial_rseq(rng: &mut dyn Rng) -> u32 {
    // 2**31 - 1 values: 1 ..= 0x7fff_ffff; the modulo bias of a 64-bit draw is negligible.
    1 + (rng.next_u64() % 0x7fff_ffff) as u32
}

/// One reliable 1xx sent and not yet acknowledged.
#[derive(Debug)]
struct Unacked {
    rseq: u32,
    response: OwnedMessage,
    has_sdp: bool,
    /// The current retransmission interval (T1, doubling, no cap: RFC 3262 section 3).
    interval: Duration,
    /// When it is passed to the transaction layer again; `None` once a final response went
    /// (section 3: retransmissions SHOULD stop then).
    resend_at: Option<Instant>,
    /// 64*T1 after the first transmission.
    give_up_at: Instant,
}

/// A reliable 1xx waiting for its predecessor's PRACK.
#[derive(Debug)]
struct Queued {
    rseq: u32,
    response: OwnedMessage,
    has_sdp: bool,
}

/// What the UAS does after [`UasReliable::handle_timeout`].
#[derive(Debug)]
pub(crate) enum UasTimeout<'a> {
    /// Nothing is due.
    Nothing,
    /// Pass this response to the server transaction again.
    Retransmit(&'a OwnedMessage),
    /// 64*T1 without PRACK: reject the INVITE with a 5xx (RFC 3262 section 3, SHOULD).
    GiveUp,
}

/// The result of a PRACK (RFC 3262 section 3).
#[derive(Debug)]
pub(crate) enum Prack<'a> {
    /// It matches the unacknowledged reliable 1xx: answer it 200. `send_next`: the queued 1xx
    /// that may go now (send it); `had_sdp`: the acknowledged 1xx carried a session
    /// description (the PRACK may carry the answer, section 5).
    Matched {
        /// The next reliable 1xx to send, if one was waiting.
        send_next: Option<&'a OwnedMessage>,
        /// Did the acknowledged 1xx carry a session description?
        had_sdp: bool,
    },
    /// It matches no unacknowledged reliable 1xx: answer it 481.
    NoMatch,
}

/// The UAS side of RFC 3262 for one INVITE.
#[derive(Debug)]
pub(crate) struct UasReliable {
    /// The CSeq number of the INVITE (RAck carries it).
    invite_cseq: u32,
    /// The RSeq the next reliable 1xx gets.
    next_rseq: u32,
    unacked: Option<Unacked>,
    queue: VecDeque<Queued>,
    final_sent: bool,
}

impl UasReliable {
    /// State for an INVITE with CSeq number `invite_cseq`; RSeq starts at a random value.
    pub(crate) fn new(invite_cseq: u32, rng: &mut dyn Rng) -> UasReliable {
        UasReliable {
            invite_cseq,
            next_rseq: initial_rseq(rng),
            unacked: None,
            queue: VecDeque::new(),
            final_sent: false,
        }
    }

    /// The RSeq to write into the next reliable 1xx (RFC 3262 section 3: each reliable 1xx of
    /// the same request is larger by exactly one); [`UasReliable::send`] uses it up when it
    /// takes the response, so a refused one leaves no gap.
    pub(crate) fn next_rseq(&self) -> u32 {
        self.next_rseq
    }

    /// Hands over a reliable 1xx built with `RSeq:` [`UasReliable::next_rseq`] and
    /// `Require: 100rel`. Returns the
    /// response when it goes now; `Ok(None)` when it waits for the PRACK of the one before
    /// (section 3: a second reliable 1xx only after the first is acknowledged);
    /// `Err(())` when [`MAX_QUEUED`] already wait, or after the final response.
    #[allow(clippy::result_unit_err)]
    pub(crate) fn send(
        &mut self,
        now: Instant,
        timers: &Timers,
        response: OwnedMessage,
        has_sdp: bool,
    ) -> Result<Option<&OwnedMessage>, ()> {
        if self.final_sent || self.unacked.is_some() && self.queue.len() >= MAX_QUEUED {
            return Err(());
        }
        let rseq = self.next_rseq;
        // 2**31 - 1 plus the few responses of a call stays far below u32::MAX.
        self.next_rseq = self.next_rseq.wrapping_add(1);
        if self.unacked.is_some() {
            self.queue.push_back(Queued {
                rseq,
                response,
                has_sdp,
            });
            return Ok(None);
        }
        let unacked = self.unacked.insert(Unacked {
            rseq,
            response,
            has_sdp,
            interval: timers.t1,
            resend_at: Some(now + timers.t1),
            give_up_at: now + timers.t1 * 64,
        });
        Ok(Some(&unacked.response))
    }

    /// The next instant [`UasReliable::handle_timeout`] has work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let u = self.unacked.as_ref()?;
        let resend = u.resend_at?;
        Some(resend.min(u.give_up_at))
    }

    /// Runs the retransmission timer (RFC 3262 section 3: T1, doubling; 64*T1 without PRACK
    /// ends in a 5xx).
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> UasTimeout<'_> {
        let Some(u) = self.unacked.as_mut() else {
            return UasTimeout::Nothing;
        };
        let Some(resend) = u.resend_at else {
            return UasTimeout::Nothing;
        };
        if now >= u.give_up_at {
            u.resend_at = None;
            return UasTimeout::GiveUp;
        }
        if now < resend {
            return UasTimeout::Nothing;
        }
        u.interval *= 2;
        u.resend_at = Some(now + u.interval);
        UasTimeout::Retransmit(&u.response)
    }

    /// A PRACK with this RAck arrived in the dialog (RFC 3262 section 3: it matches when RSeq,
    /// CSeq number and method equal those of the unacknowledged reliable 1xx; anything else
    /// gets 481, an already acknowledged one included).
    pub(crate) fn prack(&mut self, now: Instant, timers: &Timers, rack: Rack) -> Prack<'_> {
        let matches = self
            .unacked
            .as_ref()
            .is_some_and(|u| rack.rseq == u.rseq && rack.cseq == self.invite_cseq && rack.invite);
        if !matches {
            return Prack::NoMatch;
        }
        let had_sdp = self.unacked.take().is_some_and(|u| u.has_sdp);
        if self.final_sent {
            // Section 3: no further reliable 1xx after the final response.
            self.queue.clear();
        }
        let send_next = match self.queue.pop_front() {
            Some(q) => {
                let u = self.unacked.insert(Unacked {
                    rseq: q.rseq,
                    response: q.response,
                    has_sdp: q.has_sdp,
                    interval: timers.t1,
                    resend_at: Some(now + timers.t1),
                    give_up_at: now + timers.t1 * 64,
                });
                Some(&u.response)
            }
            None => None,
        };
        Prack::Matched { send_next, had_sdp }
    }

    /// May a 2xx go now? Not while a reliable 1xx with a session description is
    /// unacknowledged, sent or waiting (RFC 3262 section 3: "MUST NOT send a final response
    /// until those provisional responses are acknowledged").
    pub(crate) fn may_send_2xx(&self) -> bool {
        !self.unacked.as_ref().is_some_and(|u| u.has_sdp) && !self.queue.iter().any(|q| q.has_sdp)
    }

    /// The reliable 1xx sent and unacknowledged, if any.
    pub(crate) fn current(&self) -> Option<&OwnedMessage> {
        self.unacked.as_ref().map(|u| &u.response)
    }

    /// The final response went: stop retransmitting (section 3, SHOULD NOT continue) and drop
    /// what waits, but keep matching PRACKs for the unacknowledged one (section 3: "MUST be
    /// prepared to process PRACK requests for those outstanding responses").
    pub(crate) fn final_sent(&mut self) {
        self.final_sent = true;
        self.queue.clear();
        if let Some(u) = self.unacked.as_mut() {
            u.resend_at = None;
        }
    }
}

/// A RAck value as the session needs it: RSeq, CSeq number, and whether the method is
/// INVITE (the only method 100rel applies to here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rack {
    /// The RSeq acknowledged.
    pub(crate) rseq: u32,
    /// The CSeq number of the request.
    pub(crate) cseq: u32,
    /// Was the CSeq method INVITE?
    pub(crate) invite: bool,
}

impl Rack {
    /// The RAck of a PRACK (RFC 3262 section 7.2), if present and well formed.
    pub(crate) fn of(prack: &Message<'_>) -> Option<Rack> {
        prack.values(HeaderName::RAck).find_map(|v| match v {
            HeaderValue::RAck(r) => Some(Rack {
                rseq: r.rseq,
                cseq: r.cseq,
                invite: r.method == crate::Method::Invite,
            }),
            _ => None,
        })
    }
}

/// The RAck value of the PRACK for a reliable 1xx (RFC 3262 sections 4, 7.2): its RSeq, then
/// the CSeq number and method of the INVITE.
pub(crate) fn rack_value(rseq: u32, invite_cseq: u32) -> String {
    format!("{rseq} {invite_cseq} INVITE")
}

/// What a UAC does with a provisional response (RFC 3262 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UacProvisional {
    /// Not sent reliably (no `Require: 100rel`, or a 100): process it as RFC 3261 says.
    Unreliable,
    /// A new reliable 1xx in order: process it and send a PRACK with this RSeq.
    Prack(u32),
    /// A retransmission of one already received, or one out of order: discard it (no PRACK,
    /// no processing).
    Discard,
}

/// The UAC side of RFC 3262 for one early dialog: the RSeq of the last in-order reliable
/// 1xx. Each UAS numbers its own responses, so a forked INVITE keeps one per To tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UacReliable {
    last_rseq: Option<u32>,
}

impl UacReliable {
    /// A 1xx `response` to our INVITE arrived on this early dialog (RFC 3262 section 4): it is
    /// reliable when it requires 100rel and is not a 100; the first sets the sequence, each
    /// later one must be exactly one higher, and a retransmission (same RSeq or lower) or a
    /// gap is discarded. A reliable 1xx without an RSeq is processed as unreliable (it cannot
    /// be acknowledged).
    pub(crate) fn on_provisional(&mut self, response: &Message<'_>) -> UacProvisional {
        if response.status() == Some(100) || !has_tag(response, HeaderName::Require, TAG_100REL) {
            return UacProvisional::Unreliable;
        }
        let Some(rseq) = response.values(HeaderName::RSeq).find_map(|v| match v {
            HeaderValue::Number(n) => Some(n),
            _ => None,
        }) else {
            return UacProvisional::Unreliable;
        };
        match self.last_rseq {
            None => {
                self.last_rseq = Some(rseq);
                UacProvisional::Prack(rseq)
            }
            Some(last) if last.checked_add(1) == Some(rseq) => {
                self.last_rseq = Some(rseq);
                UacProvisional::Prack(rseq)
            }
            Some(_) => UacProvisional::Discard,
        }
    }

    /// The RSeq of the last in-order reliable 1xx, if any.
    pub(crate) fn last_rseq(&self) -> Option<u32> {
        self.last_rseq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    fn invite(extra: &str) -> OwnedMessage {
        let text = format!(
            "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\n\
             CSeq: 7 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        OwnedMessage::parse(text.as_bytes()).unwrap()
    }

    fn provisional(status: u16, extra: &str) -> OwnedMessage {
        let text = format!(
            "SIP/2.0 {status} Ringing\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\n\
             CSeq: 7 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        OwnedMessage::parse(text.as_bytes()).unwrap()
    }

    fn prack(rack: &str) -> OwnedMessage {
        let text = format!(
            "PRACK sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK2\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\n\
             CSeq: 8 PRACK\r\nRAck: {rack}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        OwnedMessage::parse(text.as_bytes()).unwrap()
    }

    fn mode(m: Rel100, extra: &str) -> UasMode {
        let inv = invite(extra);
        uas_mode(m, &inv.message().unwrap())
    }

    fn rack(rseq: u32) -> Rack {
        Rack {
            rseq,
            cseq: 7,
            invite: true,
        }
    }

    fn uas(seed: u8) -> UasReliable {
        UasReliable::new(7, &mut SeededRng::new([seed; 32]))
    }

    #[test]
    fn require_100rel_makes_provisionals_reliable() {
        // RFC 3262 3: "MUST send any non-100 provisional response reliably" on Require
        assert_eq!(
            mode(Rel100::Supported, "Require: 100rel\r\n"),
            UasMode::Reliable
        );
        assert_eq!(
            mode(Rel100::Required, "Require: 100rel\r\n"),
            UasMode::Reliable
        );
    }

    #[test]
    fn require_100rel_when_disabled_is_420_unsupported() {
        // RFC 3262 3 / RFC 3261 8.2.2.3: unwilling → 420 with Unsupported: 100rel
        assert_eq!(
            mode(Rel100::Disabled, "Require: 100rel\r\n"),
            UasMode::Reject {
                status: 420,
                header: "Unsupported"
            }
        );
    }

    #[test]
    fn supported_100rel_is_reliable_only_when_we_require_it() {
        // RFC 3262 3: a UAS MAY send reliably when the INVITE lists 100rel in Supported
        assert_eq!(
            mode(Rel100::Supported, "Supported: timer, 100rel\r\n"),
            UasMode::Unreliable
        );
        assert_eq!(
            mode(Rel100::Required, "Supported: timer, 100REL\r\n"),
            UasMode::Reliable
        );
        assert_eq!(
            mode(Rel100::Disabled, "Supported: 100rel\r\n"),
            UasMode::Unreliable
        );
    }

    #[test]
    fn uas_requiring_100rel_answers_421_to_a_uac_without_it() {
        // RFC 3262 3: MUST NOT send reliably without Supported/Require; RFC 3261 21.4.16: 421
        assert_eq!(
            mode(Rel100::Required, ""),
            UasMode::Reject {
                status: 421,
                header: "Require"
            }
        );
        assert_eq!(mode(Rel100::Supported, ""), UasMode::Unreliable);
    }

    #[test]
    fn uac_lists_100rel_in_supported_or_require() {
        // RFC 3262 4: Supported: 100rel SHOULD be in every INVITE; Require when insisting
        assert_eq!(uac_header(Rel100::Supported), Some(("Supported", "100rel")));
        assert_eq!(uac_header(Rel100::Required), Some(("Require", "100rel")));
        assert_eq!(uac_header(Rel100::Disabled), None);
    }

    #[test]
    fn initial_rseq_is_between_1_and_2_pow_31_minus_1_and_seeded() {
        // RFC 3262 3: "initialized to a value between 1 and 2**31 - 1"
        let mut rng = SeededRng::new([9; 32]);
        let draws: Vec<u32> = (0..1000).map(|_| initial_rseq(&mut rng)).collect();
        assert!(draws.iter().all(|&r| (1..=0x7fff_ffff).contains(&r)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
        let again = initial_rseq(&mut SeededRng::new([9; 32]));
        assert_eq!(again, draws[0]);
    }

    #[test]
    fn rseq_increases_by_exactly_one_per_reliable_provisional() {
        // RFC 3262 3: each subsequent reliable 1xx of the request has RSeq larger by one
        let mut u = uas(1);
        let timers = Timers::RFC;
        let t0 = Instant::now();
        let first = u.next_rseq();
        u.send(t0, &timers, provisional(180, ""), false).unwrap();
        assert_eq!(u.next_rseq(), first + 1);
        u.send(t0, &timers, provisional(183, ""), false).unwrap();
        assert_eq!(u.next_rseq(), first + 2);
        // a refused one uses none up
        u.final_sent();
        assert!(u.send(t0, &timers, provisional(183, ""), false).is_err());
        assert_eq!(u.next_rseq(), first + 2);
    }

    #[test]
    fn reliable_180_retransmitted_at_t1_doubling_until_prack() {
        // RFC 3262 3: interval starts at T1 and doubles (no T2 cap); stops on PRACK
        let timers = Timers::RFC;
        let t0 = Instant::now();
        let mut u = uas(2);
        let rseq = u.next_rseq();
        let sent = u.send(t0, &timers, provisional(180, ""), false).unwrap();
        assert!(sent.is_some());
        let mut at = t0;
        let mut intervals = Vec::new();
        for _ in 0..5 {
            let due = u.poll_timeout().unwrap();
            intervals.push(due - at);
            at = due;
            assert!(matches!(u.handle_timeout(due), UasTimeout::Retransmit(_)));
        }
        let t1 = timers.t1;
        assert_eq!(intervals, vec![t1, t1 * 2, t1 * 4, t1 * 8, t1 * 16]);
        assert!(intervals[4] > timers.t2, "no T2 cap");
        assert!(matches!(
            u.prack(at, &timers, rack(rseq)),
            Prack::Matched {
                send_next: None,
                had_sdp: false
            }
        ));
        assert_eq!(u.poll_timeout(), None);
        assert!(matches!(
            u.handle_timeout(at + t1 * 100),
            UasTimeout::Nothing
        ));
    }

    #[test]
    fn uas_gives_up_at_64_t1_without_prack() {
        // RFC 3262 3: retransmitted for 64*T1 without PRACK → SHOULD reject with a 5xx
        let timers = Timers::RFC;
        let t0 = Instant::now();
        let mut u = uas(3);
        u.send(t0, &timers, provisional(180, ""), false).unwrap();
        let mut retransmits = 0;
        loop {
            let due = u.poll_timeout().expect("a timer until give-up");
            match u.handle_timeout(due) {
                UasTimeout::Retransmit(_) => retransmits += 1,
                UasTimeout::GiveUp => {
                    assert_eq!(due, t0 + timers.t1 * 64);
                    break;
                }
                UasTimeout::Nothing => panic!("a timer that does nothing"),
            }
        }
        // T1 + 2T1 + ... + 32T1 = 63 T1 < 64 T1: six retransmissions before giving up
        assert_eq!(retransmits, 6);
        assert_eq!(u.poll_timeout(), None);
    }

    #[test]
    fn prack_matches_by_rseq_cseq_and_method_else_481() {
        // RFC 3262 3: a PRACK matching no unacknowledged reliable 1xx gets 481
        let timers = Timers::RFC;
        let t0 = Instant::now();
        let mut u = uas(4);
        let rseq = u.next_rseq();
        u.send(t0, &timers, provisional(183, ""), false).unwrap();
        let wrong_rseq = Rack {
            rseq: rseq + 1,
            ..rack(rseq)
        };
        let wrong_cseq = Rack {
            cseq: 8,
            ..rack(rseq)
        };
        let wrong_method = Rack {
            invite: false,
            ..rack(rseq)
        };
        for bad in [wrong_rseq, wrong_cseq, wrong_method] {
            assert!(matches!(u.prack(t0, &timers, bad), Prack::NoMatch));
        }
        assert!(matches!(
            u.prack(t0, &timers, rack(rseq)),
            Prack::Matched { .. }
        ));
        // the same RAck again: no longer unacknowledged
        assert!(matches!(u.prack(t0, &timers, rack(rseq)), Prack::NoMatch));
    }

    #[test]
    fn rack_is_read_from_the_prack() {
        // RFC 3262 7.2: RAck = response-num CSeq-num Method
        let p = prack("776656 7 INVITE");
        let r = Rack::of(&p.message().unwrap()).unwrap();
        assert_eq!(
            r,
            Rack {
                rseq: 776656,
                cseq: 7,
                invite: true
            }
        );
        let p = prack("776656 7 BYE");
        assert!(!Rack::of(&p.message().unwrap()).unwrap().invite);
        assert_eq!(rack_value(776656, 7), "776656 7 INVITE");
    }

    #[test]
    fn second_reliable_provisional_waits_for_the_first_prack() {
        // RFC 3262 3: MUST NOT send a second reliable 1xx until the first is acknowledged
        let timers = Timers::RFC;
        let t0 = Instant::now();
        let mut u = uas(5);
        let r1 = u.next_rseq();
        assert!(u
            .send(t0, &timers, provisional(180, ""), false)
            .unwrap()
            .is_some());
        let r2 = u.next_rseq();
        assert!(u
            .send(t0, &timers, provisional(183, ""), true)
            .unwrap()
            .is_none());
        // the queued one is not retransmitted: still only the first one's timer
        assert_eq!(u.poll_timeout(), Some(t0 + timers.t1));
        let t = t0 + Duration::from_millis(100);
        match u.prack(t, &timers, rack(r1)) {
            Prack::Matched {
                send_next: Some(next),
                had_sdp: false,
            } => {
                assert_eq!(next.status(), Some(183));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(u.poll_timeout(), Some(t + timers.t1));
        assert!(matches!(
            u.prack(t, &timers, rack(r2)),
            Prack::Matched {
                send_next: None,
                had_sdp: true
            }
        ));
    }

    #[test]
    fn waiting_reliable_provisionals_are_bounded() {
        // RFC 3262 3 (one at a time) with a bounded queue behind it
        let timers = Timers::RFC;
        let t0 = Instant::now();
        let mut u = uas(6);
        for i in 0..=MAX_QUEUED {
            assert!(
                u.send(t0, &timers, provisional(180, ""), false).is_ok(),
                "{i}"
            );
        }
        assert!(u.send(t0, &timers, provisional(180, ""), false).is_err());
    }

    #[test]
    fn no_2xx_before_the_prack_of_a_provisional_with_sdp() {
        // RFC 3262 3: no 2xx while a reliable 1xx with a session description is unacknowledged
        let timers = Timers::RFC;
        let t0 = Instant::now();
        let mut u = uas(7);
        assert!(u.may_send_2xx());
        let r1 = u.next_rseq();
        u.send(t0, &timers, provisional(180, ""), false).unwrap();
        assert!(u.may_send_2xx(), "a 180 without SDP does not hold the 2xx");
        let r2 = u.next_rseq();
        u.send(t0, &timers, provisional(183, ""), true).unwrap();
        assert!(!u.may_send_2xx(), "a queued 183 with SDP holds it");
        u.prack(t0, &timers, rack(r1));
        assert!(!u.may_send_2xx());
        u.prack(t0, &timers, rack(r2));
        assert!(u.may_send_2xx());
    }

    #[test]
    fn final_response_stops_retransmission_but_prack_still_matches() {
        // RFC 3262 3: SHOULD NOT retransmit after the final response; MUST process PRACKs
        let timers = Timers::RFC;
        let t0 = Instant::now();
        let mut u = uas(8);
        let r1 = u.next_rseq();
        u.send(t0, &timers, provisional(180, ""), false).unwrap();
        u.final_sent();
        assert_eq!(u.poll_timeout(), None);
        assert!(matches!(
            u.handle_timeout(t0 + timers.t1 * 64),
            UasTimeout::Nothing
        ));
        assert!(matches!(
            u.prack(t0, &timers, rack(r1)),
            Prack::Matched { .. }
        ));
        assert!(u.send(t0, &timers, provisional(180, ""), false).is_err());
    }

    fn uac_sees(u: &mut UacReliable, status: u16, extra: &str) -> UacProvisional {
        let r = provisional(status, extra);
        u.on_provisional(&r.message().unwrap())
    }

    #[test]
    fn uac_pracks_reliable_provisionals_in_rseq_order() {
        // RFC 3262 4: first RSeq sets the sequence, each later one exactly +1
        let mut u = UacReliable::default();
        assert_eq!(
            uac_sees(&mut u, 180, "Require: 100rel\r\nRSeq: 10\r\n"),
            UacProvisional::Prack(10)
        );
        assert_eq!(
            uac_sees(&mut u, 183, "Require: 100rel\r\nRSeq: 11\r\n"),
            UacProvisional::Prack(11)
        );
        assert_eq!(u.last_rseq(), Some(11));
    }

    #[test]
    fn rseq_duplicate_ignored() {
        // RFC 3262 4: retransmissions of a reliable 1xx are discarded (no second PRACK)
        let mut u = UacReliable::default();
        assert_eq!(
            uac_sees(&mut u, 180, "Require: 100rel\r\nRSeq: 10\r\n"),
            UacProvisional::Prack(10)
        );
        assert_eq!(
            uac_sees(&mut u, 180, "Require: 100rel\r\nRSeq: 10\r\n"),
            UacProvisional::Discard
        );
        assert_eq!(
            uac_sees(&mut u, 180, "Require: 100rel\r\nRSeq: 9\r\n"),
            UacProvisional::Discard
        );
    }

    #[test]
    fn rseq_out_of_order_ignored() {
        // RFC 3262 4: an RSeq not one higher is neither PRACKed nor processed
        let mut u = UacReliable::default();
        uac_sees(&mut u, 180, "Require: 100rel\r\nRSeq: 10\r\n");
        assert_eq!(
            uac_sees(&mut u, 183, "Require: 100rel\r\nRSeq: 12\r\n"),
            UacProvisional::Discard
        );
        assert_eq!(u.last_rseq(), Some(10));
        assert_eq!(
            uac_sees(&mut u, 183, "Require: 100rel\r\nRSeq: 11\r\n"),
            UacProvisional::Prack(11)
        );
        let mut top = UacReliable {
            last_rseq: Some(u32::MAX),
        };
        assert_eq!(
            uac_sees(&mut top, 183, "Require: 100rel\r\nRSeq: 0\r\n"),
            UacProvisional::Discard
        );
    }

    #[test]
    fn trying_and_unrequired_provisionals_are_unreliable() {
        // RFC 3262 4: 100rel in a 100 is ignored; without Require: 100rel a 1xx is unreliable
        let mut u = UacReliable::default();
        assert_eq!(
            uac_sees(&mut u, 100, "Require: 100rel\r\nRSeq: 1\r\n"),
            UacProvisional::Unreliable
        );
        assert_eq!(
            uac_sees(&mut u, 180, "Supported: 100rel\r\nRSeq: 1\r\n"),
            UacProvisional::Unreliable
        );
        assert_eq!(
            uac_sees(&mut u, 180, "Require: 100rel\r\n"),
            UacProvisional::Unreliable
        );
        assert_eq!(u.last_rseq(), None);
    }

    proptest::proptest! {
        #[test]
        fn uac_pracks_each_reliable_provisional_once_and_consecutively(
            rseqs in proptest::collection::vec(0u32..40, 0..60)
        ) {
            // RFC 3262 4: whatever arrives, the PRACKed RSeqs are first, first+1, first+2, ...
            let mut u = UacReliable::default();
            let mut pracked = Vec::new();
            for r in rseqs {
                let resp = provisional(180, &format!("Require: 100rel\r\nRSeq: {r}\r\n"));
                if let UacProvisional::Prack(n) = u.on_provisional(&resp.message().unwrap()) {
                    pracked.push(n);
                }
            }
            proptest::prop_assert!(pracked.windows(2).all(|w| w[1] == w[0] + 1));
        }

        #[test]
        fn uas_keeps_one_unacknowledged_reliable_provisional_in_rseq_order(
            ops in proptest::collection::vec((0u8..4, 0u32..6, 0u64..40_000), 0..60)
        ) {
            // RFC 3262 3: one unacknowledged at a time, sent in RSeq order, +1 each
            let timers = Timers::RFC;
            let mut now = Instant::now();
            let mut u = uas(11);
            let first = u.next_rseq;
            for (op, k, ms) in ops {
                now += Duration::from_millis(ms);
                match op {
                    0 => {
                        let r = u.next_rseq();
                        match u.send(now, &timers, provisional(180, ""), k % 2 == 0) {
                            Ok(Some(_)) => {
                                proptest::prop_assert_eq!(u.unacked.as_ref().map(|x| x.rseq), Some(r));
                            }
                            Ok(None) => {
                                proptest::prop_assert_eq!(u.queue.back().map(|q| q.rseq), Some(r));
                            }
                            Err(()) => proptest::prop_assert_eq!(u.next_rseq(), r),
                        }
                    }
                    1 => {
                        let target = u.unacked.as_ref().map_or(first, |x| x.rseq);
                        let rs = if k == 0 { target.wrapping_add(1) } else { target };
                        let before = u.unacked.as_ref().map(|x| x.rseq);
                        if let Prack::Matched { .. } = u.prack(now, &timers, rack(rs)) {
                            proptest::prop_assert_eq!(before, Some(rs));
                            if let Some(next) = u.unacked.as_ref() {
                                proptest::prop_assert_eq!(next.rseq, rs + 1);
                            }
                        }
                    }
                    2 => {
                        let _ = u.handle_timeout(now);
                    }
                    _ => {
                        if k == 0 {
                            u.final_sent();
                        }
                    }
                }
                proptest::prop_assert!(u.queue.len() <= MAX_QUEUED);
                let mut expect = u.unacked.as_ref().map(|x| x.rseq);
                for q in &u.queue {
                    proptest::prop_assert_eq!(Some(q.rseq), expect.map(|e| e + 1));
                    expect = Some(q.rseq);
                }
            }
        }
    }
}
