//! Harness for the L7 proxy tests: real HTTP/1.1 origins on loopback whose
//! behaviour a test can change (status, delay, a held response), which
//! count requests and connections and can be killed; and the real proxy
//! (config, workers, API) started in-process on loopback ports.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boltz_l7::{ApiState, Config, Control};
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

/// The proxy, in-process: its listeners, workers and local API.
pub struct Proxy {
    pub addrs: Vec<SocketAddr>,
    pub api: SocketAddr,
    stop: watch::Sender<bool>,
    workers: Vec<std::thread::JoinHandle<()>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Starts the proxy on `toml` (listeners may use port 0).
    pub fn start(toml: &str) -> Proxy {
        let config = Config::parse(std::path::Path::new("test.toml"), toml).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (bound, keep) = boltz_l7::bind(&config.listeners).unwrap();
        let l7 = Control::new(config, Some(rt.handle().clone()));
        let addrs = bound.iter().map(|b| b.addr).collect();
        let (stop, stop_rx) = watch::channel(false);
        let workers = boltz_l7::spawn_workers(l7.clone(), bound, stop_rx).unwrap();
        drop(keep);
        let api_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        api_listener.set_nonblocking(true).unwrap();
        let api = api_listener.local_addr().unwrap();
        let rates = Arc::new(Mutex::new(boltz_l7::Rates::default()));
        let st = ApiState {
            control: l7.clone(),
            token: None,
            tcp: false,
            rates: rates.clone(),
        };
        rt.spawn(async move {
            let l = tokio::net::TcpListener::from_std(api_listener).unwrap();
            axum::serve(l, boltz_l7::router(st)).await
        });
        rt.spawn(boltz_l7::sample(
            l7.clone(),
            rates,
            Duration::from_millis(200),
        ));
        rt.spawn(l7.clone().maintain(Duration::from_millis(20)));
        Proxy {
            addrs,
            api,
            stop,
            workers,
            rt: Some(rt),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addrs[0])
    }

    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let s = std::net::TcpStream::connect(self.api).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (code, text) =
            crate::api::http_over(s, &self.api.to_string(), method, path, body, None);
        (
            code,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Stops accepting and waits for in-flight requests (graceful).
    pub fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A pool's `backends = [...]` TOML for `origins` with `weights`.
pub fn backends_toml(origins: &[&Origin], weights: &[f64]) -> String {
    let items: Vec<String> = origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            format!(
                "{{ address = \"{}\", weight = {} }}",
                o.addr,
                weights.get(i).copied().unwrap_or(1.0)
            )
        })
        .collect();
    format!("backends = [{}]", items.join(", "))
}

/// Sends `n` GETs to `url` with `concurrency` in flight; returns the count
/// per `x-backend` port and the number of failed requests (non-2xx or
/// transport error).
pub async fn load(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    concurrency: usize,
) -> (HashMap<u16, usize>, usize) {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, next, stop) =
            (client.clone(), url.to_string(), next.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen: HashMap<u16, usize> = HashMap::new();
            let mut failed = 0;
            while !stop.load(Relaxed) && (next.fetch_add(1, Relaxed) as usize) < n {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let port = r
                            .headers()
                            .get("x-backend")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let _ = r.bytes().await;
                        *seen.entry(port).or_default() += 1;
                    }
                    _ => failed += 1,
                }
            }
            (seen, failed)
        }));
    }
    let mut all: HashMap<u16, usize> = HashMap::new();
    let mut failed = 0;
    for t in tasks {
        let (seen, f) = t.await.unwrap();
        for (k, v) in seen {
            *all.entry(k).or_default() += v;
        }
        failed += f;
    }
    (all, failed)
}

/// Waits up to `limit` for `cond`, panicking with `what` if it never holds.
pub fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    crate::wait::wait_for(what, limit, &mut cond, String::new);
}
