//! What the driver keeps after connections end, measured by a counting allocator (this test
//! binary's own global allocator).

// A counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::{bounded, init_tracing, options, Answer200};
use sip_core::Transport;
use sip_driver_tokio::{Driver, ListenSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Live heap bytes of the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One whole connection: OPTIONS, its 200, then our end of the stream and the driver's.
async fn one_connection(addr: std::net::SocketAddr, n: usize) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let me = stream.local_addr().unwrap();
    stream
        .write_all(options("TCP", me, addr, &format!("c{n}")).as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let k = stream.read(&mut buf).await.unwrap();
        assert!(k > 0, "connection closed before the response");
        got.extend_from_slice(&buf[..k]);
    }
    stream.shutdown().await.unwrap();
    // The driver closes its side once it has seen ours and dropped the connection.
    while stream.read(&mut buf).await.unwrap_or(0) > 0 {}
}

#[tokio::test]
async fn ended_connections_leave_nothing_behind() {
    // RFC 3261 18.3 lets either side close an idle connection; a driver that runs for
    // months sees millions of them, so what one leaves behind must be nothing (the
    // connection tasks' memory stayed in the driver's task set until shutdown, about 2 KB
    // each).
    init_tracing();
    let spec: ListenSpec = "tcp:127.0.0.1:0".parse().unwrap();
    let driver = Driver::bind([spec]).await.unwrap();
    let addr = driver.local_addr(Transport::Tcp).unwrap();
    let stop = driver.shutdown_handle();
    let task = tokio::spawn(driver.run(Answer200::default()));
    // Warm up: tables and buffers reach their steady size.
    for n in 0..200 {
        bounded("warm-up connection", one_connection(addr, n)).await;
    }
    let before = LIVE.load(Ordering::Relaxed);
    const N: usize = 2000;
    for n in 0..N {
        bounded("connection", one_connection(addr, 1000 + n)).await;
    }
    // One more, so that the driver has run its loop after the last of them ended.
    bounded("last connection", one_connection(addr, 9999)).await;
    let grown = LIVE.load(Ordering::Relaxed) - before;
    eprintln!("{N} ended connections: {grown} bytes more on the heap");
    assert!(
        grown < (N * 200) as isize,
        "{N} ended connections left {grown} bytes behind ({} each)",
        grown / N as isize
    );
    stop.shutdown();
    let done = bounded("shutdown", task).await.unwrap().unwrap();
    assert_eq!(done.tu.answered, 200 + N + 1);
}
