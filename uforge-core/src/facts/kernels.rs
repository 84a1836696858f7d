//! Installed kernels: images in /boot and module trees.

use std::collections::{BTreeMap, BTreeSet};

use super::rootfs::{child, lossy, RootFs};
use crate::model::Kernel;

const MODULE_DIRS: [&[u8]; 2] = [b"/lib/modules", b"/usr/lib/modules"];

/// A kernel counts as installed when it has an image in /boot or a module tree; each alone
/// happens (modules left behind by a removed package, an image built outside packages).
pub(crate) fn gather(fs: &mut RootFs, owner_of: &dyn Fn(&[u8]) -> Option<String>) -> Vec<Kernel> {
    let mut images = BTreeMap::new();
    for name in fs.list(b"/boot") {
        let path = child(b"/boot", &name);
        // The compressed image is the one boot loaders use when both exist.
        if let Some(ver) = name.strip_prefix(b"vmlinuz-").filter(|v| !v.is_empty()) {
            images.insert(ver.to_vec(), path);
        } else if let Some(ver) = name.strip_prefix(b"vmlinux-").filter(|v| !v.is_empty()) {
            images.entry(ver.to_vec()).or_insert(path);
        }
    }
    let mut versions: BTreeSet<Vec<u8>> = images.keys().cloned().collect();
    for dir in MODULE_DIRS {
        for name in fs.list(dir) {
            if fs.is_dir(&child(dir, &name)) {
                versions.insert(name);
            }
        }
    }

    let mut kernels: Vec<Kernel> = versions
        .into_iter()
        .map(|ver| {
            let image = images.get(&ver).cloned();
            let module_dirs: Vec<Vec<u8>> = MODULE_DIRS.iter().map(|d| child(d, &ver)).collect();
            let has_modules = module_dirs.iter().any(|d| fs.is_dir(d));
            let package = match &image {
                Some(img) => owner_of(img),
                None => module_dirs.iter().find_map(|d| owner_of(d)),
            };
            Kernel {
                version: lossy(&ver),
                image: image.as_deref().map(lossy),
                initrd: initrd(fs, &ver),
                has_modules,
                package,
            }
        })
        .collect();
    kernels.sort_by(|a, b| a.version.cmp(&b.version));
    kernels
}

/// Debian's, Red Hat's and SUSE's names for the initial ramdisk of kernel `ver`.
fn initrd(fs: &RootFs, ver: &[u8]) -> Option<String> {
    let candidates = [
        [&b"/boot/initrd.img-"[..], ver, b""].concat(),
        [&b"/boot/initramfs-"[..], ver, b".img"].concat(),
        [&b"/boot/initrd-"[..], ver].concat(),
    ];
    candidates
        .into_iter()
        .find(|p| fs.is_file(p))
        .map(|p| lossy(&p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn images_and_module_trees() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("boot")).unwrap();
        fs::create_dir_all(r.join("usr/lib/modules/6.1.0-28-amd64")).unwrap();
        fs::create_dir_all(r.join("usr/lib/modules/5.10.0-1-amd64")).unwrap();
        fs::create_dir_all(r.join("usr/lib/modules/6.9.0-rc1")).unwrap();
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        fs::write(r.join("boot/vmlinuz-6.1.0-28-amd64"), "k").unwrap();
        fs::write(r.join("boot/initrd.img-6.1.0-28-amd64"), "i").unwrap();
        fs::write(r.join("boot/vmlinuz-5.14.0-1.el9.x86_64"), "k").unwrap();
        fs::write(r.join("boot/initramfs-5.14.0-1.el9.x86_64.img"), "i").unwrap();
        std::os::unix::fs::symlink("vmlinuz-6.1.0-28-amd64", r.join("boot/vmlinuz")).unwrap();
        let owner = |p: &[u8]| match p {
            b"/boot/vmlinuz-6.1.0-28-amd64" => Some("linux-image-6.1.0-28-amd64".to_string()),
            b"/lib/modules/5.10.0-1-amd64" => Some("linux-image-5.10.0-1-amd64".to_string()),
            _ => None,
        };
        let mut rfs = RootFs::new(r);
        let k = gather(&mut rfs, &owner);
        let versions: Vec<_> = k.iter().map(|k| k.version.as_str()).collect();
        assert_eq!(
            versions,
            [
                "5.10.0-1-amd64",
                "5.14.0-1.el9.x86_64",
                "6.1.0-28-amd64",
                "6.9.0-rc1"
            ]
        );
        assert_eq!(k[0].image, None);
        assert!(k[0].has_modules);
        assert_eq!(k[0].package.as_deref(), Some("linux-image-5.10.0-1-amd64"));
        assert_eq!(
            k[1].initrd.as_deref(),
            Some("/boot/initramfs-5.14.0-1.el9.x86_64.img")
        );
        assert!(!k[1].has_modules);
        assert_eq!(k[2].image.as_deref(), Some("/boot/vmlinuz-6.1.0-28-amd64"));
        assert_eq!(
            k[2].initrd.as_deref(),
            Some("/boot/initrd.img-6.1.0-28-amd64")
        );
        assert_eq!(k[2].package.as_deref(), Some("linux-image-6.1.0-28-amd64"));
        assert_eq!(k[3].package, None);
        assert!(rfs.errors.is_empty());
    }
}
