//! What a new connection speaks, decided from its first bytes: a
//! connection that opens with the HTTP/2 preface (prior knowledge, or
//! after ALPN `h2`) goes to hyper's HTTP/2 server, anything else to
//! boltz's HTTP/1.1 server ([`crate::http1::server`]). The bytes read to
//! decide are not lost: the HTTP/1.1 server continues from the buffer, and
//! hyper reads them again through [`Rewind`]. Used by the listeners
//! ([`crate::listen`]), before either protocol's code runs.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use super::http1::READ_CHUNK;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a new connection speaks.
#[derive(Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (or after ALPN `h2`).
    Http2,
}

/// Reads a connection's first bytes into `buf` until HTTP/2's preface is
/// seen or ruled out; `None` if the peer closed first.
pub async fn sniff<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
) -> io::Result<Option<Protocol>> {
    loop {
        let n = buf.len().min(H2_PREFACE.len());
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(Protocol::Http1));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(Protocol::Http2));
        }
        buf.reserve(READ_CHUNK);
        if io.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// A stream whose first reads return bytes already taken from it.
pub struct Rewind<T> {
    pre: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    pub fn new(pre: Bytes, inner: T) -> Rewind<T> {
        Rewind { pre, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn sniff_tells_h2_from_h1_and_rewinds() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(H2_PREFACE).await.unwrap();
        a.write_all(b"rest").await.unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(
            sniff(&mut b, &mut buf).await.unwrap(),
            Some(Protocol::Http2)
        );
        let mut r = Rewind::new(buf.freeze(), b);
        let mut got = vec![0u8; H2_PREFACE.len() + 4];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..H2_PREFACE.len()], H2_PREFACE);
        assert_eq!(&got[H2_PREFACE.len()..], b"rest");
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"PRI * HTTP/1.1\r\n").await.unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(
            sniff(&mut b, &mut buf).await.unwrap(),
            Some(Protocol::Http1)
        );
        drop(a);
        let (a, mut b) = tokio::io::duplex(1024);
        drop(a);
        assert_eq!(sniff(&mut b, &mut BytesMut::new()).await.unwrap(), None);
    }
}
