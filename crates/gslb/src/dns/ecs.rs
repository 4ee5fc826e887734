//! EDNS Client Subnet (RFC 7871): validation of the option a resolver sent
//! and the client address it stands for.
//!
//! hickory-proto parses the option but accepts things the RFC says must be
//! answered with FORMERR: address bits set beyond the source prefix and more
//! address octets than the prefix needs. The second is only visible in the
//! raw bytes, so [`raw_option_len`] walks the packet to the OPT record.

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
    /// Validates the parsed option against RFC 7871 §6 and the raw option
    /// length (`raw_len`, if it could be found).
    pub fn from_option(cs: &ClientSubnet, raw_len: Option<usize>) -> Result<Ecs, &'static str> {
        let address = cs.addr();
        let source_prefix = cs.source_prefix();
        let (family, max) = match address {
            IpAddr::V4(_) => (1u16, 32u8),
            IpAddr::V6(_) => (2u16, 128u8),
        };
        if source_prefix > max {
            return Err("ECS source prefix longer than the address family allows");
        }
        if cs.scope_prefix() != 0 {
            // §7.1.1: SCOPE PREFIX-LENGTH MUST be 0 in queries.
            return Err("ECS scope prefix must be 0 in a query");
        }
        if mask(address, source_prefix) != address {
            return Err("ECS address has bits set beyond the source prefix");
        }
        if let Some(len) = raw_len {
            let needed = 4 + usize::from(source_prefix).div_ceil(8);
            if len != needed {
                return Err("ECS address length does not match the source prefix");
            }
        }
        Ok(Ecs {
            address,
            source_prefix,
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

/// Length of the ECS option's data in a raw DNS message, if the message has
/// an OPT record carrying one. Returns `None` on anything unexpected; the
/// full parser has already accepted the message, so this only has to find
/// the option, not to validate the packet.
pub fn raw_option_len(msg: &[u8]) -> Option<usize> {
    let count = |i: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *msg.get(i)?,
            *msg.get(i + 1)?,
        ])))
    };
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos)? + 4;
    }
    for i in 0..an + ns + ar {
        pos = skip_name(msg, pos)?;
        let rtype = count(pos)?;
        let rdlen = count(pos + 8)?;
        let rdata = pos + 10;
        if rtype == 41 && i >= an + ns {
            let mut o = rdata;
            while o + 4 <= rdata + rdlen {
                let (code, len) = (count(o)?, count(o + 2)?);
                if code == 8 {
                    return Some(len);
                }
                o += 4 + len;
            }
            return None;
        }
        pos = rdata + rdlen;
    }
    None
}

fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => return Some(pos + 2),
            l => pos += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(s: &str, src: u8) -> ClientSubnet {
        ClientSubnet::new(s.parse().unwrap(), src, 0)
    }

    #[test]
    fn valid_and_invalid_options() {
        assert!(Ecs::from_option(&cs("81.2.69.0", 24), Some(7)).is_ok());
        assert!(Ecs::from_option(&cs("81.2.69.1", 24), Some(7)).is_err());
        assert!(Ecs::from_option(&cs("81.2.69.0", 24), Some(8)).is_err());
        assert!(Ecs::from_option(&cs("2001:db8::", 56), None).is_ok());
        assert!(Ecs::from_option(&cs("0.0.0.0", 0), Some(4)).is_ok());
        assert!(
            Ecs::from_option(&ClientSubnet::new("1.2.3.0".parse().unwrap(), 24, 8), None).is_err()
        );
    }

    #[test]
    fn mapped_scope_is_in_the_option_family() {
        let e = Ecs::from_option(&cs("::ffff:81.2.69.0", 120), None).unwrap();
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
