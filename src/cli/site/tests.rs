use super::*;

#[test]
fn a_vip_address_is_up_only_if_all_its_services_are() {
    let v = |s: &str, up| (s.to_string(), up);
    let m = vip_addresses(&[
        v("tcp:192.0.2.80:80", true),
        v("udp:192.0.2.80:53", false),
        v("tcp:192.0.2.81:443", true),
        v("udp:[2001:db8::1]:53", true),
        v("garbage", true),
    ]);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(m.get(&ip("192.0.2.80")), Some(&false));
    assert_eq!(m.get(&ip("192.0.2.81")), Some(&true));
    assert_eq!(m.get(&ip("2001:db8::1")), Some(&true));
    assert_eq!(m.len(), 3);
}
