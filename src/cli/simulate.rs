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
    /// built-in one; "servers" runs the server-level scenario (one L7 pool
    /// through `boltz l7`'s own picker).
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
    /// agents (the decentralised agent model), newton (the zone as written,
    /// its feeds without demand maps), balance (the zone as written, its
    /// feeds with them: model-predictive).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "nearest,fixed-t0.1,step,step-t0.1,agents,newton,balance"
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
    /// `servers`: arrivals per second (the pool serves 22 000/s, 14 400/s
    /// once its fourth backend degrades).
    #[arg(long, default_value_t = 13000.0)]
    rate: f64,
    /// `servers`: simulated seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// `servers`: pick algorithms, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "boltzmann,p2c-peak-ewma,least-request,round-robin"
    )]
    picks: Vec<String>,
}

/// `boltz simulate servers`: the pool table.
fn servers(a: &SimulateArgs) -> anyhow::Result<()> {
    let opts = boltz_sim::ServersOptions {
        rate: a.rate,
        seconds: a.seconds,
        seed: a.seed,
        picks: a.picks.clone(),
    };
    let runs = boltz_sim::servers(&opts).map_err(anyhow::Error::msg)?;
    outln!(
        "# servers: one pool, {} req/s for {} s; backends of 1, 2, 4, 1 ms, \
         the fourth 20 ms from {} s; {} in service each",
        a.rate,
        a.seconds,
        a.seconds / 2.0,
        boltz_sim::SERVERS_CONCURRENCY
    );
    out!("{}", boltz_sim::servers_table(&runs));
    outln!("");
    Ok(())
}

pub fn run(mut a: SimulateArgs) -> anyhow::Result<ExitCode> {
    if a.scenarios.iter().any(|s| s == "servers") {
        servers(&a)?;
        a.scenarios.retain(|s| s != "servers");
        if a.scenarios.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut policies = Vec::new();
    for p in &a.policies {
        match Policy::parse(p) {
            Some(p) => policies.push(p),
            None => {
                let known: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
                bail!("unknown policy {p:?}; known: {}", known.join(", "))
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
