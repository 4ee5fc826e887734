//! Attaching a program to an interface so that it outlives the daemon:
//! its link and (for the balancer's object) its maps are pinned on a bpffs
//! the daemon owns, reopened by the next daemon and removed to detach.

use std::io;
use std::path::Path;

use aya::programs::links::FdLink;

use super::maps::{map_fd, Maps, MAPS};
use super::object::{chain, load, xdp};
use super::{DataplaneError, Mode, Program, XdpProgram};
use crate::sys;

/// Result of [`attach_pinned`].
pub struct Attached {
    /// The pinned maps.
    pub maps: Maps,
    /// The link was already pinned: a previous daemon attached it and the
    /// data path kept running; nothing was reloaded.
    pub reused: bool,
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The pinned link's file name in a pin directory.
const LINK: &str = "link";

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

/// Attaches `program` (`Balancer` or `Decap`) to `iface` and pins link and
/// maps in `dir`, or, when a link is already pinned there, reopens what is
/// pinned.
pub fn attach_pinned(
    dir: &Path,
    iface: &str,
    mode: Mode,
    program: Program,
    conn_table: Option<u32>,
) -> Result<Attached, DataplaneError> {
    ensure_bpffs(dir)?;
    if dir.join(LINK).exists() {
        let maps = Maps::open(dir).map_err(io_err("reopening pinned maps in", dir))?;
        return Ok(Attached { maps, reused: true });
    }
    for name in MAPS {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let mut ebpf = load(conn_table)?;
    let link = attach(&mut ebpf, program, iface, mode)?;
    for name in MAPS {
        let fd = map_fd(&ebpf, name).map_err(|e| DataplaneError::Load(e.to_string()))?;
        sys::obj_pin(fd, &dir.join(name)).map_err(io_err("pinning", dir))?;
    }
    pin_link(link, dir, iface)?;
    let maps = Maps::open(dir).map_err(io_err("reopening pinned maps in", dir))?;
    Ok(Attached {
        maps,
        reused: false,
    })
}

fn attach_err(iface: &str) -> impl Fn(String) -> DataplaneError + '_ {
    move |message| DataplaneError::Attach {
        iface: iface.into(),
        message,
    }
}

/// Attaches `program` of a loaded object to `iface` by a BPF link (which,
/// unlike a netlink attachment, can be pinned).
pub(super) fn attach(
    ebpf: &mut aya::Ebpf,
    program: impl XdpProgram,
    iface: &str,
    mode: Mode,
) -> Result<FdLink, DataplaneError> {
    let err = attach_err(iface);
    let flags = match mode {
        Mode::Native => aya::programs::XdpMode::Driver,
        Mode::Generic => aya::programs::XdpMode::Skb,
    };
    let prog = xdp(ebpf, program)?;
    let id = prog.attach(iface, flags).map_err(|e| err(chain(&e)))?;
    let link = prog.take_link(id).map_err(|e| err(chain(&e)))?;
    link.try_into()
        .map_err(|_| err("the kernel gave a netlink attachment, which cannot be pinned".into()))
}

/// Pins `link` in `dir`: the program stays attached after this process.
pub(super) fn pin_link(link: FdLink, dir: &Path, iface: &str) -> Result<(), DataplaneError> {
    link.pin(dir.join(LINK))
        .map(drop)
        .map_err(|e| attach_err(iface)(chain(&e)))
}

/// Detaches by removing the pins (the kernel frees link, program and maps
/// once nothing refers to them).
pub fn remove_pins(dir: &Path) -> Result<bool, DataplaneError> {
    let had = dir.join(LINK).exists();
    for name in std::iter::once(LINK).chain(MAPS) {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing pins in", dir)(e)),
        }
    }
    Ok(had)
}
