//! Thin wrappers over the `*at` system calls the root operations are made of.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the kernel answered ENOSYS to `openat2` (older than Linux 5.6), so the
/// component-by-component walk is used from then on without asking again.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);
/// Same for `fchmodat2` (Linux 6.6).
static NO_FCHMODAT2: AtomicBool = AtomicBool::new(false);

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `openat2(2)`; `None` when the kernel has no such call.
pub(super) fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> Option<io::Result<OwnedFd>> {
    if NO_OPENAT2.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = u64::from(mode);
    how.resolve = resolve;
    loop {
        // SAFETY: path is NUL-terminated and how is a valid open_how of the size given.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if rc >= 0 {
            // SAFETY: the kernel returned a new descriptor that nothing else owns.
            return Some(Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) }));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOSYS) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
                return None;
            }
            // A rename elsewhere in the tree raced the resolution of `..`; the kernel asks
            // for a retry rather than risk an escape.
            Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
            _ => return Some(Err(e)),
        }
    }
}

/// `openat(2)`.
pub(super) fn openat(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    })?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstatat(2)` without following a final symlink; an empty `name` stats `dir` itself.
pub(super) fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: st is written by the kernel before being read.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    // SAFETY: name is NUL-terminated, st is a valid stat buffer.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

pub(super) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: name is NUL-terminated.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

pub(super) fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

pub(super) fn mknodat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    mode: libc::mode_t,
    dev: libc::dev_t,
) -> io::Result<()> {
    // SAFETY: name is NUL-terminated.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) }).map(drop)
}

pub(super) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, rmdir: bool) -> io::Result<()> {
    let flags = if rmdir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: name is NUL-terminated.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

pub(super) fn renameat(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated.
    check(unsafe {
        libc::renameat(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
        )
    })
    .map(drop)
}

/// Links the inode `file` (an `O_PATH` descriptor) as `name` in `dir`.
pub(super) fn link_fd(file: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: the empty string and name are NUL-terminated.
    let rc = unsafe {
        libc::linkat(
            file.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    match check(rc) {
        // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the descriptor's /proc link names the same
        // inode for everyone else.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let proc = proc_fd(file.as_raw_fd(), None);
            // SAFETY: both paths are NUL-terminated.
            check(unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    proc.as_ptr(),
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            })
            .map(drop)
        }
        r => r.map(drop),
    }
}

pub(super) fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: buf is writable for its length.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf.resize(buf.len() * 2, 0);
    }
}

pub(super) fn fchownat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    uid: libc::uid_t,
    gid: libc::gid_t,
) -> io::Result<()> {
    // SAFETY: name is NUL-terminated.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

pub(super) fn utimensat(dir: BorrowedFd<'_>, name: &CStr, sec: i64, nsec: i64) -> io::Result<()> {
    let t = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    let times = [t, t];
    // SAFETY: name is NUL-terminated and times points to two timespecs.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// Changes the mode of `name` in `dir`, never through a symlink (whose mode Linux cannot
/// change: EOPNOTSUPP).
/// `fchmodat2` is tried only when `try_fchmodat2`.
pub(super) fn chmod_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    mode: libc::mode_t,
    try_fchmodat2: bool,
) -> io::Result<()> {
    if try_fchmodat2 && !NO_FCHMODAT2.load(Ordering::Relaxed) {
        // SAFETY: name is NUL-terminated.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fchmodat2,
                dir.as_raw_fd(),
                name.as_ptr(),
                mode,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
        NO_FCHMODAT2.store(true, Ordering::Relaxed);
    }
    // Before Linux 6.6: pin the inode with an O_PATH descriptor, refuse a symlink, and change
    // the mode through the descriptor's /proc link (which names that inode, not a path).
    let fd = openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    let st = lstat_at(fd.as_fd(), c"")?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    let proc = proc_fd(fd.as_raw_fd(), None);
    // SAFETY: proc is NUL-terminated.
    check(unsafe { libc::chmod(proc.as_ptr(), mode) }).map(drop)
}

/// `/proc/self/fd/N` or `/proc/self/fd/N/NAME`: the path of an open descriptor's inode (or of
/// an entry of the directory it is), for the calls that have no `*at` form.
pub(super) fn proc_fd(fd: RawFd, name: Option<&[u8]>) -> std::ffi::CString {
    let mut p = format!("/proc/self/fd/{fd}").into_bytes();
    if let Some(n) = name {
        p.push(b'/');
        p.extend_from_slice(n);
    }
    std::ffi::CString::new(p).expect("names hold no NUL")
}

/// Names of a directory's entries (without `.` and `..`) and whether each is a directory.
/// `fd` must be open for reading (not `O_PATH`); it is consumed.
pub(super) fn read_dir(fd: OwnedFd) -> io::Result<Vec<(Vec<u8>, bool)>> {
    use std::os::fd::IntoRawFd;
    let raw = fd.into_raw_fd();
    // SAFETY: raw is an open directory descriptor; on success the DIR owns it.
    let d = unsafe { libc::fdopendir(raw) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so raw is still ours to close.
        unsafe { libc::close(raw) };
        return Err(e);
    }
    let mut out = Vec::new();
    let result = loop {
        // readdir returns NULL both at the end and on error; errno tells them apart.
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: d is a valid DIR until closedir below.
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: the kernel NUL-terminates d_name; the entry lives until the next readdir.
        let (name, ty) = unsafe {
            (
                CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes().to_vec(),
                (*ent).d_type,
            )
        };
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match ty {
            libc::DT_DIR => true,
            // Filesystems that do not fill d_type are asked.
            libc::DT_UNKNOWN => {
                let c = std::ffi::CString::new(name.clone()).expect("no NUL in a name");
                // SAFETY: d is valid, so is its descriptor, which stays owned by d.
                let dfd = unsafe { BorrowedFd::borrow_raw(libc::dirfd(d)) };
                match lstat_at(dfd, &c) {
                    Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFDIR,
                    Err(e) => break Err(e),
                }
            }
            _ => false,
        };
        out.push((name, is_dir));
    };
    // SAFETY: d came from fdopendir and is closed once.
    unsafe { libc::closedir(d) };
    result.map(|()| out)
}
