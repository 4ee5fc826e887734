//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766), built so that clients who
//! connect and then stall cannot hold the server hostage:
//!
//! - **One clock per connection.** A connection gets `idle` from its last
//!   answered query to send its next whole query and read the answers;
//!   reads and writes both count, and a partial message does not reset
//!   it. A client that never reads (its window full) is closed when the
//!   clock runs out, like one that never writes.
//! - **Pressure.** Past three quarters of `max_connections`, every
//!   connection's clock is cut to `idle / 10` (at least 200 ms), at once:
//!   a flood of silent connections is shed within that, so a new client
//!   waits at most about the idle limit for a slot.
//! - **Per address.** At most `per_address` connections from one client
//!   address; more are closed on accept.
//! - **Pipelining.** Every whole query already received is answered, in
//!   order, and their answers go out in one write (RFC 7766 §6.2.1.1).
//! - **Keepalive.** A query with edns-tcp-keepalive (RFC 7828) gets the
//!   idle time in its answer (the handler writes it).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::handler::Handler;
use super::transport::Transport;

/// Answers gathered for one write: a client that sends and does not read
/// makes the server hold at most this (plus one answer) for it.
const OUT_CAP: usize = 16 * 1024;

/// The TCP limits (`boltz serve --tcp-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Time from one answered query to the next whole one.
    pub idle: Duration,
    /// Concurrent connections; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Concurrent connections from one client address.
    pub per_address: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            idle: Duration::from_secs(10),
            max_connections: 1024,
            per_address: 32,
        }
    }
}

impl TcpLimits {
    /// The idle time under pressure.
    fn pressed(&self) -> Duration {
        (self.idle / 10).max(Duration::from_millis(200))
    }
}

/// What the connections of one server share (every listener's).
pub struct TcpShared {
    limits: TcpLimits,
    slots: Arc<Semaphore>,
    active: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    pressure: watch::Sender<bool>,
}

impl TcpShared {
    /// Shared state for `limits`.
    pub fn new(limits: TcpLimits) -> Arc<TcpShared> {
        Arc::new(TcpShared {
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            active: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            pressure: watch::channel(false).0,
        })
    }

    /// Takes a place for a connection from `ip`; `false` if it has too
    /// many already.
    fn admit(&self, ip: IpAddr) -> bool {
        let mut m = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= self.limits.per_address {
            return false;
        }
        *n += 1;
        drop(m);
        let active = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.update_pressure(active);
        true
    }

    fn leave(&self, ip: IpAddr) {
        let mut m = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
        drop(m);
        let active = self.active.fetch_sub(1, Ordering::SeqCst) - 1;
        self.update_pressure(active);
    }

    fn update_pressure(&self, active: usize) {
        let high = self.limits.max_connections * 3 / 4;
        self.pressure.send_if_modified(|p| {
            let now = active > high;
            std::mem::replace(p, now) != now
        });
    }
}

/// Serves TCP on `listener` until the task is dropped.
pub async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>, shared: Arc<TcpShared>) {
    loop {
        let permit = match shared.slots.clone().acquire_owned().await {
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
        if !shared.admit(peer.ip()) {
            handler.metrics.count_tcp_refused();
            continue;
        }
        let (handler, shared) = (handler.clone(), shared.clone());
        tokio::spawn(async move {
            match connection(stream, peer, &handler, &shared).await {
                Ok(Ended::Closed) => {}
                Ok(Ended::TimedOut) => handler.metrics.count_tcp_timeout(),
                Err(e) => debug!(error = %e, %peer, "tcp connection ended"),
            }
            shared.leave(peer.ip());
            drop(permit);
        });
    }
}

/// How a connection ended.
enum Ended {
    /// The client closed it.
    Closed,
    /// Its clock ran out.
    TimedOut,
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: &Handler,
    shared: &TcpShared,
) -> std::io::Result<Ended> {
    let _ = stream.set_nodelay(true);
    let mut pressure = shared.pressure.subscribe();
    let limits = shared.limits;
    let idle = |pressed: bool| {
        if pressed {
            limits.pressed()
        } else {
            limits.idle
        }
    };
    let mut since = Instant::now();
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut out: Vec<u8> = Vec::new();
    let mut resp = Vec::with_capacity(512);
    loop {
        // Answer the whole queries already here, until the answers fill
        // OUT_CAP: what a client has sent but not read stays bounded.
        let mut used = 0;
        while out.len() < OUT_CAP {
            let Some(len) = buf
                .get(used..used + 2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            else {
                break;
            };
            let Some(msg) = buf.get(used + 2..used + 2 + len) else {
                break;
            };
            if handler.handle_into(msg, peer.ip(), Transport::Tcp, &mut resp) {
                out.extend_from_slice(&(resp.len() as u16).to_be_bytes());
                out.extend_from_slice(&resp);
            }
            used += 2 + len;
        }
        buf.drain(..used);
        if !out.is_empty() {
            let write = stream.write_all(&out);
            tokio::pin!(write);
            loop {
                let deadline = since + idle(*pressure.borrow_and_update());
                tokio::select! {
                    r = &mut write => {
                        r?;
                        break;
                    }
                    _ = tokio::time::sleep_until(deadline) => return Ok(Ended::TimedOut),
                    _ = pressure.changed() => {}
                }
            }
            out.clear();
            since = Instant::now();
            // More whole queries may be waiting: answer them first.
            continue;
        }
        // Read more, on the same clock, at least a few KiB at a time.
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(4096);
        }
        let deadline = since + idle(*pressure.borrow_and_update());
        tokio::select! {
            r = stream.read_buf(&mut buf) => {
                if r? == 0 {
                    return Ok(Ended::Closed);
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(Ended::TimedOut),
            // The clock is recomputed on the next turn.
            _ = pressure.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests;
