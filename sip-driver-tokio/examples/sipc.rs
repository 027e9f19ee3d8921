//! `sipc`: a SIP user agent client on the tokio driver's async API: `Client` for OPTIONS
//! and MESSAGE, `Client::register` for registrations, and the call API (`Client::call`,
//! the session layer of `sip_core::session`) for calls.
//!
//! ```text
//! sipc [--transport udp|tcp|tls] [--bind ADDR] [--proxy URI] [--dns HOST:PORT] [--ca FILE]
//!      [--cert FILE --key FILE] [--log LEVEL] [-v] options URI
//! sipc [...] call URI [--hold DURATION] [--sdp FILE] [--reinvite-after DURATION]
//!                     [--100rel] [--session-expires SECS]
//! sipc [...] message URI TEXT                MESSAGE with a text/plain body
//! sipc [...] register REGISTRAR_URI --aor URI [--expires SECS] [--for DURATION]
//! ```
//!
//! The URI's host is an IP address (`sip:127.0.0.1:5060`, `sip:bob@[::1]:5060;transport=tcp`)
//! or a name the endpoint locates with DNS (RFC 3263: NAPTR, SRV, A/AAAA, failing over to
//! the next server): `sip:bob@example.test`, `sips:example.test` (TLS only). `--dns` names
//! the nameserver (default: /etc/resolv.conf); `--ca` the CAs TLS servers must chain to
//! (default: the system's roots); a certificate that does not prove the server's domain
//! (RFC 5922) makes sipc exit 1 with `sipc: error: TLS to ADDR: certificate not valid for
//! DOMAIN`. `--cert` and `--key` give sipc a TLS listener of its own (a `sips:` call needs
//! one for its Contact). Prints one line per message on the wire (stdout):
//! `-> METHOD` for each request sent, `<- CODE Reason` for each response received (and
//! `<- METHOD`, `-> CODE Reason` for the requests it answers); `-v` adds whole responses.
//! `call` places the call on the session layer, which sends ACK, PRACK, CANCEL and BYE
//! and answers requests inside the dialog; the peer's offers (re-INVITE, UPDATE) are
//! answered from `sdp::LocalMedia`. Ctrl-C hangs up (CANCEL while ringing, BYE after) and
//! exits 130. `call` exits 0 only when the call was established and then ended by a BYE:
//! sipc's own that got a 2xx, or the callee's (answered 200 by the session layer: a callee
//! hanging up is how many calls end). Other commands exit 0 when the final responses are
//! 2xx. With `--user` and `--password`, 401 and 407 challenges are answered (RFC 3261
//! section 22.2; for a call, in a new INVITE). `register` keeps a registration (the
//! driver's `Client::register`) for DURATION, refreshing it, then removes it; it exits 0
//! only when every REGISTER got a 2xx (after challenges). Logs go to stderr (level `warn`
//! unless `--log` or RUST_LOG says otherwise; `info` adds a line per message), in colour
//! only when stderr is a terminal. Like both `sipd`s: `--help` prints the help on stdout
//! and exits 0; a usage error prints the usage on stderr and exits 2.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sip_core::auth::DigestClient;
use sip_core::message::SipUri;
use sip_core::registration::{RegistrationConfig, RegistrationEvent, RegistrationState};
use sip_core::sdp::{Codec, Direction, LocalMedia, Sdp};
use sip_core::session::{EndReason, Invite, Rel100, SessionConfig, SessionTimer};
use sip_core::{Method, NextHop, OwnedMessage, RequestBuilder, Rng, SeededRng, Target, Transport};
use sip_driver_sys::tls::{client_config, server_config, TlsConfig};
use sip_driver_tokio::{
    Call, CallEvent, Client, Driver, DriverOptions, Incoming, ListenSpec, Responses,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

const USAGE: &str =
    "usage: sipc [--transport udp|tcp|tls] [--bind ADDR] [--proxy URI] [--dns HOST:PORT] \
    [--failover-timeout DURATION] [--ca FILE] [--cert FILE --key FILE] [--log LEVEL] [-v] \
    [--user NAME --password SECRET] (options URI | call URI [--hold DURATION] [--sdp FILE] \
    [--reinvite-after DURATION] [--100rel] [--session-expires SECS] | message URI TEXT | \
    register REGISTRAR_URI --aor URI [--expires SECS] [--for DURATION])";

const HELP: &str =
    "sipc (tokio driver): sends one request, or makes a call, or keeps a registration, and
prints one line per message on the wire (-> METHOD, <- CODE Reason).

usage: sipc [--transport udp|tcp|tls] [--bind ADDR] [--proxy URI] [--dns HOST:PORT]
            [--ca FILE] [--cert FILE --key FILE] [--log LEVEL] [-v]
            [--user NAME --password SECRET] options URI
       sipc [...] call URI [--hold DURATION] [--sdp FILE] [--reinvite-after DURATION]
                           [--100rel] [--session-expires SECS]
                                                  INVITE, ACK, wait, BYE
       sipc [...] message URI TEXT                MESSAGE with a text/plain body
       sipc [...] register REGISTRAR_URI --aor URI [--expires SECS] [--for DURATION]
                                                  REGISTER, refreshed for DURATION, then
                                                  removed (Contact expires=0)
  URI               sip:127.0.0.1:5060, sip:bob@[::1]:5060;transport=tcp, or a name:
                    sip:bob@example.test, sips:example.test (located with DNS, RFC 3263:
                    NAPTR, SRV, A/AAAA, failing over to the next server; sips: is TLS only)
  --transport T     udp, tcp or tls (default: the URI's transport parameter, TLS for
                    sips:, else udp for an address and DNS's choice for a name)
  --bind ADDR       the local address, IP or IP:PORT (default: the address the system
                    sends from toward the target, or toward the nameserver for a name;
                    any free port); the Via and the Contact name it (with
                    ;transport=tcp over TCP)
  --proxy URI       outbound proxy (an address or a name): every request goes to it,
                    with a preloaded Route <URI;lr>
  --dns HOST:PORT   the nameserver for names, e.g. 127.0.0.1:5353 (default: the
                    system's, /etc/resolv.conf)
  --failover-timeout DURATION
                    a located target that gives no response at all (not even 100) in
                    this long is given up for the next one (RFC 3263 4.3); default:
                    only when the transaction times out (32 s)
  --ca FILE         the CAs (PEM) TLS servers must chain to (default: the system's
                    roots); the server must prove the URI's domain (RFC 5922: a
                    subjectAltName sip:DOMAIN or DNS name), or its IP address for an
                    address; else sipc exits 1: error: TLS to ADDR: certificate not valid
  --cert FILE       a certificate chain (PEM) for a TLS listener of sipc's own, with
                    --key (not needed to call a TLS server; a sips: call needs it for
                    its sips: Contact)
  --key FILE        its private key (PEM)
  --hold DURATION   call: time between the answer (or the last re-INVITE) and BYE: 2s,
                    500ms (default 2s)
  --sdp FILE        call: the offer (default: PCMU and PCMA); later offers and answers
                    use its address, port and o= session id with PCMU and PCMA
  --reinvite-after DURATION
                    call: after the answer, a re-INVITE with a sendonly offer (hold),
                    then after as long one with sendrecv (resume), then --hold and BYE
  --100rel          call: Require: 100rel (RFC 3262); PRACK for reliable 1xx responses
  --session-expires SECS
                    call: session timers (RFC 4028) with this interval (0: none, the
                    default); the session layer refreshes or ends the call
  --user NAME       username for digest challenges (401, 407), with --password; a
                    call answers them in a new INVITE (and once for a BYE or
                    re-INVITE), its ACK carries the INVITE's credentials
  --password SECRET password for digest challenges (other local users can read a
                    command line: for tests and demos)
  --aor URI         register: the address-of-record (To and From), e.g. sip:alice@example.com
  --expires SECS    register: the expiry asked for (default 3600; the registrar's grant rules)
  --for DURATION    register: how long to stay registered before removing the binding
                    (default 0s: register, then remove at once; Ctrl-C ends it early)
  --log LEVEL       error, warn, info (a line per message), debug, trace or a tracing
                    filter (default warn, or RUST_LOG)
  -v, --verbose     print whole responses
  -h, --help        this help
Requests inside the call (BYE, re-INVITE, UPDATE, OPTIONS) are answered. Ctrl-C hangs up
(CANCEL while ringing, BYE after) and exits 130.
Exits 0 when the final responses are 2xx; call: when the call was established and ended
by a BYE (sipc's, answered 2xx, or the callee's); register: when every REGISTER got a 2xx
after any challenge. 1 otherwise, 2 on a usage error, 130 when interrupted.";

struct Args {
    command: String,
    uri: String,
    text: String,
    hold: Duration,
    transport: Option<Transport>,
    log: String,
    verbose: bool,
    user: Option<String>,
    password: Option<String>,
    aor: Option<String>,
    expires: u32,
    stay: Duration,
    /// `--bind`: the local address (port 0: any free port).
    bind: Option<SocketAddr>,
    /// `--proxy`: the outbound proxy's URI.
    proxy: Option<String>,
    /// `call --sdp FILE`: the offer, as read.
    sdp: Option<Vec<u8>>,
    /// `call --reinvite-after DURATION`.
    reinvite_after: Option<Duration>,
    /// `call --100rel`.
    rel100: bool,
    /// `call --session-expires SECS` (0: off).
    session_expires: Option<u32>,
    /// `--dns`: the nameserver (default: the system's).
    dns: Option<SocketAddr>,
    /// `--failover-timeout`: move to the next located target when one gives no response
    /// at all in this long (RFC 3263 4.3; default: only the transaction timeout).
    failover_timeout: Option<Duration>,
    /// `--ca`: the CAs TLS servers must chain to (default: the system's roots).
    ca: Option<PathBuf>,
    /// `--cert`, `--key`: a TLS listener of sipc's own.
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
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

/// Reads the arguments (without the program name); `None` for `--help`.
fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        command: String::new(),
        uri: String::new(),
        text: String::new(),
        hold: Duration::from_secs(2),
        transport: None,
        log: std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        verbose: false,
        user: None,
        password: None,
        aor: None,
        expires: 3600,
        stay: Duration::ZERO,
        bind: None,
        proxy: None,
        sdp: None,
        reinvite_after: None,
        rel100: false,
        session_expires: None,
        dns: None,
        failover_timeout: None,
        ca: None,
        cert: None,
        key: None,
    };
    let mut positional = Vec::new();
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--hold" => {
                let v = value("--hold")?;
                args.hold = parse_duration(&v).ok_or(format!("--hold {v}: not a duration"))?;
            }
            "--transport" => {
                args.transport = Some(match value("--transport")?.as_str() {
                    "udp" | "UDP" => Transport::Udp,
                    "tcp" | "TCP" => Transport::Tcp,
                    "tls" | "TLS" => Transport::Tls,
                    t => return Err(format!("--transport {t}: udp, tcp or tls")),
                })
            }
            "--log" => args.log = value("--log")?,
            "--user" => args.user = Some(value("--user")?),
            "--password" => args.password = Some(value("--password")?),
            "--aor" => args.aor = Some(value("--aor")?),
            "--expires" => {
                let v = value("--expires")?;
                args.expires = v
                    .parse()
                    .map_err(|_| format!("--expires {v}: not a number of seconds"))?;
            }
            "--for" => {
                let v = value("--for")?;
                args.stay = parse_duration(&v).ok_or(format!("--for {v}: not a duration"))?;
            }
            "--bind" => {
                let v = value("--bind")?;
                args.bind = Some(parse_bind(&v).ok_or(format!(
                    "--bind {v}: not an IP address or IP:PORT ([v6]:PORT)"
                ))?);
            }
            "--proxy" => {
                let v = value("--proxy")?;
                hop_of(&v, None).map_err(|e| format!("--proxy {e}"))?;
                args.proxy = Some(v);
            }
            "--sdp" => {
                let v = value("--sdp")?;
                let body = std::fs::read(&v).map_err(|e| format!("--sdp {v}: {e}"))?;
                Sdp::parse(&body).map_err(|e| format!("--sdp {v}: not SDP: {e}"))?;
                args.sdp = Some(body);
            }
            "--reinvite-after" => {
                let v = value("--reinvite-after")?;
                args.reinvite_after = Some(
                    parse_duration(&v).ok_or(format!("--reinvite-after {v}: not a duration"))?,
                );
            }
            "--dns" => {
                let v = value("--dns")?;
                args.dns = Some(
                    sip_driver_sys::dns::parse_nameserver(&v)
                        .map_err(|e| format!("--dns {v}: {e}"))?,
                );
            }
            "--failover-timeout" => {
                let v = value("--failover-timeout")?;
                let d = parse_duration(&v)
                    .filter(|d| !d.is_zero())
                    .ok_or(format!("--failover-timeout {v}: not a duration above 0"))?;
                args.failover_timeout = Some(d);
            }
            "--ca" => args.ca = Some(existing_file("--ca", value("--ca")?)?),
            "--cert" => args.cert = Some(existing_file("--cert", value("--cert")?)?),
            "--key" => args.key = Some(existing_file("--key", value("--key")?)?),
            "--100rel" => args.rel100 = true,
            "--session-expires" => {
                let v = value("--session-expires")?;
                let secs: u32 = v
                    .parse()
                    .map_err(|_| format!("--session-expires {v}: not a number of seconds"))?;
                args.session_expires = (secs > 0).then_some(secs);
            }
            "-v" | "--verbose" => args.verbose = true,
            "-h" | "--help" => return Ok(None),
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ => positional.push(a),
        }
    }
    let mut p = positional.into_iter();
    args.command = p.next().ok_or("missing command")?;
    args.uri = p.next().ok_or("missing URI")?;
    match args.command.as_str() {
        "options" | "call" => {}
        "message" => args.text = p.next().ok_or("missing message text")?,
        "register" => {
            if args.aor.is_none() {
                return Err("register needs --aor URI".into());
            }
        }
        c => return Err(format!("unknown command {c}")),
    }
    if let Some(extra) = p.next() {
        return Err(format!("unexpected argument {extra}"));
    }
    let call_flags = args.sdp.is_some()
        || args.reinvite_after.is_some()
        || args.rel100
        || args.session_expires.is_some();
    if call_flags && args.command != "call" {
        return Err("--sdp, --reinvite-after, --100rel and --session-expires go with call".into());
    }
    if args.user.is_some() != args.password.is_some() {
        return Err("--user and --password go together".into());
    }
    if args.cert.is_some() != args.key.is_some() {
        return Err("--cert and --key go together".into());
    }
    let dest = hop_of(&args.uri, args.transport).map_err(|e| e.to_string())?;
    if args.command == "call" && dest.secure && args.cert.is_none() {
        return Err(
            "a call to a sips: URI needs --cert and --key (its Contact is a sips: URI of a \
             TLS listener, RFC 3261 section 19.1)"
                .into(),
        );
    }
    Ok(Some(args))
}

/// A file given to a flag, which must exist (it is read later).
fn existing_file(flag: &str, v: String) -> Result<PathBuf, String> {
    let path = PathBuf::from(&v);
    if !path.is_file() {
        return Err(format!("{flag} {v}: no such file"));
    }
    Ok(path)
}

/// `--bind`: `IP`, `IP:PORT` or `[IPv6]:PORT`; a specific address (the Via and the
/// Contact name it), not the wildcard.
fn parse_bind(v: &str) -> Option<SocketAddr> {
    let addr = match v.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, 0),
        Err(_) => v.parse::<SocketAddr>().ok()?,
    };
    (!addr.ip().is_unspecified() && !addr.ip().is_multicast()).then_some(addr)
}

/// The local address the system would send from to reach `remote` (no packet is sent: a
/// UDP socket is only connected); the loopback address of its family if it cannot tell.
fn local_ip_toward(remote: SocketAddr) -> IpAddr {
    let (any, loopback) = match remote {
        SocketAddr::V4(_) => (
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        ),
        SocketAddr::V6(_) => (
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ),
    };
    std::net::UdpSocket::bind(SocketAddr::new(any, 0))
        .and_then(|s| {
            s.connect(remote)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(loopback)
}

/// `--proxy URI`: the preloaded Route that sends requests through it (RFC 3261 section
/// 8.1.2, loose routing: `lr` added when the URI lacks it).
fn proxy_route(uri: &str) -> String {
    let lr = uri
        .split(';')
        .skip(1)
        .any(|p| p.eq_ignore_ascii_case("lr") || p.to_ascii_lowercase().starts_with("lr="));
    if lr {
        format!("<{uri}>")
    } else {
        format!("<{uri};lr>")
    }
}

/// Where requests go: an address, or a URI the endpoint locates with DNS.
#[derive(Debug, Clone)]
struct Dest {
    hop: NextHop,
    /// The address, when the URI's host is one.
    addr: Option<SocketAddr>,
    /// The transport when known (forced, the URI's parameter, TLS for sips:, UDP for an
    /// address); None: DNS chooses (RFC 3263 section 4.1).
    transport: Option<Transport>,
    /// A sips: URI (TLS on every hop).
    secure: bool,
}

/// Where the URI says to send: its IP address, port and transport; or, for a name, the
/// URI itself for the endpoint to locate (RFC 3263), with `;transport=` set when forced.
fn hop_of(uri: &str, forced: Option<Transport>) -> Result<Dest, String> {
    let sip = SipUri::parse(uri).ok_or(format!("{uri}: not a sip: or sips: URI"))?;
    let from_uri = sip.transport().and_then(Transport::from_via_token);
    let transport = match (sip.secure, forced) {
        (true, Some(t)) if t != Transport::Tls => {
            return Err(format!(
                "{uri}: a sips: URI goes over TLS only, not --transport {}",
                t.via_token().to_ascii_lowercase()
            ))
        }
        (true, _) => Some(Transport::Tls),
        (false, Some(t)) => Some(t),
        (false, None) => from_uri,
    };
    let Some(ip) = sip.host.ip() else {
        let hop = match forced {
            Some(t) if !sip.secure => NextHop::uri(with_transport(uri, t)),
            _ => NextHop::uri(uri),
        };
        return Ok(Dest {
            hop,
            addr: None,
            transport,
            secure: sip.secure,
        });
    };
    let transport = transport.unwrap_or(Transport::Udp);
    let port = sip.port.unwrap_or(match transport {
        Transport::Tls => 5061,
        _ => 5060,
    });
    let addr = SocketAddr::new(ip, port);
    Ok(Dest {
        hop: NextHop::Target(Target { transport, addr }),
        addr: Some(addr),
        transport: Some(transport),
        secure: sip.secure,
    })
}

/// `uri` with its `transport` parameter set to `t` (RFC 3263 section 4.1: the parameter
/// decides the transport; the endpoint then looks up SRV for it).
fn with_transport(uri: &str, t: Transport) -> String {
    let (base, headers) = match uri.split_once('?') {
        Some((b, h)) => (b, Some(h)),
        None => (uri, None),
    };
    let mut parts = base.split(';');
    let mut out = parts.next().unwrap_or("").to_owned();
    for p in parts.filter(|p| !p.to_ascii_lowercase().starts_with("transport=")) {
        out.push(';');
        out.push_str(p);
    }
    out.push_str(";transport=");
    out.push_str(&t.via_token().to_ascii_lowercase());
    if let Some(h) = headers {
        out.push('?');
        out.push_str(h);
    }
    out
}

/// Prints one line per message on the wire (stdout), from the driver's per-message
/// `tracing` events (target `sip_driver_tokio::wire`): `-> METHOD` for each request sent,
/// `<- CODE Reason` for each response received, and likewise `<- METHOD` and `-> CODE
/// Reason` for requests received and responses sent. Retransmissions show as they happen.
struct WirePrinter {
    /// `-v`: also the whole of each message received.
    verbose: bool,
}

/// A 2xx to a BYE has been received: what `call` needs for exit 0 after hanging up.
static BYE_2XX: AtomicBool = AtomicBool::new(false);

/// The fields of one wire event that the printer reads.
#[derive(Default)]
struct WireFields {
    /// "sent INVITE", "recv 200", ...
    message: String,
    reason: Option<String>,
    cseq: String,
    /// The whole message (the TRACE event).
    text: Option<String>,
}

impl tracing::field::Visit for WireFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "reason" => self.reason = Some(value.to_owned()),
            "cseq" => self.cseq = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "text" => self.text = Some(format!("{value:?}")),
            "reason" => self.reason = Some(format!("{value:?}").trim_matches('"').to_owned()),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WirePrinter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = WireFields::default();
        event.record(&mut f);
        if let Some(text) = f.text {
            // `-v`: what arrived, whole, after its one-line summary.
            if self.verbose && f.message.starts_with("recv ") {
                println!("{}", printable(text.as_bytes()));
            }
            return;
        }
        let Some((dir, what)) = f.message.split_once(' ') else {
            return;
        };
        let arrow = match dir {
            "sent" => "->",
            "recv" => "<-",
            _ => return,
        };
        // Keep-alives and unparsable messages are not SIP messages to show.
        if what.contains(' ') {
            return;
        }
        if arrow == "<-" && what.starts_with('2') && f.cseq.split_whitespace().nth(1) == Some("BYE")
        {
            BYE_2XX.store(true, Ordering::Relaxed);
        }
        match f.reason {
            Some(reason) => println!("{arrow} {what} {}", printable(reason.as_bytes())),
            None => println!("{arrow} {}", printable(what.as_bytes())),
        }
    }
}

/// `-v`: the whole response (its `<- CODE Reason` line is the wire printer's).
fn show(r: &OwnedMessage, verbose: bool) {
    if verbose {
        println!("{}", printable(r.as_bytes()));
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

/// Prints every response and returns the final one.
async fn finish(mut responses: Responses, verbose: bool) -> Result<OwnedMessage, String> {
    while let Some(r) = responses.next().await {
        match r {
            Ok(resp) => {
                show(&resp, verbose);
                if resp.view().status().is_some_and(|c| c >= 200) {
                    return Ok(resp);
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("no final response".into())
}

/// Sends `request` and prints its responses; a 401 or 407 is answered with credentials
/// once per new challenge (RFC 3261 section 22.2) when `digest` has them, and nonces kept
/// from earlier challenges are used at once. Returns the
/// request last sent (its CSeq is what the dialog goes on from) and its final response.
async fn send(
    client: &Client,
    mut request: OwnedMessage,
    target: &NextHop,
    digest: &mut Option<DigestClient>,
    rng: &mut SeededRng,
    verbose: bool,
) -> Result<(OwnedMessage, OwnedMessage), String> {
    // Credentials from the nonces of earlier challenges (the BYE after a challenged INVITE,
    // RFC 7616 section 3.4); the request as it is when none are kept.
    if let Some(d) = digest.as_mut() {
        if let Ok(r) = d.authorize(&request, rng) {
            request = r;
        }
    }
    loop {
        let responses = client
            .request(request.clone(), target.clone())
            .await
            .map_err(|e| e.to_string())?;
        let last = finish(responses, verbose).await?;
        if matches!(last.view().status(), Some(401 | 407)) {
            if let Some(d) = digest.as_mut() {
                match d.retry(&request, &last, rng) {
                    Ok(next) => {
                        println!("   answering the challenge");
                        request = next;
                        continue;
                    }
                    Err(e) => eprintln!("sipc: cannot answer the challenge: {e}"),
                }
            }
        }
        return Ok((request, last));
    }
}

fn is_2xx(r: &OwnedMessage) -> bool {
    r.view().status().is_some_and(|c| (200..300).contains(&c))
}

/// `register`: keeps a registration for `--for`, then removes it. Fails unless every
/// REGISTER got a 2xx (after answering challenges).
async fn register(args: &Args, client: &Client, dest: &Dest, local: Local) -> Result<(), String> {
    let aor = args.aor.as_deref().ok_or("register needs --aor URI")?;
    let user = args.user.as_deref().unwrap_or("sipc");
    let contact = match (dest.secure, local.transport) {
        (true, _) => format!("<sips:{user}@{}>", local.addr),
        (false, Transport::Tcp) => format!("<sip:{user}@{};transport=tcp>", local.addr),
        (false, Transport::Tls) => format!("<sip:{user}@{};transport=tls>", local.addr),
        _ => format!("<sip:{user}@{}>", local.addr),
    };
    let mut config = RegistrationConfig::new(&args.uri, aor, &contact).with_expires(args.expires);
    if let (Some(u), Some(p)) = (&args.user, &args.password) {
        config = config.with_credentials(u, p);
    }
    if let Some(proxy) = &args.proxy {
        config = config.with_header("Route", &proxy_route(proxy));
    }
    let mut reg = client
        .register(config, dest.hop.clone())
        .map_err(|e| e.to_string())?;
    let until = tokio::time::Instant::now() + args.stay;
    let mut ok = true;
    let mut registered = false;
    // Until the first outcome, then until `--for` is over (Ctrl-C ends either).
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let first_outcome = registered || !ok;
        tokio::select! {
            e = reg.next_event() => match e {
                Some(e) => print_event(&args.uri, &e, &mut ok, &mut registered),
                None => break,
            },
            _ = tokio::time::sleep_until(until), if first_outcome => break,
            _ = &mut interrupted => {
                println!("   interrupted");
                break;
            }
        }
    }
    let done = reg.unregister().await;
    while let Some(e) = reg.next_event().await {
        print_event(&args.uri, &e, &mut ok, &mut registered);
    }
    if done != (RegistrationState::Unregistered { failure: None }) {
        ok = false;
    }
    if ok && registered {
        Ok(())
    } else {
        Err("not every REGISTER got a 2xx".into())
    }
}

/// One line per REGISTER sent (`->`), per final response (`<-`) and per change of state.
fn print_event(uri: &str, e: &RegistrationEvent, ok: &mut bool, registered: &mut bool) {
    let secs = |at: &std::time::Instant| {
        at.saturating_duration_since(std::time::Instant::now())
            .as_secs()
    };
    match e {
        RegistrationEvent::Sent {
            cseq,
            expires,
            authorized,
        } => println!(
            "-> REGISTER {uri} (CSeq {cseq}, expires {expires}{})",
            if *authorized {
                ", with credentials"
            } else {
                ""
            }
        ),
        RegistrationEvent::Response { code, reason, .. } => {
            println!("<- {code} {}", printable(reason.as_bytes()))
        }
        RegistrationEvent::Failed { failure, .. } => {
            *ok = false;
            println!("<- {failure}");
        }
        RegistrationEvent::State(RegistrationState::Registered {
            expires_at,
            refresh_at,
        }) => {
            *registered = true;
            println!(
                "   registered for {}s, refresh in {}s",
                secs(expires_at),
                secs(refresh_at)
            );
        }
        RegistrationEvent::State(RegistrationState::Retrying { at, failure, .. }) => {
            *ok = false;
            println!(
                "   failed ({}), retrying in {}s",
                printable(failure.to_string().as_bytes()),
                secs(at)
            );
        }
        RegistrationEvent::State(RegistrationState::Unregistered { failure }) => match failure {
            None => println!("   unregistered"),
            Some(f) => {
                *ok = false;
                println!(
                    "   unregistration failed ({})",
                    printable(f.to_string().as_bytes())
                );
            }
        },
        RegistrationEvent::State(_) => {}
        _ => {}
    }
}

/// Why sipc fails: exit 1, or 130 when interrupted.
enum Fail {
    Error(String),
    Interrupted,
}

impl From<String> for Fail {
    fn from(e: String) -> Fail {
        Fail::Error(e)
    }
}

/// The listener sipc names in its From, Contact and SDP.
#[derive(Debug, Clone, Copy)]
struct Local {
    addr: SocketAddr,
    transport: Transport,
}

async fn run(
    args: &Args,
    client: &Client,
    incoming: Incoming,
    dest: &Dest,
    local: Local,
) -> Result<(), Fail> {
    // Requests that are not the session layer's (outside sipc's dialogs) get a plain
    // answer, so that a peer is never left waiting.
    tokio::spawn(answer_strays(incoming));
    if args.command == "register" {
        return Ok(register(args, client, dest, local).await?);
    }
    let mut rng = SeededRng::new(
        sip_driver_tokio::os_seed().map_err(|e| format!("cannot read a seed: {e}"))?,
    );
    let mut digest = match (&args.user, &args.password) {
        (Some(u), Some(p)) => Some(DigestClient::new(u, p)),
        _ => None,
    };
    if args.command == "call" {
        return call(args, client, dest, local.addr, digest, &mut rng).await;
    }
    let scheme = if dest.secure { "sips" } else { "sip" };
    let from = format!("<{scheme}:sipc@{}>", local.addr);
    let to = format!("<{}>", args.uri);
    let method = match args.command.as_str() {
        "options" => Method::Options,
        _ => Method::Message,
    };
    let cseq = (rng.next_u64() % 10_000) as u32 + 1;
    let mut b = RequestBuilder::new(method, &args.uri)
        .from(&from)
        .to(&to)
        .cseq(cseq);
    if let Some(proxy) = &args.proxy {
        b = b.header("Route", &proxy_route(proxy));
    }
    b = match method {
        Method::Message => b.body("text/plain", args.text.as_bytes()),
        _ => b.header("Accept", "application/sdp"),
    };
    let request = b.build(&mut rng).map_err(|e| e.to_string())?;
    let (_, last) = send(
        client,
        request,
        &dest.hop,
        &mut digest,
        &mut rng,
        args.verbose,
    )
    .await?;
    if !is_2xx(&last) {
        return Err(Fail::Error(format!("{} failed", method.as_str())));
    }
    Ok(())
}

/// Answers what arrives outside sipc's calls: OPTIONS 200, a new INVITE 486 Busy Here (sipc
/// takes no calls), a request inside a dialog sipc does not know 481 (RFC 3261 section
/// 12.2.2), anything else 405.
async fn answer_strays(mut incoming: Incoming) {
    while let Some((request, mut responder)) = incoming.next().await {
        let in_dialog = request
            .message()
            .ok()
            .is_some_and(|m| m.to().and_then(|t| t.tag()).is_some());
        let status = match request.view().method() {
            _ if in_dialog => 481,
            Some(Method::Options) => 200,
            Some(Method::Invite) => 486,
            _ => 405,
        };
        let _ = responder.respond_status(status).await;
    }
}

/// What the call does next when its timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `--reinvite-after`: a re-INVITE with a sendonly offer.
    Hold,
    /// Then one with sendrecv.
    Resume,
    /// The end of `--hold`: BYE.
    Bye,
}

/// `call`: the INVITE session on the driver's call API. The session layer sends the ACK,
/// PRACK (100rel), CANCEL and BYE, answers requests inside the dialog (BYE, OPTIONS; the
/// peer's offers are answered here from [`LocalMedia`]) and refreshes the session timer.
/// With `--user` and `--password` it also answers a 401 or 407 to the INVITE in a new
/// INVITE of the same call, and to a BYE or re-INVITE once (RFC 3261 section 22.2), and
/// the ACK of the 2xx carries the INVITE's credentials (section 13.2.2.4).
async fn call(
    args: &Args,
    client: &Client,
    dest: &Dest,
    local: SocketAddr,
    digest: Option<DigestClient>,
    rng: &mut SeededRng,
) -> Result<(), Fail> {
    let scheme = if dest.secure { "sips" } else { "sip" };
    let from = format!("<{scheme}:sipc@{local}>");
    let to = format!("<{}>", args.uri);
    let mut media = local_media(args.sdp.as_deref(), local.ip(), rng);
    let offer = match &args.sdp {
        Some(file) => file.clone(),
        None => media.offer(Direction::SendRecv),
    };
    let mut base = Invite::new(&args.uri, &from, &to, dest.hop.clone()).offer(offer);
    if let Some(proxy) = &args.proxy {
        base = base.route(&proxy_route(proxy));
    }
    if args.rel100 {
        base = base.rel100(Rel100::Required);
    }
    if let Some(secs) = args.session_expires {
        base = base.session_expires(secs);
    }
    if let Some(d) = digest {
        base = base.credentials(d);
    }
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut call = client.call(base).await.map_err(|e| e.to_string())?;
    {
        let mut run = CallRun::default();
        let reason = loop {
            let deadline = run.deadline;
            tokio::select! {
                event = call.next_event() => {
                    let Some(event) = event else {
                        return Err(Fail::Error("the call vanished".into()));
                    };
                    if let Some(reason) = run.event(args, &call, &mut media, event).await {
                        break reason;
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => run.step(args, &call, &mut media).await,
                _ = &mut interrupted => {
                    // A second Ctrl-C leaves at once.
                    if run.interrupted {
                        return Err(Fail::Interrupted);
                    }
                    run.interrupted = true;
                    run.deadline = None;
                    println!("   interrupted: hanging up");
                    if let Err(e) = call.hangup().await {
                        eprintln!("sipc: cannot hang up: {e}");
                    }
                    interrupted.set(tokio::signal::ctrl_c());
                }
            }
        };
        println!("   call ended: {}", describe(reason));
        if run.interrupted {
            return Err(Fail::Interrupted);
        }
        match reason {
            _ if !run.established => Err(Fail::Error("the call was not established".into())),
            _ if run.offer_refused => Err(Fail::Error("a re-INVITE was refused".into())),
            // The callee hung up: its BYE was answered 200 by the session layer.
            EndReason::RemoteBye => Ok(()),
            EndReason::LocalBye if BYE_2XX.load(Ordering::Relaxed) => Ok(()),
            EndReason::LocalBye => Err(Fail::Error("the BYE got no 2xx".into())),
            _ => Err(Fail::Error("the call did not end with BYE".into())),
        }
    }
}

/// The state of one call attempt.
#[derive(Default)]
struct CallRun {
    established: bool,
    interrupted: bool,
    /// A re-INVITE of `--reinvite-after` was refused.
    offer_refused: bool,
    /// The next step and when.
    deadline: Option<(tokio::time::Instant, Step)>,
    /// The re-INVITE waiting for its answer.
    reinviting: Option<Step>,
}

impl CallRun {
    /// Handles one event of the call; the end reason when it is over.
    async fn event(
        &mut self,
        args: &Args,
        call: &Call,
        media: &mut LocalMedia,
        event: CallEvent,
    ) -> Option<EndReason> {
        let now = tokio::time::Instant::now();
        match event {
            CallEvent::Answered { sdp } => {
                self.established = true;
                // (an answer to the offer of --sdp FILE is not the helper's to check)
                if let (Some(sdp), None) = (sdp, &args.sdp) {
                    if let Err(e) = media.accept_answer(&sdp) {
                        println!("   the answer does not fit the offer: {e}");
                    }
                }
                println!("   call established");
                if self.interrupted {
                    return None;
                }
                self.deadline = Some(match args.reinvite_after {
                    Some(d) => (now + d, Step::Hold),
                    None => {
                        println!("   holding for {:?}", args.hold);
                        (now + args.hold, Step::Bye)
                    }
                });
            }
            CallEvent::Offer { method, sdp } => {
                // The peer's re-INVITE or UPDATE (hold, resume, new media): RFC 3264 6.
                let answer = media.answer(&sdp).map_err(|e| {
                    println!("   refusing the {method} offer: {e}");
                    e.status()
                });
                if let Err(e) = call.answer_offer(answer).await {
                    eprintln!("sipc: cannot answer the offer: {e}");
                }
            }
            CallEvent::Answer { sdp } => {
                if let Err(e) = media.accept_answer(&sdp) {
                    println!("   the answer does not fit the offer: {e}");
                }
                self.next_after_reinvite(args, now);
            }
            CallEvent::OfferRefused { status } => {
                println!("   re-INVITE refused ({status})");
                self.offer_refused = true;
                self.next_after_reinvite(args, now);
            }
            CallEvent::Ended(reason) => return Some(reason),
            _ => {}
        }
        None
    }

    /// Once a re-INVITE of `--reinvite-after` is answered: the next one after the same
    /// time, or after the last one the hold time, then BYE.
    fn next_after_reinvite(&mut self, args: &Args, now: tokio::time::Instant) {
        if self.interrupted {
            return;
        }
        self.deadline = match (self.reinviting.take(), args.reinvite_after) {
            (Some(Step::Hold), Some(d)) => Some((now + d, Step::Resume)),
            (Some(_), _) => {
                println!("   holding for {:?}", args.hold);
                Some((now + args.hold, Step::Bye))
            }
            (None, _) => self.deadline,
        };
    }

    /// The timer fired: hold, resume or hang up.
    async fn step(&mut self, args: &Args, call: &Call, media: &mut LocalMedia) {
        let Some((_, step)) = self.deadline.take() else {
            return;
        };
        let sent = match step {
            Step::Hold => {
                println!("   on hold (sendonly)");
                call.hold(media).await
            }
            Step::Resume => {
                println!("   off hold (sendrecv)");
                call.resume(media).await
            }
            Step::Bye => call.hangup().await,
        };
        match sent {
            Ok(()) if step != Step::Bye => self.reinviting = Some(step),
            Ok(()) => {}
            Err(e) => {
                eprintln!("sipc: {e}");
                if step == Step::Bye {
                    return;
                }
                // The re-INVITE could not be sent: go on as if it were refused.
                self.offer_refused = true;
                self.reinviting = Some(step);
                self.next_after_reinvite(args, tokio::time::Instant::now());
            }
        }
    }
}

async fn sleep_until(deadline: Option<(tokio::time::Instant, Step)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn describe(reason: EndReason) -> String {
    match reason {
        EndReason::LocalBye => "BYE sent".into(),
        EndReason::RemoteBye => "BYE received".into(),
        EndReason::Cancelled => "cancelled".into(),
        EndReason::Rejected(code) => format!("rejected ({code})"),
        EndReason::Timeout => "timed out".into(),
        EndReason::DialogGone => "the dialog is gone (481)".into(),
        EndReason::NoAck => "no ACK".into(),
        EndReason::SessionExpired => "the session expired".into(),
        EndReason::Lifetime => "too long".into(),
        EndReason::TransportError => "transport error".into(),
        other => format!("{other:?}"),
    }
}

/// The media helper: PCMU and PCMA on `ip` (no RTP is sent), or the address, port and o=
/// session id of `--sdp FILE` (whose later offers and answers it writes).
fn local_media(file: Option<&[u8]>, ip: IpAddr, rng: &mut SeededRng) -> LocalMedia {
    let (mut address, mut port, mut id) = (ip, 49170, rng.next_u64() >> 2);
    if let Some(sdp) = file.and_then(|f| Sdp::parse(f).ok()) {
        if let Some(m) = sdp.media().iter().find(|m| m.media_type() == "audio") {
            port = m.port();
            if let Some(a) = sdp.connection_for(m).and_then(|c| c.ip()) {
                address = a;
            }
        }
        if let Some(n) = sdp.origin().session_id_number() {
            id = n;
        }
    }
    LocalMedia::new(address, port, id).with_codecs(vec![Codec::pcmu(), Codec::pcma()])
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sipc: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&args.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("sipc: --log {}: {e}\n{USAGE}", args.log);
            return ExitCode::from(2);
        }
    };
    // A log written to a file or a pipe gets no colour codes.
    let log = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter);
    // One line per message on stdout (register prints its own, one per REGISTER).
    let wire_level = if args.verbose && args.command == "call" {
        tracing::Level::TRACE
    } else {
        tracing::Level::INFO
    };
    let wire = (args.command != "register").then(|| {
        WirePrinter {
            verbose: args.verbose,
        }
        .with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("sip_driver_tokio::wire", wire_level),
        )
    });
    tracing_subscriber::registry().with(log).with(wire).init();
    // Requests go to the outbound proxy when there is one, else to the URI's host.
    let dest = match hop_of(args.proxy.as_deref().unwrap_or(&args.uri), args.transport) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sipc: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // sips: means TLS on every hop (RFC 3261 section 26.2), the proxy's included.
    let dest = Dest {
        secure: dest.secure || hop_of(&args.uri, None).is_ok_and(|d| d.secure),
        ..dest
    };
    // Listen on `--bind`, else on the address the system sends from toward the target (for
    // a name: toward the nameserver), with the transport used only: the Via and the
    // Contact name the address and port that receive (with `;transport=tcp` over TCP).
    let toward = dest
        .addr
        .or(args.dns)
        .or_else(|| {
            sip_driver_sys::dns::system_nameservers()
                .ok()?
                .first()
                .copied()
        })
        .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 53)));
    let bind = args
        .bind
        .unwrap_or_else(|| SocketAddr::new(local_ip_toward(toward), 0));
    if dest.addr.is_some_and(|a| a.is_ipv4() != bind.is_ipv4()) {
        eprintln!(
            "sipc: --bind {bind} and {} are not of one address family\n{USAGE}",
            toward
        );
        return ExitCode::from(2);
    }
    let options = match driver_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sipc: {e}");
            return ExitCode::FAILURE;
        }
    };
    let specs = listen_specs(&dest, bind, args.cert.is_some());
    let config = sip_core::Config {
        failover_timeout: args.failover_timeout,
        ..sip_core::Config::default()
    };
    let driver = match Driver::bind_with_options(specs, config, options).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sipc: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The session layer: Contact sip:sipc@ADDR:PORT of the listener (;transport=tcp over
    // TCP), 100rel and session timers as asked. sipc takes no calls: a new INVITE goes to
    // `answer_strays`.
    let mut sessions = SessionConfig::new("sipc");
    sessions.timers = driver.config().timers;
    sessions.user_agent = Some("sipc".into());
    sessions.rel100 = if args.rel100 {
        Rel100::Required
    } else {
        Rel100::Supported
    };
    sessions.session_timer = args.session_expires.map(|expires| SessionTimer {
        expires,
        min_se: expires.min(90),
    });
    let (client, incoming, calls) = driver.start_with_calls(sessions);
    drop(calls);
    let local = local_listener(&client, &dest);
    let result = run(&args, &client, incoming, &dest, local).await;
    // Why a TLS connection failed, when one did: the request only saw a transport error.
    let tls_failure = client.driver_stats().last_tls_failure;
    client.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Interrupted) => ExitCode::from(130),
        Err(Fail::Error(e)) => {
            if let Some(why) = tls_failure {
                eprintln!("sipc: error: {why}");
            }
            eprintln!("sipc: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The listeners for `dest`: its transport's on `bind` (TLS: a TLS listener with `--cert`,
/// else a TCP one, since sipc needs no certificate to call a TLS server); for a name whose
/// transport DNS chooses, UDP and TCP (and TLS with `--cert`), each on a free port.
fn listen_specs(dest: &Dest, bind: SocketAddr, cert: bool) -> Vec<ListenSpec> {
    let tls = if cert { Transport::Tls } else { Transport::Tcp };
    match dest.transport {
        Some(Transport::Tls) => vec![ListenSpec::new(tls, bind)],
        Some(t) => vec![ListenSpec::new(t, bind)],
        None => {
            let any = SocketAddr::new(bind.ip(), 0);
            let mut specs = vec![
                ListenSpec::new(Transport::Udp, bind),
                ListenSpec::new(Transport::Tcp, any),
            ];
            if cert {
                specs.push(ListenSpec::new(Transport::Tls, any));
            }
            specs
        }
    }
}

/// The listener sipc names in its From, Contact and SDP: the one of the transport used,
/// else the first.
fn local_listener(client: &Client, dest: &Dest) -> Local {
    let wanted = match dest.transport {
        Some(Transport::Tls) if client.local_addr(Transport::Tls).is_none() => Transport::Tcp,
        Some(t) => t,
        None => Transport::Udp,
    };
    match client.local_addr(wanted) {
        Some(addr) => Local {
            addr,
            transport: wanted,
        },
        None => {
            let l = &client.listeners()[0];
            Local {
                addr: l.addr,
                transport: l.transport,
            }
        }
    }
}

/// The TLS configurations of `--ca`, `--cert` and `--key`, and the nameserver of `--dns`.
fn driver_options(args: &Args) -> Result<DriverOptions, String> {
    let mut options = DriverOptions::default();
    if let Some(dns) = args.dns {
        options = options.with_nameservers(vec![dns]);
    }
    let server = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(server_config(cert, key).map_err(|e| e.to_string())?),
        _ => None,
    };
    // Without --ca or --cert the driver verifies against the system's roots, read only
    // when a TLS connection is first made.
    if server.is_some() || args.ca.is_some() {
        let client = client_config(args.ca.as_deref()).map_err(|e| e.to_string())?;
        options = options.with_tls(TlsConfig { server, client });
    }
    Ok(options)
}
