//! Rise/fall hysteresis: turns a stream of pass/fail check results into a
//! stable up/down state, with the semantics operators know from HAProxy and
//! gdnsd. Pure: no clock, no I/O.
//!
//! - A new DC starts [`Health::Unknown`], which callers treat as usable so
//!   that a restart or reload does not drop traffic before the first check.
//! - The first completed check decides directly; waiting `rise` intervals
//!   would keep a dead DC in answers for no benefit.
//! - After that, up → down takes `fall` consecutive failures and down → up
//!   takes `rise` consecutive successes; any opposite result restarts the
//!   count.

use std::fmt;

use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
/// The health of a target as the hysteresis sees it.
pub enum Health {
    /// No check has completed yet.
    #[default]
    Unknown,
    /// `rise` checks in a row passed.
    Up,
    /// `fall` checks in a row failed.
    Down,
}

impl Health {
    /// Whether the DC may be answered with. Unknown counts as usable: a DC is
    /// innocent until a check has said otherwise.
    pub fn is_usable(self) -> bool {
        matches!(self, Health::Unknown | Health::Up)
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A change of state.
pub struct Transition {
    /// The state before.
    pub from: Health,
    /// The state after.
    pub to: Health,
}

#[derive(Clone, Debug)]
/// Rise/fall hysteresis over pass/fail results.
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    state: Health,
    /// Consecutive results that disagree with `state`.
    streak: u32,
}

impl Hysteresis {
    /// A `rise` or `fall` of 0 is taken as 1: validation rejects it, and
    /// "flip on zero results" has no sensible meaning.
    pub fn new(rise: u32, fall: u32) -> Self {
        Hysteresis {
            rise: rise.max(1),
            fall: fall.max(1),
            state: Health::Unknown,
            streak: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> Health {
        self.state
    }

    /// Feeds one check result; returns the state change it caused, if any.
    pub fn observe(&mut self, ok: bool) -> Option<Transition> {
        let (needed, flip_to) = match (self.state, ok) {
            (Health::Unknown, true) => (1, Health::Up),
            (Health::Unknown, false) => (1, Health::Down),
            (Health::Up, false) => (self.fall, Health::Down),
            (Health::Down, true) => (self.rise, Health::Up),
            (Health::Up, true) | (Health::Down, false) => {
                self.streak = 0;
                return None;
            }
        };
        self.streak += 1;
        if self.streak < needed {
            return None;
        }
        let from = self.state;
        self.state = flip_to;
        self.streak = 0;
        Some(Transition { from, to: flip_to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(from: Health, to: Health) -> Option<Transition> {
        Some(Transition { from, to })
    }

    #[test]
    fn usable_states() {
        assert!(Health::Unknown.is_usable());
        assert!(Health::Up.is_usable());
        assert!(!Health::Down.is_usable());
        assert_eq!(serde_json::to_string(&Health::Up).unwrap(), "\"up\"");
        assert_eq!(Health::Down.to_string(), "down");
        assert_eq!(Hysteresis::new(2, 3).state(), Health::Unknown);
    }

    #[test]
    fn first_check_decides_directly() {
        let mut h = Hysteresis::new(5, 5);
        assert_eq!(h.observe(true), t(Health::Unknown, Health::Up));
        let mut h = Hysteresis::new(5, 5);
        assert_eq!(h.observe(false), t(Health::Unknown, Health::Down));
        assert_eq!(h.state(), Health::Down);
    }

    #[test]
    fn up_goes_down_after_fall_consecutive_failures() {
        let mut h = Hysteresis::new(2, 3);
        h.observe(true);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.state(), Health::Up);
        assert_eq!(h.observe(false), t(Health::Up, Health::Down));
        assert_eq!(h.observe(false), None);
        assert_eq!(h.state(), Health::Down);
    }

    #[test]
    fn down_comes_up_after_rise_consecutive_successes() {
        let mut h = Hysteresis::new(2, 3);
        h.observe(false);
        assert_eq!(h.observe(true), None);
        assert_eq!(h.state(), Health::Down);
        assert_eq!(h.observe(true), t(Health::Down, Health::Up));
        assert_eq!(h.observe(true), None);
    }

    #[test]
    fn success_resets_failure_streak_and_vice_versa() {
        let mut h = Hysteresis::new(2, 3);
        h.observe(true);
        for ok in [false, false, true, false, false, true] {
            assert_eq!(h.observe(ok), None);
        }
        assert_eq!(h.state(), Health::Up);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), t(Health::Up, Health::Down));

        for ok in [true, false, true, false] {
            assert_eq!(h.observe(ok), None);
        }
        assert_eq!(h.state(), Health::Down);
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), t(Health::Down, Health::Up));
    }

    #[test]
    fn rise_and_fall_of_one_flip_immediately() {
        let mut h = Hysteresis::new(1, 1);
        h.observe(true);
        assert_eq!(h.observe(false), t(Health::Up, Health::Down));
        assert_eq!(h.observe(true), t(Health::Down, Health::Up));
    }

    #[test]
    fn zero_counts_behave_as_one() {
        let mut h = Hysteresis::new(0, 0);
        h.observe(true);
        assert_eq!(h.observe(false), t(Health::Up, Health::Down));
        assert_eq!(h.observe(true), t(Health::Down, Health::Up));
    }
}
