//! Running the external tools an image build drives (mmdebstrap, mkfs, grub-install,
//! qemu-img...), with errors that name the command and carry the end of its output.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// How much of a failed command's output an error keeps.
const TAIL: usize = 4000;

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
            "`{shown}` failed ({}): {}",
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

/// The command line, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        let a = a.to_string_lossy();
        // Package lists run to kilobytes: keep messages readable.
        if a.chars().count() > 200 {
            s.extend(a.chars().take(200));
            s.push('…');
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// The last [`TAIL`] bytes of `text`, trimmed, on a character boundary.
pub fn tail(text: &str) -> String {
    let t = text.trim();
    if t.len() <= TAIL {
        return t.to_string();
    }
    let start = t.len() - TAIL;
    let start = (start..t.len())
        .find(|&i| t.is_char_boundary(i))
        .unwrap_or(t.len());
    format!("…{}", &t[start..])
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
