//! Compiles the XDP programs in `src/l4/bpf/` with clang when it is there.
//! Without clang the crate still builds: `cfg(boltz_xdp)` stays unset and
//! `boltz l4` explains how to get XDP support.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(boltz_xdp)");
    println!("cargo::rerun-if-changed=src/l4/bpf");
    println!("cargo::rerun-if-env-changed=BOLTZ_CLANG");
    println!("cargo::rerun-if-env-changed=BOLTZ_NO_XDP");
    // A clang installed later (the test script does so) triggers a rebuild.
    println!("cargo::rerun-if-changed=/usr/bin");
    if env::var_os("BOLTZ_NO_XDP").is_some() {
        return;
    }
    if !std::path::Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        println!("cargo::warning=no XDP support in this build: no libbpf headers (apt-get install clang libbpf-dev)");
        return;
    }
    let clang = env::var("BOLTZ_CLANG").unwrap_or_else(|_| "clang".into());
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
        .arg("src/l4/bpf/balancer.c")
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo::rustc-cfg=boltz_xdp"),
        Ok(s) => panic!("{clang} failed on src/l4/bpf/balancer.c ({s}); set BOLTZ_NO_XDP=1 to build without XDP"),
        Err(e) => println!("cargo::warning=no XDP support in this build: {clang}: {e} (apt-get install clang libbpf-dev)"),
    }
}
