//! Where a component's local API listens (`unix:/run/boltz-l7.sock`, or
//! `http://127.0.0.1:5391` with a bearer token) and one JSON request to it:
//! hyper's HTTP/1.1 client on a fresh connection per request (the local
//! APIs see a few requests per second; a connection that survives a daemon
//! restart would only hide it).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpStream, UnixStream};

/// Largest answer read from a component: a big L7 pool view is a few
/// hundred kilobytes.
const MAX_BODY: usize = 16 << 20;

/// A component's API.
#[derive(Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket (file permissions guard it).
    Unix(PathBuf),
    /// TCP `host:port`; changes need the token.
    Tcp {
        /// `host:port`.
        addr: String,
        /// The bearer token.
        token: Option<String>,
    },
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token.
        write!(f, "{self}")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp { addr, .. } => write!(f, "http://{addr}"),
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No connection (the daemon is down or not there yet).
    #[error("connect {0}: {1}")]
    Connect(String, std::io::Error),
    /// The exchange failed or timed out.
    #[error("{0}")]
    Exchange(String),
    /// An answer that is not the JSON expected.
    #[error("answer: {0}")]
    Answer(String),
}

/// An answer: its status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl Answer {
    /// The error message a component put in its body, else the status.
    pub fn message(&self) -> String {
        match self.body.get("error").and_then(Value::as_str) {
            Some(m) => format!("{}: {m}", self.status),
            None => format!("status {}", self.status),
        }
    }
}

impl Endpoint {
    /// `unix:PATH` or `http://HOST:PORT`.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("http://") {
            let a = a.trim_end_matches('/');
            if a.is_empty() || a.contains('/') || !a.contains(':') {
                return Err(format!("{s:?}: expected http://HOST:PORT"));
            }
            return Ok(Endpoint::Tcp {
                addr: a.to_string(),
                token: None,
            });
        }
        Err(format!(
            "{s:?}: expected unix:/path/to.sock or http://HOST:PORT"
        ))
    }

    /// Sets the bearer token (TCP only; a Unix socket needs none).
    pub fn set_token(&mut self, t: String) {
        if let Endpoint::Tcp { token, .. } = self {
            *token = Some(t);
        }
    }

    /// One request with an optional JSON body, bounded by `timeout`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Answer, RequestError> {
        tokio::time::timeout(timeout, self.exchange(method, path, body))
            .await
            .unwrap_or_else(|_| {
                Err(RequestError::Exchange(format!(
                    "timed out after {timeout:?}"
                )))
            })
    }

    /// `GET path`, expecting 200 and JSON.
    pub async fn get(&self, path: &str, timeout: Duration) -> Result<Value, RequestError> {
        let a = self.request(Method::GET, path, None, timeout).await?;
        if a.status != 200 {
            return Err(RequestError::Answer(format!("GET {path}: {}", a.message())));
        }
        Ok(a.body)
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, RequestError> {
        let (host, token) = match self {
            Endpoint::Unix(_) => ("localhost", None),
            Endpoint::Tcp { addr, token } => (addr.as_str(), token.as_deref()),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("accept", "application/json")
            .header("user-agent", "boltz-site/0.1");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(
                    serde_json::to_vec(v).map_err(|e| RequestError::Exchange(e.to_string()))?,
                )
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| RequestError::Exchange(e.to_string()))?;
        let res = match self {
            Endpoint::Unix(p) => {
                let s = UnixStream::connect(p)
                    .await
                    .map_err(|e| RequestError::Connect(self.to_string(), e))?;
                send(TokioIo::new(s), req).await?
            }
            Endpoint::Tcp { addr, .. } => {
                let s = TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|e| RequestError::Connect(self.to_string(), e))?;
                send(TokioIo::new(s), req).await?
            }
        };
        Ok(res)
    }
}

async fn send<I>(io: I, req: Request<Full<Bytes>>) -> Result<Answer, RequestError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let exchange = |e: hyper::Error| RequestError::Exchange(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(exchange)?;
    let driver = tokio::spawn(conn);
    let res = sender.send_request(req).await.map_err(exchange);
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            driver.abort();
            return Err(e);
        }
    };
    let status = res.status().as_u16();
    let body = Limited::new(res.into_body(), MAX_BODY).collect().await;
    driver.abort();
    let body = body
        .map_err(|e| RequestError::Exchange(format!("reading the answer: {e}")))?
        .to_bytes();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    Ok(Answer { status, body })
}
