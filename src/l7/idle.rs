//! Time limits on client connections without a timer per request:
//! [`IdleIo`] wraps the socket and stamps every read and write, the server
//! marks when a request head starts and ends, and [`run`] drives the
//! connection until it ends, drops it (closing the socket) once it has
//! moved no byte either way for the idle timeout, or once a request head
//! has taken longer than the header timeout (a slowloris client trickling
//! header bytes is cut off even though it is never idle).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// A coarse clock: a few ns to read, ticks every few ms, which is plenty
/// for an idle timeout measured in seconds.
use crate::util::clock::coarse_ns as now_ns;

#[derive(Debug)]
struct Stamps {
    /// When the connection last moved a byte (now_ns()).
    last: AtomicU64,
    /// When the request head being read began; 0 between requests.
    head: AtomicU64,
    /// Waiting for a request with nothing of it read: closing now loses
    /// nothing.
    between: AtomicBool,
    /// The server is shutting down: answer the request at hand with
    /// `Connection: close`, then end.
    closing: AtomicBool,
}

/// A connection's activity stamps, shared by its socket wrapper, its
/// server and [`run`].
#[derive(Clone, Debug)]
pub struct Activity(Arc<Stamps>);

impl Activity {
    fn touch(&self) {
        self.0.last.store(now_ns(), Relaxed);
    }
    fn last(&self) -> u64 {
        self.0.last.load(Relaxed)
    }
    /// A request head has begun (its first byte, or the connection
    /// opened); the header timeout runs from the first call until
    /// [`Activity::head_end`].
    pub fn head_begin(&self) {
        if self.0.head.load(Relaxed) == 0 {
            self.0.head.store(now_ns().max(1), Relaxed);
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
}

pub struct IdleIo {
    inner: TcpStream,
    activity: Activity,
}

impl IdleIo {
    pub fn new(inner: TcpStream) -> (IdleIo, Activity) {
        let now = now_ns();
        // The first request's head is timed from the accept.
        let activity = Activity(Arc::new(Stamps {
            last: AtomicU64::new(now),
            head: AtomicU64::new(now.max(1)),
            between: AtomicBool::new(true),
            closing: AtomicBool::new(false),
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

/// Drives `conn` to its end, or drops it once `activity` shows no byte
/// moved for `idle` or a request head open for longer than `header`. When
/// `draining` turns true, a connection between requests is dropped at
/// once and a busy one is marked [`Activity::closing`] so its server ends
/// it after the response. This one watcher per connection replaces a
/// timer and a shutdown listener per request.
pub async fn run<T, F: Future<Output = T>>(
    conn: F,
    activity: Activity,
    idle: Duration,
    header: Duration,
    mut draining: watch::Receiver<bool>,
) -> Option<T> {
    tokio::pin!(conn);
    let idle_ns = idle.as_nanos() as u64;
    let header_ns = header.as_nanos() as u64;
    loop {
        let now = now_ns();
        let head = activity.0.head.load(Relaxed);
        if now.saturating_sub(activity.last()) >= idle_ns
            || (head != 0 && now.saturating_sub(head) >= header_ns)
        {
            return None;
        }
        // A head that starts while we sleep is checked at most `header`
        // later, so no timer is set per request: a slow head is cut off
        // between one and two header timeouts after it began.
        let head_deadline = if head != 0 {
            head + header_ns
        } else {
            now + header_ns
        };
        let deadline = (activity.last() + idle_ns).min(head_deadline);
        let wait = Duration::from_nanos(deadline.saturating_sub(now).max(1_000_000));
        let closing = activity.closing();
        tokio::select! {
            r = &mut conn => return Some(r),
            _ = tokio::time::sleep(wait) => {}
            _ = draining.wait_for(|d| *d), if !closing => {
                if activity.0.between.load(Relaxed) {
                    return None;
                }
                activity.0.closing.store(true, Relaxed);
            }
        }
    }
}
