//! Machine facts gathered from a scanned root: identity, kernels, filesystems, installation
//! parameters, network configuration and accounts.
//!
//! Everything is read relative to the root, with the root's symlinks resolved inside it, so
//! that scanning a mounted or unpacked system never picks up the host's settings. Only facts
//! that exist solely on a running system (its mount table, sysfs) come from the host, and only
//! for a live scan. Nothing is ever written.

mod arch;
mod kernels;
mod locale;
pub mod mounts;
mod network;
mod os;
mod rootfs;
pub(crate) mod shellvars;
pub mod users;
pub mod usr_layout;

use std::path::Path;

pub use mounts::live_excludes;
pub use users::IdNames;
pub use usr_layout::UsrLayout;

use crate::model::{Machine, ScanError};
use rootfs::RootFs;

/// Inputs the fact gatherers need from the rest of the scan.
pub struct FactsInput<'a> {
    /// The scanned root, e.g. `/` or `/var/cache/x/rootfs`.
    pub root: &'a Path,
    /// True when `root` is the running system's `/`, which makes live-only facts available.
    pub live: bool,
    /// dpkg's native architecture (`amd64`), if the dpkg database gave it.
    pub package_arch: Option<&'a str>,
    /// The package owning an absolute in-root path such as `b"/boot/vmlinuz-6.1.0-28-amd64"`.
    pub owner_of: &'a dyn Fn(&[u8]) -> Option<String>,
}

/// Gathers every fact; a fact that cannot be read is left empty and reported as a
/// [`ScanError`] (op `facts`), never a failure of the whole scan.
pub fn gather(input: &FactsInput) -> (Machine, Vec<ScanError>) {
    let mut fs = RootFs::new(input.root);
    let (mounts, partitions) = mounts::gather(&mut fs, input.root, input.live);
    let (users, groups) = users::gather(&mut fs);
    let machine = Machine {
        os: os::gather(&mut fs),
        arch: arch::gather(&mut fs, input.package_arch),
        package_arch: input.package_arch.map(str::to_string),
        kernels: kernels::gather(&mut fs, input.owner_of),
        mounts,
        partitions,
        timezone: locale::timezone(&mut fs),
        keyboard: locale::keyboard(&mut fs),
        locale: locale::locale(&mut fs),
        hostname: locale::hostname(&mut fs, input.live),
        network: network::gather(&mut fs),
        users,
        groups,
    };
    (machine, fs.errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Keyboard, NetMethod};
    use crate::test_fixture::debian_root;

    #[test]
    fn debian_fixture() {
        let root = debian_root();
        let (m, errors) = gather(&FactsInput {
            root: &root,
            live: false,
            package_arch: None,
            owner_of: &|_| None,
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(m.os.id.as_deref(), Some("debian"));
        assert_eq!(m.os.version_id.as_deref(), Some("12"));
        assert_eq!(m.os.version_codename.as_deref(), Some("bookworm"));
        assert_eq!(m.arch, "x86_64");
        assert_eq!(m.package_arch, None);
        assert!(m.kernels.is_empty());
        assert!(m.partitions.is_empty());
        assert_eq!(m.hostname.as_deref(), Some("web01"));
        assert_eq!(m.timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(m.locale.as_deref(), Some("fr_FR.UTF-8"));
        assert_eq!(
            m.keyboard,
            Some(Keyboard {
                layout: "fr".into(),
                variant: Some("oss".into()),
                model: Some("pc105".into()),
                options: None,
            })
        );

        let targets: Vec<_> = m.mounts.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(targets, ["/", "/srv", "/boot/efi", "/tmp"]);
        assert!(m.mounts.iter().all(|m| m.origin == "fstab"));
        assert_eq!(
            m.mounts[0].uuid.as_deref(),
            Some("0a1b2c3d-1111-2222-3333-444455556666")
        );
        assert_eq!(m.mounts[1].fstype, "xfs");
        assert_eq!(m.mounts[2].uuid, None);

        let net: Vec<_> = m
            .network
            .iter()
            .map(|i| (i.source.as_str(), i.name.as_str(), i.method))
            .collect();
        assert_eq!(
            net,
            [
                ("ifupdown", "ens3", NetMethod::Static),
                ("ifupdown", "lo", NetMethod::Loopback),
                ("networkd", "ens4", NetMethod::Dhcp),
            ]
        );
        let ens3 = &m.network[0];
        assert_eq!(ens3.file, "/etc/network/interfaces");
        assert_eq!(ens3.addresses, ["192.0.2.10/24"]);
        assert_eq!(ens3.gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(ens3.dns, ["192.0.2.53", "198.51.100.53"]);
        assert_eq!(m.network[2].file, "/etc/systemd/network/20-ens4.network");

        let alice = m.users.iter().find(|u| u.name == "alice").unwrap();
        assert_eq!((alice.uid, alice.home.as_str()), (1001, "/home/alice"));
        assert!(m.users.iter().any(|u| u.name == "root" && u.uid == 0));
        assert!(m.groups.iter().any(|g| g.name == "deploy" && g.gid == 1500));
        let names = IdNames::load(&root);
        assert_eq!(names.user(1001), Some("alice"));
        assert_eq!(names.group(1500), Some("deploy"));
        assert_eq!(names.user(4242), None);

        // dpkg's name wins over the ELF probe and is recorded as given.
        let owner = |p: &[u8]| (p == b"/x").then(|| "x".to_string());
        let (m, _) = gather(&FactsInput {
            root: &root,
            live: false,
            package_arch: Some("arm64"),
            owner_of: &owner,
        });
        assert_eq!(m.arch, "aarch64");
        assert_eq!(m.package_arch.as_deref(), Some("arm64"));
    }
}
