//! The registration client (RFC 3261 section 10.2), sans-IO: one binding of a Contact to an
//! address-of-record, kept alive until it is stopped.
//!
//! [`Registration`] is a pure state machine. It never sends anything itself: it hands out
//! the REGISTER to send ([`Registration::poll_request`]) and is told how it went
//! ([`Registration::handle_response`], [`Registration::handle_failure`]); it names its next
//! deadline ([`Registration::poll_timeout`]) and is told when it has come
//! ([`Registration::handle_timeout`]). Time and randomness are arguments. So any driver can
//! run it: [`RegistrationUser`] runs it as a [`TransactionUser`] on an [`Endpoint`] (the mio
//! driver), and the tokio driver's `Client::register` in a task of its own.
//!
//! What it does, and where each rule comes from:
//!
//! - every REGISTER of one registration carries the same Call-ID and From tag, and its CSeq
//!   is one more than the last one's (RFC 3261 sections 10.2 and 10.2.4), credentials or
//!   not (section 22.2);
//! - one REGISTER at a time: a new one only after the last one's final response or failure
//!   (section 10.2);
//! - the binding is refreshed before the expiry the registrar *granted*: the `expires`
//!   parameter of the Contact in the 2xx that matches ours (URIs compared by section
//!   19.1.4), else the 2xx's Expires header, else what was asked (section 10.2.4); a grant
//!   of zero is a failure. The
//!   refresh is sent [`refresh_margin`] before that expiry: a tenth of it, at least 32 s
//!   (64*T1, the longest a REGISTER transaction can take over UDP, section 17.1.2.2), at
//!   most half of it;
//! - 423 (Interval Too Brief): asked again at once with the Min-Expires of the response
//!   (section 10.2.8), up to three times in a row (a registrar raising its minimum at every
//!   answer is a failure after that);
//! - 401 and 407: answered at once with credentials by the
//!   [`DigestClient`], once per new challenge (section 22.2);
//!   refreshes and the removal carry credentials from the nonces kept (RFC 7616 section
//!   3.4). A challenge it cannot answer (credentials refused: a nonce already answered
//!   challenged again; an unknown algorithm; no credentials configured) is a failure, and
//!   refused credentials are forgotten, so the attempt after the backoff starts afresh;
//! - any other failure (a 3xx-6xx final response, a timeout, a transport error, a 2xx that
//!   granted no time): tried again after a wait that grows per RFC 5626 section
//!   4.5 with each consecutive failure, without ever giving up (see [`Backoff`]); a 503 with
//!   Retry-After waits what it says (RFC 3261 section 21.5.4);
//! - [`Registration::stop`] removes the binding: our Contact with `expires=0` (section
//!   10.2.2).
//!
//! The request goes where the caller sends it: [`RegistrationUser`] sends it to a
//! [`NextHop`]: an address, or a URI the endpoint locates (RFC 3261 section 10.2.6 with RFC
//! 3263: a registrar named `sip:example.test` is found by NAPTR, SRV and A/AAAA records,
//! with failover); [`RegistrationUser::to_registrar`] sends it by its own Request-URI.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sip_core::registration::{Registration, RegistrationConfig, RegistrationState};
//! use sip_core::{OwnedMessage, ResponseBuilder, SeededRng};
//!
//! let mut seed = [0u8; 32];
//! getrandom::fill(&mut seed)?;
//! let config = RegistrationConfig::new(
//!     "sip:example.com",
//!     "sip:alice@example.com",
//!     "<sip:alice@192.0.2.4:5060>",
//! );
//! let now = Instant::now();
//! let mut reg = Registration::new(now, config, SeededRng::new(seed))?;
//! let register = reg.poll_request(now).expect("the first REGISTER is due at once");
//!
//! // The registrar (here written by hand; the endpoint adds the Via) grants 600 s.
//! let mut rng = SeededRng::new(seed);
//! let ok = ResponseBuilder::from_view(&register.view(), 200)
//!     .header("Contact", "<sip:alice@192.0.2.4:5060>;expires=600")
//!     .build(&mut rng)?;
//! reg.handle_response(now, &ok);
//! assert!(matches!(reg.state(), RegistrationState::Registered { .. }));
//! // Refreshed 60 s before the granted expiry, not the 3600 s asked for.
//! assert_eq!(reg.poll_timeout(), Some(now + Duration::from_secs(540)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::auth::{DigestClient, DigestError};
use crate::endpoint::{ClientTxId, Endpoint, Event, TransactionUser, TxId};
use crate::message::Contact;
use crate::rng::push_random_token;
use crate::{
    BuildError, HeaderName, HeaderValue, Method, NextHop, OwnedMessage, RequestBuilder, Rng,
    SeededRng, Uri,
};

/// The expiry asked for when the configuration names none: an hour, the default of RFC 3261
/// section 10.2.1.1.
pub const DEFAULT_EXPIRES: u32 = 3600;

/// The longest wait a Retry-After can impose: a day. A longer one is taken as a day, so
/// that a bogus value cannot suspend the registration for good.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Username and password for digest authentication (RFC 3261 section 22.2).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

// The password is a secret: never print it.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The waits between attempts after failures (RFC 5626 section 4.5):
/// `wait = min(max_time, base_time * 2^consecutive_failures)`, randomized between 50% and
/// 100% of that, where `base_time` is [`Backoff::base_time_all_failed`] when no other
/// registration of the UA is up (always, for a UA with one registration) and
/// [`Backoff::base_time_some_up`] otherwise ([`Registration::set_other_registrations_up`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The base time when every registration of the UA has failed: 30 s.
    pub base_time_all_failed: Duration,
    /// The base time when some other registration is up: 90 s.
    pub base_time_some_up: Duration,
    /// The longest wait: 1800 s.
    pub max_time: Duration,
}

impl Backoff {
    /// The values of RFC 5626 section 4.5.
    pub const RFC5626: Backoff = Backoff {
        base_time_all_failed: Duration::from_secs(30),
        base_time_some_up: Duration::from_secs(90),
        max_time: Duration::from_secs(1800),
    };

    /// The upper bound of the wait after `failures` consecutive failures (the wait is drawn
    /// between half of it and all of it).
    pub fn upper_bound(&self, failures: u32, others_up: bool) -> Duration {
        let base = if others_up {
            self.base_time_some_up
        } else {
            self.base_time_all_failed
        };
        let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
        base.saturating_mul(factor).min(self.max_time)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::RFC5626
    }
}

/// What a registration registers, and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RegistrationConfig {
    /// The Request-URI: the registrar's domain, without a user part (RFC 3261 section
    /// 10.2), e.g. `sip:example.com`.
    pub registrar: String,
    /// The address-of-record, written in To and From (section 10.2), e.g.
    /// `sip:alice@example.com`.
    pub aor: String,
    /// Our Contact, as a name-addr with any parameters (`+sip.instance`, `reg-id`), e.g.
    /// `<sip:alice@192.0.2.4:5060>`. The registration refreshes and removes this binding
    /// only.
    pub contact: String,
    /// The expiry asked for, in seconds (section 10.2.1.1); [`DEFAULT_EXPIRES`] by default.
    /// The registrar may grant less, or ask for more with 423.
    pub expires: u32,
    /// Credentials for digest challenges (401, 407); without them a challenge is a failure.
    pub credentials: Option<Credentials>,
    /// The waits after failures.
    pub backoff: Backoff,
    /// Further header lines for every REGISTER (`User-Agent`, `Supported`, ...).
    pub headers: Vec<(String, String)>,
}

impl RegistrationConfig {
    /// A registration of `contact` for `aor` at `registrar`, asking for an hour, without
    /// credentials.
    pub fn new(registrar: &str, aor: &str, contact: &str) -> RegistrationConfig {
        RegistrationConfig {
            registrar: registrar.to_owned(),
            aor: aor.to_owned(),
            contact: contact.to_owned(),
            expires: DEFAULT_EXPIRES,
            credentials: None,
            backoff: Backoff::RFC5626,
            headers: Vec::new(),
        }
    }

    /// The same with `expires` seconds asked for.
    pub fn with_expires(mut self, expires: u32) -> RegistrationConfig {
        self.expires = expires;
        self
    }

    /// The same with credentials for digest challenges.
    pub fn with_credentials(mut self, username: &str, password: &str) -> RegistrationConfig {
        self.credentials = Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        });
        self
    }

    /// The same with a header line added to every REGISTER.
    pub fn with_header(mut self, name: &str, value: &str) -> RegistrationConfig {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Why a REGISTER did not register.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// A final response other than 2xx, and not one the registration answers at once (a
    /// 401 or 407 it can answer, a 423 with a usable Min-Expires).
    Status {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// No final response (timer F, RFC 3261 section 17.1.2.2).
    Timeout,
    /// The transport could not carry the request (section 17.1.4), or the driver refused
    /// to send it.
    Transport,
    /// A 2xx that granted our binding no time (our Contact with `expires=0`, or Expires: 0).
    NotBound,
    /// The REGISTER could not be written.
    Unsendable,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status { code, reason } => write!(f, "{code} {reason}"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Transport => f.write_str("transport error"),
            Failure::NotBound => f.write_str("the registrar granted no time"),
            Failure::Unsendable => f.write_str("the REGISTER could not be written"),
        }
    }
}

/// Where a registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationState {
    /// A REGISTER is due or on its way (the first one, or the next after a failure), and
    /// no binding is known to exist.
    Registering,
    /// The registrar accepted the binding. Refreshes happen in this state.
    Registered {
        /// When the binding expires, by the expiry the registrar granted.
        expires_at: Instant,
        /// When the refresh is sent.
        refresh_at: Instant,
    },
    /// The last attempt failed; the next one is sent at `at`.
    Retrying {
        /// When the next REGISTER is sent.
        at: Instant,
        /// What went wrong.
        failure: Failure,
        /// Consecutive failures so far.
        failures: u32,
    },
    /// [`Registration::stop`] was called; the REGISTER removing the binding is due or on
    /// its way.
    Unregistering,
    /// Stopped: the binding was removed, or the attempt to remove it is over.
    Unregistered {
        /// Why removing the binding failed, if it did (it then expires on its own).
        failure: Option<Failure>,
    },
}

/// Something that happened, for logs and for applications that follow each exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationEvent {
    /// A REGISTER was handed out by [`Registration::poll_request`].
    Sent {
        /// Its CSeq number.
        cseq: u32,
        /// The expiry it asks for; 0 removes the binding.
        expires: u32,
        /// Does it carry credentials?
        authorized: bool,
    },
    /// A final response to the REGISTER in flight.
    Response {
        /// Its CSeq number.
        cseq: u32,
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The REGISTER in flight got no final response.
    Failed {
        /// Its CSeq number.
        cseq: u32,
        /// Timeout or transport error.
        failure: Failure,
    },
    /// The state changed (see [`Registration::state`]).
    State(RegistrationState),
}

/// The REGISTER waiting for its final response.
#[derive(Debug)]
struct InFlight {
    request: OwnedMessage,
    cseq: u32,
    /// It removes the binding.
    unregister: bool,
}

/// One registration: a sans-IO state machine. See the module docs.
#[derive(Debug)]
pub struct Registration {
    config: RegistrationConfig,
    rng: SeededRng,
    call_id: String,
    from: String,
    /// The CSeq number of the last REGISTER handed out.
    cseq: u32,
    /// The expiry asked for now (the configured one, or a 423's Min-Expires).
    expires: u32,
    state: RegistrationState,
    in_flight: Option<InFlight>,
    /// A request ready to go at once (the answer to a challenge).
    ready: Option<OwnedMessage>,
    /// When the next REGISTER is due, if one is.
    due: Option<Instant>,
    failures: u32,
    /// 423 responses answered at once in a row.
    too_brief: u8,
    others_up: bool,
    stopping: bool,
    /// A binding may exist: some REGISTER got a 2xx, or got no final response (it may
    /// have been processed). Only then does [`Registration::stop`] send a removal.
    maybe_bound: bool,
    digest: Option<DigestClient>,
    events: VecDeque<RegistrationEvent>,
}

/// Events kept for the application at most; older ones are dropped first, so an application
/// that never reads them does not make the registration grow.
const MAX_EVENTS: usize = 64;

/// 423 (Interval Too Brief) responses answered at once in a row; one more is a failure.
const MAX_TOO_BRIEF: u8 = 3;

/// How long before the granted expiry the refresh is sent: a tenth of the expiry, at least
/// 32 s (64*T1, the longest a REGISTER transaction takes, RFC 3261 section 17.1.2.2), at
/// most half of it. 3600 s granted: refreshed after 3240 s; 60 s: after 30 s.
pub fn refresh_margin(granted: Duration) -> Duration {
    (granted / 10).max(Duration::from_secs(32)).min(granted / 2)
}

impl Registration {
    /// A registration whose first REGISTER is due at `now`. `rng` draws the Call-ID, the
    /// From tag, the backoff jitter and the digest cnonces: give it a seed of its own from
    /// the operating system. Fails when the configuration does not make a valid REGISTER
    /// (a URI with CR or LF, ...) or the credentials hold CR, LF or NUL.
    pub fn new(
        now: Instant,
        config: RegistrationConfig,
        mut rng: SeededRng,
    ) -> Result<Registration, BuildError> {
        let mut call_id = String::with_capacity(24);
        push_random_token(&mut call_id, &mut rng, 24);
        let mut from = format!("<{}>;tag=", config.aor);
        push_random_token(&mut from, &mut rng, 10);
        let digest = config
            .credentials
            .as_ref()
            .map(|c| DigestClient::new(&c.username, &c.password));
        let reg = Registration {
            expires: config.expires,
            config,
            rng,
            call_id,
            from,
            cseq: 0,
            state: RegistrationState::Registering,
            in_flight: None,
            ready: None,
            due: Some(now),
            failures: 0,
            too_brief: 0,
            others_up: false,
            stopping: false,
            maybe_bound: false,
            digest,
            events: VecDeque::new(),
        };
        // Refuse a configuration that cannot be written now rather than at the first send;
        // credentials too, which go into Authorization lines.
        if let Some(c) = &reg.config.credentials {
            crate::builder::check_text("username", &c.username)?;
            crate::builder::check_text("password", &c.password)?;
        }
        reg.build(1, reg.expires)?;
        Ok(reg)
    }

    /// The configuration.
    pub fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    /// The Call-ID of every REGISTER of this registration.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Where the registration stands.
    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    /// Is a REGISTER waiting for its final response?
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Tells the registration whether another registration of the UA is up, which sets
    /// the base time of its backoff (RFC 5626 section 4.5). False until told otherwise.
    pub fn set_other_registrations_up(&mut self, up: bool) {
        self.others_up = up;
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        self.events.pop_front()
    }

    /// When [`Registration::poll_request`] has a REGISTER to give (or `None` while one is
    /// in flight, or after the registration is over).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        self.due
    }

    /// Nothing happens at a deadline but that a REGISTER falls due: call
    /// [`Registration::poll_request`]. Present for drivers that call it for every machine.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }

    /// The REGISTER to send now, if one is due: to the target the caller chose, without a
    /// Via (the endpoint writes it). Only one is in flight at a time (RFC 3261 section
    /// 10.2); report its fate with [`Registration::handle_response`] or
    /// [`Registration::handle_failure`].
    pub fn poll_request(&mut self, now: Instant) -> Option<OwnedMessage> {
        if self.in_flight.is_some() || self.due.is_none_or(|d| d > now) {
            return None;
        }
        let unregister = self.stopping;
        let expires = if unregister { 0 } else { self.expires };
        let request = match self.ready.take() {
            Some(r) => r,
            None => {
                let built = match self.build(self.cseq.wrapping_add(1), expires) {
                    Ok(r) => r,
                    // Checked at construction (a Min-Expires only changes a number); should
                    // it fail anyway, it is a failure like another, not a deadline in the past.
                    Err(_) => {
                        self.in_flight_failed(now, Failure::Unsendable);
                        return None;
                    }
                };
                // Credentials from the nonces kept (RFC 7616 section 3.4), so that a refresh
                // is not challenged again; without any, the request as it is.
                match self.digest.as_mut() {
                    Some(d) => d.authorize(&built, &mut self.rng).unwrap_or(built),
                    None => built,
                }
            }
        };
        // The CSeq is read back from the request: the digest client writes its own.
        let cseq = cseq_of(&request).unwrap_or(self.cseq.wrapping_add(1));
        self.cseq = cseq;
        self.due = None;
        let authorized = {
            let v = request.view();
            v.header(HeaderName::Authorization).is_some()
                || v.header(HeaderName::ProxyAuthorization).is_some()
        };
        self.in_flight = Some(InFlight {
            request: request.clone(),
            cseq,
            unregister,
        });
        self.push_event(RegistrationEvent::Sent {
            cseq,
            expires,
            authorized,
        });
        // The wait is over: trying again. (A refresh stays Registered: the binding holds.)
        if matches!(self.state, RegistrationState::Retrying { .. }) {
            self.set_state(RegistrationState::Registering);
        }
        Some(request)
    }

    /// A response to the REGISTER in flight. Responses to anything else (another Call-ID,
    /// an older CSeq) and provisional ones are ignored.
    pub fn handle_response(&mut self, now: Instant, response: &OwnedMessage) {
        let Some(code) = response.view().status() else {
            return;
        };
        if code < 200 {
            return;
        }
        let Ok(msg) = response.message() else {
            return;
        };
        let Some(flight) = self.in_flight.as_ref() else {
            return;
        };
        if msg.call_id() != Some(self.call_id.as_str())
            || msg.cseq().map(|c| (c.seq, c.method)) != Some((flight.cseq, Method::Register))
        {
            return;
        }
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        let reason = response.reason().unwrap_or("").to_owned();
        self.push_event(RegistrationEvent::Response {
            cseq: flight.cseq,
            code,
            reason: reason.clone(),
        });
        // Challenges: answered once per new challenge (section 22.2), removal included; not
        // a registration's challenge that comes after a stop (the removal goes instead).
        if (code == 401 || code == 407) && flight.unregister == self.stopping {
            if let Some(digest) = self.digest.as_mut() {
                match digest.retry(&flight.request, response, &mut self.rng) {
                    Ok(retry) => {
                        self.ready = Some(retry);
                        self.due = Some(now);
                        return;
                    }
                    // Refused credentials are not sent again: the attempt after the
                    // backoff starts without them and answers the challenge it gets.
                    Err(DigestError::Rejected { .. }) => digest.forget(),
                    Err(_) => {}
                }
            }
        }
        if flight.unregister {
            let failure = (!(200..300).contains(&code)).then_some(Failure::Status { code, reason });
            self.set_state(RegistrationState::Unregistered { failure });
            return;
        }
        if (200..300).contains(&code) {
            self.registered(now, &msg);
            return;
        }
        if code == 423 {
            // Section 10.2.8: ask again with at least the registrar's minimum. A minimum
            // not above what was asked would be refused again: a failure.
            let min = msg.values(HeaderName::MinExpires).find_map(|v| match v {
                HeaderValue::Number(n) => Some(n),
                _ => None,
            });
            // A registrar raising its minimum at every answer is not followed for ever.
            let min = min.filter(|_| self.too_brief < MAX_TOO_BRIEF);
            if let Some(min) = min.filter(|&m| m > self.expires) {
                self.too_brief += 1;
                self.expires = min;
                self.due = Some(now);
                self.next_after_response(now);
                return;
            }
        }
        let retry_after = (code == 503)
            .then(|| {
                msg.values(HeaderName::RetryAfter).find_map(|v| match v {
                    HeaderValue::Seconds(s) => Some(Duration::from_secs(u64::from(s.seconds))),
                    _ => None,
                })
            })
            .flatten();
        self.failed(now, Failure::Status { code, reason }, retry_after);
    }

    /// The REGISTER in flight got no final response: `Failure::Timeout` (the transaction
    /// timed out) or `Failure::Transport` (the transport failed, or the driver could not
    /// send it).
    pub fn handle_failure(&mut self, now: Instant, failure: Failure) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        self.push_event(RegistrationEvent::Failed {
            cseq: flight.cseq,
            failure: failure.clone(),
        });
        if flight.unregister {
            self.set_state(RegistrationState::Unregistered {
                failure: Some(failure),
            });
            return;
        }
        // Maybe the registrar processed it and only the answer was lost.
        self.maybe_bound = true;
        self.failed(now, failure, None);
    }

    /// Removes the binding: the next REGISTER (at once, or after the final response of the
    /// one in flight) carries our Contact with `expires=0` (RFC 3261 section 10.2.2). Ends
    /// in [`RegistrationState::Unregistered`] after its final response or failure; without
    /// a removal when no binding can exist (no REGISTER got a 2xx or went unanswered).
    pub fn stop(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.ready = None;
        if self.in_flight.is_some() {
            // After its final response (section 10.2: one at a time).
            self.due = None;
            self.set_state(RegistrationState::Unregistering);
        } else {
            self.next_after_response(now);
        }
    }

    /// Has [`Registration::stop`] finished?
    pub fn is_unregistered(&self) -> bool {
        matches!(self.state, RegistrationState::Unregistered { .. })
    }

    fn build(&self, cseq: u32, expires: u32) -> Result<OwnedMessage, BuildError> {
        let contact = if expires == 0 {
            format!("{};expires=0", self.config.contact)
        } else {
            self.config.contact.clone()
        };
        let mut b = RequestBuilder::new(Method::Register, &self.config.registrar)
            .from(&self.from)
            .to(&format!("<{}>", self.config.aor))
            .call_id(&self.call_id)
            .cseq(cseq)
            .contact(&contact)
            .header("Expires", &expires.to_string());
        for (n, v) in &self.config.headers {
            b = b.header(n, v);
        }
        // The builder draws nothing here (From tag and Call-ID are given); it takes an rng
        // for the general case.
        b.build(&mut NoRandom)
    }

    /// A 2xx to a REGISTER that adds or refreshes the binding.
    fn registered(&mut self, now: Instant, msg: &crate::Message<'_>) {
        let Some(granted) = self.granted(msg) else {
            self.failed(now, Failure::NotBound, None);
            return;
        };
        self.failures = 0;
        self.too_brief = 0;
        self.maybe_bound = true;
        // (a year stands for longer expiries: an Instant cannot name every u32 of seconds
        // on every platform)
        let granted = Duration::from_secs(u64::from(granted)).min(Duration::from_secs(365 * 86400));
        let expires_at = now + granted;
        let refresh_at = expires_at - refresh_margin(granted);
        self.due = Some(refresh_at);
        self.set_state(RegistrationState::Registered {
            expires_at,
            refresh_at,
        });
        self.next_after_response(now);
    }

    /// The expiry granted to our binding by a 2xx (RFC 3261 section 10.2.4): the `expires`
    /// of the Contact that matches ours (section 19.1.4), else the Expires header, else what
    /// was asked. `None` when it is zero (the binding is gone).
    fn granted(&self, msg: &crate::Message<'_>) -> Option<u32> {
        let ours = contact_uri(&self.config.contact).and_then(Uri::parse);
        let by_param = msg.contacts().find_map(|c| match c {
            Contact::Addr(a) if ours.as_ref().is_some_and(|o| o.equivalent(&a.uri)) => {
                Some(a.expires())
            }
            _ => None,
        });
        let granted = match by_param {
            Some(Some(e)) => e,
            // Ours without a parameter, or not found (a registrar that lists no bindings,
            // or rewrites our Contact, say behind a NAT): the header, else what was asked.
            Some(None) | None => msg.expires().unwrap_or(self.expires),
        };
        (granted > 0).then_some(granted)
    }

    /// A REGISTER that could not even be sent: a removal ends, anything else is retried.
    fn in_flight_failed(&mut self, now: Instant, failure: Failure) {
        self.due = None;
        if self.stopping {
            self.set_state(RegistrationState::Unregistered {
                failure: Some(failure),
            });
        } else {
            self.failed(now, failure, None);
        }
    }

    fn failed(&mut self, now: Instant, failure: Failure, retry_after: Option<Duration>) {
        self.failures = self.failures.saturating_add(1);
        self.too_brief = 0;
        let wait = match retry_after {
            Some(w) => w.min(MAX_RETRY_AFTER),
            None => {
                let upper = self
                    .config
                    .backoff
                    .upper_bound(self.failures, self.others_up);
                jitter(upper, &mut self.rng)
            }
        };
        let at = now + wait;
        self.due = Some(at);
        self.set_state(RegistrationState::Retrying {
            at,
            failure,
            failures: self.failures,
        });
        self.next_after_response(now);
    }

    /// After a stop, once no REGISTER is in flight: the removal goes now, or nothing is
    /// left to remove.
    fn next_after_response(&mut self, now: Instant) {
        if !self.stopping {
            return;
        }
        self.ready = None;
        if self.maybe_bound {
            self.due = Some(now);
            self.set_state(RegistrationState::Unregistering);
        } else {
            self.due = None;
            self.set_state(RegistrationState::Unregistered { failure: None });
        }
    }

    fn set_state(&mut self, state: RegistrationState) {
        if self.state != state {
            self.state = state.clone();
            self.push_event(RegistrationEvent::State(state));
        }
    }

    fn push_event(&mut self, event: RegistrationEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// A wait drawn uniformly between half of `upper` and all of it (RFC 5626 section 4.5), at
/// millisecond resolution.
fn jitter(upper: Duration, rng: &mut dyn Rng) -> Duration {
    let upper_ms = u64::try_from(upper.as_millis()).unwrap_or(u64::MAX);
    let lower_ms = upper_ms / 2;
    let span = upper_ms - lower_ms;
    let pick = if span == 0 {
        0
    } else {
        rng.next_u64() % (span + 1)
    };
    Duration::from_millis(lower_ms + pick)
}

/// The URI of a Contact value written as a name-addr (`"A" <sip:a@b>;p`) or an addr-spec.
fn contact_uri(contact: &str) -> Option<&str> {
    match (contact.find('<'), contact.find('>')) {
        (Some(open), Some(close)) if open < close => Some(&contact[open + 1..close]),
        _ => Some(contact.split(';').next().unwrap_or(contact).trim()),
    }
}

fn cseq_of(request: &OwnedMessage) -> Option<u32> {
    request
        .view()
        .header(HeaderName::CSeq)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// For builds that draw nothing.
struct NoRandom;

impl Rng for NoRandom {
    fn next_u64(&mut self) -> u64 {
        0
    }
}

/// A [`Registration`] run as the [`TransactionUser`] of an [`Endpoint`]: it sends its
/// REGISTERs through the endpoint to a fixed [`NextHop`] (an address, or a URI the endpoint
/// locates, RFC 3263) and feeds back their responses,
/// timeouts and transport errors. Events of other transactions are ignored (an application
/// with more to do forwards to [`RegistrationUser::handle_endpoint_event`] from its own
/// transaction user).
#[derive(Debug)]
pub struct RegistrationUser {
    registration: Registration,
    /// Where the REGISTERs go; `None`: by their Request-URI (the registrar's URI).
    hop: Option<NextHop>,
    tx: Option<ClientTxId>,
}

impl RegistrationUser {
    /// Runs `registration`, sending to `hop`: a [`Target`](crate::Target), or a
    /// [`NextHop::Uri`] such as an outbound proxy's the endpoint locates.
    pub fn new(registration: Registration, hop: impl Into<NextHop>) -> RegistrationUser {
        RegistrationUser {
            registration,
            hop: Some(hop.into()),
            tx: None,
        }
    }

    /// Runs `registration`, sending each REGISTER where its Request-URI (the registrar URI
    /// of the configuration) leads: RFC 3261 section 10.2.6 with RFC 3263, so a registrar
    /// can be a name (`sip:example.test`) the endpoint locates, with failover between its
    /// servers.
    pub fn to_registrar(registration: Registration) -> RegistrationUser {
        RegistrationUser {
            registration,
            hop: None,
            tx: None,
        }
    }

    /// The registration.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// The registration, to stop it or read its events.
    pub fn registration_mut(&mut self) -> &mut Registration {
        &mut self.registration
    }

    /// Starts removing the binding ([`Registration::stop`]); the driver keeps running the
    /// transaction user until [`Registration::is_unregistered`].
    pub fn stop(&mut self, now: Instant, endpoint: &mut Endpoint) {
        self.registration.stop(now);
        self.send_due(now, endpoint);
    }

    /// Hands an endpoint event to the registration. Returns whether it was the
    /// registration's (a response, timeout or transport error of its REGISTER).
    pub fn handle_endpoint_event(
        &mut self,
        now: Instant,
        event: &Event,
        endpoint: &mut Endpoint,
    ) -> bool {
        let ours = |tx: &ClientTxId, me: Option<ClientTxId>| me == Some(*tx);
        match event {
            Event::Response { tx, response } if ours(tx, self.tx) => {
                if response.view().status().is_some_and(|c| c >= 200) {
                    self.tx = None;
                }
                self.registration.handle_response(now, response);
            }
            Event::Timeout {
                tx: TxId::Client(tx),
                ..
            } if ours(tx, self.tx) => {
                self.tx = None;
                self.registration.handle_failure(now, Failure::Timeout);
            }
            Event::TransportError {
                tx: TxId::Client(tx),
            } if ours(tx, self.tx) => {
                self.tx = None;
                self.registration.handle_failure(now, Failure::Transport);
            }
            _ => return false,
        }
        self.send_due(now, endpoint);
        true
    }

    /// Sends the REGISTER that is due, if any.
    fn send_due(&mut self, now: Instant, endpoint: &mut Endpoint) {
        // A request the endpoint refuses is a transport failure, retried after the backoff:
        // at most one attempt per call.
        if let Some(request) = self.registration.poll_request(now) {
            let hop = match &self.hop {
                Some(h) => Some(h.clone()),
                None => crate::hop::of_request(&request),
            };
            let sent = match hop {
                Some(hop) => endpoint.send_request(now, &request, hop).ok(),
                None => None,
            };
            match sent.ok_or(()) {
                Ok(tx) => self.tx = Some(tx),
                Err(_) => self.registration.handle_failure(now, Failure::Transport),
            }
        }
    }
}

impl TransactionUser for RegistrationUser {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        self.handle_endpoint_event(now, &event, endpoint);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.registration.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        self.registration.handle_timeout(now);
        self.send_due(now, endpoint);
    }
}
