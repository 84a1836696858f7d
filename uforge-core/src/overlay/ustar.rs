//! The 512-byte ustar header block: field layout, octal numbers, checksums and the split of long
//! names into `prefix` and `name`.

/// Size of a tar block; headers and padded data are multiples of it.
pub const BLOCK: usize = 512;

/// One tar block.
pub type Block = [u8; BLOCK];

/// A header field: offset and width.
pub type Field = (usize, usize);

/// Member name (or its last part when `prefix` is set).
pub const NAME: Field = (0, 100);
/// Permission bits, octal.
pub const MODE: Field = (100, 8);
/// Owner id, octal.
pub const UID: Field = (108, 8);
/// Group id, octal.
pub const GID: Field = (116, 8);
/// Size of the member's data in the archive, octal.
pub const SIZE: Field = (124, 12);
/// Modification time in seconds, octal.
pub const MTIME: Field = (136, 12);
/// Header checksum.
pub const CHKSUM: Field = (148, 8);
/// Type of member (`0` file, `5` directory, `x` pax header...).
pub const TYPEFLAG: usize = 156;
/// Symlink target, or the earlier member a hard link names.
pub const LINKNAME: Field = (157, 100);
/// `magic` and `version` together.
pub const MAGIC: Field = (257, 8);
/// Owner name.
pub const UNAME: Field = (265, 32);
/// Group name.
pub const GNAME: Field = (297, 32);
/// Device major number, octal.
pub const DEVMAJOR: Field = (329, 8);
/// Device minor number, octal.
pub const DEVMINOR: Field = (337, 8);
/// Leading directories of a name too long for `name` (POSIX ustar only).
pub const PREFIX: Field = (345, 155);

/// `magic` + `version` of POSIX ustar.
pub const MAGIC_POSIX: &[u8; 8] = b"ustar\x0000";
/// `magic` + `version` as GNU tar writes them in its own format.
pub const MAGIC_GNU: &[u8; 8] = b"ustar  \x00";

/// Largest number an octal field holds: all but its last byte are digits, the last is a NUL.
pub const fn octal_max(f: Field) -> u64 {
    (1u64 << (3 * (f.1 as u32 - 1))) - 1
}

/// Writes `v` as zero-padded octal followed by a NUL. Returns false when it does not fit, which
/// callers check beforehand and carry in a pax record instead.
pub fn put_octal(b: &mut Block, f: Field, mut v: u64) -> bool {
    if v > octal_max(f) {
        return false;
    }
    let digits = &mut b[f.0..f.0 + f.1 - 1];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v & 7) as u8;
        v >>= 3;
    }
    b[f.0 + f.1 - 1] = 0;
    true
}

/// Copies `s` into a field; the caller has checked that it fits.
pub fn put_bytes(b: &mut Block, f: Field, s: &[u8]) {
    b[f.0..f.0 + s.len()].copy_from_slice(s);
}

/// A text field up to its first NUL.
pub fn text(b: &Block, f: Field) -> &[u8] {
    let raw = &b[f.0..f.0 + f.1];
    raw.iter()
        .position(|&c| c == 0)
        .map_or(raw, |end| &raw[..end])
}

/// Reads an octal field: optional leading spaces, digits, then NULs or spaces. An empty field is
/// 0; anything else (including GNU base-256 numbers, which this format never needs) is refused.
pub fn parse_octal(b: &Block, f: Field) -> Option<u64> {
    let raw = &b[f.0..f.0 + f.1];
    let start = raw.iter().position(|&c| c != b' ').unwrap_or(raw.len());
    let raw = &raw[start..];
    let end = raw
        .iter()
        .position(|&c| c == 0 || c == b' ')
        .unwrap_or(raw.len());
    if raw[end..].iter().any(|&c| c != 0 && c != b' ') {
        return None;
    }
    raw[..end].iter().try_fold(0u64, |acc, &c| {
        if !(b'0'..=b'7').contains(&c) || acc >> 61 != 0 {
            return None;
        }
        Some(acc << 3 | u64::from(c - b'0'))
    })
}

/// Sum of the block's bytes with the checksum field counted as spaces.
fn checksum(b: &Block) -> u64 {
    let all: u64 = b.iter().map(|&c| u64::from(c)).sum();
    let field: u64 = b[CHKSUM.0..CHKSUM.0 + CHKSUM.1]
        .iter()
        .map(|&c| u64::from(c))
        .sum();
    all - field + 8 * u64::from(b' ')
}

/// Fills the checksum field the way every tar writes it: six octal digits, NUL, space.
pub fn set_checksum(b: &mut Block) {
    let sum = checksum(b);
    put_octal(b, (CHKSUM.0, 7), sum);
    b[CHKSUM.0 + 7] = b' ';
}

/// Whether the checksum field matches the block.
pub fn checksum_ok(b: &Block) -> bool {
    parse_octal(b, CHKSUM) == Some(checksum(b))
}

/// Whether the block is all zeros (the end-of-archive marker).
pub fn is_zero(b: &Block) -> bool {
    b.iter().all(|&c| c == 0)
}

/// Splits a name too long for `name` into `prefix` and `name` at a slash, as ustar allows.
/// Returns the index of that slash, or `None` when no split fits.
pub fn split_at(name: &[u8]) -> Option<usize> {
    if name.len() > PREFIX.1 + 1 + NAME.1 {
        return None;
    }
    // The last byte may be the trailing slash of a directory: the name part must not be empty.
    let body = &name[..name.len() - 1];
    body.iter()
        .enumerate()
        .rev()
        .filter(|&(i, &c)| c == b'/' && i > 0)
        .map(|(i, _)| i)
        .skip_while(|&i| i > PREFIX.1)
        .find(|&i| name.len() - i - 1 <= NAME.1)
}

/// The member name stored in a header: `prefix/name` when a prefix is set.
pub fn full_name(b: &Block, out: &mut Vec<u8>) {
    out.clear();
    let prefix = text(b, PREFIX);
    if !prefix.is_empty() && &b[MAGIC.0..MAGIC.0 + 6] == b"ustar\0" {
        out.extend_from_slice(prefix);
        out.push(b'/');
    }
    out.extend_from_slice(text(b, NAME));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_checksum() {
        let mut b = [0u8; BLOCK];
        assert_eq!(octal_max(SIZE), (8 << 30) - 1);
        assert!(!put_octal(&mut b, SIZE, 8 << 30));
        assert!(put_octal(&mut b, SIZE, (8 << 30) - 1));
        assert_eq!(parse_octal(&b, SIZE), Some((8 << 30) - 1));
        assert!(!put_octal(&mut b, UID, 1 << 21));
        assert!(put_octal(&mut b, UID, (1 << 21) - 1));
        assert_eq!(parse_octal(&b, UID), Some((1 << 21) - 1));
        set_checksum(&mut b);
        assert!(checksum_ok(&b));
        b[0] ^= 1;
        assert!(!checksum_ok(&b));
        b[MODE.0..MODE.0 + 8].copy_from_slice(b"  644 \0\0");
        assert_eq!(parse_octal(&b, MODE), Some(0o644));
        b[MODE.0..MODE.0 + 8].copy_from_slice(b"0644x\0\0\0");
        assert_eq!(parse_octal(&b, MODE), None);
        b[MODE.0..MODE.0 + 8].copy_from_slice(b"\x80\0\0\0\0\0\0\x01");
        assert_eq!(parse_octal(&b, MODE), None);
    }

    #[test]
    fn name_split() {
        let long = [b"a".repeat(120), b"/".to_vec(), b"b".repeat(90)].concat();
        assert_eq!(split_at(&long), Some(120));
        let dir = [b"a".repeat(120), b"/".to_vec()].concat();
        assert_eq!(split_at(&dir), None);
        assert_eq!(split_at(&b"x".repeat(150)), None);
        let deep = [b"p/".repeat(70), b"n".repeat(99)].concat();
        let i = split_at(&deep).unwrap();
        assert!(i <= PREFIX.1 && deep.len() - i - 1 <= NAME.1);
        let late = [
            b"q".repeat(60),
            b"/".to_vec(),
            b"r/".repeat(60),
            b"s".repeat(40),
        ]
        .concat();
        assert_eq!(split_at(&late), Some(154));
    }
}
