//! The Redis location store against a real `redis-server` (Debian package `redis-server`),
//! started by each test on 127.0.0.1:6390 (6391 when that is taken) with a scratch
//! directory and no persistence, and stopped at the test's end. The tests run one at a
//! time (one port). Without `redis-server` they say so and pass, unless
//! `SIP_REQUIRE_INTEROP` is set (then they fail); `scripts/test.sh` installs it.

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
        now + Duration::from_millis(300),
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
