//! EDNS Client Subnet: the scope we echo is the geo cell's prefix and never
//! lies (every address inside it gets the same answer), source prefix 0 uses
//! the resolver's address with scope 0, malformed options get FORMERR, and
//! IPv6 and v4-mapped subnets work.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::harness::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[test]
fn scope_is_the_cell_prefix() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    let cases = [
        ("81.2.69.0/24", 24, 24),
        ("81.2.69.128/25", 25, 24),
        ("81.2.69.7/32", 32, 24),
        ("1.130.0.0/16", 16, 11),
        ("14.0.0.0/12", 12, 12),
    ];
    for (subnet, source, scope) in cases {
        let r = srv.query(&Q::new("www.example.com.", RecordType::A).ecs(subnet));
        assert_eq!(ecs_of(&r), Some((source, scope)), "subnet {subnet}");
    }
    let r = srv.query(&Q::new("www.example.com.", RecordType::AAAA).ecs("2a02:ec0:1::/48"));
    assert_eq!(ecs_of(&r), Some((48, 32)));
    assert_eq!(addrs(&r), vec!["2001:db8:f::10".to_string()]);
}

#[test]
fn static_names_have_scope_zero() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    let r = srv.query(&Q::new("ns1.example.com.", RecordType::A).ecs("81.2.69.0/24"));
    assert_eq!(addrs(&r), vec!["192.0.2.53".to_string()]);
    assert_eq!(ecs_of(&r), Some((24, 0)));
}

/// A hot, soft system where neighbouring cells get different answers, so
/// that "same answer inside a scope" is a real property, not geography.
#[test]
fn every_address_inside_the_scope_gets_the_same_answer() {
    let mut csv = String::from("network,latitude,longitude,country,continent\n");
    for i in 0..64u32 {
        csv.push_str(&format!(
            "10.{i}.0.0/16,{},{},XX,EU\n",
            40.0 + f64::from(i % 8),
            f64::from(i / 8) * 10.0
        ));
    }
    let zone = zone_toml("", &[], "").replace("temperature = \"auto\"", "temperature = 50.0");
    let fx = Fixture::with_geo(&zone, &csv);
    let srv = fx.serve();
    let mut per_cell = BTreeSet::new();
    for i in 0..64u32 {
        let mut answers = BTreeSet::new();
        for j in 0..12u32 {
            let subnet = format!("10.{i}.{}.0/24", j * 21);
            let r = srv.query(&Q::new("www.example.com.", RecordType::A).ecs(&subnet));
            assert_eq!(ecs_of(&r), Some((24, 16)), "{subnet}");
            answers.insert(addrs(&r));
        }
        assert_eq!(answers.len(), 1, "cell 10.{i}.0.0/16 gave {answers:?}");
        per_cell.insert(answers.into_iter().next().unwrap());
    }
    assert!(
        per_cell.len() >= 2,
        "a hot system should spread cells over DCs: {per_cell:?}"
    );
}

#[test]
fn source_prefix_zero_uses_the_resolver_address() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    let resolver: IpAddr = "127.0.2.9".parse().unwrap();
    let r = udp_query(
        srv.dns,
        &Q::new("www.example.com.", RecordType::A).ecs("0.0.0.0/0"),
        Some(resolver),
    )
    .unwrap();
    assert_eq!(addrs(&r), vec![IAD.to_string()]);
    assert_eq!(ecs_of(&r), Some((0, 0)));
}

#[test]
fn ipv4_mapped_subnet_is_treated_as_ipv4() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    let r = srv.query(&Q::new("www.example.com.", RecordType::A).ecs("::ffff:81.2.69.0/120"));
    assert_eq!(addrs(&r), vec![FRA.to_string()]);
    // The scope is expressed in the option's family: 96 + 24.
    assert_eq!(ecs_of(&r), Some((120, 120)));
    let r = srv.query(&Q::new("www.example.com.", RecordType::A).ecs("::ffff:216.160.83.0/120"));
    assert_eq!(addrs(&r), vec![IAD.to_string()]);
}

/// A query for www.example.com/A with an OPT carrying `ecs` as raw option
/// data (family, source, scope, address bytes).
fn raw_query_with_ecs(ecs: &[u8]) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in ["www", "example", "com"] {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    // OPT: root, type 41, payload 1232, ext-rcode/version/flags 0.
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    let rdlen = 4 + ecs.len() as u16;
    p.extend_from_slice(&rdlen.to_be_bytes());
    p.extend_from_slice(&[0, 8]);
    p.extend_from_slice(&(ecs.len() as u16).to_be_bytes());
    p.extend_from_slice(ecs);
    p
}

#[test]
fn malformed_options_get_formerr() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    // Sanity: the builder makes a valid query.
    let good = udp_raw(
        srv.dns,
        &raw_query_with_ecs(&[0, 1, 24, 0, 81, 2, 69]),
        None,
    )
    .unwrap();
    let m = hickory_proto::op::Message::from_vec(&good).unwrap();
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert_eq!(addrs(&m), vec![FRA.to_string()]);

    let bad: [(&str, Vec<u8>); 6] = [
        (
            "address bits beyond the source prefix",
            vec![0, 1, 20, 0, 81, 2, 79],
        ),
        (
            "more address octets than the prefix needs",
            vec![0, 1, 24, 0, 81, 2, 69, 0],
        ),
        (
            "IPv4 prefix longer than 32",
            vec![0, 1, 33, 0, 81, 2, 69, 1, 0],
        ),
        ("unknown family", vec![0, 3, 24, 0, 81, 2, 69]),
        ("non-zero scope in a query", vec![0, 1, 24, 16, 81, 2, 69]),
        (
            "IPv6 prefix longer than 128",
            vec![0, 2, 129, 0, 0x2a, 0x02],
        ),
    ];
    for (what, ecs) in bad {
        let raw = udp_raw(srv.dns, &raw_query_with_ecs(&ecs), None)
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(&raw[..2], &[0x12, 0x34], "{what}: id echoed");
        assert_eq!(raw[3] & 0x0f, 1, "{what}: expected FORMERR");
    }
}
