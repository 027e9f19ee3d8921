//! The RFC 4475 and RFC 5118 torture messages sent over real UDP and TCP sockets to the UAS
//! core on the mio driver: whatever arrives, the server stays up and keeps answering, every
//! answer it gives is a well-formed SIP response, and it never answers a response or an ACK
//! (RFC 3261 sections 8.2, 17.2.3, 18.3; RFC 4475 section 1: an element must not crash).
//! The corpora are third-party data read from `$SIP_TORTURE_DIR` (default
//! `../shared/corpus`); the test skips loudly without them unless `SIP_REQUIRE_TORTURE=1`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sip_core::ua::{UaConfig, UserAgent};
use sip_core::{Config, Message};
use sip_driver_mio::{Driver, ListenSpec};

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var("SIP_TORTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
        });
    if dir.join("rfc4475/MANIFEST.tsv").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("SIP_REQUIRE_TORTURE").as_deref() != Ok("1"),
        "torture corpus missing at {} and SIP_REQUIRE_TORTURE=1",
        dir.display()
    );
    eprintln!(
        "SKIPPED: torture corpus not found at {} (set SIP_TORTURE_DIR)",
        dir.display()
    );
    None
}

/// Every message of both corpora, CRLF line ends for RFC 5118's LF files.
fn messages(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["rfc4475", "rfc5118"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                p.is_file()
                    && !name.ends_with(".tsv")
                    && !name.ends_with(".txt")
                    && name != "SHA256SUMS"
            })
            .collect();
        files.sort();
        for f in files {
            let mut bytes = std::fs::read(&f).unwrap();
            if sub == "rfc5118" && !bytes.windows(2).any(|w| w == b"\r\n") {
                let mut crlf = Vec::with_capacity(bytes.len() + 64);
                for &b in &bytes {
                    if b == b'\n' {
                        crlf.push(b'\r');
                    }
                    crlf.push(b);
                }
                bytes = crlf;
            }
            out.push((
                format!("{sub}/{}", f.file_name().unwrap().to_string_lossy()),
                bytes,
            ));
        }
    }
    out
}

fn options(server: SocketAddr, me: SocketAddr, n: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p{n}\r\nTo: <sip:{server}>\r\n\
         Call-ID: probe{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Reads datagrams until `deadline`; returns them.
fn drain(sock: &UdpSocket, deadline: Instant) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65535];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    got
}

#[test]
fn rfc4475_every_torture_message_over_udp_and_tcp_leaves_the_server_answering() {
    let Some(dir) = corpus_dir() else {
        return;
    };
    let corpus = messages(&dir);
    assert!(
        corpus.len() >= 60,
        "both corpora: {} messages",
        corpus.len()
    );
    let specs: Vec<ListenSpec> = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let mut driver = Driver::bind(&specs, Config::default()).unwrap();
    let udp = driver.local_addrs()[0].addr;
    let tcp = driver.local_addrs()[1].addr;
    let shutdown = driver.shutdown_handle();
    let contact = format!("<sip:sipd@{udp}>");
    let thread = std::thread::spawn(move || {
        let mut ua = UserAgent::new(UaConfig::new(&contact), [8; 32]);
        driver.run_for(&mut ua, Duration::from_secs(60)).unwrap()
    });
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(udp).unwrap();
    let me = sock.local_addr().unwrap();
    // Every answer comes back to this socket, the request's source (RFC 3581 section 4 under
    // the default response policy), retransmitted 2xx included: a datagram seen before is
    // the retransmission of an earlier answer, not an answer to the current message.
    let mut seen = std::collections::HashSet::new();
    for (i, (name, bytes)) in corpus.iter().enumerate() {
        sock.send(bytes).unwrap();
        // Over TCP too: a fresh connection per message, as a stream.
        if let Ok(mut s) = TcpStream::connect(tcp) {
            let _ = s.write_all(bytes);
            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            let mut sink = [0u8; 4096];
            let _ = s.read(&mut sink);
        }
        let answers = drain(&sock, Instant::now() + Duration::from_millis(30));
        for a in answers.iter().filter(|a| seen.insert(a.to_vec())) {
            // Every answer is a well-formed response, never a request and never an answer
            // to a response or an ACK.
            let m = Message::parse(a).unwrap_or_else(|e| panic!("{name}: unparsable answer: {e}"));
            assert!(!m.is_request(), "{name}: the server sent a request");
            assert!(
                !bytes.starts_with(b"SIP/") && !bytes.starts_with(b"ACK "),
                "{name}: a response or ACK was answered: {}",
                String::from_utf8_lossy(a).lines().next().unwrap_or("")
            );
        }
        // Still alive and answering.
        sock.send(&options(udp, me, i)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut alive = false;
        let mut buf = vec![0u8; 65535];
        while Instant::now() < deadline && !alive {
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            if let Ok(n) = sock.recv(&mut buf) {
                seen.insert(buf[..n].to_vec());
                alive = buf[..n].starts_with(b"SIP/2.0 200")
                    && String::from_utf8_lossy(&buf[..n]).contains(&format!("probe{i}"));
            }
        }
        assert!(alive, "the server stopped answering after {name}");
    }
    shutdown.shutdown();
    let summary = thread.join().unwrap();
    eprintln!("{summary}");
}
