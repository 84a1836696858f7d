//! `uforge`, the client of a uforge server for people and for scripts (`--json`): its command
//! line and the tables it prints; `image` commands in [`image`], the local ones in
//! [`image_local`].

mod image;
mod image_local;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::Value;

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
    let (value, table): (Value, fn(&Value) -> Vec<String>) = match command {
        Command::Scan(ScanCmd::List { machine }) => (client.scans(machine.as_deref())?, scan_rows),
        Command::Scan(ScanCmd::Show { id }) => (client.scan(id)?, scan_detail),
        Command::Scan(ScanCmd::Compare { a, b }) => (client.compare(a, b)?, compare_rows),
        Command::Scan(ScanCmd::Delete { id }) => {
            client.delete_scan(id)?;
            (serde_json::json!({ "deleted": id }), |_| {
                vec!["deleted".into()]
            })
        }
        Command::Repo(RepoCmd::Add { line }) => (client.repo_add(&line)?, repo_one),
        Command::Repo(RepoCmd::Sync { id }) => (client.repo_sync(id)?, repo_one),
        Command::Repo(RepoCmd::List) => (client.repos()?, repo_rows),
        Command::Repo(RepoCmd::Delete { id }) => {
            client.repo_delete(id)?;
            (serde_json::json!({ "deleted": id }), |_| {
                vec!["deleted".into()]
            })
        }
        Command::Machine(MachineCmd::List) => (client.machines()?, machine_rows),
        Command::Package(PackageCmd::List) => (client.packages()?, package_rows),
        Command::Image(_) => unreachable!("handled above"),
    };
    emit(cli.json, &value, table)
}

/// Prints an answer: pretty JSON with `--json`, else the lines `table` makes of it.
fn emit(json: bool, value: &Value, table: fn(&Value) -> Vec<String>) -> Result<()> {
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

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn scan_rows(v: &Value) -> Vec<String> {
    let mut rows = vec![format!(
        "{:>6}  {:<20} {:<9} {:<25} {:>8} {:>8}",
        "ID", "MACHINE", "STATUS", "CREATED", "ENTRIES", "WANTED"
    )];
    for x in items(v) {
        rows.push(format!(
            "{:>6}  {:<20} {:<9} {:<25} {:>8} {:>8}",
            s(&x["id"]),
            s(&x["machine"]),
            s(&x["status"]),
            s(&x["created_at"]),
            s(&x["summary"]["entries"]),
            s(&x["summary"]["wanted"])
        ));
    }
    rows
}

fn scan_detail(x: &Value) -> Vec<String> {
    let mut rows = vec![
        format!("scan       {}", s(&x["id"])),
        format!("machine    {}", s(&x["machine"])),
        format!("status     {}", s(&x["status"])),
        format!("created    {}", s(&x["created_at"])),
        format!("completed  {}", s(&x["completed_at"])),
    ];
    if let Some(m) = x["summary"].as_object() {
        for (k, v) in m {
            rows.push(format!("{k:<10} {}", s(v)));
        }
    }
    rows
}

fn compare_rows(v: &Value) -> Vec<String> {
    let mut rows = Vec::new();
    for p in items(&v["packages"]) {
        rows.push(format!(
            "package {:<40} {} -> {}",
            s(&p["name"]),
            s(&p["before"]),
            s(&p["after"])
        ));
    }
    for f in items(&v["files"]) {
        let path = f["path"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| s(&f["path_b64"]));
        rows.push(format!("{:<8} {path} {}", s(&f["status"]), s(&f["what"])));
    }
    rows
}

fn repo_one(v: &Value) -> Vec<String> {
    repo_rows(&Value::Array(vec![v.clone()]))
}

fn repo_rows(v: &Value) -> Vec<String> {
    let mut rows = vec![format!(
        "{:>4}  {:>8}  {:<25} LINE",
        "ID", "PACKAGES", "SYNCED"
    )];
    for r in items(v) {
        rows.push(format!(
            "{:>4}  {:>8}  {:<25} {}",
            s(&r["id"]),
            s(&r["packages"]),
            s(&r["synced_at"]),
            s(&r["line"])
        ));
    }
    rows
}

fn machine_rows(v: &Value) -> Vec<String> {
    let mut rows = vec![format!("{:<30} {:>6}  LAST SCAN", "MACHINE", "SCANS")];
    for m in items(v) {
        rows.push(format!(
            "{:<30} {:>6}  {}",
            s(&m["name"]),
            s(&m["scans"]),
            s(&m["last_scan"])
        ));
    }
    rows
}

fn package_rows(v: &Value) -> Vec<String> {
    let mut rows = vec![format!(
        "{:<30} {:<20} {:<8} FILE",
        "NAME", "VERSION", "ARCH"
    )];
    for p in items(v) {
        rows.push(format!(
            "{:<30} {:<20} {:<8} {}",
            s(&p["name"]),
            s(&p["version"]),
            s(&p["arch"]),
            s(&p["file"])
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
