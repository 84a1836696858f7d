//! Shell completions and man pages of `uforge` and `uforge-scan`, generated from their command
//! lines so that they cannot drift from them; and the help texts, which tests keep snapshots of.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap_complete::Shell;

/// Both command lines, by program name.
pub fn commands() -> Vec<clap::Command> {
    vec![
        crate::console::command(),
        <crate::agent::Cli as clap::CommandFactory>::command(),
    ]
}

/// Writes `DIR/completions/{uforge,uforge-scan}.{bash,zsh,fish}` (zsh as `_NAME`) and
/// `DIR/man/NAME[-SUBCOMMAND...].1` for every command and subcommand; the files written.
pub fn write(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let completions = dir.join("completions");
    let man = dir.join("man");
    for d in [&completions, &man] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    for mut cmd in commands() {
        let name = cmd.get_name().to_string();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let path = clap_complete::generate_to(shell, &mut cmd, &name, &completions)
                .with_context(|| format!("cannot write the {shell} completions of {name}"))?;
            written.push(path);
        }
        cmd.build();
        write_man(&cmd, &name, &man, &mut written)?;
    }
    Ok(written)
}

/// The man page of `cmd` as `NAME.1`, then those of its subcommands as `NAME-SUB.1`.
fn write_man(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .render(&mut out)
        .with_context(|| format!("cannot render the man page of {name}"))?;
    std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_man(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// Every help text of `cmd` and its subcommands, as `uforge image generate --help` prints it
/// (without colours), headed by the command line that prints it.
pub fn help_texts(cmd: &clap::Command) -> String {
    // The environment's values are not the command line's.
    let mut cmd = hide_env(cmd.clone()).term_width(100);
    cmd.build();
    let mut out = String::new();
    collect(&cmd, cmd.get_name(), &mut out);
    out
}

fn hide_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| a.hide_env_values(true))
        .mut_subcommands(hide_env)
}

fn collect(cmd: &clap::Command, line: &str, out: &mut String) {
    out.push_str(&format!("$ {line} --help\n"));
    out.push_str(&cmd.clone().render_long_help().to_string());
    out.push('\n');
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        collect(sub, &format!("{line} {}", sub.get_name()), out);
    }
}
