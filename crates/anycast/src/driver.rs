//! The anycast driver inside `boltz serve`: every `interval` it probes each
//! prefix, feeds the result, the drain and the stop to the prefix's
//! [`Announcer`], and applies the verdict to the speaker — every time, so
//! a restarted BIRD is put right within one interval. Each change is
//! logged with its reason and shown in [`Status`].
//!
//! On stop ([`Running::stop`]) it withdraws everything at once and
//! returns; the caller keeps answering for `stop_wait` so the routers
//! move away before the sockets close.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::announce::Announcer;
use crate::config::{Check, Config, SpeakerKind};
use crate::guard::Guard;
use crate::speaker::{check_protocols, Speaker};
use crate::status::Status;

/// Whether the site's `boltz l4` service on an address has a backend
/// taking new flows (`None`: not known yet).
pub type VipHealth = Arc<dyn Fn(IpAddr) -> Option<bool> + Send + Sync>;

/// What the driver needs besides its file.
pub struct Options {
    /// The addresses the server answers on (`--listen`): the self-probe
    /// asks a prefix's address on the port of the one that covers it.
    pub listen: Vec<SocketAddr>,
    /// For `check = "l4"` prefixes.
    pub vip_health: Option<VipHealth>,
    /// How to start the guard: the program and the arguments before its
    /// own (`boltz`, `anycast guard`).
    pub guard_program: Option<(PathBuf, Vec<String>)>,
}

/// A running driver.
pub struct Running {
    /// Its state, for the API.
    pub status: Arc<Status>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Withdraws every prefix at once and ends the loop; returns when the
    /// speaker has been told.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            error!(error = %e, "anycast driver failed while stopping");
        }
    }
}

/// Checks the speaker knows the configured protocols, starts the guard
/// and the loop. An error names what is missing.
pub async fn start(cfg: Config, opts: Options) -> Result<Running, String> {
    let speaker = Speaker::of(&cfg);
    if let Speaker::Bird(bird) = &speaker {
        match check_protocols(bird, &cfg).await {
            Ok(problems) if problems.is_empty() => {
                info!(socket = %bird.socket().display(), "BIRD knows every anycast protocol")
            }
            Ok(problems) => return Err(problems.join("\n")),
            // BIRD may start after boltz; the loop keeps trying and says so.
            Err(e) => {
                warn!(error = %e, "cannot check BIRD's protocols yet; nothing is announced until it answers")
            }
        }
    }
    if let Some(p) = cfg
        .prefixes
        .iter()
        .find(|p| p.check == Check::Dns && probe_target(&opts.listen, p.address).is_none())
    {
        let listen: Vec<String> = opts.listen.iter().map(ToString::to_string).collect();
        return Err(format!(
            "{}: {}'s address {} is not one this server answers on (--listen {}): its probe could never pass",
            cfg.file.display(),
            p.prefix,
            p.address,
            listen.join(", ")
        ));
    }
    if cfg.prefixes.iter().any(|p| p.check == Check::L4) && opts.vip_health.is_none() {
        return Err(format!(
            "{}: a prefix has check = \"l4\", which needs --datacenter (the site's boltz l4)",
            cfg.file.display()
        ));
    }
    let guard = match (
        &opts.guard_program,
        cfg.guard && cfg.speaker == SpeakerKind::Bird,
    ) {
        (Some((program, leading)), true) => Some(
            Guard::spawn(program, leading, &cfg)
                .map_err(|e| format!("cannot start the anycast guard: {e}"))?,
        ),
        _ => None,
    };
    let status = Arc::new(Status::new(&cfg));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(
        Arc::new(cfg),
        speaker,
        status.clone(),
        opts,
        guard,
        stop_rx,
    ));
    Ok(Running { status, stop, task })
}

async fn run(
    cfg: Arc<Config>,
    speaker: Speaker,
    status: Arc<Status>,
    opts: Options,
    guard: Option<Guard>,
    mut stop: watch::Receiver<bool>,
) {
    let guard = guard.map(|g| tokio::spawn(g.keep_alive(cfg.clone())));
    let start = Instant::now();
    let mut announcers: Vec<Announcer> = cfg
        .prefixes
        .iter()
        .map(|_| Announcer::new(cfg.rules, start))
        .collect();
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut orphaned = false;
    loop {
        // A drain window ends on time, not at the next probe.
        let drain_ends = announcers.iter().filter_map(Announcer::drain_ends).min();
        let probe = tokio::select! {
            _ = tick.tick() => true,
            _ = status.wake.notified() => false,
            _ = sleep_until(drain_ends), if drain_ends.is_some() => false,
            // A dropped handle stops the driver too.
            r = stop.changed(), if !orphaned => {
                orphaned = r.is_err();
                false
            }
        };
        let stopping = orphaned || *stop.borrow();
        status.set_file_drained(cfg.drain_file.as_ref().is_some_and(|f| f.exists()));
        let drained = status.drained_any();
        // Probes keep their cadence (rise and fall count seconds); a wake
        // only decides again from what is known.
        let results: Vec<Option<Result<(), String>>> = if probe && !stopping {
            probe_all(&cfg, &opts).await.into_iter().map(Some).collect()
        } else {
            vec![None; cfg.prefixes.len()]
        };
        let now = Instant::now();
        for (i, (p, result)) in cfg.prefixes.iter().zip(results).enumerate() {
            let a = &mut announcers[i];
            let before = a.state().0;
            let want = match &result {
                Some(r) => a.observe(now, r.clone(), drained, stopping),
                None => a.decide(now, drained, stopping),
            };
            let why = a.state().1.to_string();
            if want != before {
                info!(prefix = %p.prefix, from = ?before, to = ?want, reason = %why, "anycast announcement changes");
            }
            let outcome = speaker.apply(p, want).await;
            status.update(i, |s| {
                // The speaker was last seen holding this very state.
                let held = s.in_sync && s.state == want;
                if want != s.state {
                    s.changes += 1;
                    s.since_unix_ms = boltz_core::clock::unix_ms().unwrap_or(0);
                }
                s.state = want;
                s.reason = why;
                match &result {
                    Some(Err(e)) => {
                        s.probe_failures += 1;
                        s.probe_error = Some(e.clone());
                    }
                    Some(Ok(())) => s.probe_error = None,
                    None => {}
                }
                match &outcome {
                    Ok(changed) => {
                        if *changed && held {
                            s.reasserts += 1;
                            warn!(prefix = %p.prefix, state = ?want, "the speaker had drifted from what boltz wants (BIRD restarted?); re-asserted");
                        }
                        if s.speaker_error.take().is_some() {
                            info!(prefix = %p.prefix, "the speaker answers again");
                        }
                        s.in_sync = true;
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if s.speaker_error.as_deref() != Some(&text) {
                            error!(prefix = %p.prefix, error = %text, "cannot tell the speaker; retrying every interval");
                        }
                        s.speaker_errors += 1;
                        s.speaker_error = Some(text);
                        s.in_sync = false;
                    }
                }
            });
        }
        if stopping {
            if let Some(g) = guard {
                g.abort();
            }
            return;
        }
    }
}

/// Where to probe `address`: on the port of the listening address that is
/// it, or else of a wildcard of its family.
fn probe_target(listen: &[SocketAddr], address: IpAddr) -> Option<SocketAddr> {
    let exact = listen.iter().find(|l| l.ip() == address);
    let wildcard = || {
        listen
            .iter()
            .find(|l| l.ip().is_unspecified() && l.is_ipv4() == address.is_ipv4())
    };
    exact
        .or_else(wildcard)
        .map(|l| SocketAddr::new(address, l.port()))
}

/// Sleeps until `at` (callers only poll this with `Some`).
async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Every prefix's check, concurrently.
async fn probe_all(cfg: &Config, opts: &Options) -> Vec<Result<(), String>> {
    let mut tasks = Vec::new();
    for p in &cfg.prefixes {
        let r: JoinHandle<Result<(), String>> = match (p.check, &cfg.probe) {
            (Check::Dns, Some(probe)) => {
                let probe = probe.clone();
                match probe_target(&opts.listen, p.address) {
                    Some(to) => tokio::spawn(async move { crate::probe::check(&probe, to).await }),
                    None => {
                        tokio::spawn(async { Err("not an address this server answers on".into()) })
                    }
                }
            }
            (Check::Dns, None) => tokio::spawn(async { Err("no [probe] configured".into()) }),
            (Check::L4, _) => {
                let verdict = match opts.vip_health.as_ref().and_then(|f| f(p.address)) {
                    Some(true) => Ok(()),
                    Some(false) => Err(format!(
                        "l4: no backend of VIP {} takes new flows",
                        p.address
                    )),
                    None => Err(format!("l4: no report of VIP {} yet", p.address)),
                };
                tokio::spawn(async move { verdict })
            }
        };
        tasks.push(r);
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(
            t.await
                .unwrap_or_else(|e| Err(format!("probe failed: {e}"))),
        );
    }
    out
}

#[cfg(test)]
mod tests;
