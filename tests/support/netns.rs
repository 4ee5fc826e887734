//! Network namespaces for the XDP tests (`boltz l4` alone, and the site
//! end to end): a switch namespace with a bridge, one namespace per host
//! plugged into it by a veth (`eth0` inside), a bpffs of the test's own for
//! the XDP pins, backends that decapsulate, and daemons started inside the
//! namespaces with their output kept. Dropping the `Lan` kills every
//! daemon it started (by its own handle), deletes every namespace it made
//! and unmounts the bpffs, also when the test panics.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs `args`, panicking with its stderr when it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Why the test cannot run here, if it cannot.
pub fn missing() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for namespaces and XDP");
    }
    if !boltz_l4::dataplane::available() {
        return Some(
            "this build has no XDP programs (clang and libbpf-dev were missing at build time)",
        );
    }
    for t in ["ip", "ethtool"] {
        if Command::new(t).arg("-V").output().is_err() {
            return Some("needs iproute2 and ethtool");
        }
    }
    None
}

/// A daemon started in a namespace: killed (SIGKILL) when dropped.
pub struct Daemon {
    pub name: String,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The daemon's process id (the `ip netns exec` execs it).
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Sends `sig` to this daemon's own process.
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill has no memory preconditions; the pid is our child's.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Waits (up to `limit`) for the daemon to exit by itself; whether it did.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// SIGKILL to this daemon's own process, then reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The namespaces of one test run.
pub struct Lan {
    prefix: String,
    made: Vec<String>,
    pub dir: tempfile::TempDir,
    mounted: bool,
}

impl Lan {
    /// An empty bridge in a switch namespace of its own.
    pub fn new(tag: &str) -> Lan {
        let mut lan = Lan {
            prefix: format!("{tag}{}", std::process::id() % 100_000),
            made: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            mounted: false,
        };
        let sw = lan.ns("sw");
        sh(&["ip", "netns", "add", &sw]);
        lan.made.push(sw.clone());
        lan.exec(&sw, &["ip", "link", "add", "br0", "type", "bridge"]);
        lan.exec(&sw, &["ip", "link", "set", "br0", "up"]);
        // Mounted in the test's mount namespace, so the pins outlive every
        // `ip netns exec` process and a daemon's restart.
        std::fs::create_dir_all(lan.bpffs()).unwrap();
        sh(&["mount", "-t", "bpf", "bpf", lan.bpffs().to_str().unwrap()]);
        lan.mounted = true;
        lan
    }

    /// The full name of host `n`'s namespace.
    pub fn ns(&self, n: &str) -> String {
        format!("{}{n}", self.prefix)
    }

    pub fn bpffs(&self) -> PathBuf {
        self.dir.path().join("bpf")
    }

    /// `args` run inside namespace `ns` (a full name).
    pub fn exec(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        sh(&all);
    }

    /// A namespace `n` of its own, on no bridge, its loopback up.
    pub fn bare(&mut self, n: &str) {
        let ns = self.ns(n);
        sh(&["ip", "netns", "add", &ns]);
        self.made.push(ns.clone());
        self.exec(&ns, &["ip", "link", "set", "lo", "up"]);
    }

    /// A point-to-point veth between hosts `a` (interface `a_if`, address
    /// `a_addr` with its prefix length) and `b`.
    pub fn wire(
        &self,
        (a, a_if, a_addr): (&str, &str, &str),
        (b, b_if, b_addr): (&str, &str, &str),
    ) {
        let (na, nb) = (self.ns(a), self.ns(b));
        sh(&[
            "ip", "link", "add", a_if, "netns", &na, "type", "veth", "peer", "name", b_if, "netns",
            &nb,
        ]);
        for (ns, iface, addr) in [(&na, a_if, a_addr), (&nb, b_if, b_addr)] {
            self.exec(ns, &["ip", "addr", "add", addr, "dev", iface]);
            self.exec(ns, &["ip", "link", "set", iface, "up"]);
        }
    }

    /// Host `n`: a namespace whose `eth0` (address `addr`/24, TX checksum
    /// offload off for generic XDP) is a port of the bridge.
    pub fn host(&mut self, n: &str, addr: &str) {
        let ns = self.ns(n);
        sh(&["ip", "netns", "add", &ns]);
        self.made.push(ns.clone());
        let peer = format!("p{n}");
        let sw = self.ns("sw");
        sh(&[
            "ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &peer,
            "netns", &sw,
        ]);
        self.exec(&sw, &["ip", "link", "set", &peer, "master", "br0", "up"]);
        self.exec(
            &ns,
            &["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"],
        );
        self.exec(&ns, &["ip", "link", "set", "eth0", "up"]);
        self.exec(&ns, &["ip", "link", "set", "lo", "up"]);
        self.exec(&ns, &["ethtool", "-K", "eth0", "tx", "off"]);
    }

    /// Host `n` as a DSR backend of `vip`: the VIP on its loopback,
    /// reverse-path filtering off, and `boltz l4 decap` on its `eth0` (the
    /// kernel here has no ipip module), its pins under `decap-N`.
    pub fn decap_backend(&self, n: &str, vip: &str) {
        let ns = self.ns(n);
        self.exec(
            &ns,
            &["ip", "addr", "add", &format!("{vip}/32"), "dev", "lo"],
        );
        self.exec(
            &ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.eth0.rp_filter=0",
            ],
        );
        let pins = self.bpffs().join(format!("decap-{n}"));
        let args = [
            "l4", "decap", "--iface", "eth0", "--mode", "generic", "--bpffs",
        ];
        let mut all = vec![crate::BOLTZ];
        all.extend_from_slice(&args);
        all.push(pins.to_str().unwrap());
        self.exec(&ns, &all);
    }

    /// Starts `boltz l4` (generic XDP on `eth0`) in host `n`'s namespace
    /// with its API on `api`, its pins under `l4-N` of the bpffs, its state
    /// in `state` and `extra` arguments.
    pub fn l4(&self, n: &str, api: &str, state: &Path, extra: &[&str]) -> Daemon {
        let pins = self.bpffs().join(format!("l4-{n}"));
        let mut args = vec!["l4", "--iface", "eth0", "--mode", "generic", "--api", api];
        args.extend_from_slice(&["--bpffs", pins.to_str().unwrap()]);
        args.extend_from_slice(&["--state", state.to_str().unwrap()]);
        args.extend_from_slice(extra);
        self.start(n, &format!("boltz l4 on {n}"), &args, "ready")
    }

    /// Starts `boltz ARGS` in host `n`'s namespace and waits until its
    /// stdout has printed a line starting with `ready_line`.
    pub fn start(&self, n: &str, name: &str, args: &[&str], ready_line: &str) -> Daemon {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns(n), crate::BOLTZ])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        crate::log::capture(child.stderr.take().unwrap(), &log);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.starts_with(ready_line));
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!("{name} did not start\n{}", log.lock().unwrap());
        }
        std::thread::spawn(move || for _ in lines {});
        Daemon {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    /// The namespace file of host `n`.
    pub fn ns_path(&self, n: &str) -> PathBuf {
        Path::new("/var/run/netns").join(self.ns(n))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if self.mounted {
            let _ = Command::new("umount").arg(self.bpffs()).status();
        }
    }
}

/// Enters the network namespace at `path` on the calling thread only.
pub fn enter(path: &Path) {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: a valid namespace fd; setns affects only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "setns {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Runs `f` on a thread that entered the namespace at `path`: sockets it
/// makes, and processes it spawns, belong to that namespace.
pub fn in_ns<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_ns(path, f)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// `in_ns` without waiting.
pub fn spawn_in_ns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        enter(&path);
        f()
    })
}
