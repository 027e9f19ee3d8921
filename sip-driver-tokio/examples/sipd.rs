//! `sipd`: a SIP user agent server on the tokio driver, running the UAS core of
//! `sip_core::ua` as the transaction user. It answers OPTIONS and MESSAGE, answers INVITE
//! with 180 then 200 after the ring time, and BYE, and with `--registrar` is a registrar
//! (RFC 3261 section 10.3); a summary on Ctrl-C or SIGTERM.
//!
//! ```text
//! sipd [--listen SPEC]... [--ring DURATION] [--log LEVEL]
//!      [--registrar --realm REALM [--user NAME:PASSWORD]... [--auth-calls] [--algorithms LIST]]
//!   --listen SPEC     udp:127.0.0.1:5060, tcp:[::1]:5060, ... (repeatable;
//!                     default udp:127.0.0.1:5060 and tcp:127.0.0.1:5060)
//!   --ring DURATION   time between 180 Ringing and 200 OK: 2s, 500ms (default 0)
//!   --log LEVEL       error, warn, info (a line per message), debug, trace or a tracing
//!                     filter (default warn, or RUST_LOG)
//!   --registrar       the registrar for REALM and for the addresses sipd listens on
//!   --realm REALM     the registrar's domain and the digest realm
//!   --user NAME:PASSWORD
//!                     a user (repeatable): REGISTER is challenged, and a user registers
//!                     only its own AOR; without users, no credentials are asked
//!   --auth-calls      challenge INVITE, MESSAGE and OPTIONS too (needs --user)
//! ```
//!
//! Logs go to stderr, in colour only when stderr is a terminal. Like the mio `sipd` and
//! `sipc`: `--help` prints the help on stdout and exits 0; a usage error prints the usage on
//! stderr and exits 2; a listener that cannot be bound exits 1.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sip_core::auth::{Algorithm, AuthConfig, Authenticator};
use sip_core::registrar::RegistrarConfig;
use sip_core::ua::{LocationMode, UaConfig, UserAgent};
use sip_core::{Endpoint, Event, TransactionUser, Transport};
use sip_driver_tokio::{Driver, ListenSpec};

struct Args {
    listen: Vec<ListenSpec>,
    ring: Duration,
    log: String,
    registrar: bool,
    realm: Option<String>,
    users: Vec<(String, String)>,
    auth_calls: bool,
    algorithms: Option<Vec<Algorithm>>,
}

const USAGE: &str = "usage: sipd [--listen SPEC]... [--ring DURATION] [--log LEVEL]
            [--registrar --realm REALM [--user NAME:PASSWORD]... [--auth-calls] [--algorithms LIST]]";

const HELP: &str =
    "sipd (tokio driver): answers OPTIONS, MESSAGE and calls until Ctrl-C or SIGTERM, \
then prints a summary.

usage: sipd [--listen SPEC]... [--ring DURATION] [--log LEVEL]
            [--registrar --realm REALM [--user NAME:PASSWORD]... [--auth-calls] [--algorithms LIST]]
  --listen SPEC     udp:127.0.0.1:5060, tcp:[::1]:5060, ... (repeatable;
                    default udp:127.0.0.1:5060 and tcp:127.0.0.1:5060)
  --ring DURATION   time between 180 Ringing and 200 OK: 2s, 500ms (default 0)
  --log LEVEL       error, warn, info (a line per message), debug, trace or a tracing
                    filter (default warn, or RUST_LOG)
  --registrar       be the registrar (RFC 3261 section 10.3) for the domain REALM and
                    for the addresses sipd listens on; bindings are kept in memory
  --realm REALM     the registrar's domain and the digest realm
  --user NAME:PASSWORD
                    a user (repeatable); with users, REGISTER is challenged and a user
                    registers only its own AOR (sip:NAME@REALM); without, REGISTER needs
                    no credentials
  --auth-calls      challenge INVITE, MESSAGE and OPTIONS too (needs --user)
  --algorithms LIST digest algorithms offered, most preferred first (needs --user;
                    default SHA-256,SHA-512-256,MD5; MD5 alone for clients that read
                    only the first challenge: baresip 1.0, SIPp 3.6)
  -h, --help        this help";

/// `SHA-256,MD5`: digest algorithms in order of preference, each offered in a challenge.
fn parse_algorithms(v: &str) -> Result<Vec<Algorithm>, String> {
    let list: Option<Vec<Algorithm>> = v.split(',').map(|a| Algorithm::parse(a.trim())).collect();
    match list {
        Some(l) if !l.is_empty() => Ok(l),
        _ => Err(format!(
            "--algorithms takes a list of SHA-256, SHA-512-256, MD5 (or their -sess forms), not {v:?}"
        )),
    }
}

/// `NAME:PASSWORD`, a name that is a SIP user part and a password without control
/// characters.
fn parse_user(v: &str) -> Option<(String, String)> {
    let (name, password) = v.split_once(':')?;
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b));
    (name_ok && !password.is_empty() && !password.chars().any(char::is_control))
        .then(|| (name.to_owned(), password.to_owned()))
}

fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// Reads the flags (without the program name); `None` for `--help`.
fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        listen: Vec::new(),
        ring: Duration::ZERO,
        log: std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        registrar: false,
        realm: None,
        users: Vec::new(),
        auth_calls: false,
        algorithms: None,
    };
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                args.listen
                    .push(v.parse().map_err(|e| format!("--listen {v}: {e}"))?);
            }
            "--ring" => {
                let v = value("--ring")?;
                args.ring = parse_duration(&v).ok_or(format!("--ring {v}: not a duration"))?;
            }
            "--log" => args.log = value("--log")?,
            "--registrar" => args.registrar = true,
            "--realm" => {
                let v = value("--realm")?;
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
                {
                    return Err(format!("--realm {v}: not a domain name"));
                }
                args.realm = Some(v);
            }
            "--user" => {
                let v = value("--user")?;
                args.users
                    .push(parse_user(&v).ok_or(format!("--user {v}: not NAME:PASSWORD"))?);
            }
            "--auth-calls" => args.auth_calls = true,
            "--algorithms" => args.algorithms = Some(parse_algorithms(&value("--algorithms")?)?),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.registrar && args.realm.is_none() {
        return Err("--registrar needs --realm".into());
    }
    if !args.users.is_empty() && args.realm.is_none() {
        return Err("--user needs --realm".into());
    }
    if args.algorithms.is_some() && args.users.is_empty() {
        return Err("--algorithms needs at least one --user".into());
    }
    if args.auth_calls && args.users.is_empty() {
        return Err("--auth-calls needs at least one --user".into());
    }
    if args.listen.is_empty() {
        args.listen = vec![
            "udp:127.0.0.1:5060".parse().expect("valid spec"),
            "tcp:127.0.0.1:5060".parse().expect("valid spec"),
        ];
    }
    Ok(Some(args))
}

/// The digest authenticator for `--user`: realm REALM, a nonce secret from the operating
/// system (nonces of this process only), the clock anchored now.
fn authenticator(
    realm: &str,
    users: &[(String, String)],
    algorithms: Option<&[Algorithm]>,
) -> std::io::Result<Authenticator> {
    let secret = sip_driver_tokio::os_seed()?;
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut config = AuthConfig::new(realm, secret);
    if let Some(a) = algorithms {
        config.algorithms = a.to_vec();
    }
    let mut auth = Authenticator::new(config, Instant::now(), unix_now);
    for (name, password) in users {
        auth.add_user(name, password);
    }
    Ok(auth)
}

/// The UAS core, with what it did logged as it happens.
struct Logged(UserAgent);

impl Logged {
    fn log_events(&mut self) {
        while let Some(e) = self.0.poll_event() {
            tracing::info!(target: "sipd", "{e:?}");
        }
    }
}

impl TransactionUser for Logged {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        self.0.handle_event(now, event, endpoint);
        self.log_events();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        self.0.handle_timeout(now, endpoint);
        self.log_events();
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

// One thread: the endpoint is owned by one task anyway, and a multi-thread runtime only
// adds hand-offs between threads for every datagram (2.6x the CPU of the mio driver).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sipd: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&args.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("sipd: --log {}: {e}\n{USAGE}", args.log);
            return ExitCode::from(2);
        }
    };
    // A log written to a file or a pipe gets no colour codes.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let driver = match Driver::bind(args.listen.clone()).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sipd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let contact_addr = driver
        .local_addr(Transport::Udp)
        .or_else(|| driver.listeners().first().map(|l| l.addr))
        .expect("at least one listener");
    let mut ua_config = UaConfig::new(&format!("<sip:sipd@{contact_addr}>"));
    ua_config.ring = args.ring;
    ua_config.timers = driver.config().timers;
    ua_config.server = Some("sipd".into());
    if args.registrar {
        let mut domains: Vec<String> = args.realm.iter().cloned().collect();
        for l in driver.listeners() {
            let ip = l.addr.ip().to_string();
            if !domains.contains(&ip) {
                domains.push(ip);
            }
        }
        ua_config.registrar = Some(RegistrarConfig::for_domains(domains));
        // Where the bindings live: in memory here. (A shared store, e.g. `--location
        // redis://...`, sets `LocationMode::External` and serves `poll_location`.)
        ua_config.location = LocationMode::default();
    }
    if let (Some(realm), false) = (&args.realm, args.users.is_empty()) {
        match authenticator(realm, &args.users, args.algorithms.as_deref()) {
            Ok(auth) => ua_config.auth = Some(auth),
            Err(e) => {
                eprintln!("sipd: no random seed: {e}");
                return ExitCode::FAILURE;
            }
        }
        ua_config.auth_calls = args.auth_calls;
    }
    let ua_seed = match sip_driver_tokio::os_seed() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sipd: no random seed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listening: Vec<String> = driver
        .listeners()
        .iter()
        .map(|l| ListenSpec::new(l.transport, l.addr).to_string())
        .collect();
    let registrar = match (&args.realm, args.registrar) {
        (Some(realm), true) if args.users.is_empty() => format!("; registrar for {realm}"),
        (Some(realm), true) => format!("; registrar for {realm} with digest"),
        _ => String::new(),
    };
    eprintln!(
        "sipd: listening on {} (ring {} ms){registrar}; Ctrl-C to stop",
        listening.join(", "),
        args.ring.as_millis()
    );
    let stop = driver.shutdown_handle();
    tokio::spawn(async move {
        stop_signal().await;
        stop.shutdown();
    });
    let started = Instant::now();
    match driver.run(Logged(UserAgent::new(ua_config, ua_seed))).await {
        Ok(done) => {
            let s = done.stats;
            let u = done.tu.0.stats();
            println!(
                "sipd: ran {:.1}s; messages received {}, malformed {}, retransmissions sent {}, \
                 transactions {}; calls answered {}, ended {}, cancelled {}, ACK timeouts {}; \
                 OPTIONS {}, MESSAGE {}, rejected {}; registrations {}, bindings {}",
                started.elapsed().as_secs_f64(),
                s.received,
                s.malformed,
                s.retransmissions,
                s.transactions,
                u.calls_answered,
                u.calls_ended,
                u.calls_cancelled,
                u.ack_timeouts,
                u.options,
                u.messages,
                u.rejected,
                u.registrations,
                done.tu.0.bindings(),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sipd: {e}");
            ExitCode::FAILURE
        }
    }
}
