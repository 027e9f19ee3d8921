//! Registrations kept alive by a task: the sans-IO [`Registration`] of sip-core, driven with
//! the [`Client`] and tokio timers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sip_core::registration::{
    Failure, Registration, RegistrationConfig, RegistrationEvent, RegistrationState,
};
use sip_core::{NextHop, SeededRng};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{os_seed, Client, Error, RequestError, Responses};

/// Events kept for [`RegistrationHandle::next_event`]; when nobody reads them, newer ones
/// are dropped.
const EVENT_QUEUE: usize = 64;

/// How long [`Client::shutdown`] waits for the registrations to be removed.
pub(crate) const SHUTDOWN_UNREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// How many registrations of a client are up, per address-of-record: a registration that
/// fails while another one of its AOR is up waits with the longer base time of RFC 5626
/// section 4.5 (90 s rather than 30 s: "if all of the flows have failed").
#[derive(Debug, Default)]
pub(crate) struct Registered(Mutex<HashMap<String, usize>>);

impl Registered {
    fn change(&self, aor: &str, up: bool) {
        if let Ok(mut m) = self.0.lock() {
            let n = m.entry(aor.to_owned()).or_default();
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
            if *n == 0 {
                m.remove(aor);
            }
        }
    }

    /// Is a registration of `aor` other than the asking one up?
    fn others_up(&self, aor: &str, me_up: bool) -> bool {
        let n = self
            .0
            .lock()
            .map(|m| m.get(aor).copied().unwrap_or(0))
            .unwrap_or(0);
        n > usize::from(me_up)
    }
}

/// What a [`RegistrationHandle`] asks of its task.
#[derive(Debug)]
pub(crate) enum RegCommand {
    /// Remove the binding, then report the final state.
    Unregister {
        reply: oneshot::Sender<RegistrationState>,
    },
}

/// A registration kept alive by a task of the driver (see [`Client::register`]): it
/// refreshes the binding before the expiry the registrar granted, answers digest
/// challenges, retries failures with the backoff of RFC 5626 section 4.5 without giving up,
/// and removes the binding at [`RegistrationHandle::unregister`], when the handle is
/// dropped, or at [`Client::shutdown`].
///
/// The registrations of one [`Client`] for the same address-of-record are its flows in the
/// sense of RFC 5626 section 4.5: while one of them is up, the others back off from a base
/// time of 90 s instead of 30 s.
#[derive(Debug)]
pub struct RegistrationHandle {
    state: watch::Receiver<RegistrationState>,
    events: mpsc::Receiver<RegistrationEvent>,
    cmds: mpsc::UnboundedSender<RegCommand>,
}

impl Client {
    /// Registers `config.contact` for `config.aor` with the registrar at `target` (RFC 3261
    /// section 10.2; an address, or a [`NextHop::Uri`] the endpoint locates), and keeps the binding
    /// alive in a task until the handle is dropped or unregistered. Fails when the
    /// configuration does not make a valid REGISTER, or the operating system has no seed.
    ///
    /// Call it within the tokio runtime the driver runs on: it spawns the task. The driver
    /// stays up while the task runs. A driver stopped with [`Client::shutdown`]
    /// removes every live binding first (waiting up to 5 s); one stopped through a
    /// [`Shutdown`](crate::Shutdown) handle cannot.
    pub fn register(
        &self,
        config: RegistrationConfig,
        target: impl Into<NextHop>,
    ) -> Result<RegistrationHandle, Error> {
        let target = target.into();
        let rng = SeededRng::new(os_seed().map_err(Error::Seed)?);
        let reg = Registration::new(Instant::now(), config, rng)?;
        let (state_tx, state) = watch::channel(reg.state().clone());
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        self.add_registration(cmds.downgrade());
        let task = Task {
            client: self.clone(),
            aor: reg.config().aor.clone(),
            registered: self.registered(),
            up: false,
            reg,
            target,
            state: state_tx,
            events: events_tx,
            waiters: Vec::new(),
        };
        tokio::spawn(task.run(cmd_rx));
        Ok(RegistrationHandle {
            state,
            events,
            cmds,
        })
    }
}

impl RegistrationHandle {
    /// Where the registration stands now.
    pub fn state(&self) -> RegistrationState {
        self.state.borrow().clone()
    }

    /// Waits for the next change of state and returns the new one; `None` once the task has
    /// ended (after unregistration, or when the driver stopped).
    pub async fn changed(&mut self) -> Option<RegistrationState> {
        self.state.changed().await.ok()?;
        Some(self.state.borrow_and_update().clone())
    }

    /// Waits until the state satisfies `f` (at once if it does now); `None` if the task
    /// ends first.
    pub async fn wait_for(
        &mut self,
        mut f: impl FnMut(&RegistrationState) -> bool,
    ) -> Option<RegistrationState> {
        self.state.wait_for(|s| f(s)).await.ok().map(|s| s.clone())
    }

    /// The next event (each REGISTER sent, each final response, each change of state), for
    /// logs. Up to 64 wait; newer ones are dropped while the queue is full. `None` once the
    /// task has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<RegistrationEvent> {
        self.events.recv().await
    }

    /// Removes the binding (our Contact with `expires=0`, RFC 3261 section 10.2.2) and
    /// waits for the outcome: [`RegistrationState::Unregistered`], with the failure if the
    /// removal failed (the binding then expires on its own). The events that led there can
    /// still be read from the handle.
    pub async fn unregister(&mut self) -> RegistrationState {
        let (reply, rx) = oneshot::channel();
        if self.cmds.send(RegCommand::Unregister { reply }).is_ok() {
            if let Ok(state) = rx.await {
                return state;
            }
        }
        // The task has ended: its last state says how.
        self.state()
    }
}

/// The task behind a [`RegistrationHandle`].
struct Task {
    client: Client,
    /// The AOR, and the client's count of registrations up per AOR.
    aor: String,
    registered: Arc<Registered>,
    /// Is this one counted there?
    up: bool,
    reg: Registration,
    target: NextHop,
    state: watch::Sender<RegistrationState>,
    events: mpsc::Sender<RegistrationEvent>,
    waiters: Vec<oneshot::Sender<RegistrationState>>,
}

/// The responses to the REGISTER in flight, if one is.
async fn next_response(
    r: &mut Option<Responses>,
) -> Option<Result<sip_core::OwnedMessage, RequestError>> {
    match r.as_mut() {
        Some(r) => r.next().await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<RegCommand>) {
        let mut in_flight: Option<Responses> = None;
        let mut cmds_open = true;
        loop {
            let now = Instant::now();
            self.reg.handle_timeout(now);
            if in_flight.is_none() {
                if let Some(request) = self.reg.poll_request(now) {
                    match self.client.request(request, self.target.clone()).await {
                        Ok(r) => in_flight = Some(r),
                        Err(Error::Stopped) => return self.driver_stopped(),
                        Err(e) => {
                            tracing::debug!("REGISTER not sent: {e}");
                            self.reg.handle_failure(now, Failure::Transport);
                        }
                    }
                }
            }
            self.publish();
            if self.reg.is_unregistered() {
                let state = self.reg.state().clone();
                for w in self.waiters.drain(..) {
                    let _ = w.send(state.clone());
                }
                return;
            }
            let deadline = self.reg.poll_timeout();
            tokio::select! {
                r = next_response(&mut in_flight) => {
                    let now = Instant::now();
                    // RFC 5626 section 4.5: the base time depends on the other flows.
                    self.reg
                        .set_other_registrations_up(self.registered.others_up(&self.aor, self.up));
                    match r {
                        Some(Ok(response)) => {
                            if response.view().status().is_some_and(|c| c >= 200) {
                                in_flight = None;
                            }
                            self.reg.handle_response(now, &response);
                        }
                        Some(Err(RequestError::Timeout)) => {
                            in_flight = None;
                            self.reg.handle_failure(now, Failure::Timeout);
                        }
                        Some(Err(RequestError::Transport)) => {
                            in_flight = None;
                            self.reg.handle_failure(now, Failure::Transport);
                        }
                        // The driver stopped under the transaction.
                        Some(Err(_)) | None => return self.driver_stopped(),
                    }
                }
                _ = sleep_until(deadline) => {}
                cmd = cmds.recv(), if cmds_open => match cmd {
                    Some(RegCommand::Unregister { reply }) => {
                        self.waiters.push(reply);
                        self.reg.stop(Instant::now());
                    }
                    // The handle was dropped: remove the binding.
                    None => {
                        cmds_open = false;
                        self.reg.stop(Instant::now());
                    }
                },
            }
        }
    }

    /// Hands the machine's events and state to the handle.
    fn publish(&mut self) {
        while let Some(event) = self.reg.poll_event() {
            if let RegistrationEvent::Response { code, reason, .. } = &event {
                tracing::debug!(code, reason, "REGISTER answered");
            }
            let _ = self.events.try_send(event);
        }
        let state = self.reg.state();
        if *self.state.borrow() != *state {
            self.state.send_replace(state.clone());
        }
        let up = matches!(state, RegistrationState::Registered { .. });
        if up != self.up {
            self.registered.change(&self.aor, up);
            self.up = up;
        }
    }

    fn driver_stopped(mut self) {
        self.publish();
        let state = if self.reg.is_unregistered() {
            self.reg.state().clone()
        } else {
            // A binding may be left at the registrar: it expires on its own.
            RegistrationState::Unregistered {
                failure: Some(Failure::Transport),
            }
        };
        self.state.send_replace(state.clone());
        for w in self.waiters.drain(..) {
            let _ = w.send(state.clone());
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if self.up {
            self.registered.change(&self.aor, false);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Removes every live registration of a client, for [`Client::shutdown`].
pub(crate) async fn unregister_all(live: Vec<mpsc::UnboundedSender<RegCommand>>) {
    let mut replies = Vec::new();
    for cmds in live {
        let (reply, rx) = oneshot::channel();
        if cmds.send(RegCommand::Unregister { reply }).is_ok() {
            replies.push(rx);
        }
    }
    let all = async {
        for rx in replies {
            let _ = rx.await;
        }
    };
    let _ = tokio::time::timeout(SHUTDOWN_UNREGISTER_TIMEOUT, all).await;
}
