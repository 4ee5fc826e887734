//! The XDP data path as the control plane sees it: the program objects
//! embedded at build time (present when the build found clang), loading
//! them with aya, attaching `balancer` or `decap` to an interface, and
//! pinning the link and the maps on a bpffs the daemon owns. A pinned link
//! keeps the program attached while no daemon runs; a restarted daemon
//! reopens the pins and changes nothing on the wire.
//!
//! - `object`: the embedded objects, loading the balancer's, program fds;
//! - `maps`: the balancer's maps by file descriptor;
//! - `pin`: the bpffs, attaching and pinning, detaching;
//! - `bench`: the benchmarks' helper programs, from their own object.

use std::io;
use std::path::PathBuf;

mod bench;
mod maps;
mod object;
mod pin;

pub use bench::{attach_bench, load_trafficgen};
pub use maps::{Maps, MAPS};
pub use object::{available, load, object, program_fd, Ebpf};
pub use pin::{attach_pinned, ensure_bpffs, remove_pins, Attached};

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

/// An XDP program of one of the objects built from `bpf/`, known by its
/// name there.
pub trait XdpProgram: Copy {
    /// The program's name in its object.
    fn name(self) -> &'static str;
}

/// The programs of the balancer's object ([`load`], [`attach_pinned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// The balancer, on the load balancer's interface.
    Balancer,
    /// IP-in-IP decapsulation, on a backend.
    Decap,
}

impl XdpProgram for Program {
    fn name(self) -> &'static str {
        match self {
            Program::Balancer => "balancer",
            Program::Decap => "decap",
        }
    }
}

/// The programs of the benchmarks' object ([`load_trafficgen`],
/// [`attach_bench`]): a type of their own, so a deployment path cannot be
/// handed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchProgram {
    /// Passes everything: for the receiving peer of a veth in benchmarks.
    Pass,
    /// Drops IP, passes ARP: a backend stand-in in benchmarks.
    Sink,
    /// Transmits copies of a template frame, each a new flow: the
    /// benchmarks' packet generator (see [`load_trafficgen`]).
    TrafficGen,
}

impl XdpProgram for BenchProgram {
    fn name(self) -> &'static str {
        match self {
            BenchProgram::Pass => "xdp_pass",
            BenchProgram::Sink => "xdp_sink",
            BenchProgram::TrafficGen => "trafficgen",
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
