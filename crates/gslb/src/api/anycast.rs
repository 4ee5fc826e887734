//! `/v1/anycast`: what the node announces (`boltz serve --anycast FILE`),
//! and the operator's drain of its prefixes. The GSLB does not know how
//! announcing works; the node hands it an [`AnycastView`] (its document,
//! its metrics, its drain switch), which also shows in `/v1/status` and
//! `/metrics`.

use std::fmt;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{refuse_unauthorised, ApiState};
use boltz_core::local_api::error;
use boltz_core::prometheus::Exposition;

/// The anycast driver as the API sees it.
#[derive(Clone)]
pub struct AnycastView {
    /// The document served (`speaker`, `drained`, `prefixes`).
    pub document: Arc<dyn Fn() -> Value + Send + Sync>,
    /// Its families in `/metrics`.
    pub render: Arc<dyn Fn(&mut Exposition) + Send + Sync>,
    /// Drains (`true`) or undrains; returns whether that changed anything.
    pub set_drained: Arc<dyn Fn(bool) -> bool + Send + Sync>,
}

impl fmt::Debug for AnycastView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnycastView")
    }
}

fn without() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "this node announces nothing: start boltz serve with --anycast FILE",
    )
}

/// GET `/v1/anycast`.
pub(super) async fn get(State(s): State<ApiState>) -> Response {
    match &s.anycast {
        Some(a) => Json((a.document)()).into_response(),
        None => without(),
    }
}

/// POST `/v1/anycast/drain`: the prefixes move to their graceful-shutdown
/// variant, then are withdrawn after the drain window.
pub(super) async fn drain(s: State<ApiState>, h: HeaderMap) -> Response {
    set(s, h, true)
}

/// DELETE `/v1/anycast/drain`: announced again once healthy.
pub(super) async fn undrain(s: State<ApiState>, h: HeaderMap) -> Response {
    set(s, h, false)
}

fn set(State(s): State<ApiState>, h: HeaderMap, on: bool) -> Response {
    if let Some(r) = refuse_unauthorised(&s, &h) {
        return r;
    }
    let Some(a) = &s.anycast else {
        return without();
    };
    let changed = (a.set_drained)(on);
    Json(json!({ "drained": on, "changed": changed })).into_response()
}
