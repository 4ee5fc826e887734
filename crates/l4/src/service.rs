//! What an operator (or `boltz serve`) asks of the L4 balancer: a service
//! is a VIP (address, port, protocol) with a whole backend set, a version
//! and a table size. This module parses the API's JSON bodies field by
//! field, so a bad body is refused with the name of the offending field
//! before anything is touched.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::abi::{IPPROTO_TCP, IPPROTO_UDP};
use boltz_core::maglev;

/// Largest backend weight accepted.
pub const MAX_WEIGHT: u64 = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => IPPROTO_TCP,
            Proto::Udp => IPPROTO_UDP,
        }
    }
}

/// A VIP, written `tcp:10.0.0.1:80` or `udp:[2001:db8::1]:53` in paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vip {
    /// TCP or UDP.
    pub proto: Proto,
    /// Address and port.
    pub addr: SocketAddr,
}

impl Vip {
    /// The VIP's key in the data path's `vips` map.
    pub fn map_key(&self) -> [u8; 20] {
        super::abi::vip_key(self.addr.ip(), self.addr.port(), self.proto.number())
    }
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        write!(f, "{p}:{}", self.addr)
    }
}

impl FromStr for Vip {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (p, rest) = s.split_once(':').ok_or_else(|| {
            format!("VIP {s:?}: expected PROTO:ADDRESS:PORT, e.g. tcp:10.0.0.1:80")
        })?;
        let proto = match p.to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(format!("VIP {s:?}: protocol must be tcp or udp, not {p:?}")),
        };
        let addr: SocketAddr = rest.parse().map_err(|_| {
            format!("VIP {s:?}: {rest:?} is not ADDRESS:PORT (IPv6 in brackets: [2001:db8::1]:443)")
        })?;
        if addr.port() == 0 {
            return Err(format!("VIP {s:?}: port 0"));
        }
        Ok(Vip { proto, addr })
    }
}

impl Serialize for Vip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Vip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// How packets reach a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// IP-in-IP to the backend's address (DSR across routed networks).
    #[default]
    Ipip,
    /// Destination-MAC rewrite (DSR on one L2 segment; backends hold the
    /// VIP on a loopback interface).
    L2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Gets new flows in proportion to its weight.
    #[default]
    Up,
    /// Keeps its established flows, gets no new ones.
    Drain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSpec {
    pub address: IpAddr,
    pub weight: u32,
    pub state: BackendState,
    #[serde(skip_serializing_if = "Option::is_none", default, with = "mac_opt")]
    pub mac: Option<[u8; 6]>,
}

/// The whole desired state of one VIP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub version: u64,
    pub ring_size: u32,
    pub forwarding: Forwarding,
    /// Packets per second at utilisation 1 (for `/v1/load`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub capacity_pps: Option<f64>,
    pub backends: Vec<BackendSpec>,
}

impl ServiceSpec {
    /// The Maglev table for this spec: slot → index into `backends`.
    /// With `prev` (the live table and the backend keys its entries name),
    /// slots move only as far as the new shares require.
    pub fn table(
        &self,
        prev: Option<maglev::Previous<'_>>,
    ) -> Result<Vec<u32>, maglev::MaglevError> {
        let keys = self.keys();
        maglev::rebuild(&self.members(&keys), self.ring_size, prev)
    }

    /// Whether [`Self::table`] would succeed, without building the table.
    pub fn check_table(&self) -> Result<(), maglev::MaglevError> {
        let keys = self.keys();
        maglev::check(&self.members(&keys), self.ring_size)
    }

    fn keys(&self) -> Vec<Vec<u8>> {
        self.backends
            .iter()
            .map(|b| address_key(b.address))
            .collect()
    }

    fn members<'a>(&self, keys: &'a [Vec<u8>]) -> Vec<maglev::Member<'a>> {
        self.backends
            .iter()
            .zip(keys)
            .map(|(b, k)| maglev::Member {
                key: k,
                weight: if b.state == BackendState::Up {
                    b.weight
                } else {
                    0
                },
            })
            .collect()
    }

    /// Whether any backend takes new flows.
    pub fn has_up(&self) -> bool {
        self.backends
            .iter()
            .any(|b| b.state == BackendState::Up && b.weight > 0)
    }
}

/// A backend's identity in the Maglev permutation: its address bytes, so
/// its slots do not depend on its position in the list.
pub fn address_key(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

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

fn only_keys(
    obj: &serde_json::Map<String, Value>,
    at: &str,
    allowed: &[&str],
) -> Result<(), FieldError> {
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

/// Parses a MAC written `02:00:00:00:00:01`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

mod mac_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
        match m {
            Some(m) => s.serialize_str(&super::format_mac(m)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 6]>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| super::parse_mac(&s).ok_or_else(|| serde::de::Error::custom("bad MAC")))
            .transpose()
    }
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
    let ring_size = match obj.get("ring_size") {
        None => maglev::DEFAULT_RING_SIZE,
        Some(v) => {
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
            n
        }
    };
    let forwarding = match obj.get("forwarding").map(|v| (v, v.as_str())) {
        None => Forwarding::Ipip,
        Some((_, Some("ipip"))) => Forwarding::Ipip,
        Some((_, Some("l2"))) => Forwarding::L2,
        Some((v, _)) => {
            return Err(bad(
                "forwarding",
                format!("must be \"ipip\" or \"l2\", got {v}"),
            ))
        }
    };
    let capacity_pps = match obj.get("capacity_pps") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(c) if c.is_finite() && c > 0.0 => Some(c),
            _ => {
                return Err(bad(
                    "capacity_pps",
                    format!("must be a number > 0, got {v}"),
                ))
            }
        },
    };
    let list = obj
        .get("backends")
        .ok_or_else(|| bad("backends", "missing"))?
        .as_array()
        .ok_or_else(|| bad("backends", "must be an array"))?;
    let mut backends = Vec::with_capacity(list.len());
    let mut seen = BTreeMap::new();
    for (i, b) in list.iter().enumerate() {
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
                format!("{address} is not of the VIP's family (ipip forwards IPv4 in IPv4, IPv6 in IPv6)"),
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
        backends.push(BackendSpec {
            address,
            weight,
            state,
            mac,
        });
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
    fn vip_syntax() {
        let v: Vip = "udp:[2001:db8::1]:53".parse().unwrap();
        assert_eq!(v.to_string(), "udp:[2001:db8::1]:53");
        assert!("sctp:10.0.0.1:80"
            .parse::<Vip>()
            .unwrap_err()
            .contains("tcp or udp"));
        assert!("tcp:10.0.0.1".parse::<Vip>().is_err());
        assert!("tcp:10.0.0.1:0".parse::<Vip>().is_err());
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

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:0a:ff:00:01"), Some([2, 0, 10, 255, 0, 1]));
        assert_eq!(parse_mac("02:00:0a:ff:00"), None);
        assert_eq!(parse_mac("02:00:0a:ff:00:01:02"), None);
        assert_eq!(format_mac(&[2, 0, 10, 255, 0, 1]), "02:00:0a:ff:00:01");
    }
}
