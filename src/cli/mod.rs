//! The `boltz` command line: argument parsing and the subcommands. This is
//! the binary's edge, so errors here are `anyhow` and go to stderr.

mod check;
mod explain;
mod geoip;
mod l4;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "boltz",
    version,
    about = "DNS global server load balancer with Boltzmann steering"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the authoritative DNS server (UDP+TCP) and the local API.
    Serve(serve::ServeArgs),
    /// Validate zone files (and optionally a geo database); prints
    /// `file:line:col: message` per problem and exits non-zero on any.
    Check {
        /// A zone file or a directory of *.toml zone files.
        #[arg(default_value = "zones")]
        path: PathBuf,
        /// Also check that this .mmdb opens.
        #[arg(long)]
        geoip: Option<PathBuf>,
    },
    /// Explain the answer a client gets for a steered name.
    Explain(explain::ExplainArgs),
    /// The XDP Maglev L4 balancer (and `l4 decap` for backends).
    L4(l4::L4Args),
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        cmd: geoip::GeoipCmd,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Serve(a) => serve::run(a),
        Cmd::Check { path, geoip } => check::run(&path, geoip.as_deref()),
        Cmd::Explain(a) => explain::run(a),
        Cmd::L4(a) => l4::run(a),
        Cmd::Geoip { cmd } => geoip::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("boltz: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The API bearer token from `file`, else `$BOLTZ_API_TOKEN`; empty = none.
fn read_token(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    use anyhow::Context as _;
    let token = match file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("BOLTZ_API_TOKEN").ok(),
    };
    Ok(token.filter(|t| !t.is_empty()))
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
