//! The control data of a recreated package, as dpkg-repack assembles it: the package's paragraph
//! of the scanned `/var/lib/dpkg/status` without dpkg's own bookkeeping, its conffiles, and the
//! maintainer scripts dpkg kept under `/var/lib/dpkg/info`.

use std::collections::HashSet;
use std::io::Read;

use sha2::{Digest, Sha256};

#[cfg(test)]
use super::plan::INFO_MEMBERS;
use super::plan::{MemberKind, Plan};
use crate::blobstore::{to_hex, BlobStore};
use crate::deb822::Paragraph;
use crate::model::{FileEntry, RawPath};
use crate::rawpath;
use crate::repo::PackageKey;
use crate::Result;

/// Control members dpkg runs: they must be executable in the package.
const SCRIPTS: &[&str] = &["preinst", "postinst", "prerm", "postrm", "config"];

/// Control members that are data (debconf templates, trigger interests, shared library info).
const DATA: &[&str] = &["templates", "triggers", "shlibs", "symbols"];

/// Fields of the status file that are dpkg's bookkeeping, or that only repository indexes
/// carry: none belongs in a package's own control file.
const DROPPED: &[&str] = &[
    "Status",
    "Config-Version",
    "Conffiles",
    "Triggers-Pending",
    "Triggers-Awaited",
    "Filename",
    "MSDOS-Filename",
    "Size",
    "MD5sum",
    "SHA1",
    "SHA256",
    "SHA512",
    "Description-md5",
];

/// Most bytes of one control member read from the blob store; real ones are kilobytes, and the
/// limit keeps a hostile report from making the server read a huge blob into memory.
const MAX_MEMBER: u64 = 64 << 20;

/// One file of `control.tar`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ControlFile {
    /// Member name without `./` (`postinst`).
    pub name: &'static str,
    /// Permission bits.
    pub mode: u32,
    /// Content.
    pub data: Vec<u8>,
}

/// The paragraph of `key` in a parsed status file: same name, architecture and version, and
/// still installed (a purged package can linger as a `not-installed` paragraph).
pub(super) fn find_paragraph<'a>(
    paras: &'a [Paragraph],
    key: &PackageKey,
) -> Option<&'a Paragraph> {
    paras.iter().find(|p| {
        p.get("Package") == Some(key.name.as_str())
            && p.get("Architecture") == Some(key.arch.as_str())
            && p.get("Version") == Some(key.version.as_str())
            && p.get("Status")
                .and_then(|s| s.split_whitespace().nth(2))
                .is_none_or(|state| state != "not-installed")
    })
}

/// The control file: `Package` first (dpkg-deb expects it there), then every other field in
/// status-file order but dpkg's bookkeeping, continuation lines restored.
pub(super) fn control_file(para: &Paragraph) -> Vec<u8> {
    let mut out = Vec::new();
    let package = para
        .fields()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Package"));
    let rest = para.fields().filter(|(k, _)| {
        !k.eq_ignore_ascii_case("Package") && !DROPPED.iter().any(|d| k.eq_ignore_ascii_case(d))
    });
    // An empty field is invalid in a control file; dpkg would refuse the package.
    for (name, value) in package.chain(rest).filter(|(_, v)| !v.trim().is_empty()) {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut lines = value.split('\n');
        if let Some(first) = lines.next().filter(|l| !l.is_empty()) {
            out.push(b' ');
            out.extend_from_slice(first.as_bytes());
        }
        out.push(b'\n');
        // The parser took off the one leading space that marks a continuation line.
        for line in lines {
            out.push(b' ');
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// The paths of the status paragraph's `Conffiles` field (`PATH HASH [FLAGS]` lines; paths may
/// hold spaces), leaving out the ones dpkg marked obsolete or to remove: the package no longer
/// ships them.
pub(super) fn status_conffiles(para: &Paragraph) -> Vec<RawPath> {
    let Some(field) = para.get("Conffiles") else {
        return Vec::new();
    };
    field
        .lines()
        .filter_map(|line| {
            let mut words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
            let mut flagged = false;
            while let Some(&last) = words.last() {
                if last == "obsolete" || last == "remove-on-upgrade" {
                    flagged = true;
                    words.pop();
                } else {
                    break;
                }
            }
            // The last word is the digest; what comes before it is the path.
            words.pop()?;
            let path = words.join(" ");
            (!flagged && path.starts_with('/')).then(|| path.into_bytes())
        })
        .collect()
}

/// The paths of a package's own `conffiles` list. Lines with a flag (`remove-on-upgrade
/// /etc/x`) name files the package no longer ships.
pub(super) fn info_conffiles(text: &[u8]) -> Vec<RawPath> {
    text.split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii_end)
        .filter(|line| line.starts_with(b"/"))
        .map(<[u8]>::to_vec)
        .collect()
}

/// Every member of the package's `control.tar`: `control`, `conffiles` (those the package
/// still ships as regular files), and the maintainer scripts and data files the scan found.
pub(super) fn control_files(
    plan: &Plan,
    para: &Paragraph,
    blobs: &dyn BlobStore,
) -> Result<Vec<ControlFile>> {
    let multi_arch_same = para.get("Multi-Arch") == Some("same");
    let mut files = vec![ControlFile {
        name: "control",
        mode: 0o644,
        data: control_file(para),
    }];

    // The info file is the package's own conffiles list; the status field is dpkg's record of
    // it, used when the info file was not scanned.
    let declared = match plan.info("conffiles", multi_arch_same) {
        Some(e) => info_conffiles(&read_blob(plan, e, blobs)?),
        None => status_conffiles(para),
    };
    let regular: HashSet<&[u8]> = plan
        .members
        .iter()
        .filter(|m| matches!(m.kind, MemberKind::File { .. } | MemberKind::Hardlink(_)))
        .map(|m| m.path.as_slice())
        .collect();
    let mut listed = HashSet::new();
    let mut conffiles = Vec::new();
    for path in declared {
        // A conffile the admin deleted is not in the data: dpkg refuses a package that
        // declares a conffile it does not ship.
        if regular.contains(path.as_slice()) && listed.insert(path.clone()) {
            conffiles.extend_from_slice(&path);
            conffiles.push(b'\n');
        }
    }
    if !conffiles.is_empty() {
        files.push(ControlFile {
            name: "conffiles",
            mode: 0o644,
            data: conffiles,
        });
    }

    for (names, mode) in [(SCRIPTS, 0o755), (DATA, 0o644)] {
        for &name in names {
            if let Some(e) = plan.info(name, multi_arch_same) {
                files.push(ControlFile {
                    name,
                    mode,
                    data: read_blob(plan, e, blobs)?,
                });
            }
        }
    }
    Ok(files)
}

/// Reads the blob of a small report entry whole, checking it is what the report recorded.
pub(super) fn read_blob(plan: &Plan, e: &FileEntry, blobs: &dyn BlobStore) -> Result<Vec<u8>> {
    read_small_blob(e, blobs, MAX_MEMBER).map_err(|m| plan.err(m))
}

/// Reads the blob of `e` whole (at most `max` bytes), checking its size and digest. Errors are
/// messages naming the file; the caller adds what it is about.
pub(super) fn read_small_blob(
    e: &FileEntry,
    blobs: &dyn BlobStore,
    max: u64,
) -> std::result::Result<Vec<u8>, String> {
    let shown = rawpath::display(&e.path);
    let sha = e
        .sha256
        .ok_or_else(|| format!("the report has no content digest for {shown:?}"))?;
    if e.size > max {
        return Err(format!("{shown:?} is {} bytes, more than {max}", e.size));
    }
    if !blobs.has(&sha).map_err(|err| err.to_string())? {
        return Err(format!(
            "the blob store has no content for {shown:?} (sha256 {})",
            to_hex(&sha)
        ));
    }
    let mut data = Vec::new();
    blobs
        .open(&sha)
        .and_then(|r| {
            r.take(max + 1)
                .read_to_end(&mut data)
                .map_err(|err| crate::Error::io("read", format!("blob {}", to_hex(&sha)), err))
        })
        .map_err(|err| format!("reading the content of {shown:?}: {err}"))?;
    let got: [u8; 32] = Sha256::digest(&data).into();
    if data.len() as u64 != e.size || got != sha {
        return Err(format!(
            "the stored content of {shown:?} is not what the report recorded"
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb822;

    const STATUS: &str = "Package: other\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n\
Package: acme\nStatus: deinstall ok not-installed\nVersion: 1:2.0-1\nArchitecture: amd64\n\n\
Package: acme\n\
Status: install ok installed\n\
Priority: optional\n\
Section: admin\n\
Installed-Size: 12\n\
Maintainer: Ops <ops@example.invalid>\n\
Architecture: amd64\n\
Multi-Arch: foreign\n\
Version: 1:2.0-1\n\
Depends: libc6 (>= 2.34), adduser\n\
Conffiles:\n /etc/acme/a.conf 0ef50e01c1f155ded629a13cb4cb436f\n /etc/acme/with space.conf 0ef50e01c1f155ded629a13cb4cb436f\n /etc/acme/old.conf 0ef50e01c1f155ded629a13cb4cb436f obsolete\n /etc/acme/gone.conf newconffile remove-on-upgrade\n\
Config-Version: 1:1.9-1\n\
Description: the agent\n first line of the long description\n .\n   indented  code line  \n\
Homepage: https://example.invalid\n";

    #[test]
    fn paragraph_of_the_installed_version() {
        let paras = deb822::parse(STATUS);
        let key = PackageKey::new("acme", "1:2.0-1", "amd64");
        let p = find_paragraph(&paras, &key).unwrap();
        assert_eq!(p.get("Priority"), Some("optional"));
        assert!(find_paragraph(&paras, &PackageKey::new("acme", "1:2.0-1", "i386")).is_none());
        assert!(find_paragraph(&paras, &PackageKey::new("acme", "2.0-1", "amd64")).is_none());
    }

    #[test]
    fn control_file_without_bookkeeping() {
        let paras = deb822::parse(STATUS);
        let p = find_paragraph(&paras, &PackageKey::new("acme", "1:2.0-1", "amd64")).unwrap();
        let text = String::from_utf8(control_file(p)).unwrap();
        assert_eq!(
            text,
            "Package: acme\n\
Priority: optional\n\
Section: admin\n\
Installed-Size: 12\n\
Maintainer: Ops <ops@example.invalid>\n\
Architecture: amd64\n\
Multi-Arch: foreign\n\
Version: 1:2.0-1\n\
Depends: libc6 (>= 2.34), adduser\n\
Description: the agent\n first line of the long description\n .\n   indented  code line  \n\
Homepage: https://example.invalid\n"
        );
        // The result parses back to the same fields.
        let back = deb822::parse(&text);
        assert_eq!(back[0].get("Description"), p.get("Description"));
    }

    #[test]
    fn conffiles_of_the_info_file() {
        let c = info_conffiles(b"/etc/a\nremove-on-upgrade /etc/b\n\n/etc/with space  \n");
        assert_eq!(c, [&b"/etc/a"[..], b"/etc/with space"]);
    }

    #[test]
    fn info_members_cover_every_control_member() {
        for m in SCRIPTS.iter().chain(DATA).chain(&["conffiles"]) {
            assert!(INFO_MEMBERS.contains(m), "{m}");
        }
        assert_eq!(INFO_MEMBERS.len(), SCRIPTS.len() + DATA.len() + 1);
    }

    #[test]
    fn conffiles_of_the_status_field() {
        let paras = deb822::parse(STATUS);
        let p = find_paragraph(&paras, &PackageKey::new("acme", "1:2.0-1", "amd64")).unwrap();
        assert_eq!(
            status_conffiles(p),
            [&b"/etc/acme/a.conf"[..], b"/etc/acme/with space.conf"]
        );
    }
}
