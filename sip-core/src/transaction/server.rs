//! Server transactions: INVITE (RFC 3261 section 17.2.1, figure 7, with RFC 6026's Accepted
//! state) and non-INVITE (section 17.2.2, figure 8).

use std::time::{Duration, Instant};

use super::{Slots, Timer, Timers, LIFETIME, RETRANSMIT};

/// The state of a server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerState {
    /// Non-INVITE request received, nothing sent yet (figure 8).
    Trying,
    /// A provisional response is the last sent (for INVITE: also the initial state).
    Proceeding,
    /// A 2xx to the INVITE was sent (RFC 6026 section 7.1).
    Accepted,
    /// A final response (3xx-6xx for INVITE; any for non-INVITE) was sent.
    Completed,
    /// The ACK for the INVITE's non-2xx final response arrived.
    Confirmed,
    /// Done; the transaction is about to be freed.
    Terminated,
}

/// What a server transaction asks for after an event.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerStep {
    /// Resend the last response sent.
    pub(crate) resend_response: bool,
    /// Send 100 Trying (the transaction user was silent for 200 ms).
    pub(crate) send_trying: bool,
    /// Pass the ACK to the transaction user (RFC 6026: an ACK in Accepted).
    pub(crate) deliver_ack: bool,
    /// Tell the transaction user no ACK came (timer H), or it never answered (the
    /// unanswered-request timer), naming the timer.
    pub(crate) timeout: Option<Timer>,
    /// Answer 408 on the transaction user's behalf (an INVITE it never answered).
    pub(crate) send_timeout: bool,
}

/// Why a response cannot be sent on a server transaction now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrongState;

/// The state machine of one server transaction.
#[derive(Debug, Clone)]
pub(crate) struct ServerMachine {
    pub(crate) invite: bool,
    pub(crate) reliable: bool,
    pub(crate) state: ServerState,
    interval: Duration,
    pub(crate) timers: Slots,
    /// Has any response been sent (so there is something to resend)?
    pub(crate) responded: bool,
}

impl ServerMachine {
    /// A transaction for a request just received. An INVITE transaction starts in
    /// Proceeding with the 100 Trying delay armed; a non-INVITE one in Trying.
    pub(crate) fn start(invite: bool, reliable: bool, now: Instant, t: &Timers) -> Self {
        let mut timers: Slots = [None, None];
        let state = if invite {
            timers[RETRANSMIT] = Some((now + t.trying_delay, Timer::Trying));
            timers[LIFETIME] = Some((now + t.c, Timer::Unanswered));
            ServerState::Proceeding
        } else {
            timers[LIFETIME] = Some((now + t.t1x64(), Timer::Unanswered));
            ServerState::Trying
        };
        ServerMachine {
            invite,
            reliable,
            state,
            interval: t.t1,
            timers,
            responded: false,
        }
    }

    /// A retransmission of the request that created the transaction arrived.
    pub(crate) fn on_request(&mut self) -> ServerStep {
        let resend = match self.state {
            // Figures 7 and 8: resend the last provisional or the final response.
            ServerState::Proceeding | ServerState::Completed => self.responded,
            // Trying, Accepted (RFC 6026: absorbed), Confirmed: nothing to send.
            _ => false,
        };
        ServerStep {
            resend_response: resend,
            ..ServerStep::default()
        }
    }

    /// An ACK matched this INVITE transaction.
    pub(crate) fn on_ack(&mut self, now: Instant, t: &Timers) -> ServerStep {
        let mut step = ServerStep::default();
        match self.state {
            ServerState::Completed => {
                self.state = ServerState::Confirmed;
                self.timers = [None, None];
                if self.reliable {
                    self.state = ServerState::Terminated;
                } else {
                    self.timers[LIFETIME] = Some((now + t.t4, Timer::I));
                }
            }
            ServerState::Accepted => step.deliver_ack = true,
            _ => {}
        }
        step
    }

    /// The transaction user sends a response with `code`.
    pub(crate) fn on_send(
        &mut self,
        now: Instant,
        code: u16,
        t: &Timers,
    ) -> Result<(), WrongState> {
        match (self.invite, self.state, code) {
            (true, ServerState::Proceeding, 100..=199) => {
                self.timers[RETRANSMIT] = None;
                // A provisional response other than 100 says the request is being worked
                // on (a proxy relays one from a ringing branch): the safety timer restarts
                // with room for the downstream timer C it restarts too, the 64*T1 the
                // CANCEL and its 487 may take, and T4 of margin (sections 16.6 step 11 and
                // 16.8), so the proxy's branch, not this timer, decides how a long-ringing
                // call ends.
                if code > 100 {
                    let wait = t.c.saturating_add(t.t1x64()).saturating_add(t.t4);
                    self.timers[LIFETIME] = Some((now + wait, Timer::Unanswered));
                }
            }
            (true, ServerState::Proceeding, 200..=299) => {
                self.state = ServerState::Accepted;
                self.timers = [None, Some((now + t.t1x64(), Timer::L))];
            }
            // RFC 6026 section 7.1: 2xx retransmissions from the transaction user.
            (true, ServerState::Accepted, 200..=299) => {}
            (true, ServerState::Proceeding, 300..=699) => {
                self.state = ServerState::Completed;
                self.timers = [None, Some((now + t.t1x64(), Timer::H))];
                if !self.reliable {
                    self.interval = t.t1;
                    self.timers[RETRANSMIT] = Some((now + t.t1, Timer::G));
                }
            }
            (false, ServerState::Trying | ServerState::Proceeding, 100..=199) => {
                self.state = ServerState::Proceeding;
            }
            (false, ServerState::Trying | ServerState::Proceeding, 200..=699) => {
                self.state = ServerState::Completed;
                self.timers = [None, None];
                if self.reliable {
                    self.state = ServerState::Terminated;
                } else {
                    self.timers[LIFETIME] = Some((now + t.t1x64(), Timer::J));
                }
            }
            _ => return Err(WrongState),
        }
        self.responded = true;
        Ok(())
    }

    /// The timer in `slot` fired.
    pub(crate) fn on_timer(&mut self, now: Instant, slot: usize, t: &Timers) -> ServerStep {
        let mut step = ServerStep::default();
        let Some((_, timer)) = self.timers.get_mut(slot).and_then(Option::take) else {
            return step;
        };
        match timer {
            Timer::Trying if self.state == ServerState::Proceeding && !self.responded => {
                step.send_trying = true;
                self.responded = true;
            }
            Timer::G if self.state == ServerState::Completed => {
                // Section 17.2.1: doubling, capped at T2.
                step.resend_response = true;
                self.interval = (self.interval.saturating_mul(2)).min(t.t2);
                self.timers[RETRANSMIT] = Some((now + self.interval, Timer::G));
            }
            Timer::H => {
                step.timeout = Some(Timer::H);
                self.terminate();
            }
            Timer::Unanswered if self.invite && self.state == ServerState::Proceeding => {
                step.timeout = Some(Timer::Unanswered);
                step.send_timeout = true;
            }
            Timer::Unanswered
                if matches!(self.state, ServerState::Trying | ServerState::Proceeding) =>
            {
                step.timeout = Some(Timer::Unanswered);
                self.terminate();
            }
            Timer::I | Timer::J | Timer::L => self.terminate(),
            _ => {}
        }
        step
    }

    /// Ends the transaction: no timer runs any more.
    pub(crate) fn terminate(&mut self) {
        self.state = ServerState::Terminated;
        self.timers = [None, None];
    }
}
