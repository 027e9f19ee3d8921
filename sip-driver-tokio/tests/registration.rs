//! `Client::register` against registrars on loopback: one written here on the driver's own
//! async API, and SIPp's challenging registrar driven through `sipc register`. Every step
//! is bounded.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::bounded;
use sip_core::registration::{Failure, RegistrationConfig, RegistrationEvent, RegistrationState};
use sip_core::{HeaderName, OwnedMessage, ResponseBuilder, SeededRng, Target, Transport};
use sip_driver_tokio::{os_seed, Client, Driver};
use tokio::sync::mpsc;

/// A registrar on the driver's async API: the first `fail_first` REGISTERs get 503 with
/// Retry-After: 1, the others 200 granting `granted` seconds (removals echo the Contact).
/// Each REGISTER is reported on the channel.
async fn registrar(
    granted: u32,
    fail_first: usize,
) -> (Client, SocketAddr, mpsc::UnboundedReceiver<OwnedMessage>) {
    registrar_failing(granted, fail_first, None).await
}

/// [`registrar`], also answering 500 to every REGISTER whose Contact holds `fail_contact`.
async fn registrar_failing(
    granted: u32,
    fail_first: usize,
    fail_contact: Option<&'static str>,
) -> (Client, SocketAddr, mpsc::UnboundedReceiver<OwnedMessage>) {
    let (server, mut incoming) = Driver::bind(["udp:127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap()
        .start();
    let addr = server.local_addr(Transport::Udp).unwrap();
    let (seen_tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut rng = SeededRng::new(os_seed().unwrap());
        let mut n = 0;
        while let Some((request, mut responder)) = incoming.next().await {
            n += 1;
            let view = request.view();
            let contact = view.header(HeaderName::Contact).unwrap_or("").to_owned();
            let removal = view.header(HeaderName::Expires).map(str::trim) == Some("0");
            let granted = if removal {
                contact
            } else {
                format!("{contact};expires={granted}")
            };
            let response = if fail_contact.is_some_and(|f| granted.contains(f)) {
                ResponseBuilder::from_view(&view, 500).build(&mut rng)
            } else if n <= fail_first {
                ResponseBuilder::from_view(&view, 503)
                    .header("Retry-After", "1")
                    .build(&mut rng)
            } else {
                ResponseBuilder::from_view(&view, 200)
                    .header("Contact", &granted)
                    .build(&mut rng)
            };
            let _ = responder.respond(response.unwrap()).await;
            let _ = seen_tx.send(request);
        }
    });
    (server, addr, seen)
}

async fn client() -> (Client, SocketAddr) {
    let (client, _incoming) = Driver::bind(["udp:127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap()
        .start();
    let me = client.local_addr(Transport::Udp).unwrap();
    (client, me)
}

fn config(registrar: SocketAddr, me: SocketAddr) -> RegistrationConfig {
    RegistrationConfig::new(
        &format!("sip:{registrar}"),
        "sip:alice@example.com",
        &format!("<sip:alice@{me}>"),
    )
}

fn expires(m: &OwnedMessage) -> String {
    m.view()
        .header(HeaderName::Expires)
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn is_registered(s: &RegistrationState) -> bool {
    matches!(s, RegistrationState::Registered { .. })
}

/// The next REGISTER the registrar saw.
async fn next_seen(seen: &mut mpsc::UnboundedReceiver<OwnedMessage>) -> OwnedMessage {
    bounded("a REGISTER at the registrar", seen.recv())
        .await
        .expect("the registrar runs")
}

#[tokio::test]
// RFC 3261 10.2.4 and 10.2.2, through the tokio handle
async fn handle_refreshes_at_the_granted_expiry_then_unregisters() {
    // Asked 3600 s, granted 2 s: the refresh comes after 1 s, not after an hour.
    let (registrar, addr, mut seen) = registrar(2, 0).await;
    let (client, me) = client().await;
    let mut reg = client
        .register(config(addr, me), Target::udp(addr))
        .unwrap();
    let mut registered = 0;
    while registered < 2 {
        match bounded("registered, then refreshed", reg.next_event()).await {
            Some(RegistrationEvent::State(s)) if is_registered(&s) => registered += 1,
            Some(_) => {}
            None => panic!("the registration ended"),
        }
    }
    let done = bounded("unregistered", reg.unregister()).await;
    assert_eq!(done, RegistrationState::Unregistered { failure: None });
    // The REGISTER, its refresh (another one if the machine stalled a second), the removal.
    let first = next_seen(&mut seen).await;
    let mut refreshes = 0;
    let removal = loop {
        let m = next_seen(&mut seen).await;
        if expires(&m) == "0" {
            break m;
        }
        assert_eq!(expires(&m), "3600");
        refreshes += 1;
    };
    assert_eq!(expires(&first), "3600");
    assert!(refreshes >= 1);
    let call_id = |m: &OwnedMessage| m.view().header(HeaderName::CallId).map(str::to_owned);
    assert_eq!(call_id(&first), call_id(&removal));
    client.shutdown().await;
    registrar.shutdown().await;
}

#[tokio::test]
// RFC 3261 21.5.4 and RFC 5626 4.5: a 503 is retried after its Retry-After, not given up
async fn handle_retries_a_503_after_its_retry_after() {
    let (registrar, addr, _seen) = registrar(600, 1).await;
    let (client, me) = client().await;
    let mut reg = client
        .register(config(addr, me), Target::udp(addr))
        .unwrap();
    let retrying = bounded(
        "retrying",
        reg.wait_for(|s| matches!(s, RegistrationState::Retrying { .. })),
    )
    .await;
    let Some(RegistrationState::Retrying { failure, .. }) = retrying else {
        panic!("{retrying:?}")
    };
    assert!(matches!(failure, Failure::Status { code: 503, .. }));
    let state = bounded("registered after the wait", reg.wait_for(is_registered)).await;
    assert!(state.as_ref().is_some_and(is_registered));
    client.shutdown().await;
    registrar.shutdown().await;
}

#[tokio::test]
// RFC 3261 10.2.2: a dropped handle removes its binding
async fn dropping_the_handle_removes_the_binding() {
    let (registrar, addr, mut seen) = registrar(600, 0).await;
    let (client, me) = client().await;
    let mut reg = client
        .register(config(addr, me), Target::udp(addr))
        .unwrap();
    bounded("registered", reg.wait_for(is_registered)).await;
    drop(reg);
    assert_eq!(expires(&next_seen(&mut seen).await), "3600");
    assert_eq!(expires(&next_seen(&mut seen).await), "0");
    client.shutdown().await;
    registrar.shutdown().await;
}

#[tokio::test]
// RFC 3261 10.2.2: shutting the client down removes its live bindings first
async fn client_shutdown_removes_the_live_bindings() {
    let (registrar, addr, mut seen) = registrar(600, 0).await;
    let (client, me) = client().await;
    let mut reg = client
        .register(config(addr, me), Target::udp(addr))
        .unwrap();
    bounded("registered", reg.wait_for(is_registered)).await;
    bounded("shutdown", client.shutdown()).await;
    assert_eq!(expires(&next_seen(&mut seen).await), "3600");
    assert_eq!(expires(&next_seen(&mut seen).await), "0");
    assert_eq!(
        reg.state(),
        RegistrationState::Unregistered { failure: None }
    );
    registrar.shutdown().await;
}

/// The SIPp scenario of a registrar that challenges the first REGISTER (401, MD5, qop=auth),
/// verifies the digest of the second (200, else 403 and a failed run), then answers the
/// removal 200 (a copy of `../shared/interop/cfg/sipp/reg_auth_uas.xml`).
const SIPP_REGISTRAR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/reg_auth_uas.xml");

/// Is SIPp installed? When it is not, the interop tests are skipped with a loud message,
/// unless SIP_REQUIRE_INTEROP is set (where SIPp must run; scripts/test.sh installs it).
fn sipp_available(test: &str) -> bool {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var_os("SIP_REQUIRE_INTEROP").is_some() {
            panic!("{test}: sipp not found and SIP_REQUIRE_INTEROP is set");
        }
        eprintln!("\n*** {test}: SKIPPED: sipp not found (apt-get install -y sip-tester) ***\n");
    }
    found
}

/// Builds `sipc` and returns its path.
fn sipc() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "-q", "-p", "sip-driver-tokio", "--example", "sipc"])
        .arg("--message-format=json")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo build --example sipc");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"kind\":[\"example\"]") && l.contains("\"name\":\"sipc\""))
        .find_map(|l| {
            let at = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            Some(PathBuf::from(l[at..].split('"').next()?))
        })
        .expect("cargo names the executable")
}

/// Waits on a child process for at most `limit`, then kills it; its exit status and output.
fn wait_bounded(child: std::process::Child, limit: Duration) -> (bool, String) {
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(out)) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        _ => {
            // Only the child this test started, by its id.
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            (false, "killed at the deadline".into())
        }
    }
}

/// Is a UDP socket bound to 127.0.0.1:`port`? (Linux's /proc/net/udp; elsewhere, after a
/// second, assumed so.)
fn udp_port_bound(port: u16) -> bool {
    match std::fs::read_to_string("/proc/net/udp") {
        Ok(table) => {
            let local = format!("0100007F:{port:04X}");
            table
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        }
        Err(_) => {
            std::thread::sleep(Duration::from_secs(1));
            true
        }
    }
}

/// Runs `sipc register` with `password` against SIPp's challenging registrar on `port`;
/// returns whether sipc and SIPp exited 0, and sipc's output.
fn sipc_register_against_sipp(port: u16, password: &str) -> (bool, bool, String) {
    let sipc = sipc();
    let dir =
        std::env::temp_dir().join(format!("sip-regclient-sipp-{port}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sipp = Command::new("sipp")
        .args([
            "-sf",
            SIPP_REGISTRAR,
            "-set",
            "user",
            "alice",
            "-set",
            "pass",
            "secret",
        ])
        .args(["-t", "u1", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", "1", "-timeout", "15s", "-timeout_error", "-nostdin"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipp");
    // SIPp is ready when its port is bound (read from the system's socket table: binding
    // the port to find out could take it from SIPp at the wrong moment).
    let ready_by = std::time::Instant::now() + Duration::from_secs(10);
    while !udp_port_bound(port) {
        assert!(
            std::time::Instant::now() < ready_by,
            "sipp did not bind port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let registrar = format!("sip:127.0.0.1:{port}");
    let client = Command::new(&sipc)
        .args(["register", &registrar, "--aor", "sip:alice@127.0.0.1"])
        .args([
            "--user",
            "alice",
            "--password",
            password,
            "--expires",
            "600",
        ])
        .args(["--for", "500ms"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipc");
    let (sipc_ok, sipc_out) = wait_bounded(client, Duration::from_secs(20));
    let (sipp_ok, sipp_out) = wait_bounded(sipp, Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&dir);
    (
        sipc_ok,
        sipp_ok,
        format!("sipc:\n{sipc_out}\nsipp:\n{sipp_out}"),
    )
}

#[test]
// RFC 3261 10.2 and 22.2 (digest, MD5, qop=auth) against SIPp's verifying registrar
fn sipc_register_answers_sipps_challenge_and_unregisters() {
    if !sipp_available("sipc_register_answers_sipps_challenge_and_unregisters") {
        return;
    }
    let (sipc_ok, sipp_ok, out) = sipc_register_against_sipp(5291, "secret");
    assert!(
        sipp_ok,
        "SIPp verified the digest and saw the removal:\n{out}"
    );
    assert!(sipc_ok, "every REGISTER got a 2xx:\n{out}");
    for line in [
        "-> REGISTER sip:127.0.0.1:5291",
        "<- 401 Unauthorized",
        "<- 200 OK",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    assert!(out.contains("expires 0"), "the removal was sent:\n{out}");
}

#[test]
// RFC 3261 22.2: a wrong password gets 403, and sipc says so with its exit code
fn sipc_register_with_a_wrong_password_fails() {
    if !sipp_available("sipc_register_with_a_wrong_password_fails") {
        return;
    }
    let (sipc_ok, sipp_ok, out) = sipc_register_against_sipp(5292, "wrong");
    assert!(!sipp_ok, "SIPp refused the digest:\n{out}");
    assert!(!sipc_ok, "sipc exits 1:\n{out}");
    assert!(out.contains("<- 403 Forbidden"), "{out}");
}

/// A UDP peer that challenges the first request of each method with `code` (401 or 407)
/// and answers what comes with credentials 200; ACKs are taken silently. Returns the
/// requests it saw, after `sipc` exits.
fn challenging_peer(
    socket: std::net::UdpSocket,
    code: u16,
) -> std::thread::JoinHandle<Vec<OwnedMessage>> {
    std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut rng = SeededRng::new([3; 32]);
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65535];
        while std::time::Instant::now() < deadline {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let Ok(request) = OwnedMessage::parse(&buf[..n]) else {
                continue;
            };
            let view = request.view();
            let method = view
                .method()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            seen.push(request.clone());
            if method == "ACK" {
                continue;
            }
            let credentials = [HeaderName::Authorization, HeaderName::ProxyAuthorization]
                .into_iter()
                .any(|h| view.header(h).is_some());
            let response = if credentials {
                ResponseBuilder::from_view(&view, 200)
                    .to_tag("peer")
                    .header(
                        "Contact",
                        &format!("<sip:peer@{}>", socket.local_addr().unwrap()),
                    )
                    .build(&mut rng)
            } else {
                let name = if code == 407 {
                    "Proxy-Authenticate"
                } else {
                    "WWW-Authenticate"
                };
                ResponseBuilder::from_view(&view, code)
                    .to_tag("peer")
                    .header(
                        name,
                        "Digest realm=\"peer.test\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"",
                    )
                    .build(&mut rng)
            };
            socket.send_to(response.unwrap().as_bytes(), from).unwrap();
            if method == "BYE" || (method != "INVITE" && credentials) {
                break;
            }
        }
        seen
    })
}

fn cseq_line(m: &OwnedMessage) -> String {
    m.view()
        .header(HeaderName::CSeq)
        .unwrap_or("")
        .trim()
        .to_owned()
}

#[test]
// RFC 3261 22.2: sipc options answers a 401 once, CSeq + 1, with credentials
fn sipc_options_answers_a_401_with_credentials() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let uri = format!("sip:{}", socket.local_addr().unwrap());
    // (built before the peer starts its 15 s: a build on a loaded machine takes a while)
    let sipc = sipc();
    let peer = challenging_peer(socket, 401);
    let child = Command::new(sipc)
        .args(["options", &uri, "--user", "alice", "--password", "secret"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, out) = wait_bounded(child, Duration::from_secs(20));
    let seen = peer.join().unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("<- 401 Unauthorized") && out.contains("<- 200 OK"),
        "{out}"
    );
    assert_eq!(seen.len(), 2, "{out}");
    let auth = seen[1]
        .view()
        .header(HeaderName::Authorization)
        .unwrap_or("")
        .to_owned();
    assert!(
        auth.contains("username=\"alice\"") && auth.contains("realm=\"peer.test\""),
        "{auth}"
    );
    let n = |m: &OwnedMessage| {
        cseq_line(m)
            .split(' ')
            .next()
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(n(&seen[1]), n(&seen[0]) + 1);
}

#[test]
// RFC 3261 22.2 and 13.2.2.4: sipc call answers a 407; ACK and BYE follow the new CSeq
fn sipc_call_answers_a_407_and_acks_the_answered_invite() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let uri = format!("sip:bob@{}", socket.local_addr().unwrap());
    // (built before the peer starts its 15 s: a build on a loaded machine takes a while)
    let sipc = sipc();
    let peer = challenging_peer(socket, 407);
    let child = Command::new(sipc)
        .args([
            "call",
            &uri,
            "--hold",
            "0s",
            "--user",
            "alice",
            "--password",
            "secret",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, out) = wait_bounded(child, Duration::from_secs(20));
    let seen = peer.join().unwrap();
    assert!(ok, "{out}");
    let lines: Vec<String> = seen.iter().map(cseq_line).collect();
    let n: u32 = lines[0].split(' ').next().unwrap().parse().unwrap();
    // INVITE, the transaction's ACK for the 407, INVITE with credentials, its ACK, BYE.
    assert_eq!(
        lines,
        [
            format!("{n} INVITE"),
            format!("{n} ACK"),
            format!("{} INVITE", n + 1),
            format!("{} ACK", n + 1),
            format!("{} BYE", n + 2),
        ],
        "{out}"
    );
    let credentials = |m: &OwnedMessage| {
        m.view()
            .header(HeaderName::ProxyAuthorization)
            .map(str::to_owned)
    };
    assert!(credentials(&seen[2]).is_some());
    // 13.2.2.4: the ACK for the 2xx carries the INVITE's credentials.
    assert_eq!(credentials(&seen[3]), credentials(&seen[2]));
    // The BYE reuses the nonce (RFC 7616 3.4) instead of being challenged again.
    assert!(credentials(&seen[4]).is_some_and(|c| c.contains("nc=00000002")));
}

#[test]
// RFC 3261 22.2 with RFC 3262 / RFC 4028: a call with credentials is a session-layer call,
// so --100rel and --session-expires go with --user (once a usage error)
fn sipc_call_with_credentials_keeps_100rel_and_session_timers() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let uri = format!("sip:bob@{}", socket.local_addr().unwrap());
    let sipc = sipc();
    let peer = challenging_peer(socket, 401);
    let child = Command::new(sipc)
        .args([
            "call",
            &uri,
            "--hold",
            "0s",
            "--100rel",
            "--session-expires",
            "1800",
            "--user",
            "alice",
            "--password",
            "secret",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, out) = wait_bounded(child, Duration::from_secs(20));
    let seen = peer.join().unwrap();
    assert!(ok, "{out}");
    let invites: Vec<&OwnedMessage> = seen
        .iter()
        .filter(|m| cseq_line(m).ends_with(" INVITE"))
        .collect();
    assert_eq!(invites.len(), 2, "{out}");
    let again = invites[1].view();
    assert!(again.header(HeaderName::Authorization).is_some(), "{out}");
    assert!(again
        .header(HeaderName::Require)
        .is_some_and(|r| r.contains("100rel")));
    assert!(again.header(HeaderName::SessionExpires).is_some(), "{out}");
}

#[tokio::test]
// RFC 5626 4.5: base-time 90 s while another registration (flow) of the AOR is up, else 30 s
async fn a_failure_while_another_flow_of_the_aor_is_up_backs_off_from_90s() {
    let (registrar, addr, _seen) = registrar_failing(600, 0, Some("flow2")).await;
    let (client, me) = client().await;
    let flow = |user: &str| {
        RegistrationConfig::new(
            &format!("sip:{addr}"),
            "sip:alice@example.com",
            &format!("<sip:{user}@{me}>"),
        )
    };
    let retry_wait = |state: Option<RegistrationState>| match state {
        Some(RegistrationState::Retrying { at, .. }) => {
            at.saturating_duration_since(std::time::Instant::now())
        }
        other => panic!("not retrying: {other:?}"),
    };
    let is_retrying = |s: &RegistrationState| matches!(s, RegistrationState::Retrying { .. });
    // Alone, the failing flow waits 30 to 60 s after its first failure.
    let mut alone = client.register(flow("flow2"), Target::udp(addr)).unwrap();
    let wait = retry_wait(bounded("retrying", alone.wait_for(is_retrying)).await);
    assert!(wait <= Duration::from_secs(60), "{wait:?}");
    bounded("removed", alone.unregister()).await;
    // With flow 1 up, 90 to 180 s.
    let mut up = client.register(flow("flow1"), Target::udp(addr)).unwrap();
    bounded("registered", up.wait_for(is_registered)).await;
    let mut failing = client.register(flow("flow2"), Target::udp(addr)).unwrap();
    let wait = retry_wait(bounded("retrying", failing.wait_for(is_retrying)).await);
    assert!(wait > Duration::from_secs(60), "{wait:?}");
    client.shutdown().await;
    registrar.shutdown().await;
}
