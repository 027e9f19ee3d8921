//! Client transactions: INVITE (RFC 3261 section 17.1.1, figure 5, with RFC 6026's Accepted
//! state) and non-INVITE (section 17.1.2, figure 6).

use std::time::{Duration, Instant};

use super::{Slots, Timer, Timers, LIFETIME, RETRANSMIT};

/// The state of a client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientState {
    /// INVITE sent, no response yet (figure 5).
    Calling,
    /// Non-INVITE request sent, no response yet (figure 6).
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A 2xx to the INVITE arrived; further 2xx are passed up (RFC 6026 section 7.2).
    Accepted,
    /// A final response arrived (3xx-6xx for INVITE; any for non-INVITE); absorbing
    /// retransmissions.
    Completed,
    /// Done; the transaction is about to be freed.
    Terminated,
}

/// What a client transaction asks for after an event.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientStep {
    /// (Re)transmit the request.
    pub(crate) send_request: bool,
    /// Send (or resend) the ACK for a non-2xx final response (section 17.1.1.3).
    pub(crate) send_ack: bool,
    /// Pass the response to the transaction user.
    pub(crate) deliver: bool,
    /// Tell the transaction user the transaction timed out, naming the timer (B, C or F).
    pub(crate) timeout: Option<Timer>,
    /// Send CANCEL for the INVITE (timer C fired).
    pub(crate) cancel: bool,
}

/// The state machine of one client transaction.
#[derive(Debug, Clone)]
pub(crate) struct ClientMachine {
    pub(crate) invite: bool,
    pub(crate) reliable: bool,
    pub(crate) state: ClientState,
    interval: Duration,
    pub(crate) timers: Slots,
}

impl ClientMachine {
    /// A transaction whose request has just been handed to the transport: timers A and B
    /// (INVITE) or E and F (non-INVITE) start; A and E only on unreliable transports.
    pub(crate) fn start(invite: bool, reliable: bool, now: Instant, t: &Timers) -> Self {
        let (retransmit, timeout, state) = if invite {
            (Timer::A, Timer::B, ClientState::Calling)
        } else {
            (Timer::E, Timer::F, ClientState::Trying)
        };
        let mut timers: Slots = [None, None];
        if !reliable {
            timers[RETRANSMIT] = Some((now + t.t1, retransmit));
        }
        timers[LIFETIME] = Some((now + t.t1x64(), timeout));
        ClientMachine {
            invite,
            reliable,
            state,
            interval: t.t1,
            timers,
        }
    }

    /// A transaction whose request has not gone out yet (it waits for the next hop to be
    /// located): no timer runs; [`ClientMachine::start`] replaces it when the request goes.
    pub(crate) fn waiting(invite: bool, t: &Timers) -> Self {
        ClientMachine {
            invite,
            reliable: false,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            interval: t.t1,
            timers: [None, None],
        }
    }

    /// A response with status `code` matched this transaction (section 17.1.3).
    pub(crate) fn on_response(&mut self, now: Instant, code: u16, t: &Timers) -> ClientStep {
        let mut step = ClientStep::default();
        if self.invite {
            match (self.state, code) {
                (ClientState::Proceeding, 100) => step.deliver = true,
                (ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                    // Figure 5: no more retransmissions, and B only runs in Calling; timer C
                    // starts instead, restarted by every provisional response but 100
                    // (section 16.7 step 2).
                    self.state = ClientState::Proceeding;
                    self.timers = [None, Some((now + t.c, Timer::C))];
                    step.deliver = true;
                }
                (ClientState::Calling | ClientState::Proceeding, 200..=299) => {
                    // RFC 6026 section 8.4: Accepted, timer M = 64*T1.
                    self.state = ClientState::Accepted;
                    self.timers = [None, Some((now + t.t1x64(), Timer::M))];
                    step.deliver = true;
                }
                (ClientState::Calling | ClientState::Proceeding, 300..=699) => {
                    self.state = ClientState::Completed;
                    step.deliver = true;
                    step.send_ack = true;
                    self.timers = [None, None];
                    if self.reliable {
                        self.state = ClientState::Terminated;
                    } else {
                        self.timers[LIFETIME] = Some((now + t.d, Timer::D));
                    }
                }
                (ClientState::Accepted, 200..=299) => step.deliver = true,
                (ClientState::Completed, 300..=699) => step.send_ack = true,
                _ => {}
            }
        } else {
            match (self.state, code) {
                (ClientState::Trying | ClientState::Proceeding, 100..=199) => {
                    self.state = ClientState::Proceeding;
                    step.deliver = true;
                }
                (ClientState::Trying | ClientState::Proceeding, 200..=699) => {
                    self.state = ClientState::Completed;
                    step.deliver = true;
                    self.timers = [None, None];
                    if self.reliable {
                        self.state = ClientState::Terminated;
                    } else {
                        self.timers[LIFETIME] = Some((now + t.t4, Timer::K));
                    }
                }
                _ => {}
            }
        }
        step
    }

    /// The timer in `slot` fired.
    pub(crate) fn on_timer(&mut self, now: Instant, slot: usize, t: &Timers) -> ClientStep {
        let mut step = ClientStep::default();
        let Some((_, timer)) = self.timers.get_mut(slot).and_then(Option::take) else {
            return step;
        };
        match timer {
            Timer::A if self.state == ClientState::Calling => {
                // Section 17.1.1.2: the interval doubles each time, with no cap.
                step.send_request = true;
                self.interval = self.interval.saturating_mul(2);
                self.timers[RETRANSMIT] = Some((now + self.interval, Timer::A));
            }
            Timer::E if self.state == ClientState::Trying => {
                // Section 17.1.2.2: doubling, capped at T2.
                step.send_request = true;
                self.interval = (self.interval.saturating_mul(2)).min(t.t2);
                self.timers[RETRANSMIT] = Some((now + self.interval, Timer::E));
            }
            Timer::E if self.state == ClientState::Proceeding => {
                // Section 17.1.2.2: in Proceeding, retransmit every T2.
                step.send_request = true;
                self.interval = t.t2;
                self.timers[RETRANSMIT] = Some((now + t.t2, Timer::E));
            }
            Timer::C if self.state == ClientState::Proceeding => {
                step.timeout = Some(Timer::C);
                step.cancel = true;
                self.timers[LIFETIME] = Some((now + t.t1x64(), Timer::B));
            }
            // After timer C the transaction user has had its timeout already.
            Timer::B if self.state == ClientState::Proceeding => self.terminate(),
            Timer::B | Timer::F => {
                step.timeout = Some(timer);
                self.terminate();
            }
            Timer::D | Timer::K | Timer::M => self.terminate(),
            _ => {}
        }
        step
    }

    /// The transport could not send the request (section 17.1.4).
    pub(crate) fn on_transport_error(&mut self) {
        self.terminate();
    }

    /// Ends the transaction: no timer runs any more.
    pub(crate) fn terminate(&mut self) {
        self.state = ClientState::Terminated;
        self.timers = [None, None];
    }
}
