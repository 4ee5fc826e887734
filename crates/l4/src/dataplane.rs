//! The XDP data path as the control plane sees it: the embedded program
//! object (present when the build found clang), loading it with aya,
//! attaching `balancer` or `decap` to an interface, and pinning the link and
//! the maps on a bpffs the daemon owns. A pinned link keeps the program
//! attached while no daemon runs; a restarted daemon reopens the pins and
//! changes nothing on the wire.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::sys;

/// Why the data path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error(
        "this boltz was built without XDP support (no clang or libbpf headers at build time): \
         apt-get install clang libbpf-dev, then cargo build again"
    )]
    /// Built without clang or libbpf headers.
    NotBuilt,
    #[error("loading the XDP object: {0}")]
    /// The kernel or aya refused the object or a program.
    Load(String),
    #[error("attaching to {iface}: {message}")]
    /// Attaching to an interface failed.
    Attach {
        /// The interface.
        iface: String,
        /// What the kernel said.
        message: String,
    },
    #[error("{what} {}", path.display())]
    /// A file of the bpffs could not be used.
    Io {
        /// What was being done.
        what: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
}

#[cfg(boltz_xdp)]
#[repr(C, align(32))]
struct Aligned<B: ?Sized>(B);

#[cfg(boltz_xdp)]
static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/balancer.o")));

/// The loaded object, as [`load`] returns it.
pub use aya::Ebpf;

/// The compiled program object.
pub fn object() -> Result<&'static [u8], DataplaneError> {
    #[cfg(boltz_xdp)]
    return Ok(&OBJECT.0);
    #[cfg(not(boltz_xdp))]
    Err(DataplaneError::NotBuilt)
}

/// Whether this build carries the XDP programs.
pub fn available() -> bool {
    object().is_ok()
}

/// The two programs in the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// The balancer, on the load balancer's interface.
    Balancer,
    /// IP-in-IP decapsulation, on a backend.
    Decap,
    /// Passes everything: for the receiving peer of a veth in benchmarks.
    Pass,
    /// Drops IP, passes ARP: a backend stand-in in benchmarks.
    Sink,
    /// Transmits copies of a template frame, each a new flow: the
    /// benchmarks' packet generator (see [`load_trafficgen`]).
    TrafficGen,
}

impl Program {
    /// The program's name in the object.
    pub fn name(self) -> &'static str {
        match self {
            Program::Balancer => "balancer",
            Program::Decap => "decap",
            Program::Pass => "xdp_pass",
            Program::Sink => "xdp_sink",
            Program::TrafficGen => "trafficgen",
        }
    }
}

/// Where XDP runs: in the driver (`native`) or after the kernel built an
/// skb (`generic`, works on any interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In the driver, before any skb exists (fastest; needs driver support).
    Native,
    /// After the kernel built an skb; works on any interface.
    Generic,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "native" => Ok(Mode::Native),
            "generic" => Ok(Mode::Generic),
            _ => Err(format!("unknown XDP mode `{s}` (native or generic)")),
        }
    }
}

/// Map names in the object, pinned under the same names.
pub const MAPS: [&str; 10] = [
    "vips",
    "rings",
    "backends",
    "flows",
    "config",
    "flood",
    "stats",
    "vip_stats",
    "backend_stats",
    "nexthops",
];

/// File descriptors of the balancer's maps.
#[derive(Debug)]
pub struct Maps {
    /// VIP → metadata.
    pub vips: OwnedFd,
    /// VIP id → its Maglev table (map of maps).
    pub rings: OwnedFd,
    /// Backend index → address and flags.
    pub backends: OwnedFd,
    /// The connection table: `flow_sets` sets of `abi::FLOW_WAYS` slots.
    pub flows: OwnedFd,
    /// Sets in the connection table.
    pub flow_sets: u32,
    /// Source addresses, MAC, flood limit.
    pub config: OwnedFd,
    /// Global counters by event.
    pub stats: OwnedFd,
    /// Per-VIP counters.
    pub vip_stats: OwnedFd,
    /// Per-backend counters.
    pub backend_stats: OwnedFd,
    /// Per-CPU cache of next-hop MACs.
    pub nexthops: OwnedFd,
    /// Slots in a per-CPU value.
    pub cpus: usize,
}

impl Maps {
    fn from_fn(mut get: impl FnMut(&str) -> io::Result<OwnedFd>) -> io::Result<Maps> {
        let flows = get("flows")?;
        Ok(Maps {
            vips: get("vips")?,
            rings: get("rings")?,
            backends: get("backends")?,
            flow_sets: sys::map_max_entries(flows.as_fd())?,
            flows,
            config: get("config")?,
            stats: get("stats")?,
            vip_stats: get("vip_stats")?,
            backend_stats: get("backend_stats")?,
            nexthops: get("nexthops")?,
            cpus: sys::possible_cpus()?,
        })
    }

    /// Reopens the maps pinned in `dir`.
    pub fn open(dir: &Path) -> io::Result<Maps> {
        Maps::from_fn(|name| sys::obj_get(&dir.join(name)))
    }

    /// The maps of an object loaded in this process (tests, first start).
    pub fn of(ebpf: &aya::Ebpf) -> io::Result<Maps> {
        Maps::from_fn(|name| {
            let map = ebpf
                .map(name)
                .ok_or_else(|| io::Error::other(format!("object has no map {name}")))?;
            map_fd(map)?.try_clone_to_owned()
        })
    }
}

fn map_fd(map: &aya::maps::Map) -> io::Result<BorrowedFd<'_>> {
    use aya::maps::Map;
    let data = match map {
        Map::Array(d) | Map::ArrayOfMaps(d) | Map::HashMap(d) | Map::PerCpuArray(d) => d,
        _ => return Err(io::Error::other("unexpected map type in the object")),
    };
    Ok(data.fd().as_fd())
}

/// Loads the object and both programs (verified, not attached).
/// `conn_table` sets the connection table's room in flows (rounded up to a
/// power of two).
pub fn load(conn_table: Option<u32>) -> Result<aya::Ebpf, DataplaneError> {
    let mut loader = aya::EbpfLoader::new();
    if let Some(n) = conn_table {
        loader.map_max_entries("flows", crate::abi::flow_sets(n));
    }
    let mut ebpf = loader
        .load(object()?)
        .map_err(|e| DataplaneError::Load(format!("{e:#}")))?;
    for p in [
        Program::Balancer,
        Program::Decap,
        Program::Pass,
        Program::Sink,
    ] {
        xdp(&mut ebpf, p)?
            .load()
            .map_err(|e| DataplaneError::Load(format!("verifying {}: {}", p.name(), chain(&e))))?;
    }
    Ok(ebpf)
}

/// Loads the object for the benchmarks' packet generator: `frame` (a
/// 64-byte Ethernet/IPv4/UDP frame) becomes the template that
/// [`Program::TrafficGen`] writes into every frame of a live-frames test
/// run, with a new UDP source port each.
pub fn load_trafficgen(frame: [u8; 64]) -> Result<aya::Ebpf, DataplaneError> {
    let load = |e: &dyn std::error::Error| DataplaneError::Load(chain(e));
    let mut ebpf = aya::EbpfLoader::new()
        .load(object()?)
        .map_err(|e| load(&e))?;
    let map = ebpf
        .map_mut("gen_tmpl")
        .ok_or_else(|| DataplaneError::Load("object has no map gen_tmpl".into()))?;
    let mut tmpl: aya::maps::Array<_, [u8; 64]> =
        aya::maps::Array::try_from(map).map_err(|e| load(&e))?;
    tmpl.set(0, frame, 0).map_err(|e| load(&e))?;
    xdp(&mut ebpf, Program::TrafficGen)?
        .load()
        .map_err(|e| load(&e))?;
    Ok(ebpf)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn xdp(ebpf: &mut aya::Ebpf, p: Program) -> Result<&mut aya::programs::Xdp, DataplaneError> {
    ebpf.program_mut(p.name())
        .ok_or_else(|| DataplaneError::Load(format!("object has no program {}", p.name())))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| DataplaneError::Load(e.to_string()))
}

/// The file descriptor of a loaded program (for test runs).
pub fn program_fd(ebpf: &aya::Ebpf, p: Program) -> Result<BorrowedFd<'_>, DataplaneError> {
    let prog = ebpf
        .program(p.name())
        .ok_or_else(|| DataplaneError::Load(format!("object has no program {}", p.name())))?;
    let fd = prog.fd().map_err(|e| DataplaneError::Load(e.to_string()))?;
    Ok(fd.as_fd())
}

/// Result of [`attach_pinned`].
pub struct Attached {
    /// The pinned maps.
    pub maps: Maps,
    /// The link was already pinned: a previous daemon attached it and the
    /// data path kept running; nothing was reloaded.
    pub reused: bool,
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DataplaneError + 'a {
    move |source| DataplaneError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Makes sure `dir` is on a bpffs, mounting one there if it is not.
pub fn ensure_bpffs(dir: &Path) -> Result<(), DataplaneError> {
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| {
        io_err("checking", dir)(io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
    })?;
    // SAFETY: statfs writes into a zeroed struct we own; the path is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io_err("checking", dir)(io::Error::last_os_error()));
    }
    if st.f_type as i64 == BPF_FS_MAGIC {
        return Ok(());
    }
    let fs = c"bpf";
    let opts = c"mode=0700";
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            fs.as_ptr(),
            c.as_ptr(),
            fs.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io_err("mounting a bpffs on", dir)(
            io::Error::last_os_error(),
        ));
    }
    tracing::info!(dir = %dir.display(), "mounted a bpffs for the pins");
    Ok(())
}

/// Attaches `program` to `iface` and pins link and maps in `dir`, or, when
/// a link is already pinned there, reopens what is pinned.
pub fn attach_pinned(
    dir: &Path,
    iface: &str,
    mode: Mode,
    program: Program,
    conn_table: Option<u32>,
) -> Result<Attached, DataplaneError> {
    ensure_bpffs(dir)?;
    let link_path = dir.join("link");
    if link_path.exists() {
        let maps = Maps::open(dir).map_err(io_err("reopening pinned maps in", dir))?;
        return Ok(Attached { maps, reused: true });
    }
    for name in MAPS {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let mut ebpf = load(conn_table)?;
    let attach_err = |message: String| DataplaneError::Attach {
        iface: iface.into(),
        message,
    };
    let flags = match mode {
        Mode::Native => aya::programs::XdpMode::Driver,
        Mode::Generic => aya::programs::XdpMode::Skb,
    };
    let prog = xdp(&mut ebpf, program)?;
    let id = prog
        .attach(iface, flags)
        .map_err(|e| attach_err(chain(&e)))?;
    let link = prog.take_link(id).map_err(|e| attach_err(chain(&e)))?;
    let fd_link: aya::programs::links::FdLink = link.try_into().map_err(|_| {
        attach_err("the kernel gave a netlink attachment, which cannot be pinned".into())
    })?;
    for name in MAPS {
        let map = ebpf
            .map(name)
            .ok_or_else(|| DataplaneError::Load(format!("no map {name}")))?;
        let fd = map_fd(map).map_err(|e| DataplaneError::Load(e.to_string()))?;
        sys::obj_pin(fd, &dir.join(name)).map_err(io_err("pinning", dir))?;
    }
    fd_link.pin(&link_path).map_err(|e| attach_err(chain(&e)))?;
    let maps = Maps::open(dir).map_err(io_err("reopening pinned maps in", dir))?;
    Ok(Attached {
        maps,
        reused: false,
    })
}

/// Detaches by removing the pins (the kernel frees link, program and maps
/// once nothing refers to them).
pub fn remove_pins(dir: &Path) -> Result<bool, DataplaneError> {
    let link = dir.join("link");
    let had = link.exists();
    for name in std::iter::once("link").chain(MAPS) {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing pins in", dir)(e)),
        }
    }
    Ok(had)
}
