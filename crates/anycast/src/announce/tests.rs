use super::*;

const RULES: Rules = Rules {
    rise: 2,
    fall: 3,
    hold_down: Duration::from_secs(10),
    drain_window: Duration::from_secs(5),
};

/// Feeds one fact per second from `t0`; returns the verdicts.
fn run(a: &mut Announcer, t0: Instant, facts: &[(bool, bool, bool)]) -> Vec<Want> {
    facts
        .iter()
        .enumerate()
        .map(|(i, &(ok, drained, stopping))| {
            let probe = if ok {
                Ok(())
            } else {
                Err("timeout".to_string())
            };
            a.observe(t0 + Duration::from_secs(i as u64), probe, drained, stopping)
        })
        .collect()
}

const OK: (bool, bool, bool) = (true, false, false);
const BAD: (bool, bool, bool) = (false, false, false);
use Want::*;

#[test]
fn announced_after_rise_withdrawn_after_fall() {
    let t0 = Instant::now();
    let mut a = Announcer::new(RULES, t0);
    assert_eq!(a.state().1, &Why::Starting);
    assert_eq!(
        run(&mut a, t0, &[OK, OK, BAD, BAD, BAD]),
        [Withdrawn, Announced, Announced, Announced, Withdrawn]
    );
    assert_eq!(a.state().1, &Why::Failing("timeout".into()));
}

#[test]
fn a_flapping_server_is_held_down() {
    let t0 = Instant::now();
    let mut a = Announcer::new(RULES, t0);
    // Up at 1 s, down at 4 s (three failures), healthy again at 6 s, but
    // held down until 14 s.
    let mut facts = vec![OK, OK, BAD, BAD, BAD, OK, OK];
    facts.extend([OK; 10]);
    let w = run(&mut a, t0, &facts);
    assert_eq!(
        &w[..5],
        [Withdrawn, Announced, Announced, Announced, Withdrawn]
    );
    assert!(w[6..14].iter().all(|x| *x == Withdrawn), "{w:?}");
    assert_eq!(w[14], Announced, "{w:?}");
    assert_eq!(a.state().1, &Why::Healthy);
}

#[test]
fn a_drain_announces_the_graceful_variant_then_withdraws_and_undrain_returns() {
    let t0 = Instant::now();
    let mut a = Announcer::new(RULES, t0);
    let d = (true, true, false);
    let w = run(&mut a, t0, &[OK, OK, d, d, d, d, d, d, d, OK]);
    assert_eq!(w[1], Announced);
    assert_eq!(&w[2..7], [Draining; 5]);
    assert_eq!(&w[7..9], [Withdrawn; 2]);
    assert_eq!(w[9], Announced, "undrained and healthy: back at once");
}

#[test]
fn stopping_withdraws_at_once_whatever_else_holds() {
    let t0 = Instant::now();
    let mut a = Announcer::new(RULES, t0);
    let w = run(&mut a, t0, &[OK, OK, (true, false, true)]);
    assert_eq!(w, [Withdrawn, Announced, Withdrawn]);
    assert_eq!(a.state().1, &Why::Stopping);
    let since = a.state().2;
    assert_eq!(since, t0 + Duration::from_secs(2), "the change is dated");
}

#[test]
fn a_drain_of_a_withdrawn_prefix_stays_withdrawn() {
    let t0 = Instant::now();
    let mut a = Announcer::new(RULES, t0);
    let w = run(&mut a, t0, &[BAD, (true, true, false), (true, true, false)]);
    assert_eq!(w, [Withdrawn; 3]);
}

#[test]
fn between_probes_a_drain_and_its_window_are_decided_on_time() {
    let t0 = Instant::now();
    let mut a = Announcer::new(RULES, t0);
    run(&mut a, t0, &[OK, OK]);
    assert_eq!(a.state().0, Announced);
    let t = t0 + Duration::from_millis(1500);
    assert_eq!(a.decide(t, true, false), Draining);
    assert_eq!(a.drain_ends(), Some(t + RULES.drain_window));
    // No probe in between: the window's end alone withdraws.
    assert_eq!(a.decide(t + RULES.drain_window, true, false), Withdrawn);
    assert_eq!(a.drain_ends(), None);
    assert_eq!(a.decide(t + RULES.drain_window, false, false), Announced);
    assert_eq!(a.decide(t + RULES.drain_window, false, true), Withdrawn);
    assert_eq!(a.state().1, &Why::Stopping);
}

#[test]
fn a_draining_server_that_breaks_leaves_at_once() {
    let t0 = Instant::now();
    let mut a = Announcer::new(RULES, t0);
    let d = (true, true, false);
    let bad_drained = (false, true, false);
    // rise 2, then drained; fall 3 bad probes withdraw inside the window.
    assert_eq!(
        run(
            &mut a,
            t0,
            &[OK, OK, d, bad_drained, bad_drained, bad_drained]
        ),
        [Withdrawn, Announced, Draining, Draining, Draining, Withdrawn]
    );
    assert_eq!(a.state().1, &Why::Failing("timeout".into()));
}
