//! Compiles the XDP programs in `bpf/` with clang when it is there.
//! Without clang the crate still builds: `cfg(boltz_xdp)` stays unset and
//! `boltz l4` explains how to get XDP support.
//!
//! Reruns only when what the object depends on changes: the C sources, the
//! clang binary (a clang installed later, as the test script does, shows up
//! as a change of that path) and the libbpf headers.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const HELPERS: &str = "/usr/include/bpf/bpf_helpers.h";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(boltz_xdp)");
    println!("cargo::rerun-if-changed=bpf");
    println!("cargo::rerun-if-env-changed=BOLTZ_CLANG");
    println!("cargo::rerun-if-env-changed=BOLTZ_NO_XDP");
    let clang = env::var("BOLTZ_CLANG").unwrap_or_else(|_| "clang".into());
    // A missing path is watched too: cargo reruns when it appears.
    println!("cargo::rerun-if-changed={}", clang_path(&clang).display());
    println!("cargo::rerun-if-changed={HELPERS}");
    if env::var_os("BOLTZ_NO_XDP").is_some() {
        return;
    }
    if !Path::new(HELPERS).exists() {
        println!("cargo::warning=no XDP support in this build: no libbpf headers (apt-get install clang libbpf-dev)");
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("balancer.o");
    let arch_include = format!(
        "/usr/include/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into())
    );
    let status = Command::new(&clang)
        .args([
            "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror", "-c",
        ])
        .arg("-I")
        .arg(&arch_include)
        .arg("bpf/balancer.c")
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo::rustc-cfg=boltz_xdp"),
        Ok(s) => panic!("{clang} failed on bpf/balancer.c ({s}); set BOLTZ_NO_XDP=1 to build without XDP"),
        Err(e) => println!("cargo::warning=no XDP support in this build: {clang}: {e} (apt-get install clang libbpf-dev)"),
    }
}

/// Where `clang` resolves on `PATH` (or `/usr/bin/clang` when nowhere yet,
/// the path Debian's package installs).
fn clang_path(clang: &str) -> PathBuf {
    if clang.contains('/') {
        return PathBuf::from(clang);
    }
    env::var_os("PATH")
        .into_iter()
        .flat_map(|p| env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(clang))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/usr/bin").join(clang))
}
