use std::time::Duration;

use super::*;

fn cfg(rate: u32) -> RrlConfig {
    RrlConfig {
        rates: [rate; 4],
        burst_seconds: 1,
        slip: 2,
        ipv4_prefix: 24,
        ipv6_prefix: 56,
        exempt: vec!["192.0.2.0/24".parse().unwrap()],
        log_only: false,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// How many of `n` responses at one instant `at` are allowed.
fn allowed(r: &Rrl, src: &str, class: Class, name: u64, at: Instant, n: usize) -> usize {
    (0..n)
        .filter(|_| r.check(ip(src), class, name, at) == Decision::Allowed)
        .count()
}

#[test]
fn a_prefix_gets_its_rate_and_burst_and_no_more() {
    let r = Rrl::new(cfg(10));
    let t0 = Instant::now();
    // A second's worth of burst plus the one in hand.
    assert_eq!(allowed(&r, "198.51.100.7", Class::Answer, 1, t0, 100), 11);
    // The same /24 shares the bucket; another /24 has its own.
    assert_eq!(allowed(&r, "198.51.100.99", Class::Answer, 1, t0, 5), 0);
    assert_eq!(allowed(&r, "198.51.101.7", Class::Answer, 1, t0, 100), 11);
    // Answers are counted per question; NXDOMAIN per zone (its hash).
    assert_eq!(allowed(&r, "198.51.100.7", Class::Answer, 2, t0, 100), 11);
    assert_eq!(allowed(&r, "198.51.100.7", Class::Nxdomain, 1, t0, 100), 11);
    assert_eq!(allowed(&r, "198.51.100.7", Class::Nxdomain, 1, t0, 100), 0);
    // A second later, the rate again.
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(allowed(&r, "198.51.100.7", Class::Answer, 1, t1, 100), 10);
    // IPv6 by /56.
    assert_eq!(
        allowed(&r, "2001:db8:0:ff::1", Class::Error, 0, t0, 100),
        11
    );
    assert_eq!(allowed(&r, "2001:db8:0:aa::1", Class::Error, 0, t0, 100), 0);
    assert_eq!(
        allowed(&r, "2001:db8:1:ff::1", Class::Error, 0, t0, 100),
        11
    );
}

#[test]
fn slip_log_only_exemptions_and_unlimited_classes() {
    let r = Rrl::new(cfg(1));
    let t0 = Instant::now();
    allowed(&r, "203.0.113.1", Class::Answer, 9, t0, 10);
    let after: Vec<Decision> = (0..4)
        .map(|_| r.check(ip("203.0.113.1"), Class::Answer, 9, t0))
        .collect();
    let slips = after
        .iter()
        .filter(|v| **v == Decision::Limited(Action::Slip))
        .count();
    assert_eq!(slips, 2, "every second one: {after:?}");
    assert!(r.exempt(ip("192.0.2.44")) && !r.exempt(ip("192.0.3.1")));
    let mut c = cfg(1);
    c.log_only = true;
    c.rates[3] = 0;
    let l = Rrl::new(c);
    allowed(&l, "203.0.113.1", Class::Answer, 9, t0, 10);
    assert_eq!(
        l.check(ip("203.0.113.1"), Class::Answer, 9, t0),
        Decision::Would
    );
    assert_eq!(allowed(&l, "203.0.113.1", Class::Referral, 0, t0, 50), 50);
}

#[test]
fn classes_names_and_slips() {
    let mut h = [0u8; 12];
    assert_eq!(Class::of(ResponseCode::NXDomain, &h), Class::Nxdomain);
    assert_eq!(Class::of(ResponseCode::Refused, &h), Class::Error);
    assert_eq!(Class::of(ResponseCode::BADVERS, &h), Class::Error);
    h[9] = 2; // authority records, no AA, no answer
    assert_eq!(Class::of(ResponseCode::NoError, &h), Class::Referral);
    h[2] = 0x04;
    assert_eq!(Class::of(ResponseCode::NoError, &h), Class::Answer);
    let q = |name: &[u8]| {
        let mut q = vec![0; 12];
        q.extend_from_slice(name);
        q.extend_from_slice(&[0, 1, 0, 1]);
        q
    };
    let a = question_hash(&q(b"\x03WWW\x07example\x03com\x00"));
    assert_eq!(a, question_hash(&q(b"\x03www\x07EXAMPLE\x03com\x00")));
    assert_ne!(a, question_hash(&q(b"\x03ww2\x07example\x03com\x00")));
    // A slipped response: header with TC, the question, no records.
    let mut resp = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 2, 0, 1, 0, 1];
    resp.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
    let question_len = resp.len();
    resp.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
    slip(&mut resp);
    assert_eq!(resp.len(), question_len);
    assert_eq!(&resp[2..12], [0x86, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn nxdomain_and_referrals_are_counted_per_zone() {
    // An NXDOMAIN for `<label>.<zone>`: the question, then the zone's SOA
    // in the authority section, its owner written out or compressed.
    let nx = |label: &[u8], zone: &[u8], compressed: bool| {
        let mut r = vec![0, 1, 0x84, 0x03, 0, 1, 0, 0, 0, 1, 0, 0];
        r.push(label.len() as u8);
        r.extend_from_slice(label);
        r.extend_from_slice(zone);
        r.extend_from_slice(&[0, 1, 0, 1]);
        if compressed {
            r.extend_from_slice(&[0xc0, 12 + 1 + label.len() as u8]);
        } else {
            r.extend_from_slice(zone);
        }
        r.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0, 60, 0, 2, 0, 0]);
        r
    };
    let a = b"\x01A\x07example\x00";
    let b = b"\x01b\x07example\x00";
    let h = authority_hash(&nx(b"x", a, false));
    assert_ne!(h, 0);
    assert_eq!(
        h,
        authority_hash(&nx(b"other", b"\x01a\x07example\x00", true))
    );
    assert_ne!(h, authority_hash(&nx(b"x", b, false)));
    // No authority section: nothing to count by.
    let mut none = nx(b"x", a, false);
    none[9] = 0;
    assert_eq!(authority_hash(&none), 0);
    // One zone's flood does not limit another's NXDOMAIN for the prefix.
    let r = Rrl::new(cfg(10));
    let t0 = Instant::now();
    let hb = authority_hash(&nx(b"x", b, false));
    assert_eq!(allowed(&r, "198.51.100.7", Class::Nxdomain, h, t0, 100), 11);
    assert_eq!(
        allowed(&r, "198.51.100.7", Class::Nxdomain, hb, t0, 100),
        11
    );
    // Errors stay per prefix, whatever is passed.
    assert_eq!(allowed(&r, "198.51.100.7", Class::Error, 1, t0, 100), 11);
    assert_eq!(allowed(&r, "198.51.100.7", Class::Error, 2, t0, 100), 0);
}
