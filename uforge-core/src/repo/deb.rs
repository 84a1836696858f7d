//! Reading a `.deb`: the files its `data.tar` ships (with digests) and the conffiles its
//! `control.tar` declares.

use std::collections::HashMap;
use std::io::Read;

use sha2::{Digest, Sha256};

use super::{ar, DebFile, DebManifest, PackageKey};
use crate::model::{FileKind, RawPath};
use crate::rawpath;

/// The two archives of a `.deb` that carry anything about its contents.
#[derive(PartialEq)]
enum Part {
    Control,
    Data,
}

/// Walks a `.deb` stream: checks its format version and hands `each` every `control.tar` and
/// `data.tar` member, decompressed. Other members (signatures added by debsigs) carry nothing
/// about the files.
fn for_each_part(
    input: impl Read,
    mut each: impl FnMut(Part, &mut dyn Read, &str) -> Result<(), String>,
) -> Result<(), String> {
    let mut version = None;
    ar::for_each_member(input, |name, r| {
        if name == "debian-binary" {
            let mut v = String::new();
            r.take(64)
                .read_to_string(&mut v)
                .map_err(|e| format!("reading {name}: {e}"))?;
            version = Some(v.trim().to_string());
        } else if let Some(ext) = name.strip_prefix("control.tar") {
            each(Part::Control, &mut decompress(ext, r, name)?, name)?;
        } else if let Some(ext) = name.strip_prefix("data.tar") {
            each(Part::Data, &mut decompress(ext, r, name)?, name)?;
        }
        Ok(())
    })?;
    match version.as_deref() {
        Some(v) if v.starts_with("2.") => Ok(()),
        Some(v) => Err(format!("unsupported .deb format version {v:?}")),
        None => Err("not a .deb (no debian-binary member)".into()),
    }
}

/// Reads a whole `.deb` stream. Errors are messages; the caller adds the package and file.
pub(crate) fn read_manifest(input: impl Read, key: PackageKey) -> Result<DebManifest, String> {
    let mut conffiles = None;
    let mut files = None;
    for_each_part(input, |part, r, name| {
        match part {
            Part::Control => conffiles = Some(read_conffiles(r, name)?),
            Part::Data => files = Some(read_data(r, name)?),
        }
        Ok(())
    })?;
    Ok(DebManifest {
        key,
        files: files.ok_or("no data.tar member")?,
        conffiles: conffiles.ok_or("no control.tar member")?,
    })
}

/// Reads a whole `.deb` stream and returns its `control` file (from `control.tar`), for
/// indexing a repository of built packages.
pub(crate) fn read_control(input: impl Read) -> Result<Vec<u8>, String> {
    let mut control = None;
    for_each_part(input, |part, r, name| {
        if part == Part::Control {
            control = Some(read_control_member(r, name)?);
        }
        Ok(())
    })?;
    control
        .ok_or("no control.tar member")?
        .ok_or_else(|| "control.tar has no control file".into())
}

fn read_control_member(input: impl Read, member: &str) -> Result<Option<Vec<u8>>, String> {
    const MAX: u64 = 16 << 20;
    let bad = |e: std::io::Error| format!("reading {member}: {e}");
    let mut tar = tar::Archive::new(input);
    for entry in tar.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        if rawpath::normalize(&entry.path_bytes()).as_deref() != Some(b"/control") {
            continue;
        }
        let mut text = Vec::new();
        entry.take(MAX + 1).read_to_end(&mut text).map_err(bad)?;
        if text.len() as u64 > MAX {
            return Err(format!("{member}: control file larger than {MAX} bytes"));
        }
        return Ok(Some(text));
    }
    Ok(None)
}

/// A decompressing reader for a member named `*.tar{ext}`.
fn decompress<'a>(
    ext: &str,
    r: &'a mut dyn Read,
    name: &str,
) -> Result<Box<dyn Read + 'a>, String> {
    Ok(match ext {
        "" => Box::new(r),
        ".gz" => Box::new(flate2::read::MultiGzDecoder::new(r)),
        ".xz" => Box::new(xz2::read::XzDecoder::new_multi_decoder(r)),
        ".lzma" => {
            let stream = xz2::stream::Stream::new_lzma_decoder(u64::MAX)
                .map_err(|e| format!("{name}: {e}"))?;
            Box::new(xz2::read::XzDecoder::new_stream(r, stream))
        }
        ".zst" => {
            Box::new(zstd::stream::read::Decoder::new(r).map_err(|e| format!("{name}: {e}"))?)
        }
        ".bz2" => {
            return Err(format!(
                "{name}: bzip2-compressed members are not supported"
            ))
        }
        _ => return Err(format!("{name}: unknown compression")),
    })
}

fn read_conffiles(input: impl Read, member: &str) -> Result<Vec<RawPath>, String> {
    let bad = |e: std::io::Error| format!("reading {member}: {e}");
    let mut tar = tar::Archive::new(input);
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if rawpath::normalize(&entry.path_bytes()).as_deref() != Some(b"/conffiles") {
            continue;
        }
        let mut text = Vec::new();
        entry.read_to_end(&mut text).map_err(bad)?;
        return Ok(parse_conffiles(&text));
    }
    Ok(Vec::new())
}

/// One path per line, possibly preceded by flags (`remove-on-upgrade /etc/x`).
fn parse_conffiles(text: &[u8]) -> Vec<RawPath> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let start = line.iter().position(|&b| b == b'/')?;
            let path = line[start..].trim_ascii_end();
            // The path is the first word that starts with `/`, not a `/` inside a flag.
            let flags_ok = start == 0 || line[start - 1] == b' ';
            flags_ok.then(|| path.to_vec())
        })
        .collect()
}

fn read_data(input: impl Read, member: &str) -> Result<Vec<DebFile>, String> {
    let bad = |e: std::io::Error| format!("reading {member}: {e}");
    let mut tar = tar::Archive::new(input);
    let mut files: Vec<DebFile> = Vec::new();
    let mut index: HashMap<RawPath, usize> = HashMap::new();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path_bytes().into_owned();
        let shown = rawpath::display(&raw);
        let path = rawpath::normalize(&raw)
            .ok_or_else(|| format!("{member}: member {shown:?} escapes the root"))?;
        let h = entry.header();
        let meta =
            |r: std::io::Result<u64>| r.map_err(|e| format!("{member}: member {shown:?}: {e}"));
        let mode = meta(h.mode().map(u64::from))? as u32 & 0o7777;
        let uid = meta(h.uid())? as u32;
        let gid = meta(h.gid())? as u32;
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let (kind, mut size, mut sha256, mut target) = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut hasher = Sha256::new();
                let n = std::io::copy(&mut entry, &mut hasher).map_err(bad)?;
                (FileKind::File, n, Some(hasher.finalize().into()), None)
            }
            tar::EntryType::Directory => (FileKind::Dir, 0, None, None),
            tar::EntryType::Symlink => {
                let t = link.ok_or_else(|| format!("{member}: symlink {shown:?} has no target"))?;
                (FileKind::Symlink, t.len() as u64, None, Some(t))
            }
            tar::EntryType::Link => {
                let t = link
                    .as_deref()
                    .and_then(rawpath::normalize)
                    .ok_or_else(|| format!("{member}: hard link {shown:?} has a bad target"))?;
                (FileKind::Hardlink, 0, None, Some(t))
            }
            tar::EntryType::Char => (FileKind::Char, 0, None, None),
            tar::EntryType::Block => (FileKind::Block, 0, None, None),
            tar::EntryType::Fifo => (FileKind::Fifo, 0, None, None),
            other => {
                return Err(format!(
                    "{member}: member {shown:?} has unsupported type {other:?}"
                ))
            }
        };
        if kind == FileKind::Hardlink {
            // A hard link names content stored earlier in the archive: give it that digest so
            // it compares like a file.
            if let Some(&i) = target.as_ref().and_then(|t| index.get(t)) {
                size = files[i].size;
                sha256 = files[i].sha256;
                if files[i].kind == FileKind::Hardlink {
                    target.clone_from(&files[i].target);
                }
            }
        }
        index.insert(path.clone(), files.len());
        files.push(DebFile {
            path,
            kind,
            mode,
            uid,
            gid,
            size,
            sha256,
            target,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conffile_lines() {
        let c = parse_conffiles(b"/etc/a\nremove-on-upgrade /etc/b\n\n/etc/with space  \nx/y\n");
        assert_eq!(c, [&b"/etc/a"[..], b"/etc/b", b"/etc/with space"]);
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }

    #[test]
    fn tiny_deb() {
        use tar::EntryType::{Directory, Link, Regular};
        let mut data = tar::Builder::new(Vec::new());
        let mut h = header(Directory, 0o755, 0);
        data.append_data(&mut h, "./", &[][..]).unwrap();
        let mut h = header(Regular, 0o4755, 5);
        h.set_uid(7);
        data.append_data(&mut h, "./usr/bin/x", &b"hello"[..])
            .unwrap();
        let mut h = header(Link, 0o755, 0);
        data.append_link(&mut h, "./usr/bin/y", "./usr/bin/x")
            .unwrap();
        let data = data.into_inner().unwrap();
        let mut control = tar::Builder::new(Vec::new());
        let mut h = header(Regular, 0o644, 7);
        control
            .append_data(&mut h, "./conffiles", &b"/etc/c\n"[..])
            .unwrap();
        let control = control.into_inner().unwrap();
        let deb = ar::build(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar", &control),
            ("data.tar", &data),
        ]);
        let m = read_manifest(&deb[..], PackageKey::new("t", "1", "all")).unwrap();
        assert_eq!(m.conffiles, [b"/etc/c".to_vec()]);
        assert_eq!(m.files.len(), 3);
        assert_eq!(
            (m.files[0].path.as_slice(), m.files[0].kind),
            (&b"/"[..], FileKind::Dir)
        );
        let x = &m.files[1];
        assert_eq!(
            (x.path.as_slice(), x.mode, x.uid, x.size),
            (&b"/usr/bin/x"[..], 0o4755, 7, 5)
        );
        let digest: [u8; 32] = Sha256::digest(b"hello").into();
        assert_eq!(x.sha256, Some(digest));
        let y = &m.files[2];
        assert_eq!(y.kind, FileKind::Hardlink);
        assert_eq!(y.target.as_deref(), Some(&b"/usr/bin/x"[..]));
        assert_eq!((y.size, y.sha256), (5, Some(digest)));

        let bz = ar::build(&[("debian-binary", b"2.0\n"), ("data.tar.bz2", b"x")]);
        assert!(read_manifest(&bz[..], m.key.clone())
            .unwrap_err()
            .contains("bzip2"));
    }
}
