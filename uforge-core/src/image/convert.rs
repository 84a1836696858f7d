//! Disk formats: the raw GPT disk converted with `qemu-img`, and the OVA package.

pub(crate) mod ova;

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{cmd, Format, ImageFormat, Staged};
use crate::{Error, Result};

/// Azure accepts only VHDs whose virtual size is a whole number of MiB.
const MIB: u64 = 1 << 20;

/// Writer of a disk format from the raw disk.
#[derive(Debug, Clone, Copy)]
pub struct DiskFormat(pub Format);

impl ImageFormat for DiskFormat {
    fn format(&self) -> Format {
        self.0
    }

    /// Converts the raw disk `staged.disk` to `out` with `qemu-img` (package `qemu-utils`):
    /// - `raw`: a sparse copy;
    /// - `qcow2`: uncompressed, holding only allocated clusters;
    /// - `vmdk`: stream-optimized (what vSphere imports), LSI Logic adapter;
    /// - `vhd`: fixed, with the exact size of the raw disk, which must be a whole number of MiB
    ///   (Azure's rule); the file is that size plus the 512-byte footer;
    /// - `vhdx`, `vdi`: dynamic;
    /// - `ova`: a ustar archive of the OVF descriptor, a manifest of SHA-256 digests and the
    ///   stream-optimized disk, describing a VM of 2 vCPUs and 2048 MiB with the disk on an
    ///   LSI Logic SCSI controller and a VMXNET3 network adapter.
    fn write(&self, staged: &Staged<'_>, out: &Path) -> Result<()> {
        let disk = staged.disk.ok_or_else(|| {
            Error::Invalid(format!(
                "the {} writer needs the raw disk of the image, and none was given",
                self.0
            ))
        })?;
        let size = disk_size(disk)?;
        cmd::require("qemu-img", "qemu-utils")?;
        match self.0 {
            Format::Raw => convert(disk, out, "raw", &[]),
            Format::Qcow2 => convert(disk, out, "qcow2", &[]),
            Format::Vmdk => convert(disk, out, "vmdk", VMDK_OPTIONS),
            Format::Vhd => {
                if !size.is_multiple_of(MIB) {
                    return Err(Error::Invalid(format!(
                        "raw disk {} is {size} bytes, not a whole number of MiB, which Azure \
                         requires of a VHD",
                        disk.display()
                    )));
                }
                convert(disk, out, "vpc", &["-o", "subformat=fixed,force_size=on"])
            }
            Format::Vhdx => convert(disk, out, "vhdx", &["-o", "subformat=dynamic"]),
            Format::Vdi => convert(disk, out, "vdi", &[]),
            Format::Ova => ova::write(staged, disk, size, out),
            other => Err(Error::Invalid(format!(
                "{other} is not a disk format: it is written from the root tree"
            ))),
        }
    }
}

/// `qemu-img` options of every VMDK written: the stream-optimized subformat vSphere and OVF
/// imports want, and the SCSI adapter the OVF descriptor declares.
const VMDK_OPTIONS: &[&str] = &["-o", "subformat=streamOptimized,adapter_type=lsilogic"];

/// The size of the raw disk, checked to be usable as one.
fn disk_size(disk: &Path) -> Result<u64> {
    let meta = std::fs::metadata(disk).map_err(|e| Error::io("stat", disk, e))?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "raw disk {} is not a regular file",
            disk.display()
        )));
    }
    let size = meta.len();
    if size == 0 || !size.is_multiple_of(512) {
        return Err(Error::Invalid(format!(
            "raw disk {} is {size} bytes, not a whole number of 512-byte sectors",
            disk.display()
        )));
    }
    Ok(size)
}

/// `qemu-img convert` from the raw disk to `format`. Zeroed sectors are skipped (its default
/// `-S 4k`), so a raw output is as sparse as the input and the other formats hold only data.
fn convert(disk: &Path, out: &Path, format: &str, options: &[&str]) -> Result<()> {
    let mut c = Command::new("qemu-img");
    c.args(["convert", "-q", "-f", "raw", "-O", format])
        .args(options)
        .arg(plain(disk))
        .arg(plain(out));
    cmd::run(&mut c).map(drop)
}

/// A path qemu reads as a file name: a relative one with a `:` before any `/` would be taken
/// for a protocol prefix (`nbd:`...).
fn plain(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        Path::new(".").join(path)
    }
}

#[cfg(test)]
mod tests;
