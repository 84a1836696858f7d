//! `uforge-docs DIR`: writes the shell completions (bash, zsh, fish) and man pages of
//! `uforge` and `uforge-scan` under DIR, for packaging.

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: uforge-docs DIR");
        return std::process::ExitCode::from(2);
    };
    match uforge_scan_cli::docs::write(std::path::Path::new(&dir)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("uforge-docs: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
