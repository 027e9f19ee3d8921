//! The Redis location store against a real `redis-server` (Debian package `redis-server`),
//! started by each test on 127.0.0.1:6390 (6391 when that is taken) with a scratch
//! directory and no persistence, and stopped at the test's end. The tests run one at a
//! time (one port). Without `redis-server` they say so and pass, unless
//! `SIP_REQUIRE_INTEROP` is set (then they fail); `scripts/test.sh` installs it.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sip_core::location::Binding;
use sip_driver_tokio::location::{LocationError, RedisConfig, RedisLocation};

/// Every step is bounded: a hang fails the test instead.
async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(20), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// One test at a time: they share the port.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A `redis-server` of this test, stopped (SIGTERM, then waited for) when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one, or `None` (after saying why) when `redis-server` is not installed and
    /// `SIP_REQUIRE_INTEROP` is not set.
    fn start() -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("SIP_REQUIRE_INTEROP").is_none(),
                "redis-server is not installed and SIP_REQUIRE_INTEROP is set"
            );
            eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        for port in [6390, 6391] {
            if let Some(server) = Self::start_on(port) {
                return Some(server);
            }
        }
        panic!("redis-server could not start on 127.0.0.1:6390 or :6391");
    }

    fn start_on(port: u16) -> Option<RedisServer> {
        // A port some other program holds: try the next.
        drop(TcpListener::bind(("127.0.0.1", port)).ok()?);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("redis-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--protected-mode", "yes", "--logfile", ""])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = RedisServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.child.try_wait() {
                return None; // it could not bind (someone took the port meanwhile)
            }
            let ping = redis::Client::open(server.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ping.is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        server.stop();
        panic!("redis-server on port {port} did not answer PING");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if self.child.try_wait().is_ok_and(|s| s.is_some()) {
            return;
        }
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// A synchronous connection for looking at what the store wrote.
    fn cli(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn binding(aor: &str, contact: &str, expires_at: Instant, call_id: &str) -> Binding {
    Binding {
        aor: aor.into(),
        contact: contact.into(),
        expires_at,
        q: None,
        call_id: call_id.into(),
        cseq: 1,
        path: Vec::new(),
        instance: None,
        reg_id: None,
        source: None,
    }
}

/// Rules that add one binding (a REGISTER with a new Contact, as far as the store can
/// tell); `Infallible` rejections.
fn add(
    b: Binding,
) -> impl FnMut(&[Binding], Instant) -> Result<Vec<Binding>, std::convert::Infallible> {
    move |current, now| {
        let mut set: Vec<Binding> = current
            .iter()
            .filter(|c| !c.is_expired(now))
            .cloned()
            .collect();
        set.push(b.clone());
        Ok(set)
    }
}

fn config(timeout: Duration) -> RedisConfig {
    let mut c = RedisConfig::default();
    c.timeout = timeout;
    c
}

// RFC 3261 10.3 step 7: the binding updates of one REGISTER are atomic; with servers
// sharing a store, concurrent REGISTERs for one AOR through two of them lose no binding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_through_two_servers_lose_no_binding() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let aor = "sip:carol@example.test";
    let servers = [
        RedisLocation::open(&redis.url(), config(Duration::from_secs(10))).unwrap(),
        RedisLocation::open(&redis.url(), config(Duration::from_secs(10))).unwrap(),
    ];
    let expires = Instant::now() + Duration::from_secs(600);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = servers[i % 2].clone();
        let b = binding(
            aor,
            &format!("sip:carol@192.0.2.{i}"),
            expires,
            &format!("c{i}"),
        );
        tasks.spawn(async move {
            let slot = store.try_slot().unwrap();
            slot.update(aor, add(b)).await
        });
    }
    while let Some(done) = bounded("updates", tasks.join_next()).await {
        let outcome = done.unwrap().expect("Redis answers");
        assert!(outcome.is_ok());
    }
    for store in &servers {
        let slot = store.try_slot().unwrap();
        let mut contacts: Vec<String> = bounded("lookup", slot.lookup(aor))
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.contact)
            .collect();
        contacts.sort();
        let mut expected: Vec<String> = (0..40).map(|i| format!("sip:carol@192.0.2.{i}")).collect();
        expected.sort();
        assert_eq!(contacts, expected);
    }
}

// RFC 3261 10.3 step 7 and 10.2.1: a binding lasts its expiry and no longer, on every
// server; Redis frees the AOR's key when its last binding expires.
#[tokio::test]
async fn bindings_expire_in_every_server_and_redis_frees_the_key() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let aor = "sip:dave@example.test";
    let a = RedisLocation::open(&redis.url(), RedisConfig::default()).unwrap();
    let b = RedisLocation::open(&redis.url(), RedisConfig::default()).unwrap();
    let now = Instant::now();
    let short = binding(
        aor,
        "sip:dave@192.0.2.1",
        // Long enough for the writes and the first read below on a loaded machine.
        now + Duration::from_secs(2),
        "s",
    );
    let long = binding(
        aor,
        "sip:dave@192.0.2.2",
        now + Duration::from_secs(60),
        "l",
    );
    let slot = a.try_slot().unwrap();
    slot.update(aor, add(short)).await.unwrap().unwrap();
    slot.update(aor, add(long)).await.unwrap().unwrap();
    // The key lives as long as the later binding.
    let mut cli = redis.cli();
    let pttl: i64 = redis::cmd("PTTL").arg(a.key(aor)).query(&mut cli).unwrap();
    assert!(pttl > 1_000, "PTTL {pttl}");
    // The other server sees both, then only the longer one once the first expired.
    let other = b.try_slot().unwrap();
    assert_eq!(other.lookup(aor).await.unwrap().len(), 2);
    bounded("the short binding expires", async {
        while other.lookup(aor).await.unwrap().len() != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(
        other.lookup(aor).await.unwrap()[0].contact,
        "sip:dave@192.0.2.2"
    );

    // An AOR with a short binding only: Redis deletes the key by itself.
    let aor = "sip:erin@example.test";
    let brief = binding(
        aor,
        "sip:erin@192.0.2.3",
        Instant::now() + Duration::from_millis(200),
        "e",
    );
    slot.update(aor, add(brief)).await.unwrap().unwrap();
    bounded("Redis frees the key", async {
        loop {
            let exists: i64 = redis::cmd("EXISTS")
                .arg(a.key(aor))
                .query(&mut cli)
                .unwrap();
            if exists == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(other.lookup(aor).await.unwrap().is_empty());
}

// RFC 3261 10.3 step 7: a request that fails changes no binding; removing the last one
// deletes the key.
#[tokio::test]
async fn a_rejected_update_writes_nothing_and_an_empty_set_deletes_the_key() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let aor = "sip:frank@example.test";
    let store = RedisLocation::open(&redis.url(), RedisConfig::default()).unwrap();
    let slot = store.try_slot().unwrap();
    let b = binding(
        aor,
        "sip:frank@192.0.2.4",
        Instant::now() + Duration::from_secs(60),
        "f",
    );
    slot.update(aor, add(b)).await.unwrap().unwrap();
    let mut cli = redis.cli();
    let before: Vec<u8> = redis::cmd("GET")
        .arg(store.key(aor))
        .query(&mut cli)
        .unwrap();

    let refused = slot
        .update(aor, |_, _| Err::<Vec<Binding>, _>("stale CSeq"))
        .await
        .unwrap();
    assert_eq!(refused, Err("stale CSeq"));
    let after: Vec<u8> = redis::cmd("GET")
        .arg(store.key(aor))
        .query(&mut cli)
        .unwrap();
    assert_eq!(after, before);

    let emptied = slot
        .update(aor, |_, _| Ok::<_, ()>(Vec::new()))
        .await
        .unwrap();
    assert_eq!(emptied, Ok(Vec::new()));
    let exists: i64 = redis::cmd("EXISTS")
        .arg(store.key(aor))
        .query(&mut cli)
        .unwrap();
    assert_eq!(exists, 0);
}

// A value the store did not write (another program using the prefix) is reported and
// left alone, not overwritten.
#[tokio::test]
async fn a_foreign_value_is_left_alone() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let aor = "sip:grace@example.test";
    let store = RedisLocation::open(&redis.url(), RedisConfig::default()).unwrap();
    let mut cli = redis.cli();
    let _: () = redis::cmd("SET")
        .arg(store.key(aor))
        .arg("not bindings")
        .query(&mut cli)
        .unwrap();
    let slot = store.try_slot().unwrap();
    let b = binding(
        aor,
        "sip:grace@192.0.2.5",
        Instant::now() + Duration::from_secs(60),
        "g",
    );
    let result = slot.update(aor, add(b)).await;
    assert!(
        matches!(result, Err(LocationError::Corrupt(_))),
        "{result:?}"
    );
    let value: String = redis::cmd("GET")
        .arg(store.key(aor))
        .query(&mut cli)
        .unwrap();
    assert_eq!(value, "not bindings");
}

// RFC 3261 21.5.4 (503): a store that is down fails the operation at once (the registrar
// answers 503 with Retry-After), and serves again once Redis is back, without a restart.
#[tokio::test]
async fn a_redis_that_is_down_fails_fast_and_is_used_again_when_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let port = redis.port;
    let aor = "sip:heidi@example.test";
    let store = RedisLocation::open(&url, config(Duration::from_secs(5))).unwrap();
    let slot = store.try_slot().unwrap();
    assert!(slot.lookup(aor).await.unwrap().is_empty());

    redis.stop();
    let down = bounded("an operation while Redis is down", slot.lookup(aor)).await;
    assert!(matches!(down, Err(LocationError::Redis(_))), "{down:?}");
    let reject = down.unwrap_err().reject(store.config().retry_after);
    assert_eq!(reject.status, 503);
    assert_eq!(reject.retry_after, Some(5));

    drop(redis);
    let Some(_back) = RedisServer::start_on(port) else {
        panic!("redis-server did not start again on {port}");
    };
    let b = binding(
        aor,
        "sip:heidi@192.0.2.6",
        Instant::now() + Duration::from_secs(60),
        "h",
    );
    bounded("an operation once Redis is back", slot.update(aor, add(b)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slot.lookup(aor).await.unwrap().len(), 1);
}

// RFC 3261 21.5.4 (503): a Redis that accepts the connection and never answers makes the
// operation fail at its deadline instead of holding the request.
#[tokio::test]
async fn a_redis_that_never_answers_times_out() {
    // A listener that accepts and then says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
        }
    });
    let store = RedisLocation::open(
        &format!("redis://{addr}"),
        config(Duration::from_millis(300)),
    )
    .unwrap();
    let slot = store.try_slot().unwrap();
    let result = bounded(
        "a lookup against a silent server",
        slot.lookup("sip:ivan@example.test"),
    )
    .await;
    assert!(
        matches!(
            result,
            Err(LocationError::Timeout(_)) | Err(LocationError::Redis(_))
        ),
        "{result:?}"
    );
    held.abort();
}

// No state a peer can grow without bound: past the limit of operations in flight, a new
// one is refused at once rather than queued.
#[tokio::test]
async fn operations_beyond_the_limit_in_flight_are_refused_at_once() {
    let mut c = RedisConfig::default();
    c.max_in_flight = 2;
    // Nothing listens here; no operation is run anyway.
    let store = RedisLocation::open("redis://127.0.0.1:1", c).unwrap();
    let first = store.try_slot().unwrap();
    let _second = store.clone().try_slot().unwrap();
    assert!(matches!(store.try_slot(), Err(LocationError::Busy)));
    drop(first);
    assert!(store.try_slot().is_ok());
}

// ---- Two sipd processes sharing one Redis (`sipd --registrar --location redis://...`).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;

/// Builds this crate's `sipd` once per test process and returns a private hard link to it
/// (the mio driver's `sipd` has the same output path; see `tests/examples.rs`).
fn sipd() -> PathBuf {
    common::example("sip-driver-tokio", "sipd", "redis-sipd")
}

/// A running `sipd --registrar --location ...`, killed if the test fails before stopping it.
struct Sipd {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Sipd {
    fn start(location: &str, extra: &[&str]) -> Sipd {
        let mut child = Command::new(sipd())
            .args([
                "--listen",
                "udp:127.0.0.1:0",
                "--registrar",
                "--realm",
                "example.com",
            ])
            .args(["--location", location])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sipd");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(20));
        let port = line.as_ref().ok().and_then(|l| {
            let rest = l.strip_prefix("sipd: listening on udp:127.0.0.1:")?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u16>()
                .ok()
        });
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sipd did not say where it listens: {line:?}");
        };
        assert!(line.unwrap().contains("bindings in Redis"));
        Sipd {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            stderr: rx,
        }
    }

    /// SIGTERM, then its summary; it must exit 0.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "sipd did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut out).unwrap();
        let log: Vec<String> = self.stderr.try_iter().collect();
        assert!(status.success(), "{log:?}");
        out
    }
}

impl Drop for Sipd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A REGISTER for `user`@example.com from `me`.
fn register(user: &str, me: SocketAddr, call_id: &str, cseq: u32, contact: Option<&str>) -> String {
    let contact = contact.map_or(String::new(), |c| format!("Contact: {c}\r\n"));
    format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}-{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@example.com>;tag=r\r\nTo: <sip:{user}@example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n{contact}Content-Length: 0\r\n\r\n"
    )
}

/// A UDP peer on loopback with a read deadline.
fn peer() -> (UdpSocket, SocketAddr) {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let me = peer.local_addr().unwrap();
    (peer, me)
}

/// Sends `request` to `server` and returns its final response.
fn exchange(peer: &UdpSocket, server: SocketAddr, request: &str) -> String {
    peer.send_to(request.as_bytes(), server).unwrap();
    final_response(peer)
}

fn final_response(peer: &UdpSocket) -> String {
    let mut buf = [0u8; 65536];
    loop {
        let n = peer.recv(&mut buf).expect("sipd answers in time");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

/// The Contact URIs a 200 to REGISTER lists.
fn contacts(response: &str) -> Vec<String> {
    let mut c: Vec<String> = response
        .lines()
        .filter_map(|l| l.strip_prefix("Contact: <"))
        .filter_map(|l| l.split('>').next())
        .map(str::to_owned)
        .collect();
    c.sort();
    c
}

// RFC 3261 10.3 steps 7-8 with the location service shared: a binding registered through
// one server is in the 200 to a query (REGISTER without Contact) through another.
#[tokio::test]
async fn a_binding_registered_through_one_sipd_is_listed_by_another() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (
        Sipd::start(&redis.url(), &[]),
        Sipd::start(&redis.url(), &[]),
    );
    let (peer, me) = peer();
    let contact = format!("sip:alice@{me}");
    let ok = exchange(
        &peer,
        a.addr,
        &register(
            "alice",
            me,
            "shared-1",
            1,
            Some(&format!("<{contact}>;expires=300")),
        ),
    );
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    let listed = exchange(&peer, b.addr, &register("alice", me, "query-1", 1, None));
    assert!(listed.starts_with("SIP/2.0 200 "), "{listed}");
    assert_eq!(
        contacts(&listed),
        std::slice::from_ref(&contact),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("<{contact}>;expires=")),
        "{listed}"
    );

    // Removed through the second, gone from the first (section 10.2.2).
    let removed = exchange(
        &peer,
        b.addr,
        &register(
            "alice",
            me,
            "shared-1",
            2,
            Some(&format!("<{contact}>;expires=0")),
        ),
    );
    assert!(removed.starts_with("SIP/2.0 200 "), "{removed}");
    let listed = exchange(&peer, a.addr, &register("alice", me, "query-2", 1, None));
    assert!(contacts(&listed).is_empty(), "{listed}");
    let summary = a.stop();
    assert!(
        summary.contains("registrations 2, bindings in Redis"),
        "{summary}"
    );
    b.stop();
}

// RFC 3261 10.2.1 and 10.3 step 7: a binding lasts what the registrar granted, on every
// server sharing the store; and Redis drops the AOR's key then.
#[tokio::test]
async fn a_binding_expires_in_both_sipds() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let short = ["--min-expires", "1"];
    let (a, b) = (
        Sipd::start(&redis.url(), &short),
        Sipd::start(&redis.url(), &short),
    );
    let (peer, me) = peer();
    let ok = exchange(
        &peer,
        a.addr,
        &register(
            "bob",
            me,
            "expiring",
            1,
            Some(&format!("<sip:bob@{me}>;expires=1")),
        ),
    );
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    // Listed by the other server until it expires, then by neither.
    let listed = exchange(&peer, b.addr, &register("bob", me, "q", 1, None));
    assert!(listed.starts_with("SIP/2.0 200 "), "{listed}");
    let mut cseq = 2;
    let deadline = Instant::now() + Duration::from_secs(15);
    for server in [b.addr, a.addr] {
        loop {
            let listed = exchange(&peer, server, &register("bob", me, "q", cseq, None));
            cseq += 1;
            assert!(listed.starts_with("SIP/2.0 200 "), "{listed}");
            if contacts(&listed).is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the binding never expired: {listed}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut cli = redis.cli();
    let exists: i64 = redis::cmd("EXISTS")
        .arg("sip:location:sip:bob@example.com")
        .query(&mut cli)
        .unwrap();
    assert_eq!(exists, 0);
    a.stop();
    b.stop();
}

// RFC 3261 10.3 step 7 ("atomically"): REGISTERs for one AOR arriving at two servers at
// once all take effect; none overwrites another's binding.
#[tokio::test]
async fn concurrent_registers_through_two_sipds_lose_no_binding() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (
        Sipd::start(&redis.url(), &[]),
        Sipd::start(&redis.url(), &[]),
    );
    let (peer, me) = peer();
    // The registrar's default limit is 10 bindings per AOR: ten devices, each with its own
    // Call-ID, half through each server, all sent before any answer is read.
    let devices = 10;
    for i in 0..devices {
        let server = if i % 2 == 0 { a.addr } else { b.addr };
        let contact = format!("<sip:carol-{i}@{me}>;expires=300");
        let request = register("carol", me, &format!("device-{i}"), 1, Some(&contact));
        peer.send_to(request.as_bytes(), server).unwrap();
    }
    for _ in 0..devices {
        let response = final_response(&peer);
        assert!(response.starts_with("SIP/2.0 200 "), "{response}");
    }
    let mut expected: Vec<String> = (0..devices)
        .map(|i| format!("sip:carol-{i}@{me}"))
        .collect();
    expected.sort();
    for server in [a.addr, b.addr] {
        let listed = exchange(&peer, server, &register("carol", me, "query", 1, None));
        assert_eq!(contacts(&listed), expected, "{listed}");
    }
    a.stop();
    b.stop();
}

// RFC 3261 21.5.4: a registrar whose location store is down answers REGISTER 503 with
// Retry-After at once, instead of hanging or dropping it; it needs no restart when the
// store comes back.
#[tokio::test]
async fn a_redis_that_is_down_gets_register_a_503_not_a_hang() {
    let _one = ONE_AT_A_TIME.lock().await;
    // A port where nothing listens (bound, then freed).
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sipd = Sipd::start(&format!("redis://{free}"), &[]);
    let (peer, me) = peer();
    let refused = exchange(
        &peer,
        sipd.addr,
        &register("dan", me, "down", 1, Some(&format!("<sip:dan@{me}>"))),
    );
    assert!(refused.starts_with("SIP/2.0 503 "), "{refused}");
    assert!(refused.contains("\r\nRetry-After: "), "{refused}");
    let query = exchange(&peer, sipd.addr, &register("dan", me, "down", 2, None));
    assert!(query.starts_with("SIP/2.0 503 "), "{query}");
    sipd.stop();
}

// The sipd conventions (tests/examples.rs): a flag used wrongly is a usage error, exit 2,
// with the reason on stderr; `--location` belongs to a registrar and names a Redis, and
// `--auth-secret-file` holds a whole secret for a registrar with users.
#[test]
fn sipd_location_flags_are_usage_errors_when_misused() {
    // A secret too short to be one.
    let short = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("short-auth-secret");
    std::fs::write(&short, "0123abcd\n").unwrap();
    let short = short.to_str().unwrap();
    let whole = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("whole-auth-secret");
    std::fs::write(&whole, "a5".repeat(32)).unwrap();
    let whole = whole.to_str().unwrap();
    for (args, reason) in [
        (
            &["--location", "redis://127.0.0.1:6390"][..],
            "--location needs --registrar",
        ),
        (
            &[
                "--registrar",
                "--realm",
                "example.com",
                "--location",
                "http://127.0.0.1:6390",
            ],
            "not redis://HOST:PORT",
        ),
        (&["--min-expires", "1"], "--min-expires needs --registrar"),
        (
            &[
                "--registrar",
                "--realm",
                "example.com",
                "--min-expires",
                "0",
            ],
            "not a number of seconds",
        ),
        (
            &[
                "--registrar",
                "--realm",
                "example.com",
                "--auth-secret-file",
                whole,
            ],
            "--auth-secret-file needs at least one --user",
        ),
        (
            &[
                "--registrar",
                "--realm",
                "example.com",
                "--user",
                "alice:pw",
                "--auth-secret-file",
                short,
            ],
            "not 64 hex digits",
        ),
    ] {
        let mut child = Command::new(sipd())
            .args(["--listen", "udp:127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Bounded: a sipd that starts instead of refusing is killed.
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: sipd"), "{args:?}: {stderr}");
    }
}

/// `request` answered to the digest challenge in `challenge` by `client`, with a Via of
/// its own (the answer is a new transaction, RFC 3261 section 22.2).
fn answered(
    client: &mut sip_core::auth::DigestClient,
    request: &str,
    challenge: &str,
    me: SocketAddr,
    branch: &str,
) -> String {
    let req = sip_core::OwnedMessage::parse(request.as_bytes()).unwrap();
    let resp = sip_core::OwnedMessage::parse(challenge.as_bytes()).unwrap();
    let again = client
        .retry(&req, &resp, &mut sip_core::SeededRng::new([9; 32]))
        .expect("the challenge is answered");
    with_via(again.as_bytes(), me, branch)
}

fn with_via(message: &[u8], me: SocketAddr, branch: &str) -> String {
    let text = String::from_utf8(message.to_vec()).unwrap();
    let (line, rest) = text.split_once("\r\n").unwrap();
    let rest: String = rest
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Via:"))
        .collect();
    format!("{line}\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch}\r\n{rest}")
}

// RFC 3261 22.1 / RFC 7616 3.3 behind one DNS name: a nonce that one server issued is
// accepted by another that has the same secret (`--auth-secret-file`), so a client
// challenged by one may send its credentials to any; with secrets of their own, the
// other server challenges again.
#[tokio::test]
async fn a_nonce_from_one_sipd_is_accepted_by_another_with_the_same_secret() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let secret = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("redis-auth-secret");
    std::fs::write(&secret, format!("{}\n", "5a".repeat(32))).unwrap();
    let secret = secret.to_str().unwrap().to_owned();
    let users = ["--user", "alice:secret"];
    for shared in [true, false] {
        let mut extra = users.to_vec();
        if shared {
            extra.extend(["--auth-secret-file", &secret]);
        }
        let (a, b) = (
            Sipd::start(&redis.url(), &extra),
            Sipd::start(&redis.url(), &extra),
        );
        let (peer, me) = peer();
        let call_id = format!("nonce-{shared}");
        let contact = format!("<sip:alice@{me}>;expires=300");
        let first = register("alice", me, &call_id, 1, Some(&contact));
        let challenge = exchange(&peer, a.addr, &first);
        assert!(challenge.starts_with("SIP/2.0 401 "), "{challenge}");
        let mut client = sip_core::auth::DigestClient::new("alice", "secret");
        let second = answered(&mut client, &first, &challenge, me, &format!("{call_id}-2"));
        let outcome = exchange(&peer, b.addr, &second);
        if !shared {
            assert!(outcome.starts_with("SIP/2.0 401 "), "{outcome}");
            a.stop();
            b.stop();
            continue;
        }
        assert!(outcome.starts_with("SIP/2.0 200 "), "{outcome}");
        // The kept nonce, next nonce-count, back at the first server: a query lists the
        // binding made through the second.
        let query = register("alice", me, &call_id, 3, None);
        let query = client
            .authorize(
                &sip_core::OwnedMessage::parse(query.as_bytes()).unwrap(),
                &mut sip_core::SeededRng::new([8; 32]),
            )
            .unwrap();
        let listed = exchange(&peer, a.addr, &with_via(query.as_bytes(), me, "q3"));
        assert!(listed.starts_with("SIP/2.0 200 "), "{listed}");
        assert_eq!(contacts(&listed), [format!("sip:alice@{me}")], "{listed}");
        a.stop();
        b.stop();
    }
}

// No state a peer can grow without bound, and none that locks an AOR out: bindings too
// large to be read back are refused (503), and what was stored stays.
#[tokio::test]
async fn bindings_too_large_for_one_key_are_refused_and_nothing_is_written() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let aor = "sip:judy@example.test";
    let store = RedisLocation::open(&redis.url(), RedisConfig::default()).unwrap();
    let slot = store.try_slot().unwrap();
    let expires = Instant::now() + Duration::from_secs(60);
    slot.update(aor, add(binding(aor, "sip:judy@192.0.2.7", expires, "j")))
        .await
        .unwrap()
        .unwrap();
    let huge = format!("sip:{}@192.0.2.8", "j".repeat(1 << 20));
    let result = slot
        .update(aor, add(binding(aor, &huge, expires, "k")))
        .await;
    assert!(
        matches!(result, Err(LocationError::TooLarge(_))),
        "{result:?}"
    );
    assert_eq!(
        result.unwrap_err().reject(Duration::from_secs(5)).status,
        503
    );
    let kept = slot.lookup(aor).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].contact, "sip:judy@192.0.2.7");
}

// RFC 3261 21.5.4: a Redis that is full (maxmemory, noeviction) refuses the write; the
// registrar answers 503 and no other binding is evicted for it.
#[tokio::test]
async fn a_full_redis_refuses_the_update_with_503() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let aor = "sip:ken@example.test";
    let store = RedisLocation::open(&redis.url(), RedisConfig::default()).unwrap();
    let slot = store.try_slot().unwrap();
    let expires = Instant::now() + Duration::from_secs(60);
    slot.update(aor, add(binding(aor, "sip:ken@192.0.2.9", expires, "k1")))
        .await
        .unwrap()
        .unwrap();
    let mut cli = redis.cli();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut cli)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut cli)
        .unwrap();
    let result = slot
        .update(aor, add(binding(aor, "sip:ken@192.0.2.10", expires, "k2")))
        .await;
    assert!(matches!(result, Err(LocationError::Redis(_))), "{result:?}");
    assert_eq!(
        result.unwrap_err().reject(Duration::from_secs(5)).status,
        503
    );
    let kept = slot.lookup(aor).await.unwrap();
    assert_eq!(kept.len(), 1);
}
