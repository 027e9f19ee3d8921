//! A registrar's location store in Redis (feature `redis`), shared by every server that
//! points at the same Redis: a binding registered through one is found through all.
//!
//! One Redis key per address-of-record (`{prefix}{aor}`) holds all its bindings in one
//! value (see [`encode`]), with a Redis expiry at the latest binding's expiry, so that Redis
//! frees an AOR whose bindings have all expired without anyone asking. The rules that
//! decide what a REGISTER does stay in one place, sip-core's pure
//! [`RegisterRequest::apply`](sip_core::registrar::RegisterRequest::apply): an update reads
//! the value, applies the rules in Rust, and writes the new value only if the key still
//! holds what was read (a compare-and-set in a short Lua script, which Redis runs
//! atomically); when another server changed it meanwhile, it reads and applies again. Two
//! servers updating one AOR at once therefore never lose a binding. (`WATCH`/`MULTI`/`EXEC`
//! does the same but holds state on a connection; the compare-and-set works on the one
//! multiplexed connection that all operations share.)
//!
//! Bindings hold [`Instant`]s, which mean nothing to another process: the store writes the
//! expiry as unix milliseconds, converting at this edge with the system clock, so the
//! servers sharing a Redis need synchronized clocks (NTP), as any expiry shared between
//! machines does.
//!
//! Every operation is bounded: a deadline ([`RedisConfig::timeout`]), a limit on the
//! operations in flight ([`RedisConfig::max_in_flight`], taken synchronously with
//! [`RedisLocation::try_slot`] before any task is started), and a limit on compare-and-set
//! retries. A Redis that is down, slow or overloaded makes operations fail fast with a
//! [`LocationError`], which a registrar answers with 503 and Retry-After
//! ([`LocationError::reject`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use sip_core::location::Binding;
use sip_core::registrar::Reject;
use sip_core::{Source, Transport};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// How the store uses Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Prepended to the AOR to make its key: `sip:location:` gives
    /// `sip:location:sip:alice@example.com`. Servers sharing bindings use the same prefix.
    pub key_prefix: String,
    /// The longest one operation may take, connecting and retrying included. Past it the
    /// operation fails with [`LocationError::Timeout`] and the connection is dropped (the
    /// next operation connects anew).
    pub timeout: Duration,
    /// Operations in flight at most; [`RedisLocation::try_slot`] refuses more with
    /// [`LocationError::Busy`].
    pub max_in_flight: usize,
    /// Reads and compare-and-sets one update may do when other servers keep changing the
    /// same AOR; then [`LocationError::Contended`].
    pub max_attempts: u32,
    /// The Retry-After of the 503 that [`LocationError::reject`] makes.
    pub retry_after: Duration,
}

impl Default for RedisConfig {
    fn default() -> RedisConfig {
        RedisConfig {
            key_prefix: "sip:location:".into(),
            timeout: Duration::from_secs(2),
            max_in_flight: 256,
            max_attempts: 16,
            retry_after: Duration::from_secs(5),
        }
    }
}

/// Why a location operation failed. Each is the store's fault, not the request's: a
/// registrar answers 503 with Retry-After ([`LocationError::reject`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// The Redis URL is not one the client understands.
    #[error("Redis URL: {0}")]
    Url(#[source] redis::RedisError),
    /// Redis refused the connection, closed it or answered with an error.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within [`RedisConfig::timeout`].
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// [`RedisConfig::max_in_flight`] operations are already waiting for Redis.
    #[error("too many location operations in flight")]
    Busy,
    /// Other servers changed the AOR's bindings at every one of
    /// [`RedisConfig::max_attempts`] attempts.
    #[error("the bindings changed at each of {0} attempts")]
    Contended(u32),
    /// The value under the AOR's key is not bindings this store wrote (another program
    /// uses the key prefix, or a newer format): it is left alone.
    #[error("the value stored for the AOR is not a list of bindings: {0}")]
    Corrupt(&'static str),
    /// The AOR's bindings would take more than the store keeps under one key (1 MiB):
    /// nothing is written.
    #[error("the bindings of the AOR would take {0} bytes")]
    TooLarge(usize),
}

impl LocationError {
    /// The response a registrar gives when the store fails: 503 with `retry_after`
    /// (RFC 3261 section 21.5.4: the server is temporarily unable to process the request).
    pub fn reject(&self, retry_after: Duration) -> Reject {
        Reject::unavailable("Location Store Unavailable", retry_after)
    }
}

/// The location store in Redis. Cheap to clone: clones share the connection and the limit
/// on operations in flight.
///
/// ```no_run
/// # async fn f() -> Result<(), sip_driver_tokio::location::LocationError> {
/// use sip_driver_tokio::location::{RedisConfig, RedisLocation};
///
/// let store = RedisLocation::open("redis://127.0.0.1:6379", RedisConfig::default())?;
/// let slot = store.try_slot()?; // before starting a task: fails at once when too busy
/// let bindings = slot.lookup("sip:alice@example.com").await?;
/// println!("{} contacts", bindings.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisLocation {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: redis::Client,
    config: RedisConfig,
    /// The connection all operations share (Redis pipelines their commands), made at the
    /// first operation and again after a failure.
    conn: Mutex<Option<MultiplexedConnection>>,
    slots: Arc<Semaphore>,
    cas: redis::Script,
    /// The AORs this process is updating, each with a lock: updates of one AOR from this
    /// process take turns, so that they do not make each other's compare-and-set fail (only
    /// other servers can). At most one entry per operation in flight.
    updating: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Writes `ARGV[2]` (with its expiry, unix milliseconds `ARGV[3]`), or deletes the key
/// when `ARGV[2]` is empty, only if the key still holds `ARGV[1]` (empty: no key). 1 when
/// written, 0 when the key changed meanwhile. The store never writes an empty value, so an
/// empty `ARGV[1]` stands for "no key" without ambiguity.
const COMPARE_AND_SET: &str = r"
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1])
else redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3]) end
return 1
";

/// A value larger than this under an AOR's key is refused as [`LocationError::Corrupt`]:
/// far more than the bindings any registrar limit allows.
const MAX_VALUE: usize = 1 << 20;

impl RedisLocation {
    /// A store for the Redis at `url` (`redis://HOST:PORT[/DB]`, with
    /// `redis://:PASSWORD@HOST:PORT` for a password). Nothing is connected yet: the first
    /// operation connects, so a server starts while Redis is down and serves once it is up.
    pub fn open(url: &str, config: RedisConfig) -> Result<RedisLocation, LocationError> {
        let client = redis::Client::open(url).map_err(LocationError::Url)?;
        let slots = Arc::new(Semaphore::new(config.max_in_flight));
        Ok(RedisLocation {
            shared: Arc::new(Shared {
                client,
                config,
                conn: Mutex::new(None),
                slots,
                cas: redis::Script::new(COMPARE_AND_SET),
                updating: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.shared.config
    }

    /// A slot for one operation, or [`LocationError::Busy`] at once when
    /// [`RedisConfig::max_in_flight`] operations are in flight: take it before starting
    /// the task that runs the operation, so that a slow Redis cannot make tasks pile up.
    /// The slot is freed when dropped (keep it until the result is delivered).
    pub fn try_slot(&self) -> Result<Slot, LocationError> {
        let permit = Arc::clone(&self.shared.slots)
            .try_acquire_owned()
            .map_err(|_| LocationError::Busy)?;
        Ok(Slot {
            store: self.clone(),
            _permit: permit,
        })
    }

    /// Connects (when not connected) and asks Redis for a PONG, within the deadline: a
    /// check at startup or for a health probe. It takes no slot.
    pub async fn check(&self) -> Result<(), LocationError> {
        self.bounded(self.shared.config.timeout, async {
            let mut conn = self.connection().await?;
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        })
        .await
    }

    /// The Redis key of `aor`.
    pub fn key(&self, aor: &str) -> String {
        format!("{}{aor}", self.shared.config.key_prefix)
    }

    /// The shared connection, connecting when there is none.
    async fn connection(&self) -> Result<MultiplexedConnection, LocationError> {
        let mut conn = self.shared.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let timeout = self.shared.config.timeout;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let c = self
            .shared
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Drops the shared connection after a failure that may have broken it.
    async fn forget_connection(&self) {
        *self.shared.conn.lock().await = None;
    }

    /// Runs `op` within `within` (what is left of the deadline); a failure of the
    /// connection (or the deadline) drops it, so that the next operation connects anew.
    async fn bounded<T>(
        &self,
        within: Duration,
        op: impl std::future::Future<Output = Result<T, LocationError>>,
    ) -> Result<T, LocationError> {
        let timeout = self.shared.config.timeout;
        let result = match tokio::time::timeout(within, op).await {
            Ok(r) => r,
            Err(_) => Err(LocationError::Timeout(timeout)),
        };
        let broken = match &result {
            Err(LocationError::Timeout(_)) => true,
            Err(LocationError::Redis(e)) => {
                e.is_io_error() || e.is_connection_dropped() || e.is_timeout()
            }
            _ => false,
        };
        if broken {
            self.forget_connection().await;
        }
        result
    }

    async fn lookup(&self, aor: &str) -> Result<Vec<Binding>, LocationError> {
        let key = self.key(aor);
        self.bounded(self.shared.config.timeout, async {
            let mut conn = self.connection().await?;
            let raw: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
            let clock = Clock::now();
            let mut bindings = decode(raw.as_deref().unwrap_or_default(), clock)?;
            bindings.retain(|b| !b.is_expired(clock.instant) && b.aor == aor);
            Ok(bindings)
        })
        .await
    }

    async fn update<R>(
        &self,
        aor: &str,
        mut rules: impl FnMut(&[Binding], Instant) -> Result<Vec<Binding>, R>,
    ) -> Result<Result<Vec<Binding>, R>, LocationError> {
        let key = self.key(aor);
        let attempts = self.shared.config.max_attempts.max(1);
        let timeout = self.shared.config.timeout;
        let started = tokio::time::Instant::now();
        // Waiting for this process's other updates of the AOR counts against the deadline,
        // but says nothing about the connection: it is not dropped for that.
        let turn = Turn::new(&self.shared, aor);
        let Ok(_turn) = tokio::time::timeout(timeout, turn.lock.lock()).await else {
            return Err(LocationError::Timeout(timeout));
        };
        let left = timeout.saturating_sub(started.elapsed());
        self.bounded(left, async {
            self.compare_and_set(&key, aor, attempts, &mut rules).await
        })
        .await
    }

    /// Read, apply, compare-and-set; again when another server wrote meanwhile.
    async fn compare_and_set<R>(
        &self,
        key: &str,
        aor: &str,
        attempts: u32,
        rules: &mut impl FnMut(&[Binding], Instant) -> Result<Vec<Binding>, R>,
    ) -> Result<Result<Vec<Binding>, R>, LocationError> {
        let mut conn = self.connection().await?;
        for attempt in 0..attempts {
            if attempt > 0 {
                // Another server won: let it finish before reading again, for a
                // random while (so that two losers do not meet again in step).
                tokio::time::sleep(backoff(attempt)).await;
            }
            let raw: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
            let raw = raw.unwrap_or_default();
            let clock = Clock::now();
            let current = decode(&raw, clock)?;
            let new = match rules(&current, clock.instant) {
                Ok(new) => new,
                Err(reject) => return Ok(Err(reject)),
            };
            let value = encode(&new, clock);
            if value == raw {
                // Nothing changed (a query): nothing to write.
                return Ok(Ok(new));
            }
            let expire_at = new
                .iter()
                .map(|b| clock.unix_ms(b.expires_at))
                .max()
                .unwrap_or(0);
            if value.len() > MAX_VALUE {
                // It could not be read back: refuse it rather than lock the AOR out.
                return Err(LocationError::TooLarge(value.len()));
            }
            let written: i64 = self
                .shared
                .cas
                .key(key)
                .arg(&raw)
                .arg(&value)
                .arg(expire_at)
                .invoke_async(&mut conn)
                .await?;
            if written == 1 {
                return Ok(Ok(new));
            }
            tracing::debug!(%aor, "bindings changed by another server meanwhile, again");
        }
        Err(LocationError::Contended(attempts))
    }
}

/// This process's turn to update an AOR (see `Shared::updating`); the entry is forgotten
/// when the last update of the AOR ends, however it ends.
struct Turn<'a> {
    shared: &'a Shared,
    aor: &'a str,
    lock: Arc<Mutex<()>>,
}

impl<'a> Turn<'a> {
    fn new(shared: &'a Shared, aor: &'a str) -> Turn<'a> {
        let mut updating = shared.updating.lock().unwrap_or_else(|e| e.into_inner());
        let lock = Arc::clone(updating.entry(aor.to_owned()).or_default());
        Turn { shared, aor, lock }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut updating = self
            .shared
            .updating
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Ours and the map's: nobody else holds or waits for it.
        if updating
            .get(self.aor)
            .is_some_and(|t| Arc::strong_count(t) == 2)
        {
            updating.remove(self.aor);
        }
    }
}

/// A random pause before attempt `attempt` (from 1) of a compare-and-set: up to 1 ms,
/// doubling with each attempt to 32 ms. The randomness only spreads retries out; it
/// needs no quality (the low bits of the system clock).
fn backoff(attempt: u32) -> Duration {
    let ceiling_us = 1000u32 << attempt.saturating_sub(1).min(5);
    let noise = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_micros();
    Duration::from_micros(u64::from(noise % ceiling_us))
}

/// The right to run one operation on a [`RedisLocation`] (see
/// [`RedisLocation::try_slot`]).
#[derive(Debug)]
pub struct Slot {
    store: RedisLocation,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    /// The unexpired bindings of `aor` (canonical form).
    pub async fn lookup(&self, aor: &str) -> Result<Vec<Binding>, LocationError> {
        self.store.lookup(aor).await
    }

    /// Changes the bindings of `aor` atomically: `rules` gets the current unexpired
    /// bindings and the time, and returns the new full set (written, with the key's expiry
    /// at the latest binding's, or the key deleted when empty) or a rejection (nothing
    /// written). `rules` runs again when another server changed the bindings meanwhile, so
    /// it must be a pure function of its arguments, like
    /// [`RegisterRequest::apply`](sip_core::registrar::RegisterRequest::apply):
    ///
    /// ```no_run
    /// # async fn f(
    /// #     slot: sip_driver_tokio::location::Slot,
    /// #     request: sip_core::registrar::RegisterRequest,
    /// # ) -> Result<(), sip_driver_tokio::location::LocationError> {
    /// let outcome = slot
    ///     .update(request.aor(), |current, now| request.apply(current, now))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn update<R>(
        &self,
        aor: &str,
        rules: impl FnMut(&[Binding], Instant) -> Result<Vec<Binding>, R>,
    ) -> Result<Result<Vec<Binding>, R>, LocationError> {
        self.store.update(aor, rules).await
    }
}

/// The two clocks read at one moment: converts a binding's [`Instant`] to unix
/// milliseconds and back, for a value that other processes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// The monotonic clock.
    pub instant: Instant,
    /// The system clock at the same moment, in milliseconds since the unix epoch.
    pub unix_ms: u64,
}

impl Clock {
    /// Both clocks now.
    pub fn now() -> Clock {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            instant: Instant::now(),
            unix_ms: u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// `t` in unix milliseconds (rounded down to the millisecond).
    pub fn unix_ms(&self, t: Instant) -> u64 {
        if t >= self.instant {
            let ms = u64::try_from(t.duration_since(self.instant).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_add(ms)
        } else {
            // Rounded up here, so that a time in the past rounds down like one ahead.
            let d = self.instant.duration_since(t);
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            self.unix_ms
                .saturating_sub(u64::try_from(ms).unwrap_or(u64::MAX))
        }
    }

    /// The [`Instant`] of unix milliseconds `ms` (the earliest this clock can say for a
    /// time before its process started).
    pub fn instant(&self, ms: u64) -> Instant {
        if ms >= self.unix_ms {
            let ahead = Duration::from_millis(ms - self.unix_ms);
            // Far in the future: as far as the clock goes (never sooner than written).
            self.instant
                .checked_add(ahead)
                .unwrap_or(self.instant + Duration::from_secs(100 * 365 * 86_400))
        } else {
            let behind = Duration::from_millis(self.unix_ms - ms);
            self.instant.checked_sub(behind).unwrap_or(self.instant)
        }
    }
}

/// The format's first byte: another program's value, or a later format, is not read as
/// bindings.
const FORMAT: u8 = 1;

/// The value stored for an AOR's bindings (empty for none): the format byte, the number of
/// bindings, then each binding's fields in order, strings as a 32-bit length and UTF-8
/// bytes, integers big-endian, the expiry in unix milliseconds ([`Clock::unix_ms`]), and a
/// flag byte for the optional fields. A binding's flow (a connection of this process) is
/// not stored: its transport and addresses are.
pub fn encode(bindings: &[Binding], clock: Clock) -> Vec<u8> {
    if bindings.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(64 + bindings.len() * 256);
    out.push(FORMAT);
    put_u32(&mut out, bindings.len());
    for b in bindings {
        put_str(&mut out, &b.aor);
        put_str(&mut out, &b.contact);
        out.extend_from_slice(&clock.unix_ms(b.expires_at).to_be_bytes());
        let flags = u8::from(b.q.is_some())
            | u8::from(b.instance.is_some()) << 1
            | u8::from(b.reg_id.is_some()) << 2
            | u8::from(b.source.is_some()) << 3;
        out.push(flags);
        if let Some(q) = b.q {
            out.extend_from_slice(&q.to_be_bytes());
        }
        put_str(&mut out, &b.call_id);
        out.extend_from_slice(&b.cseq.to_be_bytes());
        put_u32(&mut out, b.path.len());
        for p in &b.path {
            put_str(&mut out, p);
        }
        if let Some(i) = &b.instance {
            put_str(&mut out, i);
        }
        if let Some(r) = b.reg_id {
            out.extend_from_slice(&r.to_be_bytes());
        }
        if let Some(s) = &b.source {
            put_str(&mut out, s.transport.via_token());
            put_str(&mut out, &s.local.to_string());
            put_str(&mut out, &s.remote.to_string());
        }
    }
    out
}

/// Reads what [`encode`] wrote (an empty value: no bindings), expired bindings included.
/// Anything else is [`LocationError::Corrupt`], never a panic.
pub fn decode(value: &[u8], clock: Clock) -> Result<Vec<Binding>, LocationError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    if value.len() > MAX_VALUE {
        return Err(LocationError::Corrupt("too large"));
    }
    let mut r = Reader(value);
    if r.u8()? != FORMAT {
        return Err(LocationError::Corrupt("unknown format"));
    }
    let count = r.len()?;
    let mut bindings = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let aor = r.string()?;
        let contact = r.string()?;
        let expires_at = clock.instant(r.u64()?);
        let flags = r.u8()?;
        if flags & !0b1111 != 0 {
            return Err(LocationError::Corrupt("unknown flags"));
        }
        let q = if flags & 1 != 0 { Some(r.u16()?) } else { None };
        let call_id = r.string()?;
        let cseq = r.u32()?;
        let paths = r.len()?;
        let mut path = Vec::with_capacity(paths.min(64));
        for _ in 0..paths {
            path.push(r.string()?);
        }
        let instance = if flags & 2 != 0 {
            Some(r.string()?)
        } else {
            None
        };
        let reg_id = if flags & 4 != 0 { Some(r.u32()?) } else { None };
        let source = if flags & 8 != 0 {
            let transport = Transport::from_via_token(&r.string()?)
                .ok_or(LocationError::Corrupt("unknown transport"))?;
            let local = r
                .string()?
                .parse()
                .map_err(|_| LocationError::Corrupt("address"))?;
            let remote = r
                .string()?
                .parse()
                .map_err(|_| LocationError::Corrupt("address"))?;
            Some(Source {
                transport,
                local,
                remote,
                flow: None,
            })
        } else {
            None
        };
        bindings.push(Binding {
            aor,
            contact,
            expires_at,
            q,
            call_id,
            cseq,
            path,
            instance,
            reg_id,
            source,
        });
    }
    if !r.0.is_empty() {
        return Err(LocationError::Corrupt("trailing bytes"));
    }
    Ok(bindings)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Lengths come from values held in memory; none is near 4 GiB.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Reads a value front to back; every read checks what is left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LocationError> {
        if self.0.len() < n {
            return Err(LocationError::Corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LocationError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, LocationError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, LocationError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, LocationError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, LocationError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A count or length: never more than the bytes left, so that a corrupt count cannot
    /// make a large allocation.
    fn len(&mut self) -> Result<usize, LocationError> {
        let n = usize::try_from(self.u32()?).unwrap_or(usize::MAX);
        if n > self.0.len() {
            return Err(LocationError::Corrupt("length beyond the value"));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, LocationError> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| LocationError::Corrupt("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::SocketAddr;

    /// One clock pair for the whole test, a month after now so that times before it are
    /// representable.
    fn clock() -> Clock {
        static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
        *CLOCK.get_or_init(|| Clock {
            instant: Instant::now() + Duration::from_secs(30 * 86_400),
            unix_ms: 1_800_000_000_000,
        })
    }

    fn text() -> impl Strategy<Value = String> {
        // Any Unicode, empty included: the format has no escaping to get wrong.
        proptest::string::string_regex(".{0,40}").unwrap()
    }

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
            (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        ]
    }

    fn source() -> impl Strategy<Value = Source> {
        (
            prop_oneof![
                Just(Transport::Udp),
                Just(Transport::Tcp),
                Just(Transport::Tls)
            ],
            addr(),
            addr(),
        )
            .prop_map(|(transport, local, remote)| Source {
                transport,
                local,
                remote,
                flow: None,
            })
    }

    fn binding(clock: Clock) -> impl Strategy<Value = Binding> {
        (
            (text(), text(), -20 * 86_400_000i64..400 * 86_400_000i64),
            (proptest::option::of(0u16..=1000), text(), any::<u32>()),
            proptest::collection::vec(text(), 0..4),
            (
                proptest::option::of(text()),
                proptest::option::of(any::<u32>()),
            ),
            proptest::option::of(source()),
        )
            .prop_map(
                move |(
                    (aor, contact, offset_ms),
                    (q, call_id, cseq),
                    path,
                    (instance, reg_id),
                    source,
                )| {
                    let offset = Duration::from_millis(offset_ms.unsigned_abs());
                    let expires_at = if offset_ms >= 0 {
                        clock.instant + offset
                    } else {
                        clock.instant - offset
                    };
                    Binding {
                        aor,
                        contact,
                        expires_at,
                        q,
                        call_id,
                        cseq,
                        path,
                        instance,
                        reg_id,
                        source,
                    }
                },
            )
    }

    proptest! {
        // RFC 3261 10.3 step 7: the store keeps every field of a binding as the registrar
        // made it, Path (RFC 3327 5.3) and the instance and reg-id (RFC 5626 6) included.
        #[test]
        fn stored_bindings_read_back_unchanged(
            bindings in proptest::collection::vec(binding(clock()), 0..6)
        ) {
            let value = encode(&bindings, clock());
            prop_assert_eq!(value.is_empty(), bindings.is_empty());
            let back = decode(&value, clock()).unwrap();
            prop_assert_eq!(back, bindings);
        }

        // Any value under the key (another program's, truncated, corrupt) is an error, never
        // a panic or a large allocation.
        #[test]
        fn any_stored_value_decodes_or_fails_cleanly(value in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&value, clock());
        }

        // Every truncation of a valid value is refused, as are trailing bytes.
        #[test]
        fn truncated_or_extended_values_are_refused(
            bindings in proptest::collection::vec(binding(clock()), 1..3),
            cut in any::<prop::sample::Index>(),
        ) {
            let value = encode(&bindings, clock());
            let n = cut.index(value.len());
            prop_assert!(decode(&value[..n], clock()).is_err() || n == 0);
            let mut longer = value.clone();
            longer.push(0);
            prop_assert!(decode(&longer, clock()).is_err());
        }

        // The expiry crosses processes as unix time: another process's clock, read at
        // another moment, finds the same wall-clock expiry.
        #[test]
        fn expiry_is_written_in_unix_time(offset_ms in -1_000_000_000i64..1_000_000_000, later_ms in 0u64..100_000_000) {
            let here = clock();
            let offset = Duration::from_millis(offset_ms.unsigned_abs());
            let t = if offset_ms >= 0 { here.instant + offset } else { here.instant - offset };
            let ms = here.unix_ms(t);
            prop_assert_eq!(i128::from(ms), i128::from(here.unix_ms) + i128::from(offset_ms));
            // The same moment seen from a clock pair read `later_ms` afterwards.
            let there = Clock {
                instant: here.instant + Duration::from_millis(later_ms),
                unix_ms: here.unix_ms + later_ms,
            };
            prop_assert_eq!(there.instant(ms), t);
        }
    }

    // RFC 3261 10.3 step 7: with no binding left the AOR's key is deleted, not kept empty.
    #[test]
    fn no_bindings_is_no_value() {
        assert!(encode(&[], clock()).is_empty());
        assert_eq!(decode(&[], clock()).unwrap(), Vec::new());
    }

    // A value of another format is left alone rather than overwritten.
    #[test]
    fn another_format_is_refused() {
        assert!(matches!(
            decode(b"\x02\x00\x00\x00\x00", clock()),
            Err(LocationError::Corrupt(_))
        ));
        assert!(matches!(
            decode(b"<sip:alice@127.0.0.1>", clock()),
            Err(LocationError::Corrupt(_))
        ));
    }
}
