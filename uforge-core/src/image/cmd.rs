//! Running the external tools an image build drives (mmdebstrap, mkfs, grub-install,
//! qemu-img...), with errors that name the command and carry the end of its output.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// How much of a failed command's output an error keeps: its last lines, whole, as many as
/// fit in [`TAIL_BYTES`] (the tool's own message is at the end: dpkg, mmdebstrap, mkfs).
const TAIL_LINES: usize = 40;
/// See [`TAIL_LINES`].
const TAIL_BYTES: usize = 8192;
/// How much of a command line a message shows: package lists run to kilobytes.
const SHOWN_COMMAND: usize = 600;
/// How much of one argument a message shows.
const SHOWN_ARG: usize = 200;

/// Runs `cmd`, capturing its output; fails with the command line and the last lines of its
/// output when it cannot start or exits non-zero. Returns standard output.
pub fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let shown = describe(cmd);
    // A build's tools (mmdebstrap, qemu-img...) must not outlive a server that died: they are
    // told to stop when the thread that started them goes.
    // SAFETY: the closure only calls prctl, which is async-signal-safe, between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Invalid(format!("cannot run `{shown}`: {e}")))?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        if text.trim().is_empty() {
            text = String::from_utf8_lossy(&out.stdout).into_owned();
        }
        return Err(Error::Invalid(format!(
            "`{shown}` failed ({}):\n{}",
            out.status,
            tail(&text)
        )));
    }
    Ok(out.stdout)
}

/// Runs a program with arguments (see [`run`]).
pub fn run_args<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Vec<u8>> {
    run(Command::new(program).args(args))
}

/// The command line, for messages: the program and its first arguments; what passes
/// [`SHOWN_COMMAND`] characters is counted, not shown, and so is the end of a long argument.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    let args: Vec<_> = cmd.get_args().collect();
    for (i, a) in args.iter().enumerate() {
        if s.chars().count() > SHOWN_COMMAND {
            s.push_str(&format!(" … ({} more arguments)", args.len() - i));
            break;
        }
        s.push(' ');
        let a = a.to_string_lossy();
        let n = a.chars().count();
        if n > SHOWN_ARG {
            s.extend(a.chars().take(SHOWN_ARG));
            s.push_str(&format!("…({} more characters)", n - SHOWN_ARG));
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// The last lines of a tool's output, whole: at most [`TAIL_LINES`] lines and [`TAIL_BYTES`]
/// bytes, preceded by how many earlier lines were left out. Only a last line longer than the
/// whole allowance is cut, at its start.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    let mut start = lines.len();
    let mut bytes = 0;
    while start > 0 && lines.len() - start < TAIL_LINES {
        let n = lines[start - 1].len() + 1;
        if bytes + n > TAIL_BYTES {
            break;
        }
        bytes += n;
        start -= 1;
    }
    let mut out = String::new();
    if start == lines.len() {
        // One last line longer than the allowance: its end carries the message.
        let Some(last) = lines.last() else {
            return out;
        };
        let from = (last.len() - TAIL_BYTES..last.len())
            .find(|&i| last.is_char_boundary(i))
            .unwrap_or(0);
        start -= 1;
        if start > 0 {
            out.push_str(&format!("[{start} earlier lines left out]\n"));
        }
        out.push('…');
        out.push_str(&last[from..]);
        return out;
    }
    if start > 0 {
        out.push_str(&format!("[{start} earlier lines left out]\n"));
    }
    out.push_str(&lines[start..].join("\n"));
    out
}

/// Whether `program` is on `PATH`.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Fails with a message naming the Debian package to install when `program` is missing.
pub fn require(program: &str, package: &str) -> Result<()> {
    if have(program) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "`{program}` is needed to build images; install the Debian package `{package}`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_tool_keeps_its_last_lines_whole() {
        let message = format!(
            "dpkg: error processing package libc6:amd64 (--configure): installed libc6:amd64 \
             package post-installation script subprocess returned error exit status 1 {}",
            "x".repeat(300)
        );
        let packages: Vec<String> = (0..3000).map(|i| format!("package-{i}")).collect();
        let e = run(Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for i in $(seq 1 5000); do echo \"Unpacking package-$i ...\"; done >&2; \
                 echo 'Errors were encountered while processing:' >&2; echo '{message}' >&2; exit 3"
            ))
            .arg("sh")
            .args(&packages))
        .unwrap_err()
        .to_string();
        // The tool's own last line, whole, and the lines before it up to the allowance.
        assert!(e.ends_with(&message), "{e}");
        assert!(
            e.contains("Errors were encountered while processing:\n"),
            "{e}"
        );
        assert!(e.contains("\nUnpacking package-4963 ...\n"), "{e}");
        assert!(!e.contains("Unpacking package-4962 "), "{e}");
        assert!(e.contains("[4962 earlier lines left out]"), "{e}");
        // Only the command line is shortened.
        assert!(e.contains("package-0 package-1 "), "{e}");
        assert!(!e.contains("package-2999"), "{e}");
        assert!(e.contains(" more arguments)"), "{e}");
        assert!(e.contains("(exit status: 3)"), "{e}");
        assert!(e.len() < 10_000, "{}", e.len());
    }

    #[test]
    fn tails() {
        assert_eq!(tail(""), "");
        assert_eq!(tail("  one\ntwo\n\n"), "one\ntwo");
        let long = "é".repeat(TAIL_BYTES);
        let t = tail(&format!("a\n{long}"));
        assert!(
            t.starts_with("[1 earlier lines left out]\n…é"),
            "{}",
            &t[..40]
        );
        assert!(t.len() <= TAIL_BYTES + 40);
        // Lines are never cut: a line that does not fit is left out whole.
        let lines: Vec<String> = (0..30)
            .map(|i| format!("{i:03}{}", "y".repeat(500)))
            .collect();
        let t = tail(&lines.join("\n"));
        assert!(
            t.starts_with("[14 earlier lines left out]\n014y"),
            "{}",
            &t[..40]
        );
        assert!(t.ends_with(&lines[29]));
    }
}
