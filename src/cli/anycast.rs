//! Anycast on the command line: the glue that starts the driver inside
//! `boltz serve --anycast FILE` and shows it in the API, and the `boltz
//! anycast` subcommands — `check` (the file, and whether BIRD knows its
//! protocols), `guard` (started by `serve`: withdraws when the server dies
//! or hangs) and `exabgp` (the process ExaBGP runs).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use tracing::warn;

use boltz_anycast::config::SpeakerKind;
use boltz_anycast::exabgp::Follower;
use boltz_anycast::{Config, Document, Options, Running};
use boltz_core::duration::parse_duration;
use boltz_gslb::AnycastView;

use super::site;

#[derive(Args, Debug)]
pub struct AnycastArgs {
    #[command(subcommand)]
    cmd: AnycastCmd,
}

#[derive(Subcommand, Debug)]
enum AnycastCmd {
    /// Check an anycast file; with BIRD reachable, also that it knows
    /// every protocol the file names, as static protocols.
    Check {
        /// The anycast file.
        file: PathBuf,
    },
    /// The process ExaBGP runs (`run boltz anycast exabgp --api URL;` in
    /// its `process` block): prints announce/withdraw lines as boltz's
    /// `/v1/anycast` changes, and withdraws all if boltz stops answering.
    Exabgp {
        /// boltz serve's API.
        #[arg(long, default_value = "http://127.0.0.1:5380")]
        api: String,
        /// Between reads of `/v1/anycast`.
        #[arg(long, default_value = "250ms", value_parser = parse_duration)]
        interval: Duration,
        /// boltz silent this long: withdraw everything.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        lost: Duration,
    },
    /// Started by `boltz serve --anycast` (not by hand): withdraws the
    /// prefixes when its stdin ends (the server exited or died) or stays
    /// silent (the server hangs), or on SIGTERM.
    #[command(hide = true)]
    Guard {
        #[arg(long)]
        bird: PathBuf,
        #[arg(long = "protocol")]
        protocols: Vec<String>,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
}

pub fn run(a: AnycastArgs) -> anyhow::Result<ExitCode> {
    super::init_logging();
    match a.cmd {
        AnycastCmd::Check { file } => check(&file),
        AnycastCmd::Guard {
            bird,
            protocols,
            timeout_ms,
        } => Ok(ExitCode::from(boltz_anycast::guard::run(
            bird,
            protocols,
            Duration::from_millis(timeout_ms),
        ) as u8)),
        AnycastCmd::Exabgp {
            api,
            interval,
            lost,
        } => follow_for_exabgp(&api, interval, lost),
    }
}

/// Loads the anycast file or prints its problems.
pub fn load(file: &std::path::Path) -> Result<Config, ExitCode> {
    boltz_anycast::config::load(file).map_err(|diags| {
        for d in &diags.0 {
            eprintln!("{d}");
        }
        eprintln!("boltz: {} error(s) in the anycast file", diags.0.len());
        ExitCode::from(2)
    })
}

fn check(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let cfg = match load(file) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    outln!("{}: {} prefix(es): ok", file.display(), cfg.prefixes.len());
    if cfg.speaker != SpeakerKind::Bird {
        return Ok(ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bird = boltz_anycast::Bird::new(&cfg.bird_socket);
    match rt.block_on(boltz_anycast::speaker::check_protocols(&bird, &cfg)) {
        Ok(problems) if problems.is_empty() => {
            outln!(
                "{}: BIRD knows every protocol: ok",
                cfg.bird_socket.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(problems) => {
            for p in problems {
                outln!("{p}");
            }
            Ok(ExitCode::from(2))
        }
        Err(e) => {
            outln!("{e} (the file is fine; BIRD's protocols are unchecked)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Starts the driver of `serve --anycast` and the API's view of it.
pub async fn start(
    cfg: Config,
    listen: Vec<std::net::SocketAddr>,
    site: Option<Arc<site::Node>>,
) -> anyhow::Result<(Running, AnycastView)> {
    let guard_program =
        std::env::current_exe().context("locating the boltz binary for the anycast guard")?;
    let opts = Options {
        listen,
        vip_health: site.map(|s| {
            let f: boltz_anycast::VipHealth = Arc::new(move |ip| s.vip_up(ip));
            f
        }),
        guard_program: Some((guard_program, vec!["anycast".into(), "guard".into()])),
    };
    let running = boltz_anycast::driver::start(cfg, opts)
        .await
        .map_err(|e| anyhow::anyhow!("anycast: {e}"))?;
    let (a, b, c) = (
        running.status.clone(),
        running.status.clone(),
        running.status.clone(),
    );
    let view = AnycastView {
        document: Arc::new(move || serde_json::to_value(a.document()).unwrap_or_default()),
        render: Arc::new(move |e| b.render(e)),
        set_drained: Arc::new(move |on| c.set_drained(on)),
    };
    Ok((running, view))
}

/// `boltz anycast exabgp`: follows `/v1/anycast`, one line per change on
/// stdout; ends when ExaBGP stops reading or goes away.
fn follow_for_exabgp(api: &str, interval: Duration, lost: Duration) -> anyhow::Result<ExitCode> {
    let url = format!("{}/v1/anycast", api.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .timeout(interval.max(Duration::from_millis(100)))
        .build()?;
    let mut follower = Follower::default();
    let mut last_ok = Instant::now();
    let mut said_lost = false;
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    loop {
        // ExaBGP gone (this process re-parented): nobody reads the lines.
        // SAFETY: as above.
        if unsafe { libc::getppid() } != parent {
            return Ok(ExitCode::SUCCESS);
        }
        let doc: Result<Document, String> = rt.block_on(async {
            let r = client.get(&url).send().await.map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("{url}: {}", r.status()));
            }
            r.json::<Document>().await.map_err(|e| e.to_string())
        });
        let lines = match doc {
            Ok(d) => {
                last_ok = Instant::now();
                said_lost = false;
                follower.follow(&d)
            }
            Err(e) if last_ok.elapsed() >= lost => {
                if !said_lost {
                    warn!(error = %e, "boltz serve does not answer; withdrawing everything");
                    said_lost = true;
                }
                follower.lost()
            }
            Err(_) => Vec::new(),
        };
        let mut out = std::io::stdout().lock();
        for l in lines {
            if writeln!(out, "{l}").and_then(|_| out.flush()).is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
        drop(out);
        std::thread::sleep(interval);
    }
}
