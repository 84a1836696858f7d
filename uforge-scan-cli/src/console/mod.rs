//! `uforge`, the client of a uforge server for people and for scripts (`--json`): its command
//! line and the tables it prints; `image` commands in [`image`], the local ones in
//! [`image_local`].

mod image;
mod image_local;
mod tables;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::connect::ConnectArgs;

/// Manage scans, repositories and images on a uforge server.
#[derive(Debug, Parser)]
#[command(name = "uforge", version)]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scans of machines.
    #[command(subcommand)]
    Scan(ScanCmd),
    /// Package repositories the server rebuilds machines from.
    #[command(subcommand)]
    Repo(RepoCmd),
    /// Machines that have been scanned.
    #[command(subcommand)]
    Machine(MachineCmd),
    /// Packages the server recreated because no repository had them.
    #[command(subcommand)]
    Package(PackageCmd),
    /// Machine images built from scans.
    #[command(subcommand)]
    Image(image::ImageCmd),
}

#[derive(Debug, Subcommand)]
enum ScanCmd {
    /// List scans, newest first.
    List {
        /// Only the scans of this machine.
        #[arg(long)]
        machine: Option<String>,
    },
    /// Show one scan.
    Show {
        /// Scan id.
        id: i64,
    },
    /// Compare two scans: packages and files added, removed or changed.
    Compare {
        /// The earlier scan.
        a: i64,
        /// The later scan.
        b: i64,
    },
    /// Delete a scan.
    Delete {
        /// Scan id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum RepoCmd {
    /// Register a repository by its sources.list line.
    Add {
        /// `deb [options] URI SUITE [COMPONENT...]`
        line: String,
    },
    /// Fetch and verify a repository's index now.
    Sync {
        /// Repository id.
        id: i64,
    },
    /// List repositories.
    List,
    /// Remove a repository.
    Delete {
        /// Repository id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum MachineCmd {
    /// List machines.
    List,
}

#[derive(Debug, Subcommand)]
enum PackageCmd {
    /// List recreated packages.
    List,
}

/// Runs `uforge` with the process's arguments.
pub fn main() -> ExitCode {
    crate::exit::finish("uforge", run(Cli::parse()), false)
}

fn run(cli: Cli) -> Result<()> {
    let command = match cli.command {
        // Image subcommands include local ones that need no server.
        Command::Image(cmd) => return image::run(cmd, &cli.connect, cli.json),
        other => other,
    };
    let client = cli.connect.client()?;
    let json = cli.json;
    match command {
        Command::Scan(ScanCmd::List { machine }) => {
            emit(json, &client.scans(machine.as_deref())?, tables::scans)
        }
        Command::Scan(ScanCmd::Show { id }) => emit(json, &client.scan(id)?, tables::scan),
        Command::Scan(ScanCmd::Compare { a, b }) => {
            emit(json, &client.compare(a, b)?, tables::comparison)
        }
        Command::Scan(ScanCmd::Delete { id }) => {
            client.delete_scan(id)?;
            deleted(json, id)
        }
        Command::Repo(RepoCmd::Add { line }) => emit(json, &client.repo_add(&line)?, tables::repo),
        Command::Repo(RepoCmd::Sync { id }) => emit(json, &client.repo_sync(id)?, tables::repo),
        Command::Repo(RepoCmd::List) => emit(json, &client.repos()?, tables::repos),
        Command::Repo(RepoCmd::Delete { id }) => {
            client.repo_delete(id)?;
            deleted(json, id)
        }
        Command::Machine(MachineCmd::List) => emit(json, &client.machines()?, tables::machines),
        Command::Package(PackageCmd::List) => emit(json, &client.packages()?, tables::packages),
        Command::Image(_) => unreachable!("handled above"),
    }
}

/// Prints an answer: pretty JSON with `--json`, else the lines `table` makes of it.
fn emit<T: Serialize>(json: bool, value: &T, table: fn(&T) -> Vec<String>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
    } else {
        for line in table(value) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// What a deletion prints.
fn deleted(json: bool, id: i64) -> Result<()> {
    emit(json, &serde_json::json!({ "deleted": id }), |_| {
        vec!["deleted".into()]
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
