//! What an operator (or `boltz serve`) asks of the L4 balancer: a service
//! is a VIP (address, port, protocol) with a whole backend set, a version
//! and a table size, and its Maglev table follows from them.
//!
//! - `parse`: the API's JSON bodies, read field by field, so a bad body is
//!   refused with the name of the offending field before anything is
//!   touched;
//! - `mac`: MAC addresses as text.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::abi::{IPPROTO_TCP, IPPROTO_UDP};
use boltz_core::maglev;

mod mac;
mod parse;

pub use mac::parse_mac;
pub use parse::parse_spec;

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
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        with = "mac::serde_opt"
    )]
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
