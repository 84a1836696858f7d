//! The `/run` a root needs while its tools run in it, undone on drop; running the root's own
//! programs confined ([`run_in`]); and the removal of a tree that a killed build may have left
//! mounts in.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cmd;
use super::sandbox::Sandbox;
use crate::{Error, Result};

/// A tmpfs on the root's `/run`, where the root's tools leave what the build reads back (GRUB's
/// images), so nothing of it stays in the root's files. `/proc`, `/sys` and `/dev` come from the
/// [sandbox](super::sandbox) each command runs in, never from the host. Undone on drop, so an
/// error half way leaves no mount behind.
#[derive(Debug)]
pub struct ChrootMounts {
    mounted: Vec<PathBuf>,
}

impl ChrootMounts {
    /// Mounts the tmpfs on `root`'s `/run`.
    pub fn new(root: &Path) -> Result<Self> {
        let mut m = ChrootMounts {
            mounted: Vec::new(),
        };
        m.mount(
            root,
            "run",
            &["-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "tmpfs"],
        )?;
        Ok(m)
    }

    fn mount(&mut self, root: &Path, dir: &str, args: &[&str]) -> Result<()> {
        let at = root.join(dir);
        // The root holds the scanned machine's entries, and mount(8) follows a link from the
        // host's `/`: a `/run` that is a link would put the tmpfs over a host directory.
        match std::fs::symlink_metadata(&at) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::Invalid(format!(
                    "/{dir} of the image is not a directory ({}): it cannot be mounted on",
                    if m.file_type().is_symlink() {
                        "a symbolic link"
                    } else {
                        "another kind of file"
                    }
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&at).map_err(|e| Error::io("create", &at, e))?
            }
            Err(e) => return Err(Error::io("stat", &at, e)),
        }
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

/// Runs the root's own `program args` with `root` as `/`, confined in a
/// [sandbox](super::sandbox) without network and with its clean environment: the program is
/// the scanned machine's code and never runs as root of the host.
pub fn run_in(root: &Path, program: &str, args: &[&str]) -> Result<Vec<u8>> {
    Sandbox::root(root).run(Command::new(program).args(args))
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
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn the_roots_programs_cannot_reach_the_host() {
        let root = crate::test_fixture::debian_root();
        let host = tempfile::tempdir_in("/var/tmp").unwrap();
        let secret = host.path().join("secret");
        std::fs::write(&secret, "host secret").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pwned = host.path().join("pwned");
        // The classic double chroot, then every way to the host file the root's code has: its
        // path, the root of pid 1, and writing and chowning next to it.
        let script = format!(
            r#"mkdir "/dev/shm/x"; chroot "/dev/shm/x" or die "chroot: $!";
               chdir ".." for 1..64; chroot "." or die "escape: $!";
               for my $p ("{s}", "/proc/1/root{s}", "/etc/shadow-of-the-host") {{
                   if (open(my $f, "<", $p)) {{ print "read $p: ", <$f>, "
" }}
               }}
               if (open(my $f, ">", "{w}")) {{ print "wrote {w}
" }}
               chown(65534, 65534, "{s}") and print "chowned
";
               chmod(0666, "{s}") and print "chmodded
";
               print "uid ", $<, " sees ", -e "/usr/lib/os-release" ? "its root" : "?", "
";"#,
            s = secret.display(),
            w = pwned.display()
        );
        let out = String::from_utf8(run_in(&root, "perl", &["-e", &script]).unwrap()).unwrap();
        assert_eq!(out.trim(), "uid 0 sees its root", "{out}");
        let meta = std::fs::metadata(&secret).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600));
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
        assert!(!pwned.exists());
        // Nothing the root runs is root of the host: a write to the host's /proc fails.
        let err = run_in(&root, "sh", &["-c", "echo 1 >/proc/sys/vm/drop_caches"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("drop_caches"), "{err}");
    }

    #[test]
    fn a_run_that_is_a_link_is_never_mounted_on() {
        let root = tempfile::tempdir_in("/var/tmp").unwrap();
        let host = tempfile::tempdir_in("/var/tmp").unwrap();
        std::fs::write(host.path().join("keep"), "host file").unwrap();
        std::os::unix::fs::symlink(host.path(), root.path().join("run")).unwrap();
        let err = ChrootMounts::new(root.path()).unwrap_err().to_string();
        assert!(
            err.contains("/run") && err.contains("symbolic link"),
            "{err}"
        );
        // Nothing was mounted over the host directory: its file is still seen.
        assert_eq!(
            std::fs::read_to_string(host.path().join("keep")).unwrap(),
            "host file"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(host.path().to_str().unwrap()), "{mounts}");

        // A directory, or nothing yet, is mounted on and undone.
        std::fs::remove_file(root.path().join("run")).unwrap();
        let m = ChrootMounts::new(root.path()).unwrap();
        m.release().unwrap();
        assert!(root.path().join("run").is_dir());
    }

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
