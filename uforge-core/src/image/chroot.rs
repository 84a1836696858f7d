//! Mounts a root needs while maintainer scripts or bootloader tools run in it, undone on drop,
//! and the removal of a tree that a killed build may have left mounts in.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cmd;
use crate::{Error, Result};

/// `/proc`, `/sys`, `/dev` and `/run` mounted inside a root. Everything is undone on drop, in
/// reverse order, so an error half way leaves no mount behind.
#[derive(Debug)]
pub struct ChrootMounts {
    mounted: Vec<PathBuf>,
}

impl ChrootMounts {
    /// Mounts the pseudo filesystems in `root`.
    pub fn new(root: &Path) -> Result<Self> {
        let mut m = ChrootMounts {
            mounted: Vec::new(),
        };
        m.mount(root, "proc", &["-t", "proc", "proc"])?;
        m.mount(root, "sys", &["-t", "sysfs", "sysfs"])?;
        m.mount(root, "dev", &["--rbind", "/dev"])?;
        m.mount(root, "run", &["-t", "tmpfs", "-o", "mode=0755", "tmpfs"])?;
        Ok(m)
    }

    fn mount(&mut self, root: &Path, dir: &str, args: &[&str]) -> Result<()> {
        let at = root.join(dir);
        std::fs::create_dir_all(&at).map_err(|e| Error::io("create", &at, e))?;
        cmd::run(Command::new("mount").args(args).arg(&at))?;
        self.mounted.push(at);
        Ok(())
    }

    /// Undoes everything now, reporting the first failure.
    pub fn release(mut self) -> Result<()> {
        self.undo()
    }

    fn undo(&mut self) -> Result<()> {
        let mut first = None;
        while let Some(at) = self.mounted.pop() {
            if let Err(e) = unmount(&at) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for ChrootMounts {
    fn drop(&mut self) {
        let _ = self.undo();
    }
}

/// Unmounts `at` and everything below it; lazily if it is busy, so cleanup never hangs.
pub fn unmount(at: &Path) -> Result<()> {
    if cmd::run(Command::new("umount").arg("-R").arg(at)).is_ok() {
        return Ok(());
    }
    cmd::run(Command::new("umount").arg("-R").arg("-l").arg(at)).map(|_| ())
}

/// Runs `program args` inside `root` with a clean, predictable environment.
pub fn run_in(root: &Path, program: &str, args: &[&str]) -> Result<Vec<u8>> {
    cmd::run(
        Command::new("chroot")
            .arg(root)
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Removes a directory tree that a build may have mounted filesystems inside (a build that was
/// killed cannot unmount what it mounted). Mount points inside are detached first, deepest
/// first, because a recursive removal would otherwise descend into them: into a bind mount of
/// the host's `/dev`, say. If one cannot be detached, nothing is removed. A tree that does not
/// exist is not an error.
pub fn remove_tree(dir: &Path) -> Result<()> {
    let real = match std::fs::canonicalize(dir) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("resolve", dir, e)),
    };
    let mut mounts = mounts_under(&real)?;
    mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    for m in &mounts {
        detach(m).map_err(|e| {
            Error::Invalid(format!(
                "cannot remove {}: {} is mounted and cannot be unmounted: {e}",
                dir.display(),
                m.display()
            ))
        })?;
    }
    match std::fs::remove_dir_all(&real) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", dir, e)),
    }
}

/// Mount points at or under `dir`.
fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    const MOUNTINFO: &str = "/proc/self/mountinfo";
    let text = match std::fs::read(MOUNTINFO) {
        Ok(t) => t,
        // No /proc: nothing can be told, and nothing of ours was mounted through it either.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", MOUNTINFO, e)),
    };
    Ok(crate::facts::mounts::mount_points(&text)
        .into_iter()
        .map(|p| PathBuf::from(OsStr::from_bytes(&p)))
        .filter(|p| p.starts_with(dir))
        .collect())
}

fn detach(mount: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(mount.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a valid NUL-terminated path; MNT_DETACH has no other requirement.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_without_mounts_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("job");
        std::fs::create_dir_all(t.join("a/b")).unwrap();
        std::fs::write(t.join("a/b/f"), "x").unwrap();
        remove_tree(&t).unwrap();
        assert!(!t.exists());
        remove_tree(&t).unwrap();
    }
}
