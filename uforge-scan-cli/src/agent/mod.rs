//! `uforge-scan`, the agent that runs on the source machine: its command line, and one module
//! per group of commands.

mod analyze;
mod run;
mod scan;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use uforge_core::repo::Sources;
use uforge_core::scan::ScanOptions;

use crate::connect::ConnectArgs;

/// Scan a Linux machine for migration.
///
/// uforge-scan records what a machine is made of: its operating system, installation settings
/// (partitions, timezone, keyboard, locale, network), every installed package, and every file
/// with its owner, permissions, extended attributes and SHA-256 checksum. The report is what a
/// uforge server needs to rebuild the machine on another platform.
#[derive(Debug, Parser)]
#[command(name = "uforge-scan", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan a root directory (default: this machine) and write a report.
    ///
    /// Run as root to read every file. Nothing is written on the scanned machine except the
    /// report itself, and only where -o says. Contents of /proc, /sys, /dev, /run, /tmp,
    /// /var/tmp and apt's package cache are skipped, as are network and pseudo filesystems on
    /// a running system; the report lists everything that was skipped.
    #[command(after_help = "Examples:\n  \
        uforge-scan scan -o web01.ufr\n  \
        uforge-scan scan --root /mnt/disk -e /srv/cache -o disk.json")]
    Scan(ScanArgs),
    /// Print the JSON form of a native report.
    ExportJson(ExportArgs),
    /// Work out what the repositories cannot rebuild: missing packages, modified, deleted and
    /// unknown files, and the exact list of paths the overlay must carry.
    #[command(after_help = "Example:\n  \
        uforge-scan analyze --report web01.ufr \\\n    \
        --repo 'deb http://deb.debian.org/debian bookworm main' \\\n    \
        --repo 'deb http://deb.debian.org/debian-security bookworm-security main' \\\n    \
        -o web01.analysis.json")]
    Analyze(AnalyzeArgs),
    /// Stream the overlay tar of exactly the paths an analysis wants, read from the root.
    Overlay(OverlayArgs),
    /// Compare two reports: packages and files added, removed or changed.
    Compare(CompareArgs),
    /// Scan this machine for a uforge server: send the report, receive the analysis, stream
    /// the overlay of what the repositories cannot rebuild. A second run with the same name is
    /// incremental, and a rerun after an interrupted upload sends only what the server still
    /// lacks. Nothing is written on the scanned machine.
    #[command(after_help = "Example:\n  \
        UFORGE_TOKEN=... uforge-scan run -U https://uforge.example:8443 -u alice \\\n    \
        -n web01 --cacert server.pem")]
    Run(RunArgs),
}

/// Arguments of `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to scan.
    #[command(flatten)]
    pub scan: ScanOptions,
    /// Write the report here: JSON when the name ends in `.json`, the compact native form
    /// otherwise.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Print no progress and no summary.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Arguments of `export-json`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A report written by `uforge-scan scan`.
    pub report: PathBuf,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Arguments of `analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The report to analyse.
    #[arg(long, value_name = "REPORT")]
    pub report: PathBuf,
    /// The repositories to analyse against.
    #[command(flatten)]
    pub sources: Sources,
    /// An earlier report of the same machine: what it holds is not shipped again.
    #[arg(long, value_name = "REPORT")]
    pub previous: Vec<PathBuf>,
    /// Write the analysis (JSON) here; `-` for standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Print no progress and no summary.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Arguments of `overlay`.
#[derive(Debug, Args)]
pub struct OverlayArgs {
    /// The report the analysis was made from.
    #[arg(long, value_name = "REPORT")]
    pub report: PathBuf,
    /// The analysis (`uforge-scan analyze -o`).
    #[arg(long, value_name = "FILE")]
    pub analysis: PathBuf,
    /// Root to read the files from (default: the root the report was made of).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write the tar here; `-` for standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Print no progress and no summary.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Arguments of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The earlier report.
    pub before: PathBuf,
    /// The later report.
    pub after: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The server and credentials.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Machine name on the server.
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub name: String,
    /// What to scan.
    #[command(flatten)]
    pub scan: ScanOptions,
    /// Print no progress and no summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the summary as JSON on standard output (exact bytes).
    #[arg(long)]
    pub json: bool,
}

/// The name and version recorded in the reports the agent writes.
fn tool() -> String {
    format!("uforge-scan {}", env!("CARGO_PKG_VERSION"))
}

/// Runs `uforge-scan` with the process's arguments.
pub fn main() -> ExitCode {
    let args = Cli::parse();
    // Only commands whose output is for reading (`| head`) may end quietly on a closed pipe;
    // for a report, an overlay or a network upload a broken pipe is a real failure.
    let lenient = matches!(args.command, Command::ExportJson(_) | Command::Compare(_));
    let result = match args.command {
        Command::Scan(a) => scan::scan(a),
        Command::ExportJson(a) => scan::export_json(a),
        Command::Analyze(a) => analyze::analyze(a),
        Command::Overlay(a) => analyze::overlay(a),
        Command::Compare(a) => analyze::compare(a),
        Command::Run(a) => run::run(a),
    };
    crate::exit::finish("uforge-scan", result, lenient)
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
