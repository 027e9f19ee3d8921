//! The registration client (`sip_core::registration`) as the driver's transaction user,
//! against a tiny registrar on a loopback UDP socket. Bounded: deadlines and read timeouts
//! only; no assertion on how long anything took.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sip_core::registration::{
    Registration, RegistrationConfig, RegistrationEvent, RegistrationState, RegistrationUser,
};
use sip_core::{Config, HeaderName, OwnedMessage, ResponseBuilder, SeededRng, Target, Transport};
use sip_driver_mio::{os_seed, Driver, ListenSpec};

/// What the registrar saw of each REGISTER: CSeq number, Call-ID, Contact, Expires.
#[derive(Debug, Clone)]
struct Seen {
    cseq: u32,
    call_id: String,
    contact: String,
    expires: String,
}

/// A registrar granting `granted` seconds to whatever Contact it is sent, until it sees a
/// removal (expires 0) or `until`. Reports each REGISTER on `seen`.
fn registrar(socket: UdpSocket, granted: u32, until: Instant, seen: mpsc::Sender<Seen>) {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut rng = SeededRng::new([5; 32]);
    let mut buf = vec![0u8; 65535];
    while Instant::now() < until {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(request) = OwnedMessage::parse(&buf[..n]) else {
            continue;
        };
        let view = request.view();
        let h = |name| view.header(name).unwrap_or("").trim().to_owned();
        let s = Seen {
            cseq: h(HeaderName::CSeq)
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            call_id: h(HeaderName::CallId),
            contact: h(HeaderName::Contact),
            expires: h(HeaderName::Expires),
        };
        let removal = s.expires == "0";
        let contact = if removal {
            s.contact.clone()
        } else {
            format!("{};expires={granted}", s.contact)
        };
        let ok = ResponseBuilder::from_view(&view, 200)
            .header("Contact", &contact)
            .build(&mut rng)
            .unwrap();
        socket.send_to(ok.as_bytes(), from).unwrap();
        let _ = seen.send(s);
        if removal {
            return;
        }
    }
}

#[test]
// RFC 3261 10.2.4 and 10.2.2, on the mio driver
fn registration_user_refreshes_at_the_granted_expiry_and_removes_the_binding() {
    let deadline = Instant::now() + Duration::from_secs(30);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let registrar_addr: SocketAddr = socket.local_addr().unwrap();
    let (seen_tx, seen) = mpsc::channel();
    // Asked 3600 s, granted 2 s: refreshed after 1 s (half of the grant), not after an hour.
    let thread = std::thread::spawn(move || registrar(socket, 2, deadline, seen_tx));

    let spec: ListenSpec = "udp:127.0.0.1:0".parse().unwrap();
    let mut driver = Driver::bind(&[spec], Config::default()).unwrap();
    let me = driver.local_addr(Transport::Udp).unwrap();
    let config = RegistrationConfig::new(
        &format!("sip:{registrar_addr}"),
        "sip:alice@example.com",
        &format!("<sip:alice@{me}>"),
    );
    let registration =
        Registration::new(Instant::now(), config, SeededRng::new(os_seed().unwrap())).unwrap();
    let mut tu = RegistrationUser::new(registration, Target::udp(registrar_addr));

    // Run until the registrar has seen the first REGISTER and a refresh.
    let mut events = Vec::new();
    let mut registered = 0;
    while registered < 2 && Instant::now() < deadline {
        driver.run_for(&mut tu, Duration::from_millis(100)).unwrap();
        while let Some(e) = tu.registration_mut().poll_event() {
            if matches!(
                e,
                RegistrationEvent::State(RegistrationState::Registered { .. })
            ) {
                registered += 1;
            }
            events.push(e);
        }
    }
    assert_eq!(registered, 2, "registered, then refreshed: {events:?}");

    // Remove the binding, and run until that is done.
    tu.stop(Instant::now(), driver.endpoint_mut());
    while !tu.registration().is_unregistered() && Instant::now() < deadline {
        driver.run_for(&mut tu, Duration::from_millis(100)).unwrap();
    }
    assert_eq!(
        tu.registration().state(),
        &RegistrationState::Unregistered { failure: None }
    );
    thread.join().unwrap();

    let seen: Vec<Seen> = seen.try_iter().collect();
    // REGISTER, refresh (another one if the machine stalled a second), removal.
    assert!(seen.len() >= 3, "REGISTER, refresh, removal: {seen:?}");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.call_id, seen[0].call_id, "one Call-ID (10.2.4)");
        assert_eq!(
            s.cseq,
            seen[0].cseq + i as u32,
            "CSeq + 1 each time (10.2.4)"
        );
    }
    assert_eq!(seen[0].expires, "3600");
    let removal = &seen[seen.len() - 1];
    assert_eq!(removal.expires, "0");
    assert!(removal.contact.ends_with(";expires=0"), "{removal:?}");
    assert!(seen[1..seen.len() - 1].iter().all(|s| s.expires == "3600"));
}
