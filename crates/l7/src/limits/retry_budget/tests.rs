//! Tests of the retry budget: the reserve, earning from requests, expiry
//! with the window, and the packed slots.

use super::*;

const SEC: u64 = 1_000_000_000;

#[test]
fn retry_budget_has_a_reserve_and_earns_from_requests() {
    let cfg = RetryConfig::default();
    let b = RetryBudget::new(&cfg);
    let t = 1000 * SEC;
    // Quiet pool: the reserve, 10/s × 10 s.
    assert_eq!((0..200).filter(|_| b.try_retry(t)).count(), 100);
    assert!(!b.try_retry(t + SEC));
    // 500 requests earn 100 retries at 20%.
    for _ in 0..500 {
        b.on_request(t + 2 * SEC);
    }
    assert_eq!((0..200).filter(|_| b.try_retry(t + 2 * SEC)).count(), 100);
    // Withdrawals expire with the window: the reserve is back.
    assert_eq!(b.balance_tokens(t + 9 * SEC), 0.0);
    assert_eq!(
        b.balance_tokens(t + 10 * SEC),
        100.0,
        "t's withdrawals expired"
    );
    assert_eq!(b.balance_tokens(t + 12 * SEC), 100.0);
    // Deposits expire too.
    for _ in 0..50 {
        b.on_request(t + 13 * SEC);
    }
    assert_eq!(b.balance_tokens(t + 13 * SEC), 110.0);
    assert_eq!(b.balance_tokens(t + 23 * SEC), 100.0);
}

#[test]
fn retry_budget_without_reserve_follows_the_ratio() {
    let b = RetryBudget::new(&RetryConfig {
        retries: 3,
        budget: 0.1,
        min_per_second: 0.0,
    });
    let mut retries = 0;
    let mut t = 77 * SEC;
    for i in 0..10_000u64 {
        t += 1_000_000;
        b.on_request(t);
        // Every request would like to retry.
        retries += u64::from(b.try_retry(t));
        assert!(
            retries * 10 <= i + 1,
            "{retries} retries after {} requests",
            i + 1
        );
    }
    assert!(retries >= 990, "{retries}");
    // A stale clock does not wipe a newer second's tokens.
    let before = b.balance_tokens(t);
    b.on_request(t - 10 * SEC);
    assert!(b.balance_tokens(t) > before);
}

#[test]
fn budget_slot_packing_round_trips() {
    for (e, v) in [
        (0, 0),
        (5, -1000),
        (EPOCH_MASK, VALUE_MAX),
        (123, -VALUE_MAX),
    ] {
        assert_eq!(unpack(pack(e, v)), (e, v));
    }
    assert_eq!(unpack(pack(1, i64::MAX)), (1, VALUE_MAX));
    let c = RetryConfig {
        budget: -1.0,
        min_per_second: f64::NAN,
        ..RetryConfig::default()
    };
    let e = c.validate("pools.a.retry");
    assert!(
        e[0].starts_with("pools.a.retry.budget: ")
            && e[1].starts_with("pools.a.retry.min_per_second: "),
        "{e:?}"
    );
    let d: RetryConfig = toml::from_str("").unwrap();
    assert_eq!(d, RetryConfig::default());
    assert!(toml::from_str::<RetryConfig>("retires = 1").is_err());
}
