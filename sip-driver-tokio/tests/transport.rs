//! The driver's transports against plain sockets on loopback, with a transaction user run
//! by `Driver::run`.

mod common;

use std::net::SocketAddr;

use common::{bounded, init_tracing, options, Answer200};
use sip_core::Transport;
use sip_driver_tokio::{Driver, Finished, ListenSpec, Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;

type Server = (
    SocketAddr,
    Shutdown,
    JoinHandle<Result<Finished<Answer200>, sip_driver_tokio::Error>>,
);

async fn server(spec: &str) -> Server {
    init_tracing();
    let spec: ListenSpec = spec.parse().unwrap();
    let driver = Driver::bind([spec]).await.unwrap();
    let addr = driver.local_addr(spec.transport).unwrap();
    assert_ne!(addr.port(), 0, "the real port is exposed");
    assert_eq!(driver.config().listeners.len(), 1);
    let stop = driver.shutdown_handle();
    let task = tokio::spawn(driver.run(Answer200::default()));
    (addr, stop, task)
}

async fn stop(
    stop: Shutdown,
    task: JoinHandle<Result<Finished<Answer200>, sip_driver_tokio::Error>>,
) -> Finished<Answer200> {
    stop.shutdown();
    bounded("shutdown", task).await.unwrap().unwrap()
}

/// Reads from a stream until `n` SIP responses (whole, by Content-Length 0) have arrived.
async fn read_responses(stream: &mut TcpStream, n: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got).matches("\r\n\r\n").count() < n {
        let k = stream.read(&mut buf).await.unwrap();
        assert!(k > 0, "connection closed early");
        got.extend_from_slice(&buf[..k]);
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test]
async fn udp_options_answered() {
    let (addr, stop_h, task) = server("udp:127.0.0.1:0").await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = peer.local_addr().unwrap();
    peer.send_to(options("UDP", me, addr, "u1").as_bytes(), addr)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, from) = bounded("UDP response", peer.recv_from(&mut buf))
        .await
        .unwrap();
    assert_eq!(from, addr, "the response leaves from the listening socket");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
    assert!(text.contains("Call-ID: u1\r\n"));
    let done = stop(stop_h, task).await;
    assert_eq!(done.tu.answered, 1);
    assert_eq!(done.stats.received, 1);
}

#[tokio::test]
async fn tcp_options_answered() {
    let (addr, stop_h, task) = server("tcp:127.0.0.1:0").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let me = stream.local_addr().unwrap();
    stream
        .write_all(options("TCP", me, addr, "t1").as_bytes())
        .await
        .unwrap();
    let text = bounded("TCP response", read_responses(&mut stream, 1)).await;
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
    assert!(text.contains("Call-ID: t1\r\n"));
    stop(stop_h, task).await;
}

#[tokio::test]
async fn tcp_two_messages_in_one_write_both_answered() {
    let (addr, stop_h, task) = server("tcp:127.0.0.1:0").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let me = stream.local_addr().unwrap();
    let both = options("TCP", me, addr, "m1") + &options("TCP", me, addr, "m2");
    stream.write_all(both.as_bytes()).await.unwrap();
    let text = bounded("two TCP responses", read_responses(&mut stream, 2)).await;
    assert_eq!(text.matches("SIP/2.0 200 OK\r\n").count(), 2, "{text}");
    assert!(text.contains("Call-ID: m1\r\n") && text.contains("Call-ID: m2\r\n"));
    let done = stop(stop_h, task).await;
    assert_eq!(done.tu.answered, 2);
}

#[tokio::test]
async fn tcp_message_split_across_writes() {
    let (addr, stop_h, task) = server("tcp:127.0.0.1:0").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let me = stream.local_addr().unwrap();
    let msg = options("TCP", me, addr, "s1");
    let (a, b) = msg.as_bytes().split_at(40);
    stream.write_all(a).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    stream.write_all(b).await.unwrap();
    let text = bounded("TCP response", read_responses(&mut stream, 1)).await;
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
    stop(stop_h, task).await;
}

// RFC 3261 section 18.3: messages of any size up to the limit arrive whole although a
// connection's reads start at 4 KiB and grow only while a message needs it.
#[tokio::test]
async fn tcp_large_and_small_messages_pass_through_the_growing_read_buffer() {
    let (addr, stop_h, task) = server("tcp:127.0.0.1:0").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let me = stream.local_addr().unwrap();
    let body = "x".repeat(60_000);
    for (i, size) in [60_000, 10, 60_000, 0].into_iter().enumerate() {
        let msg = options("TCP", me, addr, &format!("g{i}")).replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {size}\r\n\r\n{}", &body[..size]),
        );
        stream.write_all(msg.as_bytes()).await.unwrap();
        let text = bounded("TCP response", read_responses(&mut stream, 1)).await;
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(text.contains(&format!("Call-ID: g{i}\r\n")));
    }
    let done = stop(stop_h, task).await;
    assert_eq!(done.tu.answered, 4);
}

#[tokio::test]
async fn tcp_ping_gets_pong() {
    let (addr, stop_h, task) = server("tcp:127.0.0.1:0").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 2];
    bounded("pong", stream.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"\r\n");
    let done = stop(stop_h, task).await;
    assert_eq!(done.stats.pongs, 1);
}

#[tokio::test]
async fn tcp_peer_close_is_reported() {
    let (addr, stop_h, task) = server("tcp:127.0.0.1:0").await;
    for i in 0..3 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let me = stream.local_addr().unwrap();
        stream
            .write_all(options("TCP", me, addr, &format!("c{i}")).as_bytes())
            .await
            .unwrap();
        bounded("TCP response", read_responses(&mut stream, 1)).await;
        drop(stream);
    }
    // The closes reach the endpoint: a last connection finds itself the only flow.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let me = stream.local_addr().unwrap();
    stream
        .write_all(options("TCP", me, addr, "last").as_bytes())
        .await
        .unwrap();
    bounded("TCP response", read_responses(&mut stream, 1)).await;
    let done = stop(stop_h, task).await;
    assert_eq!(done.tu.answered, 4);
    assert_eq!(done.tu.flows_at_last_request, 1);
}

#[tokio::test]
async fn ipv6_udp_options_answered() {
    init_tracing();
    let probe = match std::net::UdpSocket::bind("[::1]:0") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping ipv6_udp_options_answered: [::1] unavailable ({e})");
            return;
        }
    };
    drop(probe);
    let (addr, stop_h, task) = server("udp:[::1]:0").await;
    assert!(addr.is_ipv6());
    let peer = UdpSocket::bind("[::1]:0").await.unwrap();
    let me = peer.local_addr().unwrap();
    peer.send_to(options("UDP", me, addr, "v6").as_bytes(), addr)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = bounded("UDP response over IPv6", peer.recv_from(&mut buf))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
    stop(stop_h, task).await;
}

#[tokio::test]
async fn many_listeners_at_once() {
    init_tracing();
    let mut specs: Vec<ListenSpec> = vec![
        "udp:127.0.0.1:0".parse().unwrap(),
        "tcp:127.0.0.1:0".parse().unwrap(),
        "udp:127.0.0.2:0".parse().unwrap(),
    ];
    let v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    if v6 {
        specs.push("tcp:[::1]:0".parse().unwrap());
    }
    let driver = Driver::bind(specs.clone()).await.unwrap();
    let listeners = driver.listeners().to_vec();
    assert_eq!(listeners.len(), specs.len());
    assert!(listeners.iter().all(|l| l.addr.port() != 0));
    let stop_h = driver.shutdown_handle();
    let task = tokio::spawn(driver.run(Answer200::default()));
    for l in &listeners {
        match l.transport {
            Transport::Udp => {
                let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let me = peer.local_addr().unwrap();
                peer.send_to(options("UDP", me, l.addr, "x").as_bytes(), l.addr)
                    .await
                    .unwrap();
                let mut buf = vec![0u8; 65535];
                // The answer comes from the listener asked. (A late datagram of another test,
                // sent to the port this socket now reuses, is not the answer: skip it.)
                let n = loop {
                    let (n, from) = bounded("UDP response", peer.recv_from(&mut buf))
                        .await
                        .unwrap();
                    if from == l.addr {
                        break n;
                    }
                    assert!(
                        !listeners.iter().any(|o| o.addr == from),
                        "answered from listener {from}, asked {}",
                        l.addr
                    );
                };
                assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
            }
            _ => {
                let mut stream = TcpStream::connect(l.addr).await.unwrap();
                let me = stream.local_addr().unwrap();
                stream
                    .write_all(options("TCP", me, l.addr, "y").as_bytes())
                    .await
                    .unwrap();
                let text = bounded("TCP response", read_responses(&mut stream, 1)).await;
                assert!(text.starts_with("SIP/2.0 200 OK"));
            }
        }
    }
    let done = stop(stop_h, task).await;
    assert_eq!(done.tu.answered, listeners.len());
}

#[tokio::test]
async fn bind_conflict_is_an_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let spec = ListenSpec::udp(taken.local_addr().unwrap());
    match Driver::bind([spec]).await {
        Err(sip_driver_tokio::Error::Bind { spec: s, .. }) => assert_eq!(s, spec),
        other => panic!("expected a bind error, got {other:?}"),
    }
    assert!(matches!(
        Driver::bind([]).await,
        Err(sip_driver_tokio::Error::NoListeners)
    ));
}

#[tokio::test]
async fn idle_connection_is_closed_by_the_driver() {
    init_tracing();
    let config = sip_core::Config {
        flow_idle_timeout: std::time::Duration::from_millis(100),
        ..sip_core::Config::default()
    };
    let driver = Driver::bind_with_config(["tcp:127.0.0.1:0".parse().unwrap()], config)
        .await
        .unwrap();
    let addr = driver.local_addr(Transport::Tcp).unwrap();
    let stop_h = driver.shutdown_handle();
    let task = tokio::spawn(driver.run(Answer200::default()));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let me = stream.local_addr().unwrap();
    stream
        .write_all(options("TCP", me, addr, "idle").as_bytes())
        .await
        .unwrap();
    bounded("TCP response", read_responses(&mut stream, 1)).await;
    // IoRequest::Close once idle: the peer reads end of stream.
    let mut buf = [0u8; 64];
    let n = bounded("idle close", stream.read(&mut buf)).await.unwrap();
    assert_eq!(n, 0, "expected end of stream");
    stop(stop_h, task).await;
}

#[tokio::test]
async fn unframeable_stream_is_closed() {
    let (addr, stop_h, task) = server("tcp:127.0.0.1:0").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // A request without Content-Length cannot be framed on a stream.
    stream
        .write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKq\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match bounded("close", stream.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    let done = stop(stop_h, task).await;
    assert_eq!(done.stats.malformed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_peers_on_a_multi_thread_runtime() {
    let (udp, stop_u, task_u) = server("udp:127.0.0.1:0").await;
    let (tcp, stop_t, task_t) = server("tcp:127.0.0.1:0").await;
    let mut peers = Vec::new();
    for i in 0..50 {
        peers.push(tokio::spawn(async move {
            let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let me = peer.local_addr().unwrap();
            peer.send_to(options("UDP", me, udp, &format!("pu{i}")).as_bytes(), udp)
                .await
                .unwrap();
            let mut buf = vec![0u8; 65535];
            let (n, _) = peer.recv_from(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
        }));
        peers.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(tcp).await.unwrap();
            let me = stream.local_addr().unwrap();
            let msgs: String = (0..5)
                .map(|k| options("TCP", me, tcp, &format!("pt{i}-{k}")))
                .collect();
            stream.write_all(msgs.as_bytes()).await.unwrap();
            let text = read_responses(&mut stream, 5).await;
            assert_eq!(text.matches("SIP/2.0 200 OK").count(), 5);
        }));
    }
    for p in peers {
        bounded("peer", p).await.unwrap();
    }
    assert_eq!(stop(stop_u, task_u).await.tu.answered, 50);
    assert_eq!(stop(stop_t, task_t).await.tu.answered, 250);
}

#[tokio::test]
async fn bytes_queued_before_a_close_are_written_first() {
    // RFC 5626 3.5.1 and RFC 3261 18.3: a ping is answered with a pong; the unframeable
    // request after it closes the connection. Both arrive in one read, so the endpoint
    // queues the pong, then the Close: the driver writes the one before doing the other.
    let (addr, stop_h, task) = server("tcp:127.0.0.1:0").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"\r\n\r\nOPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKq\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    bounded("close", stream.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"\r\n", "the pong, then the end of the stream");
    let done = stop(stop_h, task).await;
    assert_eq!(done.stats.malformed, 1);
}

#[tokio::test]
async fn a_peer_that_never_reads_is_closed_before_its_responses_pile_up() {
    // RFC 3261 18.3 leaves flow control to TCP; a peer that sends requests and never reads
    // the responses (each copies the request's Vias, section 8.2.6.2) must not make the
    // driver hold them without bound: its connection is closed once about 1 MiB waits, as
    // on the mio driver (it used to take 1,024 messages of any size, up to 64 MiB).
    let (addr, stop_h, task) = server("tcp:127.0.0.1:0").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = bounded("connect", socket.connect(addr)).await.unwrap();
    let me = stream.local_addr().unwrap();
    // Three long Vias make each 200 about 45 KB: 300 of them are 13.5 MB, beyond the kernel's
    // socket buffers and 1 MiB, and fewer than 1,024 messages.
    const N: usize = 300;
    let pad = "v".repeat(15_000);
    let vias = format!("\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKp;x={pad}").repeat(3);
    for i in 0..N {
        let request = options("TCP", me, addr, &format!("w{i}")).replacen(
            "\r\nFrom:",
            &format!("{vias}\r\nFrom:"),
            1,
        );
        if bounded("write", stream.write_all(request.as_bytes()))
            .await
            .is_err()
        {
            break;
        }
    }
    // Now read: the responses written before the close, then the end of the stream.
    let needle = b"SIP/2.0 200 OK";
    let (mut answered, mut tail) = (0usize, Vec::new());
    let mut buf = vec![0u8; 65536];
    while answered < N {
        match bounded("read", stream.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                tail.extend_from_slice(&buf[..k]);
                answered += tail.windows(needle.len()).filter(|w| w == needle).count();
                tail.drain(..tail.len().saturating_sub(needle.len() - 1));
            }
        }
    }
    assert!(
        answered < N,
        "all {N} responses of about 45 KB were kept for a peer that did not read"
    );
    stop(stop_h, task).await;
}
