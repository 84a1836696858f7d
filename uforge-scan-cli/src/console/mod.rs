//! `uforge`, the client of a uforge server for people and for scripts (`--json`): its command
//! line and the tables it prints; `image` commands in [`image`], the local ones in
//! [`image_local`].

mod image;
mod image_local;
mod image_options;
mod publish;
mod tables;
mod template_local;

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
    /// Appliance templates (white-box migration).
    #[command(subcommand)]
    Template(template_local::LocalCmd),
    /// Where images are published: registries, S3 stores, directories, libvirt hosts.
    #[command(subcommand)]
    Target(publish::TargetCmd),
    /// Images sent to targets (and machines started from them).
    #[command(subcommand)]
    Publication(publish::PublicationCmd),
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
    /// Register a repository by its sources.list line, or every repository of a sources file.
    Add {
        /// `deb [options] URI SUITE [COMPONENT...]`
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        line: Option<String>,
        /// A sources file, one-line or deb822 (`.sources`): each of its repositories is added.
        #[arg(long, value_name = "FILE")]
        file: Option<std::path::PathBuf>,
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

/// The command line of `uforge`, for its completions, man page and help snapshots.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Runs `uforge` with the process's arguments.
pub fn main() -> ExitCode {
    crate::exit::finish("uforge", run(Cli::parse()), false)
}

fn run(cli: Cli) -> Result<()> {
    let command = match cli.command {
        // Image subcommands include local ones that need no server.
        Command::Image(cmd) => return image::run(cmd, &cli.connect, cli.json),
        Command::Template(cmd) => return template_local::run(cmd, cli.json),
        other => other,
    };
    let client = cli.connect.client()?;
    let json = cli.json;
    match command {
        Command::Scan(ScanCmd::List { machine }) => {
            emit(json, &client.scans(machine.as_deref())?[..], tables::scans)
        }
        Command::Scan(ScanCmd::Show { id }) => emit(json, &client.scan(id)?, tables::scan),
        Command::Scan(ScanCmd::Compare { a, b }) => {
            emit(json, &client.compare(a, b)?, tables::comparison)
        }
        Command::Scan(ScanCmd::Delete { id }) => {
            client.delete_scan(id)?;
            deleted(json, id)
        }
        Command::Repo(RepoCmd::Add { line, file }) => {
            let lines = match (line, file) {
                (Some(line), _) => return emit(json, &client.repo_add(&line)?, tables::repo),
                (None, Some(file)) => file_lines(&file)?,
                (None, None) => unreachable!("clap requires one"),
            };
            let added = lines
                .iter()
                .map(|l| client.repo_add(l))
                .collect::<Result<Vec<_>, _>>()?;
            emit(json, &added[..], tables::repos)
        }
        Command::Repo(RepoCmd::Sync { id }) => emit(json, &client.repo_sync(id)?, tables::repo),
        Command::Repo(RepoCmd::List) => emit(json, &client.repos()?[..], tables::repos),
        Command::Repo(RepoCmd::Delete { id }) => {
            client.repo_delete(id)?;
            deleted(json, id)
        }
        Command::Machine(MachineCmd::List) => emit(json, &client.machines()?[..], tables::machines),
        Command::Package(PackageCmd::List) => emit(json, &client.packages()?[..], tables::packages),
        Command::Target(cmd) => publish::target(cmd, &client, json),
        Command::Publication(cmd) => publish::publication(cmd, &client, json),
        Command::Image(_) | Command::Template(_) => unreachable!("handled above"),
    }
}

/// The repositories of a sources file as lines the server takes. The server cannot read an
/// inline key of this machine, so those are refused here.
fn file_lines(file: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let entries = uforge_core::repo::parse_sources(&text, &file.display().to_string())?;
    if let Some(e) = entries.iter().find(|e| e.inline_key.is_some()) {
        anyhow::bail!(
            "{}: {} has its key inline in Signed-By; put the key in a keyring file on the \
             server and name it with signed-by=",
            file.display(),
            e.line
        );
    }
    if entries.is_empty() {
        anyhow::bail!("{} names no enabled `deb` repository", file.display());
    }
    Ok(entries.iter().map(|e| e.line.to_string()).collect())
}

/// Prints an answer: pretty JSON with `--json`, else the lines `table` makes of it.
fn emit<T: Serialize + ?Sized>(json: bool, value: &T, table: fn(&T) -> Vec<String>) -> Result<()> {
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
