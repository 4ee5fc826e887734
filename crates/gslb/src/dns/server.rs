//! Binding the DNS sockets, and the TCP transport. Transports move bytes
//! between sockets and [`Handler::handle_into`]; every protocol decision
//! lives in the handler. UDP is in [`super::udp`]. TCP takes
//! length-prefixed messages (RFC 1035 §4.2.2), answers them in order on each
//! connection, closes idle connections (RFC 7766 asks servers to time out
//! idle clients) and caps concurrent connections so a flood of idle
//! connections cannot exhaust the process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::handler::Handler;
use super::transport::Transport;

/// Idle time after which a TCP connection is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Concurrent TCP connections; more wait in the kernel's accept queue.
pub const TCP_MAX_CONNECTIONS: usize = 1024;

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
        match std::net::TcpListener::bind(udp[0].local_addr()?) {
            Ok(tcp) => {
                tcp.set_nonblocking(true)?;
                return Ok((udp, TcpListener::from_std(tcp)?));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port free for both UDP and TCP")))
}

/// Serves TCP until the task is dropped.
pub async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>) {
    let limit = Arc::new(Semaphore::new(TCP_MAX_CONNECTIONS));
    loop {
        let permit = match limit.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "tcp accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, peer, &handler).await {
                debug!(error = %e, %peer, "tcp connection ended");
            }
            drop(permit);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: &Handler,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut msg = Vec::new();
    let mut resp = Vec::with_capacity(512);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        let len = usize::from(u16::from_be_bytes(len));
        msg.resize(len, 0);
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut msg)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if !handler.handle_into(&msg, peer.ip(), Transport::Tcp, &mut resp) {
            continue;
        }
        // Length prefix and message in one write: one segment, not two.
        let len = (resp.len() as u16).to_be_bytes();
        resp.splice(0..0, len);
        stream.write_all(&resp).await?;
    }
}
