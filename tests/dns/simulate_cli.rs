//! `boltz simulate` as an operator runs it: the standard world from the
//! repository root, every policy side by side, the zone's own controller
//! keeping every DC under capacity where nearest-only overloads one, files
//! written with `--out`, and a broken scenario named by `file:line:col`.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// The repository root: where `simulate/` lives.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The summary row of `policy` in a printed table, split into columns
/// (the window name has spaces, so columns are counted from the right).
fn row<'a>(out: &'a str, policy: &str) -> Vec<&'a str> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(policy))
        .unwrap_or_else(|| panic!("no row for {policy} in:\n{out}"));
    line.split_whitespace().collect()
}

/// Column `k` from the right (1 = last) as a number.
fn from_right(cols: &[&str], k: usize) -> f64 {
    cols[cols.len() - k]
        .parse()
        .unwrap_or_else(|_| panic!("{cols:?}"))
}

#[test]
fn balance_keeps_every_dc_under_capacity_where_nearest_overloads() {
    let out = tempfile::tempdir().unwrap();
    let o = boltz_ok(
        [
            "simulate",
            "steady",
            "--clients",
            "4000",
            "--quiet",
            "--out",
            out.path().to_str().unwrap(),
        ],
        Some(root()),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    println!("{text}");
    // Columns from the right: moved/ex, moved %, over %, peak, worst, vs opt.
    let nearest = row(&text, "nearest");
    let balance = row(&text, "balance");
    assert!(
        from_right(&nearest, 5) > 1.2,
        "nearest overloads: {nearest:?}"
    );
    assert!(
        from_right(&balance, 5) <= 1.0,
        "balance settles under capacity: {balance:?}"
    );
    let ratio = from_right(&balance, 6);
    assert!(
        ratio < 1.05,
        "balance within 5 % of the optimum: {balance:?}"
    );
    assert_ne!(balance[3], "never", "balance settles: {balance:?}");
    for f in [
        "steady-series.csv",
        "steady-summary.json",
        "steady-summary.txt",
    ] {
        let p = out.path().join(f);
        let body = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(body.contains("balance"), "{f} names the policies");
    }
}

#[test]
fn a_broken_scenario_is_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "name = \"bad\"\nintervals = 10\n[[events]]\nat = 2\nkind = \"melt\"\n",
    )
    .unwrap();
    let o = Command::new(BOLTZ)
        .current_dir(root())
        .args(["simulate", "--quiet", "--clients", "100"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml:"), "{err}");
    assert!(err.contains("melt"), "{err}");
}
