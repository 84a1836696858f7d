//! Python classes for what a report holds: machine facts, packages, file entries.
//!
//! Small records are copied into plain frozen classes when asked for. File entries are not:
//! [`FileEntry`] wraps core's entry and converts a field only when Python reads it, and
//! [`FileIterator`] decodes entries one at a time, so a report of a million files never becomes
//! a million Python objects at once.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use uforge_core::model;
use uforge_core::report::json::hex;
use uforge_core::report::ReportReader;

use crate::convert::Raw;
use crate::errors::to_py;

/// Declares a frozen Python record class with read-only attributes, value equality, hashing
/// and a `Name(field=value, ...)` repr.
macro_rules! record {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[pyclass(frozen, get_all, eq, hash, module = "uforge")]
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        #[pymethods]
        impl $name {
            fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
                let fields: PyResult<Vec<String>> = [$(stringify!($field)),*]
                    .iter()
                    .map(|f| Ok(format!("{f}={}", slf.getattr(*f)?.repr()?)))
                    .collect();
                Ok(format!("{}({})", stringify!($name), fields?.join(", ")))
            }
        }
    };
}
pub(crate) use record;

record! {
    /// Operating system identity, from os-release.
    OsInfo {
        /// `ID` (`debian`, `ubuntu`...), or None.
        id: Option<String>,
        /// `VERSION_ID` (`12`), or None.
        version_id: Option<String>,
        /// `VERSION_CODENAME` (`bookworm`), or None.
        version_codename: Option<String>,
        /// `PRETTY_NAME`, or None.
        pretty_name: Option<String>,
        /// `ID_LIKE`, split on whitespace.
        id_like: Vec<String>,
    }
}

record! {
    /// Console keyboard settings.
    Keyboard {
        /// Layout (`fr`), or a console keymap name.
        layout: String,
        /// Layout variant, or None.
        variant: Option<String>,
        /// Keyboard model, or None.
        model: Option<String>,
        /// XKB options, or None.
        options: Option<String>,
    }
}

record! {
    /// An installed kernel.
    Kernel {
        /// Kernel release (`6.1.0-28-amd64`).
        version: String,
        /// Path of the kernel image, or None.
        image: Option<String>,
        /// Path of the initial ramdisk, or None.
        initrd: Option<String>,
        /// Whether `/lib/modules/VERSION` exists.
        has_modules: bool,
        /// Package owning the image, or None.
        package: Option<String>,
    }
}

record! {
    /// A mounted (live scan) or configured (fstab) filesystem.
    Mount {
        /// What is mounted: a device, `UUID=...`, a remote share.
        source: String,
        /// Mount point.
        target: String,
        /// Filesystem type.
        fstype: String,
        /// Mount options, comma separated.
        options: String,
        /// Filesystem UUID, or None.
        uuid: Option<String>,
        /// Where the entry came from: `mountinfo` or `fstab`.
        origin: String,
    }
}

record! {
    /// A block device or partition (live scans only).
    Partition {
        /// Kernel name (`vda1`).
        name: String,
        /// Parent disk of a partition, or None.
        parent: Option<String>,
        /// Partition number, or None.
        number: Option<u32>,
        /// Size in bytes.
        size: u64,
        /// Filesystem UUID, or None.
        uuid: Option<String>,
        /// Filesystem type, or None.
        fstype: Option<String>,
    }
}

record! {
    /// The configuration of one network interface.
    NetworkInterface {
        /// Interface name (`ens3`), or the connection id where no name is set.
        name: String,
        /// Configuration system: `ifupdown`, `netplan`, `networkmanager`, `networkd`, `ifcfg`.
        source: String,
        /// Configuration file it came from.
        file: String,
        /// `static`, `dhcp`, `auto`, `loopback` or `manual`.
        method: String,
        /// Static addresses in CIDR form.
        addresses: Vec<String>,
        /// Default gateway, or None.
        gateway: Option<String>,
        /// DNS servers.
        dns: Vec<String>,
        /// Hardware address the configuration is bound to, or None.
        mac: Option<String>,
    }
}

record! {
    /// A local user (no password data).
    User {
        /// Login name.
        name: String,
        /// User id.
        uid: u32,
        /// Primary group id.
        gid: u32,
        /// GECOS field.
        gecos: String,
        /// Home directory.
        home: String,
        /// Login shell.
        shell: String,
    }
}

record! {
    /// A local group.
    Group {
        /// Group name.
        name: String,
        /// Group id.
        gid: u32,
        /// Supplementary members.
        members: Vec<String>,
    }
}

record! {
    /// Everything a scan learned about the machine, apart from its files.
    Machine {
        /// Operating system identity.
        os: OsInfo,
        /// Architecture in kernel naming (`x86_64`).
        arch: String,
        /// The package manager's name for it (`amd64`), or None.
        package_arch: Option<String>,
        /// Installed kernels.
        kernels: Vec<Kernel>,
        /// Mounted or configured filesystems.
        mounts: Vec<Mount>,
        /// Block devices and partitions.
        partitions: Vec<Partition>,
        /// Time zone (`Europe/Paris`), or None.
        timezone: Option<String>,
        /// Console keyboard, or None.
        keyboard: Option<Keyboard>,
        /// System locale (`LANG`), or None.
        locale: Option<String>,
        /// Host name, or None.
        hostname: Option<String>,
        /// Network configuration, one entry per interface.
        network: Vec<NetworkInterface>,
        /// Local users.
        users: Vec<User>,
        /// Local groups.
        groups: Vec<Group>,
    }
}

record! {
    /// A native package installed on the machine.
    Package {
        /// Package name.
        name: String,
        /// Exact version (`1.22.1-9+deb12u1`).
        version: String,
        /// Package architecture (`amd64`, `all`).
        arch: String,
        /// Package manager (`dpkg`).
        manager: String,
        /// The package manager's state (`installed`, `config-files`...).
        status: String,
        /// Source package name when it differs from the binary name, or None.
        source: Option<String>,
        /// Whether it was installed only as a dependency.
        auto: bool,
    }
}

record! {
    /// A path the scan (or an overlay) could not record fully, and why.
    ScanError {
        /// The in-root path concerned (bytes).
        path: Raw,
        /// What failed (`read`, `stat`, `vanished`...).
        op: String,
        /// The error message.
        message: String,
    }
}

record! {
    /// A path left out of the scan.
    Exclude {
        /// In-root path (bytes).
        path: Raw,
        /// True when only the directory's contents are skipped, the directory itself kept.
        contents_only: bool,
        /// Why (`pseudo filesystem`, `temporary files`, `excluded by the user`...).
        reason: String,
    }
}

record! {
    /// How a scan was run.
    ScanInfo {
        /// The scanned root as given (bytes).
        root: Raw,
        /// Whether the running system itself was scanned.
        live: bool,
        /// Scan start, seconds since the epoch.
        started: i64,
        /// Program that wrote the report.
        tool: String,
        /// Everything left out.
        excludes: Vec<Exclude>,
    }
}

/// The lower-case name serde gives a core enum (`dhcp`, `content`...): core's own spelling.
pub fn enum_name(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn opt(s: &Option<String>) -> Option<String> {
    s.clone()
}

impl From<&model::Machine> for Machine {
    fn from(m: &model::Machine) -> Self {
        Machine {
            os: OsInfo {
                id: opt(&m.os.id),
                version_id: opt(&m.os.version_id),
                version_codename: opt(&m.os.version_codename),
                pretty_name: opt(&m.os.pretty_name),
                id_like: m.os.id_like.clone(),
            },
            arch: m.arch.clone(),
            package_arch: opt(&m.package_arch),
            kernels: m
                .kernels
                .iter()
                .map(|k| Kernel {
                    version: k.version.clone(),
                    image: opt(&k.image),
                    initrd: opt(&k.initrd),
                    has_modules: k.has_modules,
                    package: opt(&k.package),
                })
                .collect(),
            mounts: m
                .mounts
                .iter()
                .map(|x| Mount {
                    source: x.source.clone(),
                    target: x.target.clone(),
                    fstype: x.fstype.clone(),
                    options: x.options.clone(),
                    uuid: opt(&x.uuid),
                    origin: x.origin.clone(),
                })
                .collect(),
            partitions: m
                .partitions
                .iter()
                .map(|p| Partition {
                    name: p.name.clone(),
                    parent: opt(&p.parent),
                    number: p.number,
                    size: p.size,
                    uuid: opt(&p.uuid),
                    fstype: opt(&p.fstype),
                })
                .collect(),
            timezone: opt(&m.timezone),
            keyboard: m.keyboard.as_ref().map(|k| Keyboard {
                layout: k.layout.clone(),
                variant: opt(&k.variant),
                model: opt(&k.model),
                options: opt(&k.options),
            }),
            locale: opt(&m.locale),
            hostname: opt(&m.hostname),
            network: m
                .network
                .iter()
                .map(|n| NetworkInterface {
                    name: n.name.clone(),
                    source: n.source.clone(),
                    file: n.file.clone(),
                    method: enum_name(&n.method),
                    addresses: n.addresses.clone(),
                    gateway: opt(&n.gateway),
                    dns: n.dns.clone(),
                    mac: opt(&n.mac),
                })
                .collect(),
            users: m
                .users
                .iter()
                .map(|u| User {
                    name: u.name.clone(),
                    uid: u.uid,
                    gid: u.gid,
                    gecos: u.gecos.clone(),
                    home: u.home.clone(),
                    shell: u.shell.clone(),
                })
                .collect(),
            groups: m
                .groups
                .iter()
                .map(|g| Group {
                    name: g.name.clone(),
                    gid: g.gid,
                    members: g.members.clone(),
                })
                .collect(),
        }
    }
}

impl From<&model::Package> for Package {
    fn from(p: &model::Package) -> Self {
        Package {
            name: p.name.clone(),
            version: p.version.clone(),
            arch: p.arch.clone(),
            manager: p.manager.clone(),
            status: p.status.clone(),
            source: opt(&p.source),
            auto: p.auto,
        }
    }
}

impl From<&model::ScanError> for ScanError {
    fn from(e: &model::ScanError) -> Self {
        ScanError {
            path: Raw(e.path.clone()),
            op: e.op.clone(),
            message: e.message.clone(),
        }
    }
}

impl From<&model::ScanInfo> for ScanInfo {
    fn from(s: &model::ScanInfo) -> Self {
        ScanInfo {
            root: Raw(s.root.clone()),
            live: s.live,
            started: s.started,
            tool: s.tool.clone(),
            excludes: s
                .excludes
                .iter()
                .map(|e| Exclude {
                    path: Raw(e.path.clone()),
                    contents_only: e.contents_only,
                    reason: e.reason.clone(),
                })
                .collect(),
        }
    }
}

/// One filesystem object of the scanned root. Attributes are converted when read.
#[pyclass(frozen, eq, module = "uforge")]
#[derive(Clone, Debug, PartialEq)]
pub struct FileEntry(pub model::FileEntry);

#[pymethods]
impl FileEntry {
    /// Absolute in-root path, raw bytes (`b"/etc/passwd"`).
    #[getter]
    fn path<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.path)
    }

    /// The path as text, or None when it is not valid UTF-8.
    #[getter]
    fn path_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0.path).ok()
    }

    /// `file`, `dir`, `symlink`, `hardlink`, `fifo`, `socket`, `char` or `block`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.0.kind.as_str()
    }

    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    #[getter]
    fn mode(&self) -> u32 {
        self.0.mode
    }

    /// Owner id.
    #[getter]
    fn uid(&self) -> u32 {
        self.0.uid
    }

    /// Group id.
    #[getter]
    fn gid(&self) -> u32 {
        self.0.gid
    }

    /// Owner name from the scanned root's passwd, or None.
    #[getter]
    fn user(&self) -> Option<&str> {
        self.0.user.as_deref()
    }

    /// Group name from the scanned root's group file, or None.
    #[getter]
    fn group(&self) -> Option<&str> {
        self.0.group.as_deref()
    }

    /// Size in bytes (`st_size`).
    #[getter]
    fn size(&self) -> u64 {
        self.0.size
    }

    /// Bytes allocated on disk; below `size` for sparse files.
    #[getter]
    fn allocated(&self) -> u64 {
        self.0.allocated
    }

    /// Modification time, seconds since the epoch.
    #[getter]
    fn mtime(&self) -> i64 {
        self.0.mtime
    }

    /// Nanoseconds part of the modification time.
    #[getter]
    fn mtime_nsec(&self) -> u32 {
        self.0.mtime_nsec
    }

    /// SHA-256 of the content in lower-case hex (regular files and hard links), else None.
    #[getter]
    fn sha256(&self) -> Option<String> {
        self.0.sha256.map(|d| hex(&d))
    }

    /// Symlink target, or for a hard link the path of the inode's first name (bytes), or None.
    #[getter]
    fn target<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.0.target.as_deref().map(|t| PyBytes::new(py, t))
    }

    /// `(major, minor)` of a character or block device, else None.
    #[getter]
    fn rdev(&self) -> Option<(u32, u32)> {
        self.0.rdev
    }

    /// Extended attributes (file capabilities included): name to raw value.
    #[getter]
    fn xattrs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.0.xattrs {
            d.set_item(k, PyBytes::new(py, v))?;
        }
        Ok(d)
    }

    /// Name of the package owning the path, or None.
    #[getter]
    fn package(&self) -> Option<&str> {
        self.0.package.as_deref()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "FileEntry(path={}, kind='{}', size={}, package={})",
            PyBytes::new(py, &self.0.path).repr()?,
            self.0.kind.as_str(),
            self.0.size,
            self.0.package.as_deref().into_pyobject(py)?.repr()?,
        ))
    }
}

/// Iterates over a report's file entries in scan order, decoding one entry per step.
#[pyclass(frozen, module = "uforge")]
pub struct FileIterator {
    reader: Mutex<ReportReader>,
}

impl FileIterator {
    /// An iterator over the files of `reader`.
    pub fn new(reader: ReportReader) -> Self {
        FileIterator {
            reader: Mutex::new(reader),
        }
    }
}

#[pymethods]
impl FileIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self) -> PyResult<Option<FileEntry>> {
        let mut r = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        Ok(r.next_file().map_err(to_py)?.map(FileEntry))
    }
}
