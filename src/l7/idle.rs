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
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A coarse clock: a few ns to read, ticks every few ms, which is plenty
/// for an idle timeout measured in seconds.
use crate::util::clock::coarse_ns as now_ns;

#[derive(Debug)]
struct Stamps {
    /// When the connection last moved a byte (now_ns()).
    last: AtomicU64,
    /// When the request head being read began; 0 between requests.
    head: AtomicU64,
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
/// moved for `idle` or a request head open for longer than `header`.
pub async fn run<T, F: Future<Output = T>>(
    conn: F,
    activity: Activity,
    idle: Duration,
    header: Duration,
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
        let head_deadline = if head != 0 { head + header_ns } else { now + header_ns };
        let deadline = (activity.last() + idle_ns).min(head_deadline);
        let wait = Duration::from_nanos(deadline.saturating_sub(now).max(1_000_000));
        tokio::select! {
            r = &mut conn => return Some(r),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
