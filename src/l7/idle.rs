//! Idle-connection cut-off for client connections: [`IdleIo`] wraps the
//! socket and stamps every read and write, and [`run`] drives a connection
//! until it ends or has moved no byte either way for the idle timeout, then
//! drops it (closing the socket). hyper's own header timeout covers a slow
//! request head; this covers a kept-alive connection that says nothing.

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

/// When the connection last moved a byte (now_ns()).
#[derive(Clone, Debug)]
pub struct Activity(Arc<AtomicU64>);

impl Activity {
    fn touch(&self) {
        self.0.store(now_ns(), Relaxed);
    }
    fn last(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

pub struct IdleIo {
    inner: TcpStream,
    activity: Activity,
}

impl IdleIo {
    pub fn new(inner: TcpStream) -> (IdleIo, Activity) {
        let activity = Activity(Arc::new(AtomicU64::new(now_ns())));
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
/// moved for `idle`.
pub async fn run<T, F: Future<Output = T>>(
    conn: F,
    activity: Activity,
    idle: Duration,
) -> Option<T> {
    tokio::pin!(conn);
    let idle_ns = idle.as_nanos() as u64;
    loop {
        let wait = Duration::from_nanos((activity.last() + idle_ns).saturating_sub(now_ns()));
        tokio::select! {
            r = &mut conn => return Some(r),
            _ = tokio::time::sleep(wait) => {
                if now_ns().saturating_sub(activity.last()) >= idle_ns {
                    return None;
                }
            }
        }
    }
}
