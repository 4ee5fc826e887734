//! DNS cookies against `boltz serve` over real sockets: the server cookie
//! on both query paths, a fresh one kept, malformed options refused, the
//! cookie-only query, anycast sites sharing a secret file (RFC 9018), a
//! rotated secret still accepting the old cookies, and `dig +cookie`.

use std::process::Command;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::RecordType;

use crate::harness::*;
use crate::query::edns_query;

const CLIENT: [u8; 8] = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];

/// `www.example.com` A with a COOKIE option holding `cookie` (and NSID,
/// which takes the general path, when `general`).
fn query(cookie: &[u8], general: bool) -> Vec<u8> {
    let mut options = vec![EdnsOption::Unknown(10, cookie.to_vec())];
    if general {
        options.push(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
    }
    edns_query(0x77, "www.example.com.", RecordType::A, options)
}

fn cookie_of(m: &Message) -> Option<Vec<u8>> {
    match m.edns.as_ref()?.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(_, d) => Some(d.clone()),
        other => panic!("{other:?}"),
    }
}

fn ask(srv: &Server, q: &[u8]) -> Message {
    Message::from_vec(&udp_raw(srv.dns, q, None).unwrap()).unwrap()
}

#[test]
fn a_client_cookie_gets_a_server_cookie_on_both_paths_and_keeps_it() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    for general in [false, true] {
        let r = ask(&srv, &query(&CLIENT, general));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addrs(&r).len(), 1);
        let c = cookie_of(&r).expect("a cookie");
        assert_eq!(c.len(), 24, "client cookie and a 16-byte server cookie");
        assert_eq!(c[..8], CLIENT);
        assert_eq!(c[8..12], [1, 0, 0, 0], "RFC 9018: version 1, reserved 0");
        // Sent back, it is ours and fresh: the same comes back.
        let again = ask(&srv, &query(&c, general));
        assert_eq!(cookie_of(&again).unwrap(), c, "general path: {general}");
        // Someone else's server cookie is replaced.
        let mut forged = c.clone();
        forged[20] ^= 0xff;
        let r = ask(&srv, &query(&forged, general));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_ne!(cookie_of(&r).unwrap(), forged);
    }
    // Without a cookie, none is volunteered.
    let r = srv.query(&Q::new("www.example.com.", RecordType::A));
    assert!(cookie_of(&r).is_none());
    // Two of each kind, one per path.
    let (_, metrics) = srv.api_get("/metrics");
    for v in ["new", "valid", "invalid"] {
        let line = format!("boltz_cookie_queries_total{{verdict=\"{v}\"}} 2");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[test]
fn malformed_cookies_are_formerr_and_a_cookie_only_query_gets_one() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    for len in [0, 7, 9, 15, 41] {
        let r = ask(&srv, &query(&vec![7; len], false));
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr, "{len}");
        assert!(r.edns.is_some(), "FORMERR with our OPT");
    }
    // RFC 7873 §5.4: no question, a client cookie: NOERROR and ours.
    let mut q = query(&CLIENT, false);
    let name_end = 12 + "www.example.com.".len() + 1 + 4;
    q.drain(12..name_end);
    q[5] = 0;
    let r = ask(&srv, &q);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.queries.is_empty() && r.answers.is_empty());
    assert_eq!(cookie_of(&r).unwrap()[..8], CLIENT);
    // With --no-cookies the option is ignored and that query is malformed.
    let off = Server::start(&fx, &["--no-cookies"]);
    assert!(cookie_of(&ask(&off, &query(&CLIENT, false))).is_none());
    assert_eq!(ask(&off, &q).metadata.response_code, ResponseCode::FormErr);
}

/// Two sites with one secret file take each other's cookies (RFC 9018);
/// a third with its own does not; a rotated file still takes the old.
#[test]
fn sites_sharing_a_secret_file_take_each_others_cookies() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let secret = fx.dir.path().join("cookie-secret");
    std::fs::write(&secret, "e5e973e5a6b2a43f48e7dc849e37bfcf\n").unwrap();
    let arg = secret.to_str().unwrap();
    let a = Server::start(&fx, &["--cookie-secret-file", arg]);
    let b = Server::start(&fx, &["--cookie-secret-file", arg]);
    let own = fx.serve();
    let from_a = cookie_of(&ask(&a, &query(&CLIENT, false))).unwrap();
    assert_eq!(
        cookie_of(&ask(&b, &query(&from_a, false))).unwrap(),
        from_a,
        "b keeps a's cookie: it is valid there"
    );
    assert_ne!(
        cookie_of(&ask(&own, &query(&from_a, false))).unwrap(),
        from_a
    );
    // Rotation: a new current secret, the old one second. a rereads the
    // file; the cookie it gave still holds.
    write_atomic(
        &secret,
        "445536bcd2513298075a5d379663c962\ne5e973e5a6b2a43f48e7dc849e37bfcf\n",
    );
    a.wait_for(
        "the rotated secret",
        std::time::Duration::from_secs(5),
        || a.log().contains("cookie secret reloaded"),
    );
    assert_eq!(cookie_of(&ask(&a, &query(&from_a, false))).unwrap(), from_a);
    // Once the old secret is gone, it is replaced.
    write_atomic(&secret, "445536bcd2513298075a5d379663c962\n");
    a.wait_for(
        "the old secret dropped",
        std::time::Duration::from_secs(5),
        || cookie_of(&ask(&a, &query(&from_a, false))).unwrap() != from_a,
    );
    // A broken file keeps the secret that was.
    write_atomic(&secret, "not hex\n");
    a.wait_for(
        "the broken file refused",
        std::time::Duration::from_secs(5),
        || a.log().contains("cookie secret file rejected"),
    );
}

/// A real client: dig sends its cookie and shows ours.
#[test]
fn dig_gets_a_server_cookie() {
    if Command::new("dig").arg("-v").output().is_err() {
        println!("skipped: dig is not installed (apt-get install dnsutils)");
        return;
    }
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &srv.dns.port().to_string()])
        .args([
            "+cookie",
            "+norec",
            "+time=2",
            "+tries=1",
            "www.example.com",
            "A",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("COOKIE:"))
        .unwrap_or_else(|| panic!("no cookie in\n{text}"));
    let hex = line.split_whitespace().nth(2).unwrap();
    assert_eq!(hex.len(), 48, "{line}");
    assert!(text.contains("status: NOERROR"), "{text}");
}
