//! Connections to backends, pooled per worker thread. Each worker keeps its
//! own idle HTTP/1.1 connections ([`super::http1::client`]) and one multiplexed
//! HTTP/2 connection (hyper's client) per backend address in a thread-local
//! map, so taking and returning a connection is a plain `Vec` operation
//! with no lock shared between threads (the nginx/Envoy worker model). A
//! backend that appears through an API update is pooled the same way from
//! its first request.

use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::body::ReqBody;
use super::config::Upstream;
use super::http1::client::H1Conn;

type H2Cell = Arc<tokio::sync::OnceCell<http2::SendRequest<ReqBody>>>;

/// Most idle HTTP/1.1 connections kept per backend and worker.
const MAX_IDLE: usize = 256;

/// A connection ready for one request.
pub enum Conn {
    H1(H1Conn),
    H2(http2::SendRequest<ReqBody>),
}

/// Why no request could be sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {0}: timed out")]
    Timeout(SocketAddr),
    #[error("connect to {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("handshake with {0}: {1}")]
    Handshake(SocketAddr, hyper::Error),
}

thread_local! {
    static IDLE: RefCell<FxHashMap<SocketAddr, Vec<H1Conn>>> = RefCell::new(FxHashMap::default());
    static H2: RefCell<FxHashMap<SocketAddr, H2Cell>> = RefCell::new(FxHashMap::default());
}

/// A connection to `addr`: an idle pooled one if this worker has one that
/// is still open, else a new one (counted in `new_conns`).
pub async fn checkout(
    addr: SocketAddr,
    proto: Upstream,
    connect_timeout: Duration,
    new_conns: &std::sync::atomic::AtomicU64,
) -> Result<Conn, ConnectError> {
    match proto {
        Upstream::Http1 => {
            while let Some(c) = IDLE.with(|m| m.borrow_mut().get_mut(&addr).and_then(Vec::pop)) {
                if c.idle_ok() {
                    return Ok(Conn::H1(c));
                }
            }
            // Boxed: a rare path that would otherwise grow every request's
            // future (and the copies of it) by its size.
            let stream = Box::pin(connect(addr, connect_timeout)).await?;
            new_conns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Conn::H1(H1Conn::new(addr, stream)))
        }
        Upstream::H2c => loop {
            // One connection per backend and worker, shared by every request;
            // concurrent first requests wait for the same handshake (boxed,
            // like the connect above: it is rare and large).
            let cell = H2.with(|m| m.borrow_mut().entry(addr).or_default().clone());
            let s = cell
                .get_or_try_init(|| Box::pin(h2_handshake(addr, connect_timeout, new_conns)))
                .await;
            if let Some(s) = s.as_ref().ok().filter(|s| !s.is_closed()) {
                return Ok(Conn::H2((*s).clone()));
            }
            // Closed or failed: forget it (unless another request already
            // did); a closed one is redialled.
            H2.with(|m| {
                let mut m = m.borrow_mut();
                if m.get(&addr).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                    m.remove(&addr);
                }
            });
            s?;
        },
    }
}

/// A new h2c connection to `addr`, its driver spawned on this worker.
async fn h2_handshake(
    addr: SocketAddr,
    connect_timeout: Duration,
    new_conns: &std::sync::atomic::AtomicU64,
) -> Result<http2::SendRequest<ReqBody>, ConnectError> {
    let io = TokioIo::new(connect(addr, connect_timeout).await?);
    new_conns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (s, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(io)
        .await
        .map_err(|e| ConnectError::Handshake(addr, e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%addr, error = %e, "upstream h2 connection ended");
        }
    });
    Ok(s)
}

async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout(addr))?
        .map_err(|e| ConnectError::Io(addr, e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Gives an HTTP/1.1 connection back to this worker's pool once its
/// response body has been read to the end.
pub fn checkin(c: H1Conn) {
    IDLE.with(|m| {
        let mut m = m.borrow_mut();
        let v = m.entry(c.addr).or_default();
        if v.len() < MAX_IDLE {
            v.push(c);
        }
    });
}

/// Drops this worker's idle connections that are no longer usable (the
/// backend closed them, e.g. at its keep-alive timeout, or it was removed
/// from every pool and its connections aged out) and forgets addresses
/// left with none. Each worker calls it every few seconds.
pub fn prune() {
    IDLE.with(|m| {
        let mut m = m.borrow_mut();
        m.retain(|_, v| {
            v.retain(H1Conn::idle_ok);
            !v.is_empty()
        });
    });
    H2.with(|m| {
        m.borrow_mut()
            .retain(|_, c| c.get().is_none_or(|s| !s.is_closed()));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_count(addr: SocketAddr) -> usize {
        IDLE.with(|m| m.borrow().get(&addr).map_or(0, Vec::len))
    }

    #[tokio::test]
    async fn pooled_connections_are_reused_and_closed_ones_pruned() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = tokio::spawn(async move {
            let (a, _) = l.accept().await.unwrap();
            a
        });
        let opened = std::sync::atomic::AtomicU64::new(0);
        let Conn::H1(c) = checkout(addr, Upstream::Http1, Duration::from_secs(1), &opened)
            .await
            .unwrap()
        else {
            panic!("an HTTP/1.1 connection");
        };
        let server_side = accepted.await.unwrap();
        checkin(c);
        assert_eq!(idle_count(addr), 1);
        let Conn::H1(c) = checkout(addr, Upstream::Http1, Duration::from_secs(1), &opened)
            .await
            .unwrap()
        else {
            panic!("an HTTP/1.1 connection");
        };
        assert_eq!(
            opened.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "reused, not reopened"
        );
        checkin(c);
        // The backend closes it: the next prune drops it and the address.
        drop(server_side);
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            prune();
            if idle_count(addr) == 0 {
                break;
            }
        }
        assert_eq!(idle_count(addr), 0);
        assert!(IDLE.with(|m| !m.borrow().contains_key(&addr)));
    }
}
