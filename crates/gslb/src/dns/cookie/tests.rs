use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn secret(s: &str) -> Secret {
    hex(s).try_into().unwrap()
}

fn client(s: &str) -> [u8; 8] {
    hex(s).try_into().unwrap()
}

/// RFC 9018 Appendix A.
#[test]
fn the_rfc_9018_test_vectors() {
    let k = secret("e5e973e5a6b2a43f48e7dc849e37bfcf");
    let ip: IpAddr = "198.51.100.100".parse().unwrap();
    let c = client("2464c4abcf10c957");
    assert_eq!(
        make(&k, &c, ip, 1559731985).to_vec(),
        hex("010000005cf79f111f8130c3eee29480")
    );
    assert_eq!(
        make(&k, &c, ip, 1559734385).to_vec(),
        hex("010000005cf7a871d4a564a1442aca77")
    );
    let ip3: IpAddr = "203.0.113.203".parse().unwrap();
    assert_eq!(
        make(&k, &client("fc93fc62807ddb86"), ip3, 1559734700).to_vec(),
        hex("010000005cf7a9acf73a7810aca2381e")
    );
    let ip6: IpAddr = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
    assert_eq!(
        make(
            &secret("445536bcd2513298075a5d379663c962"),
            &client("22681ab97d52c298"),
            ip6,
            1559741961
        )
        .to_vec(),
        hex("010000005cf7c609a6bb79d16625507a")
    );
}

#[test]
fn a_cookie_is_judged_by_its_secret_its_address_and_its_age() {
    let old = secret("dd3bdf9344b678b185a6f5cb60fca715");
    let k = secret("445536bcd2513298075a5d379663c962");
    let cookies = Cookies::new(Secrets {
        current: k,
        previous: Some(old),
    });
    let ip6: IpAddr = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
    // A.4: made with the previous secret, 10 minutes ago: still good,
    // and kept (it is not half an hour old).
    let held =
        QueryCookie::parse(&hex("22681ab97d52c298010000005cf7c57926556bd0934c72f8")).unwrap();
    let v = cookies.judge(&held, ip6, 1559741961);
    assert!(v.valid);
    assert_eq!(v.reply[8..], hex("010000005cf7c57926556bd0934c72f8")[..]);
    // From another address, or without the previous secret: not ours.
    let other: IpAddr = "2001:db8::1".parse().unwrap();
    assert!(!cookies.judge(&held, other, 1559741961).valid);
    cookies.set(Secrets {
        current: k,
        previous: None,
    });
    let v = cookies.judge(&held, ip6, 1559741961);
    assert!(!v.valid);
    assert_eq!(
        v.reply[8..],
        hex("010000005cf7c609a6bb79d16625507a")[..],
        "A.4's new cookie"
    );
    // A.3: reserved bytes set by the client are part of the hash.
    let a3 = Cookies::new(Secrets {
        current: secret("e5e973e5a6b2a43f48e7dc849e37bfcf"),
        previous: None,
    });
    let c3 = QueryCookie::parse(&hex("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5")).unwrap();
    let ip3: IpAddr = "203.0.113.203".parse().unwrap();
    // Learnt at 09:46:25, sent at 10:58:20: the hash is right, but past
    // an hour it is no longer taken; the answer carries A.3's new one.
    let v = a3.judge(&c3, ip3, 1559734700);
    assert!(!v.valid);
    assert_eq!(v.reply[8..], hex("010000005cf7a9acf73a7810aca2381e")[..]);
    // Age: an hour is the last second it holds; five minutes ahead too.
    let ts = 1559727985; // 0x5cf78f71
    assert!(a3.judge(&c3, ip3, ts + 3600).valid);
    assert!(!a3.judge(&c3, ip3, ts + 3601).valid);
    assert!(a3.judge(&c3, ip3, ts - 300).valid);
    assert!(!a3.judge(&c3, ip3, ts - 301).valid);
}

#[test]
fn lengths_and_secret_files() {
    for n in [0, 7, 9, 15, 41] {
        assert!(QueryCookie::parse(&vec![0; n]).is_none(), "{n}");
    }
    for n in [8, 16, 24, 40] {
        assert_eq!(
            QueryCookie::parse(&vec![0; n]).unwrap().server().len(),
            n - 8
        );
    }
    let s = read_secrets("# rotated 2026-12-01\ne5e973e5a6b2a43f48e7dc849e37bfcf\n445536bcd2513298075a5d379663c962 # old\n").unwrap();
    assert_eq!(s.previous, Some(secret("445536bcd2513298075a5d379663c962")));
    assert!(read_secrets("").unwrap_err().contains("no secret"));
    assert!(read_secrets("abc\n").unwrap_err().contains("line 1"));
    assert_ne!(random_secret(), random_secret());
}

#[test]
fn the_coarse_clock_tells_the_second() {
    let precise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    assert!(unix_seconds().abs_diff(precise) <= 1);
}
