//! `boltz geoip build`: CSV of networks → GeoIP2-City-shaped .mmdb.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum GeoipCmd {
    /// Build an .mmdb from a CSV of `network,latitude,longitude,country,continent`.
    Build {
        /// Input CSV.
        csv: PathBuf,
        /// Output .mmdb (written atomically).
        #[arg(short, long)]
        output: PathBuf,
    },
}

pub fn run(cmd: GeoipCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        GeoipCmd::Build { csv, output } => match boltz_gslb::build_from_csv(&csv, &output) {
            Ok(stats) => {
                outln!(
                    "{}: {} networks, {} distinct records",
                    output.display(),
                    stats.networks,
                    stats.records
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        },
    }
}
