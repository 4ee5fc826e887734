//! One health check, HTTP or TCP, bounded by the config's timeout. Errors
//! are short and specific ("connect: connection refused", "status 503 not in
//! [200]") because they end up verbatim in logs and the status API.
//!
//! Every check opens a fresh connection: a pooled keep-alive connection can
//! outlive the process that accepted it, or hide a listener that no longer
//! accepts, and a health check exists to notice exactly that.

use std::io;

use reqwest::header::HOST;
use reqwest::redirect::Policy;
use reqwest::{Client, Response, Url};
use thiserror::Error;
use tokio::net::TcpStream;

use super::config::{Expect, HealthConfig, HealthTarget, MAX_BODY};
use boltz_core::duration::format_duration;

const USER_AGENT: &str = "boltz-health/0.1";

#[derive(Clone, Debug, Error, PartialEq)]
/// Why a check failed.
pub enum ProbeError {
    /// The config did not describe a usable check (it skipped validation).
    #[error("config: {0}")]
    Config(String),
    /// The connection could not be made.
    #[error("connect: {0}")]
    Connect(String),
    /// Failed after connecting: reset, malformed response, TLS, ...
    #[error("request: {0}")]
    Request(String),
    /// The status is not one that passes.
    #[error("status {status} not in {expect}")]
    Status {
        /// The status received.
        status: u16,
        /// The statuses that pass, as text.
        expect: String,
    },
    /// The body lacks the required substring.
    #[error("body does not contain {0:?}")]
    Body(String),
    /// No result within the timeout.
    #[error("timeout after {}", format_duration(*.0))]
    Timeout(std::time::Duration),
}

/// Runs checks; one per process, shared by every DC's runner.
#[derive(Clone, Debug)]
pub struct Prober {
    verifying: Client,
    /// For `tls_verify = false`; a separate client because certificate
    /// checking is fixed when a client is built.
    insecure: Client,
}

impl Prober {
    /// A prober with its HTTP clients (one verifying TLS, one not).
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(Prober {
            verifying: client(true)?,
            insecure: client(false)?,
        })
    }

    /// Runs one check of `cfg` within its timeout.
    pub async fn check(&self, cfg: &HealthConfig) -> Result<(), ProbeError> {
        let target = cfg.target().map_err(ProbeError::Config)?;
        let run = async {
            match target {
                HealthTarget::Http {
                    url,
                    expect,
                    body,
                    host,
                    tls_verify,
                } => {
                    let client = if tls_verify {
                        &self.verifying
                    } else {
                        &self.insecure
                    };
                    http(client, url, expect, body, host).await
                }
                HealthTarget::Tcp { addr } => TcpStream::connect(addr)
                    .await
                    .map(drop)
                    .map_err(|e| ProbeError::Connect(io_reason(&e))),
            }
        };
        tokio::time::timeout(cfg.timeout(), run)
            .await
            .unwrap_or(Err(ProbeError::Timeout(cfg.timeout())))
    }
}

fn client(verify_tls: bool) -> Result<Client, reqwest::Error> {
    Client::builder()
        .user_agent(USER_AGENT)
        // A redirect is an answer from the server; following it would check
        // some other host.
        .redirect(Policy::none())
        .pool_max_idle_per_host(0)
        // An HTTP_PROXY in the environment must not stand between a probe
        // and the DC it judges.
        .no_proxy()
        .danger_accept_invalid_certs(!verify_tls)
        .build()
}

async fn http(
    client: &Client,
    url: Url,
    expect: Expect<'_>,
    body: Option<&str>,
    host: Option<&str>,
) -> Result<(), ProbeError> {
    let mut request = client.get(url);
    if let Some(host) = host {
        request = request.header(HOST, host);
    }
    let mut response = request.send().await.map_err(|e| {
        if e.is_connect() {
            ProbeError::Connect(describe(&e))
        } else {
            ProbeError::Request(describe(&e))
        }
    })?;
    let status = response.status().as_u16();
    if !expect.contains(status) {
        return Err(ProbeError::Status {
            status,
            expect: expect.to_string(),
        });
    }
    let Some(needle) = body else {
        return Ok(());
    };
    let (data, _) = read_limited(&mut response, MAX_BODY)
        .await
        .map_err(|e| ProbeError::Request(describe(&e)))?;
    if needle.is_empty() || data.windows(needle.len()).any(|w| w == needle.as_bytes()) {
        Ok(())
    } else {
        Err(ProbeError::Body(needle.to_owned()))
    }
}

/// Reads at most `limit` bytes of the body; the flag says whether more was
/// left unread.
pub async fn read_limited(
    response: &mut Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut data = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - data.len();
        if chunk.len() > room {
            data.extend_from_slice(&chunk[..room]);
            return Ok((data, true));
        }
        data.extend_from_slice(&chunk);
    }
    Ok((data, false))
}

/// The root cause of a reqwest error in a few words. reqwest's own Display
/// is "error sending request for url (…)", which repeats the URL and hides
/// the reason in the source chain.
pub fn describe(err: &reqwest::Error) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = err;
    while let Some(next) = cause.source() {
        if let Some(io) = next.downcast_ref::<io::Error>() {
            return io_reason(io);
        }
        cause = next;
    }
    cause.to_string()
}

/// An I/O error without the "(os error 111)" noise for the common cases.
pub(crate) fn io_reason(err: &io::Error) -> String {
    use io::ErrorKind as K;
    let reason = match err.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::TimedOut => "timed out",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::AddrNotAvailable => "address not available",
        K::UnexpectedEof => "connection closed early",
        _ => return err.to_string(),
    };
    reason.to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_server::{closed_port, TestServer};

    fn http_cfg(url: String) -> HealthConfig {
        HealthConfig {
            jitter: 0.0,
            ..HealthConfig::http(url)
        }
    }

    fn tcp_cfg(addr: String) -> HealthConfig {
        HealthConfig {
            http: None,
            tcp: Some(addr),
            ..http_cfg(String::new())
        }
    }

    #[tokio::test]
    async fn http_ok_sends_user_agent() {
        let server = TestServer::respond(200, "ok").await;
        let prober = Prober::new().unwrap();
        assert_eq!(
            prober.check(&http_cfg(server.url("/healthz"))).await,
            Ok(())
        );
        assert_eq!(server.header("user-agent"), ["boltz-health/0.1"]);
        server.stop().await;
    }

    #[tokio::test]
    async fn http_each_check_opens_a_new_connection() {
        let server = TestServer::respond(200, "ok").await;
        let prober = Prober::new().unwrap();
        let cfg = http_cfg(server.url("/"));
        for _ in 0..3 {
            assert_eq!(prober.check(&cfg).await, Ok(()));
        }
        // The responder keeps connections open, so a pooling client would
        // have sent all three requests over one.
        assert_eq!(server.connections(), 3);
        server.stop().await;
    }

    #[tokio::test]
    async fn http_wrong_status() {
        let server = TestServer::respond(503, "down").await;
        let prober = Prober::new().unwrap();
        let mut cfg = http_cfg(server.url("/"));
        cfg.expect = Some(vec![200]);
        let err = prober.check(&cfg).await.unwrap_err();
        assert_eq!(err.to_string(), "status 503 not in [200]");

        cfg.expect = None;
        let err = prober.check(&cfg).await.unwrap_err();
        assert_eq!(err.to_string(), "status 503 not in 200-399");
        server.stop().await;
    }

    #[tokio::test]
    async fn http_redirect_is_not_followed() {
        let server = TestServer::respond(302, "").await;
        let prober = Prober::new().unwrap();
        assert_eq!(prober.check(&http_cfg(server.url("/"))).await, Ok(()));
        server.stop().await;
    }

    #[tokio::test]
    async fn http_body_must_contain_substring() {
        let server = TestServer::respond(200, "{\"status\":\"ok\"}").await;
        let prober = Prober::new().unwrap();
        let mut cfg = http_cfg(server.url("/"));
        cfg.body = Some("\"ok\"".to_owned());
        assert_eq!(prober.check(&cfg).await, Ok(()));
        cfg.body = Some("healthy".to_owned());
        let err = prober.check(&cfg).await.unwrap_err();
        assert_eq!(err.to_string(), "body does not contain \"healthy\"");
        server.stop().await;
    }

    #[tokio::test]
    async fn http_body_search_is_limited_to_64_kib() {
        let big = format!("{}needle", "x".repeat(MAX_BODY));
        let server = TestServer::respond(200, &big).await;
        let prober = Prober::new().unwrap();
        let mut cfg = http_cfg(server.url("/"));
        cfg.body = Some("needle".to_owned());
        assert_eq!(
            prober.check(&cfg).await,
            Err(ProbeError::Body("needle".to_owned()))
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn http_host_header_override_is_sent() {
        let server = TestServer::respond(200, "ok").await;
        let prober = Prober::new().unwrap();
        let mut cfg = http_cfg(server.url("/"));
        assert_eq!(prober.check(&cfg).await, Ok(()));
        cfg.host = Some("www.example.com".to_owned());
        assert_eq!(prober.check(&cfg).await, Ok(()));
        assert_eq!(
            server.header("host"),
            [server.addr.to_string(), "www.example.com".to_owned()]
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn http_connection_refused() {
        let addr = closed_port().await;
        let prober = Prober::new().unwrap();
        let err = prober
            .check(&http_cfg(format!("http://{addr}/")))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "connect: connection refused");
    }

    #[tokio::test]
    async fn http_timeout_when_server_never_answers() {
        let server = TestServer::hang().await;
        let prober = Prober::new().unwrap();
        let mut cfg = http_cfg(server.url("/"));
        cfg.timeout = Some(Duration::from_millis(200));
        let err = prober.check(&cfg).await.unwrap_err();
        assert_eq!(err, ProbeError::Timeout(Duration::from_millis(200)));
        assert_eq!(err.to_string(), "timeout after 200ms");
        // The request did reach the server: this was not a connect failure.
        assert_eq!(server.header("host").len(), 1);
        server.stop().await;
    }

    #[tokio::test]
    async fn tcp_ok_and_refused() {
        let server = TestServer::hang().await;
        let prober = Prober::new().unwrap();
        assert_eq!(
            prober.check(&tcp_cfg(server.addr.to_string())).await,
            Ok(())
        );
        server.stop().await;

        let addr = closed_port().await;
        let err = prober.check(&tcp_cfg(addr.to_string())).await.unwrap_err();
        assert_eq!(err.to_string(), "connect: connection refused");
    }

    #[tokio::test]
    async fn invalid_config_is_an_error_not_a_panic() {
        let prober = Prober::new().unwrap();
        let err = prober
            .check(&http_cfg("ftp://x/".to_owned()))
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Config(_)), "{err}");
        let mut cfg = http_cfg("http://x/".to_owned());
        cfg.tcp = Some("127.0.0.1:1".to_owned());
        assert!(matches!(
            prober.check(&cfg).await,
            Err(ProbeError::Config(_))
        ));
    }
}
