//! One DC's load document, the [`FeedReport`]: what a polled feed answers
//! and what `boltz serve --datacenter` publishes on `/v1/site`. The reader
//! ([`FeedReport::parse`]) and the writer (`Serialize`) are one type, so a
//! producer writes exactly what every reader parses back. The format is in
//! the docs of [`crate::load`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use boltz_core::duration::format_duration;

/// What the DC says of its own health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedHealth {
    /// Serving normally: no effect.
    Up,
    /// Usable, but names that can point at it get the shortened TTL.
    Degraded,
    /// Unusable, as if its health probe had failed.
    Down,
}

impl FeedHealth {
    const NAMES: [(&'static str, FeedHealth); 3] = [
        ("up", FeedHealth::Up),
        ("degraded", FeedHealth::Degraded),
        ("down", FeedHealth::Down),
    ];

    /// The Prometheus value: 1 up, 0.5 degraded, 0 down.
    pub fn gauge(self) -> f64 {
        match self {
            FeedHealth::Up => 1.0,
            FeedHealth::Degraded => 0.5,
            FeedHealth::Down => 0.0,
        }
    }
}

/// One decoded load document. Every field but `utilisation` is optional and
/// skipped when absent, so what older producers send still parses and what
/// this type writes is read back equal by [`FeedReport::parse`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeedReport {
    /// Load over capacity: 0 idle, 1 at capacity, above 1 overloaded.
    pub utilisation: f64,
    /// Effective capacity in requests/s (finite, > 0); while the feed is
    /// fresh it replaces the zone's declared `capacity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
    /// The DC's own verdict; `down` excludes it from answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<FeedHealth>,
    /// Why, for operators (status, explain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The producer's sample number: a document repeating the last applied
    /// `seq` is not applied again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When the sample was measured (Unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_unix_ms: Option<u64>,
    /// The producer's previous samples, `[seq, utilisation]`, oldest first:
    /// a reader that missed some (a failed or late poll) applies them before
    /// this one, so it takes the same EWMA steps as every other reader.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<(u64, f64)>,
    /// Where the DC's demand comes from: `[latitude, longitude, rate]` per
    /// cell (rate in requests/s, the unit of `capacity`). The zone's price
    /// step fits the union of its DCs' maps to capacity directly
    /// (model-predictive steering), calibrated by the measured loads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub demand: Vec<(f64, f64, f64)>,
}

/// A load document that cannot be used; the message names the field.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ReportError {
    /// Not JSON, or not an object.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// One field's value is wrong.
    #[error("`{field}` {reason}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No load figure at all.
    #[error("neither `utilisation` nor `requests_per_second` present")]
    Missing,
}

impl FeedReport {
    /// A report of `utilisation` alone.
    pub fn new(utilisation: f64) -> Self {
        FeedReport {
            utilisation,
            capacity: None,
            health: None,
            reason: None,
            seq: None,
            timestamp_unix_ms: None,
            recent: Vec::new(),
            demand: Vec::new(),
        }
    }

    /// Decodes a load document. Unknown fields are ignored so that
    /// producers can add fields without breaking older readers; a `null`
    /// counts as absent for the same reason. `declared_capacity` (the
    /// zone's `capacity`) converts a `requests_per_second` document when
    /// the document brings no `capacity` of its own.
    pub fn parse(body: &[u8], declared_capacity: Option<f64>) -> Result<Self, ReportError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| ReportError::Json(e.to_string()))?;
        let Value::Object(doc) = value else {
            return Err(ReportError::Json(format!(
                "expected an object, got {}",
                kind(&value)
            )));
        };
        let optional_integer = |field| present(&doc, field).map(|v| integer(field, v)).transpose();
        let timestamp_unix_ms = optional_integer("timestamp_unix_ms")?;
        let seq = optional_integer("seq")?;
        let capacity = present(&doc, "capacity")
            .map(|v| positive_capacity(number("capacity", v)?))
            .transpose()?;
        let health = present(&doc, "health").map(health).transpose()?;
        let reason = match present(&doc, "reason") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                return Err(ReportError::Field {
                    field: "reason",
                    reason: format!("must be a string, got {}", kind(v)),
                })
            }
        };
        let utilisation = if let Some(v) = present(&doc, "utilisation") {
            number("utilisation", v)?
        } else if let Some(v) = present(&doc, "requests_per_second") {
            per_capacity(
                number("requests_per_second", v)?,
                capacity.or(declared_capacity),
            )?
        } else {
            return Err(ReportError::Missing);
        };
        let recent = match present(&doc, "recent") {
            None => Vec::new(),
            Some(v) => recent(v)?,
        };
        let demand = match present(&doc, "demand") {
            None => Vec::new(),
            Some(v) => demand(v)?,
        };
        Ok(FeedReport {
            utilisation,
            capacity,
            health,
            reason,
            seq,
            timestamp_unix_ms,
            recent,
            demand,
        })
    }

    /// Checks a report about to be applied: its values (a report built in
    /// code skipped [`FeedReport::parse`]) and its age. A sample measured
    /// longer than `stale_after` ago by this host's clock (`now_unix_ms`)
    /// is rejected, so an agent serving a frozen value counts as a dead
    /// feed. Only age is checked: a timestamp in the future is clock skew
    /// between hosts, not a reason to drop it.
    pub fn check(
        &self,
        stale_after: Duration,
        now_unix_ms: Option<u64>,
    ) -> Result<(), ReportError> {
        finite_non_negative("utilisation", self.utilisation)?;
        if let Some(c) = self.capacity {
            positive_capacity(c)?;
        }
        let (Some(ts), Some(now)) = (self.timestamp_unix_ms, now_unix_ms) else {
            return Ok(());
        };
        let age = Duration::from_millis(now.saturating_sub(ts));
        if age <= stale_after {
            return Ok(());
        }
        Err(ReportError::Field {
            field: "timestamp_unix_ms",
            reason: format!(
                "is {} old, beyond load.stale_after ({})",
                // Whole seconds are precise enough and read better.
                format_duration(if age.as_secs() > 0 {
                    Duration::from_secs(age.as_secs())
                } else {
                    age
                }),
                format_duration(stale_after)
            ),
        })
    }
}

fn positive_capacity(c: f64) -> Result<f64, ReportError> {
    let c = finite_non_negative("capacity", c)?;
    if c > 0.0 {
        Ok(c)
    } else {
        Err(ReportError::Field {
            field: "capacity",
            reason: format!("must be greater than 0 (requests/s), got {c}"),
        })
    }
}

fn per_capacity(rps: f64, capacity: Option<f64>) -> Result<f64, ReportError> {
    let Some(c) = capacity.filter(|c| c.is_finite() && *c > 0.0) else {
        return Err(ReportError::Field {
            field: "requests_per_second",
            reason: "needs the DC's capacity, which is not configured".to_owned(),
        });
    };
    let u = rps / c;
    if u.is_finite() {
        Ok(u)
    } else {
        Err(ReportError::Field {
            field: "requests_per_second",
            reason: format!("{rps} is out of range for capacity {c}"),
        })
    }
}

fn health(v: &Value) -> Result<FeedHealth, ReportError> {
    let names = || {
        FeedHealth::NAMES
            .iter()
            .map(|(n, _)| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Value::String(s) = v else {
        return Err(ReportError::Field {
            field: "health",
            reason: format!("must be one of {}, got {}", names(), kind(v)),
        });
    };
    FeedHealth::NAMES
        .iter()
        .find(|(n, _)| n == s)
        .map(|(_, h)| *h)
        .ok_or_else(|| ReportError::Field {
            field: "health",
            // The value is echoed only when short: a message is no place
            // for a large document.
            reason: if s.len() <= 32 {
                format!("must be one of {}, got \"{s}\"", names())
            } else {
                format!("must be one of {}, got a long string", names())
            },
        })
}

fn present<'a>(doc: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    doc.get(key).filter(|v| !v.is_null())
}

fn integer(field: &'static str, v: &Value) -> Result<u64, ReportError> {
    v.as_u64().ok_or_else(|| ReportError::Field {
        field,
        reason: format!("must be a non-negative integer, got {}", kind(v)),
    })
}

fn number(field: &'static str, v: &Value) -> Result<f64, ReportError> {
    let n = v.as_f64().ok_or_else(|| ReportError::Field {
        field,
        reason: format!("must be a number, got {}", kind(v)),
    })?;
    finite_non_negative(field, n)
}

fn finite_non_negative(field: &'static str, n: f64) -> Result<f64, ReportError> {
    if n.is_finite() && n >= 0.0 {
        Ok(n)
    } else {
        Err(ReportError::Field {
            field,
            reason: format!("must be a finite number ≥ 0, got {n}"),
        })
    }
}

/// A value's JSON type, for messages that must not echo a large document.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;

/// `recent`: an array of `[seq, utilisation]` pairs.
fn recent(v: &Value) -> Result<Vec<(u64, f64)>, ReportError> {
    let bad = |reason: String| ReportError::Field {
        field: "recent",
        reason,
    };
    let Value::Array(items) = v else {
        return Err(bad(format!(
            "must be an array of [seq, utilisation], got {}",
            kind(v)
        )));
    };
    items
        .iter()
        .map(|item| match item.as_array().map(Vec::as_slice) {
            Some([s, u]) => match (s.as_u64(), u.as_f64()) {
                (Some(s), Some(u)) if u.is_finite() && u >= 0.0 => Ok((s, u)),
                _ => Err(bad(format!(
                    "each entry is [seq ≥ 0, utilisation ≥ 0], got [{s}, {u}]"
                ))),
            },
            _ => Err(bad(format!(
                "each entry is [seq, utilisation], got {}",
                kind(item)
            ))),
        })
        .collect()
}

/// `demand`: an array of `[latitude, longitude, rate]`.
fn demand(v: &Value) -> Result<Vec<(f64, f64, f64)>, ReportError> {
    let bad = |reason: String| ReportError::Field {
        field: "demand",
        reason,
    };
    let Value::Array(items) = v else {
        return Err(bad(format!(
            "must be an array of [latitude, longitude, rate], got {}",
            kind(v)
        )));
    };
    items
        .iter()
        .map(|item| {
            let cell = item.as_array().map(Vec::as_slice);
            let nums = cell.and_then(|c| match c {
                [a, b, r] => Some((a.as_f64()?, b.as_f64()?, r.as_f64()?)),
                _ => None,
            });
            match nums {
                Some((lat, lon, r))
                    if (-90.0..=90.0).contains(&lat)
                        && (-180.0..=180.0).contains(&lon)
                        && r.is_finite()
                        && r >= 0.0 =>
                {
                    Ok((lat, lon, r))
                }
                _ => Err(bad(format!(
                    "each cell is [latitude -90..90, longitude -180..180, rate ≥ 0], got {item}"
                ))),
            }
        })
        .collect()
}
