//! Compiles the XDP programs in `bpf/` with clang when it is there, one
//! object per C file: `balancer.o` (what `boltz l4` attaches: the balancer
//! and the backend-side decapsulator) and `bench.o` (the benchmarks'
//! packet generator, pass and sink programs).
//! Without clang the crate still builds: `cfg(boltz_xdp)` stays unset and
//! `boltz l4` explains how to get XDP support.
//!
//! Reruns only when what the objects depend on changes: the C sources and
//! headers, the clang binary (a clang installed later, as the test script
//! does, shows up as a change of that path) and the libbpf headers.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const HELPERS: &str = "/usr/include/bpf/bpf_helpers.h";

/// The C files in `bpf/`, each compiled to an object of the same name.
const OBJECTS: [&str; 2] = ["balancer", "bench"];

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
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let arch_include = format!(
        "/usr/include/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into())
    );
    for name in OBJECTS {
        let src = format!("bpf/{name}.c");
        let status = Command::new(&clang)
            .args([
                "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror", "-c",
            ])
            .arg("-I")
            .arg(&arch_include)
            .arg(&src)
            .arg("-o")
            .arg(out_dir.join(format!("{name}.o")))
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                panic!("{clang} failed on {src} ({s}); set BOLTZ_NO_XDP=1 to build without XDP")
            }
            Err(e) => {
                println!("cargo::warning=no XDP support in this build: {clang}: {e} (apt-get install clang libbpf-dev)");
                return;
            }
        }
    }
    println!("cargo::rustc-cfg=boltz_xdp");
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
