//! EDNS Client Subnet (RFC 7871): validation of the option a resolver sent
//! and the client address it stands for.
//!
//! The option is read from the raw bytes (hickory-proto's parser accepts
//! things the RFC says must be answered with FORMERR: address bits set
//! beyond the source prefix, more address octets than the prefix needs),
//! by the fast path and by the screen alike.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::opt::ClientSubnet;

/// A validated ECS option from a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecs {
    /// The address as sent (bits beyond the prefix are zero).
    pub address: IpAddr,
    pub source_prefix: u8,
    /// 1 = IPv4, 2 = IPv6, as on the wire (an IPv4-mapped IPv6 address keeps
    /// family 2 in the echo even though it is looked up as IPv4).
    pub family: u16,
}

impl Ecs {
    /// The option's data as sent, validated against RFC 7871 §6: a known
    /// family, a source prefix the family allows, scope 0, exactly the
    /// address octets the prefix needs, no bits beyond it. `None`: the
    /// query gets FORMERR.
    pub fn parse(d: &[u8]) -> Option<Ecs> {
        let family = u16::from_be_bytes([*d.first()?, *d.get(1)?]);
        let (source, scope) = (*d.get(2)?, *d.get(3)?);
        let addr = &d[4..];
        if scope != 0 || addr.len() != usize::from(source).div_ceil(8) {
            return None;
        }
        let address = match family {
            1 if source <= 32 => {
                let mut o = [0u8; 4];
                o[..addr.len()].copy_from_slice(addr);
                IpAddr::V4(Ipv4Addr::from(o))
            }
            2 if source <= 128 => {
                let mut o = [0u8; 16];
                o[..addr.len()].copy_from_slice(addr);
                IpAddr::V6(Ipv6Addr::from(o))
            }
            _ => return None,
        };
        (mask(address, source) == address).then_some(Ecs {
            address,
            source_prefix: source,
            family,
        })
    }

    /// Our scope for a cell of `prefix` bits, in the option's own family: a
    /// v4-mapped IPv6 query with an IPv4 cell of /24 gets scope 96 + 24.
    pub fn scope_for(&self, prefix: u8, cell_is_v4: bool) -> u8 {
        if self.family == 2 && cell_is_v4 && prefix > 0 {
            96 + prefix
        } else {
            prefix
        }
    }

    /// The option to echo in a response, with our scope.
    pub fn echo(&self, prefix: u8, cell_is_v4: bool) -> ClientSubnet {
        ClientSubnet::new(
            self.address,
            self.source_prefix,
            self.scope_for(prefix, cell_is_v4),
        )
    }
}

/// `addr` with every bit beyond `prefix` cleared.
pub fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_options() {
        let ok = |d: &[u8]| Ecs::parse(d).is_some();
        assert!(ok(&[0, 1, 24, 0, 81, 2, 69]));
        assert!(!ok(&[0, 1, 24, 0, 81, 2, 69, 0]), "an octet too many");
        assert!(!ok(&[0, 1, 24, 0, 81, 2]), "an octet too few");
        assert!(!ok(&[0, 1, 23, 0, 81, 2, 69]), "a bit beyond the prefix");
        assert!(!ok(&[0, 1, 24, 8, 81, 2, 69]), "a scope in a query");
        assert!(!ok(&[0, 1, 33, 0, 1, 2, 3, 4, 5]), "longer than IPv4");
        assert!(!ok(&[0, 3, 0, 0]), "an unknown family");
        assert!(!ok(&[0, 1, 24]), "cut short");
        assert!(ok(&[0, 1, 0, 0]));
        assert!(ok(&[0, 2, 56, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0]));
    }

    #[test]
    fn mapped_scope_is_in_the_option_family() {
        let mut d = vec![0, 2, 120, 0];
        d.extend_from_slice(
            &"::ffff:81.2.69.0"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()[..15],
        );
        let e = Ecs::parse(&d).unwrap();
        assert_eq!(e.echo(24, true).scope_prefix(), 120);
        assert_eq!(e.echo(0, true).scope_prefix(), 0);
    }

    #[test]
    fn masks() {
        assert_eq!(
            mask("10.1.2.3".parse().unwrap(), 16),
            "10.1.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            mask("10.1.2.3".parse().unwrap(), 0),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            mask("2001:db8::1".parse().unwrap(), 32),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
    }
}
