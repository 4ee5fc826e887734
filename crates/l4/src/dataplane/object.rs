//! The program objects build.rs compiled from `bpf/` (`balancer.o` and
//! `bench.o`), embedded in the binary, and loading them with aya: the
//! kernel verifies each program at load time.

use std::os::fd::{AsFd, BorrowedFd};

use super::{DataplaneError, Program, XdpProgram};

#[cfg(boltz_xdp)]
#[repr(C, align(32))]
struct Aligned<B: ?Sized>(B);

#[cfg(boltz_xdp)]
static BALANCER: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/balancer.o")));

#[cfg(boltz_xdp)]
static BENCH: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/bench.o")));

/// The loaded object, as [`load`] returns it.
pub use aya::Ebpf;

/// The compiled balancer object (`balancer` and `decap`).
pub fn object() -> Result<&'static [u8], DataplaneError> {
    #[cfg(boltz_xdp)]
    return Ok(&BALANCER.0);
    #[cfg(not(boltz_xdp))]
    Err(DataplaneError::NotBuilt)
}

/// The compiled benchmarks' object (`trafficgen`, `xdp_pass`, `xdp_sink`).
pub(super) fn bench_object() -> Result<&'static [u8], DataplaneError> {
    #[cfg(boltz_xdp)]
    return Ok(&BENCH.0);
    #[cfg(not(boltz_xdp))]
    Err(DataplaneError::NotBuilt)
}

/// Whether this build carries the XDP programs.
pub fn available() -> bool {
    object().is_ok()
}

/// Loads the balancer object and its two programs (verified, not
/// attached). `conn_table` sets the connection table's room in flows
/// (rounded up to a power of two).
pub fn load(conn_table: Option<u32>) -> Result<aya::Ebpf, DataplaneError> {
    let mut loader = aya::EbpfLoader::new();
    if let Some(n) = conn_table {
        loader.map_max_entries("flows", crate::abi::flow_sets(n));
    }
    let mut ebpf = loader
        .load(object()?)
        .map_err(|e| DataplaneError::Load(format!("{e:#}")))?;
    for p in [Program::Balancer, Program::Decap] {
        xdp(&mut ebpf, p)?
            .load()
            .map_err(|e| DataplaneError::Load(format!("verifying {}: {}", p.name(), chain(&e))))?;
    }
    Ok(ebpf)
}

/// An error and its sources, `: `-separated.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The XDP program `p` of a loaded object.
pub(super) fn xdp(
    ebpf: &mut aya::Ebpf,
    p: impl XdpProgram,
) -> Result<&mut aya::programs::Xdp, DataplaneError> {
    ebpf.program_mut(p.name())
        .ok_or_else(|| DataplaneError::Load(format!("object has no program {}", p.name())))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| DataplaneError::Load(e.to_string()))
}

/// The file descriptor of a loaded program (for test runs).
pub fn program_fd(ebpf: &aya::Ebpf, p: impl XdpProgram) -> Result<BorrowedFd<'_>, DataplaneError> {
    let prog = ebpf
        .program(p.name())
        .ok_or_else(|| DataplaneError::Load(format!("object has no program {}", p.name())))?;
    let fd = prog.fd().map_err(|e| DataplaneError::Load(e.to_string()))?;
    Ok(fd.as_fd())
}
