//! `uforge-scan`: scans a Linux machine so that it can be rebuilt on another platform.

fn main() -> std::process::ExitCode {
    uforge_scan_cli::agent::main()
}
