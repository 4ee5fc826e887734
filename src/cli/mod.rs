//! The `boltz` command line: argument parsing and the subcommands. This is
//! the binary's edge, so errors here are `anyhow` and go to stderr.

#[macro_use]
mod out;

mod anycast;
mod check;
mod explain;
mod geoip;
mod l4;
mod l7;
mod node;
mod serve;
mod simulate;
mod site;

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
        /// A zone file or a directory of *.toml zone files (with the shared
        /// datacenters.toml there or beside the file, if any).
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
    /// The L7 HTTP reverse proxy (HTTP/1.1, h2, TLS) with its local API.
    L7(l7::L7Args),
    /// Run the server's steering against a synthetic world and scenarios:
    /// settle times, distance against the optimum, time series and plots.
    Simulate(simulate::SimulateArgs),
    /// Anycast tools: check an anycast file, the process ExaBGP runs.
    Anycast(anycast::AnycastArgs),
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
        Cmd::L7(a) => l7::run(a),
        Cmd::Simulate(a) => simulate::run(a),
        Cmd::Geoip { cmd } => geoip::run(cmd),
        Cmd::Anycast(a) => anycast::run(a),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): end quietly, as ripgrep does.
        Err(e) if out::is_broken_pipe(&e) => ExitCode::SUCCESS,
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

/// Serves a data plane's local API on `api` — `unix:PATH` (mode 0600) or
/// a TCP `ADDR:PORT` — until `shutdown` resolves. `router` is told whether
/// the API is on TCP (where changes need the bearer token). Prints `ready
/// api=…` on stdout once listening.
async fn serve_local_api(
    api: &str,
    router: impl FnOnce(bool) -> axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if let Some(path) = api.strip_prefix("unix:") {
        let path = std::path::Path::new(path);
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        // A reader that went away does not stop the server.
        let _ = out::write(format_args!("ready api=unix:{}\n", path.display()));
        axum::serve(listener, router(false))
            .with_graceful_shutdown(shutdown)
            .await?;
    } else {
        let addr: std::net::SocketAddr = api
            .parse()
            .with_context(|| format!("--api {api:?}: not unix:PATH or ADDR:PORT"))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        // A reader that went away does not stop the server.
        let _ = out::write(format_args!("ready api={}\n", listener.local_addr()?));
        axum::serve(listener, router(true))
            .with_graceful_shutdown(shutdown)
            .await?;
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
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
