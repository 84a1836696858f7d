//! What a disk image boots with, read from its partition table: a boot loader in the MBR's
//! code area means BIOS, an EFI system partition means UEFI. Images uforge builds have both
//! (GRUB in the BIOS boot partition and `EFI/BOOT/BOOTX64.EFI`); images from elsewhere may
//! have one.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::error::{ErrorKind, Result, TargetError};
use crate::image::Format;

/// The firmware kinds an image boots with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootModes {
    /// A BIOS boot loader is in the MBR.
    pub bios: bool,
    /// The disk has an EFI system partition.
    pub uefi: bool,
}

/// The firmware a machine is started with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Firmware {
    /// BIOS when the image boots with it (faster to start, works everywhere), UEFI otherwise.
    #[default]
    Auto,
    /// SeaBIOS.
    Bios,
    /// OVMF, secure boot off.
    Uefi,
}

impl Firmware {
    /// The name used in URLs and the API.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Auto => "auto",
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }

    /// Parses `auto`, `bios` or `uefi` (`efi` too).
    pub fn parse(s: &str) -> Option<Firmware> {
        match s {
            "auto" => Some(Firmware::Auto),
            "bios" => Some(Firmware::Bios),
            "uefi" | "efi" => Some(Firmware::Uefi),
            _ => None,
        }
    }

    /// The firmware to start an image with `modes` under, or why it cannot start.
    pub fn resolve(self, modes: BootModes) -> std::result::Result<Firmware, String> {
        match self {
            Firmware::Auto if modes.bios => Ok(Firmware::Bios),
            Firmware::Auto if modes.uefi => Ok(Firmware::Uefi),
            Firmware::Auto => Err(
                "the image has neither a BIOS boot loader nor an EFI system \
                                   partition: it does not boot"
                    .into(),
            ),
            Firmware::Bios if !modes.bios => {
                Err("the image has no BIOS boot loader in its MBR; start it with UEFI".into())
            }
            Firmware::Uefi if !modes.uefi => {
                Err("the image has no EFI system partition; start it with BIOS".into())
            }
            other => Ok(other),
        }
    }
}

/// Bytes of a disk's start that hold the MBR, the GPT header and 128 GPT entries.
const HEAD: usize = 34 * 512;

/// EFI system partition type GUID, as stored on disk (mixed endian).
const ESP_GUID: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];

/// Reads the boot modes of the disk image `path` in `format` (raw directly, other formats
/// through `qemu-img dd`).
pub fn boot_modes(target: &str, path: &Path, format: Format) -> Result<BootModes> {
    let head = match format {
        Format::Raw => {
            let mut buf = vec![0u8; HEAD];
            let mut f = std::fs::File::open(path)
                .map_err(|e| super::io::image_io(target, "open", path, &e))?;
            let n = crate::repo::read_full(&mut f, &mut buf)
                .map_err(|e| super::io::image_io(target, "read", path, &e))?;
            buf.truncate(n);
            buf
        }
        Format::Qcow2 | Format::Vmdk | Format::Vhdx | Format::Vdi | Format::Vhd => {
            qemu_head(target, path, format)?
        }
        other => {
            return Err(TargetError::new(
                target,
                ErrorKind::Unsupported,
                format!("{other} images are not disks that boot a machine"),
            ))
        }
    };
    Ok(parse_head(&head))
}

/// The first [`HEAD`] guest bytes of a disk in a container format.
fn qemu_head(target: &str, path: &Path, format: Format) -> Result<Vec<u8>> {
    let tmp = tempfile_path(path);
    let fmt = if format == Format::Vhd {
        "vpc"
    } else {
        format.name()
    };
    let out = Command::new("qemu-img")
        .args(["dd", "-f", fmt, "-O", "raw", "bs=512", "count=34"])
        .arg(format!("if={}", path.display()))
        .arg(format!("of={}", tmp.display()))
        .output();
    let res = match out {
        Ok(o) if o.status.success() => {
            std::fs::read(&tmp).map_err(|e| super::io::image_io(target, "read", &tmp, &e))
        }
        Ok(o) => Err(TargetError::new(
            target,
            ErrorKind::Image,
            format!(
                "qemu-img cannot read {} as {fmt}: {}",
                path.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        )),
        Err(e) => Err(TargetError::new(
            target,
            ErrorKind::Local,
            format!("running qemu-img (package qemu-utils): {e}"),
        )),
    };
    let _ = std::fs::remove_file(&tmp);
    res
}

fn tempfile_path(path: &Path) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "uforge-head-{}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ))
}

/// Boot modes from a disk's first sectors.
pub(crate) fn parse_head(head: &[u8]) -> BootModes {
    if head.len() < 512 || head[510..512] != [0x55, 0xaa] {
        return BootModes::default();
    }
    let bios = head[..440].iter().any(|&b| b != 0);
    let entries: Vec<&[u8]> = (0..4).map(|i| &head[446 + 16 * i..462 + 16 * i]).collect();
    let mut uefi = entries.iter().any(|e| e[4] == 0xef);
    if entries.iter().any(|e| e[4] == 0xee) && head.len() >= 1024 && &head[512..520] == b"EFI PART"
    {
        let le32 = |o: usize| u32::from_le_bytes(head[o..o + 4].try_into().expect("4 bytes"));
        let le64 = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().expect("8 bytes"));
        let (lba, count, size) = (le64(512 + 72), le32(512 + 80), le32(512 + 84) as usize);
        if size >= 128 {
            for i in 0..count as usize {
                let at = lba as usize * 512 + i * size;
                if at + 16 > head.len() {
                    break;
                }
                uefi |= head[at..at + 16] == ESP_GUID;
            }
        }
    }
    BootModes { bios, uefi }
}

/// The virtual size of a disk image, from `qemu-img info`.
pub fn virtual_size(target: &str, path: &Path, format: Format) -> Result<u64> {
    let fmt = if format == Format::Vhd {
        "vpc"
    } else {
        format.name()
    };
    let out = Command::new("qemu-img")
        .args(["info", "--output=json", "-f", fmt])
        .arg(path)
        .output()
        .map_err(|e| {
            TargetError::new(
                target,
                ErrorKind::Local,
                format!("running qemu-img (package qemu-utils): {e}"),
            )
        })?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        TargetError::new(
            target,
            ErrorKind::Image,
            format!(
                "qemu-img cannot read {} as {fmt}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )
    })?;
    info["virtual-size"].as_u64().ok_or_else(|| {
        TargetError::new(
            target,
            ErrorKind::Image,
            format!("qemu-img gives no virtual size for {}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(bios: bool, label: &str, esp: bool) -> Vec<u8> {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("d.raw");
        std::fs::write(&p, vec![0u8; 8 << 20]).unwrap();
        let ty = match (label, esp) {
            ("gpt", true) => "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            ("gpt", false) => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            (_, true) => "ef",
            _ => "83",
        };
        let mut c = Command::new("sfdisk")
            .arg("-q")
            .arg(&p)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        write!(
            c.stdin.take().unwrap(),
            "label: {label}\nstart=2048, type={ty}\n"
        )
        .unwrap();
        assert!(c.wait().unwrap().success());
        let mut d = std::fs::read(&p).unwrap();
        if bios {
            d[0] = 0xeb;
            d[1] = 0x63;
        }
        d.truncate(HEAD);
        d
    }

    #[test]
    fn partition_tables_tell_the_firmware() {
        let both = parse_head(&disk(true, "gpt", true));
        assert_eq!(
            both,
            BootModes {
                bios: true,
                uefi: true
            }
        );
        assert_eq!(Firmware::Auto.resolve(both), Ok(Firmware::Bios));
        let efi = parse_head(&disk(false, "gpt", true));
        assert_eq!(
            efi,
            BootModes {
                bios: false,
                uefi: true
            }
        );
        assert_eq!(Firmware::Auto.resolve(efi), Ok(Firmware::Uefi));
        assert!(Firmware::Bios.resolve(efi).unwrap_err().contains("no BIOS"));
        let mbr = parse_head(&disk(true, "dos", false));
        assert_eq!(
            mbr,
            BootModes {
                bios: true,
                uefi: false
            }
        );
        assert!(Firmware::Uefi.resolve(mbr).is_err());
        assert!(parse_head(&disk(true, "dos", true)).uefi);
        assert_eq!(parse_head(&[0u8; HEAD]), BootModes::default());
        assert!(Firmware::Auto.resolve(BootModes::default()).is_err());
    }
}
