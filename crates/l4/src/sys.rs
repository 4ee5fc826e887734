//! Thin wrappers over the `bpf(2)` commands the L4 control plane needs on
//! maps and programs it holds by file descriptor: open and pin objects,
//! create an inner table and fill it through mmap, look up, update, delete
//! and walk map entries, and run a program on a synthetic packet
//! (`BPF_PROG_TEST_RUN`). aya loads and attaches the program; every
//! later change goes through here, so a restarted daemon can work on the
//! pinned maps without reloading anything.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// `BPF_MAP_TYPE_ARRAY`.
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
/// Inner maps of one outer map may differ in size (kernel ≥ 5.10).
pub const BPF_F_INNER_MAP: u32 = 1 << 12;
/// The array can be written through `mmap`.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// `BPF_ANY`: create or replace.
pub const BPF_ANY: u64 = 0;

/// `union bpf_attr` is at most this big for every command used here; the
/// kernel wants the bytes past a command's fields to be zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }
    fn put_u32(&mut self, at: usize, v: u32) -> &mut Self {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn put_u64(&mut self, at: usize, v: u64) -> &mut Self {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }
}

fn ptr<T>(p: *const T) -> u64 {
    p as usize as u64
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, zero-padded bpf_attr of the size we pass;
    // every pointer inside it refers to a buffer the caller keeps alive for
    // the duration of the call with the length given next to it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Opens a pinned map, program or link.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let p = cpath(path)?;
    let mut a = Attr::new();
    a.put_u64(0, ptr(p.as_ptr()));
    bpf(BPF_OBJ_GET, &mut a)
        .map(owned)
        .map_err(|e| annotate(e, path))
}

/// Pins an object at `path` on a bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let p = cpath(path)?;
    let mut a = Attr::new();
    a.put_u64(0, ptr(p.as_ptr()))
        .put_u32(8, fd.as_raw_fd() as u32);
    bpf(BPF_OBJ_PIN, &mut a)
        .map(drop)
        .map_err(|e| annotate(e, path))
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Creates an array map (u32 keys) of `entries` values of `value_size`.
pub fn array_create(name: &str, value_size: u32, entries: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.put_u32(0, BPF_MAP_TYPE_ARRAY)
        .put_u32(4, 4)
        .put_u32(8, value_size)
        .put_u32(12, entries)
        .put_u32(16, flags);
    let n = name.len().min(15);
    a.0[28..28 + n].copy_from_slice(&name.as_bytes()[..n]);
    bpf(BPF_MAP_CREATE, &mut a).map(owned)
}

fn elem(fd: BorrowedFd<'_>, key: &[u8], value: u64, flags: u64) -> Attr {
    let mut a = Attr::new();
    a.put_u32(0, fd.as_raw_fd() as u32)
        .put_u64(8, ptr(key.as_ptr()))
        .put_u64(16, value)
        .put_u64(24, flags);
    a
}

/// Writes one entry. The caller sizes `key` and `value` for the map.
pub fn update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
    bpf(
        BPF_MAP_UPDATE_ELEM,
        &mut elem(fd, key, ptr(value.as_ptr()), flags),
    )
    .map(drop)
}

/// Reads one entry into `value` (for per-CPU maps: one slot per possible
/// CPU, each rounded up to 8 bytes). `Ok(false)` when the key is absent.
pub fn lookup(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    match bpf(
        BPF_MAP_LOOKUP_ELEM,
        &mut elem(fd, key, ptr(value.as_mut_ptr()), 0),
    ) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes one entry; `Ok(false)` when it was not there.
pub fn delete(fd: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    match bpf(BPF_MAP_DELETE_ELEM, &mut elem(fd, key, 0, 0)) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The key after `key` (the first key for `None`); `Ok(false)` at the end.
pub fn next_key(fd: BorrowedFd<'_>, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    let mut a = Attr::new();
    a.put_u32(0, fd.as_raw_fd() as u32)
        .put_u64(8, key.map_or(0, |k| ptr(k.as_ptr())))
        .put_u64(16, ptr(next.as_mut_ptr()));
    match bpf(BPF_MAP_GET_NEXT_KEY, &mut a) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Visits every entry of a hash map, `chunk` entries per syscall
/// (`BPF_MAP_LOOKUP_BATCH`), calling `f(key, value)`.
pub fn for_each_batched(
    fd: BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
    chunk: u32,
    mut f: impl FnMut(&[u8], &[u8]),
) -> io::Result<()> {
    let mut keys = vec![0u8; key_size * chunk as usize];
    let mut values = vec![0u8; value_size * chunk as usize];
    // The batch token of a hash map is a bucket index; key-sized room is ample.
    let mut token_in = vec![0u8; key_size.max(8)];
    let mut token_out = vec![0u8; key_size.max(8)];
    let mut first = true;
    loop {
        let mut a = Attr::new();
        a.put_u64(0, if first { 0 } else { ptr(token_in.as_ptr()) })
            .put_u64(8, ptr(token_out.as_mut_ptr()))
            .put_u64(16, ptr(keys.as_mut_ptr()))
            .put_u64(24, ptr(values.as_mut_ptr()))
            .put_u32(32, chunk)
            .put_u32(36, fd.as_raw_fd() as u32);
        let done = match bpf(BPF_MAP_LOOKUP_BATCH, &mut a) {
            Ok(_) => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Err(e) => return Err(e),
        };
        let n = a.get_u32(32) as usize;
        for i in 0..n {
            f(
                &keys[i * key_size..(i + 1) * key_size],
                &values[i * value_size..(i + 1) * value_size],
            );
        }
        if done {
            return Ok(());
        }
        token_in.copy_from_slice(&token_out);
        first = false;
    }
}

/// Opens a map by kernel id (what an outer map-of-maps holds).
pub fn map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.put_u32(0, id);
    bpf(BPF_MAP_GET_FD_BY_ID, &mut a).map(owned)
}

/// Reads entries `0..n` of a u32→u32 array.
pub fn array_read_u32(fd: BorrowedFd<'_>, n: u32) -> io::Result<Vec<u32>> {
    let mut out = Vec::with_capacity(n as usize);
    let mut v = [0u8; 4];
    for k in 0..n {
        if !lookup(fd, &k.to_ne_bytes(), &mut v)? {
            return Err(io::Error::other(format!("array has no entry {k}")));
        }
        out.push(u32::from_ne_bytes(v));
    }
    Ok(out)
}

/// The value area of a `BPF_F_MMAPABLE` array, mapped shared: the
/// program sees every store at once. Unmapped on drop.
pub struct Mapped {
    ptr: *mut libc::c_void,
    size: usize,
    len: usize,
}

impl Mapped {
    /// Maps the first `len` bytes of the array's values (the kernel
    /// refuses a mapping longer than the array).
    pub fn new(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Mapped> {
        let size = len.div_ceil(4096).max(1) * 4096;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: a fresh shared mapping of the map's fd; we own it until drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapped { ptr, size, len })
    }

    /// The mapping as 64-bit words the program may change under us: every
    /// read and write is one atomic access.
    pub fn words(&self) -> &[std::sync::atomic::AtomicU64] {
        // SAFETY: the mapping is page-aligned, `len` bytes long, lives as
        // long as `self`, and AtomicU64 has u64's layout.
        unsafe { std::slice::from_raw_parts(self.ptr.cast(), self.len / 8) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr, self.size) };
    }
}

/// Writes entries `0..values.len()` of an `BPF_F_MMAPABLE` u32 array
/// through a shared mapping: one pass, no syscall per entry. Array
/// elements sit 8 bytes apart (values are rounded up to 8), little-endian.
pub fn array_mmap_fill_u32(fd: BorrowedFd<'_>, values: &[u32]) -> io::Result<()> {
    let m = Mapped::new(fd, values.len() * 8, true)?;
    for (w, &v) in m.words().iter().zip(values) {
        w.store(u64::from(v), std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

/// `max_entries` of a map (`BPF_OBJ_GET_INFO_BY_FD`).
pub fn map_max_entries(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // struct bpf_map_info: type, id, key_size, value_size, max_entries, ...
    let mut info = [0u32; 20];
    let mut a = Attr::new();
    a.put_u32(0, fd.as_raw_fd() as u32)
        .put_u32(4, std::mem::size_of_val(&info) as u32)
        .put_u64(8, ptr(info.as_mut_ptr()));
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    Ok(info[4])
}

/// One `BPF_PROG_TEST_RUN` of an XDP program.
#[derive(Debug, Clone)]
pub struct TestRun {
    /// The XDP action returned.
    pub action: u32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
    /// Mean nanoseconds per run as the kernel measured it.
    pub duration_ns: u32,
}

/// Runs `prog` on `packet` `repeat` times (≥ 1) and returns the last result.
pub fn test_run(prog: BorrowedFd<'_>, packet: &[u8], repeat: u32) -> io::Result<TestRun> {
    // Room for encapsulation headers in front of the packet.
    let mut out = vec![0u8; packet.len() + 256];
    let mut a = Attr::new();
    a.put_u32(0, prog.as_raw_fd() as u32)
        .put_u32(8, packet.len() as u32)
        .put_u32(12, out.len() as u32)
        .put_u64(16, ptr(packet.as_ptr()))
        .put_u64(24, ptr(out.as_mut_ptr()))
        .put_u32(32, repeat.max(1));
    bpf(BPF_PROG_TEST_RUN, &mut a)?;
    out.truncate(a.get_u32(12) as usize);
    Ok(TestRun {
        action: a.get_u32(4),
        packet: out,
        duration_ns: a.get_u32(36),
    })
}

/// Runs an XDP program in live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`):
/// `repeat` copies of `packet` as if received on `ifindex`, with XDP_TX
/// really transmitting them. A packet generator for benchmarks.
pub fn test_run_live(
    prog: BorrowedFd<'_>,
    packet: &[u8],
    repeat: u32,
    ifindex: u32,
) -> io::Result<()> {
    const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    let ctx: [u32; 6] = [0, packet.len() as u32, 0, ifindex, 0, 0];
    let mut a = Attr::new();
    a.put_u32(0, prog.as_raw_fd() as u32)
        .put_u32(8, packet.len() as u32)
        .put_u64(16, ptr(packet.as_ptr()))
        .put_u32(32, repeat.max(1))
        .put_u32(40, std::mem::size_of_val(&ctx) as u32)
        .put_u64(48, ptr(ctx.as_ptr()))
        .put_u32(64, BPF_F_TEST_XDP_LIVE_FRAMES);
    bpf(BPF_PROG_TEST_RUN, &mut a).map(drop)
}

/// Number of possible CPUs: the slot count of a per-CPU map value.
pub fn possible_cpus() -> io::Result<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    parse_cpu_list(s.trim())
        .ok_or_else(|| io::Error::other(format!("cannot parse possible CPUs {s:?}")))
}

fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.split(',') {
        let last = part.rsplit('-').next()?.trim().parse::<usize>().ok()?;
        max = max.max(Some(last));
    }
    max.map(|m| m + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,8-11"), Some(12));
        assert_eq!(parse_cpu_list("x"), None);
    }
}
