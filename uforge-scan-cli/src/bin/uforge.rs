//! `uforge`: the client of a uforge server, for people and for scripts (`--json`).

fn main() -> std::process::ExitCode {
    uforge_scan_cli::console::main()
}
