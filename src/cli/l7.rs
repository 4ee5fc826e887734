//! `boltz l7 --config FILE`: load and validate the proxy config, bind the
//! listeners, start the worker threads and serve the local API until
//! SIGINT/SIGTERM; then stop accepting, let in-flight requests finish
//! (up to `timeouts.shutdown`) and exit. `boltz l7 --check --config FILE`
//! only validates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tracing::info;

use boltz_l7::{ApiState, Config, Control};

#[derive(Args, Debug)]
pub struct L7Args {
    /// The proxy's TOML config (listeners, pools, routes, timeouts).
    #[arg(long)]
    config: PathBuf,
    /// `unix:PATH` or loopback `ADDR:PORT` for the local API.
    #[arg(long, default_value = "unix:/run/boltz-l7.sock")]
    api: String,
    /// File holding the bearer token for API changes over TCP (else
    /// `$BOLTZ_API_TOKEN`).
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// Validate the config and exit.
    #[arg(long)]
    check: bool,
}

pub fn run(a: L7Args) -> anyhow::Result<ExitCode> {
    super::init_logging();
    let config = Config::load(&a.config)?;
    if a.check {
        outln!("{}: ok", a.config.display());
        return Ok(ExitCode::SUCCESS);
    }
    let token = super::read_token(a.api_token_file.as_deref())?;
    let (bound, keep) = boltz_l7::bind(&config.listeners)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let l7 = Control::new(config, Some(rt.handle().clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let addrs: Vec<String> = bound.iter().map(|b| b.addr.to_string()).collect();
    let workers =
        boltz_l7::spawn_workers(l7.clone(), bound, stop_rx).context("starting workers")?;
    drop(keep);
    info!(listen = ?addrs, workers = workers.len(), "boltz l7 serving");
    // A reader that went away does not stop the server.
    let _ = super::out::write(format_args!("ready listen={}\n", addrs.join(",")));
    rt.block_on(async {
        let rates = Arc::new(Mutex::new(boltz_l7::Rates::default()));
        tokio::spawn(boltz_l7::sample(
            l7.clone(),
            rates.clone(),
            Duration::from_secs(1),
        ));
        tokio::spawn(l7.clone().maintain(Duration::from_millis(100)));
        let st = ApiState {
            control: l7.clone(),
            token: token.map(Arc::from),
            tcp: false,
            rates,
        };
        let shutdown = async move {
            super::stop_signal().await;
            info!("shutting down: draining in-flight requests");
            let _ = stop_tx.send(true);
        };
        super::serve_local_api(
            &a.api,
            |tcp| boltz_l7::router(ApiState { tcp, ..st }),
            shutdown,
        )
        .await
    })?;
    for w in workers {
        let _ = w.join();
    }
    info!("boltz l7 stopped");
    Ok(ExitCode::SUCCESS)
}
