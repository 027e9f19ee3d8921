//! The flow table: stream connections (TCP, TLS) the core knows by [`FlowId`], with what is
//! waiting to be sent while one connects, the framing state of a partly received message,
//! and the timers and limits that keep the table fair (RFC 3261 section 18: connections
//! are reused for requests to the same peer and kept for a while after the last message;
//! RFC 5626 section 3.5.1 keep-alives).
//!
//! One peer must not be able to keep everyone else out, so besides the global bound:
//!
//! - **Per source.** Accepted connections are counted per source address (an IPv6 peer by
//!   its /64 prefix, the block one subscriber gets, RFC 6177), and a source at its limit is
//!   refused.
//! - **A deadline per message.** A message must be complete within a fixed time of its first
//!   byte; later bytes do not extend it, so sending a byte every few seconds no longer
//!   keeps a connection forever. Only whole messages and keep-alives count as activity for
//!   the idle timer.
//! - **Room for new peers.** When the table is full, a new connection closes an old one
//!   that no transaction uses: first the oldest connection that has not completed a
//!   message yet (it has proved nothing and is the slowest), else the least recently used
//!   one (a second-chance clock: a flow that carried a message since the clock's hand last
//!   passed is skipped once). Only when every flow carries a transaction is a new one
//!   refused.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::framing::Framer;
use super::payload::Payload;
use super::{FlowId, Source, Transmit, Transport};
use crate::budget::Budget;
use crate::id::Slab;

/// Is the connection up yet?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowState {
    /// The driver was asked to connect.
    Connecting,
    /// Connected (or accepted).
    Open,
}

/// The limits and durations the table applies (from the endpoint's configuration).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowRules {
    /// Open or connecting flows.
    pub(crate) max_flows: usize,
    /// Accepted flows from one source address (IPv6: one /64).
    pub(crate) max_per_source: usize,
    /// A flow no transaction uses is closed after this long without a message.
    pub(crate) idle_timeout: Duration,
    /// A message must be complete this long after its first byte.
    pub(crate) message_timeout: Duration,
}

/// Why a flow was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every flow carries a transaction.
    TableFull,
    /// The source has as many accepted flows as it may.
    SourceFull,
}

/// A flow admitted to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// The new flow.
    pub(crate) id: FlowId,
    /// The flow closed to make room for it: the driver must close its connection.
    pub(crate) evicted: Option<FlowId>,
}

/// What a flow left behind when it was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removed {
    /// Live transactions that sent on it.
    pub(crate) users: u32,
    /// It never connected.
    pub(crate) connecting: bool,
}

/// What one read delivered, for the flow's activity and deadlines.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReadUnits {
    /// Whole messages.
    pub(crate) messages: u32,
    /// Pings.
    pub(crate) keepalives: u32,
    /// Pongs (answers to our pings on flows we opened; activity only on accepted flows).
    pub(crate) pongs: u32,
}

/// How long a ping waits for its pong before the flow counts as failed (RFC 5626 section
/// 4.4.1: 10 seconds).
pub(crate) const PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// Is a flow with this idle timeout kept long enough, unused, to be worth pinging every
/// `interval`: at least two intervals?
fn kept_long(idle_timeout: Duration, interval: Duration) -> bool {
    idle_timeout >= interval.saturating_mul(2)
}

/// A flow due at a deadline: what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Close it: idle, a message overdue (`overdue`), or a ping without pong.
    Close {
        /// The flow.
        id: FlowId,
        /// A message was not complete in time.
        overdue: bool,
    },
    /// Send a CRLFCRLF ping on it (RFC 5626 section 3.5.1) here.
    Ping(Transmit),
}

/// Who a source is, for the per-source limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    V4(Ipv4Addr),
    /// The /64 prefix.
    V6(u64),
}

impl SourceKey {
    fn of(ip: IpAddr) -> SourceKey {
        match ip.to_canonical() {
            IpAddr::V4(a) => SourceKey::V4(a),
            IpAddr::V6(a) => SourceKey::V6((u128::from(a) >> 64) as u64),
        }
    }
}

/// One stream connection.
#[derive(Debug)]
struct Flow {
    transport: Transport,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    state: FlowState,
    /// Messages to write once connected.
    pending: Vec<Payload>,
    framer: Framer,
    /// The last whole message or keep-alive, in either direction.
    last_activity: Instant,
    /// When the first byte of the partial message arrived.
    message_started: Option<Instant>,
    /// The deadline in the table's timer set, when armed.
    deadline: Option<Instant>,
    /// Live transactions that send on this flow; it is not closed for idleness or to make
    /// room while any is.
    users: u32,
    /// Accepted from a peer (counted against its source), not opened by us.
    inbound: bool,
    /// Has carried a message (ours, or a whole one from the peer).
    proven: bool,
    /// Carried a message since the eviction clock's hand last passed.
    recent: bool,
    /// For a TLS flow opened to reach a URI: the domain the server must prove (RFC 5922).
    server_name: Option<Box<str>>,
    /// The keep-alive interval (RFC 5626 section 3.5.1) of a flow we opened.
    keepalive: Option<Duration>,
    /// The ping waiting for its pong, sent then.
    ping_sent: Option<Instant>,
    /// The last pong (or the flow's start): pings are due `keepalive` after it too.
    last_pong: Instant,
}

/// All flows, the index used to reuse one for a new request to the same peer, their timers
/// and the per-source counts. See the module docs.
#[derive(Debug)]
pub(crate) struct Flows {
    rules: FlowRules,
    slab: Slab<Flow>,
    by_remote: HashMap<(Transport, SocketAddr), FlowId>,
    per_source: HashMap<SourceKey, u32>,
    /// Each flow's next deadline (idle check or message deadline).
    deadlines: BTreeSet<(Instant, FlowId)>,
    /// Accepted flows that have not completed a message, oldest first (entries for flows
    /// gone or proven since are skipped).
    fresh: VecDeque<FlowId>,
    /// Proven flows in the eviction clock's order (entries for flows gone are skipped).
    ring: VecDeque<FlowId>,
}

impl Flows {
    /// An empty table.
    pub(crate) fn new(rules: FlowRules) -> Flows {
        Flows {
            rules,
            slab: Slab::default(),
            by_remote: HashMap::new(),
            per_source: HashMap::new(),
            deadlines: BTreeSet::new(),
            fresh: VecDeque::new(),
            ring: VecDeque::new(),
        }
    }

    /// How many flows are open or connecting.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Is the flow alive?
    pub(crate) fn contains(&self, id: FlowId) -> bool {
        self.slab.get(id.0).is_some()
    }

    /// The flow to reuse for `transport` to `remote`.
    pub(crate) fn find(&self, transport: Transport, remote: SocketAddr) -> Option<FlowId> {
        self.by_remote
            .get(&(transport, remote))
            .copied()
            .filter(|id| self.contains(*id))
    }

    /// The domain a TLS flow we opened must prove (RFC 5922 section 4).
    pub(crate) fn server_name(&self, id: FlowId) -> Option<&str> {
        self.slab.get(id.0).and_then(|f| f.server_name.as_deref())
    }

    /// The local address of a connected flow.
    pub(crate) fn local(&self, id: FlowId) -> Option<SocketAddr> {
        self.slab.get(id.0).and_then(|f| f.local)
    }

    /// A connection the driver accepted from `remote`.
    pub(crate) fn accept(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        budget: &mut Budget,
    ) -> Result<Admitted, Refused> {
        let source = SourceKey::of(remote.ip());
        if self.per_source.get(&source).copied().unwrap_or(0) as usize >= self.rules.max_per_source
        {
            return Err(Refused::SourceFull);
        }
        let evicted = self.make_room(budget)?;
        let id = self.insert(now, transport, remote, Some(local), true);
        *self.per_source.entry(source).or_insert(0) += 1;
        self.fresh.push_back(id);
        self.compact_queues();
        Ok(Admitted { id, evicted })
    }

    /// A connection we open to `remote` (the driver is asked to connect). `server_name`: the
    /// domain a TLS server must prove; `keepalive`: the ping interval.
    pub(crate) fn connect(
        &mut self,
        now: Instant,
        transport: Transport,
        remote: SocketAddr,
        budget: &mut Budget,
        server_name: Option<&str>,
        keepalive: Option<Duration>,
    ) -> Result<Admitted, Refused> {
        let evicted = self.make_room(budget)?;
        let id = self.insert(now, transport, remote, None, false);
        if let Some(f) = self.slab.get_mut(id.0) {
            f.server_name = server_name.map(Into::into);
            f.keepalive = keepalive;
        }
        if let Some(k) = keepalive.filter(|k| kept_long(self.rules.idle_timeout, *k)) {
            // (the first ping may be due before the idle check)
            let at = now + k;
            let current = self.slab.get(id.0).and_then(|f| f.deadline);
            if current.is_none_or(|d| at < d) {
                self.set_deadline(id, Some(at));
            }
        }
        self.ring.push_back(id);
        self.compact_queues();
        Ok(Admitted { id, evicted })
    }

    fn insert(
        &mut self,
        now: Instant,
        transport: Transport,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        inbound: bool,
    ) -> FlowId {
        let id = FlowId(self.slab.insert(Flow {
            transport,
            remote,
            local,
            state: if inbound {
                FlowState::Open
            } else {
                FlowState::Connecting
            },
            pending: Vec::new(),
            framer: Framer::default(),
            last_activity: now,
            message_started: None,
            deadline: None,
            users: 0,
            inbound,
            proven: !inbound,
            recent: !inbound,
            server_name: None,
            keepalive: None,
            ping_sent: None,
            last_pong: now,
        }));
        self.by_remote.insert((transport, remote), id);
        self.set_deadline(id, Some(now + self.rules.idle_timeout));
        id
    }

    /// Closes a flow no transaction uses when the table is full (see the module docs).
    fn make_room(&mut self, budget: &mut Budget) -> Result<Option<FlowId>, Refused> {
        if self.slab.len() < self.rules.max_flows {
            return Ok(None);
        }
        let victim = self.victim().ok_or(Refused::TableFull)?;
        self.remove(victim, budget);
        Ok(Some(victim))
    }

    fn victim(&mut self) -> Option<FlowId> {
        while let Some(id) = self.fresh.pop_front() {
            match self.slab.get(id.0) {
                Some(f) if !f.proven && f.users == 0 => return Some(id),
                // In use before it completed a message: the clock looks after it.
                Some(f) if !f.proven => self.ring.push_back(id),
                _ => {}
            }
        }
        // Two turns: the first may only clear `recent` marks.
        for _ in 0..2 * self.ring.len() {
            let id = self.ring.pop_front()?;
            let Some(f) = self.slab.get_mut(id.0) else {
                continue;
            };
            if f.users == 0 && !f.recent {
                return Some(id);
            }
            f.recent = false;
            self.ring.push_back(id);
        }
        None
    }

    /// Drops queue entries of flows gone, once they outnumber the live ones (amortised
    /// constant time per flow).
    fn compact_queues(&mut self) {
        let bound = 2 * self.slab.len() + 64;
        if self.fresh.len() > bound {
            let slab = &self.slab;
            self.fresh
                .retain(|id| slab.get(id.0).is_some_and(|f| !f.proven));
        }
        if self.ring.len() > bound {
            let slab = &self.slab;
            self.ring.retain(|id| slab.get(id.0).is_some());
        }
    }

    /// Forgets a flow, giving back its buffer. Returns `None` if it was gone already.
    pub(crate) fn remove(&mut self, id: FlowId, budget: &mut Budget) -> Option<Removed> {
        let flow = self.slab.remove(id.0)?;
        if self.by_remote.get(&(flow.transport, flow.remote)) == Some(&id) {
            self.by_remote.remove(&(flow.transport, flow.remote));
        }
        if flow.inbound {
            let source = SourceKey::of(flow.remote.ip());
            if let Some(n) = self.per_source.get_mut(&source) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&source);
                }
            }
        }
        if let Some(at) = flow.deadline {
            self.deadlines.remove(&(at, id));
        }
        flow.framer.release(budget);
        Some(Removed {
            users: flow.users,
            connecting: flow.state == FlowState::Connecting,
        })
    }

    /// Sends `data` on the flow: the transmit when it is connected; otherwise `data` waits
    /// for the connection (and `None` is returned).
    pub(crate) fn send(
        &mut self,
        id: FlowId,
        now: Instant,
        data: Payload,
    ) -> Option<(Transmit, Payload)> {
        let f = self.slab.get_mut(id.0)?;
        f.last_activity = now;
        f.recent = true;
        match (f.state, f.local) {
            (FlowState::Open, Some(local)) => Some((
                Transmit {
                    transport: f.transport,
                    local,
                    remote: f.remote,
                    flow: Some(id),
                },
                data,
            )),
            _ => {
                f.pending.push(data);
                None
            }
        }
    }

    /// The connection is up: what waited for it, with where to send it.
    pub(crate) fn connected(
        &mut self,
        id: FlowId,
        local: SocketAddr,
        now: Instant,
    ) -> Option<(Transmit, Vec<Payload>)> {
        let f = self.slab.get_mut(id.0)?;
        f.state = FlowState::Open;
        f.local = Some(local);
        f.last_activity = now;
        let transmit = Transmit {
            transport: f.transport,
            local,
            remote: f.remote,
            flow: Some(id),
        };
        Some((transmit, std::mem::take(&mut f.pending)))
    }

    /// A transaction sends on the flow: it stays open while any does.
    pub(crate) fn bind(&mut self, id: FlowId) {
        if let Some(f) = self.slab.get_mut(id.0) {
            f.users += 1;
        }
    }

    /// A transaction that sent on the flow ended.
    pub(crate) fn unbind(&mut self, id: FlowId) {
        if let Some(f) = self.slab.get_mut(id.0) {
            f.users = f.users.saturating_sub(1);
        }
    }

    /// Takes the framing state out for a read of the flow (put it back with
    /// [`Flows::end_read`]), with where the read's messages come from.
    pub(crate) fn begin_read(&mut self, id: FlowId) -> Option<(Source, Framer)> {
        let f = self.slab.get_mut(id.0)?;
        let source = Source {
            transport: f.transport,
            local: f.local.unwrap_or(f.remote),
            remote: f.remote,
            flow: Some(id),
        };
        Some((source, std::mem::take(&mut f.framer)))
    }

    /// Puts the framing state back after a read that delivered `units`: whole messages and
    /// keep-alives are activity; a partial message left over starts its deadline, unless it
    /// was already running for the same message.
    pub(crate) fn end_read(
        &mut self,
        id: FlowId,
        framer: Framer,
        now: Instant,
        units: ReadUnits,
        budget: &mut Budget,
    ) {
        let Some(f) = self.slab.get_mut(id.0) else {
            framer.release(budget);
            return;
        };
        // A lone CRLF after our ping is its pong, though the framer cannot tell it yet
        // from the start of a ping of the peer's.
        if units.pongs > 0 || (f.ping_sent.is_some() && framer.holds_crlf()) {
            f.ping_sent = None;
            f.last_pong = now;
        }
        // Our own pings' pongs do not keep a flow we opened from its idle timeout; a
        // peer's pings (RFC 5626: it wants the flow kept) do.
        let pongs = if f.inbound { units.pongs } else { 0 };
        let completed = units.messages + units.keepalives + pongs > 0;
        if completed {
            f.last_activity = now;
        }
        if units.messages > 0 {
            f.recent = true;
            if !f.proven {
                f.proven = true;
                self.ring.push_back(id);
            }
        }
        let started = match (framer.holds_partial(), f.message_started) {
            (false, _) => None,
            // Something completed in this read, so the partial message began in it.
            (true, Some(_)) if completed => Some(now),
            (true, Some(at)) => Some(at),
            (true, None) => Some(now),
        };
        f.framer = framer;
        f.message_started = started;
        if let Some(at) = started.map(|s| s + self.rules.message_timeout) {
            if f.deadline.is_none_or(|d| at < d) {
                self.set_deadline(id, Some(at));
            }
        }
    }

    /// The earliest deadline of any flow.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The next flow due at `now` that must be closed (idle for the idle timeout with no
    /// transaction using it, a message overdue, a ping without pong) or pinged. Flows due
    /// for nothing get their next deadline on the way. `None` when no more are due.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Due> {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                return None;
            }
            self.deadlines.pop_first();
            let rules = self.rules;
            let Some(f) = self.slab.get_mut(id.0) else {
                continue;
            };
            f.deadline = None;
            let overdue = f
                .message_started
                .is_some_and(|s| s + rules.message_timeout <= now);
            let idle = f.users == 0 && f.last_activity + rules.idle_timeout <= now;
            let no_pong = f.ping_sent.is_some_and(|at| at + PONG_TIMEOUT <= now);
            if overdue || idle || no_pong {
                return Some(Due::Close { id, overdue });
            }
            // RFC 5626 3.5.1: a ping once the flow has been quiet for the interval, on a flow
            // that is to stay: one a transaction uses, or one kept long when idle (a flow
            // about to close for idleness is not worth a ping).
            let keepalive = f
                .keepalive
                .filter(|k| f.users > 0 || kept_long(rules.idle_timeout, *k));
            let ping_at = match (keepalive, f.ping_sent, f.state, f.local) {
                (Some(k), None, FlowState::Open, Some(_)) => {
                    Some(f.last_activity.max(f.last_pong) + k)
                }
                (_, Some(sent), _, _) => Some(sent + PONG_TIMEOUT),
                // (connecting: looked at again one interval later)
                (Some(k), None, _, _) => Some(now + k),
                _ => None,
            };
            if f.ping_sent.is_none() && ping_at.is_some_and(|at| at <= now) {
                if let (Some(local), Some(k)) = (f.local, keepalive) {
                    f.ping_sent = Some(now);
                    let transmit = Transmit {
                        transport: f.transport,
                        local,
                        remote: f.remote,
                        flow: Some(id),
                    };
                    self.set_deadline(id, Some(now + PONG_TIMEOUT.min(k)));
                    return Some(Due::Ping(transmit));
                }
            }
            // Idle means idle since the last message; a flow in use is looked at again one
            // idle period from now.
            let idle_at = if f.users > 0 {
                now + rules.idle_timeout
            } else {
                f.last_activity + rules.idle_timeout
            };
            let message_at = f.message_started.map(|s| s + rules.message_timeout);
            let next = message_at.map_or(idle_at, |m| m.min(idle_at));
            let next = ping_at.map_or(next, |p| p.min(next));
            self.set_deadline(id, Some(next));
        }
        None
    }

    fn set_deadline(&mut self, id: FlowId, at: Option<Instant>) {
        let Some(f) = self.slab.get_mut(id.0) else {
            return;
        };
        if let Some(old) = std::mem::replace(&mut f.deadline, at) {
            self.deadlines.remove(&(old, id));
        }
        if let Some(at) = at {
            self.deadlines.insert((at, id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(max_flows: usize, max_per_source: usize) -> FlowRules {
        FlowRules {
            max_flows,
            max_per_source,
            idle_timeout: Duration::from_secs(120),
            message_timeout: Duration::from_secs(32),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_sources_are_counted_by_their_64_bit_prefix_and_mapped_ipv4_as_ipv4() {
        let a = SourceKey::of("2001:db8:1:2::1".parse().unwrap());
        let b = SourceKey::of("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = SourceKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            SourceKey::of("::ffff:192.0.2.1".parse().unwrap()),
            SourceKey::of("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn the_clock_evicts_the_flow_without_recent_messages_first() {
        let now = Instant::now();
        let mut budget = Budget::new(usize::MAX);
        let mut flows = Flows::new(rules(3, 8));
        let local = addr("127.0.0.2:5060");
        let ids: Vec<FlowId> = (0..3)
            .map(|i| {
                let remote = SocketAddr::new(addr("127.0.0.1:1").ip(), 40000 + i);
                flows
                    .accept(now, Transport::Tcp, local, remote, &mut budget)
                    .unwrap()
                    .id
            })
            .collect();
        // all three have completed a message; the first and third again since
        for id in &ids {
            let (_, framer) = flows.begin_read(*id).unwrap();
            let units = ReadUnits {
                messages: 1,
                keepalives: 0,
                pongs: 0,
            };
            flows.end_read(*id, framer, now, units, &mut budget);
        }
        // the clock's hand has passed all three
        for id in &ids {
            flows.slab.get_mut(id.0).unwrap().recent = false;
        }
        for id in [ids[0], ids[2]] {
            let (_, framer) = flows.begin_read(id).unwrap();
            let units = ReadUnits {
                messages: 1,
                keepalives: 0,
                pongs: 0,
            };
            flows.end_read(id, framer, now, units, &mut budget);
        }
        let a = flows
            .accept(now, Transport::Tcp, local, addr("127.0.0.9:1"), &mut budget)
            .unwrap();
        assert_eq!(a.evicted, Some(ids[1]));
    }
}
