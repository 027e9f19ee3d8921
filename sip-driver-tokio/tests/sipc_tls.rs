//! `sipc` and `sipd` (tokio) over TLS and to names, as a user runs them: OPTIONS and a call
//! over TLS with a CA made at test time, the refusals (a certificate for another name, an
//! untrusted CA) with their clear message and exit code, one handshake per peer, the flags
//! and their usage errors; and, through a real dnsmasq on 127.0.0.1:26353, names resolved
//! with NAPTR and SRV, failover to the next SRV target when the first refuses, and
//! `sips:` to a name over TLS with the certificate checked against the domain (RFC 5922).
//! Loopback only; fixed ports 26350-26389 (this helper's range), so the tests that use
//! them run one at a time; every run is bounded.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::certs::{self, Certs};

const DEADLINE: Duration = Duration::from_secs(30);

fn sipc() -> PathBuf {
    common::example("sip-driver-tokio", "sipc", "sipc-tls")
}

fn sipd() -> PathBuf {
    common::example("sip-driver-tokio", "sipd", "sipd-tls")
}

/// The tests on fixed ports run one at a time.
fn fixed_ports() -> MutexGuard<'static, ()> {
    static PORTS: Mutex<()> = Mutex::new(());
    PORTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child whose stdout and stderr lines arrive on channels; killed when dropped.
struct Run {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(program: &PathBuf, args: &[&str]) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program:?}: {e}"));
    let read = |r: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        rx
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    Run {
        child,
        stdout,
        stderr,
    }
}

struct Exit {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: String,
}

impl Run {
    /// Waits for the exit (killed past the deadline).
    fn exit(mut self) -> Exit {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let out: Vec<String> = self.stdout.try_iter().collect();
                let err: Vec<String> = self.stderr.try_iter().collect();
                panic!("did not exit; printed {out:?} {err:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = Vec::new();
        while let Ok(l) = self.stdout.recv_timeout(Duration::from_secs(5)) {
            stdout.push(l);
        }
        let mut stderr = Vec::new();
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            stderr.push(l);
        }
        Exit {
            code: status.code(),
            stdout,
            stderr: stderr.join("\n"),
        }
    }

    /// Waits for a stderr line containing `part`; returns it.
    fn wait_stderr(&mut self, part: &str) -> String {
        let until = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            match self
                .stderr
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(l) if l.contains(part) => return l,
                Ok(l) => seen.push(l),
                Err(_) => panic!("no line {part:?}; printed {seen:?}"),
            }
        }
    }

    /// SIGTERM, then the exit.
    fn stop(self) -> Exit {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(ok.success());
        self.exit()
    }
}

/// Starts sipd with `args`; returns it once it listens, and the port of its first
/// `tls:` listener (when it has one).
fn start_sipd(args: &[&str]) -> (Run, Option<u16>) {
    let mut run = spawn(&sipd(), args);
    let line = run.wait_stderr("sipd: listening on ");
    let tls = line.split("tls:127.0.0.1:").nth(1).map(|rest| {
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    });
    (run, tls)
}

fn sipd_tls(certs: &Certs, extra: &[&str]) -> (Run, u16) {
    let cert = certs.cert.to_str().unwrap();
    let key = certs.key.to_str().unwrap();
    let args = [
        &["--listen", "tls:127.0.0.1:0", "--cert", cert, "--key", key][..],
        extra,
    ]
    .concat();
    let (run, port) = start_sipd(&args);
    (run, port.expect("a tls listener"))
}

#[test]
fn sipc_options_over_tls_to_sipd_exits_0_and_sipd_counts_one_handshake() {
    // RFC 3261 section 26.2 (sips: over TLS) and 26.3.1: sipc checks sipd's certificate
    // against the CA it is given; sipd counts the handshake.
    let certs = certs::make("sipc-options", &["example.test", "127.0.0.1"]);
    let (sipd, port) = sipd_tls(&certs, &[]);
    let uri = format!("sips:127.0.0.1:{port}");
    let ca = certs.ca.to_str().unwrap();
    let out = spawn(&sipc(), &["--ca", ca, "options", &uri]).exit();
    assert_eq!(out.code, Some(0), "{:?} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.iter().any(|l| l == "-> OPTIONS"),
        "{:?}",
        out.stdout
    );
    assert!(
        out.stdout.iter().any(|l| l == "<- 200 OK"),
        "{:?}",
        out.stdout
    );
    let summary = sipd.stop();
    assert_eq!(summary.code, Some(0), "{}", summary.stderr);
    let summary = summary.stdout.join("\n");
    assert!(summary.contains("tls handshakes 1,"), "{summary}");
}

#[test]
fn sipc_sips_call_to_sipd_over_tls_is_established_and_ended_on_one_connection() {
    // RFC 3261 section 26.2 and 19.1: a sips: call runs over TLS with a sips: Contact;
    // INVITE, ACK and BYE share the connection (one handshake each side, section 26.3.1).
    let certs = certs::make("sipc-call", &["example.test", "127.0.0.1"]);
    let (sipd, port) = sipd_tls(&certs, &["--ring", "100ms"]);
    let uri = format!("sips:bob@127.0.0.1:{port}");
    let (ca, cert, key) = (
        certs.ca.to_str().unwrap(),
        certs.cert.to_str().unwrap(),
        certs.key.to_str().unwrap(),
    );
    let out = spawn(
        &sipc(),
        &[
            "--ca", ca, "--cert", cert, "--key", key, "call", &uri, "--hold", "100ms",
        ],
    )
    .exit();
    assert_eq!(out.code, Some(0), "{:?} {}", out.stdout, out.stderr);
    for line in ["-> INVITE", "<- 200 OK", "-> ACK", "-> BYE"] {
        assert!(
            out.stdout.iter().any(|l| l == line),
            "{line}: {:?}",
            out.stdout
        );
    }
    let summary = sipd.stop().stdout.join("\n");
    assert!(summary.contains("calls answered 1"), "{summary}");
    assert!(summary.contains("tls handshakes 1,"), "{summary}");
}

#[test]
fn sipc_refuses_a_tls_server_whose_certificate_names_another_host() {
    // RFC 5922 section 7.2: the certificate must name what was asked for (here the
    // address); sipc exits 1 and says why.
    let certs = certs::make("sipc-wrong-name", &["other.test"]);
    let (_sipd, port) = sipd_tls(&certs, &[]);
    let uri = format!("sips:127.0.0.1:{port}");
    let out = spawn(
        &sipc(),
        &["--ca", certs.ca.to_str().unwrap(), "options", &uri],
    )
    .exit();
    assert_eq!(out.code, Some(1), "{:?}", out.stdout);
    let want = format!("sipc: error: TLS to 127.0.0.1:{port}: certificate not valid for 127.0.0.1");
    assert!(out.stderr.lines().any(|l| l == want), "{}", out.stderr);
}

#[test]
fn sipc_refuses_a_tls_server_signed_by_an_untrusted_ca() {
    // RFC 3261 section 26.2.1: the server's chain must lead to a CA the client trusts.
    let served = certs::make("sipc-untrusted-server", &["127.0.0.1"]);
    let trusted = certs::make("sipc-untrusted-client", &["127.0.0.1"]);
    let (_sipd, port) = sipd_tls(&served, &[]);
    let uri = format!("sips:127.0.0.1:{port}");
    let out = spawn(
        &sipc(),
        &["--ca", trusted.ca.to_str().unwrap(), "options", &uri],
    )
    .exit();
    assert_eq!(out.code, Some(1), "{:?}", out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "sipc: error: TLS to 127.0.0.1:{port}: certificate not trusted"
        )),
        "{}",
        out.stderr
    );
}

fn usage_error(program: &PathBuf, name: &str, args: &[&str], says: &str) {
    let out = spawn(program, args).exit();
    assert_eq!(out.code, Some(2), "{name} {args:?}: {}", out.stderr);
    assert!(out.stderr.contains(says), "{name} {args:?}: {}", out.stderr);
    assert!(
        out.stderr.contains(&format!("usage: {name}")),
        "{}",
        out.stderr
    );
}

#[test]
fn tls_and_dns_flags_are_checked_and_listed_in_the_help() {
    // RFC 3261 section 26.2: a TLS listener needs a certificate and a key; a sips: URI goes
    // over TLS only (RFC 3263 section 4.1).
    let certs = certs::make("flags", &["127.0.0.1"]);
    let cert = certs.cert.to_str().unwrap();
    let (sipd, sipc) = (sipd(), sipc());
    usage_error(
        &sipd,
        "sipd",
        &["--listen", "tls:127.0.0.1:0"],
        "needs --cert",
    );
    usage_error(
        &sipd,
        "sipd",
        &["--cert", cert],
        "--cert and --key go together",
    );
    usage_error(&sipd, "sipd", &["--dns", "nowhere"], "--dns nowhere");
    usage_error(
        &sipd,
        "sipd",
        &["--cert", "/nonexistent.pem"],
        "no such file",
    );
    usage_error(
        &sipc,
        "sipc",
        &["--dns", "nowhere", "options", "sip:x.test"],
        "--dns nowhere",
    );
    usage_error(
        &sipc,
        "sipc",
        &["--cert", cert, "options", "sip:x.test"],
        "go together",
    );
    usage_error(
        &sipc,
        "sipc",
        &["--transport", "udp", "options", "sips:example.test"],
        "TLS only",
    );
    usage_error(
        &sipc,
        "sipc",
        &["call", "sips:bob@example.test"],
        "needs --cert",
    );
    usage_error(
        &sipc,
        "sipc",
        &["--failover-timeout", "0s", "options", "sip:x.test"],
        "--failover-timeout 0s",
    );
    usage_error(
        &sipc,
        "sipc",
        &["--transport", "sctp", "options", "sip:x.test"],
        "udp, tcp or tls",
    );
    for (program, flags) in [
        (&sipd, &["--cert", "--key", "--ca", "--dns", "tls:"][..]),
        (
            &sipc,
            &[
                "--dns",
                "--failover-timeout",
                "--ca",
                "--cert",
                "--key",
                "tls",
                "sips:example.test",
            ][..],
        ),
    ] {
        let out = spawn(program, &["--help"]).exit();
        assert_eq!(out.code, Some(0));
        let help = out.stdout.join("\n");
        for flag in flags {
            assert!(help.contains(flag), "{flag}: {help}");
        }
    }
}

/// The nameserver of the name tests.
const DNS: &str = "127.0.0.1:26353";
/// sipd's UDP and TCP port behind `sip1.example.test` (127.0.0.1).
const SIP_PORT: u16 = 26380;
/// sipd's TLS port behind `_sips._tcp.example.test`.
const SIPS_PORT: u16 = 26381;

/// dnsmasq on 127.0.0.1:26353 with the zone of the name tests (the flags of
/// `shared/interop/cfg/dnsmasq/run-cli.sh`, ports of this helper's range): `example.test`
/// has NAPTR for SIPS+D2T, SIP+D2T and SIP+D2U; each SRV set lists first
/// `sip2.example.test` (127.0.0.2, where nothing listens: a TCP reset, an ICMP port
/// unreachable) and then `sip1.example.test` (127.0.0.1, sipd). `wrong.test` points its
/// `_sips._tcp` at sipd too, whose certificate does not name it. None (and a line saying
/// why) when dnsmasq is not installed (a failure under SIP_REQUIRE_INTEROP) or
/// SIP_SKIP_INTEROP=1.
fn dnsmasq() -> Option<Run> {
    if std::env::var("SIP_SKIP_INTEROP").as_deref() == Ok("1") {
        println!("skipped: SIP_SKIP_INTEROP=1");
        return None;
    }
    if Command::new("dnsmasq").arg("--version").output().is_err() {
        // CI installs it (scripts/test.sh) and says so: then its absence is a failure.
        if std::env::var_os("SIP_REQUIRE_INTEROP").is_some() {
            panic!("dnsmasq is not installed and SIP_REQUIRE_INTEROP is set");
        }
        println!("skipped: dnsmasq is not installed");
        return None;
    }
    let records = [
        "--naptr-record=example.test,10,10,S,SIPS+D2T,,_sips._tcp.example.test".to_owned(),
        "--naptr-record=example.test,20,10,S,SIP+D2T,,_sip._tcp.example.test".to_owned(),
        "--naptr-record=example.test,30,10,S,SIP+D2U,,_sip._udp.example.test".to_owned(),
        "--srv-host=_sip._udp.example.test,sip2.example.test,26382,10,100".to_owned(),
        format!("--srv-host=_sip._udp.example.test,sip1.example.test,{SIP_PORT},20,100"),
        "--srv-host=_sip._tcp.example.test,sip2.example.test,26382,10,100".to_owned(),
        format!("--srv-host=_sip._tcp.example.test,sip1.example.test,{SIP_PORT},20,100"),
        format!("--srv-host=_sips._tcp.example.test,sip1.example.test,{SIPS_PORT},10,100"),
        format!("--srv-host=_sips._tcp.wrong.test,sip1.example.test,{SIPS_PORT},10,100"),
        "--host-record=sip1.example.test,127.0.0.1".to_owned(),
        "--host-record=sip2.example.test,127.0.0.2".to_owned(),
        "--host-record=example.test,127.0.0.1".to_owned(),
        "--host-record=wrong.test,127.0.0.1".to_owned(),
    ];
    let mut args: Vec<&str> = vec![
        "-C",
        "/dev/null",
        "-k",
        "--pid-file=",
        "--log-facility=-",
        "--log-queries",
        "--port=26353",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--no-negcache",
        "--local-ttl=60",
        "--local=/test/",
    ];
    args.extend(records.iter().map(String::as_str));
    let mut run = spawn(&PathBuf::from("dnsmasq"), &args);
    run.wait_stderr("]: started");
    Some(run)
}

fn sipc_dns(args: &[&str]) -> Exit {
    let all = [&["--dns", DNS, "--bind", "127.0.0.1"][..], args].concat();
    spawn(&sipc(), &all).exit()
}

#[test]
fn sipc_options_to_a_name_fails_over_from_a_refusing_srv_target_over_udp() {
    // RFC 3263 sections 4.2 and 4.3: the SRV targets in priority order; the first answers
    // with ICMP port unreachable (RFC 3261 18.4), so the request goes to the next one.
    let _ports = fixed_ports();
    let Some(_dns) = dnsmasq() else { return };
    let (sipd, _) = start_sipd(&["--listen", &format!("udp:127.0.0.1:{SIP_PORT}")]);
    let out = sipc_dns(&["--transport", "udp", "options", "sip:example.test"]);
    assert_eq!(out.code, Some(0), "{:?} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.iter().any(|l| l == "<- 200 OK"),
        "{:?}",
        out.stdout
    );
    // Sent twice: to 127.0.0.2 (refused), then to sipd.
    let sent = out.stdout.iter().filter(|l| *l == "-> OPTIONS").count();
    assert_eq!(sent, 2, "{:?}", out.stdout);
    let summary = sipd.stop().stdout.join("\n");
    assert!(summary.contains("OPTIONS 1,"), "{summary}");
}

#[test]
fn sipc_call_to_a_name_fails_over_from_a_refusing_srv_target_over_tcp() {
    // RFC 3263 section 4.3: a connection refused (TCP reset) by the first SRV target sends
    // the INVITE to the next one; the call is then made and ended as usual.
    let _ports = fixed_ports();
    let Some(_dns) = dnsmasq() else { return };
    let (sipd, _) = start_sipd(&[
        "--listen",
        &format!("tcp:127.0.0.1:{SIP_PORT}"),
        "--ring",
        "100ms",
    ]);
    let out = sipc_dns(&[
        "--log",
        "sip_driver_tokio=info",
        "--transport",
        "tcp",
        "call",
        "sip:bob@example.test",
        "--hold",
        "100ms",
    ]);
    assert_eq!(out.code, Some(0), "{:?} {}", out.stdout, out.stderr);
    for line in ["-> INVITE", "<- 200 OK", "-> ACK", "-> BYE"] {
        assert!(
            out.stdout.iter().any(|l| l == line),
            "{line}: {:?}",
            out.stdout
        );
    }
    // The first target refused the connection.
    assert!(out.stderr.contains("TCP connect failed"), "{}", out.stderr);
    let summary = sipd.stop().stdout.join("\n");
    assert!(summary.contains("calls answered 1"), "{summary}");
}

#[test]
fn sipc_options_to_a_sips_name_goes_over_tls_and_the_certificate_proves_the_domain() {
    // RFC 3263 section 4.1 (sips: -> SIPS+D2T, _sips._tcp) and RFC 5922 section 7: the
    // server proves the domain of the URI, not the SRV target's name or the address.
    let _ports = fixed_ports();
    let Some(_dns) = dnsmasq() else { return };
    let certs = certs::make("dns-sips", &["example.test"]);
    let (sipd, _) = start_sipd(&[
        "--listen",
        &format!("tls:127.0.0.1:{SIPS_PORT}"),
        "--cert",
        certs.cert.to_str().unwrap(),
        "--key",
        certs.key.to_str().unwrap(),
    ]);
    let ca = certs.ca.to_str().unwrap();
    let out = sipc_dns(&["--ca", ca, "options", "sips:example.test"]);
    assert_eq!(out.code, Some(0), "{:?} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.iter().any(|l| l == "<- 200 OK"),
        "{:?}",
        out.stdout
    );
    // A name whose server's certificate names another domain is refused, and said so.
    let out = sipc_dns(&["--ca", ca, "options", "sips:wrong.test"]);
    assert_eq!(out.code, Some(1), "{:?}", out.stdout);
    let want =
        format!("sipc: error: TLS to 127.0.0.1:{SIPS_PORT}: certificate not valid for wrong.test");
    assert!(out.stderr.lines().any(|l| l == want), "{}", out.stderr);
    let summary = sipd.stop().stdout.join("\n");
    assert!(summary.contains("tls handshakes 1,"), "{summary}");
}

#[test]
fn requests_to_a_sips_name_share_one_tls_handshake() {
    // RFC 3261 section 26.3.1 and RFC 3263: several transactions to one name reuse the one
    // TLS connection to its server (and the cached answers): one handshake, not one each.
    use sip_core::{Method, NextHop, RequestBuilder, SeededRng};
    use sip_driver_sys::tls::{client_config, TlsConfig};
    use sip_driver_tokio::{Driver, DriverOptions};

    let _ports = fixed_ports();
    let Some(_dns) = dnsmasq() else { return };
    let certs = certs::make("dns-handshakes", &["example.test"]);
    let (sipd, _) = start_sipd(&[
        "--listen",
        &format!("tls:127.0.0.1:{SIPS_PORT}"),
        "--cert",
        certs.cert.to_str().unwrap(),
        "--key",
        certs.key.to_str().unwrap(),
    ]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = runtime.block_on(async {
        let tls = TlsConfig {
            server: None,
            client: client_config(Some(&certs.ca)).unwrap(),
        };
        let options = DriverOptions::default()
            .with_tls(tls)
            .with_nameservers(vec![DNS.parse().unwrap()]);
        let driver = Driver::bind_with_options(
            ["tcp:127.0.0.1:0".parse().unwrap()],
            sip_core::Config::default(),
            options,
        )
        .await
        .unwrap();
        let (client, _incoming) = driver.start();
        let mut rng = SeededRng::new([6; 32]);
        for _ in 0..3 {
            let options = RequestBuilder::new(Method::Options, "sips:example.test")
                .from("<sips:alice@example.test>")
                .to("<sips:example.test>")
                .build(&mut rng)
                .unwrap();
            let responses = common::bounded(
                "send",
                client.request(options, NextHop::uri("sips:example.test")),
            )
            .await
            .unwrap();
            let ok = common::bounded("200", responses.final_response())
                .await
                .unwrap();
            assert_eq!(ok.view().status(), Some(200));
        }
        let stats = client.driver_stats();
        client.shutdown().await;
        stats
    });
    assert_eq!(stats.tls_handshakes, 1, "{stats:?}");
    assert!(stats.dns_queries >= 1, "{stats:?}");
    let summary = sipd.stop().stdout.join("\n");
    assert!(summary.contains("tls handshakes 1,"), "{summary}");
}

#[test]
fn sipc_to_a_name_that_does_not_exist_fails_with_exit_1_and_sends_nothing() {
    // RFC 3263 section 4.3 (no target at all) and RFC 2308: NXDOMAIN ends the request with a
    // transport error; nothing is sent.
    let _ports = fixed_ports();
    let Some(_dns) = dnsmasq() else { return };
    let out = sipc_dns(&["options", "sip:nobody.test"]);
    assert_eq!(out.code, Some(1), "{:?} {}", out.stdout, out.stderr);
    assert!(out.stderr.contains("transport error"), "{}", out.stderr);
    // Nothing was sent anywhere.
    assert!(
        !out.stdout.iter().any(|l| l == "-> OPTIONS"),
        "{:?}",
        out.stdout
    );
}
