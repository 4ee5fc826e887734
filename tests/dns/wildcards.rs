//! Wildcards (RFC 4592) over real sockets: synthesized answers owned by
//! the query name, a steered wildcard steering by the client with a true
//! ECS scope, the closest-encloser rules (no synthesis below an existing
//! name, empty non-terminals included), NODATA from a wildcard, a CNAME
//! wildcard, and `boltz check`'s diagnostics.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::harness::*;

fn zone() -> String {
    zone_toml(
        "",
        &[],
        r#""*" = { type = "TXT", values = ["anything"] }
"*.cdn" = { type = "steered", datacenters = ["fra", "iad", "sin"], ttl = 20 }
"host.cdn" = { type = "A", values = ["192.0.2.77"] }
"*.alias" = { type = "CNAME", value = "www" }
"a.ent" = { type = "A", values = ["192.0.2.79"] }
"#,
    )
}

fn txt(m: &hickory_proto::op::Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(t.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn wildcards_answer_for_names_that_do_not_exist_and_only_those() {
    let fx = Fixture::new(&zone());
    let srv = fx.serve();
    // Synthesized from `*`: owned by the name asked.
    let r = srv.query(&Q::new("Anything.example.com.", RecordType::TXT));
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert_eq!(txt(&r), ["anything"]);
    assert_eq!(r.answers[0].name.to_string(), "Anything.example.com.");
    // Another type at a wildcard: NODATA, not NXDOMAIN.
    let r = srv.query(&Q::new("anything.example.com.", RecordType::MX));
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert!(r.answers.is_empty() && !r.authorities.is_empty());

    // A steered wildcard steers each client like a steered name, with the
    // cell as its ECS scope, whatever the name under it.
    let www = srv.query(&Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24"));
    for name in ["img.cdn.example.com.", "a.b.c.cdn.example.com."] {
        let r = srv.query(&Q::new(name, RecordType::A).ecs("81.2.69.0/24"));
        assert_eq!(addrs(&r), [FRA], "{name}");
        assert_eq!(r.answers[0].ttl, 20);
        assert_eq!(r.answers[0].name.to_string(), name);
        assert_eq!(ecs_of(&r), ecs_of(&www), "the same cell, the same scope");
        let far = srv.query(&Q::new(name, RecordType::A).ecs("14.0.0.0/24"));
        assert_eq!(addrs(&far), [SIN], "{name} from Singapore");
    }
    // An existing name is itself; below it, nothing is synthesized.
    let r = srv.query(&Q::new("host.cdn.example.com.", RecordType::A));
    assert_eq!(addrs(&r), ["192.0.2.77"]);
    let r = srv.query(&Q::new("x.host.cdn.example.com.", RecordType::A));
    assert_eq!(rcode(&r), ResponseCode::NXDomain);
    // An empty non-terminal is a name too: `*` at the apex does not reach
    // below it.
    let r = srv.query(&Q::new("ent.example.com.", RecordType::TXT));
    assert_eq!((rcode(&r), r.answers.len()), (ResponseCode::NoError, 0));
    let r = srv.query(&Q::new("b.ent.example.com.", RecordType::TXT));
    assert_eq!(rcode(&r), ResponseCode::NXDomain);
    // The wildcard asked for by its own name.
    let r = srv.query(&Q::new("*.cdn.example.com.", RecordType::A).ecs("81.2.69.0/24"));
    assert_eq!(addrs(&r), [FRA]);
    // A CNAME wildcard, followed inside the zone.
    let r = srv.query(&Q::new("x.alias.example.com.", RecordType::A).ecs("81.2.69.0/24"));
    assert!(matches!(&r.answers[0].data, RData::CNAME(c) if c.0.to_string() == "www.example.com."));
    assert_eq!(r.answers[0].name.to_string(), "x.alias.example.com.");
    assert_eq!(addrs(&r), [FRA]);
    // Over TCP too.
    let t = tcp_query(srv.dns, &Q::new("zzz.example.com.", RecordType::TXT));
    assert_eq!(txt(&t), ["anything"]);
}

#[test]
fn check_says_what_is_wrong_with_a_wildcard() {
    for (records, want) in [
        (
            r#""a*" = { type = "A", values = ["192.0.2.1"] }"#,
            "a wildcard is `*` as the whole first label",
        ),
        (
            r#""x.*.y" = { type = "A", values = ["192.0.2.1"] }"#,
            "a wildcard is `*` as the whole first label",
        ),
        (
            r#""*.lab" = { type = "NS", values = ["ns.example.net."] }"#,
            "a wildcard cannot own NS records",
        ),
    ] {
        let fx = Fixture::new(&zone_toml("", &[], records));
        let (code, text) = boltz_check(&fx.zones());
        assert_eq!(code, Some(2), "{text}");
        assert!(
            text.contains("example.com.toml:") && text.contains(want),
            "{text}"
        );
    }
    let fx = Fixture::new(&zone());
    let out = std::process::Command::new(BOLTZ)
        .arg("check")
        .arg(fx.zones())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
