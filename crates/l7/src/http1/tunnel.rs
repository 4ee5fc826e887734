//! A protocol switch (WebSocket) between HTTP/1.1 sides: once a backend
//! answers `101 Switching Protocols` to a request that asked for it, the
//! client connection stops being HTTP and becomes a byte tunnel to the
//! backend's socket ([`tunnel`]).

use std::io;

use bytes::BytesMut;
use http::Response;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::response::head_fields;
use crate::headers::Via;
use crate::proxy::ProxyBody;

/// After a backend's `101 Switching Protocols`: writes its head to the
/// client, then relays bytes both ways until either side closes. The
/// request stays counted in flight at its backend meanwhile; the
/// connection's idle timeout still applies.
pub(super) async fn tunnel<IO: AsyncRead + AsyncWrite + Unpin>(
    mut io: IO,
    wbuf: &mut Vec<u8>,
    via: &Via,
    resp: Response<ProxyBody>,
    client_sent: BytesMut,
) -> io::Result<()> {
    let (parts, mut body) = resp.into_parts();
    wbuf.clear();
    head_fields(wbuf, &parts, &body, via);
    wbuf.extend_from_slice(b"\r\n");
    drop(parts);
    let Some(mut up) = body.take_switched() else {
        return Ok(());
    };
    // What the backend sent right behind its head goes out with it.
    wbuf.extend_from_slice(&up.read);
    io.write_all(wbuf).await?;
    if !client_sent.is_empty() {
        up.stream.write_all(&client_sent).await?;
    }
    if let Err(e) = tokio::io::copy_bidirectional(&mut io, &mut up.stream).await {
        tracing::debug!(error = %e, "tunnel ended");
    }
    Ok(())
}
