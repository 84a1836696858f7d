//! Sparse files: finding data extents with `SEEK_DATA`/`SEEK_HOLE`, and the map that PAX sparse
//! format 1.0 puts at the start of a member's data (decimal lines: the extent count, then an
//! offset and a length per extent, padded to a block).

use std::fs::File;
use std::os::fd::AsRawFd;

use super::ustar::BLOCK;

/// An extent of data: offset and length in the logical file.
pub type Extent = (u64, u64);

/// Beyond this many extents a file is written dense: its map would cost more memory than the
/// holes save, and a file that fragmented is rarely worth the trouble.
pub const MAX_EXTENTS: usize = 1 << 16;

/// Finds the data extents of the first `size` bytes of `file` into `out`. Returns false when the
/// file should be written dense instead: the filesystem cannot tell holes, it has too many
/// extents, or it turns out to have no hole at all.
pub fn data_extents(file: &File, size: u64, out: &mut Vec<Extent>) -> std::io::Result<bool> {
    out.clear();
    let fd = file.as_raw_fd();
    let mut pos = 0u64;
    while pos < size {
        let Ok(at) = libc::off_t::try_from(pos) else {
            return Ok(false);
        };
        // SAFETY: lseek on a descriptor we own; it only moves the file offset, which nothing
        // else relies on (contents are read with pread).
        let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                // No data after `pos`: the rest is a hole.
                Some(libc::ENXIO) => break,
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => return Ok(false),
                _ => return Err(e),
            }
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let (data, hole) = (data as u64, (hole as u64).min(size));
        if data >= size {
            break;
        }
        if hole <= data || out.len() == MAX_EXTENTS {
            return Ok(false);
        }
        out.push((data, hole - data));
        pos = hole;
    }
    Ok(!(out.len() == 1 && out[0] == (0, size)))
}

/// Appends the sparse map of `extents` for a file of `size` bytes, padded to a whole block.
/// A file ending in a hole gets a final empty extent at its end: that is what makes GNU tar
/// extend the extracted file to its full size.
pub fn push_map(out: &mut Vec<u8>, extents: &[Extent], size: u64) {
    let start = out.len();
    let tail = extents.last().map_or(0, |&(o, l)| o + l) < size;
    let mut line = |n: u64| {
        out.extend_from_slice(n.to_string().as_bytes());
        out.push(b'\n');
    };
    line(extents.len() as u64 + u64::from(tail));
    for &(o, l) in extents {
        line(o);
        line(l);
    }
    if tail {
        line(size);
        line(0);
    }
    let len = out.len() - start;
    out.resize(start + len.div_ceil(BLOCK) * BLOCK, 0);
}

/// Reads a sparse map block by block.
#[derive(Debug, Default)]
pub struct MapParser {
    count: Option<u64>,
    number: Option<u64>,
    offset: Option<u64>,
    /// The extents read so far.
    pub extents: Vec<Extent>,
}

impl MapParser {
    /// Feeds the next block of the map. Returns `Ok(true)` once the map is complete (the rest
    /// of that block is padding). `max_extents` bounds the memory a hostile map can claim.
    pub fn feed(&mut self, block: &[u8], max_extents: usize) -> Result<bool, String> {
        for &c in block {
            if self.done() {
                return Ok(true);
            }
            match c {
                b'0'..=b'9' => {
                    let n = self.number.unwrap_or(0);
                    self.number = Some(
                        n.checked_mul(10)
                            .and_then(|n| n.checked_add(u64::from(c - b'0')))
                            .ok_or("sparse map number overflows")?,
                    );
                }
                b'\n' => {
                    let n = self.number.take().ok_or("empty line in the sparse map")?;
                    match (self.count, self.offset.take()) {
                        (None, _) if n > max_extents as u64 => {
                            return Err(format!("sparse map of {n} extents is over the limit"))
                        }
                        (None, _) => self.count = Some(n),
                        (Some(_), None) => self.offset = Some(n),
                        (Some(_), Some(o)) => self.extents.push((o, n)),
                    }
                }
                _ => return Err("sparse map holds something other than numbers".into()),
            }
        }
        Ok(self.done())
    }

    fn done(&self) -> bool {
        self.count.is_some_and(|c| self.extents.len() as u64 == c)
    }
}

/// Checks that extents are in order, do not overlap and lie within `size` bytes. Returns the
/// number of data bytes they hold.
pub fn check_extents(extents: &[Extent], size: u64) -> Result<u64, String> {
    let mut end = 0u64;
    let mut data = 0u64;
    for &(o, l) in extents {
        let e = o.checked_add(l).ok_or("sparse extent overflows")?;
        if o < end || e > size {
            return Err(format!(
                "sparse extent {o}+{l} overlaps another or lies beyond the file's {size} bytes"
            ));
        }
        end = e;
        data += l;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trip() {
        let ext = [(0, 10), (4096, 5)];
        let mut out = Vec::new();
        push_map(&mut out, &ext, 1 << 20);
        assert_eq!(out.len(), BLOCK);
        assert!(out.starts_with(b"3\n0\n10\n4096\n5\n1048576\n0\n\0"));
        let mut p = MapParser::default();
        assert!(p.feed(&out, 10).unwrap());
        assert_eq!(p.extents, [(0, 10), (4096, 5), (1 << 20, 0)]);
        assert_eq!(check_extents(&p.extents, 1 << 20), Ok(15));
        assert!(check_extents(&[(10, 5), (12, 1)], 100).is_err());
        assert!(check_extents(&[(10, 5)], 14).is_err());
        assert!(MapParser::default().feed(b"70000\n", 10).is_err());
        assert!(MapParser::default().feed(b"1\n\n", 10).is_err());
        assert!(MapParser::default().feed(b"1\n-4\n", 10).is_err());
        // A map spread over blocks is read to its end.
        let mut p = MapParser::default();
        assert!(!p.feed(b"1\n12", 10).unwrap());
        assert!(p.feed(b"3\n4\n\0\0", 10).unwrap());
        assert_eq!(p.extents, [(123, 4)]);
    }

    #[test]
    fn extents_of_a_sparse_file() {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = tempfile::tempfile().unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[7; 8192]).unwrap();
        f.set_len(4 << 20).unwrap();
        let mut ext = Vec::new();
        if data_extents(&f, 4 << 20, &mut ext).unwrap() {
            assert_eq!(check_extents(&ext, 4 << 20), Ok(8192));
            assert!(ext[0].0 <= 1 << 20);
        }
        let dense = tempfile::tempfile().unwrap();
        (&dense).write_all(&[1; 10000]).unwrap();
        assert!(!data_extents(&dense, 10000, &mut ext).unwrap());
    }
}
