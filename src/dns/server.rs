//! UDP and TCP transports. They move bytes between sockets and
//! [`Handler::handle`]; every protocol decision lives in the handler.
//!
//! UDP runs one receive loop per worker on a shared socket. TCP takes
//! length-prefixed messages (RFC 1035 §4.2.2), answers them in order on each
//! connection, closes idle connections (RFC 7766 asks servers to time out
//! idle clients) and caps concurrent connections so a flood of idle
//! connections cannot exhaust the process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::handler::{Handler, Transport};

/// Idle time after which a TCP connection is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Concurrent TCP connections; more wait in the kernel's accept queue.
pub const TCP_MAX_CONNECTIONS: usize = 1024;

/// Binds UDP and TCP on `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(Arc<UdpSocket>, TcpListener)> {
    // Port 0 asks for any port, and TCP must then take the one UDP got; that
    // TCP port may be in use already, so try a few UDP ports.
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((Arc::new(udp), tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port free for both UDP and TCP")))
}

/// Serves UDP with `workers` receive loops until the task is dropped.
pub async fn serve_udp(sock: Arc<UdpSocket>, handler: Arc<Handler>, workers: usize) {
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (sock, handler) = (sock.clone(), handler.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let (n, peer) = match sock.recv_from(&mut buf).await {
                    Ok(x) => x,
                    Err(e) => {
                        // ICMP errors from earlier sends surface here on
                        // Linux; they are not fatal for the socket.
                        debug!(error = %e, "udp recv");
                        continue;
                    }
                };
                if let Some(resp) = handler.handle(&buf[..n], peer.ip(), Transport::Udp) {
                    if let Err(e) = sock.send_to(&resp, peer).await {
                        debug!(error = %e, %peer, "udp send");
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
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
        let Some(resp) = handler.handle(&msg, peer.ip(), Transport::Tcp) else {
            continue;
        };
        let mut out = Vec::with_capacity(resp.len() + 2);
        out.extend_from_slice(&(resp.len() as u16).to_be_bytes());
        out.extend_from_slice(&resp);
        stream.write_all(&out).await?;
    }
}
