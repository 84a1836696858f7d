//! Machine architecture in kernel (`uname -m`) naming.

use super::rootfs::RootFs;

/// Binaries every Linux root has; the first that is an ELF file gives the architecture.
const PROBES: [&[u8]; 3] = [b"/bin/sh", b"/usr/bin/env", b"/sbin/init"];

/// The architecture from dpkg's name for it, else from the ELF header of a core binary.
pub(crate) fn gather(fs: &mut RootFs, package_arch: Option<&str>) -> String {
    if let Some(arch) = package_arch.and_then(from_dpkg) {
        return arch.to_string();
    }
    for probe in PROBES {
        if let Some(arch) = fs.read_head(probe, 64).and_then(|h| from_elf(&h)) {
            return arch.to_string();
        }
    }
    fs.error(PROBES[0], "cannot determine the architecture");
    String::new()
}

fn from_dpkg(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "i386" => "i686",
        "armhf" => "armv7l",
        "armel" => "armv5tel",
        "ppc64el" => "ppc64le",
        "ppc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64el" => "mips64",
        "mipsel" => "mips",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// Decodes `e_machine`, `EI_CLASS` and `EI_DATA` of an ELF header.
fn from_elf(h: &[u8]) -> Option<&'static str> {
    if h.len() < 20 || &h[..4] != b"\x7fELF" {
        return None;
    }
    let is64 = h[4] == 2;
    let le = match h[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let u16_at = |o: usize| {
        let b = [h[o], h[o + 1]];
        if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    Some(match (u16_at(18), is64, le) {
        (62, _, _) => "x86_64",
        (3, _, _) => "i686",
        (183, _, true) => "aarch64",
        (183, _, false) => "aarch64_be",
        (40, _, false) => "armv7b",
        (40, _, true) => {
            // e_flags tells hard-float (armhf, ARMv7) from soft-float (armel, ARMv5) builds.
            let flags = h.get(36..40)?;
            let flags = u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]]);
            const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;
            if flags & EF_ARM_ABI_FLOAT_HARD != 0 {
                "armv7l"
            } else {
                "armv5tel"
            }
        }
        (21, _, true) => "ppc64le",
        (21, _, false) => "ppc64",
        (20, _, _) => "ppc",
        (22, true, _) => "s390x",
        (22, false, _) => "s390",
        (243, true, _) => "riscv64",
        (243, false, _) => "riscv32",
        (8, true, _) => "mips64",
        (8, false, _) => "mips",
        (258, _, _) => "loongarch64",
        (43, _, _) => "sparc64",
        (2, _, _) => "sparc",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn dpkg_names() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rfs = RootFs::new(tmp.path());
        assert_eq!(gather(&mut rfs, Some("arm64")), "aarch64");
        assert_eq!(gather(&mut rfs, Some("ppc64el")), "ppc64le");
        assert!(rfs.errors.is_empty());
        // Unknown to the table and no binary to look at.
        assert_eq!(gather(&mut rfs, Some("hurd-i386")), "");
        assert_eq!(rfs.errors.len(), 1);
    }

    #[test]
    fn elf_of_a_real_binary_through_links() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        fs::copy("/bin/true", r.join("usr/bin/dash")).unwrap();
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/dash", r.join("usr/bin/sh")).unwrap();
        let mut rfs = RootFs::new(r);
        assert_eq!(gather(&mut rfs, None), std::env::consts::ARCH);
        assert!(rfs.errors.is_empty());
    }

    #[test]
    fn elf_headers() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 2;
        h[18..20].copy_from_slice(&21u16.to_be_bytes());
        assert_eq!(from_elf(&h), Some("ppc64"));
        h[5] = 1;
        h[18..20].copy_from_slice(&21u16.to_le_bytes());
        assert_eq!(from_elf(&h), Some("ppc64le"));
        h[4] = 1;
        h[18..20].copy_from_slice(&40u16.to_le_bytes());
        h[36..40].copy_from_slice(&0x0500_0400u32.to_le_bytes());
        assert_eq!(from_elf(&h), Some("armv7l"));
        assert_eq!(from_elf(b"#!/bin/sh\n"), None);
        assert_eq!(from_elf(&h[..10]), None);
    }
}
