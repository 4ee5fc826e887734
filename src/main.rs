//! The `boltz` binary: parses the command line and hands over to the
//! subcommands in [`cli`], which wire the component crates together:
//! `boltz-gslb` (`serve`, `check`, `explain`, `geoip build`), `boltz-l4`
//! and `boltz-l7`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
