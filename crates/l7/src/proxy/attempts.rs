//! One request's attempts at the backends of its pool, as [`super::forward`]
//! makes them: admission to the pool, the pick that skips backends already
//! tried, what a failure or a response means (retry, give up, answer), and
//! the booking of each exchange for the balancer, the breaker and outlier
//! detection. Nothing here waits: the awaits stay in `forward`, whose
//! future must not be copied through layers.

use std::sync::atomic::Ordering::Relaxed;

use http::{Response, StatusCode, Version};

use super::response::{Done, Inner, ProxyBody};
use super::{local, MAX_TRIES};
use crate::backend::Backend;
use crate::control::Control;
use crate::headers;
use crate::limits::ConcurrencyPermit;
use crate::outlier::{self, Outcome};
use crate::pick::PickContext;
use crate::pool::Pool;
use crate::worker::worker;
use boltz_core::clock::precise_ns;

/// How an attempt failed without a response.
#[derive(Debug, Clone, Copy)]
pub(super) enum Failure {
    /// No connection to the backend.
    Connect,
    /// The exchange broke (reset, malformed answer, body error).
    Exchange,
}

/// One request's attempts at the backends of its pool: what the request
/// allows (retries, replays, a protocol switch), which backends it tried
/// and what went wrong. It lives in [`super::forward`]'s future, nothing is
/// allocated; each phase of an attempt that does not wait is a method.
pub(super) struct Attempts<'a> {
    l7: &'a Control,
    pool: &'a Pool,
    /// The request's version, which the response takes.
    version: Version,
    /// The client asked to switch protocols and the pool can.
    upgrade: bool,
    /// Idempotent and without a body: may be sent again after sending.
    replayable: bool,
    /// The pool's concurrency permit, fed by the first response.
    limit: Option<ConcurrencyPermit>,
    worker: usize,
    /// Retries allowed after the first attempt.
    retries: u32,
    /// Backends already tried (indexes), the first `ntried` of them.
    tried: [usize; MAX_TRIES],
    pub(super) ntried: usize,
    /// Retries sent so far.
    attempt: u32,
    /// Why the last attempt did not answer.
    pub(super) last_error: &'static str,
    /// What to answer when no backend is left: overload (503) or failure
    /// (502).
    give_up: StatusCode,
}

impl<'a> Attempts<'a> {
    /// Admits the request to `pool`, whose concurrency limit may refuse
    /// it (`None`), and starts its attempts.
    pub(super) fn admit(
        l7: &'a Control,
        pool: &'a Pool,
        version: Version,
        upgrade: bool,
        replayable: bool,
    ) -> Option<Self> {
        let limit = match &pool.concurrency {
            None => None,
            Some(cl) => Some(cl.try_acquire()?),
        };
        Some(Attempts {
            l7,
            pool,
            version,
            upgrade,
            replayable,
            limit,
            worker: worker(),
            retries: pool.config.retry.retries,
            tried: [usize::MAX; MAX_TRIES],
            ntried: 0,
            attempt: 0,
            last_error: "no backend available (down, ejected, draining or breaker open)",
            give_up: StatusCode::SERVICE_UNAVAILABLE,
        })
    }

    /// The next backend to try at `now`, counted as tried; `None` when no
    /// eligible backend is left untried (or `MAX_TRIES` were).
    pub(super) fn pick(&mut self, now: u64, hash: Option<u64>) -> Option<usize> {
        let pool = self.pool;
        let ctx = PickContext {
            now,
            hash,
            exclude: &self.tried[..self.ntried],
            panic: pool.in_panic(),
            worker: self.worker,
        };
        let picked = if self.ntried < MAX_TRIES {
            pool.picker.pick(&pool.backends, &ctx)
        } else {
            None
        };
        let i = picked?;
        self.tried[self.ntried] = i;
        self.ntried += 1;
        Some(i)
    }

    /// The answer when no backend is left to try.
    pub(super) fn exhausted(&self) -> Response<ProxyBody> {
        self.l7.metrics.here().no_backend.fetch_add(1, Relaxed);
        local(self.l7, self.give_up, &format!("{}\n", self.last_error))
    }

    /// Whether a retry could still follow this attempt after sending (an
    /// h2c head is then kept for it).
    pub(super) fn may_resend(&self) -> bool {
        self.replayable && self.attempt < self.retries
    }

    /// Whether another attempt may be made: within the retries allowed
    /// and paid from the pool's retry budget. If so, it is counted.
    pub(super) fn retry(&mut self) -> bool {
        if self.attempt >= self.retries {
            return false;
        }
        let m = self.l7.metrics.here();
        if self.pool.retry.try_retry(precise_ns()) {
            m.retries.fetch_add(1, Relaxed);
            self.attempt += 1;
            true
        } else {
            m.retries_refused.fetch_add(1, Relaxed);
            false
        }
    }

    /// Books an attempt at `b` that failed without a response, and
    /// decides: `None` to try another backend (when the failure allows it
    /// and a retry is allowed), else the 502 to answer.
    pub(super) fn failed(
        &mut self,
        b: &Backend,
        f: Failure,
        took: u64,
        at: u64,
    ) -> Option<Response<ProxyBody>> {
        let (outcome, why, answer, retryable) = match f {
            // Nothing was sent: any method may go to another backend.
            Failure::Connect => (
                Outcome::ConnectFailure,
                "could not connect to a backend",
                "could not connect to a backend\n",
                true,
            ),
            Failure::Exchange => (
                Outcome::Reset,
                "backend failed the request",
                "backend failed the request\n",
                self.replayable,
            ),
        };
        book(self.pool, b, outcome, took, at);
        self.l7.metrics.here().upstream_errors.fetch_add(1, Relaxed);
        self.last_error = why;
        self.give_up = StatusCode::BAD_GATEWAY;
        if retryable && self.retry() {
            return None;
        }
        Some(local(self.l7, StatusCode::BAD_GATEWAY, answer))
    }

    /// Books a response from `b` and decides: `None` to retry a 502, 503
    /// or 504 elsewhere (when the request is replayable and a retry is
    /// allowed), else the response for the client, its body holding
    /// `done` until its end.
    pub(super) fn answered(
        &mut self,
        b: &Backend,
        resp: Response<Inner>,
        rtt: u64,
        now: u64,
        done: Done,
    ) -> Option<Response<ProxyBody>> {
        let l7 = self.l7;
        let status = resp.status();
        let outcome = if status.is_server_error() {
            Outcome::ServerError
        } else {
            Outcome::Success
        };
        book(self.pool, b, outcome, rtt, now);
        if let Some(p) = self.limit.take() {
            // Only overload signals shrink the window, not every 5xx.
            let overload = matches!(
                status,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
            );
            p.done(rtt, overload);
        }
        let retryable_status = matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        );
        if retryable_status && self.replayable && self.retry() {
            drop(done);
            self.last_error = "backend answered 5xx";
            self.give_up = StatusCode::BAD_GATEWAY;
            return None;
        }
        if status == StatusCode::SWITCHING_PROTOCOLS && !self.upgrade {
            drop(done);
            l7.metrics.here().upstream_errors.fetch_add(1, Relaxed);
            let why = "backend switched protocols unasked\n";
            return Some(local(l7, StatusCode::BAD_GATEWAY, why));
        }
        let (mut rparts, rbody) = resp.into_parts();
        // An HTTP/1.1 backend's fields are rewritten as they are
        // written out.
        if !matches!(rbody, Inner::H1(_)) {
            headers::strip_hop_by_hop(&mut rparts.headers);
            l7.via.add(&mut rparts.headers, rparts.version);
        }
        rparts.version = self.version;
        l7.metrics.count_status(status.as_u16());
        Some(Response::from_parts(
            rparts,
            ProxyBody {
                inner: rbody,
                done: Some(done),
            },
        ))
    }
}

/// Books the outcome of one exchange with backend `b`: latency and failure
/// rate for the balancer, the breaker, and outlier detection.
fn book(pool: &Pool, b: &Backend, outcome: Outcome, rtt_ns: u64, now: u64) {
    let failed = !matches!(outcome, Outcome::Success);
    b.record(
        rtt_ns,
        failed,
        now,
        pool.config.ewma_decay.as_nanos() as f64,
    );
    b.breaker.on_result(now, failed);
    if let Some(o) = &pool.config.outlier {
        if let Some(t) = outlier::record(o, &pool.backends, b, outcome, now) {
            tracing::warn!(pool = %pool.name, backend = %b.addr, ejected_for = ?t, "backend ejected");
        }
    }
}
