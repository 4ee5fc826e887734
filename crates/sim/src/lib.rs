//! boltz-sim: `boltz simulate`, the tuning lab. It runs the server's own
//! steering code — the zone compiler, the control plane's price tick and
//! temperature, the query path's decision — against a synthetic world:
//! clients located by a real `.mmdb`, resolvers that cache answers for the
//! TTL, DCs whose utilisation is fed back every load interval as the load
//! API does, and scripted events. Beside the zone's own steering it runs
//! the first controller, Boltzmann without prices and nearest-only, and
//! solves the capacity-respecting optimum as a linear program.
//!
//! # Layout
//!
//! - `scenario`: the script (TOML; the standard ones built in).
//! - `clients`: resolvers sampled from the database, or from a CSV.
//! - `policy`: each policy as a zone the server's compiler builds.
//! - `agents`: the decentralised agent model, the `agents` policy.
//! - `run`: one policy through one scenario, interval by interval.
//! - `optimum`: the capacity-respecting optimum (an LP).
//! - `summary`: settle times and settled quality per window; the table.
//! - `output`: CSV and JSON of the runs.
//! - `servers`: the server-level scenario, one L7 pool through `boltz l7`'s
//!   own picker (`boltz simulate servers`).
//! - `plot`: SVG plots of the runs (utilisation, distance, the map).

#![warn(missing_docs)]

mod agents;
mod clients;
mod optimum;
mod output;
mod plot;
mod policy;
mod run;
mod scenario;
mod servers;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use clients::{Client, ClientsError};
pub use output::write_outputs;
pub use plot::write_plots;
pub use policy::Policy;
pub use run::{DcSample, Interval, Run};
pub use scenario::{Scenario, ScenarioError, BUILTIN};
pub use servers::{
    servers, servers_table, ServersOptions, ServersRun, CONCURRENCY as SERVERS_CONCURRENCY,
};
pub use summary::{table, WindowSummary, SETTLED_MOVES};

use boltz_gslb::{Control, GeoDb};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Options {
    /// The zone file (its DCs and steering).
    pub zone: PathBuf,
    /// The geo database clients are located with.
    pub geoip: PathBuf,
    /// Clients to sample from the database.
    pub clients: usize,
    /// Instead of sampling: a CSV of `network,weight`.
    pub networks: Option<PathBuf>,
    /// Total demand in requests/s.
    pub demand: f64,
    /// Seed of the client sample.
    pub seed: u64,
    /// Policies to run, in order.
    pub policies: Vec<Policy>,
}

/// Everything one scenario produced.
#[derive(Debug)]
pub struct Report {
    /// The scenario run.
    pub scenario: Scenario,
    /// The zone's DC names, in its order.
    pub dcs: Vec<String>,
    /// Their declared locations.
    pub dc_locations: Vec<boltz_steer::LatLon>,
    /// The clients.
    pub clients: Vec<Client>,
    /// One run per policy.
    pub runs: Vec<Run>,
    /// Per policy and window.
    pub summary: Vec<WindowSummary>,
}

/// A simulation that could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The zone, database or client list is not usable.
    #[error("{0}")]
    Input(String),
}

/// The clients of `opts`.
pub fn clients(opts: &Options) -> Result<Vec<Client>, SimError> {
    let geo = GeoDb::open(&opts.geoip)
        .map_err(|e| SimError::Input(format!("{}: {e}", opts.geoip.display())))?;
    let c = match &opts.networks {
        Some(csv) => clients::from_csv(&geo, csv, opts.seed),
        None => clients::sample(&geo, opts.clients, opts.seed),
    }
    .map_err(|e| SimError::Input(e.to_string()))?;
    if c.is_empty() {
        return Err(SimError::Input("no client could be located".into()));
    }
    Ok(c)
}

/// Runs every policy of `opts` through `scenario`. `progress(done, total)`
/// is called after every interval of every policy.
pub fn simulate(
    opts: &Options,
    scenario: &Scenario,
    clients: &[Client],
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, SimError> {
    let text = std::fs::read_to_string(&opts.zone)
        .map_err(|e| SimError::Input(format!("{}: {e}", opts.zone.display())))?;
    let total = u64::from(scenario.intervals) * opts.policies.len() as u64;
    let mut runs = Vec::new();
    let mut optimum: Vec<Option<f64>> = Vec::new();
    let mut dcs = Vec::new();
    let mut dc_locations = Vec::new();
    for (k, &p) in opts.policies.iter().enumerate() {
        let control = control_for(&opts.zone, &text, p, scenario)?;
        if k == 0 {
            dcs = run::dc_names(&control);
            dc_locations = control.world().zones.zones[0]
                .datacenters
                .iter()
                .map(|d| d.location)
                .collect();
        }
        let setup = run::Setup {
            clients,
            demand: scenario.demand.unwrap_or(opts.demand),
            scenario,
        };
        let done = k as u64 * u64::from(scenario.intervals);
        let r = run::run(p, &control, &setup, k == 0, |n| {
            progress(done + u64::from(n) + 1, total)
        });
        if k == 0 {
            optimum = r
                .series
                .iter()
                .filter(|i| run::ends_window(scenario, i.n))
                .map(|i| i.optimum_km)
                .collect();
        }
        runs.push(r);
    }
    let summary = runs
        .iter()
        .flat_map(|r| summary::summarise(r, scenario, &optimum))
        .collect();
    Ok(Report {
        scenario: scenario.clone(),
        dcs,
        dc_locations,
        clients: clients.to_vec(),
        runs,
        summary,
    })
}

/// The control plane of one policy, offline (no probes, no feeds: the run
/// feeds load and health itself).
fn control_for(
    zone: &Path,
    text: &str,
    p: Policy,
    sc: &Scenario,
) -> Result<Arc<Control>, SimError> {
    // The TTL that makes resolvers cache for the scenario's intervals; the
    // load interval is read from the zone as the policy compiles it.
    let probe = policy::zone_for(zone, text, p, 1).map_err(SimError::Input)?;
    let interval = probe.zones[0].steering.load_interval.as_secs_f64();
    let ttl = (interval * f64::from(sc.cache_intervals)).round().max(1.0) as u32;
    let zones = policy::zone_for(zone, text, p, ttl).map_err(SimError::Input)?;
    Control::new(zones, false).map_err(|e| SimError::Input(e.to_string()))
}
