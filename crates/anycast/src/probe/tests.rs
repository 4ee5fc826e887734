use std::net::Ipv4Addr;
use std::time::Duration;

use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, Record, RecordType};

use super::*;

fn probe(expect: &[&str]) -> Probe {
    Probe {
        name: Name::from_ascii("probe.example.com.").unwrap(),
        rtype: RecordType::A,
        expect: expect.iter().map(|a| a.parse().unwrap()).collect(),
        timeout: Duration::from_millis(200),
    }
}

/// The server's answer to `p`, tuned by `f`.
fn answer(p: &Probe, id: u16, f: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(p.name.clone(), p.rtype));
    m.metadata.authoritative = true;
    m.add_answer(Record::from_rdata(
        p.name.clone(),
        30,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 10))),
    ));
    f(&mut m);
    m.to_vec().unwrap()
}

#[test]
fn the_right_answer_passes_and_each_wrong_one_says_why() {
    let p = probe(&["192.0.2.10"]);
    assert_eq!(judge(&p, 7, &answer(&p, 7, |_| {})), Ok(()));
    let e = |raw: Vec<u8>, p: &Probe| judge(p, 7, &raw).unwrap_err();
    assert!(e(answer(&p, 8, |_| {}), &p).contains("another query"));
    assert!(e(
        answer(&p, 7, |m| m.metadata.response_code = ResponseCode::NXDomain),
        &p
    )
    .contains("Non-Existent Domain for probe.example.com. A"));
    assert!(
        e(answer(&p, 7, |m| m.metadata.authoritative = false), &p).contains("not authoritative")
    );
    assert!(e(answer(&p, 7, |m| m.answers.clear()), &p).contains("no A record"));
    let other = probe(&["192.0.2.11"]);
    assert!(e(answer(&other, 7, |_| {}), &other).contains("without the expected 192.0.2.11"));
    assert!(judge(&p, 7, b"\x00\x07garbage").is_err());
}

#[tokio::test]
async fn a_silent_address_fails_within_the_timeout() {
    // A bound socket that never answers.
    let quiet = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = quiet.local_addr().unwrap();
    let started = std::time::Instant::now();
    let e = check(&probe(&[]), to).await.unwrap_err();
    assert!(e.starts_with("udp: no answer within"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
