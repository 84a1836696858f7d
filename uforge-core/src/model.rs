//! The data a scan records: machine facts, native packages and every file.
//!
//! These types are shared by the native report codec, the JSON form and every frontend. Paths
//! are raw bytes ([`RawPath`]) because Linux file names are not guaranteed to be UTF-8.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A path exactly as the kernel sees it: raw bytes, absolute within the scanned root
/// (`/etc/passwd`), never lossily converted.
pub type RawPath = Vec<u8>;

/// Everything a scan learned about the machine, apart from its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Operating system, from os-release.
    pub os: OsInfo,
    /// Machine architecture in kernel naming (`x86_64`, `aarch64`...), of the scanned root.
    pub arch: String,
    /// The package manager's own name for the architecture (`amd64` for dpkg), if known.
    pub package_arch: Option<String>,
    /// Kernels installed in the scanned root.
    pub kernels: Vec<Kernel>,
    /// Mounted or configured filesystems.
    pub mounts: Vec<Mount>,
    /// Block devices and partitions (live scans only: read from sysfs).
    pub partitions: Vec<Partition>,
    /// Time zone name (`Europe/Paris`), if configured.
    pub timezone: Option<String>,
    /// Console keyboard configuration, if configured.
    pub keyboard: Option<Keyboard>,
    /// System locale (`LANG`), if configured.
    pub locale: Option<String>,
    /// Host name, if configured.
    pub hostname: Option<String>,
    /// Network configuration, one entry per configured interface.
    pub network: Vec<NetworkInterface>,
    /// Local users from the scanned root's `/etc/passwd` (no password data).
    pub users: Vec<User>,
    /// Local groups from the scanned root's `/etc/group`.
    pub groups: Vec<Group>,
}

/// Operating system identity from `/etc/os-release` (or `/usr/lib/os-release`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    /// `ID` (`debian`, `ubuntu`, `rhel`...).
    pub id: Option<String>,
    /// `VERSION_ID` (`12`).
    pub version_id: Option<String>,
    /// `VERSION_CODENAME` (`bookworm`).
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// `ID_LIKE`, split on whitespace.
    pub id_like: Vec<String>,
}

/// An installed kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kernel {
    /// Kernel release (`6.1.0-28-amd64`).
    pub version: String,
    /// Path of the kernel image, if present (`/boot/vmlinuz-6.1.0-28-amd64`).
    pub image: Option<String>,
    /// Path of the initial ramdisk, if present.
    pub initrd: Option<String>,
    /// Whether `/lib/modules/VERSION` exists.
    pub has_modules: bool,
    /// Package that owns the kernel image, if known.
    pub package: Option<String>,
}

/// A mounted (live scan) or configured (`/etc/fstab`) filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// What is mounted: a device, `UUID=...`, `LABEL=...`, a remote share.
    pub source: String,
    /// Mount point.
    pub target: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount options, comma separated as in fstab.
    pub options: String,
    /// Filesystem UUID when known.
    pub uuid: Option<String>,
    /// Where the entry came from: `mountinfo` or `fstab`.
    pub origin: String,
}

/// A block device or partition seen in sysfs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Kernel name (`vda1`).
    pub name: String,
    /// Parent disk for a partition (`vda`).
    pub parent: Option<String>,
    /// Partition number, for a partition.
    pub number: Option<u32>,
    /// Size in bytes.
    pub size: u64,
    /// Filesystem UUID when known.
    pub uuid: Option<String>,
    /// Filesystem type when known.
    pub fstype: Option<String>,
}

/// Console keyboard settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyboard {
    /// Layout (`fr`), or a console keymap name (`fr-latin9`) on systems configured that way.
    pub layout: String,
    /// Layout variant, if any.
    pub variant: Option<String>,
    /// Keyboard model, if any.
    pub model: Option<String>,
    /// XKB options, if any.
    pub options: Option<String>,
}

/// How an interface gets its addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMethod {
    /// Fixed addresses.
    Static,
    /// DHCP (v4, v6 or both).
    Dhcp,
    /// IPv6 stateless autoconfiguration.
    Auto,
    /// The loopback interface.
    Loopback,
    /// Brought up without addresses, or configured by hand.
    #[default]
    Manual,
}

/// The configuration of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Interface name (`ens3`), or the connection id where no name is set.
    pub name: String,
    /// Where it was configured: `ifupdown`, `netplan`, `networkmanager`, `networkd`, `ifcfg`.
    pub source: String,
    /// Configuration file it came from.
    pub file: String,
    /// Addressing method.
    pub method: NetMethod,
    /// Static addresses in CIDR form (`192.0.2.10/24`).
    pub addresses: Vec<String>,
    /// Default gateway, if any.
    pub gateway: Option<String>,
    /// DNS servers.
    pub dns: Vec<String>,
    /// Hardware address the configuration is bound to, if any.
    pub mac: Option<String>,
}

/// A local user account. Password hashes are never recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// GECOS field.
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

/// A local group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Supplementary members.
    pub members: Vec<String>,
}

/// A native package installed on the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Exact version (`1.22.1-9+deb12u1`).
    pub version: String,
    /// Package architecture (`amd64`, `all`).
    pub arch: String,
    /// Package manager (`dpkg`).
    pub manager: String,
    /// The package manager's state (`installed`, `config-files`, `half-configured`...).
    pub status: String,
    /// Source package name when it differs from the binary name.
    pub source: Option<String>,
    /// Whether it was installed only as a dependency (`apt-mark showauto`).
    pub auto: bool,
}

/// What kind of filesystem object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A further name of a regular file already recorded (same inode).
    Hardlink,
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
    /// A character device.
    Char,
    /// A block device.
    Block,
}

impl FileKind {
    /// The name used in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Hardlink => "hardlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::Char => "char",
            FileKind::Block => "block",
        }
    }
}

/// One filesystem object of the scanned root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Absolute path within the scanned root, raw bytes.
    #[serde(with = "serde_bytes")]
    pub path: RawPath,
    /// Kind of object.
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name from the scanned root's `/etc/passwd`, if it has one.
    pub user: Option<String>,
    /// Group name from the scanned root's `/etc/group`, if it has one.
    pub group: Option<String>,
    /// Size in bytes (`st_size`).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// SHA-256 of the content, for regular files and hard links.
    pub sha256: Option<[u8; 32]>,
    /// Symlink target, or for a hard link the path of the first name of the inode.
    #[serde(with = "serde_bytes")]
    pub target: Option<RawPath>,
    /// Device number `(major, minor)` of a character or block device.
    pub rdev: Option<(u32, u32)>,
    /// Extended attributes (including `security.capability`), name to raw value.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Name of the package that owns the path, if any.
    pub package: Option<String>,
    /// Bytes actually allocated on disk (`st_blocks * 512`); far below `size` for sparse files.
    pub allocated: u64,
}

/// A path the scan could not record fully, and why. A scan never aborts on one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanError {
    /// The path concerned.
    #[serde(with = "serde_bytes")]
    pub path: RawPath,
    /// What failed (`read`, `stat`, `readdir`, `vanished`, `xattr`...).
    pub op: String,
    /// The error message.
    pub message: String,
}

/// Why and how a path was left out of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclude {
    /// Path within the scanned root.
    #[serde(with = "serde_bytes")]
    pub path: RawPath,
    /// `true` when only the directory's contents are skipped and the directory itself is kept
    /// (so it is recreated with its metadata), `false` when the path is skipped entirely.
    pub contents_only: bool,
    /// Why it was excluded (`pseudo filesystem`, `temporary files`, `user`...).
    pub reason: String,
}

/// How a scan was run: stated in the report so that a reader knows what it does not cover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanInfo {
    /// The scanned root as given on the command line.
    #[serde(with = "serde_bytes")]
    pub root: RawPath,
    /// Whether the running system itself was scanned (root `/`), which enables live facts.
    pub live: bool,
    /// Scan start, seconds since the epoch.
    pub started: i64,
    /// Tool that wrote the report (`uforge-scan 0.1.0`).
    pub tool: String,
    /// Everything left out.
    pub excludes: Vec<Exclude>,
}

/// Totals over a finished scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanStats {
    /// Entries recorded.
    pub entries: u64,
    /// Regular files recorded (hard links not counted).
    pub files: u64,
    /// Directories recorded.
    pub dirs: u64,
    /// Bytes of regular file content hashed.
    pub bytes: u64,
    /// Entries owned by a package.
    pub packaged: u64,
    /// Errors recorded.
    pub errors: u64,
    /// Wall time of the scan in milliseconds.
    pub duration_ms: u64,
}

/// The part of a report that precedes its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportHeader {
    /// How the scan was run.
    pub scan: ScanInfo,
    /// Machine facts.
    pub machine: Machine,
    /// Native packages.
    pub packages: Vec<Package>,
}

/// The part of a report that follows its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportTrailer {
    /// Paths that could not be recorded.
    pub errors: Vec<ScanError>,
    /// Totals.
    pub stats: ScanStats,
}

/// A whole report in memory. Large reports are better read as a stream
/// ([`crate::report::ReportReader`]); this form is for small roots and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Header: scan info, machine, packages.
    pub header: ReportHeader,
    /// Every recorded file, in scan order.
    pub files: Vec<FileEntry>,
    /// Trailer: errors and totals.
    pub trailer: ReportTrailer,
}
