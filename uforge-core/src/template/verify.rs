//! `image verify --template`: whether an image is what its template states.
//!
//! An image generated from a template holds far more than the template lists (every file of
//! every package), so it is not compared whole, as a black-box image is with its scan: each
//! thing the template states is looked for in the image instead. Packages must be installed
//! (at their version when pinned, `ospkgs` at theirs); My Software files must be there with
//! their kind, content, mode, owner, link target, device and extended attributes (their time
//! too when the template gives one); paths a component removes must be absent unless a later
//! component puts them back; boot scripts must be installed in run order with the unit that
//! runs them; and the install profile's time zone, host name and accounts must be set (the
//! files the profile writes are its own: a component's copy of them is not compared).
//! What the image's tuning log says it changed for the target is explained, as in the
//! black-box comparison.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::apply::{boot_script_paths, profile_paths, unit_paths, zone_of};
use super::generate::Ids;
use super::{Content, SoftwareFile, Template};
use crate::analysis::PackageChange;
use crate::fsroot::{Links, RootDir};
use crate::image::reconcile::scan_like;
use crate::image::verify::{tuning_log_of, with_image_root, Difference};
use crate::image::TuningLog;
use crate::model::{FileEntry, FileKind, RawPath, ReportHeader};
use crate::rawpath::display;
use crate::report::ReportReader;
use crate::{Error, Result};

/// What `verify_template` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TemplateVerification {
    /// Statements of the template the image does not meet: `removed` (absent from the
    /// image), `present` (a path a component removes), `modified` (with what differs).
    pub unexplained: Vec<Difference>,
    /// Packages the template lists that the image lacks (`after` is None) or has at another
    /// version than the pinned one.
    pub unexplained_packages: Vec<PackageChange>,
    /// Paths checked.
    pub entries: u64,
    /// Differences the image's tuning log explains (the target's fstab, bootloader files...).
    pub explained: u64,
    /// Packages checked.
    pub packages: u64,
}

impl TemplateVerification {
    /// Whether the image is everything the template states.
    pub fn is_faithful(&self) -> bool {
        self.unexplained.is_empty() && self.unexplained_packages.is_empty()
    }
}

/// What one path of the image must be.
enum Expect<'t> {
    /// A My Software file.
    File(&'t SoftwareFile),
    /// A file written by the generation (boot scripts, profile files): this content and,
    /// when given, this mode.
    Written { sha256: [u8; 32], mode: Option<u32> },
    /// A symbolic link to this target.
    Link(Vec<u8>),
    /// Removed by this component.
    Absent(&'t str),
}

/// Compares the image `image` (any form [`crate::image::verify::verify`] reads) with
/// `template`. `work` holds the image's mount and its scan.
pub fn verify_template(image: &Path, t: &Template, work: &Path) -> Result<TemplateVerification> {
    let scanned = work.join("image.report");
    let (ids, log) = with_image_root(image, work, |root| {
        // The image's account tables, read without following its links out of it.
        let ids = Ids::read(&RootDir::open(root, Links::InRoot)?)?;
        scan_like(root, &ReportHeader::default(), &scanned)?;
        Ok((ids, tuning_log_of(root)))
    })?;
    let log: TuningLog = match log {
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::Invalid(format!("the image's tuning log is not valid: {e}")))?,
        None => TuningLog::default(),
    };
    let explained = log.explained();
    let mut out = TemplateVerification::default();
    let expect = expectations(t);
    out.entries = expect.len() as u64;

    let mut report = ReportReader::open(&scanned)?;
    let installed = report.header().packages.clone();
    let mut seen: HashSet<RawPath> = HashSet::new();
    while let Some(e) = report.next_file()? {
        let Some(x) = expect.get(&e.path) else {
            continue;
        };
        seen.insert(e.path.clone());
        let what = match x {
            Expect::File(f) => file_diff(f, &e, &ids),
            Expect::Written { sha256, mode } => {
                let mut w = Vec::new();
                if e.kind != FileKind::File {
                    w.push(format!("kind: a file expected, {} found", e.kind.as_str()));
                } else if e.sha256.as_ref() != Some(sha256) {
                    w.push("content".into());
                }
                if mode.is_some_and(|m| m != e.mode) {
                    w.push(format!(
                        "mode: {:o} expected, {:o} found",
                        mode.unwrap_or(0),
                        e.mode
                    ));
                }
                w
            }
            Expect::Link(target) => {
                if e.kind == FileKind::Symlink && e.target.as_deref() == Some(&target[..]) {
                    Vec::new()
                } else {
                    vec![format!("target: a link to {} expected", display(target))]
                }
            }
            Expect::Absent(bundle) => {
                out.unexplained.push(Difference {
                    path: display(&e.path),
                    status: "present".into(),
                    what: vec![format!("bundle {bundle} removes it")],
                });
                continue;
            }
        };
        if what.is_empty() {
            continue;
        }
        if explained.contains_key(e.path.as_slice()) {
            out.explained += 1;
        } else {
            out.unexplained.push(Difference {
                path: display(&e.path),
                status: "modified".into(),
                what,
            });
        }
    }
    let _ = std::fs::remove_file(&scanned);
    let mut missing: Vec<(&RawPath, &Expect)> = expect
        .iter()
        .filter(|(p, x)| !seen.contains(*p) && !matches!(x, Expect::Absent(_)))
        .collect();
    missing.sort_by(|a, b| a.0.cmp(b.0));
    for (p, _) in missing {
        if explained.contains_key(p.as_slice()) {
            out.explained += 1;
            continue;
        }
        out.unexplained.push(Difference {
            path: display(p),
            status: "removed".into(),
            what: Vec::new(),
        });
    }

    for u in &t.install.users {
        match ids.users.get(&u.name) {
            Some(&uid) if uid == u.uid => {}
            found => out.unexplained.push(Difference {
                path: "/etc/passwd".into(),
                status: "modified".into(),
                what: vec![match found {
                    Some(uid) => format!("user {}: uid {} expected, {uid} found", u.name, u.uid),
                    None => format!("user {}: absent", u.name),
                }],
            }),
        }
    }

    let mut wanted: Vec<(String, Option<String>, Option<String>)> =
        t.os.pkgs
            .iter()
            .map(|p| (p.name.clone(), p.arch.clone(), p.version.clone()))
            .collect();
    for c in &t.software {
        for p in &c.ospkgs {
            wanted.push((
                p.name.clone(),
                Some(p.arch.clone()),
                Some(p.version.clone()),
            ));
        }
    }
    out.packages = wanted.len() as u64;
    for (name, arch, version) in wanted {
        let found: Vec<_> = installed
            .iter()
            .filter(|p| {
                p.name == name
                    && arch
                        .as_ref()
                        .is_none_or(|a| a == &p.arch || a == &t.os.arch && p.arch == "all")
            })
            .collect();
        let ok = match &version {
            Some(v) => found.iter().any(|p| &p.version == v),
            None => !found.is_empty(),
        };
        if !ok {
            out.unexplained_packages.push(PackageChange {
                name,
                before: Some(version.unwrap_or_else(|| "any version".into())),
                after: found.first().map(|p| p.version.clone()),
            });
        }
    }
    Ok(out)
}

/// Every path the template states something about, the later statement winning (a path a
/// component removes and a later one puts back must be there).
fn expectations(t: &Template) -> HashMap<RawPath, Expect<'_>> {
    let mut x = HashMap::new();
    for c in &t.software {
        for p in &c.removed {
            x.insert(p.clone(), Expect::Absent(&c.name));
        }
        for f in &c.files {
            x.insert(f.path.clone(), Expect::File(f));
        }
    }
    // The profile is applied after My Software: what it writes is its own, whatever a
    // component says; the parts of it stated exactly are expected below.
    for p in profile_paths(&t.install) {
        x.remove(p.as_bytes());
    }
    let written = |text: String| Expect::Written {
        sha256: Sha256::digest(text.as_bytes()).into(),
        mode: None,
    };
    let (tz, zone) = zone_of(&t.install);
    x.insert(b"/etc/timezone".to_vec(), written(format!("{tz}\n")));
    x.insert(b"/etc/localtime".to_vec(), Expect::Link(zone.into_bytes()));
    if let Some(h) = &t.install.hostname {
        x.insert(b"/etc/hostname".to_vec(), written(format!("{h}\n")));
    }
    if !t.boot_scripts.is_empty() {
        for (path, s) in boot_script_paths(&t.boot_scripts) {
            if let Content::Blob { sha256, .. } = &s.content {
                let mode = Some(0o755);
                x.insert(
                    path.into_bytes(),
                    Expect::Written {
                        sha256: *sha256,
                        mode,
                    },
                );
            }
        }
        let (unit, wants) = unit_paths();
        x.insert(wants.into_bytes(), Expect::Link(unit.into_bytes()));
    }
    x
}

/// What differs between a My Software file and the image's entry, owners compared by name
/// where the template has one (the image's ids may differ from the source's).
fn file_diff(f: &SoftwareFile, e: &FileEntry, ids: &Ids) -> Vec<String> {
    let mut what = Vec::new();
    let reg = |k: FileKind| {
        if k == FileKind::Hardlink {
            FileKind::File
        } else {
            k
        }
    };
    if reg(f.kind) != reg(e.kind) {
        what.push(format!(
            "kind: {} expected, {} found",
            f.kind.as_str(),
            e.kind.as_str()
        ));
        return what;
    }
    let hardlink = f.kind == FileKind::Hardlink || e.kind == FileKind::Hardlink;
    if let (Some(Content::Blob { sha256, size }), false) = (&f.content, hardlink) {
        if e.sha256.as_ref() != Some(sha256) || e.size != *size {
            what.push("content".into());
        }
    }
    if f.mode != e.mode {
        what.push(format!("mode: {:o} expected, {:o} found", f.mode, e.mode));
    }
    let (uid, gid) = ids.owner_of(f);
    if (uid, gid) != (e.uid, e.gid) {
        what.push(format!(
            "owner: {uid}:{gid} expected, {}:{} found",
            e.uid, e.gid
        ));
    }
    if f.kind == FileKind::Symlink && f.target != e.target {
        what.push("target".into());
    }
    if f.kind != FileKind::Dir && !hardlink && f.mtime.is_some_and(|m| m != e.mtime) {
        what.push("mtime".into());
    }
    if f.xattrs != e.xattrs {
        what.push("xattrs".into());
    }
    if f.rdev != e.rdev {
        what.push("device".into());
    }
    what
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;
    use crate::template::file::from_yaml;
    use crate::template::{BOOT_DIR, BOOT_UNIT};

    fn hex(b: &[u8]) -> String {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    }

    /// A root made by hand as a generation would leave it, and the template it meets.
    fn root_and_template(root: &Path) -> Template {
        let conf = b"port = 8080\n";
        let script = b"#!/bin/sh\necho hello\n";
        for d in [
            "etc/systemd/system/multi-user.target.wants",
            "srv/app",
            "var/lib/dpkg",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("srv/app/conf"), conf).unwrap();
        std::fs::set_permissions(root.join("srv/app/conf"), PermissionsExt::from_mode(0o640))
            .unwrap();
        std::fs::set_permissions(root.join("srv/app"), PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(root.join("etc/timezone"), "Asia/Tokyo\n").unwrap();
        // The profile's locale rewrote the component's copy of locale.gen.
        std::fs::write(root.join("etc/locale.gen"), "en_US.UTF-8 UTF-8\n").unwrap();
        symlink("/usr/share/zoneinfo/Asia/Tokyo", root.join("etc/localtime")).unwrap();
        let boot = root.join(&BOOT_DIR[1..]).join("firstboot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(boot.join("0000-hello"), script).unwrap();
        std::fs::set_permissions(boot.join("0000-hello"), PermissionsExt::from_mode(0o755))
            .unwrap();
        symlink(
            format!("/etc/systemd/system/{BOOT_UNIT}"),
            root.join("etc/systemd/system/multi-user.target.wants")
                .join(BOOT_UNIT),
        )
        .unwrap();
        std::fs::write(
            root.join("var/lib/dpkg/status"),
            "Package: hello\nStatus: install ok installed\nPriority: optional\nVersion: 2.10-3\n\
             Architecture: amd64\n\n",
        )
        .unwrap();
        let yaml = format!(
            "format: uforge-template\nversion: 1\nstack:\n  name: app\n  version: '1'\n  os:\n    \
             name: debian\n    release: bookworm\n    arch: amd64\n    pkgs:\n    \
             - {{name: hello, version: 2.10-3}}\n  installation:\n    timezone: Asia/Tokyo\n    \
             locale: en_US.UTF-8\n  bundles:\n  - name: app\n    version: '1'\n    files:\n    \
             - {{path: /etc/locale.gen, type: file, mode: '0644', sha256: {}, size: 7}}\n    \
             - {{path: /srv/app, type: dir, mode: '0755'}}\n    \
             - {{path: /srv/app/conf, type: file, mode: '0640', sha256: {}, size: {}}}\n    \
             removed: [/etc/motd]\n  config:\n  \
             - {{name: hello, frequency: firstboot, sha256: {}, size: {}}}\n",
            hex(b"# none\n"),
            hex(conf),
            conf.len(),
            hex(script),
            script.len()
        );
        from_yaml(&yaml, "test").unwrap()
    }

    #[test]
    fn an_image_root_meets_its_template_and_each_difference_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let t = root_and_template(&root);
        let work = tmp.path().join("work");
        let v = verify_template(&root, &t, &work).unwrap();
        assert!(v.is_faithful(), "{v:#?}");
        assert_eq!((v.entries, v.packages), (7, 1), "{v:#?}");

        std::fs::set_permissions(root.join("srv/app/conf"), PermissionsExt::from_mode(0o644))
            .unwrap();
        std::fs::write(root.join("etc/motd"), "left over\n").unwrap();
        std::fs::remove_file(root.join(&BOOT_DIR[1..]).join("firstboot/0000-hello")).unwrap();
        std::fs::write(root.join("etc/timezone"), "Etc/UTC\n").unwrap();
        let status = root.join("var/lib/dpkg/status");
        let text = std::fs::read_to_string(&status).unwrap();
        std::fs::write(&status, text.replace("2.10-3", "2.10-2")).unwrap();
        let v = verify_template(&root, &t, &work).unwrap();
        let got: Vec<(&str, &str, String)> = v
            .unexplained
            .iter()
            .map(|d| (d.status.as_str(), d.path.as_str(), d.what.join(", ")))
            .collect();
        assert_eq!(
            got,
            [
                ("present", "/etc/motd", "bundle app removes it".to_string()),
                ("modified", "/etc/timezone", "content".to_string()),
                (
                    "modified",
                    "/srv/app/conf",
                    "mode: 640 expected, 644 found".to_string()
                ),
                (
                    "removed",
                    &format!("{BOOT_DIR}/firstboot/0000-hello"),
                    String::new()
                ),
            ]
        );
        assert_eq!(
            v.unexplained_packages,
            [PackageChange {
                name: "hello".into(),
                before: Some("2.10-3".into()),
                after: Some("2.10-2".into()),
            }]
        );
    }
}
