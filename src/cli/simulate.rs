//! `boltz simulate`: runs the server's own steering against a synthetic
//! world (see `boltz-sim`) and prints, per scenario, the summary table of
//! every policy beside the capacity-respecting optimum; with `--out`, the
//! time series, JSON and plots.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use boltz_sim::{Options, Policy, Scenario, BUILTIN};

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Scenarios: built-in names or scenario files; "all" runs every
    /// built-in one.
    #[arg(default_value = "steady")]
    scenarios: Vec<String>,
    /// The zone whose DCs and steering are simulated.
    #[arg(long, default_value = "simulate/world.toml")]
    zone: PathBuf,
    /// The geo database clients are drawn from and located with.
    #[arg(long, default_value = "simulate/world.mmdb")]
    geoip: PathBuf,
    /// Clients (resolvers) to draw at random located addresses.
    #[arg(long, default_value_t = 20000)]
    clients: usize,
    /// Instead of drawing: a CSV of `network,weight` lines.
    #[arg(long)]
    networks: Option<PathBuf>,
    /// Total demand in requests/s, spread over the clients by weight.
    #[arg(long, default_value_t = 20000.0)]
    demand: f64,
    /// Override every scenario's number of load intervals.
    #[arg(long)]
    intervals: Option<u32>,
    /// Override every scenario's resolver cache, in load intervals.
    #[arg(long)]
    cache_intervals: Option<u32>,
    /// Policies, comma-separated: nearest, fixed-t0.1, step, step-t0.1,
    /// balance (the zone as written).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "nearest,fixed-t0.1,step,step-t0.1,balance"
    )]
    policies: Vec<String>,
    /// Seed of the client draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write CSV, JSON and SVG plots here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    let mut policies = Vec::new();
    for p in &a.policies {
        match Policy::parse(p) {
            Some(p) => policies.push(p),
            None => {
                bail!("unknown policy {p:?}; known: nearest, fixed-t0.1, step, step-t0.1, balance")
            }
        }
    }
    let names: Vec<String> = if a.scenarios.iter().any(|s| s == "all") {
        BUILTIN.iter().map(|(n, _)| n.to_string()).collect()
    } else {
        a.scenarios.clone()
    };
    let mut scenarios = Vec::new();
    for n in &names {
        let mut s = Scenario::load(n)?;
        if let Some(i) = a.intervals {
            s.intervals = i.max(1);
            s.events.retain(|e| e.at < s.intervals);
        }
        if let Some(c) = a.cache_intervals {
            s.cache_intervals = c.max(1);
        }
        scenarios.push(s);
    }
    let opts = Options {
        zone: a.zone.clone(),
        geoip: a.geoip.clone(),
        clients: a.clients,
        networks: a.networks.clone(),
        demand: a.demand,
        seed: a.seed,
        policies,
    };
    let clients = boltz_sim::clients(&opts)?;
    for s in &scenarios {
        let bar = if a.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "{msg:>14} [{bar:40}] {pos}/{len} intervals, {eta} left",
                )
                .context("progress template")?
                .progress_chars("=> "),
            )
        };
        bar.set_message(s.name.clone());
        let report = boltz_sim::simulate(&opts, s, &clients, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })?;
        bar.finish_and_clear();
        outln!(
            "# {}: {} clients, {} req/s, {} intervals, answers cached {} interval(s)",
            s.name,
            clients.len(),
            s.demand.unwrap_or(a.demand),
            s.intervals,
            s.cache_intervals
        );
        out!("{}", boltz_sim::table(&report.summary));
        outln!("");
        if let Some(dir) = &a.out {
            let mut files = boltz_sim::write_outputs(&report, dir)
                .with_context(|| format!("writing into {}", dir.display()))?;
            files.extend(boltz_sim::write_plots(&report, dir).context("plotting")?);
            for f in files {
                eprintln!("wrote {}", f.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
