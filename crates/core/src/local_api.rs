//! Guards and replies shared by the local HTTP APIs of `boltz serve`,
//! `boltz l4` and `boltz l7`: JSON errors, the bearer-token check, and the
//! rule that changes over a Unix socket are guarded by its file mode while
//! changes over TCP need the token.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A `/metrics` answer: Prometheus text with its content type.
pub fn metrics(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// A JSON `{"error": …}` response.
pub fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({ "error": msg.into() }))).into_response()
}

/// The bearer-token check: `None` when `headers` carry `token`, else the
/// 401/403 response; `disabled` explains a missing token configuration.
pub fn refuse_without_token(
    token: Option<&str>,
    headers: &HeaderMap,
    disabled: &str,
) -> Option<Response> {
    let Some(token) = token else {
        return Some(error(StatusCode::FORBIDDEN, disabled));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => None,
        Some(_) => Some(error(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>` header",
        )),
    }
}

/// For the data planes' local APIs: changes over the Unix socket are
/// guarded by its file mode; over TCP they need the bearer token.
pub fn refuse_local_change(
    tcp: bool,
    token: Option<&str>,
    headers: &HeaderMap,
    who: &str,
) -> Option<Response> {
    if !tcp {
        return None;
    }
    refuse_without_token(
        token,
        headers,
        &format!(
            "changes over TCP need a token: start {who} with --api-token-file or BOLTZ_API_TOKEN"
        ),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
