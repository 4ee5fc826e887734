use super::*;
use crate::config::Dataplane;

fn site() -> Site {
    Site {
        datacenter: "fra".into(),
        capacity: 1000.0,
        l4: None,
        l7: None,
        dataplane: Dataplane::default(),
    }
}

fn look(healthy: f64, total: f64, rps: f64) -> Look {
    Look {
        healthy,
        total,
        rps,
        ..Look::default()
    }
}

#[test]
fn a_pool_at_half_strength_has_half_the_capacity() {
    let r = judge(&site(), look(2.0, 4.0, 400.0), 7);
    assert_eq!(r.capacity, 500.0);
    assert_eq!(r.utilisation, 0.8, "400 rps against 500, not against 1000");
    assert_eq!(r.health, Health::Up, "0.5 is not below degraded_below 0.5");
    assert_eq!(r.seq, 7);
    let r = judge(&site(), look(4.0, 4.0, 400.0), 7);
    assert_eq!((r.capacity, r.utilisation, r.reason), (1000.0, 0.4, None));
}

#[test]
fn health_follows_the_healthy_share() {
    let mut s = site();
    s.dataplane.down_below = 0.3;
    let mut l = look(1.0, 4.0, 0.0);
    l.worst = Some((0.25, "pool web: 1 of 4 backends take traffic".into()));
    let r = judge(&s, l, 0);
    assert_eq!(r.health, Health::Down);
    assert_eq!(
        r.reason.as_deref(),
        Some("pool web: 1 of 4 backends take traffic")
    );
    let r = judge(&s, look(1.5, 4.0, 0.0), 0);
    assert_eq!(r.health, Health::Degraded);
    let r = judge(&site(), look(0.0, 4.0, 0.0), 0);
    assert_eq!(
        r.health,
        Health::Down,
        "none healthy is down whatever down_below"
    );
    assert!(r.reason.unwrap().starts_with("no backend takes traffic"));
}

#[test]
fn a_lost_component_or_an_empty_vip_is_down_and_l4_load_counts() {
    let mut l = look(4.0, 4.0, 100.0);
    l.down = Some("l7: connect unix:/x: refused".into());
    let r = judge(&site(), l, 0);
    assert_eq!(r.health, Health::Down);
    assert_eq!(r.reason.as_deref(), Some("l7: connect unix:/x: refused"));
    let mut l = look(4.0, 4.0, 100.0);
    l.u4 = 0.9;
    let r = judge(&site(), l, 0);
    assert_eq!(r.utilisation, 0.9, "the higher of L7's and L4's");
}
