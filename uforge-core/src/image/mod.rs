//! Building machine images from a scan (black-box migration).
//!
//! A build installs the scanned package set at the scanned versions into a fresh root
//! ([`install`]), makes that root equal to the scanned machine file by file with the overlay's
//! contents ([`reconcile`]), tunes it for the target platform and records every change
//! ([`tune`]), and writes it in the requested [`Format`] ([`ImageFormat`]). [`verify`] reads a
//! finished image back and lists every difference from the scan that the tuning log does not
//! explain.
//!
//! Disk images are built directly on the root partition of a GPT disk ([`disk`]), so the files
//! are written once; container and archive formats are built in a plain directory.

pub mod build;
pub mod chroot;
pub mod cmd;
pub mod container;
pub mod convert;
pub mod disk;
pub mod from_overlay;
pub mod install;
pub mod naming;
pub mod reconcile;
pub mod sandbox;
pub mod tune;
pub mod tuning_log;
pub mod verify;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::Machine;
use crate::{Error, Result};

pub use build::{
    build, build_with, check_space, phase_step, BuildResult, BuildSpec, Output, Populate, Prepared,
    PHASES,
};
pub use from_overlay::build_from_overlay;
pub use tuning_log::{TuningChange, TuningLog, TuningPackage, TuningStep};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Raw disk, GPT partitioned, bootable by BIOS and UEFI.
    Raw,
    /// QEMU copy-on-write v2 (KVM, OpenStack).
    Qcow2,
    /// VMware stream-optimized VMDK.
    Vmdk,
    /// Fixed VHD with a 1 MiB aligned size (Azure).
    Vhd,
    /// Hyper-V VHDX.
    Vhdx,
    /// VirtualBox VDI.
    Vdi,
    /// Open Virtualization Appliance: OVF descriptor, manifest and stream-optimized VMDK.
    Ova,
    /// OCI image layout, as a tar archive (`oci-archive`).
    Oci,
    /// `docker save` style archive, loadable with `docker load`.
    DockerArchive,
    /// Gzip-compressed tar of the root filesystem.
    TarGz,
}

impl Format {
    /// Every format, in the order help texts list them.
    pub const ALL: [Format; 10] = [
        Format::Raw,
        Format::Qcow2,
        Format::Vmdk,
        Format::Vhd,
        Format::Vhdx,
        Format::Vdi,
        Format::Ova,
        Format::Oci,
        Format::DockerArchive,
        Format::TarGz,
    ];

    /// The name used on command lines and in the API (`qcow2`, `docker-archive`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Vdi => "vdi",
            Format::Ova => "ova",
            Format::Oci => "oci",
            Format::DockerArchive => "docker-archive",
            Format::TarGz => "tar.gz",
        }
    }

    /// File name extension of images in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Oci => "oci.tar",
            Format::DockerArchive => "docker.tar",
            other => other.name(),
        }
    }

    /// Whether the format holds a bootable disk (kernel, bootloader, fstab, network tuning),
    /// rather than a root tree for a container runtime or an unpacker.
    pub fn is_disk(self) -> bool {
        !matches!(self, Format::Oci | Format::DockerArchive | Format::TarGz)
    }

    /// The target assumed when none is given.
    pub fn default_target(self) -> Target {
        match self {
            Format::Oci | Format::DockerArchive => Target::Container,
            Format::TarGz => Target::None,
            Format::Vmdk | Format::Ova => Target::Vmware,
            Format::Vhd | Format::Vhdx => Target::Azure,
            _ => Target::Kvm,
        }
    }

    /// The writer for this format.
    pub fn writer(self) -> Box<dyn ImageFormat> {
        if self.is_disk() {
            Box::new(convert::DiskFormat(self))
        } else {
            Box::new(container::TreeFormat(self))
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.to_ascii_lowercase();
        let alias = match s.as_str() {
            "img" => "raw",
            "tgz" | "targz" => "tar.gz",
            "docker" => "docker-archive",
            "oci-archive" => "oci",
            other => other,
        };
        Format::ALL
            .into_iter()
            .find(|f| f.name() == alias)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown image format `{s}`; known formats: {}",
                    Format::ALL.map(|f| f.name()).join(", ")
                ))
            })
    }
}

/// The platform an image is made for: it decides the agents installed and what the tuning
/// assumes about hardware and network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Plain KVM/QEMU or libvirt: the QEMU guest agent.
    Kvm,
    /// OpenStack: cloud-init.
    Openstack,
    /// Amazon EC2: cloud-init.
    Aws,
    /// Google Compute Engine: cloud-init.
    Gcp,
    /// Microsoft Azure: the Azure Linux agent.
    Azure,
    /// VMware vSphere: open-vm-tools.
    Vmware,
    /// A container runtime: no kernel, bootloader, fstab or network tuning.
    Container,
    /// No particular platform: no agents.
    None,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 8] = [
        Target::Kvm,
        Target::Openstack,
        Target::Aws,
        Target::Gcp,
        Target::Azure,
        Target::Vmware,
        Target::Container,
        Target::None,
    ];

    /// The name used on command lines and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Target::Kvm => "kvm",
            Target::Openstack => "openstack",
            Target::Aws => "aws",
            Target::Gcp => "gcp",
            Target::Azure => "azure",
            Target::Vmware => "vmware",
            Target::Container => "container",
            Target::None => "none",
        }
    }

    /// Debian packages of the agents this platform needs, installed when the repositories
    /// have them.
    pub fn agents(self) -> &'static [&'static str] {
        match self {
            Target::Kvm => &["qemu-guest-agent"],
            Target::Openstack | Target::Aws | Target::Gcp => &["cloud-init"],
            Target::Azure => &["walinuxagent"],
            Target::Vmware => &["open-vm-tools"],
            Target::Container | Target::None => &[],
        }
    }

    /// Kernel modules the platform's boot disk needs before the root filesystem is mounted,
    /// so they must be in the initramfs (network drivers load later, from the root).
    pub fn drivers(self) -> &'static [&'static str] {
        match self {
            Target::Kvm | Target::Openstack | Target::Gcp => {
                &["virtio_pci", "virtio_blk", "virtio_scsi", "ahci"]
            }
            Target::Aws => &["nvme", "xen_blkfront", "virtio_blk"],
            Target::Azure => &["hv_vmbus", "hv_storvsc"],
            Target::Vmware => &["vmw_pvscsi", "mptspi", "ahci"],
            Target::Container | Target::None => &[],
        }
    }

    /// Whether the image runs in a container runtime.
    pub fn is_container(self) -> bool {
        self == Target::Container
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.to_ascii_lowercase();
        let alias = match s.as_str() {
            "qemu" | "libvirt" => "kvm",
            "ec2" => "aws",
            "gce" => "gcp",
            "vsphere" | "esxi" => "vmware",
            "docker" | "oci" => "container",
            other => other,
        };
        Target::ALL
            .into_iter()
            .find(|t| t.name() == alias)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown image target `{s}`; known targets: {}",
                    Target::ALL.map(|t| t.name()).join(", ")
                ))
            })
    }
}

/// How the network configuration of the source is carried over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkPolicy {
    /// Follow the source: static addresses stay static, DHCP stays DHCP.
    #[default]
    Keep,
    /// Replace every interface's configuration with DHCP.
    Dhcp,
}

impl NetworkPolicy {
    /// The name used on command lines and in the API (`keep`, `dhcp`).
    pub fn name(self) -> &'static str {
        match self {
            NetworkPolicy::Keep => "keep",
            NetworkPolicy::Dhcp => "dhcp",
        }
    }
}

impl fmt::Display for NetworkPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NetworkPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "keep" | "source" => Ok(NetworkPolicy::Keep),
            "dhcp" => Ok(NetworkPolicy::Dhcp),
            other => Err(Error::Invalid(format!(
                "unknown network policy `{other}`; use `keep` or `dhcp`"
            ))),
        }
    }
}

/// What a format writer gets once the root is built and tuned.
#[derive(Debug)]
pub struct Staged<'a> {
    /// The finished root tree (for disk formats: already unmounted, do not read).
    pub root: &'a Path,
    /// The raw GPT disk holding the root, for disk formats.
    pub disk: Option<&'a Path>,
    /// A name for the image (the scanned host name, or `uforge-image`).
    pub name: &'a str,
    /// The scanned machine, for descriptors (OVF hardware, OCI config).
    pub machine: &'a Machine,
    /// The target the image was tuned for.
    pub target: Target,
}

/// How an image file of one format is written from a built root or disk.
///
/// Implementations decide what the tuning has to produce: [`ImageFormat::bootable`] formats get
/// a kernel, an initramfs with the target's drivers, a bootloader, an fstab and network tuning;
/// the others get a plain root tree.
pub trait ImageFormat: Send + Sync {
    /// The format written.
    fn format(&self) -> Format;
    /// Whether the image boots a machine (and so needs kernel, bootloader and fstab).
    fn bootable(&self) -> bool {
        self.format().is_disk()
    }
    /// Writes the image to `out`, which does not exist yet. On error `out` may hold a partial
    /// file; the caller removes it.
    fn write(&self, staged: &Staged<'_>, out: &Path) -> Result<()>;
}
