//! Running the external tools an image build drives (mmdebstrap, mkfs, grub-install,
//! qemu-img...), with errors that name the command and carry the end of its output.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::{Error, Result};

/// How much of a failed command's output an error keeps: its last lines, whole, as many as
/// fit in [`TAIL_BYTES`] (the tool's own message is at the end: dpkg, mmdebstrap, mkfs).
const TAIL_LINES: usize = 40;
/// See [`TAIL_LINES`].
const TAIL_BYTES: usize = 8192;
/// Longer lines before the last are left out of an error, named by their length.
const LONG_LINE: usize = 1024;
/// How much of a command line a message shows: package lists run to kilobytes.
const SHOWN_COMMAND: usize = 600;
/// How much of one argument a message shows.
const SHOWN_ARG: usize = 200;

/// Runs `cmd`, capturing its output; fails with the command line and the last lines of its
/// output when it cannot start or exits non-zero. Returns standard output.
pub fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    run_observed(cmd, &|_| {})
}

/// [`run`], handing each line the command prints (on either stream, without its newline) to
/// `observe` as it comes: how a long tool's progress is followed.
pub fn run_observed(cmd: &mut Command, observe: &(dyn Fn(&[u8]) + Sync)) -> Result<Vec<u8>> {
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
    let out = spawn_collect(cmd, observe)
        .map_err(|e| Error::Invalid(format!("cannot run `{shown}`: {e}")))?;
    if !out.status.success() {
        keep_failure_log(cmd, &out);
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        // A short verdict on standard error often sums up what standard output explains (apt
        // prints its unmet dependencies there): the error keeps both, standard error last.
        if text.trim().lines().count() < 5 && !out.stdout.is_empty() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            text = format!("{}\n{}", stdout.trim_end(), text.trim());
        }
        return Err(Error::Invalid(format!(
            "`{shown}` failed ({}):\n{}",
            out.status,
            tail(&text)
        )));
    }
    Ok(out.stdout)
}

/// Starts `cmd` with both output streams piped and collects them, each read on a thread of its
/// own (a tool that fills one pipe while the other is waited on would block), passing every line
/// to `observe`.
fn spawn_collect(cmd: &mut Command, observe: &(dyn Fn(&[u8]) + Sync)) -> std::io::Result<Output> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let collect = |stream: Option<Box<dyn std::io::Read + Send>>| -> std::io::Result<Vec<u8>> {
        let mut all = Vec::new();
        let Some(stream) = stream else {
            return Ok(all);
        };
        let mut r = BufReader::new(stream);
        loop {
            let start = all.len();
            if r.read_until(b'\n', &mut all)? == 0 {
                return Ok(all);
            }
            let line = &all[start..];
            observe(line.strip_suffix(b"\n").unwrap_or(line));
        }
    };
    let (out, err) = std::thread::scope(|s| {
        let err = s.spawn(|| collect(stderr.map(|e| Box::new(e) as Box<dyn std::io::Read + Send>)));
        let out = collect(stdout.map(|o| Box::new(o) as Box<dyn std::io::Read + Send>));
        (
            out,
            err.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    let status = child.wait()?;
    Ok(Output {
        status,
        stdout: out?,
        stderr: err?,
    })
}

thread_local! {
    /// Where [`run`] writes the whole output of commands that fail on this thread.
    static FAILURE_LOG: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// While held, the commands [`run`] starts on this thread and that fail append their whole
/// output (standard output, then standard error, where tools put their last words) with their
/// full command line and exit status to a log file: an error keeps only the end of it. Each
/// failure adds a section headed by `$ COMMAND` and its exit status; the output follows it,
/// standard error last, so the log ends with the last words of the last tool that failed.
pub struct FailureLog {
    earlier: Option<PathBuf>,
}

impl FailureLog {
    /// Starts keeping the output of failed commands in `path` (created when one fails, and
    /// its parent directory with it), until the returned value is dropped. A build runs its
    /// tools on the thread that called it, so this covers every step of a build.
    pub fn keep_in(path: &Path) -> FailureLog {
        let earlier = FAILURE_LOG.with(|l| l.replace(Some(path.to_path_buf())));
        FailureLog { earlier }
    }
}

impl Drop for FailureLog {
    fn drop(&mut self) {
        let earlier = self.earlier.take();
        FAILURE_LOG.with(|l| *l.borrow_mut() = earlier);
    }
}

/// Appends a failed command's whole output to this thread's [`FailureLog`], if any. A log that
/// cannot be written costs the evidence, not the error.
fn keep_failure_log(cmd: &Command, out: &Output) {
    let Some(path) = FAILURE_LOG.with(|l| l.borrow().clone()) else {
        return;
    };
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Tools print what they work on: the scanned machine's file names, its packages.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        let mut line = cmd.get_program().to_string_lossy().into_owned();
        for a in cmd.get_args() {
            line.push(' ');
            line.push_str(&a.to_string_lossy());
        }
        writeln!(f, "$ {line}\n--- {} ---", out.status)?;
        if !out.stdout.is_empty() {
            writeln!(f, "--- standard output ---")?;
            f.write_all(&out.stdout)?;
            if !out.stdout.ends_with(b"\n") {
                writeln!(f)?;
            }
        }
        if !out.stderr.is_empty() {
            writeln!(f, "--- standard error ---")?;
            f.write_all(&out.stderr)?;
            if !out.stderr.ends_with(b"\n") {
                writeln!(f)?;
            }
        }
        Ok(())
    };
    // The error itself still carries the end of the output; callers name the log only when
    // it exists.
    let _ = write();
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
    let all: Vec<&str> = text.trim().lines().collect();
    // A line of kilobytes before the last (mmdebstrap echoes a whole dpkg command line) would
    // crowd out the messages before it: it is named, not shown.
    let marks: Vec<String> = all
        .iter()
        .map(|l| format!("[a line of {} bytes left out]", l.len()))
        .collect();
    let lines: Vec<&str> = all
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i + 1 < all.len() && l.len() > LONG_LINE {
                marks[i].as_str()
            } else {
                *l
            }
        })
        .collect();
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
    fn every_line_of_both_streams_is_observed_as_it_comes() {
        let seen = std::sync::Mutex::new(Vec::new());
        // More than a pipe holds on standard error while standard output is read.
        let out = run_observed(
            Command::new("sh").arg("-c").arg(
                "echo first; i=0; while [ $i -lt 3000 ]; do echo err-line-$i >&2; i=$((i+1)); done; \
                 printf last",
            ),
            &|l| seen.lock().unwrap().push(String::from_utf8_lossy(l).into_owned()),
        )
        .unwrap();
        assert_eq!(out, b"first\nlast");
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 3002, "{:?}", &seen[..5]);
        for want in ["first", "last", "err-line-0", "err-line-2999"] {
            assert!(seen.iter().any(|l| l == want), "{want}");
        }
    }

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
    fn failed_commands_leave_their_whole_output_in_the_failure_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/7.log");
        {
            let _kept = FailureLog::keep_in(&log);
            run(&mut Command::new("true")).unwrap();
            assert!(!log.exists(), "a command that succeeds logs nothing");
            let e = run(Command::new("sh")
                .arg("-c")
                .arg("seq 1 3000; for i in $(seq 1 5000); do echo \"line $i\" >&2; done; exit 4"))
            .unwrap_err()
            .to_string();
            assert!(e.contains("[4960 earlier lines left out]"), "{e}");
        }
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("$ sh -c seq 1 3000;"), "{}", lines[0]);
        assert_eq!(lines[1], "--- exit status: 4 ---");
        assert_eq!(lines[2], "--- standard output ---");
        assert_eq!(lines[3], "1");
        assert_eq!(lines[3002], "3000");
        assert_eq!(lines[3003], "--- standard error ---");
        assert_eq!(lines[3004], "line 1");
        assert_eq!(lines.last(), Some(&"line 5000"));
        assert_eq!(lines.len(), 3004 + 5000);
        // Once the guard is gone, failures are no longer kept.
        let _ = run(&mut Command::new("false"));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), text);
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
