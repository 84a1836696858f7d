//! The format of an image file from its content, for `uforge image publish FILE` when no
//! format is given: disk formats by their magic numbers, archives by their first members.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::image::Format;
use crate::{Error, Result};

/// The format of the image file at `path`. A file no magic number matches is taken as raw.
pub fn detect(path: &Path) -> Result<Format> {
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let len = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    let mut head = vec![0u8; 4096];
    let n = crate::repo::read_full(&mut f, &mut head).map_err(|e| Error::io("read", path, e))?;
    head.truncate(n);
    let at = |o: usize, magic: &[u8]| {
        head.len() >= o + magic.len() && &head[o..o + magic.len()] == magic
    };
    if at(0, b"QFI\xfb") {
        return Ok(Format::Qcow2);
    }
    if at(0, b"KDMV") || at(0, b"# Disk DescriptorFile") {
        return Ok(Format::Vmdk);
    }
    if at(0, b"vhdxfile") {
        return Ok(Format::Vhdx);
    }
    if at(0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        return Ok(Format::Vdi);
    }
    if at(0, &[0x1f, 0x8b]) {
        return Ok(Format::TarGz);
    }
    if at(257, b"ustar") {
        return tar_kind(path, f);
    }
    if len >= 512 {
        let mut footer = [0u8; 8];
        f.seek(SeekFrom::Start(len - 512))
            .and_then(|_| f.read_exact(&mut footer))
            .map_err(|e| Error::io("read", path, e))?;
        if &footer == b"conectix" {
            return Ok(Format::Vhd);
        }
    }
    Ok(Format::Raw)
}

/// OCI layout, docker-archive or OVA, by the members a tar holds.
fn tar_kind(path: &Path, mut f: File) -> Result<Format> {
    f.rewind().map_err(|e| Error::io("read", path, e))?;
    let mut ar = tar::Archive::new(f);
    let entries = ar
        .entries_with_seek()
        .map_err(|e| Error::io("read", path, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io("read", path, e))?;
        let name = e.path_bytes();
        let name = name.strip_prefix(b"./").unwrap_or(&name);
        if name == b"oci-layout" || name == b"index.json" {
            return Ok(Format::Oci);
        }
        if name == b"manifest.json" {
            return Ok(Format::DockerArchive);
        }
        if name.ends_with(b".ovf") {
            return Ok(Format::Ova);
        }
    }
    Err(Error::Invalid(format!(
        "{} is a tar archive but not an OCI layout, a docker-archive or an OVA",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn formats_from_content() {
        let tmp = tempfile::tempdir().unwrap();
        let raw = tmp.path().join("d.img");
        std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
        assert_eq!(detect(&raw).unwrap(), Format::Raw);
        for (fmt, want) in [
            ("qcow2", Format::Qcow2),
            ("vmdk", Format::Vmdk),
            ("vhdx", Format::Vhdx),
            ("vdi", Format::Vdi),
            ("vpc", Format::Vhd),
        ] {
            let out = tmp.path().join(format!("d.{fmt}"));
            let mut c = Command::new("qemu-img");
            c.args(["convert", "-f", "raw", "-O", fmt]);
            if fmt == "vpc" {
                c.args(["-o", "subformat=fixed"]);
            }
            assert!(c.arg(&raw).arg(&out).status().unwrap().success());
            assert_eq!(detect(&out).unwrap(), want, "{fmt}");
        }
        let mk = |name: &str, member: &str| {
            let p = tmp.path().join(name);
            let mut b = tar::Builder::new(File::create(&p).unwrap());
            let mut h = tar::Header::new_ustar();
            h.set_size(2);
            h.set_cksum();
            b.append_data(&mut h, member, &b"{}"[..]).unwrap();
            b.finish().unwrap();
            p
        };
        assert_eq!(detect(&mk("a.tar", "oci-layout")).unwrap(), Format::Oci);
        assert_eq!(
            detect(&mk("b.tar", "manifest.json")).unwrap(),
            Format::DockerArchive
        );
        assert_eq!(detect(&mk("c.ova", "web01.ovf")).unwrap(), Format::Ova);
        assert!(detect(&mk("d.tar", "etc/passwd")).is_err());
    }
}
