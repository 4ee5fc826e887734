//! Client-facing listeners. Every listener's socket is bound once (so a
//! port 0 gets one port), then each worker thread opens its own
//! `SO_REUSEPORT` socket on that address and runs a single-threaded tokio
//! runtime: the kernel spreads connections over workers, and a request is
//! served start to end on one thread with that thread's upstream
//! connections. Plain listeners speak HTTP/1.1 and h2c (prior knowledge);
//! TLS listeners negotiate h2 or http/1.1 by ALPN. Either way a connection
//! opening with the HTTP/2 preface ([`super::sniff`]) goes to hyper's
//! HTTP/2 server and any other to boltz's own HTTP/1.1 server
//! ([`super::http1::server`]). A slow
//! client's request head is cut off after `timeouts.header`; an idle
//! keep-alive connection after `timeouts.idle`. Shutdown stops accepting,
//! lets in-flight requests finish (up to `timeouts.shutdown`) and closes
//! idle connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::body::{BoxError, ReqBody};
use super::config::{ListenerConfig, TlsConfig};
use super::control::Control;
use super::http1;
use super::idle::{self, Activity, IdleIo};
use super::proxy::{self, ClientConn};
use super::sniff::{sniff, Protocol, Rewind};

/// A listener ready to be served by the workers.
pub struct Bound {
    pub addr: SocketAddr,
    tls: Option<TlsAcceptor>,
}

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("listeners[{0}] {1}: {2}")]
    Bind(usize, SocketAddr, std::io::Error),
    #[error("listeners[{0}].tls: {1}")]
    Tls(usize, String),
}

fn reuseport_socket(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// Binds every listener once (resolving port 0) and loads TLS material.
/// The returned sockets are kept open by the caller until the workers have
/// bound theirs, so the port stays ours.
pub fn bind(
    listeners: &[ListenerConfig],
) -> Result<(Vec<Bound>, Vec<std::net::TcpListener>), ListenError> {
    let mut bound = Vec::new();
    let mut keep = Vec::new();
    for (i, l) in listeners.iter().enumerate() {
        let s = reuseport_socket(l.address).map_err(|e| ListenError::Bind(i, l.address, e))?;
        let addr = s
            .local_addr()
            .map_err(|e| ListenError::Bind(i, l.address, e))?;
        let tls = match &l.tls {
            Some(t) => Some(tls_acceptor(t).map_err(|e| ListenError::Tls(i, e))?),
            None => None,
        };
        bound.push(Bound { addr, tls });
        keep.push(s);
    }
    Ok((bound, keep))
}

fn tls_acceptor(t: &TlsConfig) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert)
        .map_err(|e| format!("cert {}: {e}", t.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert {}: {e}", t.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cert {}: no certificate in the file",
            t.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key)
        .map_err(|e| format!("key {}: {e}", t.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("cert and key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Connections currently open, over all workers.
pub static OPEN_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Starts `workers` threads serving `bound` until `stop` turns true; each
/// thread returns once its connections have drained (or the shutdown
/// timeout passed).
pub fn spawn_workers(
    l7: Arc<Control>,
    bound: Vec<Bound>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let bound = Arc::new(bound);
    let workers = l7.config.workers();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    let mut handles = Vec::new();
    for w in 0..workers {
        let (l7, bound, stop, ready) = (l7.clone(), bound.clone(), stop.clone(), ready_tx.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("boltz-l7-{w}"))
                .spawn(move || {
                    super::worker::set_worker(w);
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    rt.block_on(worker(l7, bound, stop, ready));
                })?,
        );
    }
    drop(ready_tx);
    for _ in 0..workers {
        ready_rx.recv().map_err(std::io::Error::other)??;
    }
    Ok(handles)
}

async fn worker(
    l7: Arc<Control>,
    bound: Arc<Vec<Bound>>,
    mut stop: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<std::io::Result<()>>,
) {
    let mut listeners = Vec::new();
    for b in bound.iter() {
        match reuseport_socket(b.addr).and_then(TcpListener::from_std) {
            Ok(l) => listeners.push((l, b.tls.clone())),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    }
    let _ = ready.send(Ok(()));
    // Closed idle upstream connections go away even if never asked for.
    let pruner = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            super::upstream::prune();
        }
    });
    // HTTP/2 connections are hyper's; they register with `graceful`.
    // HTTP/1.1 connections are ours; the watcher of each holds a
    // receiver of `drain`.
    let graceful = GracefulShutdown::new();
    let (drain, draining) = watch::channel(false);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    // No h2 keep-alive pings: they would keep an idle connection "active".
    h2.timer(TokioTimer::new());
    let h2 = Arc::new(h2);
    // Accept loops hand connections to this loop, which owns the graceful
    // shutdown handles.
    let (conn_tx, mut conn_rx) =
        tokio::sync::mpsc::channel::<(TcpStream, SocketAddr, Option<TlsAcceptor>)>(64);
    let accepts: Vec<_> = listeners
        .into_iter()
        .map(|(listener, tls)| {
            let tx = conn_tx.clone();
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, peer)) => {
                            if tx.send((stream, peer, tls.clone())).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            })
        })
        .collect();
    drop(conn_tx);
    loop {
        tokio::select! {
            c = conn_rx.recv() => {
                let Some((stream, peer, tls)) = c else { break };
                let _ = stream.set_nodelay(true);
                let c = Arc::new(ClientConn::new(l7.clone(), peer, tls.is_some()));
                let shared = Shared {
                    h2: h2.clone(),
                    watcher: graceful.watcher(),
                };
                serve(c, stream, tls, shared, draining.clone());
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    for a in accepts {
        a.abort();
    }
    pruner.abort();
    let limit = l7.config.timeouts.shutdown;
    let _ = drain.send(true);
    drop(draining);
    let all_closed = async {
        tokio::join!(graceful.shutdown(), drain.closed());
    };
    if tokio::time::timeout(limit, all_closed).await.is_err() {
        tracing::warn!(after = ?limit, "shutdown: connections still open, closing them");
    }
}

/// What a worker's connections share.
struct Shared {
    h2: Arc<http2::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
}

/// Counts a client connection as open for as long as it lives.
struct Open;

impl Open {
    fn new() -> Open {
        OPEN_CONNECTIONS.fetch_add(1, Relaxed);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, Relaxed);
    }
}

/// Serves one accepted connection in its own task, under a watcher task
/// that enforces its time limits ([`idle::watch`]).
fn serve(
    c: Arc<ClientConn>,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    shared: Shared,
    draining: watch::Receiver<bool>,
) {
    let t = &c.l7.config.timeouts;
    let limits = idle::Limits {
        idle: t.idle,
        header: t.header,
        request: t.request,
    };
    let open = Open::new();
    let (io, activity) = IdleIo::new(stream);
    let peer = c.peer;
    let conn = {
        let activity = activity.clone();
        tokio::spawn(async move {
            let _open = open;
            match tls {
                None => session(&c, io, activity, shared).await,
                // The header timeout runs from the accept, so it bounds the
                // handshake too.
                Some(acceptor) => match acceptor.accept(io).await {
                    Ok(tls_stream) => session(&c, tls_stream, activity, shared).await,
                    Err(e) => {
                        tracing::debug!(peer = %c.peer, error = %e, "TLS handshake failed");
                        Ok(())
                    }
                },
            }
        })
    };
    tokio::spawn(async move {
        match idle::watch(conn, activity, limits, draining).await {
            idle::Ended::Done(Ok(())) => {}
            idle::Ended::Done(Err(e)) => {
                tracing::debug!(peer = %peer, error = %e, "client connection ended")
            }
            idle::Ended::Cut(why) => tracing::debug!(peer = %peer, why, "client connection closed"),
            idle::Ended::Failed(e) => {
                tracing::warn!(peer = %peer, error = %e, "client connection task failed")
            }
        }
    });
}

/// One client connection after TLS: HTTP/2 (by its preface) goes to
/// hyper, anything else to boltz's HTTP/1.1 server.
async fn session<IO>(
    c: &Arc<ClientConn>,
    mut io: IO,
    activity: Activity,
    shared: Shared,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut buf = BytesMut::with_capacity(http1::READ_CHUNK);
    let proto = sniff(&mut io, &mut buf).await?;
    activity.set_between(false);
    match proto {
        None => Ok(()),
        Some(Protocol::Http1) => Ok(http1::server::serve(c, io, buf, &activity).await?),
        Some(Protocol::Http2) => {
            // HTTP/2 has no per-request head to time; hyper drains it, and
            // each request has its own timer.
            activity.head_end();
            let c = c.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let c = c.clone();
                async move { Ok::<_, Infallible>(proxy::handle_h2(&c, req.map(ReqBody::Hyper)).await) }
            });
            let io = TokioIo::new(Rewind::new(buf.freeze(), io));
            Ok(shared
                .watcher
                .watch(shared.h2.serve_connection(io, svc))
                .await?)
        }
    }
}
