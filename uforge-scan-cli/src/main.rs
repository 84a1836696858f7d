//! `uforge-scan`: scans a Linux machine so that it can be rebuilt on another platform.

mod analyze_cmd;
mod cli;
mod connect;
mod progress;
mod run_cmd;
mod scan_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // Only commands whose output is for reading (`| head`) may end quietly on a closed pipe;
    // for a report, an overlay or a network upload a broken pipe is a real failure.
    let lenient = matches!(
        args.command,
        cli::Command::ExportJson(_) | cli::Command::Compare(_)
    );
    let result = match args.command {
        cli::Command::Scan(a) => scan_cmd::scan(a),
        cli::Command::ExportJson(a) => scan_cmd::export_json(a),
        cli::Command::Analyze(a) => analyze_cmd::analyze(a),
        cli::Command::Overlay(a) => analyze_cmd::overlay(a),
        cli::Command::Compare(a) => analyze_cmd::compare(a),
        cli::Command::Run(a) => run_cmd::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if lenient && is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uforge-scan: error: {}", connect::render(&e));
            ExitCode::FAILURE
        }
    }
}

/// A reader that closed our stdout (`| head`) is not an error worth reporting.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<uforge_core::Error>(),
                Some(uforge_core::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
