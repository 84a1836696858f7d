//! The `ar` container of `.deb` files, read as a stream: a `.deb` can be hundreds of megabytes
//! and only needs one pass.

use std::io::{self, Read};

const MAGIC: &[u8; 8] = b"!<arch>\n";

/// Calls `each(name, contents)` for every member in archive order. A member the callback does
/// not read to the end is skipped over.
pub(crate) fn for_each_member<R: Read>(
    mut input: R,
    mut each: impl FnMut(&str, &mut dyn Read) -> Result<(), String>,
) -> Result<(), String> {
    let mut magic = [0u8; 8];
    input
        .read_exact(&mut magic)
        .map_err(|e| format!("reading ar magic: {e}"))?;
    if &magic != MAGIC {
        return Err("not an ar archive (bad magic)".into());
    }
    loop {
        let mut header = [0u8; 60];
        match read_full(&mut input, &mut header).map_err(|e| format!("reading ar header: {e}"))? {
            0 => return Ok(()),
            60 => {}
            _ => return Err("truncated ar header".into()),
        }
        if &header[58..60] != b"`\n" {
            return Err("malformed ar header (bad terminator)".into());
        }
        let name = String::from_utf8_lossy(&header[..16]);
        // GNU ar ends names with `/`; dpkg pads with spaces.
        let name = name.trim_end().trim_end_matches('/').to_string();
        let size: u64 = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("malformed size of ar member {name:?}"))?;
        let mut member = (&mut input).take(size);
        each(&name, &mut member)?;
        io::copy(&mut member, &mut io::sink()).map_err(|e| format!("reading {name}: {e}"))?;
        if member.limit() != 0 {
            return Err(format!("ar member {name} is truncated"));
        }
        if size % 2 == 1 {
            // Members are padded to an even offset; the final pad may be missing.
            let mut pad = [0u8; 1];
            read_full(&mut input, &mut pad).map_err(|e| format!("reading ar padding: {e}"))?;
        }
    }
}

/// Reads as much of `buf` as the input has; returns how much that was.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
pub(crate) fn build(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (name, data) in members {
        let h = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            data.len()
        );
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(bytes: &[u8], read_first: bool) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut out = Vec::new();
        for_each_member(bytes, |name, r| {
            let mut data = Vec::new();
            if read_first || out.is_empty() {
                r.read_to_end(&mut data).map_err(|e| e.to_string())?;
            }
            out.push((name.to_string(), data));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn members_and_padding() {
        let a = build(&[
            ("debian-binary", b"2.0\n"),
            ("odd/", b"abc"),
            ("last", b"z"),
        ]);
        let m = list(&a, true).unwrap();
        let names: Vec<_> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["debian-binary", "odd", "last"]);
        assert_eq!(m[1].1, b"abc");
        assert_eq!(m[2].1, b"z");
        // Unread members are skipped correctly.
        let m = list(&a, false).unwrap();
        assert_eq!(m.len(), 3);
        // The final pad byte is optional.
        assert_eq!(list(&a[..a.len() - 1], true).unwrap().len(), 3);
    }

    #[test]
    fn malformed() {
        assert!(list(b"notanarchive", true).unwrap_err().contains("magic"));
        let a = build(&[("x", b"0123456789")]);
        assert!(list(&a[..a.len() - 3], true)
            .unwrap_err()
            .contains("truncated"));
        let mut bad = a.clone();
        bad[8 + 58] = b'X';
        assert!(list(&bad, true).unwrap_err().contains("terminator"));
        assert!(list(&a[..20], true).unwrap_err().contains("header"));
    }
}
