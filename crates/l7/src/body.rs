//! Request bodies on their way to a backend. A request reaches the proxy
//! either from hyper (HTTP/2 clients) or from boltz's own HTTP/1.1 server
//! ([`super::http1::server`]); [`ReqBody`] carries either, plus the two cheap
//! cases that need no streaming at all: no body, and a body that was
//! already whole in the read buffer with its head. Both client sides
//! produce it, so it sits beside `http1/` rather than in it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::mpsc;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How many body pieces may wait between the client's reader and the
/// backend's writer before the reader stops reading (back-pressure).
pub const STREAM_DEPTH: usize = 4;

/// A request body as the proxy forwards it.
#[derive(Debug)]
pub enum ReqBody {
    /// No body (or a retry of a request without one).
    Empty,
    /// The whole body, already read.
    Full(Option<Bytes>),
    /// From hyper's server (HTTP/2 clients).
    Hyper(Incoming),
    /// Streamed from an HTTP/1.1 client connection by its reader.
    Stream {
        rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
        /// Bytes still to come when the length is known.
        remaining: Option<u64>,
    },
}

impl ReqBody {
    /// A streamed body and the sender its reader feeds.
    pub fn stream(length: Option<u64>) -> (mpsc::Sender<Result<Bytes, std::io::Error>>, ReqBody) {
        let (tx, rx) = mpsc::channel(STREAM_DEPTH);
        (
            tx,
            ReqBody::Stream {
                rx,
                remaining: length,
            },
        )
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut *self {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ReqBody::Stream { rx, remaining } => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    if let Some(n) = remaining {
                        *n = n.saturating_sub(data.len() as u64);
                    }
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(b) => b.is_none(),
            ReqBody::Hyper(b) => b.is_end_stream(),
            ReqBody::Stream { remaining, .. } => *remaining == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqBody::Hyper(b) => b.size_hint(),
            ReqBody::Stream { remaining, .. } => match remaining {
                Some(n) => SizeHint::with_exact(*n),
                None => SizeHint::default(),
            },
        }
    }
}
