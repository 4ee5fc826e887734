//! Human-readable durations as written in zone files (`"5s"`, `"500ms"`,
//! `"1.5s"`, `"1m"`, `"2h"`) and the serde adapters that read and write them.
//!
//! A bare number is rejected rather than guessed at: `interval = 5` could mean
//! seconds or milliseconds, and a wrong guess silently changes behaviour by a
//! factor of a thousand.

use std::time::Duration;

/// Shortest pause between two health checks or load polls, so that a
/// configuration that skipped validation (interval 0) cannot turn a poller
/// into a busy loop.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Parses `<number><unit>` where the unit is `ms`, `s`, `m` or `h` and the
/// number may have a fractional part (`"1.5s"`). Surrounding whitespace is
/// ignored.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let bad = |why: &str| format!("invalid duration {text:?}: {why}");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| bad("missing unit (use ms, s, m or h, e.g. \"5s\")"))?;
    let (number, unit) = s.split_at(split);
    let secs_per_unit = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad("unknown unit (use ms, s, m or h)")),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad("expected a number before the unit"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| bad("expected a number before the unit"))?;
    // Integers go through exact arithmetic so "500ms" is exactly 500ms, not
    // whatever 0.5 seconds rounds to in binary.
    if let Ok(whole) = number.parse::<u64>() {
        let exact = match unit {
            "ms" => Some(Duration::from_millis(whole)),
            "s" => Some(Duration::from_secs(whole)),
            "m" => whole.checked_mul(60).map(Duration::from_secs),
            _ => whole.checked_mul(3600).map(Duration::from_secs),
        };
        return exact.ok_or_else(|| bad("too large"));
    }
    Duration::try_from_secs_f64(value * secs_per_unit).map_err(|_| bad("too large"))
}

/// Formats a duration in the largest unit that represents it exactly, so
/// that `format_duration(parse_duration(s))` gives back what was written.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    const MS: u128 = 1_000_000;
    const S: u128 = 1_000 * MS;
    for (unit, size) in [("h", 3600 * S), ("m", 60 * S), ("s", S), ("ms", MS)] {
        if nanos != 0 && nanos % size == 0 {
            return format!("{}{unit}", nanos / size);
        }
    }
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos >= S {
        return format!("{}s", d.as_secs_f64());
    }
    format!("{}ms", nanos as f64 / MS as f64)
}

/// `#[serde(with = "boltz_core::duration::serde_duration")]` for a
/// [`Duration`] field written as a string such as `"5s"`.
pub mod serde_duration {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes a duration as text (`"1.5s"`).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// Reads a duration from text (`"5s"`, `"250ms"`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration string such as \"5s\", \"500ms\", \"1m\" or \"2h\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            super::parse_duration(v).map_err(E::custom)
        }
    }

    /// The same for `Option<Duration>`; pair it with `#[serde(default)]` so
    /// that a missing key means `None`.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `Some` as text, `None` as nothing.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        /// Reads an optional duration from text.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] Duration);
            Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(d)| d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.25m"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "5",
            "s",
            "5 s",
            "5sec",
            "-1s",
            "1.s",
            ".5s",
            "1..5s",
            "5S",
            "1e3s",
            "5d",
            "99999999999999999999h",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        for text in ["5s", "500ms", "1m", "2h", "90s", "1500ms", "0s"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(
            parse_duration(&format_duration(Duration::from_micros(1500))),
            Ok(Duration::from_micros(1500))
        );
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Cfg {
        #[serde(with = "serde_duration")]
        every: Duration,
        #[serde(default, with = "serde_duration::option")]
        maybe: Option<Duration>,
    }

    #[test]
    fn serde_round_trip() {
        let cfg: Cfg = toml::from_str("every = \"1.5s\"\nmaybe = \"2m\"").unwrap();
        assert_eq!(cfg.every, Duration::from_millis(1500));
        assert_eq!(cfg.maybe, Some(Duration::from_secs(120)));
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(toml::from_str::<Cfg>(&text).unwrap(), cfg);

        let cfg: Cfg = toml::from_str("every = \"5s\"").unwrap();
        assert_eq!(cfg.maybe, None);
        assert_eq!(
            serde_json::to_string(&cfg).unwrap(),
            r#"{"every":"5s","maybe":null}"#
        );
    }

    #[test]
    fn serde_errors_explain_the_format() {
        let err = toml::from_str::<Cfg>("every = 5").unwrap_err().to_string();
        assert!(err.contains("a duration string such as"), "{err}");
        let err = toml::from_str::<Cfg>("every = \"5x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown unit"), "{err}");
        let err = toml::from_str::<Cfg>("every = \"1s\"\nmaybe = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid duration"), "{err}");
    }
}
