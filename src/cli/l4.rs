//! `boltz l4`: attach the XDP balancer to an interface (or reuse the one a
//! previous run pinned), then serve its local API until SIGINT/SIGTERM.
//! Exiting leaves the program attached and forwarding; `boltz l4 down`
//! detaches it. `boltz l4 decap` attaches the backend-side decapsulator.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use tracing::info;

use boltz_l4::dataplane::{self, Mode, Program};
use boltz_l4::{ApiState, Control};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct L4Args {
    #[command(subcommand)]
    cmd: Option<L4Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum L4Cmd {
    /// On a backend: strip IP-in-IP (IPv4 proto 4, IPv6 next header 41)
    /// in XDP, for kernels without the ipip module.
    Decap {
        #[arg(long)]
        iface: String,
        #[arg(long, default_value = "generic", value_parser = xdp_mode())]
        mode: Mode,
        /// Where the link is pinned (default /sys/fs/bpf/boltz-decap-IFACE).
        #[arg(long)]
        bpffs: Option<PathBuf>,
    },
    /// Detach: remove the pins of a balancer or decapsulator.
    Down {
        /// The directory given as --bpffs (or its default).
        #[arg(long)]
        bpffs: PathBuf,
    },
}

/// `native` or `generic`, listed in `--help`.
fn xdp_mode() -> impl clap::builder::TypedValueParser<Value = Mode> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["native", "generic"])
        .map(|s| s.parse().expect("one of the listed values"))
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Interface whose received packets are balanced.
    #[arg(long)]
    iface: Option<String>,
    /// `native` (driver XDP) or `generic` (any interface, slower).
    #[arg(long, default_value = "native", value_parser = xdp_mode())]
    mode: Mode,
    /// `unix:PATH` (default unix:/run/boltz-l4.sock) or loopback `ADDR:PORT`.
    #[arg(long, default_value = "unix:/run/boltz-l4.sock")]
    api: String,
    /// Bearer token for changes over TCP (else $BOLTZ_API_TOKEN).
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// bpffs directory for the pins (mounted if it is not a bpffs);
    /// default /sys/fs/bpf/boltz-l4-IFACE.
    #[arg(long)]
    bpffs: Option<PathBuf>,
    /// Where the service state is kept across restarts (default
    /// /var/lib/boltz/l4-IFACE.json).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Outer IPv4 source address (default: the interface's first IPv4).
    #[arg(long)]
    src_v4: Option<std::net::Ipv4Addr>,
    /// Outer IPv6 source address (default: the interface's first global IPv6).
    #[arg(long)]
    src_v6: Option<std::net::Ipv6Addr>,
    /// New connection-table entries per second per CPU before the flood
    /// guard stops inserting (0 = no guard).
    #[arg(long, default_value_t = 100_000)]
    flood_limit: u64,
    /// Connection-table slots (rounded up to a power of two; sets of 8,
    /// least recently used out), 8 bytes each. Give it 4× the flows live
    /// at once: at a quarter full one flow in 7000 finds its set full, at
    /// half full one in 120.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(8..=(1 << 28)))]
    conn_table: u32,
    /// Packets per second at utilisation 1, for /v1/load.
    #[arg(long)]
    capacity_pps: Option<f64>,
    /// Leave the interface's forwarding sysctls alone (the kernel's FIB
    /// lookup for routed backends needs them on; see the README).
    #[arg(long)]
    keep_sysctls: bool,
}

pub fn run(a: L4Args) -> anyhow::Result<ExitCode> {
    super::init_logging();
    if !matches!(a.cmd, Some(L4Cmd::Down { .. })) {
        // Before touching sysctls or pins: say at once if XDP is missing.
        dataplane::object()?;
    }
    match a.cmd {
        Some(L4Cmd::Decap { iface, mode, bpffs }) => {
            let dir =
                bpffs.unwrap_or_else(|| PathBuf::from(format!("/sys/fs/bpf/boltz-decap-{iface}")));
            let at = dataplane::attach_pinned(&dir, &iface, mode, Program::Decap, None)?;
            outln!(
                "decap {} on {iface} (pinned in {})",
                if at.reused {
                    "already attached"
                } else {
                    "attached"
                },
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(L4Cmd::Down { bpffs }) => {
            let had = dataplane::remove_pins(&bpffs)?;
            outln!(
                "{}",
                if had {
                    "detached"
                } else {
                    "nothing was attached there"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        None => serve(a.run),
    }
}

fn serve(a: RunArgs) -> anyhow::Result<ExitCode> {
    let Some(iface) = a.iface.clone() else {
        bail!("--iface is required")
    };
    let token = super::read_token(a.api_token_file.as_deref())?;
    let dir = a
        .bpffs
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/sys/fs/bpf/boltz-l4-{iface}")));
    let state = a
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/var/lib/boltz/l4-{iface}.json")));
    if let Some(parent) = state.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if !a.keep_sysctls {
        enable_forwarding(&iface)?;
    }
    let attached =
        dataplane::attach_pinned(&dir, &iface, a.mode, Program::Balancer, Some(a.conn_table))?;
    let (src4, src6) = iface_addresses(&iface)?;
    let src4 = a.src_v4.or(src4).map_or([0; 4], |v| v.octets());
    let src6 = a.src_v6.or(src6).map_or([0; 16], |v| v.octets());
    let mac = iface_mac(&iface)?;
    let balancer = Arc::new(Control::new(attached.maps, Some(state.clone()))?);
    balancer.configure(src4, src6, mac, a.flood_limit)?;
    info!(
        iface, pins = %dir.display(), state = %state.display(),
        reused = attached.reused, "boltz l4 data path ready"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let rates = Arc::new(Mutex::new(boltz_l4::Rates::default()));
        tokio::spawn(boltz_l4::sample(
            balancer.clone(),
            rates.clone(),
            Duration::from_secs(1),
        ));
        let st = ApiState {
            control: balancer,
            token: token.map(Arc::from),
            tcp: false,
            capacity_pps: a.capacity_pps,
            rates,
        };
        let shutdown = async {
            super::stop_signal().await;
            info!("stopping the API; the data path stays attached");
        };
        super::serve_local_api(
            &a.api,
            |tcp| boltz_l4::router(ApiState { tcp, ..st }),
            shutdown,
        )
        .await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `bpf_fib_lookup` answers only for interfaces with forwarding on.
fn enable_forwarding(iface: &str) -> anyhow::Result<()> {
    for fam in ["ipv4", "ipv6"] {
        let path = format!("/proc/sys/net/{fam}/conf/{iface}/forwarding");
        if std::fs::read_to_string(&path)
            .map(|v| v.trim() == "1")
            .unwrap_or(false)
        {
            continue;
        }
        std::fs::write(&path, "1").with_context(|| format!("enabling forwarding: {path}"))?;
        info!(path, "enabled forwarding for backend next-hop lookups");
    }
    Ok(())
}

/// The interface's MAC (from sysfs).
fn iface_mac(iface: &str) -> anyhow::Result<[u8; 6]> {
    let path = format!("/sys/class/net/{iface}/address");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    boltz_l4::parse_mac(text.trim()).with_context(|| format!("{path}: not a MAC: {text:?}"))
}

/// The interface's first IPv4 and first global IPv6 address.
fn iface_addresses(
    iface: &str,
) -> anyhow::Result<(Option<std::net::Ipv4Addr>, Option<std::net::Ipv6Addr>)> {
    let (mut v4, mut v6) = (None, None);
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below; we only
    // read entries while it is alive and check every pointer for null.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return Err(std::io::Error::last_os_error()).context("getifaddrs");
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null()
                || std::ffi::CStr::from_ptr(ifa.ifa_name).to_bytes() != iface.as_bytes()
            {
                continue;
            }
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET if v4.is_none() => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    v4 = Some(std::net::Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)));
                }
                libc::AF_INET6 if v6.is_none() => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let a = std::net::Ipv6Addr::from(sa.sin6_addr.s6_addr);
                    if !a.is_unicast_link_local() {
                        v6 = Some(a);
                    }
                }
                _ => {}
            }
        }
        libc::freeifaddrs(head);
    }
    Ok((v4, v6))
}
