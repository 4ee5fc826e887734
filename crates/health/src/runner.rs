//! The per-target runner: checks once at once, then every interval ± jitter,
//! feeds each result through the hysteresis and publishes a
//! [`HealthStatus`] after every check.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use boltz_core::duration::MIN_POLL_INTERVAL;

use crate::{Health, HealthConfig, Hysteresis, Prober, Transition};

/// What the runner publishes after every check.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HealthStatus {
    /// The state after the latest check.
    pub state: Health,
    /// Error of the most recent check; `None` when it passed.
    pub last_error: Option<String>,
    /// When the latest check ended (Unix ms).
    pub last_check_unix_ms: Option<u64>,
    /// Checks completed since the runner started.
    pub checks: u64,
    /// State changes since the runner started, including the first
    /// unknown → up/down.
    pub transitions: u64,
}

/// Checks `cfg` forever: once immediately, so the unknown period lasts one
/// check rather than one interval, then every `interval` ± jitter measured
/// from the start of the previous check. Abort the handle to stop it.
pub fn spawn(
    name: String,
    cfg: HealthConfig,
    prober: Arc<Prober>,
    publish: Arc<dyn Fn(HealthStatus) + Send + Sync>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut hysteresis = Hysteresis::new(cfg.rise, cfg.fall);
        let mut status = HealthStatus::default();
        loop {
            let started = Instant::now();
            let result = prober.check(&cfg).await;
            status.checks += 1;
            status.last_check_unix_ms = boltz_core::clock::unix_ms();
            status.last_error = result.err().map(|e| e.to_string());
            let error = status.last_error.as_deref();
            match hysteresis.observe(error.is_none()) {
                Some(t) => {
                    status.transitions += 1;
                    log_transition(&name, t, error);
                }
                None => {
                    if let Some(error) = error {
                        tracing::debug!(dc = %name, state = %hysteresis.state(), error, "health check failed");
                    }
                }
            }
            status.state = hysteresis.state();
            publish(status.clone());
            tokio::time::sleep_until(started + next_delay(cfg.interval, cfg.jitter)).await;
        }
    })
}

fn log_transition(name: &str, t: Transition, error: Option<&str>) {
    match t.to {
        Health::Down => tracing::warn!(
            dc = %name,
            from = %t.from,
            to = %t.to,
            error = error.unwrap_or_default(),
            "datacenter health changed"
        ),
        _ => tracing::info!(dc = %name, from = %t.from, to = %t.to, "datacenter health changed"),
    }
}

/// `interval` scaled by a random factor in `1 ± jitter`; out-of-range jitter
/// is clamped rather than trusted.
fn next_delay(interval: Duration, jitter: f64) -> Duration {
    let spread = if jitter.is_finite() {
        jitter.clamp(0.0, 0.5)
    } else {
        0.0
    };
    let factor = 1.0 + spread * (2.0 * random_unit() - 1.0);
    Duration::try_from_secs_f64(interval.as_secs_f64() * factor)
        .unwrap_or(interval)
        .max(MIN_POLL_INTERVAL)
}

/// A number in [0, 1). Jitter only needs to differ between DCs and between
/// DNS nodes, and std's per-instance random hasher keys give that without a
/// dependency.
fn random_unit() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(since) = SystemTime::now().duration_since(UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{closed_port, Reply, TestServer};
    use tokio::sync::mpsc;

    #[test]
    fn delay_stays_within_jitter() {
        let i = Duration::from_secs(10);
        assert_eq!(next_delay(i, 0.0), i);
        assert_eq!(next_delay(i, f64::NAN), i);
        assert_eq!(next_delay(Duration::ZERO, 0.1), MIN_POLL_INTERVAL);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = next_delay(i, 0.1);
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
            seen.insert(d);
            let d = next_delay(i, 7.0);
            assert!(
                d >= Duration::from_secs(5) && d <= Duration::from_secs(15),
                "{d:?}"
            );
        }
        assert!(seen.len() > 100, "jitter is not random: {}", seen.len());
    }

    fn cfg(url: String) -> HealthConfig {
        HealthConfig {
            interval: Duration::from_millis(50),
            // Longer than the interval (which validation would reject) so a
            // slow CI machine cannot turn a good check into a timeout; the
            // failures these tests provoke are refusals, which are instant.
            timeout: Some(Duration::from_secs(5)),
            jitter: 0.0,
            ..HealthConfig::http(url)
        }
    }

    fn run(cfg: HealthConfig) -> (JoinHandle<()>, mpsc::UnboundedReceiver<HealthStatus>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let publish = Arc::new(move |s: HealthStatus| {
            let _ = tx.send(s);
        });
        let prober = Arc::new(Prober::new().unwrap());
        (spawn("dc1".to_owned(), cfg, prober, publish), rx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<HealthStatus>) -> HealthStatus {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no status published within 10s")
            .expect("runner stopped")
    }

    #[tokio::test]
    async fn first_failed_check_goes_down_at_once() {
        let addr = closed_port().await;
        let (handle, mut rx) = run(cfg(format!("http://{addr}/")));
        let s = next(&mut rx).await;
        assert_eq!(s.state, Health::Down);
        assert_eq!((s.checks, s.transitions), (1, 1));
        assert_eq!(s.last_error.as_deref(), Some("connect: connection refused"));
        handle.abort();
    }

    #[tokio::test]
    async fn runner_follows_server_down_and_back_up() {
        let server = TestServer::respond(200, "ok").await;
        let addr = server.addr;
        let (handle, mut rx) = run(cfg(server.url("/healthz")));

        let s = next(&mut rx).await;
        assert_eq!(s.state, Health::Up);
        assert_eq!((s.checks, s.transitions), (1, 1));
        assert_eq!(s.last_error, None);
        assert!(s.last_check_unix_ms.is_some());

        server.stop().await;
        // fall = 3: the first two failures leave it up, the third takes it
        // down. Checks that finished before the stop may still pass.
        let mut failures = 0;
        loop {
            let s = next(&mut rx).await;
            if s.last_error.is_none() {
                assert_eq!(failures, 0, "{s:?}");
                continue;
            }
            failures += 1;
            if failures < 3 {
                assert_eq!(s.state, Health::Up, "{s:?}");
            } else {
                assert_eq!(s.state, Health::Down, "{s:?}");
                assert_eq!(s.transitions, 2);
                break;
            }
        }

        let server = TestServer::start_on(
            addr,
            Reply::Respond {
                status: 200,
                body: "ok".to_owned(),
            },
        )
        .await;
        // rise = 2: the first success keeps it down, the second brings it up.
        let mut successes = 0;
        loop {
            let s = next(&mut rx).await;
            if s.last_error.is_some() {
                assert_eq!(successes, 0, "{s:?}");
                assert_eq!(s.state, Health::Down);
                continue;
            }
            successes += 1;
            if successes < 2 {
                assert_eq!(s.state, Health::Down, "{s:?}");
            } else {
                assert_eq!(s.state, Health::Up, "{s:?}");
                assert_eq!(s.transitions, 3);
                break;
            }
        }
        handle.abort();
        server.stop().await;
    }
}
