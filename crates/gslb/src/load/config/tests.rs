//! Tests of the `load = { … }` table: a full table, defaults, unknown
//! fields, and every semantic problem reported with its field.

use super::*;

#[derive(Deserialize)]
struct Dc {
    load: LoadConfig,
}

fn parse(table: &str) -> Result<LoadConfig, String> {
    toml::from_str::<Dc>(&format!("load = {table}"))
        .map(|dc| dc.load)
        .map_err(|e| e.to_string())
}

fn problems(table: &str) -> Vec<String> {
    parse(table).unwrap().validate()
}

#[test]
fn full_table() {
    let cfg = parse(
        "{ url = \"http://127.0.0.1:9300/v1/load\", interval = \"5s\", timeout = \"2s\", \
         stale_after = \"30s\", smoothing = 0.3, fallback = 0.5 }",
    )
    .unwrap();
    assert_eq!(cfg.validate(), Vec::<String>::new());
    assert_eq!(
        cfg.feed_url().unwrap().unwrap().as_str(),
        "http://127.0.0.1:9300/v1/load"
    );
    assert_eq!(cfg.stale_after(), Duration::from_secs(30));
    assert_eq!(cfg.fallback, 0.5);
    let text = toml::to_string(&cfg).unwrap();
    assert_eq!(toml::from_str::<LoadConfig>(&text).unwrap(), cfg);
}

#[test]
fn defaults() {
    let cfg = parse("{ url = \"http://127.0.0.1:9300/v1/load\" }").unwrap();
    assert_eq!(cfg.interval, Duration::from_secs(5));
    assert_eq!(cfg.timeout(), Duration::from_secs(2));
    assert_eq!(cfg.stale_after(), Duration::from_secs(30));
    assert_eq!((cfg.smoothing, cfg.fallback), (0.3, 0.0));

    let cfg = parse("{ fallback = 1 }").unwrap();
    assert_eq!(cfg.validate(), Vec::<String>::new());
    assert!(cfg.feed_url().is_none());
    assert_eq!(cfg.fallback, 1.0);
    assert_eq!(parse("{}").unwrap(), LoadConfig::default());

    // A short interval alone must not be invalid.
    let cfg = parse("{ url = \"http://x/\", interval = \"1s\" }").unwrap();
    assert_eq!(cfg.validate(), Vec::<String>::new());
    assert_eq!(cfg.timeout(), Duration::from_millis(500));
    assert_eq!(cfg.stale_after(), Duration::from_secs(6));
}

#[test]
fn unknown_fields_fail_to_parse() {
    let err = parse("{ uri = \"http://x/\" }").unwrap_err();
    assert!(err.contains("unknown field `uri`"), "{err}");
}

#[test]
fn every_problem_is_reported_with_its_field() {
    let errs = problems(
        "{ url = \"gopher://x/\", interval = \"5s\", timeout = \"5s\", \
         stale_after = \"5s\", smoothing = 0, fallback = -1 }",
    );
    assert_eq!(
        errs,
        [
            "load.url: invalid URL \"gopher://x/\": scheme must be http or https, not \"gopher\"",
            "load.timeout (5s) must be shorter than load.interval (5s)",
            "load.stale_after (5s) must be longer than load.interval (5s)",
            "load.smoothing must be in (0, 1], got 0",
            "load.fallback must be a finite number ≥ 0, got -1",
        ]
    );
    let errs = problems("{ url = \"::\", interval = \"0s\", smoothing = 1.5, fallback = nan }");
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(
        errs[0].starts_with("load.url: invalid URL \"::\": "),
        "{errs:?}"
    );
    assert_eq!(errs[1], "load.interval must be greater than 0");
    assert_eq!(errs[2], "load.smoothing must be in (0, 1], got 1.5");
    assert_eq!(
        errs[3],
        "load.fallback must be a finite number ≥ 0, got NaN"
    );
    assert_eq!(
        problems("{ timeout = \"0s\" }"),
        ["load.timeout must be greater than 0"]
    );
    assert_eq!(problems("{ smoothing = 1 }"), Vec::<String>::new());
}
