//! The benchmarks' helper programs (`bpf/bench.c`, their own object), for
//! benches/compare/l4.sh and its examples, not for boltz itself: the
//! packet generator and the pass and sink programs.

use std::path::Path;

use super::object::{bench_object, chain, xdp};
use super::pin::{attach, ensure_bpffs, pin_link};
use super::{BenchProgram, DataplaneError, Mode, XdpProgram};

/// Loads the benchmarks' object for the packet generator: `frame` (a
/// 64-byte Ethernet/IPv4/UDP frame) becomes the template that
/// [`BenchProgram::TrafficGen`] writes into every frame of a live-frames test
/// run, with a new UDP source port each.
pub fn load_trafficgen(frame: [u8; 64]) -> Result<aya::Ebpf, DataplaneError> {
    let load = |e: &dyn std::error::Error| DataplaneError::Load(chain(e));
    let mut ebpf = aya::EbpfLoader::new()
        .load(bench_object()?)
        .map_err(|e| load(&e))?;
    let map = ebpf
        .map_mut("gen_tmpl")
        .ok_or_else(|| DataplaneError::Load("object has no map gen_tmpl".into()))?;
    let mut tmpl: aya::maps::Array<_, [u8; 64]> =
        aya::maps::Array::try_from(map).map_err(|e| load(&e))?;
    tmpl.set(0, frame, 0).map_err(|e| load(&e))?;
    xdp(&mut ebpf, BenchProgram::TrafficGen)?
        .load()
        .map_err(|e| load(&e))?;
    Ok(ebpf)
}

/// Attaches [`BenchProgram::Pass`] or [`BenchProgram::Sink`] to `iface` and pins its
/// link in `dir` (a bpffs, mounted there if needed), so it stays attached
/// after this process; removing the pin (or unmounting) detaches it.
pub fn attach_bench(
    dir: &Path,
    iface: &str,
    mode: Mode,
    program: BenchProgram,
) -> Result<(), DataplaneError> {
    ensure_bpffs(dir)?;
    let mut ebpf = aya::EbpfLoader::new()
        .load(bench_object()?)
        .map_err(|e| DataplaneError::Load(chain(&e)))?;
    xdp(&mut ebpf, program)?.load().map_err(|e| {
        DataplaneError::Load(format!("verifying {}: {}", program.name(), chain(&e)))
    })?;
    let link = attach(&mut ebpf, program, iface, mode)?;
    pin_link(link, dir, iface)
}
