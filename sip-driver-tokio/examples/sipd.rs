//! `sipd`: a SIP user agent server on the tokio driver, running the UAS core of
//! `sip_core::ua` as the transaction user. It answers OPTIONS and MESSAGE, answers INVITE
//! with 180 then 200 after the ring time, and BYE, and with `--registrar` is a registrar
//! (RFC 3261 section 10.3), and with `--proxy` a proxy-registrar
//! ([`sip_core::proxy_registrar`]); a summary on Ctrl-C or SIGTERM.
//!
//! ```text
//! sipd [--listen SPEC]... [--ring DURATION] [--log LEVEL]
//!      [--registrar --realm REALM [--user NAME:PASSWORD]... [--auth-calls]
//!       [--algorithms LIST] [--auth-secret-file FILE] [--location redis://HOST:PORT]
//!       [--min-expires SECS]]
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
//!   --algorithms LIST digest algorithms offered, most preferred first (needs --user)
//!   --auth-secret-file FILE
//!                     the nonce secret: 64 hex digits (32 bytes) in FILE, the same for
//!                     every sipd behind one name, so that each accepts the others'
//!                     nonces (default: drawn at start, nonces of this process only)
//!   --location redis://HOST:PORT
//!                     keep the bindings in Redis, shared with every sipd using the same
//!                     Redis (see docs/registrar.md); default: in memory
//!   --min-expires SECS
//!                     the shortest registration accepted (default 60; 423 below)
//! sipd [--listen SPEC]... --proxy --domain DOMAIN [--record-route] [--route-to URI]
//!      [--max-contexts N] [--registrar --realm REALM [--user NAME:PASSWORD]...]
//!   --proxy           a stateful proxy (RFC 3261 section 16) and the registrar of DOMAIN:
//!                     registered users of DOMAIN are reached at their contacts, other
//!                     requests go to --route-to or to their Request-URI's host
//!   --domain DOMAIN   the domain served
//!   --record-route    stay on the path of the dialogs
//!   --route-to URI    the next hop of every request not for a registered user
//!   --max-contexts N  requests being forwarded at most (503 with Retry-After beyond)
//! sipd [...] [--memory MIB] [--session-expires SECS]
//!   --session-expires SECS
//!                     session timers (RFC 4028): the interval asked of callers, Min-SE 90;
//!                     default 1800, 0 for none
//! sipd [...] [--listen tls:IP:PORT --cert FILE --key FILE] [--ca FILE] [--dns HOST:PORT]
//!   --cert FILE       the TLS certificate chain (PEM) of the tls: listeners
//!   --key FILE        its private key (PEM: PKCS#8, PKCS#1 or SEC1)
//!   --ca FILE         the CAs that TLS servers sipd connects to must chain to (PEM;
//!                     default: the system's roots)
//!   --dns HOST:PORT   the nameserver for names in URIs (RFC 3263); default: the system's
//!                     (/etc/resolv.conf)
//! ```
//!
//! At exit the summary names the dialogs still open (`dialogs open N`), as the mio sipd's,
//! then the TLS handshakes (`tls handshakes N`) and the DNS questions (`dns queries N`).
//!
//! Logs go to stderr, in colour only when stderr is a terminal. Like the mio `sipd` and
//! `sipc`: `--help` prints the help on stdout and exits 0; a usage error prints the usage on
//! stderr and exits 2; a listener that cannot be bound exits 1.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sip_core::auth::{Algorithm, AuthConfig, Authenticator};
use sip_core::location::Binding;
use sip_core::proxy::{Proxy, ProxyConfig};
use sip_core::proxy_registrar::{ProxyRegistrar, RouteTo, Routing};
use sip_core::registrar::{RegistrarConfig, Reject};
use sip_core::session::SessionTimer;
use sip_core::ua::{LocationMode, LocationOp, StoreTicket, UaConfig, UserAgent};
use sip_core::{Endpoint, Event, TransactionUser, Transport};
use sip_driver_sys::tls::{client_config, server_config, TlsConfig};
use sip_driver_tokio::location::{RedisConfig, RedisLocation};
use sip_driver_tokio::{Driver, DriverOptions, DriverStats, ListenSpec};
use tokio::sync::mpsc;

struct Args {
    listen: Vec<ListenSpec>,
    ring: Duration,
    log: String,
    registrar: bool,
    realm: Option<String>,
    users: Vec<(String, String)>,
    auth_calls: bool,
    algorithms: Option<Vec<Algorithm>>,
    auth_secret: Option<[u8; 32]>,
    location: Option<RedisLocation>,
    min_expires: Option<u32>,
    proxy: bool,
    domain: Option<String>,
    record_route: bool,
    route_to: Option<String>,
    max_contexts: Option<usize>,
    /// `--memory`: the endpoint's byte budget (`Config::max_held_bytes`).
    memory: Option<usize>,
    /// `--session-expires`: the session interval asked for (RFC 4028), 0 for none.
    session_expires: u32,
    /// `--cert`, `--key`: the TLS server certificate and key.
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    /// `--ca`: the CAs TLS servers must chain to (default: the system's roots).
    ca: Option<PathBuf>,
    /// `--dns`: the nameserver (default: the system's).
    dns: Option<SocketAddr>,
}

const USAGE: &str = "usage: sipd [--listen SPEC]... [--ring DURATION] [--log LEVEL]
            [--registrar --realm REALM [--user NAME:PASSWORD]... [--auth-calls]
             [--algorithms LIST] [--auth-secret-file FILE] [--location redis://HOST:PORT]
             [--min-expires SECS]]
            [--proxy --domain DOMAIN [--record-route] [--route-to URI] [--max-contexts N]]
            [--memory MIB] [--session-expires SECS]
            [--cert FILE --key FILE] [--ca FILE] [--dns HOST:PORT]";

const HELP: &str =
    "sipd (tokio driver): answers OPTIONS, MESSAGE and calls until Ctrl-C or SIGTERM, \
then prints a summary.

usage: sipd [--listen SPEC]... [--ring DURATION] [--log LEVEL]
            [--registrar --realm REALM [--user NAME:PASSWORD]... [--auth-calls]
             [--algorithms LIST] [--auth-secret-file FILE] [--location redis://HOST:PORT]
             [--min-expires SECS]]
            [--proxy --domain DOMAIN [--record-route] [--route-to URI] [--max-contexts N]]
            [--memory MIB] [--session-expires SECS]
            [--cert FILE --key FILE] [--ca FILE] [--dns HOST:PORT]
  --listen SPEC     udp:127.0.0.1:5060, tcp:[::1]:5060, tls:127.0.0.1:5061 (repeatable;
                    default udp:127.0.0.1:5060 and tcp:127.0.0.1:5060; tls: needs
                    --cert and --key)
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
  --auth-secret-file FILE
                    the nonce secret: 64 hex digits (32 bytes) in FILE, e.g. from
                    `openssl rand -hex 32`; give every sipd behind one name the same,
                    so that each accepts the nonces of the others (default: drawn at
                    start, nonces of this process only)
  --location redis://HOST:PORT
                    keep the bindings in Redis (redis://:PASSWORD@HOST:PORT/DB too),
                    shared by every sipd using that Redis: run several behind one DNS
                    name; a Redis that is down or slow gets REGISTER a 503
  --min-expires SECS
                    the shortest registration accepted; shorter ones get 423 with
                    Min-Expires (default 60)
  --proxy           be a stateful proxy (RFC 3261 section 16) and the registrar of
                    DOMAIN (without --registrar: in memory, no credentials asked): a
                    request for a registered user of DOMAIN goes to the user's contacts
                    (forking when there are several), a user without binding gets 480;
                    any other request goes to --route-to, else to its Request-URI's host
                    when that is not DOMAIN nor sipd's own address, else gets 404;
                    OPTIONS to sipd itself is answered; 503 with Retry-After when full
  --domain DOMAIN   the domain sipd is the proxy and registrar of (needs --proxy)
  --record-route    stay on the path of the dialogs (Record-Route, section 16.6 step 4)
  --route-to URI    the next hop of every request not for a registered user, e.g.
                    sip:127.0.0.1:5070 or sip:trunk.example.net;transport=tcp
  --max-contexts N  response contexts at most (one per forwarded request; an INVITE's
                    stays 32 s after a 2xx, for its retransmissions: about 32 per call/s);
                    default 524288, room for 16000 calls/s; beyond, 503 with Retry-After
  --memory MIB      bytes the endpoint holds for peers at most (stored requests and
                    responses, stream buffers), in MiB: beyond, new requests get 503 with
                    Retry-After (default 128; a proxy holds each call's messages 32 s)
  --session-expires SECS
                    the session interval asked of callers (RFC 4028, Min-SE 90; the
                    refresher re-INVITEs or UPDATEs, a session not refreshed ends with
                    BYE): default 1800, 0 for no session timers
  --cert FILE       the certificate chain (PEM) of the tls: listeners (RFC 3261 26.2,
                    RFC 5922: a subjectAltName naming the SIP domain)
  --key FILE        its private key (PEM: PKCS#8, PKCS#1 or SEC1)
  --ca FILE         the CAs (PEM) that TLS servers sipd connects to must chain to
                    (default: the system's roots)
  --dns HOST:PORT   the nameserver asked for names in URIs (RFC 3263: NAPTR, SRV,
                    A/AAAA), e.g. 127.0.0.1:5353 (default: /etc/resolv.conf)
At exit the summary also counts TLS handshakes (one per connection) and DNS queries.
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

/// A host name or an address: what `--domain` takes.
fn is_domain(v: &str) -> bool {
    !v.is_empty()
        && (v.parse::<std::net::IpAddr>().is_ok()
            || v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)))
}

/// `--route-to URI`: the next hop, its host name resolved now.
fn route_to(uri: &str) -> Result<RouteTo, String> {
    use std::net::ToSocketAddrs;
    RouteTo::from_uri(uri, |host| {
        (host, 0).to_socket_addrs().ok()?.next().map(|a| a.ip())
    })
    .map_err(|e| format!("--route-to {e}"))
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
        auth_secret: None,
        location: None,
        min_expires: None,
        proxy: false,
        domain: None,
        record_route: false,
        route_to: None,
        max_contexts: None,
        memory: None,
        session_expires: 1800,
        cert: None,
        key: None,
        ca: None,
        dns: None,
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
            "--auth-secret-file" => {
                let v = value("--auth-secret-file")?;
                args.auth_secret =
                    Some(read_secret(&v).map_err(|e| format!("--auth-secret-file {v}: {e}"))?);
            }
            "--location" => {
                let v = value("--location")?;
                if !v.starts_with("redis://") {
                    return Err(format!("--location {v}: not redis://HOST:PORT"));
                }
                let store = RedisLocation::open(&v, RedisConfig::default())
                    .map_err(|e| format!("--location {v}: {e}"))?;
                args.location = Some(store);
            }
            "--min-expires" => {
                let v = value("--min-expires")?;
                args.min_expires = Some(
                    v.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("--min-expires {v}: not a number of seconds"))?,
                );
            }
            "--proxy" => args.proxy = true,
            "--domain" => {
                let v = value("--domain")?;
                if !is_domain(&v) {
                    return Err(format!("--domain {v}: not a domain name or address"));
                }
                args.domain = Some(v);
            }
            "--record-route" => args.record_route = true,
            "--route-to" => {
                let v = value("--route-to")?;
                route_to(&v)?;
                args.route_to = Some(v);
            }
            "--max-contexts" => {
                let v = value("--max-contexts")?;
                args.max_contexts = Some(
                    v.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("--max-contexts {v}: not a positive number"))?,
                );
            }
            "--memory" => {
                let v = value("--memory")?;
                let mib: usize = v
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n > 0 && n <= 1 << 20)
                    .ok_or(format!(
                        "--memory takes a number of MiB (1 to 1048576), not {v:?}"
                    ))?;
                args.memory = Some(mib << 20);
            }
            "--session-expires" => {
                let v = value("--session-expires")?;
                args.session_expires =
                    v.parse()
                        .ok()
                        .filter(|&n| n == 0 || n >= MIN_SE)
                        .ok_or(format!(
                            "--session-expires {v}: 0 (off) or a number of seconds from {MIN_SE}"
                        ))?;
            }
            "--cert" => args.cert = Some(existing_file("--cert", value("--cert")?)?),
            "--key" => args.key = Some(existing_file("--key", value("--key")?)?),
            "--ca" => args.ca = Some(existing_file("--ca", value("--ca")?)?),
            "--dns" => {
                let v = value("--dns")?;
                args.dns = Some(
                    sip_driver_sys::dns::parse_nameserver(&v)
                        .map_err(|e| format!("--dns {v}: {e}"))?,
                );
            }
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
    if args.auth_secret.is_some() && args.users.is_empty() {
        return Err("--auth-secret-file needs at least one --user".into());
    }
    if args.location.is_some() && !args.registrar {
        return Err("--location needs --registrar".into());
    }
    if args.min_expires.is_some() && !args.registrar {
        return Err("--min-expires needs --registrar".into());
    }
    if args.proxy && args.auth_calls {
        // Calls through a proxy are authenticated with 407 (section 22.3), not built yet.
        return Err(
            "--auth-calls cannot be used with --proxy (no proxy authentication yet)".into(),
        );
    }
    if args.proxy && args.domain.is_none() {
        return Err("--proxy needs --domain".into());
    }
    for (set, flag) in [
        (args.domain.is_some(), "--domain"),
        (args.record_route, "--record-route"),
        (args.route_to.is_some(), "--route-to"),
        (args.max_contexts.is_some(), "--max-contexts"),
    ] {
        if set && !args.proxy {
            return Err(format!("{flag} needs --proxy"));
        }
    }
    if args.proxy && args.location.is_some() {
        return Err(
            "--location cannot be used with --proxy (the proxy reads the bindings in memory)"
                .into(),
        );
    }
    if args.cert.is_some() != args.key.is_some() {
        return Err("--cert and --key go together".into());
    }
    let tls_listener = args.listen.iter().any(|l| l.transport == Transport::Tls);
    if tls_listener && args.cert.is_none() {
        return Err("--listen tls:... needs --cert FILE and --key FILE".into());
    }
    if args.cert.is_some() && !tls_listener {
        return Err("--cert and --key go with a --listen tls:IP:PORT".into());
    }
    if args.listen.is_empty() {
        args.listen = vec![
            "udp:127.0.0.1:5060".parse().expect("valid spec"),
            "tcp:127.0.0.1:5060".parse().expect("valid spec"),
        ];
    }
    Ok(Some(args))
}

/// A file given to a flag, which must exist (its contents are read later).
fn existing_file(flag: &str, v: String) -> Result<PathBuf, String> {
    let path = PathBuf::from(&v);
    if !path.is_file() {
        return Err(format!("{flag} {v}: no such file"));
    }
    Ok(path)
}

/// The TLS configurations of `--cert`, `--key` and `--ca`, and the nameserver of `--dns`.
fn driver_options(args: &Args) -> Result<DriverOptions, String> {
    let mut options = DriverOptions::default();
    if let Some(dns) = args.dns {
        options = options.with_nameservers(vec![dns]);
    }
    let server = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(server_config(cert, key).map_err(|e| e.to_string())?),
        _ => None,
    };
    // Without --ca and without a TLS listener, the client side is made (from the system's
    // roots) only when sipd first connects over TLS.
    if server.is_some() || args.ca.is_some() {
        let client = client_config(args.ca.as_deref()).map_err(|e| e.to_string())?;
        options = options.with_tls(TlsConfig { server, client });
    }
    Ok(options)
}

/// The end of the summary: what the driver counted, and the endpoint's DNS questions.
fn driver_summary(s: &sip_core::Stats, d: &DriverStats) -> String {
    format!(
        "; tls handshakes {}, tls failures {}; dns queries {}, dns failures {}",
        d.tls_handshakes, d.tls_failures, s.dns_queries, d.dns_failures
    )
}

/// The nonce secret of `--auth-secret-file`: 64 hex digits, surrounding whitespace
/// allowed (`openssl rand -hex 32 > FILE`).
fn read_secret(path: &str) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let hex = text.trim().as_bytes();
    let digit = |c: u8| char::from(c).to_digit(16);
    if hex.len() != 64 || !hex.iter().all(|&c| digit(c).is_some()) {
        return Err("not 64 hex digits".into());
    }
    let mut secret = [0u8; 32];
    for (byte, pair) in secret.iter_mut().zip(hex.chunks(2)) {
        let (hi, lo) = (digit(pair[0]).unwrap_or(0), digit(pair[1]).unwrap_or(0));
        *byte = u8::try_from(hi * 16 + lo).unwrap_or(0);
    }
    Ok(secret)
}

/// The digest authenticator for `--user`: realm REALM, the nonce secret of
/// `--auth-secret-file` or one from the operating system (nonces of this process only),
/// the clock anchored now.
fn authenticator(
    realm: &str,
    users: &[(String, String)],
    algorithms: Option<&[Algorithm]>,
    secret: Option<[u8; 32]>,
) -> std::io::Result<Authenticator> {
    let secret = match secret {
        Some(s) => s,
        None => sip_driver_tokio::os_seed()?,
    };
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

/// The UAS core, with what it did logged as it happens, and the Redis location store
/// that serves it with `--location`.
struct Logged(UserAgent, Option<Shared>);

/// The location store shared with other servers, and the way its answers come back into
/// the loop ([`Driver::run_with`]).
struct Shared {
    redis: RedisLocation,
    answers: mpsc::Sender<Answer>,
}

/// The store's answer to one location request.
struct Answer {
    ticket: StoreTicket,
    result: Result<Vec<Binding>, Reject>,
}

impl Logged {
    fn log_events(&mut self) {
        while let Some(e) = self.0.poll_event() {
            tracing::info!(target: "sipd", "{e:?}");
        }
    }

    /// Starts a task for each location request of the UAS core. A store with too many
    /// operations in flight answers 503 at once: nothing queues without bound.
    fn serve_location(&mut self, now: Instant, endpoint: &mut Endpoint) {
        let Logged(ua, Some(shared)) = self else {
            return;
        };
        while let Some(request) = ua.poll_location() {
            let retry_after = shared.redis.config().retry_after;
            let slot = match shared.redis.try_slot() {
                Ok(slot) => slot,
                Err(e) => {
                    tracing::warn!(target: "sipd", "location store: {e}");
                    ua.complete_location(now, request.ticket, Err(e.reject(retry_after)), endpoint);
                    continue;
                }
            };
            let answers = shared.answers.clone();
            tokio::spawn(async move {
                let result = match &request.op {
                    LocationOp::Register(register) => slot
                        .update(register.aor(), |current, now| register.apply(current, now))
                        .await
                        .unwrap_or_else(|e| Err(store_failed(&e, retry_after))),
                    LocationOp::Lookup { aor } => slot
                        .lookup(aor)
                        .await
                        .map_err(|e| store_failed(&e, retry_after)),
                    other => {
                        tracing::warn!(target: "sipd", "location operation not served: {other:?}");
                        Err(Reject::server_error("Location Operation Not Supported"))
                    }
                };
                // The slot is held until the answer is handed over, so that answers
                // waiting for the loop count against the limit too.
                let _ = answers
                    .send(Answer {
                        ticket: request.ticket,
                        result,
                    })
                    .await;
                drop(slot);
            });
        }
    }

    /// The store's answer, back in the loop: the UAS core sends the response.
    fn answered(&mut self, now: Instant, answer: Answer, endpoint: &mut Endpoint) {
        self.0
            .complete_location(now, answer.ticket, answer.result, endpoint);
        self.log_events();
    }
}

fn store_failed(e: &sip_driver_tokio::location::LocationError, retry_after: Duration) -> Reject {
    tracing::warn!(target: "sipd", "location store: {e}");
    e.reject(retry_after)
}

impl TransactionUser for Logged {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        self.0.handle_event(now, event, endpoint);
        self.serve_location(now, endpoint);
        self.log_events();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        self.0.handle_timeout(now, endpoint);
        self.serve_location(now, endpoint);
        self.log_events();
    }
}

/// The proxy-registrar of `--proxy`, with what its UAS core did logged.
struct ProxyLogged(ProxyRegistrar);

impl ProxyLogged {
    fn log_events(&mut self) {
        while let Some(e) = self.0.ua_mut().poll_event() {
            tracing::info!(target: "sipd", "{e:?}");
        }
    }
}

impl TransactionUser for ProxyLogged {
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

/// Min-SE of the session timers (RFC 4028 section 4: 90 s at least), and so the shortest
/// `--session-expires`.
const MIN_SE: u32 = 90;

/// The default of `--max-contexts`: the context of an INVITE answered 2xx stays 64*T1
/// (32 s) for the retransmissions of the 2xx, so each call per second keeps about 32 of
/// them (the proxy core's default, 65536, would refuse calls after 30 s at 2000 calls/s);
/// this is room for 16384 calls/s, and a lingering context holds no request.
const MAX_CONTEXTS: usize = 1 << 19;

/// `--proxy`: the proxy core (Record-Route on the first listener, UDP preferred, with
/// `--record-route`) and the routing policy for DOMAIN around the UAS core.
fn proxy_registrar(
    args: &Args,
    domain: &str,
    driver: &Driver,
    ua: UserAgent,
) -> Result<ProxyRegistrar, String> {
    let listeners = driver.listeners();
    let first = driver
        .local_addr(Transport::Udp)
        .map(|a| (Transport::Udp, a))
        .or_else(|| listeners.first().map(|l| (l.transport, l.addr)))
        .ok_or("no listener")?;
    if args.record_route && first.1.ip().is_unspecified() {
        return Err(format!(
            "--record-route needs a listener on a specific address, not {}",
            first.1
        ));
    }
    let record_route = args.record_route.then(|| match first {
        (Transport::Udp, addr) => format!("sip:{addr};lr"),
        (Transport::Tls, addr) => format!("sips:{addr};lr"),
        (_, addr) => format!("sip:{addr};transport=tcp;lr"),
    });
    let mut config = ProxyConfig::new(record_route.as_deref());
    config.own = vec![domain.to_owned()];
    config.max_contexts = args.max_contexts.unwrap_or(MAX_CONTEXTS);
    let route_to = args.route_to.as_deref().map(route_to).transpose()?;
    let routing = Routing {
        domain: domain.to_owned(),
        local: listeners.iter().map(|l| l.addr).collect(),
        route_to,
    };
    let seed = |what| {
        sip_driver_tokio::os_seed().map_err(|e| format!("no random seed for the {what}: {e}"))
    };
    let proxy = Proxy::new(config, seed("proxy")?);
    Ok(ProxyRegistrar::new(
        ua,
        proxy,
        routing,
        seed("proxy-registrar")?,
    ))
}

/// The summary of a `--proxy` run.
fn proxy_summary(ran: Duration, s: &sip_core::Stats, tu: &ProxyRegistrar) -> String {
    let u = tu.ua().stats();
    let p = tu.proxy().stats();
    let r = tu.stats();
    format!(
        "sipd: ran {:.1}s; messages received {}, malformed {}, retransmissions sent {}, \
         transactions {}; OPTIONS {}, rejected {}; dialogs open {}; registrations {}, \
         bindings {}; \
         proxy: contexts open {}, to registered users {}, passed on {}, refused by the \
         routing {}, overloaded (503) {}, requests forwarded {}, responses forwarded {}, \
         ACKs forwarded {}, CANCELs sent {}, loops {}, answered by the proxy {}",
        ran.as_secs_f64(),
        s.received,
        s.malformed,
        s.retransmissions,
        s.transactions,
        u.options,
        u.rejected,
        tu.ua().dialogs(),
        u.registrations,
        tu.ua().bindings(),
        tu.proxy().contexts(),
        r.to_users,
        r.passed_on,
        r.rejected,
        r.overloaded + p.overloaded,
        p.forwarded,
        p.responses,
        p.acks,
        p.cancels,
        p.loops,
        p.answered,
    )
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

    let mut config = sip_core::Config::default();
    if let Some(bytes) = args.memory {
        config.max_held_bytes = bytes;
    }
    let options = match driver_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sipd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let driver = match Driver::bind_with_options(args.listen.clone(), config, options).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sipd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let media_addr = driver
        .local_addr(Transport::Udp)
        .or_else(|| driver.listeners().first().map(|l| l.addr))
        .expect("at least one listener");
    // No fixed Contact: the session layer writes the listener of the transport each call
    // uses (`;transport=tcp` over TCP, RFC 3261 section 12.1.1).
    let mut ua_config = UaConfig::new("");
    // The SDP answer is computed from the offer (RFC 3264): PCMU, PCMA, telephone-event.
    let media_ip = Some(media_addr.ip())
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    ua_config.media = Some(sip_core::sdp::LocalMedia::new(
        media_ip,
        49170,
        u64::from(std::process::id()),
    ));
    ua_config.ring = args.ring;
    ua_config.timers = driver.config().timers;
    ua_config.server = Some("sipd".into());
    // RFC 4028: the session interval sipd asks for, refreshed by the refresher; a session
    // nobody refreshes ends with BYE. 0: no session timers (dialogs still end at the
    // session layer's maximum lifetime).
    ua_config.session.session_timer = (args.session_expires > 0).then_some(SessionTimer {
        expires: args.session_expires,
        min_se: MIN_SE,
    });
    if args.registrar || args.proxy {
        let mut domains: Vec<String> = args.realm.iter().cloned().collect();
        // The proxy's domain is the registrar's too (in memory, and without credentials
        // when no --user is given).
        if let Some(d) = args.domain.as_ref().filter(|d| !domains.contains(d)) {
            domains.push(d.clone());
        }
        for l in driver.listeners() {
            let ip = l.addr.ip().to_string();
            if !domains.contains(&ip) {
                domains.push(ip);
            }
        }
        let mut registrar = RegistrarConfig::for_domains(domains);
        if let Some(min) = args.min_expires {
            registrar.min_expires = min;
            registrar.default_expires = registrar.default_expires.max(min);
        }
        ua_config.registrar = Some(registrar);
        // Where the bindings live: in memory, or in Redis (then the UAS core hands each
        // REGISTER's step 7 to `serve_location`).
        ua_config.location = match args.location {
            Some(_) => LocationMode::external(),
            None => LocationMode::default(),
        };
    }
    if let (Some(realm), false) = (&args.realm, args.users.is_empty()) {
        match authenticator(
            realm,
            &args.users,
            args.algorithms.as_deref(),
            args.auth_secret,
        ) {
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
    let registrar = match &args.location {
        Some(_) => format!("{registrar}, bindings in Redis"),
        None => registrar,
    };
    let registrar = match (&args.domain, &args.route_to) {
        (Some(domain), Some(to)) => {
            format!("{registrar}; proxy-registrar for {domain}, others to {to}")
        }
        (Some(domain), None) => format!("{registrar}; proxy-registrar for {domain}"),
        _ => registrar,
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
    let ua = UserAgent::new(ua_config, ua_seed);
    if let Some(domain) = &args.domain {
        let tu = match proxy_registrar(&args, domain, &driver, ua) {
            Ok(tu) => tu,
            Err(e) => {
                eprintln!("sipd: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match driver.run(ProxyLogged(tu)).await {
            Ok(done) => {
                println!(
                    "{}{}",
                    proxy_summary(started.elapsed(), &done.stats, &done.tu.0),
                    driver_summary(&done.stats, &done.driver)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sipd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let run = match args.location {
        Some(redis) => {
            if let Err(e) = redis.check().await {
                // It may come up later: REGISTER gets 503 until then.
                tracing::warn!(target: "sipd", "location store not reachable yet: {e}");
            }
            // Room for every answer of the operations the store allows in flight.
            let (answers, inbox) = mpsc::channel(redis.config().max_in_flight.max(1));
            let tu = Logged(ua, Some(Shared { redis, answers }));
            driver
                .run_with(tu, inbox, |tu, now, answer, endpoint| {
                    tu.answered(now, answer, endpoint)
                })
                .await
        }
        None => driver.run(Logged(ua, None)).await,
    };
    match run {
        Ok(done) => {
            let s = done.stats;
            let u = done.tu.0.stats();
            println!(
                "sipd: ran {:.1}s; messages received {}, malformed {}, retransmissions sent {}, \
                 transactions {}; calls answered {}, ended {}, cancelled {}, ACK timeouts {}; \
                 OPTIONS {}, MESSAGE {}, rejected {}; dialogs open {}; registrations {}, \
                 bindings {}{}",
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
                done.tu.0.dialogs(),
                u.registrations,
                // With --location they are in Redis, shared: not this process's to count.
                match done.tu.1 {
                    Some(_) => "in Redis".to_owned(),
                    None => done.tu.0.bindings().to_string(),
                },
                driver_summary(&s, &done.driver),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sipd: {e}");
            ExitCode::FAILURE
        }
    }
}
