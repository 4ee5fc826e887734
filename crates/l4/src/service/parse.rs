//! The body of `PUT /v1/services/{vip}`, read field by field: unknown
//! fields, wrong types and values out of range are refused with the path
//! of the offending field (`backends[2].weight`), and a spec whose Maglev
//! table cannot be built is refused before anything is touched.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::mac::parse_mac;
use super::{BackendSpec, BackendState, Forwarding, ServiceSpec, Vip};
use boltz_core::maglev;

/// Largest backend weight accepted.
pub const MAX_WEIGHT: u64 = 65_535;

/// A refused body: the field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

fn uint(v: &Value, field: &str, min: u64, max: u64) -> Result<u64, FieldError> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            field,
            format!("must be an integer from {min} to {max}, got {v}"),
        )),
    }
}

fn only_keys(obj: &Map<String, Value>, at: &str, allowed: &[&str]) -> Result<(), FieldError> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            let field = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            return Err(bad(
                field,
                format!("unknown field (expected one of: {})", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Parses and checks a `PUT /v1/services/{vip}` body for `vip`.
pub fn parse_spec(vip: &Vip, body: &[u8]) -> Result<ServiceSpec, FieldError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| bad("body", format!("not JSON: {e}")))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| bad("body", "must be a JSON object"))?;
    only_keys(
        obj,
        "",
        &[
            "version",
            "ring_size",
            "forwarding",
            "capacity_pps",
            "backends",
        ],
    )?;
    let version = uint(
        obj.get("version")
            .ok_or_else(|| bad("version", "missing"))?,
        "version",
        1,
        u64::MAX,
    )?;
    let ring_size = ring_size(obj.get("ring_size"))?;
    let forwarding = forwarding(obj.get("forwarding"))?;
    let capacity_pps = capacity(obj.get("capacity_pps"))?;
    let list = obj
        .get("backends")
        .ok_or_else(|| bad("backends", "missing"))?
        .as_array()
        .ok_or_else(|| bad("backends", "must be an array"))?;
    let mut backends = Vec::with_capacity(list.len());
    let mut seen = BTreeMap::new();
    for (i, b) in list.iter().enumerate() {
        backends.push(backend(i, b, vip, forwarding, &mut seen)?);
    }
    let spec = ServiceSpec {
        version,
        ring_size,
        forwarding,
        capacity_pps,
        backends,
    };
    if spec.has_up() {
        spec.check_table()
            .map_err(|e| bad("ring_size", e.to_string()))?;
    }
    Ok(spec)
}

/// `ring_size`: a prime up to the largest table; the default when absent.
fn ring_size(v: Option<&Value>) -> Result<u32, FieldError> {
    let Some(v) = v else {
        return Ok(maglev::DEFAULT_RING_SIZE);
    };
    let n = uint(v, "ring_size", 2, u64::from(maglev::MAX_RING_SIZE))? as u32;
    if !maglev::is_prime(n) {
        return Err(bad(
            "ring_size",
            format!(
                "{n} is not prime (next prime: {})",
                maglev::next_prime_at_least(n)
            ),
        ));
    }
    Ok(n)
}

/// `forwarding`: `"ipip"` (the default) or `"l2"`.
fn forwarding(v: Option<&Value>) -> Result<Forwarding, FieldError> {
    match v.map(|v| (v, v.as_str())) {
        None => Ok(Forwarding::Ipip),
        Some((_, Some("ipip"))) => Ok(Forwarding::Ipip),
        Some((_, Some("l2"))) => Ok(Forwarding::L2),
        Some((v, _)) => Err(bad(
            "forwarding",
            format!("must be \"ipip\" or \"l2\", got {v}"),
        )),
    }
}

/// `capacity_pps`: a number > 0, or absent or null.
fn capacity(v: Option<&Value>) -> Result<Option<f64>, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(c) if c.is_finite() && c > 0.0 => Ok(Some(c)),
            _ => Err(bad(
                "capacity_pps",
                format!("must be a number > 0, got {v}"),
            )),
        },
    }
}

/// Entry `i` of `backends`, for a VIP forwarded by `forwarding`; `seen`
/// holds the addresses of the entries before it.
fn backend(
    i: usize,
    b: &Value,
    vip: &Vip,
    forwarding: Forwarding,
    seen: &mut BTreeMap<IpAddr, usize>,
) -> Result<BackendSpec, FieldError> {
    let at = format!("backends[{i}]");
    let o = b.as_object().ok_or_else(|| bad(&at, "must be an object"))?;
    only_keys(o, &at, &["address", "weight", "state", "mac"])?;
    let field = |k: &str| format!("{at}.{k}");
    let address: IpAddr = o
        .get("address")
        .ok_or_else(|| bad(field("address"), "missing"))?
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(field("address"), "must be an IPv4 or IPv6 address string"))?;
    if forwarding == Forwarding::Ipip && address.is_ipv4() != vip.addr.is_ipv4() {
        return Err(bad(
            field("address"),
            format!(
                "{address} is not of the VIP's family (ipip forwards IPv4 in IPv4, IPv6 in IPv6)"
            ),
        ));
    }
    if let Some(j) = seen.insert(address, i) {
        return Err(bad(
            field("address"),
            format!("{address} is also backends[{j}]"),
        ));
    }
    let weight = match o.get("weight") {
        None => 1,
        Some(v) => uint(v, &field("weight"), 0, MAX_WEIGHT)? as u32,
    };
    let state = match o.get("state").map(|v| (v, v.as_str())) {
        None | Some((_, Some("up"))) => BackendState::Up,
        Some((_, Some("drain"))) => BackendState::Drain,
        Some((v, _)) => {
            return Err(bad(
                field("state"),
                format!("must be \"up\" or \"drain\", got {v}"),
            ))
        }
    };
    let mac = match o.get("mac") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_str().and_then(parse_mac).ok_or_else(|| {
            bad(
                field("mac"),
                format!("must be a MAC like 02:00:00:00:00:01, got {v}"),
            )
        })?),
    };
    if forwarding == Forwarding::L2 && mac.is_none() {
        return Err(bad(field("mac"), "required with forwarding \"l2\""));
    }
    Ok(BackendSpec {
        address,
        weight,
        state,
        mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip() -> Vip {
        "tcp:10.0.0.1:80".parse().unwrap()
    }

    fn err(body: &str) -> FieldError {
        parse_spec(&vip(), body.as_bytes()).unwrap_err()
    }

    #[test]
    fn good_body() {
        let s = parse_spec(
            &vip(),
            br#"{"version":2,"backends":[{"address":"10.1.0.1"},{"address":"10.1.0.2","weight":3,"state":"drain"}]}"#,
        )
        .unwrap();
        assert_eq!(s.ring_size, 65537);
        assert_eq!(s.backends[1].weight, 3);
        assert_eq!(s.backends[1].state, BackendState::Drain);
        let t = s.table(None).unwrap();
        assert!(t.iter().all(|&i| i == 0), "a drained backend owns no slot");
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let cases = [
            ("[]", "body"),
            ("{\"backends\":[]}", "version"),
            ("{\"version\":0,\"backends\":[]}", "version"),
            ("{\"version\":1}", "backends"),
            ("{\"version\":1,\"backends\":{}}", "backends"),
            ("{\"version\":1,\"ring_size\":65536,\"backends\":[]}", "ring_size"),
            ("{\"version\":1,\"colour\":1,\"backends\":[]}", "colour"),
            ("{\"version\":1,\"backends\":[{\"weight\":1}]}", "backends[0].address"),
            ("{\"version\":1,\"backends\":[{\"address\":\"::1\"}]}", "backends[0].address"),
            ("{\"version\":1,\"backends\":[{\"address\":\"10.1.0.1\",\"weight\":-1}]}", "backends[0].weight"),
            ("{\"version\":1,\"backends\":[{\"address\":\"10.1.0.1\",\"state\":\"down\"}]}", "backends[0].state"),
            ("{\"version\":1,\"backends\":[{\"address\":\"10.1.0.1\",\"mac\":\"zz\"}]}", "backends[0].mac"),
            ("{\"version\":1,\"backends\":[{\"address\":\"10.1.0.1\"},{\"address\":\"10.1.0.1\"}]}", "backends[1].address"),
            ("{\"version\":1,\"forwarding\":\"l2\",\"backends\":[{\"address\":\"10.1.0.1\"}]}", "backends[0].mac"),
            ("{\"version\":1,\"forwarding\":\"gre\",\"backends\":[]}", "forwarding"),
            ("{\"version\":1,\"capacity_pps\":0,\"backends\":[]}", "capacity_pps"),
            ("{\"version\":1,\"ring_size\":101,\"backends\":[{\"address\":\"10.1.0.1\"},{\"address\":\"10.1.0.2\"}]}", "ring_size"),
        ];
        for (body, field) in cases {
            assert_eq!(err(body).field, field, "{body}");
        }
    }
}
