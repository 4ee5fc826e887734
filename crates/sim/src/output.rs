//! A report on disk: `series.csv` (one row per policy, interval and DC),
//! `summary.json` and the summary table, for spreadsheets and plots.

use std::fmt::Write as _;
use std::path::Path;

use crate::Report;

/// Writes the report's files into `dir` (created if missing), with the
/// scenario's name as prefix.
pub fn write_outputs(report: &Report, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let name = &report.scenario.name;
    let mut csv = String::from(
        "policy,interval,dc,demand,capacity,utilisation,mu,usable,mean_km,moved,temperature\n",
    );
    for r in &report.runs {
        for i in &r.series {
            for (d, s) in report.dcs.iter().zip(&i.dcs) {
                let _ = writeln!(
                    csv,
                    "{},{},{},{:.3},{:.3},{:.5},{:.6},{},{:.2},{:.5},{:.4}",
                    r.policy,
                    i.n,
                    d,
                    s.demand,
                    s.capacity,
                    s.utilisation(),
                    s.mu,
                    s.usable,
                    i.mean_km,
                    i.moved,
                    i.temperature
                );
            }
        }
    }
    let series = dir.join(format!("{name}-series.csv"));
    std::fs::write(&series, csv)?;
    let summary = dir.join(format!("{name}-summary.json"));
    let json = serde_json::to_string_pretty(&report.summary).map_err(std::io::Error::other)?;
    std::fs::write(&summary, json + "\n")?;
    let table = dir.join(format!("{name}-summary.txt"));
    std::fs::write(&table, crate::table(&report.summary))?;
    Ok(vec![series, summary, table])
}
