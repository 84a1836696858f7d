//! Mounts a root needs while maintainer scripts or bootloader tools run in it, undone on drop.

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
