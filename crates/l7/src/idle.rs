//! Time limits on client connections without a timer per request.
//! [`IdleIo`] wraps the socket and stamps every read and write; the server
//! stamps when a request head starts and ends and when a request is being
//! answered ([`Activity`]). One watcher task per connection ([`watch()`])
//! reads the stamps and sleeps until the earliest deadline they give:
//! - idle: no byte moved either way for `idle` while no request is being
//!   answered: the connection is dropped (socket closed);
//! - header: a request head open for longer than `header` (a slowloris
//!   client trickling bytes is never idle): dropped too;
//! - request: a request not answered within `request`: the server is told
//!   ([`Activity::answer_within`]) and answers 504 itself.
//!
//! The stamps are plain stores the watcher never hears about, yet the
//! deadlines are exact: the watcher never sleeps past `now + min(header,
//! request, idle)`, and a head, request or idle spell that starts later
//! has a later deadline than that. So the request path pays no timer and
//! no wake-up, and the connection task is polled for its own I/O only.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A coarse clock: a few ns to read, ticks every few ms, which is plenty
/// for timeouts measured in seconds.
use boltz_core::clock::coarse_ns;

#[derive(Debug, Default)]
struct Stamps {
    /// When the connection last moved a byte (coarse_ns()).
    last: AtomicU64,
    /// When the request head being read began; 0 between requests.
    head: AtomicU64,
    /// When the request being answered arrived; 0 when none is.
    request: AtomicU64,
    /// The request being answered ran out of time.
    expired: AtomicBool,
    /// The server task waiting for that answer.
    waiter: AtomicWaker,
    /// Waiting for a request with nothing of it read: closing now loses
    /// nothing.
    between: AtomicBool,
    /// The server is shutting down: answer the request at hand with
    /// `Connection: close`, then end.
    closing: AtomicBool,
}

/// A connection's activity stamps, shared by its socket wrapper, its
/// server and its watcher.
#[derive(Clone, Debug)]
pub struct Activity(Arc<Stamps>);

impl Activity {
    fn touch(&self) {
        self.0.last.store(coarse_ns(), Relaxed);
    }
    fn last(&self) -> u64 {
        self.0.last.load(Relaxed)
    }
    /// A request head has begun (its first byte, or the connection
    /// opened); the header timeout runs from the first call until
    /// [`Activity::head_end`].
    pub fn head_begin(&self) {
        if self.0.head.load(Relaxed) == 0 {
            self.0.head.store(coarse_ns().max(1), Relaxed);
        }
    }
    /// The request head is complete.
    pub fn head_end(&self) {
        self.0.head.store(0, Relaxed);
    }
    /// Whether the connection waits for a request with nothing of it read
    /// (true until the first bytes arrive).
    pub fn set_between(&self, between: bool) {
        self.0.between.store(between, Relaxed);
    }
    /// Whether the server is shutting down and this connection should end
    /// after the request at hand.
    pub fn closing(&self) -> bool {
        self.0.closing.load(Relaxed)
    }

    /// Runs `answer` (finding a request's response) under the request
    /// timeout: `None` if the watcher found it out of time first. Taken
    /// pinned where it is, as moving a future copies all of it.
    pub async fn answer_within<F: Future>(&self, mut answer: Pin<&mut F>) -> Option<F::Output> {
        let s = &*self.0;
        s.expired.store(false, Relaxed);
        s.request.store(coarse_ns().max(1), Relaxed);
        let r = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = answer.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            s.waiter.register(cx.waker());
            if s.expired.load(Relaxed) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        s.request.store(0, Relaxed);
        r
    }
}

pub struct IdleIo {
    inner: TcpStream,
    activity: Activity,
}

impl IdleIo {
    pub fn new(inner: TcpStream) -> (IdleIo, Activity) {
        let now = coarse_ns();
        // The first request's head is timed from the accept.
        let activity = Activity(Arc::new(Stamps {
            last: AtomicU64::new(now),
            head: AtomicU64::new(now.max(1)),
            between: AtomicBool::new(true),
            ..Stamps::default()
        }));
        (
            IdleIo {
                inner,
                activity: activity.clone(),
            },
            activity,
        )
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection's time limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle: Duration,
    pub header: Duration,
    pub request: Duration,
}

/// How a watched connection ended.
#[derive(Debug)]
pub enum Ended<T> {
    /// On its own, with this result.
    Done(T),
    /// Dropped by the watcher: idle, a slow head, or closed by a shutdown
    /// between requests.
    Cut(&'static str),
    /// Its task panicked or was cancelled.
    Failed(tokio::task::JoinError),
}

/// Watches the connection task `conn` until it ends, aborting it (which
/// closes its socket) when `activity` shows it idle for `limits.idle` or a
/// request head open for `limits.header`, and telling a request that has
/// waited `limits.request` for its answer. When `draining` turns true, a
/// connection between requests is closed at once and a busy one is marked
/// [`Activity::closing`] so its server ends it after the response.
pub async fn watch<T>(
    mut conn: JoinHandle<T>,
    activity: Activity,
    limits: Limits,
    mut draining: watch::Receiver<bool>,
) -> Ended<T> {
    let s = &*activity.0;
    let ns = |d: Duration| d.as_nanos() as u64;
    let (idle, header, request) = (ns(limits.idle), ns(limits.header), ns(limits.request));
    let cut = |conn: &JoinHandle<T>, why| {
        conn.abort();
        Ended::Cut(why)
    };
    loop {
        let now = coarse_ns();
        let head = s.head.load(Relaxed);
        let req = s.request.load(Relaxed);
        if head != 0 && now.saturating_sub(head) >= header {
            return cut(&conn, "request head too slow");
        }
        // A request being answered is bounded by its own limit instead.
        if req == 0 && now.saturating_sub(activity.last()) >= idle {
            return cut(&conn, "idle");
        }
        if req != 0 && now.saturating_sub(req) >= request && !s.expired.load(Relaxed) {
            s.expired.store(true, Relaxed);
            s.waiter.wake();
        }
        // A head or request starting after this look, or an idle spell
        // starting when the request at hand ends, has a deadline after
        // `now` plus its limit: never sleep past the nearest of those.
        let mut wake = now + header.min(request).min(idle);
        if head != 0 {
            wake = wake.min(head + header);
        }
        if req != 0 && !s.expired.load(Relaxed) {
            wake = wake.min(req + request);
        }
        if req == 0 {
            wake = wake.min(activity.last() + idle);
        }
        let wait = Duration::from_nanos(wake.saturating_sub(now).max(1_000_000));
        let closing = activity.closing();
        tokio::select! {
            r = &mut conn => return match r {
                Ok(r) => Ended::Done(r),
                Err(e) => Ended::Failed(e),
            },
            _ = tokio::time::sleep(wait) => {}
            _ = draining.wait_for(|d| *d), if !closing => {
                if s.between.load(Relaxed) {
                    return cut(&conn, "closed between requests by a shutdown");
                }
                s.closing.store(true, Relaxed);
            }
        }
    }
}
