//! The `boltz` binary: parses the command line and hands over to [`boltz::cli`].

fn main() -> std::process::ExitCode {
    boltz::cli::main()
}
