//! `uforge-server`: serve the API, or manage users.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = uforge_server::cli::Cli::parse();
    uforge_server::commands::run(cli)
}
