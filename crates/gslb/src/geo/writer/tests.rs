//! Tests of the `.mmdb` writer, read back with the `maxminddb` crate:
//! both record sizes, overlap rules, mapped aliases and a randomised check
//! against longest-prefix match.

use super::encoder::TYPE_STRING;
use super::*;
use maxminddb::Reader;
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::Instant;

#[derive(serde::Deserialize, Debug, PartialEq)]
struct City {
    location: Loc,
    country: Option<Code>,
    continent: Option<ContinentCode>,
}
#[derive(serde::Deserialize, Debug, PartialEq)]
struct Loc {
    latitude: f64,
    longitude: f64,
}
#[derive(serde::Deserialize, Debug, PartialEq)]
struct Code {
    iso_code: String,
}
#[derive(serde::Deserialize, Debug, PartialEq)]
struct ContinentCode {
    code: String,
}

fn rec(lat: f64, lon: f64, country: &str, continent: &str) -> GeoRecord {
    GeoRecord::new(lat, lon, country, continent)
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn build(w: &MmdbWriter) -> Reader<Vec<u8>> {
    let mut buf = Vec::new();
    w.write_to(&mut buf).unwrap();
    let reader = Reader::from_source(buf).unwrap();
    reader.verify().unwrap();
    reader
}

/// (network, lat) of a lookup; lat identifies the record in these tests.
fn look(r: &Reader<Vec<u8>>, addr: &str) -> (String, Option<f64>) {
    let res = r.lookup(ip(addr)).unwrap();
    let city: Option<City> = res.decode().unwrap();
    (
        res.network().unwrap().to_string(),
        city.map(|c| c.location.latitude),
    )
}

#[test]
fn round_trip_ipv4_and_ipv6_both_record_sizes() {
    for size in [RecordSize::Bits28, RecordSize::Bits32] {
        let mut w = MmdbWriter::new("test")
            .with_record_size(size)
            .with_build_epoch(1_700_000_000);
        w.insert(net("192.0.2.0/24"), rec(52.5, 13.4, "DE", "EU"));
        w.insert(net("198.51.100.128/25"), rec(-33.9, 151.2, "AU", "OC"));
        w.insert(net("2001:db8::/32"), rec(40.7, -74.0, "US", "NA"));
        w.insert(net("2001:db8:1::/48"), rec(35.7, 139.7, "", ""));
        w.insert(net("203.0.113.7/32"), rec(1.5, 2.5, "SG", ""));
        let r = build(&w);

        assert_eq!(r.metadata.record_size, size.bits());
        assert_eq!(r.metadata.ip_version, 6);
        assert_eq!(r.metadata.database_type, "GeoIP2-City");
        assert_eq!(r.metadata.languages, vec!["en".to_string()]);
        assert_eq!(r.metadata.description["en"], "test");
        assert_eq!(r.metadata.build_epoch, 1_700_000_000);
        assert_eq!(r.metadata.binary_format_major_version, 2);
        assert_eq!(r.metadata.binary_format_minor_version, 0);

        let res = r.lookup(ip("192.0.2.77")).unwrap();
        assert_eq!(res.network().unwrap().to_string(), "192.0.2.0/24");
        let city: City = res.decode().unwrap().unwrap();
        assert_eq!(
            city,
            City {
                location: Loc {
                    latitude: 52.5,
                    longitude: 13.4
                },
                country: Some(Code {
                    iso_code: "DE".into()
                }),
                continent: Some(ContinentCode { code: "EU".into() }),
            }
        );

        assert_eq!(
            look(&r, "198.51.100.200"),
            ("198.51.100.128/25".into(), Some(-33.9))
        );
        assert_eq!(
            look(&r, "203.0.113.7"),
            ("203.0.113.7/32".into(), Some(1.5))
        );
        assert_eq!(
            look(&r, "2001:db8:ffff::1"),
            // The /48 inside splits the /32; this half is uniform.
            ("2001:db8:8000::/33".into(), Some(40.7))
        );
        let res = r.lookup(ip("2001:db8:1:2::3")).unwrap();
        assert_eq!(res.network().unwrap().to_string(), "2001:db8:1::/48");
        let city: City = res.decode().unwrap().unwrap();
        assert_eq!((city.country, city.continent), (None, None));
        assert_eq!(city.location.longitude, 139.7);
    }
}

#[test]
fn more_specific_wins_in_both_orders() {
    let wide = (net("10.0.0.0/8"), rec(1.0, 1.0, "AA", ""));
    let narrow = (net("10.1.2.0/24"), rec(2.0, 2.0, "BB", ""));
    let wide6 = (net("2001:db8::/32"), rec(3.0, 3.0, "", ""));
    let narrow6 = (net("2001:db8:0:1::/64"), rec(4.0, 4.0, "", ""));
    for reversed in [false, true] {
        let mut items = vec![wide.clone(), narrow.clone(), wide6.clone(), narrow6.clone()];
        if reversed {
            items.reverse();
        }
        let mut w = MmdbWriter::new("t");
        for (n, r) in items {
            w.insert(n, r);
        }
        let r = build(&w);
        assert_eq!(look(&r, "10.1.2.3"), ("10.1.2.0/24".into(), Some(2.0)));
        assert_eq!(look(&r, "10.1.3.3").1, Some(1.0));
        assert_eq!(look(&r, "10.200.0.1").1, Some(1.0));
        assert_eq!(look(&r, "2001:db8:0:1::5").1, Some(4.0));
        assert_eq!(look(&r, "2001:db8:0:2::5").1, Some(3.0));
    }
}

#[test]
fn same_network_later_insert_wins_and_mapped_spelling_is_same_network() {
    let mut w = MmdbWriter::new("t");
    w.insert(net("192.0.2.0/24"), rec(1.0, 1.0, "", ""));
    w.insert(net("::ffff:192.0.2.0/120"), rec(2.0, 2.0, "", ""));
    let r = build(&w);
    assert_eq!(look(&r, "192.0.2.1"), ("192.0.2.0/24".into(), Some(2.0)));
    assert_eq!(look(&r, "::ffff:192.0.2.1").1, Some(2.0));
}

#[test]
fn mapped_addresses_alias_ipv4_subtree() {
    let mut w = MmdbWriter::new("t");
    w.insert(net("192.0.2.0/24"), rec(9.0, 9.0, "", ""));
    let r = build(&w);
    let res = r.lookup(ip("::ffff:192.0.2.9")).unwrap();
    assert_eq!(res.network().unwrap().to_string(), "::ffff:192.0.2.0/120");
    assert_eq!(
        res.decode::<City>().unwrap().unwrap().location.latitude,
        9.0
    );
    assert_eq!(look(&r, "::ffff:192.0.3.9").1, None);
    // IPv4-compatible (::a.b.c.d) is where IPv4 lives.
    assert_eq!(look(&r, "::192.0.2.9").1, Some(9.0));
}

#[test]
fn whole_space_networks() {
    let mut w = MmdbWriter::new("t");
    w.insert(net("0.0.0.0/0"), rec(1.0, 1.0, "", ""));
    w.insert(net("::/0"), rec(2.0, 2.0, "", ""));
    w.insert(net("2001:db8::/32"), rec(3.0, 3.0, "", ""));
    let r = build(&w);
    assert_eq!(look(&r, "8.8.8.8"), ("0.0.0.0/0".into(), Some(1.0)));
    assert_eq!(look(&r, "::ffff:8.8.8.8").1, Some(1.0));
    assert_eq!(look(&r, "2600::1").1, Some(2.0));
    assert_eq!(look(&r, "2001:db8::1").1, Some(3.0));
}

#[test]
fn empty_database_is_valid() {
    let w = MmdbWriter::new("empty");
    let r = build(&w);
    assert_eq!(look(&r, "192.0.2.1"), ("0.0.0.0/0".into(), None));
    assert_eq!(look(&r, "2001:db8::1").1, None);
}

#[test]
fn unknown_address_gets_empty_prefix_containing_no_network() {
    let nets = [
        "10.0.0.0/8",
        "10.64.0.0/10",
        "192.168.1.0/24",
        "2001:db8::/48",
    ];
    let mut w = MmdbWriter::new("t");
    for n in nets {
        w.insert(net(n), rec(1.0, 1.0, "", ""));
    }
    let r = build(&w);
    for addr in [
        "11.0.0.1",
        "192.168.0.1",
        "192.168.2.1",
        "2001:db8:1::1",
        "2a00::1",
    ] {
        let res = r.lookup(ip(addr)).unwrap();
        assert!(!res.has_data(), "{addr}");
        let got: IpNet = res.network().unwrap().to_string().parse().unwrap();
        assert!(got.contains(&ip(addr)), "{got} vs {addr}");
        for n in nets {
            let n = net(n);
            assert!(!got.contains(&n) && !n.contains(&got), "{got} overlaps {n}");
        }
    }
}

/// Deterministic xorshift so the randomised test needs no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const V6_BASE: u128 = 0x2001_0db8 << 96;

#[test]
fn randomised_against_longest_prefix_match() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut w = MmdbWriter::new("t");
    // Later inserts of the same network win, so keep the last one.
    let mut truth: BTreeMap<IpNet, f64> = BTreeMap::new();
    for i in 0..3000 {
        // A narrow address range forces plenty of overlaps.
        let n = if i % 3 == 0 {
            let addr = V6_BASE | (u128::from(rng.next() & 0xfff) << 84);
            IpNet::new(
                IpAddr::from(Ipv6Addr::from(addr)),
                (rng.next() % 20) as u8 + 28,
            )
            .unwrap()
        } else {
            let addr = 0x0a00_0000 | (rng.next() as u32 & 0x000f_ffff);
            IpNet::new(
                IpAddr::from(addr.to_be_bytes()),
                (rng.next() % 25) as u8 + 8,
            )
            .unwrap()
        }
        .trunc();
        let lat = i as f64 / 100.0;
        truth.insert(n, lat);
        w.insert(n, rec(lat, 0.0, "", ""));
    }
    let r = build(&w);
    for _ in 0..5000 {
        let addr = if rng.next() & 1 == 0 {
            IpAddr::from((0x0a00_0000 | (rng.next() as u32 & 0x001f_ffff)).to_be_bytes())
        } else {
            // Mostly inside the networks' /32, sometimes just outside.
            let top = if rng.next() & 7 == 0 {
                V6_BASE + (1 << 96)
            } else {
                V6_BASE
            };
            IpAddr::from(Ipv6Addr::from(top | (u128::from(rng.next()) << 32)))
        };
        let best = truth
            .iter()
            .filter(|(n, _)| n.contains(&addr))
            .max_by_key(|(n, _)| n.prefix_len());
        let res = r.lookup(addr).unwrap();
        let got: IpNet = res.network().unwrap().to_string().parse().unwrap();
        let lat = res.decode::<City>().unwrap().map(|c| c.location.latitude);
        assert_eq!(lat, best.map(|(_, l)| *l), "{addr}");
        assert!(got.contains(&addr));
        if let Some((best, _)) = best {
            assert!(best.contains(&got), "{got} not inside {best}");
        }
        for n in truth.keys() {
            // Nothing inserted may hide inside the reported network,
            // else the network would not be uniform.
            assert!(
                !(got.contains(n) && *n != got),
                "{n} inside {got} for {addr}"
            );
            if best.is_none() {
                assert!(!n.contains(&got), "{n} covers unknown {got}");
            }
        }
    }
}

#[test]
fn identical_records_are_stored_once() {
    let size_with = |distinct: bool| {
        let mut w = MmdbWriter::new("t");
        for i in 0..1000u32 {
            let n = IpNet::new(IpAddr::from((0x0a00_0000 | (i << 8)).to_be_bytes()), 24);
            let lat = if distinct { f64::from(i) / 100.0 } else { 1.0 };
            w.insert(n.unwrap(), rec(lat, 2.0, "DE", "EU"));
        }
        assert_eq!(w.record_count(), if distinct { 1000 } else { 1 });
        let mut buf = Vec::new();
        w.write_to(&mut buf).unwrap();
        Reader::from_source(buf.clone()).unwrap().verify().unwrap();
        buf.len()
    };
    let (shared, distinct) = (size_with(false), size_with(true));
    println!("1000 networks: shared record {shared} bytes, distinct {distinct} bytes");
    assert!(shared * 3 < distinct, "{shared} vs {distinct}");
}

#[test]
fn forced_small_record_size_reports_overflow_instead_of_corrupting() {
    // Can't cheaply exceed 2^28 here, so check the arithmetic directly.
    assert_eq!(RecordSize::Bits28.max_value(), (1 << 28) - 1);
    assert_eq!(RecordSize::Bits32.max_value(), u64::from(u32::MAX));
    let mut e = Encoder::default();
    assert!(e.header(TYPE_STRING, 20_000_000).is_err());
}

#[test]
fn pointer_encoding_round_trips_through_reader() {
    // Enough distinct records that key pointers span several sizes is
    // impractical; instead check the encoder's boundary arithmetic on
    // what the reader's decoder does: value = bytes + size offset.
    for (offset, len) in [(0, 2), (2047, 2), (2048, 3), (526_335, 3), (526_336, 4)] {
        let mut e = Encoder::default();
        e.pointer(offset);
        assert_eq!(e.buf.len(), len, "{offset}");
        let size = ((e.buf[0] >> 3) & 3) as usize + 1;
        let base = if size == 4 {
            0
        } else {
            (e.buf[0] & 7) as usize
        };
        let raw = e.buf[1..].iter().fold(base, |a, &b| (a << 8) | b as usize);
        assert_eq!(raw + [0, 0, 2048, 526_336, 0][size], offset);
    }
}

#[test]
fn large_build_200k_networks() {
    let mut w = MmdbWriter::new("big");
    let start = Instant::now();
    for i in 0..200_000u32 {
        let n = IpNet::new(IpAddr::from((0x0100_0000 + (i << 8)).to_be_bytes()), 24);
        let rec = rec(f64::from(i % 5000) / 100.0, 1.0, "DE", "EU");
        w.insert(n.unwrap(), rec);
    }
    let mut buf = Vec::new();
    w.write_to(&mut buf).unwrap();
    println!(
        "200k networks: {} bytes in {:?} (debug build)",
        buf.len(),
        start.elapsed()
    );
    let r = Reader::from_source(buf).unwrap();
    let res = r.lookup(ip("1.0.5.9")).unwrap();
    assert_eq!(res.network().unwrap().to_string(), "1.0.5.0/24");
    assert!(res.has_data());
}
