use super::*;

fn cfg(text: &str) -> Result<Config, String> {
    parse(Path::new("anycast.toml"), text).map_err(|d| d.to_string())
}

const GOOD: &str = r#"
bird_socket = "/run/bird/bird.ctl"
rise = 3
hold_down = "5s"

[probe]
name = "probe.example.com."
expect = ["192.0.2.10"]

[[prefix]]
prefix = "192.0.2.53/32"
protocol = "boltz_ns"
drain_protocol = "boltz_ns_drain"

[[prefix]]
prefix = "2001:db8::53/128"
protocol = "boltz_ns6"
"#;

#[test]
fn a_whole_file_reads_with_its_defaults() {
    let c = cfg(GOOD).unwrap();
    assert_eq!(c.speaker, SpeakerKind::Bird);
    assert_eq!(c.rules.rise, 3);
    assert_eq!(c.rules.fall, 2);
    assert_eq!(c.rules.hold_down, Duration::from_secs(5));
    assert_eq!(c.rules.drain_window, Duration::from_secs(30));
    assert_eq!(c.interval, Duration::from_secs(1));
    assert!(c.guard);
    let p = c.probe.unwrap();
    assert_eq!(p.rtype, RecordType::A);
    assert_eq!(p.expect, vec!["192.0.2.10".parse::<IpAddr>().unwrap()]);
    assert_eq!(c.prefixes.len(), 2);
    assert_eq!(
        c.prefixes[0].address,
        "192.0.2.53".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        c.prefixes[0].drain_protocol.as_deref(),
        Some("boltz_ns_drain")
    );
    assert_eq!(c.prefixes[1].check, Check::Dns);
}

#[test]
fn each_mistake_is_named_where_it_is() {
    let e = cfg(&GOOD.replace("boltz_ns_drain", "boltz_ns")).unwrap_err();
    assert!(
        e.contains("anycast.toml:13:18: protocol boltz_ns is used twice"),
        "{e}"
    );
    let e = cfg(&GOOD.replace("192.0.2.53/32", "192.0.2.53/24")).unwrap_err();
    assert!(
        e.contains("anycast.toml:11:10: 192.0.2.53/24 has host bits set"),
        "{e}"
    );
    let e = cfg(&GOOD.replace("\"boltz_ns6\"", "\"ns-6\"")).unwrap_err();
    assert!(
        e.contains(":17:12: \"ns-6\" is not a BIRD protocol name"),
        "{e}"
    );
    let e = cfg(&GOOD.replace("rise = 3", "rise = 0")).unwrap_err();
    assert!(e.contains(":3:8: rise must be at least 1"), "{e}");
    let e = cfg(&GOOD.replace("bird_socket = \"/run/bird/bird.ctl\"", "")).unwrap_err();
    assert!(e.contains("needs bird_socket"), "{e}");
    let e =
        cfg(&GOOD.replace("expect = [\"192.0.2.10\"]", "expect = [\"2001:db8::1\"]")).unwrap_err();
    assert!(
        e.contains(":8:11: expected address 2001:db8::1 does not fit type A"),
        "{e}"
    );
    let e = cfg(&GOOD.replace("hold_down = \"5s\"", "hold_down = 5")).unwrap_err();
    assert!(e.contains("anycast.toml:4:13:"), "{e}");
    let e = cfg(&GOOD.replace("rise = 3", "rize = 3")).unwrap_err();
    assert!(e.contains(":3:1: unknown field `rize`"), "{e}");
    let e = cfg("bird_socket = \"/s\"\n").unwrap_err();
    assert!(e.contains("no [[prefix]]"), "{e}");
}

#[test]
fn a_dns_checked_prefix_needs_a_probe_and_an_l4_one_does_not() {
    let no_probe =
        "bird_socket = \"/s\"\n[[prefix]]\nprefix = \"192.0.2.53/32\"\nprotocol = \"a\"\n";
    let e = cfg(no_probe).unwrap_err();
    assert!(
        e.contains(
            ":3:10: 192.0.2.53/32 is checked by the DNS self-probe, but the file has no [probe]"
        ),
        "{e}"
    );
    let l4 = format!("{no_probe}check = \"l4\"\naddress = \"192.0.2.53\"\n");
    assert_eq!(cfg(&l4).unwrap().prefixes[0].check, Check::L4);
    let outside = format!("{no_probe}check = \"l4\"\naddress = \"192.0.2.54\"\n");
    assert!(cfg(&outside)
        .unwrap_err()
        .contains("192.0.2.54 is not in 192.0.2.53/32"));
}

#[test]
fn exabgp_needs_no_socket_and_runs_no_guard() {
    let c = cfg(&format!(
        "speaker = \"exabgp\"\n{}",
        GOOD.replace("bird_socket = \"/run/bird/bird.ctl\"", "")
    ))
    .unwrap();
    assert_eq!(c.speaker, SpeakerKind::Exabgp);
    assert!(!c.guard);
    // ExaBGP announces by prefix: no protocol needed; BIRD needs one.
    let bare = "[probe]\nname = \"p.example.\"\n[[prefix]]\nprefix = \"192.0.2.53/32\"\n";
    let c = cfg(&format!("speaker = \"exabgp\"\n{bare}")).unwrap();
    assert_eq!(c.prefixes[0].protocol, "");
    let e = cfg(&format!("bird_socket = \"/s\"\n{bare}")).unwrap_err();
    assert!(e.contains(":5:10: 192.0.2.53/32 has no protocol"), "{e}");
}
