//! ICMP errors on UDP sockets, reported to the endpoint as unreachable destinations (RFC 3261
//! section 18.4; `sip_core::Endpoint::handle_unreachable`).
//!
//! A UDP socket that is not connected hears nothing of an ICMP port or host unreachable on
//! most systems, so a request to a closed port waits for timer F. On Linux and Android the
//! socket option `IP_RECVERR` (`IPV6_RECVERR`) queues each such error on the socket's
//! error queue with the destination of the datagram that caused it; the socket then polls
//! as in error, and `recvmsg(MSG_ERRQUEUE)` reads the queue. Elsewhere nothing is enabled
//! and nothing is read: the transactions end by their timers, as before. Send failures the
//! system reports at once (no route, refused by a local firewall) are portable and handled
//! by the driver itself ([`unreachable_send`]).

use std::io;

pub use imp::{drain, enable};

/// Is this failed `send_to` a verdict on the destination (so its transactions should end),
/// rather than a passing condition (a full buffer) or an older error surfacing?
pub fn unreachable_send(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::Unsupported
    )
}

/// A failed `send_to` that may report an earlier ICMP error rather than this datagram's
/// fate: with `IP_RECVERR`, Linux answers the next send on a socket with a pending error
/// (port, host or network unreachable, administratively prohibited, ...) with that error,
/// whatever the destination, and does not send the datagram. The caller drains the error
/// queue (which says which destination each error was about) and sends once more; only a
/// second failure is this destination's (see [`unreachable_send`]). Only a full buffer or
/// an interruption is surely not stale.
pub fn stale_error(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::io::{self, IoSliceMut};
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::{AsFd, AsRawFd};

    use nix::errno::Errno;
    use nix::libc;
    use nix::sys::socket::{
        recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
    };

    /// Most errors read from the queue in one call. The queue is bounded by the socket's
    /// receive buffer, and the drivers poll edge-triggered (an error left behind would wait
    /// for the next one), so this is only a guard: one call empties any real queue.
    const DRAIN_BUDGET: usize = 1 << 16;

    /// Asks the kernel to queue ICMP errors on `socket` (bound to an address of `local`'s
    /// family). Failure leaves the socket as it was: errors are then not reported.
    pub fn enable(socket: &impl AsFd, local: SocketAddr) -> io::Result<()> {
        if local.is_ipv6() {
            setsockopt(socket, sockopt::Ipv6RecvErr, &true)?;
            // Dual-stack sockets also carry IPv4 (mapped) traffic.
            let _ = setsockopt(socket, sockopt::Ipv4RecvErr, &true);
        } else {
            setsockopt(socket, sockopt::Ipv4RecvErr, &true)?;
        }
        Ok(())
    }

    /// Reads `socket`'s error queue and pushes onto `out` the destinations that an ICMP
    /// message said are unreachable (port, host or network unreachable; not "packet too
    /// big", which is about the size of one datagram). Never blocks.
    pub fn drain(socket: &impl AsFd, out: &mut Vec<SocketAddr>) {
        let fd = socket.as_fd().as_raw_fd();
        let mut data = [0u8; 64];
        let mut control = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
        for _ in 0..DRAIN_BUDGET {
            let mut iov = [IoSliceMut::new(&mut data)];
            let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
            let msg = match recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut control), flags) {
                Ok(msg) => msg,
                Err(Errno::EINTR) => continue,
                // EAGAIN: the queue is empty.
                Err(_) => return,
            };
            let errno = match msg.cmsgs() {
                Ok(mut cmsgs) => cmsgs.find_map(|c| match c {
                    ControlMessageOwned::Ipv4RecvErr(e, _) => Some(e),
                    ControlMessageOwned::Ipv6RecvErr(e, _) => Some(e),
                    _ => None,
                }),
                Err(_) => None,
            }
            .filter(|e| {
                e.ee_origin == libc::SO_EE_ORIGIN_ICMP || e.ee_origin == libc::SO_EE_ORIGIN_ICMP6
            })
            .map(|e| e.ee_errno as i32);
            let unreachable = matches!(
                errno,
                Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN)
            );
            let destination = msg.address.as_ref().and_then(|a| {
                if let Some(v4) = a.as_sockaddr_in() {
                    Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())))
                } else {
                    a.as_sockaddr_in6().map(|v6| {
                        let ip = v6.ip();
                        match ip.to_ipv4_mapped() {
                            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
                            None => SocketAddr::V6(SocketAddrV6::new(ip, v6.port(), 0, 0)),
                        }
                    })
                }
            });
            if let (true, Some(d)) = (unreachable, destination) {
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::io;
    use std::net::SocketAddr;

    /// Nothing to enable on this system: ICMP errors are not reported.
    pub fn enable<S>(_socket: &S, _local: SocketAddr) -> io::Result<()> {
        Ok(())
    }

    /// Nothing to read on this system.
    pub fn drain<S>(_socket: &S, _out: &mut Vec<SocketAddr>) {}
}
