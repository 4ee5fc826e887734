//! Harness for the L7 proxy tests: the real proxy (config, workers, API)
//! started in-process on loopback ports, in front of the shared origins
//! (`tests/support/origin.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boltz_l7::{ApiState, Config, Control};
use tokio::sync::watch;

pub use crate::origin::Origin;

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
