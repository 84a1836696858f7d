//! Running code that came from a scanned machine (maintainer scripts, the image's own
//! `update-initramfs` or `grub-mkimage`) confined, never as root of the host.
//!
//! A command runs in a new user namespace whose ids 0..65536 map to a host range no real user
//! has: 2^31 + k·65536 (k picked per sandbox, so two builds never share ids). The build root,
//! and the few work directories a step writes, are made visible through **idmapped mounts**
//! with that namespace's mapping: inside, files owned by 0 on disk appear owned by 0 and files
//! written as 0 are owned by 0 on disk, while the process holds no privilege over any other
//! host file (host files are owned by ids the namespace does not map, so it gets only the
//! permissions of "others" on them). The process also gets its own mount, PID, IPC and UTS
//! namespaces and, unless the step downloads packages, its own (empty) network namespace. It
//! loses the controlling terminal and dies with the server.
//!
//! Two views of the file system:
//! - [`View::Root`]: the build root is `/` (for the image's own tools).
//! - [`View::HostTools`]: a fresh tmpfs `/` with the host's `/usr`, `/etc`, `/bin`, `/sbin` and
//!   `/lib*` read-only, a private `/tmp`, and the build root and the step's work directories at
//!   their host paths (for mmdebstrap and apt, whose dpkg then chroots into the root inside the
//!   namespace).
//!
//! Both get a minimal `/dev` (the host's null, zero, full, random, urandom and tty device
//! files, a private devpts and `/dev/shm`), a `/proc` of the new PID namespace and a read-only
//! `/sys`. Every mount of the build root and of work directories is `nodev` and `nosuid`, so a
//! device node a scanned machine's files carry opens nothing.
//!
//! Every command gets exactly the environment [`CLEAN_ENV`] and nothing from the host's.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::cmd;
use crate::{Error, Result};

/// Held shared while a confined command runs, exclusively by [`super::disk::Disk`] while it
/// unmounts a build's file system and needs it to be free of every copy (see [`Sandbox::run`]).
pub(crate) static MOUNT_COPIES: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The whole environment of every command run in or on a build root: nothing else of the
/// host's environment reaches the root's programs and maintainer scripts.
pub const CLEAN_ENV: [(&str, &str); 5] = [
    ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("HOME", "/root"),
];

/// First host id of the ranges sandboxes map to (2^31: above any real user or subuid range).
pub const HOST_ID_BASE: u32 = 1 << 31;
/// How many ids a sandbox maps (0..65536 inside).
pub const IDS: u32 = 65536;
/// How many distinct ranges fit between [`HOST_ID_BASE`] and the invalid id 2^32-1.
const SLOTS: u32 = (u32::MAX - HOST_ID_BASE) / IDS;

/// Sets `cmd`'s environment to exactly [`CLEAN_ENV`].
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear();
    for (k, v) in CLEAN_ENV {
        cmd.env(k, v);
    }
    cmd
}

/// The local directories that `file:` and `copy:` repositories of these sources.list lines
/// name, which a confined apt or mmdebstrap must see.
pub fn local_repos(lines: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in lines {
        let mut words = line.split_whitespace().skip(1);
        let mut uri = words.next();
        if uri.is_some_and(|w| w.starts_with('[')) {
            while let Some(w) = uri {
                uri = words.next();
                if w.ends_with(']') {
                    break;
                }
            }
        }
        if let Some(u) = uri {
            if let Some(rest) = u.strip_prefix("file:").or_else(|| u.strip_prefix("copy:")) {
                let path = rest.trim_start_matches("//");
                let path = if path.starts_with('/') {
                    path.to_string()
                } else {
                    format!("/{path}")
                };
                out.push(PathBuf::from(path));
            }
        }
    }
    out
}

/// What the confined command sees as its file system (see the [module](self) documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The build root is `/`.
    Root,
    /// The host's tools read-only, the build root and work directories at their host paths.
    HostTools,
}

/// A confinement for commands run on one build root.
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: PathBuf,
    view: View,
    network: bool,
    binds: Vec<(PathBuf, bool)>,
    root_mounts: bool,
}

impl Sandbox {
    /// Commands see `root` as `/`, without network.
    pub fn root(root: &Path) -> Sandbox {
        Sandbox {
            root: root.to_path_buf(),
            view: View::Root,
            network: false,
            binds: Vec::new(),
            root_mounts: true,
        }
    }

    /// Commands see the host's tools and `root` (writable) at its host path, without network.
    pub fn host_tools(root: &Path) -> Sandbox {
        Sandbox {
            root: root.to_path_buf(),
            view: View::HostTools,
            network: false,
            binds: Vec::new(),
            root_mounts: false,
        }
    }

    /// Keeps the host's network namespace (for steps that download packages): the command can
    /// open sockets as an unprivileged process does, nothing more.
    pub fn network(mut self, on: bool) -> Sandbox {
        self.network = on;
        self
    }

    /// Makes the host directory or file `path` visible at the same path (host tools view),
    /// read-only unless `writable`. Paths that do not exist are passed over.
    pub fn bind(mut self, path: &Path, writable: bool) -> Sandbox {
        self.binds.push((path.to_path_buf(), writable));
        self
    }

    /// Also mounts `/proc`, `/sys` (read-only) and `/dev` of the sandbox inside the build root
    /// (host tools view), for tools that chroot into it.
    pub fn with_root_mounts(mut self) -> Sandbox {
        self.root_mounts = true;
        self
    }

    /// Runs `command` (program and arguments; its environment is replaced by [`CLEAN_ENV`])
    /// confined, as [`cmd::run`] does: returns its standard output, fails with the end of its
    /// output. Errors setting up the confinement name the step that failed.
    pub fn run(&self, command: &mut Command) -> Result<Vec<u8>> {
        self.run_observed(command, &|_| {})
    }

    /// [`Sandbox::run`], handing each line of the command's output to `observe` as it comes
    /// (see [`cmd::run_observed`]).
    pub fn run_observed(
        &self,
        command: &mut Command,
        observe: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<Vec<u8>> {
        let prepared = self.prepare()?;
        let dir = prepared.dir.clone();
        let errors = prepared.errors_read.try_clone().ok();
        let names: Vec<String> = prepared.steps.iter().map(|s| s.name.clone()).collect();
        clean_env(command);
        let mut prepared = Some(prepared);
        // SAFETY: the closure runs between fork and exec and only makes raw system calls
        // (no allocation, no locks) on data prepared before the fork.
        unsafe {
            command.pre_exec(move || match prepared.as_mut() {
                Some(p) => p.enter(),
                None => Ok(()),
            });
        }
        // A confined command's namespaces start as a copy of this process's mounts, other
        // builds' root file systems included; while it runs, one of those may stay pinned.
        let copies = MOUNT_COPIES.read().unwrap_or_else(|p| p.into_inner());
        let res = cmd::run_observed(command, observe);
        drop(copies);
        let _ = std::fs::remove_dir(&dir);
        res.map_err(|e| match errors.and_then(|f| failed_step(f, &names)) {
            Some(step) => Error::Invalid(format!("confining `{}`: {step}", cmd::describe(command))),
            None => e,
        })
    }

    fn prepare(&self) -> Result<Prepared> {
        let slot = next_slot();
        let userns = new_userns(HOST_ID_BASE + slot * IDS)?;
        let dir = std::env::temp_dir().join(format!(
            "uforge-sandbox-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create", &dir, e)),
        }
        let mut p = Plan {
            new_root: dir.clone(),
            steps: Vec::new(),
        };
        let root =
            std::path::absolute(&self.root).map_err(|e| Error::io("resolve", &self.root, e))?;
        let inner_root = match self.view {
            View::Root => {
                let fd = clone_tree(&root, Some(&userns), true, ATTRS_BUILD)?;
                p.attach(fd, Path::new("/"), "the build root");
                PathBuf::from("/")
            }
            View::HostTools => {
                p.tmpfs(Path::new("/"), "mode=0755");
                for d in HOST_DIRS {
                    let host = Path::new("/").join(d);
                    match std::fs::symlink_metadata(&host) {
                        Ok(m) if m.file_type().is_symlink() => {
                            let to = std::fs::read_link(&host)
                                .map_err(|e| Error::io("read link", &host, e))?;
                            p.symlink(&to, &host);
                        }
                        Ok(m) if m.is_dir() => {
                            let fd = clone_tree(&host, None, true, ATTRS_HOST)?;
                            p.mkdir(&host, 0o755);
                            p.attach(fd, &host, "a host directory");
                        }
                        _ => {}
                    }
                }
                p.mkdir(Path::new("/tmp"), 0o1777);
                let mut binds: Vec<(PathBuf, bool)> = vec![(root.clone(), true)];
                if self.network {
                    // A resolver configuration kept outside /etc (systemd-resolved's stub).
                    if let Ok(real) = std::fs::canonicalize("/etc/resolv.conf") {
                        if !HOST_DIRS
                            .iter()
                            .any(|d| real.starts_with(Path::new("/").join(d)))
                        {
                            if let Some(parent) = real.parent() {
                                binds.push((parent.to_path_buf(), false));
                            }
                        }
                    }
                }
                for (path, writable) in &self.binds {
                    let path =
                        std::path::absolute(path).map_err(|e| Error::io("resolve", path, e))?;
                    if path.exists() {
                        binds.push((path, *writable));
                    }
                }
                binds.sort();
                binds.dedup_by(|a, b| a.0 == b.0);
                for (path, writable) in &binds {
                    let attrs = if *writable {
                        ATTRS_BUILD
                    } else {
                        ATTRS_BUILD | MOUNT_ATTR_RDONLY
                    };
                    let fd = clone_tree(path, Some(&userns), true, attrs)?;
                    p.mkdirs_above(path);
                    if path.is_dir() {
                        p.mkdir(path, 0o755);
                    } else {
                        p.mkfile(path);
                    }
                    p.attach(fd, path, "a work directory");
                }
                p.mkdir(Path::new("/proc"), 0o555);
                p.mkdir(Path::new("/sys"), 0o555);
                p.mkdir(Path::new("/dev"), 0o755);
                root
            }
        };
        p.tmpfs(Path::new("/dev"), "mode=0755");
        for d in DEVICES {
            let host = Path::new("/dev").join(d);
            let fd = clone_tree(&host, None, false, 0)?;
            p.mkfile(&host);
            p.attach(fd, &host, "a device");
        }
        p.mkdir(Path::new("/dev/pts"), 0o755);
        p.step(
            "mount devpts on /dev/pts",
            Op::Mount {
                source: c("devpts"),
                target: p.inside(Path::new("/dev/pts")),
                fstype: c("devpts"),
                flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                data: c("newinstance,ptmxmode=0666,mode=0620"),
            },
        );
        p.mkdir(Path::new("/dev/shm"), 0o1777);
        p.tmpfs(Path::new("/dev/shm"), "mode=1777");
        for (to, at) in [
            ("pts/ptmx", "ptmx"),
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ] {
            p.symlink(Path::new(to), &Path::new("/dev").join(at));
        }
        // /proc of the new PID namespace; mounted while the host's /proc is still visible in
        // this mount namespace, which the kernel requires.
        p.proc(Path::new("/proc"));
        let sys = clone_tree(
            Path::new("/sys"),
            None,
            true,
            ATTRS_HOST | MOUNT_ATTR_NOEXEC,
        )?;
        p.attach(sys, Path::new("/sys"), "the host's /sys");
        if self.view == View::HostTools && self.root_mounts {
            p.proc(&inner_root.join("proc"));
            p.rbind(Path::new("/sys"), &inner_root.join("sys"));
            p.rbind(Path::new("/dev"), &inner_root.join("dev"));
        }
        let mut flags = libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWCGROUP;
        if !self.network {
            flags |= libc::CLONE_NEWNET;
        }
        let (errors_read, errors_write) = pipe()?;
        Ok(Prepared {
            userns,
            flags,
            new_root: c_path(&p.new_root),
            steps: p.steps,
            errors_read,
            errors_write,
            dir,
        })
    }
}

/// Host directories the host tools view shows read-only.
const HOST_DIRS: [&str; 8] = [
    "usr", "etc", "bin", "sbin", "lib", "lib64", "lib32", "libx32",
];
/// Device files of the host the sandbox's `/dev` holds.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
/// Mounts of the build root and work directories: idmapped, no devices, no set-id.
const ATTRS_BUILD: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
/// Mounts of the host's own directories.
const ATTRS_HOST: u64 = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A host id range for the next sandbox: spread by process and counter.
fn next_slot() -> u32 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (std::process::id().wrapping_mul(7919).wrapping_add(n)) % SLOTS
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in constant strings")
}

fn c_path(p: &Path) -> CString {
    // Paths come from the file system or from constants: no NUL inside.
    CString::new(p.as_os_str().as_bytes()).unwrap_or_else(|_| c("/nonexistent"))
}

fn os_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(what, path, e)
}

/// A detached copy of the mount tree at `path` (recursive if `recursive`), with `attrs` set
/// and, given a user namespace, idmapped with its mapping.
fn clone_tree(
    path: &Path,
    userns: Option<&OwnedFd>,
    recursive: bool,
    attrs: u64,
) -> Result<OwnedFd> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{} contains a NUL byte", path.display())))?;
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: a valid path; open_tree returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, cpath.as_ptr(), flags) };
    if fd < 0 {
        return Err(os_err("clone the mount of", path)(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: open_tree returned a descriptor this process now owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let mut attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    if let Some(ns) = userns {
        attr.attr_set |= MOUNT_ATTR_IDMAP;
        attr.userns_fd = ns.as_raw_fd() as u64;
    }
    if attr.attr_set != 0 {
        let mut at = libc::AT_EMPTY_PATH;
        if recursive {
            at |= libc::AT_RECURSIVE;
        }
        // SAFETY: a valid descriptor, an empty path and a mount_attr of the size passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd.as_raw_fd(),
                c"".as_ptr(),
                at as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return Err(
                if userns.is_some() && e.raw_os_error() == Some(libc::EINVAL) {
                    Error::Invalid(format!(
                        "cannot confine the build: the file system of {} (or one mounted below \
                     it) does not support idmapped mounts",
                        path.display()
                    ))
                } else {
                    os_err("set the mount attributes of", path)(e)
                },
            );
        }
    }
    Ok(fd)
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::Invalid(format!(
            "cannot create a pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: pipe2 returned two descriptors this process now owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `fork` without the C library's fork handlers: only raw system calls follow in the child.
fn raw_fork() -> libc::pid_t {
    // SAFETY: clone with only the exit signal behaves as fork.
    unsafe {
        libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) as libc::pid_t
    }
}

/// A new user namespace mapping ids 0..[`IDS`] to `base`..: a short-lived child creates it and
/// waits while this process writes its id maps and keeps a descriptor of it.
fn new_userns(base: u32) -> Result<OwnedFd> {
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let pid = raw_fork();
    if pid < 0 {
        return Err(Error::Invalid(format!(
            "cannot fork: {}",
            std::io::Error::last_os_error()
        )));
    }
    if pid == 0 {
        // SAFETY: the child only makes raw system calls and exits.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // Only the two pipe ends stay open: the copies of descriptors other threads hold
            // (their own pipes among them) would keep their readers waiting for an end of file
            // while this child waits, and never exec to shed them.
            let (keep_a, keep_b) = {
                let (x, y) = (ready_w.as_raw_fd() as u32, go_r.as_raw_fd() as u32);
                (x.min(y), x.max(y))
            };
            for (first, last) in [
                (3, keep_a.wrapping_sub(1)),
                (keep_a + 1, keep_b - 1),
                (keep_b + 1, u32::MAX),
            ] {
                if first <= last {
                    libc::syscall(libc::SYS_close_range, first, last, 0u32);
                }
            }
            let ok: u8 = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                1
            } else {
                0
            };
            libc::write(
                ready_w.as_raw_fd(),
                &ok as *const u8 as *const libc::c_void,
                1,
            );
            let mut b = 0u8;
            libc::read(go_r.as_raw_fd(), &mut b as *mut u8 as *mut libc::c_void, 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(go_r);
    let res = (|| {
        let mut ok = [0u8; 1];
        let mut r = std::fs::File::from(ready_r);
        if r.read(&mut ok).unwrap_or(0) != 1 || ok[0] != 1 {
            return Err(Error::Invalid(
                "cannot create a user namespace to confine the build (is \
                 user.max_user_namespaces 0?)"
                    .into(),
            ));
        }
        let map = format!("0 {base} {IDS}\n");
        for f in ["uid_map", "gid_map"] {
            let p = PathBuf::from(format!("/proc/{pid}/{f}"));
            std::fs::write(&p, &map).map_err(os_err("write", &p))?;
        }
        let p = PathBuf::from(format!("/proc/{pid}/ns/user"));
        let f = std::fs::File::open(&p).map_err(os_err("open", &p))?;
        Ok(OwnedFd::from(f))
    })();
    // A byte, not only the end of file, releases the child: a copy of this write end that
    // another thread's fork holds for a moment cannot keep it waiting.
    // SAFETY: writes one byte from a live buffer to a descriptor this process owns.
    unsafe { libc::write(go_w.as_raw_fd(), [1u8].as_ptr() as *const libc::c_void, 1) };
    drop(go_w);
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    res
}

/// One set-up operation, on strings and descriptors made before the fork.
enum Op {
    Mount {
        source: CString,
        target: CString,
        fstype: CString,
        flags: libc::c_ulong,
        data: CString,
    },
    Bind {
        source: CString,
        target: CString,
    },
    Attach {
        fd: OwnedFd,
        target: CString,
    },
    Mkdir {
        path: CString,
        mode: libc::mode_t,
    },
    Mkfile {
        path: CString,
    },
    Symlink {
        to: CString,
        at: CString,
    },
}

struct Step {
    name: String,
    op: Op,
}

struct Plan {
    new_root: PathBuf,
    steps: Vec<Step>,
}

impl Plan {
    /// Where `inside` (a path as the command sees it) is before the switch of root.
    fn inside(&self, inside: &Path) -> CString {
        let mut p = self.new_root.clone();
        for comp in inside.components() {
            if let Component::Normal(n) = comp {
                p.push(n);
            }
        }
        c_path(&p)
    }

    fn step(&mut self, name: impl Into<String>, op: Op) {
        self.steps.push(Step {
            name: name.into(),
            op,
        });
    }

    fn tmpfs(&mut self, at: &Path, opts: &str) {
        let target = self.inside(at);
        self.step(
            format!("mount a tmpfs on {}", at.display()),
            Op::Mount {
                source: c("tmpfs"),
                target,
                fstype: c("tmpfs"),
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: c(opts),
            },
        );
    }

    fn proc(&mut self, at: &Path) {
        let target = self.inside(at);
        self.step(
            format!("mount proc on {}", at.display()),
            Op::Mount {
                source: c("proc"),
                target,
                fstype: c("proc"),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: c(""),
            },
        );
    }

    fn rbind(&mut self, from: &Path, at: &Path) {
        let (source, target) = (self.inside(from), self.inside(at));
        self.step(
            format!("bind {} on {}", from.display(), at.display()),
            Op::Bind { source, target },
        );
    }

    fn attach(&mut self, fd: OwnedFd, at: &Path, what: &str) {
        let target = self.inside(at);
        self.step(
            format!("mount {what} on {}", at.display()),
            Op::Attach { fd, target },
        );
    }

    fn mkdir(&mut self, at: &Path, mode: libc::mode_t) {
        let path = self.inside(at);
        self.step(format!("create {}", at.display()), Op::Mkdir { path, mode });
    }

    fn mkdirs_above(&mut self, at: &Path) {
        let mut p = PathBuf::from("/");
        let comps: Vec<_> = at.components().collect();
        for comp in comps.iter().take(comps.len().saturating_sub(1)) {
            if let Component::Normal(n) = comp {
                p.push(n);
                self.mkdir(&p.clone(), 0o755);
            }
        }
    }

    fn mkfile(&mut self, at: &Path) {
        let path = self.inside(at);
        self.step(format!("create {}", at.display()), Op::Mkfile { path });
    }

    fn symlink(&mut self, to: &Path, at: &Path) {
        let (to, at_c) = (c_path(to), self.inside(at));
        self.step(
            format!("create the link {}", at.display()),
            Op::Symlink { to, at: at_c },
        );
    }
}

/// Everything the forked children need, made before the fork.
struct Prepared {
    userns: OwnedFd,
    flags: libc::c_int,
    new_root: CString,
    steps: Vec<Step>,
    errors_read: OwnedFd,
    errors_write: OwnedFd,
    dir: PathBuf,
}

/// Index of the pivot in error reports.
const STEP_ENTER: u32 = u32::MAX;
const STEP_PIVOT: u32 = u32::MAX - 1;

impl Prepared {
    /// Reports which step failed (for the parent's message) and returns the error.
    fn fail(&self, step: u32) -> std::io::Error {
        let e = std::io::Error::last_os_error();
        let errno = e.raw_os_error().unwrap_or(0);
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&step.to_ne_bytes());
        buf[4..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: writes 8 bytes from a stack buffer to an open pipe.
        unsafe {
            libc::write(
                self.errors_write.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
                8,
            )
        };
        e
    }

    /// Runs in the forked child before exec: enters the namespaces, forks the namespace's
    /// init (which sets up the file system and reaps), and returns in its child, which execs.
    /// The first child waits for the init and exits with its status.
    fn enter(&mut self) -> std::io::Result<()> {
        // SAFETY (whole function): raw system calls on data prepared before the fork.
        unsafe {
            libc::setsid();
            if libc::setns(self.userns.as_raw_fd(), libc::CLONE_NEWUSER) != 0
                || libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(0, 0, 0) != 0
                || libc::setresuid(0, 0, 0) != 0
            {
                return Err(self.fail(STEP_ENTER));
            }
            // Changing ids cleared the death signal: nothing outlives the server.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::unshare(self.flags) != 0 {
                return Err(self.fail(STEP_ENTER));
            }
            let init = raw_fork();
            if init < 0 {
                return Err(self.fail(STEP_ENTER));
            }
            if init > 0 {
                wait_and_exit(init);
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(self.fail(STEP_ENTER));
            }
            for (i, s) in self.steps.iter().enumerate() {
                if run_op(&s.op) != 0 {
                    return Err(self.fail(i as u32));
                }
            }
            if libc::chdir(self.new_root.as_ptr()) != 0
                || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
                || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
                || libc::chdir(c"/".as_ptr()) != 0
            {
                return Err(self.fail(STEP_PIVOT));
            }
            let cmd = raw_fork();
            if cmd < 0 {
                return Err(self.fail(STEP_ENTER));
            }
            if cmd > 0 {
                wait_and_exit(cmd);
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        }
        Ok(())
    }
}

/// Runs one set-up operation; 0 on success.
///
/// # Safety
/// Raw system calls only: safe between fork and exec.
unsafe fn run_op(op: &Op) -> libc::c_int {
    // SAFETY: see the function's contract.
    unsafe {
        match op {
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                *flags,
                data.as_ptr() as *const libc::c_void,
            ),
            Op::Bind { source, target } => libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ),
            Op::Attach { fd, target } => libc::syscall(
                libc::SYS_move_mount,
                fd.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            ) as libc::c_int,
            Op::Mkdir { path, mode } => {
                if libc::mkdir(path.as_ptr(), *mode) != 0
                    && *libc::__errno_location() != libc::EEXIST
                {
                    return -1;
                }
                // The umask must not narrow /tmp's mode; a directory that was there keeps its own.
                let _ = libc::chmod(path.as_ptr(), *mode);
                0
            }
            Op::Mkfile { path } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                    0o644 as libc::c_uint,
                );
                if fd < 0 {
                    return -1;
                }
                libc::close(fd)
            }
            Op::Symlink { to, at } => libc::symlink(to.as_ptr(), at.as_ptr()),
        }
    }
}

/// The namespace's reaper: closes every descriptor but the standard ones (the command's own
/// copies keep the parent's pipes open), waits for `child`, reaping whatever else ends, and
/// exits with its status (128 + signal when it was killed).
///
/// # Safety
/// Raw system calls only: safe between fork and exec.
unsafe fn wait_and_exit(child: libc::pid_t) -> ! {
    // SAFETY: see the function's contract.
    unsafe { wait_and_exit_inner(child) }
}

unsafe fn wait_and_exit_inner(child: libc::pid_t) -> ! {
    // SAFETY: see wait_and_exit.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        // A working directory on the host would pin the host's mount tree, with every build
        // root mounted in it at the time of the unshare, for as long as this process waits:
        // another build's file system would stay busy. At the old root it moves with the
        // pivot (or, after it, "/" is already the new root).
        libc::chdir(c"/".as_ptr());
        loop {
            let mut status = 0;
            let pid = libc::waitpid(-1, &mut status, 0);
            if pid == child {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    1
                };
                libc::_exit(code);
            }
            if pid < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(127);
            }
        }
    }
}

/// The step a confined child reported failing, as a message.
fn failed_step(read: OwnedFd, names: &[String]) -> Option<String> {
    // SAFETY: sets a flag on a descriptor this process owns.
    unsafe {
        let fl = libc::fcntl(read.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(read.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let mut buf = [0u8; 8];
    let mut f = std::fs::File::from(read);
    if f.read(&mut buf).ok()? != 8 {
        return None;
    }
    let step = u32::from_ne_bytes(buf[..4].try_into().ok()?);
    let errno = i32::from_ne_bytes(buf[4..].try_into().ok()?);
    let what = match step {
        STEP_ENTER => "enter the namespaces".to_string(),
        STEP_PIVOT => "switch to the new root".to_string(),
        n => names.get(n as usize)?.clone(),
    };
    Some(format!(
        "cannot {what}: {}",
        std::io::Error::from_raw_os_error(errno)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn sh(sb: &Sandbox, script: &str) -> Result<String> {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        // A stray variable of the caller's: it must not reach the command.
        c.env("HTTPLIB2_CA_CERTS", "/nonexistent");
        sb.run(&mut c)
            .map(|o| String::from_utf8_lossy(&o).into_owned())
    }

    #[test]
    fn the_root_is_slash_with_mapped_ids_and_a_clean_environment() {
        let root = crate::test_fixture::debian_root();
        let out = sh(
            &Sandbox::root(&root),
            "env | sort; id -u; cat /proc/self/uid_map; ls /proc | grep -c '^[0-9]'; \
             test -e /usr/lib/os-release && echo has-os-release; ls /dev",
        )
        .unwrap();
        let mut want: Vec<String> = CLEAN_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // The shell itself adds PWD.
        want.push("PWD=/".into());
        want.sort();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..want.len()],
            want.iter().map(String::as_str).collect::<Vec<_>>()[..],
            "{out}"
        );
        let rest = &lines[want.len()..];
        assert_eq!(rest[0], "0", "{out}");
        let map: Vec<u64> = rest[1]
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(map[0], 0);
        assert!(
            map[1] >= u64::from(HOST_ID_BASE) && map[2] == u64::from(IDS),
            "{out}"
        );
        // Only the sandbox's own processes: the shell, the listing and the init.
        assert!(rest[2].parse::<u32>().unwrap() <= 4, "{out}");
        assert_eq!(rest[3], "has-os-release");
        for d in DEVICES {
            assert!(rest.contains(&d), "{out}");
        }
    }

    #[test]
    fn host_files_are_out_of_reach_and_root_files_stay_root_owned() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = tempfile::tempdir_in("/var/tmp").unwrap();
        let canary = outside.path().join("canary");
        std::fs::write(&canary, "host").unwrap();
        let sb = Sandbox::host_tools(&root);
        let script = format!(
            "set -u; cd {r}; mkdir -p etc && echo made >etc/made && chmod 0640 etc/made; \
             if cat /etc/shadow >/dev/null 2>&1; then echo read-shadow; fi; \
             if echo x >>/etc/hostname 2>/dev/null; then echo wrote-etc; fi; \
             if test -e {c}; then echo sees-canary; fi; \
             if grep -qv -e 'lo:' -e '|' /proc/net/dev; then echo network; fi; \
             echo done",
            r = root.display(),
            c = canary.display()
        );
        let out = sh(&sb, &script).unwrap();
        assert_eq!(out.trim(), "done", "{out}");
        let made = std::fs::metadata(root.join("etc/made")).unwrap();
        assert_eq!((made.uid(), made.gid()), (0, 0));
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "host");
        // Failures of the command carry its output.
        let err = sh(&sb, "echo broken >&2; exit 3").unwrap_err().to_string();
        assert!(err.contains("broken"), "{err}");
    }

    #[test]
    fn local_repositories_are_found_in_lines() {
        let lines = [
            "deb [trusted=yes] copy:/srv/repo ./".to_string(),
            "deb file:///var/mirror bookworm main".to_string(),
            "deb [arch=amd64 trusted=yes] file:/x/y ./".to_string(),
            "deb http://deb.debian.org/debian bookworm main".to_string(),
        ];
        assert_eq!(
            local_repos(&lines),
            ["/srv/repo", "/var/mirror", "/x/y"].map(PathBuf::from)
        );
    }

    #[test]
    fn a_missing_root_is_a_clear_error() {
        let err = sh(&Sandbox::root(Path::new("/nonexistent/root")), "true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/root"), "{err}");
    }
}
