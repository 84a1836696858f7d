//! The GPT disk of disk images: a BIOS boot partition (GRUB's core image), an EFI system
//! partition, and the root filesystem, attached through a loop device and mounted while the
//! root is built on it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{chroot, cmd};
use crate::{Error, Result};

/// Where GRUB's core image lives: the BIOS boot partition, 1 MiB from the start.
pub const BIOS_START: u64 = 1 << 20;
/// Size of the BIOS boot partition.
pub const BIOS_SIZE: u64 = 1 << 20;
/// Where the EFI system partition starts.
pub const ESP_START: u64 = BIOS_START + BIOS_SIZE;
/// Size of the EFI system partition.
pub const ESP_SIZE: u64 = 255 << 20;
/// Where the root partition starts.
pub const ROOT_START: u64 = ESP_START + ESP_SIZE;
/// Room left at the end of the disk for the backup GPT.
const TAIL: u64 = 1 << 20;

/// GPT type of the root partition: the discoverable-partitions x86-64 root type, so that
/// systemd-gpt-auto-generator and people can tell what it is.
const ROOT_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";

/// A raw GPT disk image being built: partitioned, the EFI system partition formatted in place
/// (FAT, written with mtools, so no kernel FAT driver is needed), and the root filesystem made
/// on a loop device over the root partition's byte range and mounted. Loop devices over byte
/// ranges need no partition scanning, which minimal and container kernels often lack.
#[derive(Debug)]
pub struct Disk {
    /// The raw image file.
    pub path: PathBuf,
    /// Its size in bytes (a multiple of 1 MiB).
    pub size: u64,
    /// The loop device holding the root filesystem.
    pub device: PathBuf,
    /// Where the root filesystem is mounted.
    pub root: PathBuf,
    /// UUID of the root filesystem.
    pub root_uuid: String,
    /// Volume id of the EFI system partition (`ABCD-1234`).
    pub esp_uuid: String,
    mounted: Vec<PathBuf>,
    attached: bool,
}

/// The size of disk to make for `content_bytes` of files: room for the files, filesystem
/// overhead, and what tuning installs (kernel, bootloader, agents), rounded up to a GiB.
pub fn size_for(content_bytes: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    (least_size_for(content_bytes) + 3 * GIB / 2).div_ceil(GIB) * GIB
}

/// The smallest disk a size asked for (a template's) may be: room for `content_bytes` of
/// files, filesystem overhead and what tuning installs (a kernel and its initramfs, the
/// bootloader), with little to spare.
pub fn least_size_for(content_bytes: u64) -> u64 {
    content_bytes + content_bytes / 4 + (512 << 20) + ROOT_START + TAIL
}

impl Disk {
    /// Creates a sparse raw disk of `size` bytes at `path`, partitions it, makes the
    /// filesystems and mounts the root filesystem at `mount_at`.
    pub fn create(path: &Path, size: u64, mount_at: &Path) -> Result<Disk> {
        for (prog, pkg) in [
            ("sfdisk", "fdisk"),
            ("losetup", "mount"),
            ("mkfs.ext4", "e2fsprogs"),
            ("mkfs.vfat", "dosfstools"),
            ("mcopy", "mtools"),
        ] {
            cmd::require(prog, pkg)?;
        }
        if !size.is_multiple_of(1 << 20) || size < ROOT_START + TAIL + (64 << 20) {
            return Err(Error::Invalid(format!(
                "disk size {size} is not a multiple of 1 MiB of at least {} MiB",
                (ROOT_START + TAIL + (64 << 20)) >> 20
            )));
        }
        let f = File::create(path).map_err(|e| Error::io("create", path, e))?;
        f.set_len(size).map_err(|e| Error::io("resize", path, e))?;
        drop(f);
        let root_size = size - ROOT_START - TAIL;
        let layout = format!(
            "label: gpt\nfirst-lba: 2048\n\
             start={}, size={}, type=21686148-6449-6E6F-744E-656564454649, name=\"bios\"\n\
             start={}, size={}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"esp\"\n\
             start={}, size={}, type={ROOT_TYPE}, name=\"root\"\n",
            BIOS_START / 512,
            BIOS_SIZE / 512,
            ESP_START / 512,
            ESP_SIZE / 512,
            ROOT_START / 512,
            root_size / 512,
        );
        sfdisk(path, &layout)?;
        let esp_id = new_uuid()?.replace('-', "")[..8].to_uppercase();
        cmd::run(
            Command::new("mkfs.vfat")
                // One-sector clusters: at 4 KiB the partition would have too few clusters for
                // FAT32 and tools would read it as FAT16.
                .args(["-F", "32", "-s", "1", "-n", "ESP", "-i", &esp_id])
                .arg(format!("--offset={}", ESP_START / 512))
                .arg(path)
                .arg((ESP_SIZE / 1024).to_string()),
        )?;
        let dev = attach(path, ROOT_START, root_size, false)?;
        let mut disk = Disk {
            path: path.to_path_buf(),
            size,
            device: dev,
            root: mount_at.to_path_buf(),
            root_uuid: new_uuid()?,
            esp_uuid: format!("{}-{}", &esp_id[..4], &esp_id[4..]),
            mounted: Vec::new(),
            attached: true,
        };
        // Features GRUB 2.06 and older kernels cannot read are left off: the image must boot
        // with the bootloader and kernel of the migrated release. The journal is added when
        // the build is done ([`Disk::close`]): journalling the build itself would only write
        // its blocks full, and every written block ends up in the image.
        let mkfs = |extra: &[&str]| {
            cmd::run(
                Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-L", "root", "-U", &disk.root_uuid])
                    .args(extra)
                    .args(["-E", "lazy_itable_init=1,lazy_journal_init=1"])
                    .arg(&disk.device),
            )
        };
        // e2fsprogs before 1.47 does not know orphan_file.
        mkfs(&["-O", "^has_journal,^metadata_csum_seed,^orphan_file"])
            .or_else(|_| mkfs(&["-O", "^has_journal"]))?;
        std::fs::create_dir_all(mount_at).map_err(|e| Error::io("create", mount_at, e))?;
        // noinit_itable: the kernel must not zero inode tables in the background, which would
        // fill the sparse image with zeros.
        cmd::run(
            Command::new("mount")
                .args(["-o", "noinit_itable"])
                .arg(&disk.device)
                .arg(mount_at),
        )?;
        disk.mounted.push(mount_at.to_path_buf());
        Ok(disk)
    }

    /// Copies `file` into the EFI system partition at `dest` (`EFI/BOOT/BOOTX64.EFI`),
    /// creating its directories.
    pub fn esp_put(&self, file: &Path, dest: &str) -> Result<()> {
        let image = format!("{}@@{}", self.path.display(), ESP_START);
        let parts: Vec<&str> = dest.split('/').collect();
        for i in 1..parts.len() {
            let dir = format!("::/{}", parts[..i].join("/"));
            let exists = cmd::run(
                Command::new("mdir")
                    .env("MTOOLS_SKIP_CHECK", "1")
                    .args(["-b", "-i", &image, &dir]),
            )
            .is_ok();
            if !exists {
                cmd::run(
                    Command::new("mmd")
                        .env("MTOOLS_SKIP_CHECK", "1")
                        .args(["-i", &image, &dir]),
                )?;
            }
        }
        cmd::run(
            Command::new("mcopy")
                .env("MTOOLS_SKIP_CHECK", "1")
                .args(["-o", "-i", &image])
                .arg(file)
                .arg(format!("::/{dest}")),
        )?;
        Ok(())
    }

    /// Installs GRUB's BIOS stages: `boot_img` (GRUB's `boot.img`) in the protective MBR, and
    /// `core_img` (made by `grub-mkimage -O i386-pc`) in the BIOS boot partition, with the
    /// sector pointers `grub-bios-setup` would write.
    pub fn install_bios_boot(&self, boot_img: &[u8], core_img: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        if boot_img.len() != 512 {
            return Err(Error::Invalid(format!(
                "GRUB boot.img is {} bytes, not 512",
                boot_img.len()
            )));
        }
        if core_img.len() as u64 > BIOS_SIZE || core_img.len() < 1024 {
            return Err(Error::Invalid(format!(
                "GRUB core image is {} bytes; the BIOS boot partition holds {BIOS_SIZE}",
                core_img.len()
            )));
        }
        let first = BIOS_START / 512;
        let sectors = (core_img.len() as u64).div_ceil(512);
        let mut core = core_img.to_vec();
        core.resize((sectors * 512) as usize, 0);
        // The blocklist at the end of the core image's first sector: the rest of the core
        // image, contiguous, loaded at segment 0x820; the entry before it ends the list.
        let bl = 512 - 12;
        core[bl..bl + 8].copy_from_slice(&(first + 1).to_le_bytes());
        core[bl + 8..bl + 10].copy_from_slice(&((sectors - 1) as u16).to_le_bytes());
        core[bl + 10..bl + 12].copy_from_slice(&0x820u16.to_le_bytes());
        core[bl - 12..bl].fill(0);
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| Error::io("open", &self.path, e))?;
        let mut mbr = [0u8; 512];
        std::io::Read::read_exact(&mut f, &mut mbr)
            .map_err(|e| Error::io("read", &self.path, e))?;
        // Boot code up to the disk signature; the partition table stays.
        mbr[..0x1b8].copy_from_slice(&boot_img[..0x1b8]);
        mbr[0x5c..0x64].copy_from_slice(&first.to_le_bytes());
        mbr[0x64] = 0xff; // boot from the drive the BIOS booted
        mbr[0x66] = 0x90; // no floppy probing: this is a hard disk
        mbr[0x67] = 0x90;
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&mbr))
            .and_then(|_| f.seek(SeekFrom::Start(BIOS_START)))
            .and_then(|_| f.write_all(&core))
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io("write", &self.path, e))
    }

    /// Unmounts everything and detaches the loop device, flushing the image. Blocks the build
    /// freed (downloaded packages, files the source did not have) are discarded first, which
    /// punches holes in the image file: they would otherwise be copied into every format.
    pub fn close(mut self) -> Result<()> {
        if !self.mounted.is_empty() {
            cmd::run(Command::new("fstrim").arg(&self.root))?;
        }
        // No confined command may hold a copy of the mounts while the file system is released
        // and tune2fs needs it unmounted everywhere.
        let _no_copies = super::sandbox::MOUNT_COPIES
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut mounted = std::mem::take(&mut self.mounted);
        while let Some(at) = mounted.pop() {
            chroot::unmount(&at)?;
        }
        // Another build's confined command may hold a copy of this file system's mount for a
        // while (its namespace began as a copy of the host's): wait for it to go.
        let mut tries = 0;
        loop {
            match cmd::run(
                Command::new("tune2fs")
                    .args(["-O", "has_journal"])
                    .arg(&self.device),
            ) {
                Ok(_) => break,
                Err(e) if tries < 180 && e.to_string().contains("Device or resource busy") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        let mut first = None;
        while let Some(at) = self.mounted.pop() {
            if let Err(e) = chroot::unmount(&at) {
                first.get_or_insert(e);
            }
        }
        if self.attached {
            self.attached = false;
            if let Err(e) = cmd::run(Command::new("losetup").arg("-d").arg(&self.device)) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// Attaches the byte range `offset..offset+size` of `path` to a free loop device.
fn attach(path: &Path, offset: u64, size: u64, read_only: bool) -> Result<PathBuf> {
    let mut c = Command::new("losetup");
    c.args(["--find", "--show"])
        .arg(format!("--offset={offset}"))
        .arg(format!("--sizelimit={size}"));
    if read_only {
        c.arg("--read-only");
    }
    let out = cmd::run(c.arg(path))?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out).trim()))
}

fn sfdisk(path: &Path, layout: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Invalid(format!("cannot run sfdisk: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(layout.as_bytes())
        .map_err(|e| Error::Invalid(format!("sfdisk: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Invalid(format!("sfdisk: {e}")))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "partitioning {} failed: {}",
            path.display(),
            cmd::tail(&String::from_utf8_lossy(&out.stderr))
        )));
    }
    Ok(())
}

/// A random (version 4) UUID from the kernel.
pub fn new_uuid() -> Result<String> {
    let p = "/proc/sys/kernel/random/uuid";
    Ok(std::fs::read_to_string(p)
        .map_err(|e| Error::io("read", p, e))?
        .trim()
        .to_string())
}

/// The byte ranges of the partitions of a raw disk with a GPT (or, failing that, an MBR)
/// partition table, largest first.
pub fn partitions(path: &Path) -> Result<Vec<(u64, u64)>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut head = vec![0u8; 1024];
    f.read_exact(&mut head)
        .map_err(|e| Error::io("read", path, e))?;
    let mut out = Vec::new();
    if &head[512..520] == b"EFI PART" {
        let le64 = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        let le32 = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
        let entries = le64(&head[512 + 72..]);
        let count = le32(&head[512 + 80..]).min(256) as usize;
        let size = le32(&head[512 + 84..]) as usize;
        if size < 48 {
            return Err(Error::Invalid(format!(
                "{}: bad GPT entry size {size}",
                path.display()
            )));
        }
        let mut table = vec![0u8; count * size];
        f.seek(SeekFrom::Start(entries * 512))
            .and_then(|_| f.read_exact(&mut table))
            .map_err(|e| Error::io("read", path, e))?;
        for e in table.chunks(size) {
            if e[..16].iter().all(|&b| b == 0) {
                continue;
            }
            let (first, last) = (le64(&e[32..]), le64(&e[40..]));
            if last >= first {
                out.push((first * 512, (last - first + 1) * 512));
            }
        }
    } else if head[510..512] == [0x55, 0xaa] {
        for i in 0..4 {
            let e = &head[446 + i * 16..446 + (i + 1) * 16];
            let start = u32::from_le_bytes(e[8..12].try_into().expect("4 bytes")) as u64;
            let len = u32::from_le_bytes(e[12..16].try_into().expect("4 bytes")) as u64;
            if e[4] != 0 && e[4] != 0xee && len > 0 {
                out.push((start * 512, len * 512));
            }
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.1));
    Ok(out)
}

/// A read-only loop device over the root filesystem of a raw disk, mounted; undone on drop.
#[derive(Debug)]
pub struct Attached {
    device: Option<PathBuf>,
    mounted: Option<PathBuf>,
}

impl Attached {
    /// Mounts the root filesystem of the raw disk `path` (its largest Linux partition, or the
    /// whole disk when it has no partition table) read-only at `at`.
    pub fn mount_root(path: &Path, at: &Path) -> Result<Attached> {
        std::fs::create_dir_all(at).map_err(|e| Error::io("create", at, e))?;
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        let mut ranges = partitions(path)?;
        ranges.push((0, len));
        let mut last_err = None;
        for (offset, size) in ranges {
            let dev = attach(path, offset, size, true)?;
            let mut a = Attached {
                device: Some(dev.clone()),
                mounted: None,
            };
            let ty = cmd::run(
                Command::new("blkid")
                    .args(["-o", "value", "-s", "TYPE"])
                    .arg(&dev),
            )
            .map(|o| String::from_utf8_lossy(&o).trim().to_string())
            .unwrap_or_default();
            if !matches!(ty.as_str(), "ext4" | "ext3" | "ext2" | "xfs" | "btrfs") {
                continue;
            }
            let opts = if ty.starts_with("ext") {
                "ro,noload"
            } else {
                "ro"
            };
            match cmd::run(Command::new("mount").args(["-o", opts]).arg(&dev).arg(at)) {
                Ok(_) => {
                    a.mounted = Some(at.to_path_buf());
                    return Ok(a);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            Error::Invalid(format!("{} holds no Linux root filesystem", path.display()))
        }))
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(at) = self.mounted.take() {
            let _ = chroot::unmount(&at);
        }
        if let Some(d) = self.device.take() {
            let _ = cmd::run(Command::new("losetup").arg("-d").arg(&d));
        }
    }
}
