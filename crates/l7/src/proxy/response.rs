//! What flows back to the client: [`ProxyBody`] streams the backend's
//! response (or an answer boltz made itself) and holds [`Done`] — the
//! backend's in-flight count, the admission permit and the worker's gauge
//! — until its last byte, then returns the connection to this worker's
//! pool; [`Switched`] is the backend's side of a protocol switch.

use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Version;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use crate::backend::InFlight;
use crate::body::BoxError;
use crate::control::Control;
use crate::http1;
use crate::http1::fields::RawFields;
use crate::upstream;

/// Everything a finished response must release, in one place.
pub(super) struct Done {
    pub(super) _in_flight: InFlight,
    pub(super) _admission: Option<OwnedSemaphorePermit>,
    pub(super) l7: Arc<Control>,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.l7.metrics.here().in_flight.fetch_sub(1, Relaxed);
    }
}

/// Where a response body comes from.
pub(super) enum Inner {
    /// A backend over HTTP/1.1 (our client; the connection rides along).
    H1(http1::client::ResponseBody),
    /// A backend over h2c (hyper's client).
    H2(Incoming),
    /// An answer boltz made itself.
    Local(Full<Bytes>),
}

/// The backend's side of a protocol switch (a WebSocket, say). The
/// request stays counted in flight at its backend until this is dropped.
pub struct Switched {
    pub stream: tokio::net::TcpStream,
    /// What the backend sent after its `101` head, already read.
    pub read: bytes::BytesMut,
    _done: Option<Done>,
}

/// A response body: the backend's, streamed, or one boltz wrote.
pub struct ProxyBody {
    pub(super) inner: Inner,
    pub(super) done: Option<Done>,
}

impl ProxyBody {
    pub(super) fn local(text: &str) -> Self {
        ProxyBody {
            inner: Inner::Local(Full::new(Bytes::copy_from_slice(text.as_bytes()))),
            done: None,
        }
    }

    /// The fields of an HTTP/1.1 backend's response head as received, and
    /// its version: the response's own header map is then empty, and the
    /// fields still need their rewrite ([`super::headers::write_response`]).
    pub fn raw_head(&self) -> Option<(&RawFields, Version)> {
        match &self.inner {
            Inner::H1(b) => b.head(),
            _ => None,
        }
    }

    /// After a `101 Switching Protocols` to a request that asked for it:
    /// the backend's side of the tunnel that follows.
    pub fn take_switched(&mut self) -> Option<Switched> {
        let Inner::H1(b) = &mut self.inner else {
            return None;
        };
        let (stream, read) = b.take_switched()?;
        Some(Switched {
            stream,
            read,
            _done: self.done.take(),
        })
    }

    /// Lets go of [`ProxyBody::raw_head`] once it has been forwarded.
    pub fn release_head(&mut self) {
        if let Inner::H1(b) = &mut self.inner {
            b.release_head();
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let r: Poll<Option<Result<Frame<Bytes>, BoxError>>> = match &mut this.inner {
            Inner::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::H2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::Local(f) => Pin::new(f).poll_frame(cx).map_err(|e| match e {}),
        };
        let ended = match &r {
            Poll::Ready(None) => true,
            // hyper stops polling once a body of known length says it has
            // ended, so the last frame is the end too.
            Poll::Ready(Some(Ok(_))) => this.is_end_stream(),
            Poll::Ready(Some(Err(_))) => {
                this.done = None;
                false
            }
            Poll::Pending => false,
        };
        if ended {
            // Read to the end: the connection can serve another request.
            if let Inner::H1(b) = &mut this.inner {
                if let Some(c) = b.take_reusable() {
                    upstream::checkin(c);
                }
            }
            this.done = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::H1(b) => b.is_end_stream(),
            Inner::H2(b) => b.is_end_stream(),
            Inner::Local(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::H1(b) => b.size_hint(),
            Inner::H2(b) => b.size_hint(),
            Inner::Local(f) => f.size_hint(),
        }
    }
}
