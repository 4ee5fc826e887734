#!/usr/bin/env bash
# Runs every test of boltz on a fresh Debian machine with Rust: installs what
# the tests need (dig from dnsutils; clang, libbpf-dev, iproute2 and ethtool
# for XDP; promtool from prometheus to check the three /metrics; BIRD 2
# for anycast), then
# formatting, lints and all tests of every crate of the workspace.
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dig >/dev/null 2>&1 || need+=(dnsutils)
# XDP: clang + libbpf headers build the programs (cargo build without them
# still works, the XDP tests then say SKIPPED); ip and ethtool for the
# namespace test.
command -v clang >/dev/null 2>&1 || need+=(clang)
[ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# BIRD 2: the anycast tests drive a real one.
command -v bird >/dev/null 2>&1 || need+=(bird2)
# ExaBGP: the second anycast speaker, driven by `boltz anycast exabgp`.
command -v exabgp >/dev/null 2>&1 || need+=(exabgp)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "note: cannot install ${need[*]} (not root, no sudo); tests that need them will say SKIPPED" >&2
  fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
