//! pax extended header records (`"%d %s=%s\n"`, the length counting itself): encoding and a
//! strict parser. Values are bytes; keys are ASCII.

/// Marks a regular file member that changed on the source after the scan: its header holds
/// the file's metadata as it was sent (not the report's) and its digest is the one computed
/// over its data on arrival.
pub const AMENDED: &str = "UFORGE.amended";

/// A record of a global header naming (as its in-root path) a wanted file that vanished from
/// the source after the scan, in the place its member would have had.
pub const VANISHED: &str = "UFORGE.vanished";

/// Formats `n` in decimal into the end of `buf`, returning the digits.
fn decimal(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Number of decimal digits of `n`.
fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Appends one record whose key and value are each made of parts concatenated (so callers
/// build `SCHILY.xattr.NAME` or `secs.nanos` without allocating).
pub fn push_parts(out: &mut Vec<u8>, key: &[&[u8]], parts: &[&[u8]]) {
    let len = |ps: &[&[u8]]| ps.iter().map(|p| p.len()).sum::<usize>();
    let body = len(key) + len(parts) + 3;
    // The length prefix counts its own digits, so find the width that is self-consistent.
    let mut width = 1;
    while digits(body + width) != width {
        width += 1;
    }
    let mut tmp = [0u8; 20];
    out.extend_from_slice(decimal(&mut tmp, (body + width) as u64));
    out.push(b' ');
    for k in key {
        out.extend_from_slice(k);
    }
    out.push(b'=');
    for p in parts {
        out.extend_from_slice(p);
    }
    out.push(b'\n');
}

/// Appends a record with a byte value.
pub fn push(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    push_parts(out, &[key], &[value]);
}

/// Appends a record with a decimal value.
pub fn push_number(out: &mut Vec<u8>, key: &[u8], n: u64) {
    let mut tmp = [0u8; 20];
    push_parts(out, &[key], &[decimal(&mut tmp, n)]);
}

/// Appends a time as `secs.nnnnnnnnn`. pax times are one signed decimal, so a time before the
/// epoch with a fraction (stat's `-2 s + 0.5 s`) is written `-1.500000000`.
pub fn push_time(out: &mut Vec<u8>, key: &[u8], secs: i64, nsec: u32) {
    let (neg, whole, frac) = if secs < 0 && nsec > 0 {
        (true, (secs + 1).unsigned_abs(), 1_000_000_000 - nsec)
    } else {
        (secs < 0, secs.unsigned_abs(), nsec)
    };
    let mut w = [0u8; 20];
    let mut f = [0u8; 20];
    let frac = decimal(&mut f, u64::from(frac) + 1_000_000_000);
    let sign: &[u8] = if neg { b"-" } else { b"" };
    push_parts(
        out,
        &[key],
        &[sign, decimal(&mut w, whole), b".", &frac[1..]],
    );
}

/// Splits `data` into records and hands each `(key, value)` to `f`. Refuses anything that is
/// not exactly a sequence of well-formed records.
pub fn parse(
    mut data: &[u8],
    mut f: impl FnMut(&str, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    while !data.is_empty() {
        let space = data
            .iter()
            .take(21)
            .position(|&c| c == b' ')
            .ok_or("pax record without a length")?;
        let len = parse_u64(&data[..space]).ok_or("pax record length is not a number")?;
        let len = usize::try_from(len).map_err(|_| "pax record length overflows")?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("pax record length does not match its content".into());
        }
        let rec = &data[space + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or("pax record without '='")?;
        let key = std::str::from_utf8(&rec[..eq])
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or("pax record with an empty or non-UTF-8 key")?;
        f(key, &rec[eq + 1..])?;
        data = &data[len..];
    }
    Ok(())
}

/// A decimal number with no sign, no spaces and at least one digit.
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit()
            .then_some(())
            .and_then(|_| acc.checked_mul(10)?.checked_add(u64::from(c - b'0')))
    })
}

/// A pax time: optional `-`, seconds, optional fraction (up to nanoseconds are kept), turned
/// back into stat's form (seconds rounded down, non-negative nanoseconds).
pub fn parse_time(v: &[u8]) -> Option<(i64, u32)> {
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (whole, frac) = match v.iter().position(|&c| c == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    let whole = i64::try_from(parse_u64(whole)?).ok()?;
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut nsec = 0u32;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |&c| u32::from(c - b'0'));
    }
    Some(match (neg, nsec) {
        (false, _) => (whole, nsec),
        (true, 0) => (-whole, 0),
        (true, n) => (-whole - 1, 1_000_000_000 - n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut out = Vec::new();
        parse(data, |k, v| {
            out.push((k.to_string(), v.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        push(&mut out, b"path", b"caf\xe9/x\ny");
        push_number(&mut out, b"size", 1 << 40);
        push_time(&mut out, b"mtime", 1_700_000_000, 5);
        push_time(&mut out, b"atime", -2, 500_000_000);
        // A value that pushes the length from 2 to 3 digits.
        push(&mut out, b"k", &[b'v'; 94]);
        let r = records(&out).unwrap();
        assert_eq!(r[0], ("path".into(), b"caf\xe9/x\ny".to_vec()));
        assert_eq!(r[1].1, b"1099511627776");
        assert_eq!(r[2].1, b"1700000000.000000005");
        assert_eq!(r[3].1, b"-1.500000000");
        assert_eq!(parse_time(&r[3].1), Some((-2, 500_000_000)));
        assert_eq!(parse_time(&r[2].1), Some((1_700_000_000, 5)));
        assert_eq!(r[4].1.len(), 94);
        assert!(out.ends_with(
            &[b'v'; 94]
                .iter()
                .copied()
                .chain([b'\n'])
                .collect::<Vec<_>>()
        ));
        assert!(String::from_utf8_lossy(&out).contains("\n101 k="));
    }

    #[test]
    fn malformed() {
        for bad in [
            &b"5 a=b\n"[..],
            b"6 a=b\n7 ",
            b"x a=b\n",
            b"6 ab \n",
            b"6 =bc\n",
            b"99999999999999999999999 a=b\n",
            b"0 \n",
        ] {
            assert!(records(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_time(b"-0.25"), Some((-1, 750_000_000)));
        assert_eq!(parse_time(b"1e3"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
    }
}
