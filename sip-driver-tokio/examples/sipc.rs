//! `sipc`: a SIP user agent client on the tokio driver's async `Client` API.
//!
//! ```text
//! sipc [--transport udp|tcp] [--log LEVEL] [-v] options URI
//! sipc [...] call URI [--hold DURATION]      INVITE, ACK, wait, BYE
//! sipc [...] message URI TEXT                MESSAGE with a text/plain body
//! sipc [...] register REGISTRAR_URI --aor URI [--expires SECS] [--for DURATION]
//! ```
//!
//! The URI's host must be an IP address (no DNS): `sip:127.0.0.1:5060`,
//! `sip:bob@[::1]:5060;transport=tcp`. Prints each response's status line (`-v`: the whole
//! message); exits 0 when the final responses are 2xx, 1 otherwise. With `--user` and
//! `--password`, 401 and 407 challenges are answered (RFC 3261 section 22.2). `register`
//! keeps a registration (the driver's `Client::register`) for DURATION, refreshing it, then
//! removes it; it exits 0 only when every REGISTER got a 2xx (after challenges). Logs go to stderr (level
//! `warn` unless `--log` or RUST_LOG says otherwise; `info` adds a line per message), in
//! colour only when stderr is a terminal. Like both `sipd`s: `--help` prints the help on
//! stdout and exits 0; a usage error prints the usage on stderr and exits 2.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use sip_core::auth::DigestClient;
use sip_core::message::{Contact, SipUri};
use sip_core::registration::{RegistrationConfig, RegistrationEvent, RegistrationState};
use sip_core::{
    HeaderName, Method, OwnedMessage, RequestBuilder, Rng, SeededRng, Target, Transport,
};
use sip_driver_tokio::{Client, Driver, Incoming, ListenSpec, Responses};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

const USAGE: &str =
    "usage: sipc [--transport udp|tcp] [--bind ADDR] [--proxy URI] [--log LEVEL] [-v] \
    [--user NAME --password SECRET] (options URI | call URI [--hold DURATION] | \
    message URI TEXT | register REGISTRAR_URI --aor URI [--expires SECS] [--for DURATION])";

const HELP: &str =
    "sipc (tokio driver): sends one request, or a whole call, or keeps a registration, and
prints the responses.

usage: sipc [--transport udp|tcp] [--bind ADDR] [--proxy URI] [--log LEVEL] [-v]
            [--user NAME --password SECRET] options URI
       sipc [...] call URI [--hold DURATION]      INVITE, ACK, wait, BYE
       sipc [...] message URI TEXT                MESSAGE with a text/plain body
       sipc [...] register REGISTRAR_URI --aor URI [--expires SECS] [--for DURATION]
                                                  REGISTER, refreshed for DURATION, then
                                                  removed (Contact expires=0)
  URI               sip:127.0.0.1:5060, sip:bob@[::1]:5060;transport=tcp (IP addresses only)
  --transport T     udp or tcp (default: the URI's transport parameter, else udp)
  --bind ADDR       the local address, IP or IP:PORT (default: the address the system
                    sends from toward the target, any free port); the Via and the
                    Contact name it
  --proxy URI       outbound proxy (IP address): every request goes to it, with a
                    preloaded Route <URI;lr>
  --hold DURATION   time between ACK and BYE: 2s, 500ms (default 2s)
  --user NAME       username for digest challenges (401, 407), with --password
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
Exits 0 when the final responses are 2xx (register: every REGISTER got a 2xx after any
challenge), 1 otherwise, 2 on a usage error.";

const OFFER: &[u8] = b"v=0\r\no=sipc 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

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
                    t => return Err(format!("--transport {t}: udp or tcp")),
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
                target_of(&v, None).map_err(|e| format!("--proxy {e}"))?;
                args.proxy = Some(v);
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
    if args.user.is_some() != args.password.is_some() {
        return Err("--user and --password go together".into());
    }
    Ok(Some(args))
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

/// Where the URI says to send: its IP address and port, and its transport parameter.
fn target_of(uri: &str, forced: Option<Transport>) -> Result<Target, String> {
    let sip = SipUri::parse(uri).ok_or(format!("{uri}: not a sip: URI"))?;
    if sip.secure {
        return Err(format!("{uri}: sips is not supported"));
    }
    let ip: IpAddr = sip
        .host
        .ip()
        .ok_or(format!("{uri}: the host must be an IP address"))?;
    let port = sip.port.unwrap_or(5060);
    let from_uri = sip
        .transport()
        .and_then(Transport::from_via_token)
        .unwrap_or(Transport::Udp);
    Ok(Target {
        transport: forced.unwrap_or(from_uri),
        addr: SocketAddr::new(ip, port),
    })
}

/// Prints one line per message on the wire (stdout), from the driver's per-message
/// `tracing` events (target `sip_driver_tokio::wire`): `-> METHOD` for each request sent,
/// `<- CODE Reason` for each response received, and likewise `<- METHOD` and `-> CODE
/// Reason` for requests received and responses sent. Retransmissions show as they happen.
struct WirePrinter;

/// The fields of one wire event that the printer reads.
#[derive(Default)]
struct WireFields {
    /// "sent INVITE", "recv 200", ...
    message: String,
    reason: Option<String>,
}

impl tracing::field::Visit for WireFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "reason" {
            self.reason = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "reason" => self.reason = Some(format!("{value:?}").trim_matches('"').to_owned()),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WirePrinter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = WireFields::default();
        event.record(&mut f);
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
    target: Target,
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
            .request(request.clone(), target)
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

fn header(m: &OwnedMessage, name: HeaderName) -> String {
    m.view().header(name).unwrap_or("").to_owned()
}

/// The remote target of the dialog: the 2xx's Contact URI (RFC 3261 section 12.1.2).
fn remote_target(ok: &OwnedMessage, fallback: &str) -> String {
    ok.message()
        .ok()
        .and_then(|m| match m.contacts().next() {
            Some(Contact::Addr(a)) => Some(a.uri.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| fallback.to_owned())
}

/// `register`: keeps a registration for `--for`, then removes it. Fails unless every
/// REGISTER got a 2xx (after answering challenges).
async fn register(
    args: &Args,
    client: &Client,
    target: Target,
    local: SocketAddr,
) -> Result<(), String> {
    let aor = args.aor.as_deref().ok_or("register needs --aor URI")?;
    let user = args.user.as_deref().unwrap_or("sipc");
    let contact = match target.transport {
        Transport::Tcp => format!("<sip:{user}@{local};transport=tcp>"),
        _ => format!("<sip:{user}@{local}>"),
    };
    let mut config = RegistrationConfig::new(&args.uri, aor, &contact).with_expires(args.expires);
    if let (Some(u), Some(p)) = (&args.user, &args.password) {
        config = config.with_credentials(u, p);
    }
    if let Some(proxy) = &args.proxy {
        config = config.with_header("Route", &proxy_route(proxy));
    }
    let mut reg = client.register(config, target).map_err(|e| e.to_string())?;
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

async fn run(
    args: &Args,
    client: &Client,
    _incoming: Incoming,
    target: Target,
    local: SocketAddr,
) -> Result<(), String> {
    if args.command == "register" {
        return register(args, client, target, local).await;
    }
    let mut rng = SeededRng::new(
        sip_driver_tokio::os_seed().map_err(|e| format!("cannot read a seed: {e}"))?,
    );
    let from = format!("<sip:sipc@{local}>");
    let contact = match target.transport {
        Transport::Tcp => format!("<sip:sipc@{local};transport=tcp>"),
        _ => format!("<sip:sipc@{local}>"),
    };
    let to = format!("<{}>", args.uri);
    let method = match args.command.as_str() {
        "options" => Method::Options,
        "message" => Method::Message,
        _ => Method::Invite,
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
        Method::Invite => b.contact(&contact).body("application/sdp", OFFER),
        _ => b.header("Accept", "application/sdp"),
    };
    let request = b.build(&mut rng).map_err(|e| e.to_string())?;
    let mut digest = match (&args.user, &args.password) {
        (Some(u), Some(p)) => Some(DigestClient::new(u, p)),
        _ => None,
    };
    let (request, last) =
        send(client, request, target, &mut digest, &mut rng, args.verbose).await?;
    if !is_2xx(&last) {
        return Err(format!("{} failed", method.as_str()));
    }
    if method != Method::Invite {
        return Ok(());
    }
    // The dialog: ACK the 2xx, hold, then BYE.
    let uri = remote_target(&last, &args.uri);
    // The INVITE that got the 2xx: after a challenge its CSeq is not the first one.
    let cseq = request
        .message()
        .ok()
        .and_then(|m| m.cseq().map(|c| c.seq))
        .unwrap_or(cseq);
    let (from, to, call_id) = (
        header(&request, HeaderName::From),
        header(&last, HeaderName::To),
        header(&request, HeaderName::CallId),
    );
    let mut ack = RequestBuilder::new(Method::Ack, &uri)
        .from(&from)
        .to(&to)
        .call_id(&call_id)
        .cseq(cseq);
    // Section 13.2.2.4: the ACK carries the same credentials as the INVITE.
    let view = request.view();
    for (name, h) in [
        ("Authorization", HeaderName::Authorization),
        ("Proxy-Authorization", HeaderName::ProxyAuthorization),
    ] {
        for value in view.header_all(h) {
            ack = ack.header(name, value);
        }
    }
    let ack = ack.build(&mut rng).map_err(|e| e.to_string())?;
    client.ack(ack, target).await.map_err(|e| e.to_string())?;
    println!("   holding for {:?}", args.hold);
    tokio::select! {
        _ = tokio::time::sleep(args.hold) => {}
        _ = tokio::signal::ctrl_c() => println!("   interrupted"),
    }
    let bye = RequestBuilder::new(Method::Bye, &uri)
        .from(&from)
        .to(&to)
        .call_id(&call_id)
        .cseq(cseq + 1)
        .build(&mut rng)
        .map_err(|e| e.to_string())?;
    let (_, last) = send(client, bye, target, &mut digest, &mut rng, args.verbose).await?;
    if is_2xx(&last) {
        Ok(())
    } else {
        Err("BYE failed".into())
    }
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
    let wire = (args.command != "register").then(|| {
        WirePrinter.with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("sip_driver_tokio::wire", tracing::Level::INFO),
        )
    });
    tracing_subscriber::registry().with(log).with(wire).init();
    // Requests go to the outbound proxy when there is one, else to the URI's address.
    let target = match target_of(args.proxy.as_deref().unwrap_or(&args.uri), args.transport) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sipc: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Listen on `--bind`, else on the address the system sends from toward the target, with
    // the transport used only: the Via and the Contact name the address and port that
    // receive (with `;transport=tcp` over TCP).
    let bind = args
        .bind
        .unwrap_or_else(|| SocketAddr::new(local_ip_toward(target.addr), 0));
    if bind.is_ipv4() != target.addr.is_ipv4() {
        eprintln!(
            "sipc: --bind {bind} and {} are not of one address family\n{USAGE}",
            target.addr
        );
        return ExitCode::from(2);
    }
    let (client, incoming) = match Driver::bind([ListenSpec::new(target.transport, bind)]).await {
        Ok(d) => d.start(),
        Err(e) => {
            eprintln!("sipc: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = client.local_addr(target.transport).expect("bound");
    let result = run(&args, &client, incoming, target, local).await;
    client.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipc: {e}");
            ExitCode::FAILURE
        }
    }
}
