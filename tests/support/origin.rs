//! Real HTTP/1.1 origins on loopback for the tests: each counts its
//! requests and connections, answers `/healthz` with a status the test sets,
//! can be slowed, made to fail, hold a response mid-body (`/hold`), and be
//! killed like a process. Shared by the L7 and the site tests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::{watch, Notify};
/// What an origin does with each request.
pub struct Behaviour {
    pub status: AtomicU16,
    pub delay_ms: AtomicU64,
    /// `/healthz` answers this status.
    pub health_status: AtomicU16,
    /// Requests to `/hold` send their first chunk, then wait for this.
    pub release: Notify,
}

pub struct Origin {
    pub addr: SocketAddr,
    pub behaviour: Arc<Behaviour>,
    pub requests: Arc<AtomicU64>,
    pub connections: Arc<AtomicU64>,
    /// Request headers of the last request (lower-case names).
    pub last_headers: Arc<Mutex<HashMap<String, String>>>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    pub fn start() -> Origin {
        Self::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// An origin on `addr` (port 0: any).
    pub fn start_on(addr: SocketAddr) -> Origin {
        let behaviour = Arc::new(Behaviour {
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            health_status: AtomicU16::new(200),
            release: Notify::new(),
        });
        let requests = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let last_headers = Arc::new(Mutex::new(HashMap::new()));
        let (stop, stop_rx) = watch::channel(false);
        let std_listener = std::net::TcpListener::bind(addr).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (b, r, c, h) = (
            behaviour.clone(),
            requests.clone(),
            connections.clone(),
            last_headers.clone(),
        );
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve_origin(std_listener, b, r, c, h, stop_rx));
        });
        Origin {
            addr,
            behaviour,
            requests,
            connections,
            last_headers,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set_status(&self, s: u16) {
        self.behaviour.status.store(s, Relaxed);
    }

    pub fn set_delay(&self, ms: u64) {
        self.behaviour.delay_ms.store(ms, Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// Closes the listener and every connection at once (a killed process).
    pub fn kill(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type OriginBody = http_body_util::Either<Full<Bytes>, HoldBody>;

/// A body whose chunks come from a channel: `/hold` sends one chunk, then
/// the second only once the test releases it.
pub struct HoldBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

impl http_body::Body for HoldBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

async fn serve_origin(
    listener: std::net::TcpListener,
    b: Arc<Behaviour>,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    last_headers: Arc<Mutex<HashMap<String, String>>>,
    mut stop: watch::Receiver<bool>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = stop.changed() => break,
        };
        connections.fetch_add(1, Relaxed);
        let (b, requests, last_headers) = (b.clone(), requests.clone(), last_headers.clone());
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (b, requests, last_headers) =
                    (b.clone(), requests.clone(), last_headers.clone());
                async move {
                    let path = req.uri().path().to_string();
                    if path == "/healthz" {
                        let mut r =
                            Response::new(OriginBody::Left(Full::new(Bytes::from_static(b"ok"))));
                        *r.status_mut() =
                            hyper::StatusCode::from_u16(b.health_status.load(Relaxed)).unwrap();
                        return Ok::<_, Infallible>(r);
                    }
                    requests.fetch_add(1, Relaxed);
                    let mut seen: HashMap<String, String> = req
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect();
                    let req_version = req.version();
                    seen.insert(":version".into(), format!("{req_version:?}"));
                    *last_headers.lock().unwrap() = seen;
                    let body_len = req
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes().len())
                        .unwrap_or(0);
                    let delay = b.delay_ms.load(Relaxed);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let body = if path == "/hold" {
                        let (tx, rx) = tokio::sync::mpsc::channel(2);
                        let b2 = b.clone();
                        tokio::spawn(async move {
                            let _ = tx.send(Bytes::from_static(b"first;")).await;
                            b2.release.notified().await;
                            let _ = tx.send(Bytes::from_static(b"second")).await;
                        });
                        OriginBody::Right(HoldBody { rx })
                    } else {
                        OriginBody::Left(Full::new(Bytes::from(format!("{port} {body_len}"))))
                    };
                    let mut r = Response::new(body);
                    *r.status_mut() = hyper::StatusCode::from_u16(b.status.load(Relaxed)).unwrap();
                    r.headers_mut().insert("x-backend", port.into());
                    if req_version == hyper::Version::HTTP_11 {
                        r.headers_mut()
                            .insert("connection", "keep-alive, x-drop-me".parse().unwrap());
                        r.headers_mut().insert("x-drop-me", "1".parse().unwrap());
                    }
                    Ok::<_, Infallible>(r)
                }
            });
            // HTTP/1.1, or h2c with prior knowledge (pools with upstream = "h2c").
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
        });
        while conns.try_join_next().is_some() {}
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}
