//! Session timers (RFC 4028), sans-IO.
//!
//! - reading Session-Expires (compact `x`, `refresher=uac|uas`) and Min-SE ([`SessionExpires::of`],
//!   [`min_se_of`]);
//! - the UAS of a session refresh request, initial INVITE included ([`uas_negotiate`], section
//!   9): 422 when the interval is below our Min-SE, else the Session-Expires of the 2xx with the
//!   refresher of the section 9 table;
//! - the UAC ([`UacTimer`], section 7): the headers of a request, the one retry after a 422, and
//!   what a 2xx says (no Session-Expires: no timer, section 7.2);
//! - the running timer of a dialog ([`RunningTimer`], section 10): the refresher refreshes at
//!   half the interval; the other side sends BYE `min(32 s, interval / 3)` before it expires.
//!
//! `refresher` names the roles of the refresh transaction: `uac` is the side that sent the
//! request the Session-Expires answers (RFC 4028 sections 4, 7.4).

use std::time::{Duration, Instant};

use super::SessionTimer;
use crate::message::{HeaderName, HeaderValue, Message};

/// The option tag of RFC 4028 (section 12.1).
pub(crate) const TAG_TIMER: &str = "timer";

/// The smallest session interval any element may ask for (RFC 4028 sections 4 and 5).
pub(crate) const MIN_SE_FLOOR: u32 = 90;

/// The longest session interval the running timer honours (a day): a peer's Min-SE or
/// Session-Expires cannot push our BYE or refresh out of reach (or overflow the clock).
pub(crate) const MAX_INTERVAL: u32 = 86_400;

/// Who refreshes the session, in the roles of the transaction that negotiated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresher {
    /// The sender of the request.
    Uac,
    /// The sender of the response.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A Session-Expires value (RFC 4028 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionExpires {
    /// The session interval, in seconds.
    pub(crate) interval: u32,
    /// The `refresher` parameter, when present and `uac` or `uas`.
    pub(crate) refresher: Option<Refresher>,
}

impl SessionExpires {
    /// The Session-Expires of `msg` (long or compact form), if present and well formed.
    pub(crate) fn of(msg: &Message<'_>) -> Option<SessionExpires> {
        let s = msg
            .values(HeaderName::SessionExpires)
            .find_map(|v| match v {
                HeaderValue::Seconds(s) => Some(s),
                _ => None,
            })?;
        let refresher = match s.params.get("refresher") {
            Some(Some(r)) if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            Some(Some(r)) if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            _ => None,
        };
        Some(SessionExpires {
            interval: s.seconds,
            refresher,
        })
    }

    /// The header value: `1800;refresher=uac`.
    pub(crate) fn value(&self) -> String {
        match self.refresher {
            Some(r) => format!("{};refresher={}", self.interval, r.as_str()),
            None => self.interval.to_string(),
        }
    }
}

/// The Min-SE of `msg` (RFC 4028 section 5), if present and well formed.
pub(crate) fn min_se_of(msg: &Message<'_>) -> Option<u32> {
    msg.values(HeaderName::MinSe).find_map(|v| match v {
        HeaderValue::Seconds(s) => Some(s.seconds),
        _ => None,
    })
}

/// Does `msg` list the `timer` option tag in Supported or Require?
pub(crate) fn supports_timer(msg: &Message<'_>) -> bool {
    [HeaderName::Supported, HeaderName::Require]
        .into_iter()
        .any(|h| msg.tokens(h).any(|t| t.eq_ignore_ascii_case(TAG_TIMER)))
}

/// The session timer a 2xx sets up: the interval and who refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// The session interval, in seconds.
    pub(crate) interval: u32,
    /// Who refreshes, in the roles of the transaction.
    pub(crate) refresher: Refresher,
}

impl Negotiated {
    /// Do we refresh, being the UAS (`we_are_uas`) or the UAC of the transaction?
    pub(crate) fn we_refresh(&self, we_are_uas: bool) -> bool {
        (self.refresher == Refresher::Uas) == we_are_uas
    }

    /// The Session-Expires of the response.
    pub(crate) fn header_value(&self) -> String {
        SessionExpires {
            interval: self.interval,
            refresher: Some(self.refresher),
        }
        .value()
    }

    /// Does the 2xx need `Require: timer`? Yes when the UAC refreshes (RFC 4028 section 9:
    /// the UAC has to process the response to know it).
    pub(crate) fn requires_timer(&self) -> bool {
        self.refresher == Refresher::Uac
    }
}

/// What the UAS of a session refresh request (initial INVITE, re-INVITE, UPDATE) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UasDecision {
    /// No session timer: the response carries no Session-Expires.
    Off,
    /// Reject with 422 and this `Min-SE` (RFC 4028 section 9).
    TooSmall {
        /// Our minimum interval, in seconds.
        min_se: u32,
    },
    /// Accept with this timer: put `Session-Expires` (and `Require: timer` when the UAC
    /// refreshes) into the 2xx.
    Accept(Negotiated),
}

/// The UAS processing of RFC 4028 section 9 for a request (`config`: ours, `None` when
/// session timers are off here).
///
/// - a Session-Expires below our Min-SE gets 422 with our Min-SE, when the UAC supports the
///   extension (it could not understand the 422 otherwise: then the interval is raised to our
///   minimum instead, as a proxy would, section 8.1);
/// - the interval of the 2xx is the request's, reduced to our preferred one but never below
///   the request's Min-SE (section 9: "MUST NOT increase", "MAY reduce");
/// - without a Session-Expires in the request we add ours when we want a timer;
/// - the refresher: the request's choice, else `uac` when the UAC supports timers (the table
///   allows either), else `uas` (the UAC would not refresh).
pub(crate) fn uas_negotiate(config: Option<SessionTimer>, request: &Message<'_>) -> UasDecision {
    let Some(ours) = config else {
        return UasDecision::Off;
    };
    let our_min = ours.min_se.max(MIN_SE_FLOOR);
    let uac_supports = supports_timer(request);
    let their_min = min_se_of(request).unwrap_or(MIN_SE_FLOOR).max(MIN_SE_FLOOR);
    let floor = our_min.max(their_min);
    let (interval, asked) = match SessionExpires::of(request) {
        Some(se) if se.interval < our_min && uac_supports => {
            return UasDecision::TooSmall { min_se: floor };
        }
        Some(se) => {
            // reduce to our preference, not below either Min-SE; raise only to our own
            // minimum, and only for a UAC that could not have acted on a 422
            let reduced = se.interval.min(ours.expires.max(floor)).max(our_min);
            (reduced, se.refresher)
        }
        None => (ours.expires.max(floor), None),
    };
    let refresher = match asked {
        Some(r) if uac_supports => r,
        _ if uac_supports => Refresher::Uac,
        _ => Refresher::Uas,
    };
    UasDecision::Accept(Negotiated {
        interval,
        refresher,
    })
}

/// The UAC side of RFC 4028 section 7 for one session refresh request (the initial INVITE,
/// or a refresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UacTimer {
    /// The interval we ask for.
    interval: u32,
    /// Our Min-SE (raised by a 422).
    min_se: u32,
    /// The refresher we ask for: `None` in the initial INVITE (the UAS chooses), `uac` in our
    /// refreshes (we go on refreshing, section 7.4).
    refresher: Option<Refresher>,
    /// Has a 422 already been retried?
    retried: bool,
}

impl UacTimer {
    /// The request's values from our configuration, asking for `interval` (at least Min-SE).
    pub(crate) fn new(config: SessionTimer, interval: u32, refresher: Option<Refresher>) -> Self {
        let min_se = config.min_se.max(MIN_SE_FLOOR);
        UacTimer {
            interval: interval.max(min_se),
            min_se,
            refresher,
            retried: false,
        }
    }

    /// The headers of the request (RFC 4028 section 7.1): `Supported: timer`,
    /// `Session-Expires`, and `Min-SE`.
    pub(crate) fn headers(&self) -> [(&'static str, String); 3] {
        let se = SessionExpires {
            interval: self.interval,
            refresher: self.refresher,
        };
        [
            ("Supported", TAG_TIMER.to_owned()),
            ("Session-Expires", se.value()),
            ("Min-SE", self.min_se.to_string()),
        ]
    }

    /// The interval asked for.
    #[cfg(test)]
    pub(crate) fn interval(&self) -> u32 {
        self.interval
    }

    /// A 422 arrived (RFC 4028 section 7.3): retry once, with Session-Expires and Min-SE set to
    /// the 422's Min-SE (raised to at least ours). Returns `false` when the request is not to
    /// be retried (already retried, or a 422 without a usable Min-SE).
    pub(crate) fn on_422(&mut self, response: &Message<'_>) -> bool {
        let Some(min) = min_se_of(response) else {
            return false;
        };
        if self.retried || min <= self.interval {
            // a 422 asking for no more than we asked: retrying would loop
            return false;
        }
        self.retried = true;
        self.min_se = self.min_se.max(min);
        self.interval = self.interval.max(min);
        true
    }

    /// A 2xx arrived (RFC 4028 section 7.2): its Session-Expires sets the timer; without one
    /// there is no session expiration. A refresher parameter missing from the 2xx (the UAS
    /// MUST set it) is taken as `uac`: we refresh, which keeps the session alive either way.
    pub(crate) fn on_2xx(&self, response: &Message<'_>) -> Option<Negotiated> {
        let se = SessionExpires::of(response)?;
        Some(Negotiated {
            // the UAS MUST NOT increase it (section 9): never above what we asked
            interval: se
                .interval
                .clamp(MIN_SE_FLOOR, self.interval.max(MIN_SE_FLOOR)),
            refresher: se.refresher.unwrap_or(Refresher::Uac),
        })
    }
}

/// What the session timer asks for when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerAction {
    /// Nothing is due.
    Nothing,
    /// We are the refresher and half the interval has passed: send a refresh (UPDATE when the
    /// peer allows it, else re-INVITE), then [`RunningTimer::refresh_sent`].
    Refresh,
    /// No refresh came in time: send BYE, the call ends with `EndReason::SessionExpired`
    /// (RFC 4028 section 10).
    Expire,
}

/// The session timer of a dialog (RFC 4028 section 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunningTimer {
    /// The session interval, in seconds.
    interval: u32,
    /// Do we refresh?
    we_refresh: bool,
    /// When we refresh (refresher only): half the interval after the last refresh; `None`
    /// while a refresh is in flight.
    refresh_at: Option<Instant>,
    /// When we give up: `min(32 s, interval / 3)` before the expiration.
    bye_at: Instant,
}

impl RunningTimer {
    /// A timer started (or restarted by a successful refresh, section 10) at `now`.
    pub(crate) fn start(now: Instant, negotiated: Negotiated, we_are_uas: bool) -> RunningTimer {
        let interval = negotiated.interval.clamp(1, MAX_INTERVAL);
        let we_refresh = negotiated.we_refresh(we_are_uas);
        let full = Duration::from_secs(u64::from(interval));
        let margin = Duration::from_secs(32).min(full / 3);
        RunningTimer {
            interval,
            we_refresh,
            refresh_at: we_refresh.then(|| now + full / 2),
            bye_at: now + full - margin,
        }
    }

    /// The session interval, in seconds.
    pub(crate) fn interval(&self) -> u32 {
        self.interval
    }

    /// A 422 to our refresh named this Min-SE: the next refresh asks for it (RFC 4028
    /// section 7.3).
    pub(crate) fn raise_interval(&mut self, min_se: u32) {
        self.interval = self.interval.max(min_se.min(MAX_INTERVAL));
    }

    /// Do we refresh?
    #[cfg(test)]
    pub(crate) fn we_refresh(&self) -> bool {
        self.we_refresh
    }

    /// The next instant [`RunningTimer::handle_timeout`] has work.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.refresh_at.map_or(self.bye_at, |r| r.min(self.bye_at))
    }

    /// Runs the timer: the refresher refreshes at half the interval; either side sends BYE
    /// when no refresh succeeded by the expiration minus `min(32, interval / 3)` (a refresher
    /// whose refreshes fail ends the session too).
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> TimerAction {
        if now >= self.bye_at {
            self.refresh_at = None;
            return TimerAction::Expire;
        }
        match self.refresh_at {
            Some(at) if now >= at => {
                self.refresh_at = None;
                TimerAction::Refresh
            }
            _ => TimerAction::Nothing,
        }
    }

    /// A refresh we sent failed with a final response that keeps the dialog (RFC 4028
    /// section 7.4 leaves the session running until it expires): try again at the next
    /// half-way point of what is left, or give up at expiry.
    pub(crate) fn refresh_failed(&mut self, now: Instant) {
        if self.we_refresh {
            let left = self.bye_at.saturating_duration_since(now);
            // halving what is left ends: under a second, only the expiry remains
            self.refresh_at = (left / 2 >= Duration::from_secs(1)).then(|| now + left / 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OwnedMessage;

    fn request(extra: &str) -> OwnedMessage {
        let text = format!(
            "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\n\
             CSeq: 7 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        OwnedMessage::parse(text.as_bytes()).unwrap()
    }

    fn response(status: u16, extra: &str) -> OwnedMessage {
        let text = format!(
            "SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\n\
             CSeq: 7 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        OwnedMessage::parse(text.as_bytes()).unwrap()
    }

    const OURS: SessionTimer = SessionTimer {
        expires: 1800,
        min_se: 90,
    };

    fn uas(config: Option<SessionTimer>, extra: &str) -> UasDecision {
        let r = request(extra);
        uas_negotiate(config, &r.message().unwrap())
    }

    fn accept(interval: u32, refresher: Refresher) -> UasDecision {
        UasDecision::Accept(Negotiated {
            interval,
            refresher,
        })
    }

    #[test]
    fn session_expires_parsed_long_and_compact_with_refresher() {
        // RFC 4028 4: Session-Expires / x, delta-seconds, refresher = uac / uas
        for (line, want) in [
            ("Session-Expires: 1800\r\n", (1800, None)),
            ("x: 4000;refresher=uac\r\n", (4000, Some(Refresher::Uac))),
            (
                "session-expires: 90 ; Refresher=UAS\r\n",
                (90, Some(Refresher::Uas)),
            ),
            ("Session-Expires: 600;refresher=other;x=y\r\n", (600, None)),
        ] {
            let r = request(line);
            let se = SessionExpires::of(&r.message().unwrap()).unwrap();
            assert_eq!((se.interval, se.refresher), want, "{line}");
        }
        let r = request("Min-SE: 120\r\n");
        assert_eq!(min_se_of(&r.message().unwrap()), Some(120));
        // a malformed value fails the typed parse of the whole message (400 upstream)
        let r = request("Session-Expires: soon\r\n");
        assert!(r.message().is_err());
        let r = request("");
        assert_eq!(SessionExpires::of(&r.message().unwrap()), None);
    }

    #[test]
    fn session_expires_value_round_trips() {
        // RFC 4028 4: the header as written
        let se = SessionExpires {
            interval: 1800,
            refresher: Some(Refresher::Uas),
        };
        let r = request(&format!("Session-Expires: {}\r\n", se.value()));
        assert_eq!(SessionExpires::of(&r.message().unwrap()), Some(se));
    }

    #[test]
    fn uas_answers_422_with_min_se_to_a_too_small_interval() {
        // RFC 4028 9: Session-Expires below our minimum → 422 with Min-SE
        let config = Some(SessionTimer {
            expires: 1800,
            min_se: 300,
        });
        assert_eq!(
            uas(config, "Supported: timer\r\nSession-Expires: 120\r\n"),
            UasDecision::TooSmall { min_se: 300 }
        );
        // the request's Min-SE higher than ours is what the 422 names
        assert_eq!(
            uas(
                config,
                "Supported: timer\r\nSession-Expires: 120\r\nMin-SE: 400\r\n"
            ),
            UasDecision::TooSmall { min_se: 400 }
        );
        assert_eq!(
            uas(config, "Supported: timer\r\nSession-Expires: 300\r\n"),
            accept(300, Refresher::Uac)
        );
    }

    #[test]
    fn uas_without_timer_support_from_the_uac_never_answers_422() {
        // RFC 4028 9 / 8.1: a UAC without the extension cannot act on a 422
        let config = Some(SessionTimer {
            expires: 1800,
            min_se: 300,
        });
        assert_eq!(
            uas(config, "Session-Expires: 120\r\n"),
            accept(300, Refresher::Uas)
        );
    }

    #[test]
    fn refresher_choice_table() {
        // RFC 4028 9, table 2: UAC supports? × refresher in request → refresher in response
        assert_eq!(uas(Some(OURS), ""), accept(1800, Refresher::Uas)); // N, none → uas
        assert_eq!(
            uas(Some(OURS), "Supported: timer\r\n"),
            accept(1800, Refresher::Uac)
        ); // Y, none → uac|uas
        assert_eq!(
            uas(
                Some(OURS),
                "Supported: timer\r\nSession-Expires: 1000;refresher=uac\r\n"
            ),
            accept(1000, Refresher::Uac)
        ); // Y, uac → uac
        assert_eq!(
            uas(
                Some(OURS),
                "Supported: timer\r\nSession-Expires: 1000;refresher=uas\r\n"
            ),
            accept(1000, Refresher::Uas)
        ); // Y, uas → uas
           // a refresher parameter from a UAC that does not support the extension (a proxy
           // inserted it) cannot make the UAC refresh
        assert_eq!(
            uas(Some(OURS), "Session-Expires: 1000;refresher=uac\r\n"),
            accept(1000, Refresher::Uas)
        );
    }

    #[test]
    fn uas_may_reduce_the_interval_but_not_below_min_se_and_never_increases_it() {
        // RFC 4028 9: MAY reduce, not below the request's Min-SE; MUST NOT increase
        assert_eq!(
            uas(Some(OURS), "Supported: timer\r\nSession-Expires: 7200\r\n"),
            accept(1800, Refresher::Uac)
        );
        assert_eq!(
            uas(
                Some(OURS),
                "Supported: timer\r\nSession-Expires: 7200\r\nMin-SE: 3600\r\n"
            ),
            accept(3600, Refresher::Uac)
        );
        assert_eq!(
            uas(Some(OURS), "Supported: timer\r\nSession-Expires: 600\r\n"),
            accept(600, Refresher::Uac)
        );
    }

    #[test]
    fn uas_with_timers_off_adds_nothing() {
        // RFC 4028 9: a UAS not using the extension leaves Session-Expires out
        assert_eq!(
            uas(None, "Supported: timer\r\nSession-Expires: 600\r\n"),
            UasDecision::Off
        );
    }

    #[test]
    fn require_timer_in_the_2xx_when_the_uac_refreshes() {
        // RFC 4028 9: refresher=uac in the 2xx → Require: timer
        let n = Negotiated {
            interval: 1800,
            refresher: Refresher::Uac,
        };
        assert!(n.requires_timer());
        assert_eq!(n.header_value(), "1800;refresher=uac");
        assert!(!Negotiated {
            refresher: Refresher::Uas,
            ..n
        }
        .requires_timer());
    }

    #[test]
    fn uac_request_carries_supported_session_expires_and_min_se() {
        // RFC 4028 7.1: Supported: timer; Session-Expires not below Min-SE
        let t = UacTimer::new(OURS, 60, None);
        let h = t.headers();
        assert_eq!(h[0], ("Supported", "timer".to_owned()));
        assert_eq!(h[1], ("Session-Expires", "90".to_owned()));
        assert_eq!(h[2], ("Min-SE", "90".to_owned()));
        let refresh = UacTimer::new(OURS, 1800, Some(Refresher::Uac));
        assert_eq!(refresh.headers()[1].1, "1800;refresher=uac");
    }

    #[test]
    fn session_timer_422_retried_once_with_its_min_se() {
        // RFC 4028 7.3: retry with Session-Expires and Min-SE from the 422's Min-SE
        let mut t = UacTimer::new(OURS, 100, None);
        let r = response(422, "Min-SE: 600\r\n");
        assert!(t.on_422(&r.message().unwrap()));
        assert_eq!(t.interval(), 600);
        let h = t.headers();
        assert_eq!(h[1].1, "600");
        assert_eq!(h[2].1, "600");
        let again = response(422, "Min-SE: 900\r\n");
        assert!(!t.on_422(&again.message().unwrap()), "only one retry");
        let mut t = UacTimer::new(OURS, 1800, None);
        let no_min = response(422, "");
        assert!(!t.on_422(&no_min.message().unwrap()));
        let smaller = response(422, "Min-SE: 120\r\n");
        assert!(
            !t.on_422(&smaller.message().unwrap()),
            "asks for less than we did"
        );
    }

    #[test]
    fn uac_2xx_without_session_expires_means_no_timer() {
        // RFC 4028 7.2: no Session-Expires in the 2xx → no session expiration
        let t = UacTimer::new(OURS, 1800, None);
        let r = response(200, "");
        assert_eq!(t.on_2xx(&r.message().unwrap()), None);
        let r = response(
            200,
            "Session-Expires: 1200;refresher=uas\r\nRequire: timer\r\n",
        );
        assert_eq!(
            t.on_2xx(&r.message().unwrap()),
            Some(Negotiated {
                interval: 1200,
                refresher: Refresher::Uas
            })
        );
    }

    #[test]
    fn refresher_refreshes_at_half_the_interval() {
        // RFC 4028 10: "RECOMMENDED that this refresh be sent once half the session interval has elapsed"
        let t0 = Instant::now();
        let n = Negotiated {
            interval: 1800,
            refresher: Refresher::Uac,
        };
        let mut t = RunningTimer::start(t0, n, false);
        assert!(t.we_refresh());
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(900));
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(899)),
            TimerAction::Nothing
        );
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(900)),
            TimerAction::Refresh
        );
        // in flight: next is the expiry
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(1800 - 32));
        // the refresh succeeded: restart
        let t1 = t0 + Duration::from_secs(901);
        let t = RunningTimer::start(t1, n, false);
        assert_eq!(t.poll_timeout(), t1 + Duration::from_secs(900));
    }

    #[test]
    fn non_refresher_sends_bye_min_32_or_a_third_before_expiry() {
        // RFC 4028 10: BYE "slightly before the session expiration", min(32 s, SE/3)
        let t0 = Instant::now();
        for (interval, margin) in [(1800, 32), (90, 30), (96, 32)] {
            let n = Negotiated {
                interval,
                refresher: Refresher::Uac,
            };
            let mut t = RunningTimer::start(t0, n, true);
            assert!(!t.we_refresh());
            let bye = t0 + Duration::from_secs(u64::from(interval - margin));
            assert_eq!(t.poll_timeout(), bye, "{interval}");
            assert_eq!(t.handle_timeout(bye), TimerAction::Expire);
        }
    }

    #[test]
    fn refresher_role_follows_the_transaction_roles() {
        // RFC 4028 4 / 7.4: uac = the sender of the request the 2xx answers
        let n = Negotiated {
            interval: 1800,
            refresher: Refresher::Uas,
        };
        assert!(n.we_refresh(true));
        assert!(!n.we_refresh(false));
    }

    #[test]
    fn failed_refresh_retries_before_expiry_then_expires() {
        // RFC 4028 10: a session not refreshed in time ends
        let t0 = Instant::now();
        let n = Negotiated {
            interval: 1800,
            refresher: Refresher::Uas,
        };
        let mut t = RunningTimer::start(t0, n, true);
        let half = t0 + Duration::from_secs(900);
        assert_eq!(t.handle_timeout(half), TimerAction::Refresh);
        t.refresh_failed(half);
        let next = t.poll_timeout();
        assert!(next > half && next < t0 + Duration::from_secs(1768));
        assert_eq!(t.handle_timeout(next), TimerAction::Refresh);
        // failing again and again: the retries halve what is left, then stop (no loop at
        // one instant), and the session expires
        let mut now = next;
        let mut retries = 0;
        loop {
            t.refresh_failed(now);
            let due = t.poll_timeout();
            assert!(due > now || due == t0 + Duration::from_secs(1768));
            now = due;
            match t.handle_timeout(now) {
                TimerAction::Refresh => retries += 1,
                TimerAction::Expire => break,
                TimerAction::Nothing => panic!("a timer that does nothing"),
            }
            assert!(retries < 64);
        }
        assert_eq!(now, t0 + Duration::from_secs(1768));
    }

    proptest::proptest! {
        #[test]
        fn uas_negotiation_respects_min_se_and_never_increases(
            expires in 0u32..5000, min_se in 0u32..2000,
            se in proptest::option::of(0u32..u32::MAX), their_min in proptest::option::of(0u32..4000),
            supported in proptest::bool::ANY, refresher in 0u8..3,
        ) {
            // RFC 4028 9: 422 only to a UAC that supports timers and asks below our Min-SE;
            // the 2xx interval is at least both Min-SE, never above the request's (when
            // that is at least our minimum), and uas refreshes for a UAC without support
            let mut extra = String::new();
            if supported { extra.push_str("Supported: timer\r\n"); }
            if let Some(se) = se {
                let r = ["", ";refresher=uac", ";refresher=uas"][refresher as usize];
                extra.push_str(&format!("Session-Expires: {se}{r}\r\n"));
            }
            if let Some(m) = their_min { extra.push_str(&format!("Min-SE: {m}\r\n")); }
            let config = SessionTimer { expires, min_se };
            let our_min = min_se.max(MIN_SE_FLOOR);
            match uas(Some(config), &extra) {
                UasDecision::Off => proptest::prop_assert!(false, "timers are on"),
                UasDecision::TooSmall { min_se: m } => {
                    proptest::prop_assert!(supported);
                    proptest::prop_assert!(se.is_some_and(|se| se < our_min));
                    proptest::prop_assert!(m >= our_min);
                }
                UasDecision::Accept(n) => {
                    proptest::prop_assert!(n.interval >= our_min);
                    if let Some(se) = se {
                        proptest::prop_assert!(n.interval <= se.max(our_min));
                        if se >= our_min.max(their_min.unwrap_or(0)) {
                            proptest::prop_assert!(n.interval >= their_min.unwrap_or(0));
                        }
                    }
                    if !supported {
                        proptest::prop_assert_eq!(n.refresher, Refresher::Uas);
                    }
                    let t = RunningTimer::start(Instant::now(), n, true);
                    proptest::prop_assert!(t.interval() <= MAX_INTERVAL);
                }
            }
        }
    }
}
