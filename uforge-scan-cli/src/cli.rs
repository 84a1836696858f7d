//! Command-line definitions, kept apart from what the commands do.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
}

/// Arguments of `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Root directory to scan: `/` for this machine, or a mounted disk or chroot.
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Leave out a file or directory (a path inside the root). Repeat for several.
    #[arg(short = 'e', long = "exclude", value_name = "PATH")]
    pub exclude: Vec<PathBuf>,
    /// Write the report here: JSON when the name ends in `.json`, the compact native form
    /// otherwise.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Scan /proc, /sys, /dev, /run, /tmp and the other default exclusions too.
    #[arg(long)]
    pub no_default_excludes: bool,
    /// Threads that read and checksum files (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
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
