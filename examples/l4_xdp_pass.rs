//! For benches/compare/l4.sh (not part of boltz): attaches the `xdp_pass`
//! program in native mode to an interface and pins the link in a bpffs
//! directory, so native XDP_TX from the veth's peer is received.
//!
//! `l4_xdp_pass IFACE BPFFS_DIR`

use boltz::l4::dataplane::{attach_pinned, Mode, Program};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 3 {
        return Err("usage: l4_xdp_pass IFACE BPFFS_DIR".into());
    }
    attach_pinned(
        std::path::Path::new(&a[2]),
        &a[1],
        Mode::Native,
        Program::Pass,
        None,
    )?;
    Ok(())
}
