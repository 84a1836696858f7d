//! The dpkg database: `var/lib/dpkg/status`, `info/*.list`, and apt's auto-installed marks.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::PackageDb;
use crate::canon::Canon;
use crate::model::Package;
use crate::{deb822, Error, Result};

/// A dpkg database read from a root.
#[derive(Debug)]
pub struct DpkgDb {
    packages: Vec<Package>,
    /// Per package (same order as `packages`), the resolved paths it lists.
    files: Vec<Vec<Vec<u8>>>,
    /// Per package, its conffiles as (resolved path, md5 hex) pairs.
    conffiles: Vec<Vec<(Vec<u8>, String)>>,
    /// Resolved path to index into `packages` of its first owner.
    owners: HashMap<Vec<u8>, u32>,
    /// Per package, the key that names it in reports (see [`DpkgDb::key`]).
    keys: Vec<String>,
    /// Package key to index.
    by_key: HashMap<String, u32>,
    native_arch: Option<String>,
}

impl DpkgDb {
    /// Reads the database under `root` (`root/var/lib/dpkg`).
    pub fn open(root: &Path) -> Result<Self> {
        let admin = root.join("var/lib/dpkg");
        let status_path = admin.join("status");
        let status = read_text(&status_path)?;
        let mut packages = Vec::new();
        let mut conffiles = Vec::new();
        for para in deb822::parse(&status) {
            let Some(name) = para.get("Package") else {
                continue;
            };
            let state = para
                .get("Status")
                .and_then(|s| s.split_whitespace().nth(2))
                .unwrap_or("unknown");
            if state == "not-installed" {
                continue;
            }
            let field = |f: &str| para.get(f).unwrap_or("").to_string();
            let source = para
                .get("Source")
                .and_then(|s| s.split_whitespace().next())
                .filter(|s| *s != name)
                .map(str::to_string);
            let conf: Vec<(Vec<u8>, String)> = para
                .get("Conffiles")
                .unwrap_or("")
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    let p = it.next()?;
                    let md5 = it.next()?;
                    Some((p.as_bytes().to_vec(), md5.to_string()))
                })
                .collect();
            packages.push(Package {
                name: name.to_string(),
                version: field("Version"),
                arch: field("Architecture"),
                manager: "dpkg".into(),
                status: state.to_string(),
                source,
                auto: false,
            });
            conffiles.push(conf);
        }
        let mut order: Vec<usize> = (0..packages.len()).collect();
        order.sort_by(|&a, &b| {
            (&packages[a].name, &packages[a].arch).cmp(&(&packages[b].name, &packages[b].arch))
        });
        let packages: Vec<Package> = order.iter().map(|&i| packages[i].clone()).collect();
        let conffiles: Vec<_> = order.iter().map(|&i| conffiles[i].clone()).collect();

        let native_arch = packages
            .iter()
            .find(|p| p.name == "dpkg")
            .map(|p| p.arch.clone())
            .or_else(|| {
                std::fs::read_to_string(admin.join("arch"))
                    .ok()
                    .and_then(|s| s.lines().next().map(str::to_string))
            });

        let keys = super::package_keys(&packages);
        let by_key: HashMap<String, u32> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as u32))
            .collect();

        let mut db = DpkgDb {
            files: vec![Vec::new(); packages.len()],
            conffiles: Vec::new(),
            owners: HashMap::new(),
            by_key,
            keys,
            native_arch,
            packages,
        };
        let mut canon = Canon::new(|p: &[u8]| {
            let full = crate::rawpath::join(root, p);
            match std::fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_symlink() => std::fs::read_link(&full)
                    .ok()
                    .map(|t| t.as_os_str().as_bytes().to_vec()),
                _ => None,
            }
        });
        db.conffiles = conffiles
            .into_iter()
            .map(|c| c.into_iter().map(|(p, m)| (canon.path(&p), m)).collect())
            .collect();
        db.load_lists(&admin.join("info"), &mut canon)?;
        db.load_auto_marks(root);
        Ok(db)
    }

    /// The key that names a package in reports: its name, or `name:arch` when several
    /// architectures of it are installed.
    pub fn key(&self, index: usize) -> Option<&str> {
        self.keys.get(index).map(String::as_str)
    }

    /// The conffiles of a package with the md5 dpkg recorded when it installed them.
    pub fn conffiles(&self, package: &str) -> &[(Vec<u8>, String)] {
        match self.by_key.get(package) {
            Some(&i) => &self.conffiles[i as usize],
            None => &[],
        }
    }

    fn load_lists(
        &mut self,
        info: &Path,
        canon: &mut Canon<impl FnMut(&[u8]) -> Option<Vec<u8>>>,
    ) -> Result<()> {
        let rd = match std::fs::read_dir(info) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("read directory", info, e)),
        };
        let mut lists: Vec<(usize, PathBuf)> = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("read directory", info, e))?;
            let fname = ent.file_name();
            let Some(stem) = fname.as_bytes().strip_suffix(b".list") else {
                continue;
            };
            let stem = String::from_utf8_lossy(stem);
            let (name, arch) = match stem.split_once(':') {
                Some((n, a)) => (n, Some(a)),
                None => (stem.as_ref(), None),
            };
            let idx = self.packages.iter().position(|p| {
                p.name == name
                    && arch.is_none_or(|a| p.arch == a)
                    && (arch.is_some() || self.by_key.contains_key(name))
            });
            if let Some(idx) = idx {
                lists.push((idx, ent.path()));
            }
        }
        // Owner ties go to the first package by name, whatever order readdir gave.
        lists.sort();
        for (idx, path) in lists {
            let data = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            let mut files = Vec::new();
            for line in data.split(|&b| b == b'\n') {
                if line.is_empty() || line == b"/." {
                    continue;
                }
                let p = canon.path(line);
                self.owners.entry(p.clone()).or_insert(idx as u32);
                files.push(p);
            }
            self.files[idx] = files;
        }
        Ok(())
    }

    fn load_auto_marks(&mut self, root: &Path) {
        let Ok(text) = std::fs::read_to_string(root.join("var/lib/apt/extended_states")) else {
            return;
        };
        for para in deb822::parse(&text) {
            if para.get("Auto-Installed") != Some("1") {
                continue;
            }
            let (Some(name), arch) = (para.get("Package"), para.get("Architecture")) else {
                continue;
            };
            for p in self.packages.iter_mut() {
                if p.name == name && arch.is_none_or(|a| p.arch == a || p.arch == "all") {
                    p.auto = true;
                }
            }
        }
    }
}

impl PackageDb for DpkgDb {
    fn manager(&self) -> &'static str {
        "dpkg"
    }

    fn packages(&self) -> &[Package] {
        &self.packages
    }

    fn native_arch(&self) -> Option<&str> {
        self.native_arch.as_deref()
    }

    fn owner(&self, path: &[u8]) -> Option<&str> {
        self.key(*self.owners.get(path)? as usize)
    }

    fn files_of(&self, package: &str) -> &[Vec<u8>] {
        match self.by_key.get(package) {
            Some(&i) => &self.files[i as usize],
            None => &[],
        }
    }
}

fn read_text(path: &Path) -> Result<String> {
    let data = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    String::from_utf8(data).map_err(|e| Error::PackageDb {
        path: path.to_path_buf(),
        message: format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_usr_paths_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::fs::write(
            root.join("var/lib/dpkg/status"),
            "Package: coreutils\nStatus: install ok installed\nArchitecture: amd64\nVersion: 9.1-1\n\n\
             Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.21\n\n\
             Package: gone\nStatus: purge ok not-installed\nArchitecture: amd64\n\n\
             Package: oldconf\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1\n\
             Conffiles:\n /etc/oldconf.conf 0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        std::fs::write(
            root.join("var/lib/dpkg/info/coreutils.list"),
            "/.\n/bin\n/bin/ls\n/usr\n/usr/bin\n/usr/bin/env\n",
        )
        .unwrap();
        let db = DpkgDb::open(root).unwrap();
        let names: Vec<_> = db.packages().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["coreutils", "dpkg", "oldconf"]);
        assert_eq!(db.packages()[2].status, "config-files");
        assert_eq!(db.native_arch(), Some("amd64"));
        assert_eq!(db.owner(b"/usr/bin/ls"), Some("coreutils"));
        assert_eq!(db.owner(b"/usr/bin/env"), Some("coreutils"));
        assert_eq!(db.owner(b"/bin"), Some("coreutils"));
        assert_eq!(db.owner(b"/usr/bin/cat"), None);
        assert_eq!(db.conffiles("oldconf")[0].0, b"/etc/oldconf.conf");
    }
}
