//! For benches/compare/l4.sh (not part of boltz): attaches one of the
//! benchmark helper programs (`bpf/bench.c`) in native mode to an interface
//! and pins the link in a bpffs directory: `pass` (so native XDP_TX or
//! redirect from the veth's peer is received) or `sink` (drops IP, passes
//! ARP: a backend stand-in whose interface counters say what arrived).
//!
//! `l4_xdp_pass IFACE BPFFS_DIR [pass|sink]`

use boltz_l4::dataplane::{attach_bench, BenchProgram, Mode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let program = match a.get(3).map(String::as_str) {
        None | Some("pass") => BenchProgram::Pass,
        Some("sink") => BenchProgram::Sink,
        Some(other) => return Err(format!("unknown program {other}").into()),
    };
    if a.len() < 3 {
        return Err("usage: l4_xdp_pass IFACE BPFFS_DIR [pass|sink]".into());
    }
    attach_bench(std::path::Path::new(&a[2]), &a[1], Mode::Native, program)?;
    Ok(())
}
