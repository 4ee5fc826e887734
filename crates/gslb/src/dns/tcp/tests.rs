use super::*;

#[test]
fn an_address_gets_its_share_and_pressure_follows_the_count() {
    let s = TcpShared::new(TcpLimits {
        idle: Duration::from_secs(10),
        max_connections: 8,
        per_address: 3,
    });
    let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    let mut p = s.pressure.subscribe();
    assert!(s.admit(a) && s.admit(a) && s.admit(a));
    assert!(!s.admit(a), "a fourth from one address");
    assert!(s.admit(b) && s.admit(b) && s.admit(b));
    assert!(!*p.borrow_and_update(), "6 of 8 is not past three quarters");
    assert!(s.admit("192.0.2.3".parse().unwrap()));
    assert!(*p.borrow_and_update(), "7 of 8 is");
    s.leave(a);
    assert!(!*p.borrow_and_update());
    assert!(s.admit(a), "a place freed");
    for _ in 0..3 {
        s.leave(b);
    }
    assert!(s.per_address.lock().unwrap().get(&b).is_none());
    assert_eq!(s.limits.pressed(), Duration::from_secs(1));
}
