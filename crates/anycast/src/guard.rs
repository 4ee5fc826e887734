//! Crash safety: BIRD alone keeps announcing a dead server's prefix, so
//! `boltz serve` runs a guard, a small process of its own (`boltz anycast
//! guard`) in its own process group, that withdraws the prefixes when the
//! server dies or hangs.
//!
//! The server holds the write end of the guard's stdin and writes a byte
//! every `guard_timeout / 5`. The guard withdraws (disables every anycast
//! protocol) when:
//! - stdin reaches end of file: the server exited, was killed (SIGKILL,
//!   panic, OOM), or stopped; the kernel closes the pipe in every case;
//! - nothing came for `guard_timeout`: the server hangs (a hung runtime
//!   cannot probe or re-assert); it re-asserts by itself if it recovers;
//! - the guard gets SIGTERM (a service manager stopping everything).
//!
//! No systemd is needed; the deploy unit adds an `ExecStopPost` as a
//! third line of defence.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::bird::Bird;
use crate::config::Config;

/// The server's side: the guard process and the pipe to it.
pub struct Guard {
    command: (PathBuf, Vec<String>),
    child: Child,
}

impl Guard {
    /// Starts `program leading… --bird SOCK --timeout MS --protocol P…`
    /// for every protocol of `cfg`.
    pub fn spawn(program: &Path, leading: &[String], cfg: &Config) -> std::io::Result<Guard> {
        let mut args = leading.to_vec();
        args.push("--bird".into());
        args.push(cfg.bird_socket.display().to_string());
        args.push("--timeout-ms".into());
        args.push(cfg.guard_timeout.as_millis().to_string());
        for p in &cfg.prefixes {
            for name in std::iter::once(&p.protocol).chain(&p.drain_protocol) {
                args.push("--protocol".into());
                args.push(name.clone());
            }
        }
        let command = (program.to_path_buf(), args);
        let child = launch(&command)?;
        info!(pid = child.id(), "anycast guard started");
        Ok(Guard { command, child })
    }

    /// Writes the heartbeat until dropped (aborting the task closes the
    /// pipe, which the guard takes as the end); starts a new guard if
    /// this one died.
    pub async fn keep_alive(mut self, cfg: Arc<Config>) {
        let period = cfg.guard_timeout / 5;
        loop {
            let ok = match self.child.stdin.as_mut() {
                Some(stdin) => stdin.write_all(b".").await.is_ok() && stdin.flush().await.is_ok(),
                None => false,
            };
            if !ok {
                let status = self.child.try_wait().ok().flatten();
                warn!(status = ?status, "the anycast guard is gone; starting another");
                match launch(&self.command) {
                    Ok(c) => self.child = c,
                    Err(e) => error!(error = %e, "cannot restart the anycast guard"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            tokio::time::sleep(period).await;
        }
    }
}

fn launch((program, args): &(PathBuf, Vec<String>)) -> std::io::Result<Child> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        // Out of the server's process group: a signal to the group (a
        // terminal's Ctrl-C, `kill -- -PGID`) does not take both.
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
}

/// What woke the guard.
enum Event {
    Beat,
    Gone,
}

/// The guard's main: watches stdin, withdraws `protocols` on BIRD at
/// `socket` when the server is gone or silent for `timeout`. Returns the
/// exit code.
pub fn run(socket: PathBuf, protocols: Vec<String>, timeout: Duration) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "anycast guard cannot start");
            return 1;
        }
    };
    rt.block_on(watch(Bird::new(socket), protocols, timeout))
}

async fn watch(bird: Bird, protocols: Vec<String>, timeout: Duration) -> i32 {
    let (tx, mut rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        loop {
            let event = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => Event::Gone,
                Ok(_) => Event::Beat,
            };
            let gone = matches!(event, Event::Gone);
            if tx.blocking_send(event).is_err() || gone {
                return;
            }
        }
    });
    let mut term = match signal(SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            error!(error = %e, "anycast guard cannot watch SIGTERM");
            return 1;
        }
    };
    let mut silent = false;
    loop {
        tokio::select! {
            e = tokio::time::timeout(timeout, rx.recv()) => match e {
                Ok(Some(Event::Beat)) => {
                    if silent {
                        info!("boltz serve is alive again; it re-asserts what it announces");
                        silent = false;
                    }
                }
                Ok(Some(Event::Gone)) | Ok(None) => {
                    withdraw(&bird, &protocols, "boltz serve is gone").await;
                    return 0;
                }
                Err(_) => {
                    if !silent {
                        withdraw(&bird, &protocols, &format!("boltz serve silent for {timeout:?} (hung?)")).await;
                        silent = true;
                    }
                }
            },
            _ = term.recv() => {
                withdraw(&bird, &protocols, "the guard got SIGTERM").await;
                return 0;
            }
        }
    }
}

/// Disables every protocol, retrying briefly if BIRD does not answer.
async fn withdraw(bird: &Bird, protocols: &[String], why: &str) {
    for name in protocols {
        let mut tries = 0;
        loop {
            match bird.disable(name).await {
                Ok(changed) => {
                    if changed {
                        warn!(protocol = %name, reason = why, "anycast guard withdrew the prefix");
                    }
                    break;
                }
                Err(e) if tries < 10 => {
                    tries += 1;
                    warn!(protocol = %name, error = %e, "anycast guard cannot reach BIRD; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    error!(protocol = %name, error = %e, reason = why, "anycast guard could not withdraw");
                    break;
                }
            }
        }
    }
}
