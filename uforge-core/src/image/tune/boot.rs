//! Making the root boot on the new disk: kernels found, an initramfs holding the target's
//! storage drivers, GRUB installed for BIOS and UEFI with a configuration of our own.

use std::path::Path;

use crate::fsroot::{self, Links, RootDir};
use crate::image::chroot::run_in;
use crate::Result;

/// Kernel releases that have an image in `/boot`, newest first.
pub fn kernels(root: &Path) -> Result<Vec<String>> {
    let dir = RootDir::open(root, Links::InRoot)?;
    let mut out = Vec::new();
    let entries = match dir.read_dir(b"/boot") {
        Ok(e) => e,
        Err(e) if fsroot::not_found(&e) => return Ok(out),
        Err(e) => return Err(e),
    };
    for (name, _) in entries {
        let name = String::from_utf8_lossy(&name);
        if let Some(v) = name.strip_prefix("vmlinuz-") {
            if dir.is_dir(format!("/lib/modules/{v}").as_bytes())
                || dir.is_dir(format!("/usr/lib/modules/{v}").as_bytes())
            {
                out.push(v.to_string());
            }
        }
    }
    out.sort_by_key(|v| std::cmp::Reverse(version_key(v)));
    Ok(out)
}

/// Orders `6.1.0-28-amd64` after `6.1.0-9-amd64`.
fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split(['.', '-'])
        .map(|p| {
            let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
            (digits.parse().unwrap_or(0), p[digits.len()..].to_string())
        })
        .collect()
}

/// Whether every kernel flavour present only runs para-virtualised (Xen PV) and so cannot
/// boot a full virtual machine.
pub fn paravirt_only(kernels: &[String]) -> bool {
    !kernels.is_empty()
        && kernels
            .iter()
            .all(|k| k.ends_with("-xen") || k.ends_with("-xenu") || k.ends_with("-pv"))
}

/// The drivers of `wanted` that neither the initramfs of `kernel` holds nor the kernel has
/// built in. `None` when the initramfs cannot be listed (no initramfs-tools in the root).
pub fn missing_drivers(root: &Path, kernel: &str, wanted: &[&str]) -> Result<Option<Vec<String>>> {
    let dir = RootDir::open(root, Links::InRoot)?;
    let initrd = format!("/boot/initrd.img-{kernel}");
    if !dir.is_file(initrd.as_bytes()) {
        return Ok(Some(wanted.iter().map(|s| s.to_string()).collect()));
    }
    if !dir.is_file(b"/usr/bin/lsinitramfs") {
        return Ok(None);
    }
    let listing = String::from_utf8_lossy(&run_in(root, "lsinitramfs", &[&initrd])?).into_owned();
    let builtin = dir
        .read(
            format!("/lib/modules/{kernel}/modules.builtin").as_bytes(),
            64 << 20,
        )
        .unwrap_or_default();
    let builtin = String::from_utf8_lossy(&builtin);
    let norm = |s: &str| s.replace('-', "_");
    let has = |d: &str| {
        let d = norm(d);
        let hit = |path: &str| {
            let file = path.rsplit('/').next().unwrap_or(path);
            let stem = file.split(".ko").next().unwrap_or(file);
            file.contains(".ko") && norm(stem) == d
        };
        listing.lines().any(hit) || builtin.lines().any(hit)
    };
    Ok(Some(
        wanted
            .iter()
            .filter(|d| !has(d))
            .map(|d| d.to_string())
            .collect(),
    ))
}

/// The kernel command line the image boots with: serial console (cloud consoles read it) and
/// kernel interface names, which the network tuning relies on.
pub const CMDLINE: &str = "console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0";

/// The command line: [`CMDLINE`] and the parameters a template adds.
pub fn cmdline(extra: &[String]) -> String {
    let mut s = CMDLINE.to_string();
    for p in extra {
        s.push(' ');
        s.push_str(p);
    }
    s
}

/// `/etc/default/grub.d` drop-in, so that `update-grub` on the migrated machine keeps the
/// same command line (with `extra` parameters after [`CMDLINE`]).
pub fn grub_defaults(extra: &[String]) -> String {
    let cmdline = cmdline(extra);
    format!(
        "# Set when the machine was migrated: serial console and interface names that do not\n\
         # depend on the new hardware.\n\
         GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX {cmdline}\"\n\
         GRUB_TERMINAL=\"console serial\"\n\
         GRUB_SERIAL_COMMAND=\"serial --unit=0 --speed=115200\"\n\
         GRUB_TIMEOUT=1\n"
    )
}

/// A GRUB configuration that boots `kernels` (newest first) from the filesystem `root_uuid`.
/// Written directly rather than by `grub-mkconfig`, which probes the build host's devices;
/// `update-grub` on the migrated machine regenerates the standard one.
pub fn grub_cfg(kernels: &[String], root_uuid: &str, os_name: &str, extra: &[String]) -> String {
    let cmdline = cmdline(extra);
    let mut s = format!(
        "# Written when the machine was migrated; `update-grub` replaces it.\n\
         set default=0\nset timeout=1\n\
         serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n\
         insmod part_gpt\ninsmod ext2\n\
         search --no-floppy --fs-uuid --set=root {root_uuid}\n"
    );
    for k in kernels {
        s.push_str(&format!(
            "menuentry '{os_name}, with Linux {k}' {{\n\
             \tlinux /boot/vmlinuz-{k} root=UUID={root_uuid} ro {cmdline}\n\
             \tinitrd /boot/initrd.img-{k}\n}}\n"
        ));
    }
    s
}

/// The first configuration GRUB's images run: find the root filesystem by UUID and hand over
/// to its `/boot/grub/grub.cfg`.
pub fn early_cfg(root_uuid: &str) -> String {
    format!(
        "search --no-floppy --fs-uuid --set=root {root_uuid}\n\
         set prefix=($root)/boot/grub\n\
         configfile $prefix/grub.cfg\n"
    )
}

/// Modules built into the BIOS core image: everything `grub.cfg` needs, so no module has to
/// be found on disk.
pub const BIOS_MODULES: &[&str] = &[
    "biosdisk",
    "part_gpt",
    "part_msdos",
    "ext2",
    "search",
    "search_fs_uuid",
    "normal",
    "linux",
    "configfile",
    "echo",
    "test",
    "serial",
    "terminal",
    "gzio",
    "boot",
    "minicmd",
];

/// Modules built into the UEFI image.
pub const EFI_MODULES: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "ext2",
    "fat",
    "search",
    "search_fs_uuid",
    "normal",
    "linux",
    "configfile",
    "echo",
    "test",
    "serial",
    "terminal",
    "gzio",
    "boot",
    "minicmd",
    "efi_gop",
    "all_video",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_kernel_first() {
        let mut v = vec![
            "6.1.0-9-amd64".to_string(),
            "6.1.0-28-amd64".into(),
            "5.10.0-30-amd64".into(),
        ];
        v.sort_by_key(|v| std::cmp::Reverse(version_key(v)));
        assert_eq!(v, ["6.1.0-28-amd64", "6.1.0-9-amd64", "5.10.0-30-amd64"]);
        assert!(paravirt_only(&["3.2.0-4-xen".into()]));
        assert!(!paravirt_only(&["6.1.0-9-amd64".into()]));
        assert!(!paravirt_only(&[]));
    }

    #[test]
    fn grub_cfg_boots_by_uuid_with_console() {
        let c = grub_cfg(
            &["6.1.0-28-amd64".into()],
            "1234-uuid",
            "Debian GNU/Linux 12",
            &["quiet".into()],
        );
        assert!(c.contains("biosdevname=0 quiet\n"), "{c}");
        assert!(c.contains("search --no-floppy --fs-uuid --set=root 1234-uuid"));
        assert!(
            c.contains("linux /boot/vmlinuz-6.1.0-28-amd64 root=UUID=1234-uuid ro console=tty0")
        );
        assert!(c.contains("initrd /boot/initrd.img-6.1.0-28-amd64"));
    }
}
