//! Operating system identity from os-release.

use super::rootfs::RootFs;
use super::shellvars::ShellVars;
use crate::model::OsInfo;

/// Reads `/etc/os-release`, falling back to `/usr/lib/os-release` as systemd specifies.
pub(crate) fn gather(fs: &mut RootFs) -> OsInfo {
    let Some(text) = fs
        .read(b"/etc/os-release")
        .or_else(|| fs.read(b"/usr/lib/os-release"))
    else {
        fs.error(b"/etc/os-release", "no os-release file in the root");
        return OsInfo::default();
    };
    parse(&text)
}

fn parse(text: &[u8]) -> OsInfo {
    let v = ShellVars::parse(text);
    OsInfo {
        id: v.string("ID"),
        version_id: v.string("VERSION_ID"),
        version_codename: v.string("VERSION_CODENAME"),
        pretty_name: v.string("PRETTY_NAME"),
        id_like: v
            .get("ID_LIKE")
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn parses_and_falls_back() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("usr/lib")).unwrap();
        fs::create_dir_all(tmp.path().join("etc")).unwrap();
        fs::write(
            tmp.path().join("usr/lib/os-release"),
            "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n\
             VERSION_ID='9.3'\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n",
        )
        .unwrap();
        // Absolute link: must reach the root's file, not the host's.
        std::os::unix::fs::symlink("/usr/lib/os-release", tmp.path().join("etc/os-release"))
            .unwrap();
        let mut rfs = RootFs::new(tmp.path());
        let os = gather(&mut rfs);
        assert_eq!(os.id.as_deref(), Some("rocky"));
        assert_eq!(os.version_id.as_deref(), Some("9.3"));
        assert_eq!(os.version_codename, None);
        assert_eq!(
            os.pretty_name.as_deref(),
            Some("Rocky Linux 9.3 (Blue Onyx)")
        );
        assert_eq!(os.id_like, ["rhel", "centos", "fedora"]);
        assert!(rfs.errors.is_empty());

        fs::remove_file(tmp.path().join("etc/os-release")).unwrap();
        assert_eq!(gather(&mut rfs).id.as_deref(), Some("rocky"));
        fs::remove_file(tmp.path().join("usr/lib/os-release")).unwrap();
        assert_eq!(gather(&mut rfs), OsInfo::default());
        assert_eq!(rfs.errors.len(), 1);
    }
}
