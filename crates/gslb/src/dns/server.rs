//! Binding the DNS sockets: the UDP sockets of [`super::udp`] and the TCP
//! listener of [`super::tcp`] on one address and port. Transports move
//! bytes between sockets and [`super::Handler::handle_into`]; every
//! protocol decision lives in the handler.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Binds `udp_workers` UDP sockets (see [`super::udp`]) and one TCP
/// listener on `addr`.
pub fn bind(
    addr: SocketAddr,
    udp_workers: usize,
) -> std::io::Result<(Vec<std::net::UdpSocket>, TcpListener)> {
    // Port 0 asks for any port, and TCP must then take the one UDP got; that
    // TCP port may be in use already, so try a few UDP ports.
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = super::udp::bind_reuseport(addr, udp_workers)?;
        match tcp_listener(udp[0].local_addr()?) {
            Ok(tcp) => return Ok((udp, TcpListener::from_std(tcp)?)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port free for both UDP and TCP")))
}

/// A non-blocking TCP listener on `addr` with room for [`TCP_BACKLOG`]
/// connections waiting to be accepted (the standard library's is 128:
/// a burst of clients past the connection limit would see SYNs dropped
/// and retried after a second).
fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(TCP_BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Connections the kernel holds for accepting.
const TCP_BACKLOG: i32 = 1024;
