//! Tests of the token bucket: burst then rate, defaults, `Retry-After`
//! rounding, and no over-admission under threads.

use super::*;

const SEC: u64 = 1_000_000_000;

#[test]
fn bucket_admits_the_burst_then_the_rate() {
    let b = TokenBucket::new(&RateLimitConfig {
        rps: 10.0,
        burst: Some(3.0),
    });
    let t = 50 * SEC;
    for _ in 0..3 {
        assert_eq!(b.try_take(t), Ok(()));
    }
    let wait = b.try_take(t).unwrap_err();
    assert_eq!(wait, Duration::from_millis(100));
    assert_eq!(b.try_take(t + 99_999_999), Err(Duration::from_nanos(1)));
    assert_eq!(b.try_take(t + 100_000_000), Ok(()));
    assert!(b.try_take(t + 100_000_000).is_err());
    // A long pause refills only up to the burst.
    let later = t + 3600 * SEC;
    assert_eq!((0..10).filter(|_| b.try_take(later).is_ok()).count(), 3);
    // Sustained, exactly rps per second.
    let mut n = 0;
    for ms in 1..=10_000u64 {
        n += usize::from(b.try_take(later + ms * 1_000_000).is_ok());
    }
    assert_eq!(n, 100);
}

#[test]
fn burst_defaults_to_one_second_and_retry_after_rounds_up() {
    let c: RateLimitConfig = toml::from_str("rps = 5").unwrap();
    assert_eq!(c.burst(), 5.0);
    let slow: RateLimitConfig = toml::from_str("rps = 0.5").unwrap();
    assert_eq!(slow.burst(), 1.0);
    let b = TokenBucket::new(&slow);
    assert!(b.try_take(SEC).is_ok());
    assert_eq!(b.try_take(SEC), Err(Duration::from_secs(2)));
    assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
    assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    assert_eq!(retry_after_secs(Duration::from_nanos(1)), 1);
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
    assert!(toml::from_str::<RateLimitConfig>("rps = 5\nburts = 1").is_err());
    let e = RateLimitConfig {
        rps: 0.0,
        burst: Some(0.5),
    }
    .validate("pools.web.rate_limit");
    assert_eq!(e.len(), 2);
    assert!(e[0].starts_with("pools.web.rate_limit.rps: "), "{e:?}");
    assert!(e[1].starts_with("pools.web.rate_limit.burst: "), "{e:?}");
    assert!(c.validate("x").is_empty());
}

#[test]
fn concurrent_takers_never_over_admit() {
    let rps = 2000.0;
    let burst = 50.0;
    let b = TokenBucket::new(&RateLimitConfig {
        rps,
        burst: Some(burst),
    });
    let start = boltz_core::clock::precise_ns();
    let (admitted, last) = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut ok = 0u64;
                    let mut last = 0;
                    for _ in 0..20_000 {
                        let now = boltz_core::clock::precise_ns();
                        last = now;
                        ok += u64::from(b.try_take(now).is_ok());
                    }
                    (ok, last)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0), |(a, l), (o, t)| (a + o, l.max(t)))
    });
    let elapsed = (last - start) as f64 / 1e9;
    let bound = rps * elapsed + burst;
    assert!(
        admitted as f64 <= bound + 1.0,
        "{admitted} admitted, bound {bound}"
    );
    assert!(
        admitted >= burst as u64,
        "the burst is always there: {admitted}"
    );
}
