//! `sipd`: the UAS core ([`sip_core::ua::UserAgent`]) on the mio driver. It answers OPTIONS
//! and MESSAGE, and answers INVITEs (100, 180, then 200 after the ring time, with an SDP
//! answer computed from the offer: PCMU, PCMA, telephone-event; 488 when no codec is
//! common), re-INVITEs and UPDATEs, runs session timers (RFC 4028), and with
//! `--registrar` is a registrar (RFC 3261 section 10.3), until Ctrl-C or SIGTERM, then
//! prints a summary (with `dialogs open N`).
//!
//! ```text
//! cargo run -p sip-driver-mio --example sipd -- [--listen SPEC]... [--ring DURATION] [--log LEVEL]
//!     [--cert FILE --key FILE] [--ca FILE] [--dns HOST:PORT]
//!     [--registrar --realm REALM [--user NAME:PASSWORD]... [--auth-calls] [--algorithms LIST]]
//!     [--session-expires SECS]
//! ```
//!
//! - `--listen SPEC`: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:127.0.0.1:5061`, ...
//!   (repeatable; default `udp:127.0.0.1:5060` and `tcp:127.0.0.1:5060`). A `tls:` listener
//!   needs `--cert FILE --key FILE` (PEM: the certificate chain, the private key).
//! - `--ca FILE`: the CA certificates (PEM) the servers sipd connects to over TLS must be
//!   signed by (default: the system's roots); their names are checked as RFC 5922 says.
//! - `--dns HOST:PORT`: the nameserver for the names sipd resolves (RFC 3263; default:
//!   those of `/etc/resolv.conf`).
//! - `--ring DURATION`: time between 180 Ringing and 200 OK, like `2s` or `500ms`
//!   (default 0).
//! - `--log LEVEL`: `error`, `warn`, `info` (one line per message sent or received, to
//!   stderr) or `debug` (whole messages). Default `warn`.
//! - `--registrar`: be the registrar for the domain `--realm REALM` and for its own
//!   addresses, with the bindings in memory.
//! - `--user NAME:PASSWORD` (repeatable): with users, REGISTER is challenged (digest,
//!   realm REALM) and a user may only register its own AOR; without, REGISTER needs no
//!   credentials.
//! - `--auth-calls`: challenge INVITE, MESSAGE and OPTIONS as well (needs `--user`).
//! - `--session-expires SECS`: the session interval of the calls sipd answers (RFC 4028;
//!   default 1800, Min-SE 90; 0 turns session timers off).
//! - `--proxy --domain DOMAIN [--record-route] [--route-to URI] [--max-contexts N]`: be a
//!   stateful proxy (RFC 3261 section 16) and the registrar of DOMAIN, the
//!   proxy-registrar of [`sip_core::proxy_registrar`]: a registered user of DOMAIN is
//!   reached at its contacts, other requests go to `--route-to` or to their Request-URI's
//!   host.
//!
//! Like the tokio `sipd` and `sipc`: `--help` prints the help on stdout and exits 0; a usage
//! error prints the usage on stderr and exits 2; a listener that cannot be bound (or a
//! certificate that cannot be loaded) exits 1. Exits 0 after a signal. The summary counts
//! the TLS handshakes (`tls handshakes N`) and the DNS questions asked (`dns queries N`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_core::auth::{Algorithm, AuthConfig, Authenticator};
use sip_core::proxy::{Proxy, ProxyConfig};
use sip_core::proxy_registrar::{ProxyRegistrar, RouteTo, Routing};
use sip_core::registrar::RegistrarConfig;
use sip_core::sdp::LocalMedia;
use sip_core::session::SessionTimer;
use sip_core::ua::{UaConfig, UaEvent, UserAgent};
use sip_core::{Config, Endpoint, Event, Source, TransactionUser, Transport};
use sip_driver_mio::{os_seed, Driver, DriverOptions, ListenSpec, Summary, TlsConfig};

const USAGE: &str =
    "usage: sipd [--listen udp|tcp|tls:ADDRESS[:PORT]]... [--ring DURATION] [--log error|warn|info|debug]
            [--cert FILE --key FILE] [--ca FILE] [--dns HOST:PORT]
            [--registrar --realm REALM [--user NAME:PASSWORD]... [--auth-calls] [--algorithms LIST]]
            [--proxy --domain DOMAIN [--record-route] [--route-to URI] [--max-contexts N]]
            [--memory MIB] [--session-expires SECS]";

const HELP: &str =
    "sipd (mio driver): answers OPTIONS, MESSAGE and calls until Ctrl-C or SIGTERM, \
then prints a summary.

usage: sipd [--listen SPEC]... [--ring DURATION] [--log LEVEL]
            [--cert FILE --key FILE] [--ca FILE] [--dns HOST:PORT]
            [--registrar --realm REALM [--user NAME:PASSWORD]... [--auth-calls] [--algorithms LIST]]
            [--proxy --domain DOMAIN [--record-route] [--route-to URI] [--max-contexts N]]
            [--memory MIB] [--session-expires SECS]
  --listen SPEC     udp:127.0.0.1:5060, tcp:[::1]:5060, tls:127.0.0.1:5061, ...
                    (repeatable; default udp:127.0.0.1:5060 and tcp:127.0.0.1:5060)
  --cert FILE       the certificate chain of the tls: listeners (PEM; needs --key)
  --key FILE        its private key (PEM: PKCS#8, PKCS#1 or SEC1)
  --ca FILE         the CA certificates (PEM) that must sign the servers sipd connects
                    to over TLS, whose names are checked as RFC 5922 says (default:
                    the system's roots)
  --dns HOST:PORT   the nameserver for names (RFC 3263: NAPTR, SRV, A, AAAA); HOST
                    alone means port 53 (default: the nameservers of /etc/resolv.conf)
  --ring DURATION   time between 180 Ringing and 200 OK: 2s, 500ms (default 0)
  --log LEVEL       error, warn, info (a line per message) or debug (whole messages);
                    default warn
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
                    session timers (RFC 4028) on the calls sipd answers: the session
                    interval it asks for, refreshed by re-INVITE or UPDATE, and a BYE
                    when no refresh comes (default 1800; Min-SE 90; 0 turns them off).
                    Calls without session timers end after 2 hours at most
  -h, --help        this help";

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Level::Error),
            "warn" => Ok(Level::Warn),
            "info" => Ok(Level::Info),
            "debug" => Ok(Level::Debug),
            _ => Err(format!("--log takes error, warn, info or debug, not {s:?}")),
        }
    }
}

/// `2s`, `500ms`, `1.5s`, `1m`, or `0`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("--ring takes a duration like 2s or 500ms, not {s:?}");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "" if number == 0.0 => 0.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

struct Args {
    listen: Vec<ListenSpec>,
    ring: Duration,
    level: Level,
    registrar: bool,
    realm: Option<String>,
    users: Vec<(String, String)>,
    auth_calls: bool,
    algorithms: Option<Vec<Algorithm>>,
    proxy: bool,
    domain: Option<String>,
    record_route: bool,
    route_to: Option<String>,
    max_contexts: Option<usize>,
    /// `--memory`: the endpoint's byte budget (`Config::max_held_bytes`).
    memory: Option<usize>,
    /// `--session-expires`: the session interval asked for (RFC 4028), 0 for none.
    session_expires: u32,
    /// `--cert`, `--key`: the TLS listeners' certificate chain and key.
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    /// `--ca`: the CAs of the servers sipd connects to over TLS (else the system's roots).
    ca: Option<PathBuf>,
    /// `--dns`: the nameserver (else the system's).
    dns: Option<SocketAddr>,
}

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
fn parse_user(v: &str) -> Result<(String, String), String> {
    let bad = || format!("--user takes NAME:PASSWORD, not {v:?}");
    let (name, password) = v.split_once(':').ok_or_else(bad)?;
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b));
    if !name_ok || password.is_empty() || password.chars().any(char::is_control) {
        return Err(bad());
    }
    Ok((name.to_owned(), password.to_owned()))
}

/// The default of `--session-expires` (RFC 4028 section 4 recommends 1800 s).
const DEFAULT_SESSION_EXPIRES: u32 = 1800;

/// The Min-SE sipd asks for and accepts (RFC 4028 section 4: at least 90 s).
const MIN_SE: u32 = 90;

/// Reads the flags (without the program name); `None` for `--help`.
fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        listen: Vec::new(),
        ring: Duration::ZERO,
        level: Level::Warn,
        registrar: false,
        realm: None,
        users: Vec::new(),
        auth_calls: false,
        algorithms: None,
        proxy: false,
        domain: None,
        record_route: false,
        route_to: None,
        max_contexts: None,
        memory: None,
        session_expires: DEFAULT_SESSION_EXPIRES,
        cert: None,
        key: None,
        ca: None,
        dns: None,
    };
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                args.listen
                    .push(v.parse().map_err(|e| format!("--listen {v}: {e}"))?);
            }
            "--ring" => args.ring = parse_duration(&value()?)?,
            "--log" => args.level = value()?.parse()?,
            "--registrar" if inline.is_none() => args.registrar = true,
            "--realm" => {
                let v = value()?;
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
                {
                    return Err(format!("--realm takes a domain name, not {v:?}"));
                }
                args.realm = Some(v);
            }
            "--user" => args.users.push(parse_user(&value()?)?),
            "--auth-calls" if inline.is_none() => args.auth_calls = true,
            "--algorithms" => args.algorithms = Some(parse_algorithms(&value()?)?),
            "--proxy" if inline.is_none() => args.proxy = true,
            "--domain" => {
                let v = value()?;
                if !is_domain(&v) {
                    return Err(format!(
                        "--domain takes a domain name or address, not {v:?}"
                    ));
                }
                args.domain = Some(v);
            }
            "--record-route" if inline.is_none() => args.record_route = true,
            "--route-to" => {
                let v = value()?;
                route_to(&v)?;
                args.route_to = Some(v);
            }
            "--max-contexts" => {
                let v = value()?;
                args.max_contexts = Some(
                    v.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("--max-contexts takes a positive number, not {v:?}"))?,
                );
            }
            "--memory" => {
                let v = value()?;
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
                let v = value()?;
                args.session_expires = v
                    .parse()
                    .ok()
                    .filter(|&n: &u32| n == 0 || n >= MIN_SE)
                    .ok_or(format!(
                        "--session-expires takes 0 (no session timer) or a number of seconds \
                         of at least {MIN_SE}, not {v:?}"
                    ))?;
            }
            "--cert" => args.cert = Some(PathBuf::from(value()?)),
            "--key" => args.key = Some(PathBuf::from(value()?)),
            "--ca" => args.ca = Some(PathBuf::from(value()?)),
            "--dns" => {
                let v = value()?;
                args.dns = Some(
                    sip_driver_sys::dns::parse_nameserver(&v).map_err(|e| format!("--dns: {e}"))?,
                );
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.registrar && args.realm.is_none() {
        return Err("--registrar needs --realm".to_owned());
    }
    if !args.users.is_empty() && args.realm.is_none() {
        return Err("--user needs --realm".to_owned());
    }
    if args.algorithms.is_some() && args.users.is_empty() {
        return Err("--algorithms needs at least one --user".into());
    }
    if args.auth_calls && args.users.is_empty() {
        return Err("--auth-calls needs at least one --user".to_owned());
    }
    if args.proxy && args.auth_calls {
        // Calls through a proxy are authenticated with 407 (section 22.3), not built yet.
        return Err(
            "--auth-calls cannot be used with --proxy (no proxy authentication yet)".to_owned(),
        );
    }
    if args.proxy && args.domain.is_none() {
        return Err("--proxy needs --domain".to_owned());
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
    if args.cert.is_some() != args.key.is_some() {
        return Err("--cert and --key go together".to_owned());
    }
    let tls_listener = args.listen.iter().any(|s| s.transport == Transport::Tls);
    if tls_listener && args.cert.is_none() {
        return Err("a tls: listener needs --cert FILE --key FILE".to_owned());
    }
    if args.cert.is_some() && !tls_listener {
        return Err("--cert and --key need a tls: listener".to_owned());
    }
    if args.listen.is_empty() {
        args.listen = vec![
            "udp:127.0.0.1:5060".parse().expect("default spec"),
            "tcp:127.0.0.1:5060".parse().expect("default spec"),
        ];
    }
    Ok(Some(args))
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

/// The first line of a message, or what the bytes are when they are no message.
struct FirstLine<'a>(&'a [u8]);

impl fmt::Display for FirstLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            return f.write_str("(keep-alive)");
        }
        let line = self.0.split(|b| *b == b'\r' || *b == b'\n').next();
        write!(f, "{}", String::from_utf8_lossy(line.unwrap_or_default()))
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        _ => "?",
    }
}

/// Logs one message: a line at info, the whole message at debug.
fn log_message(level: Level, arrow: &str, transport: Transport, line: String, bytes: &[u8]) {
    if level >= Level::Info {
        eprintln!("{arrow} {} {line}", transport_name(transport));
    }
    if level >= Level::Debug {
        eprintln!("{}", printable(bytes).trim_end());
    }
}

/// A message as text for a terminal: its lines as they are, any other control character
/// (an escape sequence in a peer's body, say) written as an escape, so what a peer sends
/// cannot drive the terminal or forge log lines.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|&c| c != '\r')
        .flat_map(|c| match c {
            '\n' | '\t' => vec![c],
            c if c.is_control() => c.escape_default().collect(),
            c => vec![c],
        })
        .collect()
}

/// The UAS core, or with `--proxy` the proxy-registrar around it, with logs of what
/// reaches it and what it does.
struct Logged {
    core: Core,
    level: Level,
}

/// The transaction user behind the logs (one per process: the sizes do not matter).
#[allow(clippy::large_enum_variant)]
enum Core {
    Ua(UserAgent),
    Proxy(ProxyRegistrar),
}

impl Core {
    fn ua(&self) -> &UserAgent {
        match self {
            Core::Ua(ua) => ua,
            Core::Proxy(p) => p.ua(),
        }
    }

    fn ua_mut(&mut self) -> &mut UserAgent {
        match self {
            Core::Ua(ua) => ua,
            Core::Proxy(p) => p.ua_mut(),
        }
    }

    fn tu(&mut self) -> &mut dyn TransactionUser {
        match self {
            Core::Ua(ua) => ua,
            Core::Proxy(p) => p,
        }
    }
}

impl Logged {
    fn received(&self, what: &[u8], source: Option<&Source>) {
        if self.level < Level::Info {
            return;
        }
        let (transport, line) = match source {
            Some(s) => (
                s.transport,
                format!("{} <- {}: {}", s.local, s.remote, FirstLine(what)),
            ),
            None => (Transport::Udp, format!("{}", FirstLine(what))),
        };
        log_message(self.level, "recv", transport, line, what);
    }

    fn drain(&mut self) {
        while let Some(e) = self.core.ua_mut().poll_event() {
            if self.level >= Level::Info {
                match e {
                    UaEvent::CallAnswered { call_id } => eprintln!("call answered: {call_id}"),
                    UaEvent::CallEnded { call_id } => eprintln!("call ended: {call_id}"),
                    UaEvent::Message { text } => eprintln!("message: {}", text.escape_debug()),
                    other => eprintln!("{other:?}"),
                }
            }
        }
    }
}

impl TransactionUser for Logged {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        match &event {
            Event::Request {
                request, source, ..
            }
            | Event::Ack { request, source } => self.received(request.as_bytes(), Some(source)),
            Event::StrayResponse { response, source } => {
                self.received(response.as_bytes(), Some(source))
            }
            Event::Response { response, .. } => self.received(response.as_bytes(), None),
            Event::Timeout { tx, timer, .. } if self.level >= Level::Warn => {
                eprintln!("warn: transaction {tx:?} timed out (timer {timer:?})")
            }
            Event::TransportError { tx } if self.level >= Level::Warn => {
                eprintln!("warn: transaction {tx:?} failed in the transport")
            }
            _ => {}
        }
        self.core.tu().handle_event(now, event, endpoint);
        self.drain();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.core {
            Core::Ua(ua) => ua.poll_timeout(),
            Core::Proxy(p) => p.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        self.core.tu().handle_timeout(now, endpoint);
        self.drain();
    }
}

/// The media sipd answers with (RFC 3264): PCMU, PCMA and telephone-event on the address
/// of the first listener (the loopback address for a wildcard one), a random o= session id.
/// sipd sends and receives no RTP: the answer only names what it would take.
fn local_media(bound: &[ListenSpec]) -> Result<LocalMedia, String> {
    let ip = bound
        .first()
        .map(|s| s.addr.ip())
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let seed = os_seed().map_err(|e| format!("no random seed: {e}"))?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&seed[..8]);
    // RFC 8866 section 5.2: a numeric session id; kept below 2^62 as most stacks expect.
    let session_id = u64::from_le_bytes(id) >> 2;
    Ok(LocalMedia::new(ip, MEDIA_PORT, session_id))
}

/// The audio port named in sipd's SDP.
const MEDIA_PORT: u16 = 49170;

/// The endpoint's configuration: the defaults, with `--memory`.
fn endpoint_config(args: &Args) -> Config {
    let mut config = Config::default();
    if let Some(bytes) = args.memory {
        config.max_held_bytes = bytes;
    }
    config
}

/// The driver's TLS configurations and nameservers: `--cert`/`--key`, `--ca`, `--dns`.
fn driver_options(args: &Args) -> Result<DriverOptions, String> {
    use sip_driver_sys::tls::{client_config, server_config};
    let server = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(server_config(cert, key).map_err(|e| e.to_string())?),
        _ => None,
    };
    // Without --cert and --ca, the driver reads the system's roots at the first TLS connect.
    let tls = match (server, &args.ca) {
        (None, None) => None,
        (server, Some(ca)) => Some(TlsConfig {
            server,
            client: client_config(Some(ca)).map_err(|e| e.to_string())?,
        }),
        (Some(server), None) => {
            let client = match client_config(None) {
                Ok(client) => client,
                Err(e) => {
                    // A server without the system's roots still serves; the connections it
                    // opens fail verification until --ca is given.
                    eprintln!("sipd: warn: {e}: TLS connections sipd opens will fail (give --ca)");
                    no_roots()?
                }
            };
            Some(TlsConfig {
                server: Some(server),
                client,
            })
        }
    };
    Ok(DriverOptions {
        tls,
        nameservers: args.dns.map(|d| vec![d]),
        ..DriverOptions::default()
    })
}

/// A client configuration that trusts no server (the ring provider, as everywhere here).
#[allow(deprecated)] // ring has no post-quantum key exchange: see sip_driver_sys::tls
fn no_roots() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Binds the listeners and builds the logged UAS core: everything but the signals.
fn setup(args: &Args) -> Result<(Driver, Logged), String> {
    let level = args.level;
    let mut driver = Driver::bind_with(&args.listen, endpoint_config(args), driver_options(args)?)
        .map_err(|e| format!("cannot listen: {e}"))?;
    driver.on_warning(move |w| {
        if level >= Level::Warn {
            eprintln!("warn: {w}");
        }
    });
    driver.trace_transmits(move |t, bytes| {
        if level >= Level::Info {
            let line = format!("{} -> {}: {}", t.local, t.remote, FirstLine(bytes));
            log_message(level, "send", t.transport, line, bytes);
        }
    });
    // No fixed Contact: the session layer writes the listener of the transport each call
    // uses (`;transport=tcp` over TCP, RFC 3261 section 12.1.1).
    let mut config = UaConfig::new("");
    config.ring = args.ring;
    config.server = Some("sipd (sip-driver-mio)".to_owned());
    config.session.session_timer = (args.session_expires > 0).then_some(SessionTimer {
        expires: args.session_expires,
        min_se: MIN_SE,
    });
    config.media = Some(local_media(driver.local_addrs())?);
    if args.registrar || args.proxy {
        config.registrar = Some(registrar_config(args, driver.local_addrs()));
    }
    if let (Some(realm), false) = (&args.realm, args.users.is_empty()) {
        config.auth = Some(
            authenticator(realm, &args.users, args.algorithms.as_deref())
                .map_err(|e| format!("no random seed: {e}"))?,
        );
        config.auth_calls = args.auth_calls;
    }
    let seed = os_seed().map_err(|e| format!("no random seed: {e}"))?;
    let ua = UserAgent::new(config, seed);
    let core = match &args.domain {
        Some(domain) => Core::Proxy(proxy_registrar(args, domain, driver.local_addrs(), ua)?),
        None => Core::Ua(ua),
    };
    Ok((driver, Logged { core, level }))
}

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
    bound: &[ListenSpec],
    ua: UserAgent,
) -> Result<ProxyRegistrar, String> {
    let first = bound
        .iter()
        .find(|s| s.transport == Transport::Udp)
        .or(bound.first())
        .ok_or("no listener")?;
    if args.record_route && first.addr.ip().is_unspecified() {
        return Err(format!(
            "--record-route needs a listener on a specific address, not {}",
            first.addr
        ));
    }
    let record_route = args.record_route.then(|| match first.transport {
        Transport::Udp => format!("sip:{};lr", first.addr),
        Transport::Tls => format!("sips:{};lr", first.addr),
        _ => format!("sip:{};transport=tcp;lr", first.addr),
    });
    let mut config = ProxyConfig::new(record_route.as_deref());
    config.own = vec![domain.to_owned()];
    config.max_contexts = args.max_contexts.unwrap_or(MAX_CONTEXTS);
    let route_to = args.route_to.as_deref().map(route_to).transpose()?;
    let routing = Routing {
        domain: domain.to_owned(),
        local: bound.iter().map(|s| s.addr).collect(),
        route_to,
    };
    let proxy = Proxy::new(
        config,
        os_seed().map_err(|e| format!("no random seed: {e}"))?,
    );
    let seed = os_seed().map_err(|e| format!("no random seed: {e}"))?;
    Ok(ProxyRegistrar::new(ua, proxy, routing, seed))
}

/// The digest authenticator for `--user`: realm REALM, a nonce secret from the operating
/// system (nonces of this process only), the clock anchored now.
fn authenticator(
    realm: &str,
    users: &[(String, String)],
    algorithms: Option<&[Algorithm]>,
) -> std::io::Result<Authenticator> {
    let secret = os_seed()?;
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

/// The registrar for the realm and for the addresses sipd listens on.
fn registrar_config(args: &Args, bound: &[ListenSpec]) -> RegistrarConfig {
    let mut domains: Vec<String> = args.realm.iter().cloned().collect();
    // The proxy's domain is the registrar's too (without credentials unless --user).
    if let Some(d) = args.domain.as_ref().filter(|d| !domains.contains(d)) {
        domains.push(d.clone());
    }
    for s in bound {
        let ip = s.addr.ip().to_string();
        if !domains.contains(&ip) {
            domains.push(ip);
        }
    }
    RegistrarConfig::for_domains(domains)
}

/// The summary printed at the end of a run.
fn report(ran: Duration, summary: &Summary, core: &Core) -> String {
    let ua = core.ua();
    let s = ua.stats();
    let proxy = match core {
        Core::Ua(_) => String::new(),
        Core::Proxy(tu) => {
            let p = tu.proxy().stats();
            let r = tu.stats();
            format!(
                "\nsipd: proxy: contexts open {}, to registered users {}, passed on {}, \
                 refused by the routing {}, overloaded (503) {}, requests forwarded {}, \
                 responses forwarded {}, ACKs forwarded {}, CANCELs sent {}, loops {}, \
                 answered by the proxy {}",
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
    };
    format!(
        "sipd: ran {:.1}s\nsipd: {summary}\nsipd: calls answered {}, ended {}, cancelled {}, \
         2xx retransmissions {}, ACK timeouts {}; OPTIONS {}, MESSAGE {}, rejected {}; \
         dialogs open {}; registrations {}, bindings {}",
        ran.as_secs_f64(),
        s.calls_answered,
        s.calls_ended,
        s.calls_cancelled,
        s.ok_retransmissions,
        s.ack_timeouts,
        s.options,
        s.messages,
        s.rejected,
        ua.dialogs(),
        s.registrations,
        ua.bindings()
    ) + &proxy
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sipd: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (mut driver, mut tu) = match setup(&args) {
        Ok(ready) => ready,
        Err(e) => {
            eprintln!("sipd: {e}");
            return ExitCode::from(1);
        }
    };
    // Ctrl-C and SIGTERM only set the flag; the loop looks at it at least every MAX_WAIT.
    let flag: Arc<AtomicBool> = driver.shutdown_handle().flag();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&flag)) {
            eprintln!("sipd: cannot handle signal {signal}: {e}");
            return ExitCode::from(1);
        }
    }
    let listening: Vec<String> = driver
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    let registrar = match (&args.realm, args.registrar) {
        (Some(realm), true) => format!(
            "; registrar for {realm}{}",
            if args.users.is_empty() {
                ""
            } else {
                " with digest"
            }
        ),
        _ => String::new(),
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
    let started = Instant::now();
    match driver.run(&mut tu) {
        Ok(summary) => {
            println!("{}", report(started.elapsed(), &summary, &tu.core));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sipd: event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Test certificates (the integration tests' helper).
#[cfg(test)]
#[path = "../tests/support/certs.rs"]
mod certs;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    // What a peer sends reaches the terminal as text: an escape sequence in a body is
    // written out, the message's own lines stay lines.
    #[test]
    fn messages_are_logged_without_control_characters() {
        let logged = printable(b"MESSAGE sip:a@b SIP/2.0\r\nSubject: x\r\n\r\n\x1b[2J\x07hi");
        assert_eq!(
            logged,
            "MESSAGE sip:a@b SIP/2.0\nSubject: x\n\n\\u{1b}[2J\\u{7}hi"
        );
    }

    fn args(list: &[&str]) -> Result<Option<Args>, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "2", "s", "2h", "-1s", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags() {
        let a = args(&[]).unwrap().unwrap();
        let listen: Vec<String> = a.listen.iter().map(ToString::to_string).collect();
        assert_eq!(listen, ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]);
        assert_eq!((a.ring, a.level), (Duration::ZERO, Level::Warn));

        let a = args(&[
            "--listen",
            "udp:[::1]:5070",
            "--listen=tcp:127.0.0.1:5070",
            "--ring",
            "2s",
            "--log=info",
        ])
        .unwrap()
        .unwrap();
        let listen: Vec<String> = a.listen.iter().map(ToString::to_string).collect();
        assert_eq!(listen, ["udp:[::1]:5070", "tcp:127.0.0.1:5070"]);
        assert_eq!((a.ring, a.level), (Duration::from_secs(2), Level::Info));

        assert!(args(&["--help"]).unwrap().is_none());
        assert!(args(&["--listen"]).is_err());
        assert!(args(&["--listen", "sctp:127.0.0.1:5060"]).is_err());
        assert!(args(&["--log", "loud"]).is_err());
        assert!(args(&["--bogus"]).is_err());
    }

    #[test]
    fn registrar_flags() {
        let a = args(&[
            "--registrar",
            "--realm",
            "example.com",
            "--user",
            "alice:secret:with:colons",
            "--user=bob:pw",
            "--auth-calls",
        ])
        .unwrap()
        .unwrap();
        assert!(a.registrar && a.auth_calls);
        assert_eq!(a.realm.as_deref(), Some("example.com"));
        assert_eq!(
            a.users,
            [
                ("alice".to_owned(), "secret:with:colons".to_owned()),
                ("bob".to_owned(), "pw".to_owned())
            ]
        );
        assert!(args(&["--registrar"]).is_err(), "needs --realm");
        assert!(args(&["--realm", "a b"]).is_err());
        assert!(args(&["--realm", "x", "--user", "nopassword"]).is_err());
        assert!(args(&["--realm", "x", "--user", ":pw"]).is_err());
        assert!(args(&["--realm", "x", "--user", "a@b:pw"]).is_err());
        assert!(args(&["--user", "a:pw"]).is_err(), "needs --realm");
        assert!(
            args(&["--realm", "x", "--auth-calls"]).is_err(),
            "needs a user"
        );
        let a = args(&[
            "--realm",
            "x",
            "--user",
            "a:pw",
            "--algorithms",
            "MD5, sha-256",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(a.algorithms, Some(vec![Algorithm::Md5, Algorithm::Sha256]));
        assert!(args(&["--realm", "x", "--user", "a:pw", "--algorithms", "SHA-1"]).is_err());
        assert!(args(&["--realm", "x", "--user", "a:pw", "--algorithms", ""]).is_err());
        assert!(args(&["--algorithms", "MD5"]).is_err(), "needs a user");
    }

    // RFC 3261 10.3: sipd --registrar keeps the binding and lists it in the 200; the
    // summary counts it.
    #[test]
    fn registers_a_contact_and_reports_the_binding() {
        use std::net::UdpSocket;

        let a = args(&[
            "--listen",
            "udp:127.0.0.1:0",
            "--registrar",
            "--realm",
            "example.com",
        ])
        .unwrap()
        .unwrap();
        let (mut driver, mut tu) = setup(&a).unwrap();
        let server = driver.local_addr(Transport::Udp).unwrap();
        let shutdown = driver.shutdown_handle();
        let thread = std::thread::spawn(move || {
            let summary = driver.run_for(&mut tu, Duration::from_secs(20)).unwrap();
            report(Duration::ZERO, &summary, &tu.core)
        });
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = c.local_addr().unwrap();
        let register = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKreg1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\n\
             To: <sip:alice@example.com>\r\nCall-ID: sipd-reg\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:alice@{me}>;expires=600\r\nContent-Length: 0\r\n\r\n"
        );
        c.send_to(register.as_bytes(), server).unwrap();
        let mut buf = [0u8; 65536];
        let n = c.recv(&mut buf).unwrap();
        let ok = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
        assert!(
            ok.contains(&format!("Contact: <sip:alice@{me}>;expires=600")),
            "{ok}"
        );
        shutdown.shutdown();
        let report = thread.join().unwrap();
        assert!(report.contains("registrations 1, bindings 1"), "{report}");
    }

    #[test]
    fn tls_and_dns_flags() {
        let a = args(&[
            "--listen",
            "tls:127.0.0.1:5061",
            "--cert",
            "c.pem",
            "--key=k.pem",
            "--ca",
            "ca.pem",
            "--dns",
            "127.0.0.1:26453",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(a.listen[0].to_string(), "tls:127.0.0.1:5061");
        assert_eq!(a.cert.as_deref(), Some(std::path::Path::new("c.pem")));
        assert_eq!(a.key.as_deref(), Some(std::path::Path::new("k.pem")));
        assert_eq!(a.ca.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert_eq!(a.dns, Some("127.0.0.1:26453".parse().unwrap()));
        // HOST alone: port 53.
        let a = args(&["--dns", "::1"]).unwrap().unwrap();
        assert_eq!(a.dns, Some("[::1]:53".parse().unwrap()));
        assert!(args(&["--dns", "resolver.example"]).is_err());
        assert!(args(&["--dns"]).is_err());
        // A tls: listener needs a certificate and key, which go together, and need it.
        assert!(args(&["--listen", "tls:127.0.0.1:5061"]).is_err());
        assert!(args(&["--listen", "tls:127.0.0.1:5061", "--cert", "c.pem"]).is_err());
        assert!(args(&["--cert", "c.pem", "--key", "k.pem"]).is_err());
        // A missing certificate file is an error at setup, naming the file.
        let a = args(&[
            "--listen",
            "tls:127.0.0.1:0",
            "--cert",
            "/nonexistent/c.pem",
            "--key",
            "/nonexistent/k.pem",
        ])
        .unwrap()
        .unwrap();
        let err = setup(&a).err().expect("no certificate");
        assert!(err.contains("/nonexistent/c.pem"), "{err}");
    }

    // RFC 3261 26.2 / 18.3: sipd with a tls: listener answers an OPTIONS sent over TLS, and
    // its summary counts the handshake.
    #[test]
    fn answers_options_over_tls_and_counts_the_handshake() {
        use std::io::Write;
        use std::sync::Arc;

        let certs = certs::Certs::new();
        let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
        let (cert, key) = certs.leaf("sipd", &["example.test"], &[localhost]);
        let (cert, key) = (certs::text(&cert), certs::text(&key));
        let (bound, shutdown, thread) = run_sipd(&[
            "--listen",
            "tls:127.0.0.1:0",
            "--cert",
            &cert,
            "--key",
            &key,
            "--dns",
            "127.0.0.1:9",
        ]);
        let server = bound[0].addr;
        let config = sip_driver_sys::tls::client_config(Some(&certs.ca())).unwrap();
        let name = sip_driver_sys::tls::server_name(None, server);
        let conn = rustls::ClientConnection::new(Arc::clone(&config), name).unwrap();
        let tcp = std::net::TcpStream::connect(server).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let me = tls.sock.local_addr().unwrap();
        let options = format!(
            "OPTIONS sip:{server};transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {me};branch=z9hG4bKtls1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=a\r\nTo: <sip:{server}>\r\n\
             Call-ID: sipd-tls\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        tls.write_all(options.as_bytes()).unwrap();
        let got = read_messages_until(&mut tls, 200);
        assert!(got.last().unwrap().contains("CSeq: 1 OPTIONS"), "{got:?}");
        shutdown.shutdown();
        let report = thread.join().unwrap();
        assert!(report.contains("tls handshakes 1"), "{report}");
        assert!(report.contains("dns queries 0"), "{report}");
    }

    #[test]
    fn session_expires_flag() {
        let a = args(&[]).unwrap().unwrap();
        assert_eq!(a.session_expires, DEFAULT_SESSION_EXPIRES);
        let a = args(&["--session-expires", "0"]).unwrap().unwrap();
        assert_eq!(a.session_expires, 0, "0 turns session timers off");
        let a = args(&["--session-expires=90"]).unwrap().unwrap();
        assert_eq!(a.session_expires, MIN_SE);
        // RFC 4028 section 4: never below Min-SE (90 s).
        for bad in ["89", "-1", "x", ""] {
            assert!(args(&["--session-expires", bad]).is_err(), "{bad}");
        }
        assert!(args(&["--session-expires"]).is_err());
    }

    /// sipd on loopback with `flags`, run on a thread for at most 20 s: its listeners, the
    /// handle that stops it and the thread that returns the report.
    fn run_sipd(
        flags: &[&str],
    ) -> (
        Vec<ListenSpec>,
        sip_driver_mio::Shutdown,
        std::thread::JoinHandle<String>,
    ) {
        let a = args(flags).unwrap().unwrap();
        let (mut driver, mut tu) = setup(&a).unwrap();
        let bound = driver.local_addrs().to_vec();
        let shutdown = driver.shutdown_handle();
        let thread = std::thread::spawn(move || {
            let summary = driver.run_for(&mut tu, Duration::from_secs(20)).unwrap();
            report(Duration::ZERO, &summary, &tu.core)
        });
        (bound, shutdown, thread)
    }

    /// An INVITE with a PCMU offer from `me` to `server` over `transport`, with `extra`
    /// header lines.
    fn invite(transport: &str, server: SocketAddr, me: SocketAddr, extra: &str) -> String {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
        format!(
            "INVITE sip:sipd@{server} SIP/2.0\r\nVia: SIP/2.0/{transport} {me};branch=z9hG4bKinv1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=a\r\nTo: <sip:sipd@{server}>\r\n\
             Call-ID: sipd-defect-{transport}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@{me}>\r\n\
             {extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    /// Reads messages from a stream until the response `status`; returns them all.
    fn read_stream_until(stream: &mut std::net::TcpStream, status: u16) -> Vec<String> {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        read_messages_until(stream, status)
    }

    /// Reads messages until the response `status` (the reader has a read timeout).
    fn read_messages_until(stream: &mut impl std::io::Read, status: u16) -> Vec<String> {
        use sip_core::{Limits, MessageView, StreamFrame};
        let (mut buf, mut out, mut chunk) = (Vec::new(), Vec::new(), [0u8; 65536]);
        loop {
            while let Ok(StreamFrame::Message(v, used)) =
                MessageView::parse_stream(&buf, &Limits::DEFAULT)
            {
                let done = v.status() == Some(status);
                out.push(String::from_utf8_lossy(v.as_bytes()).into_owned());
                buf.drain(..used);
                if done {
                    return out;
                }
            }
            let n = stream.read(&mut chunk).expect("a response in time");
            assert!(n > 0, "closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn contact_of(response: &str) -> String {
        let view = sip_core::MessageView::parse(response.as_bytes()).unwrap();
        view.header(sip_core::HeaderName::Contact)
            .unwrap_or("")
            .to_owned()
    }

    // RFC 3261 12.1.1 (and 18.1.1): a call that arrived over TCP gets a Contact for TCP
    // (`;transport=tcp`, the TCP listener's port), so the ACK and BYE come back over TCP,
    // also when sipd listens on UDP too (on another port here).
    #[test]
    fn rfc3261_12_1_1_a_call_over_tcp_gets_a_tcp_contact() {
        use std::io::Write;
        let (bound, shutdown, thread) =
            run_sipd(&["--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0"]);
        let tcp = bound
            .iter()
            .find(|s| s.transport == Transport::Tcp)
            .unwrap()
            .addr;
        let mut c = std::net::TcpStream::connect(tcp).unwrap();
        let me = c.local_addr().unwrap();
        c.write_all(invite("TCP", tcp, me, "").as_bytes()).unwrap();
        let got = read_stream_until(&mut c, 200);
        let ringing = got.iter().find(|m| m.starts_with("SIP/2.0 180")).unwrap();
        let ok = got.last().unwrap();
        for response in [ringing, ok] {
            let contact = contact_of(response);
            assert!(
                contact.contains(&format!("@{tcp};transport=tcp")),
                "Contact {contact:?} in {response}"
            );
        }
        shutdown.shutdown();
        thread.join().unwrap();
    }

    // RFC 3261 12.1.1: the UAS copies every Record-Route of the request, in order, into
    // each response that creates a dialog (the 180 and the 200); without them the peer's
    // ACK and BYE skip the record-routing proxy.
    #[test]
    fn rfc3261_12_1_1_record_route_is_copied_into_the_180_and_the_200() {
        use std::net::UdpSocket;
        let (bound, shutdown, thread) = run_sipd(&["--listen", "udp:127.0.0.1:0"]);
        let server = bound[0].addr;
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = c.local_addr().unwrap();
        let rr = "Record-Route: <sip:p2.example.com;lr>\r\n\
                  Record-Route: <sip:p1.example.com;lr;ftag=x>\r\n";
        c.send_to(invite("UDP", server, me, rr).as_bytes(), server)
            .unwrap();
        let mut buf = [0u8; 65536];
        let mut seen = Vec::new();
        loop {
            let n = c.recv(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = text.starts_with("SIP/2.0 200");
            seen.push(text);
            if done {
                break;
            }
        }
        for code in ["SIP/2.0 180", "SIP/2.0 200"] {
            let response = seen.iter().find(|m| m.starts_with(code)).unwrap();
            let view = sip_core::MessageView::parse(response.as_bytes()).unwrap();
            let routes: Vec<&str> = view.header_all(sip_core::HeaderName::RecordRoute).collect();
            assert_eq!(
                routes.join(", "),
                "<sip:p2.example.com;lr>, <sip:p1.example.com;lr;ftag=x>",
                "{response}"
            );
        }
        shutdown.shutdown();
        thread.join().unwrap();
    }

    #[test]
    fn first_line() {
        assert_eq!(
            FirstLine(b"SIP/2.0 200 OK\r\nVia: x\r\n").to_string(),
            "SIP/2.0 200 OK"
        );
        assert_eq!(FirstLine(b"\r\n").to_string(), "(keep-alive)");
    }

    #[test]
    fn answers_a_call_and_reports_it() {
        use std::net::UdpSocket;

        let a = args(&["--listen", "udp:127.0.0.1:0", "--ring", "50ms"])
            .unwrap()
            .unwrap();
        let (mut driver, mut tu) = setup(&a).unwrap();
        let server = driver.local_addr(Transport::Udp).unwrap();
        let shutdown = driver.shutdown_handle();
        let thread = std::thread::spawn(move || {
            let summary = driver.run_for(&mut tu, Duration::from_secs(20)).unwrap();
            report(Duration::ZERO, &summary, &tu.core)
        });
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = c.local_addr().unwrap();
        let head = |method: &str, n: u32, to_tag: &str| {
            format!(
                "{method} sip:sipd@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{method}{n}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=a\r\nTo: <sip:sipd@{server}>{to_tag}\r\n\
                 Call-ID: sipd-test\r\nCSeq: {n} {method}\r\nContact: <sip:a@{me}>\r\n"
            )
        };
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 4000 RTP/AVP 0\r\n";
        let invite = format!(
            "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            head("INVITE", 1, ""),
            sdp.len()
        );
        c.send_to(invite.as_bytes(), server).unwrap();
        let mut buf = [0u8; 65536];
        let ok = loop {
            let n = c.recv(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 200") {
                break text;
            }
        };
        assert!(ok.contains("Server: sipd (sip-driver-mio)"), "{ok}");
        assert!(
            ok.contains(&format!("<sip:sipd@{server}>")),
            "Contact: {ok}"
        );
        let tag = ok
            .split(";tag=")
            .nth(2)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap();
        let to_tag = format!(";tag={tag}");
        let ack = head("ACK", 1, &to_tag) + "Content-Length: 0\r\n\r\n";
        c.send_to(ack.as_bytes(), server).unwrap();
        let bye = head("BYE", 2, &to_tag) + "Content-Length: 0\r\n\r\n";
        c.send_to(bye.as_bytes(), server).unwrap();
        loop {
            let n = c.recv(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..n]);
            if text.starts_with("SIP/2.0 200") && text.contains("2 BYE") {
                break;
            }
        }
        shutdown.shutdown();
        let report = thread.join().unwrap();
        assert!(report.contains("calls answered 1, ended 1"), "{report}");
        assert!(report.contains("dialogs open 0"), "{report}");
    }
}
