//! `Release` files: the signed list of index files and their digests.

use std::collections::HashMap;

use super::parse_sha256;
use crate::deb822;

/// What a `Release` file says that matters here.
#[derive(Debug, Default)]
pub(crate) struct Release {
    /// Index file path (relative to the Release file's directory) to (size, SHA-256).
    pub sha256: HashMap<String, (u64, [u8; 32])>,
    /// `Acquire-By-Hash: yes`: indexes are also published under `by-hash/SHA256/<digest>`,
    /// which cannot change under a reader while the mirror updates.
    pub by_hash: bool,
    /// `No-Support-for-Architecture-all: Packages`: `all` packages are listed in every
    /// `binary-ARCH` index, so `binary-all` must not be read (it would only duplicate them).
    pub all_in_arch_indexes: bool,
    /// `Architectures`, if given.
    pub architectures: Option<Vec<String>>,
    /// `Valid-Until` as written (an RFC 2822 date), if given.
    pub valid_until: Option<String>,
    /// `Origin`, `Label`, `Suite` and `Codename`: which distribution release this is.
    pub identity: ReleaseIdentity,
}

/// Which distribution release a repository carries, as its Release file says.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseIdentity {
    /// `Origin` (`Debian`).
    pub origin: Option<String>,
    /// `Label` (`Debian-Security`).
    pub label: Option<String>,
    /// `Suite` (`oldstable-security`).
    pub suite: Option<String>,
    /// `Codename` (`bookworm-security`).
    pub codename: Option<String>,
}

impl Release {
    /// Parses Release text; malformed `SHA256` lines are errors (they could hide a file).
    pub fn parse(text: &str) -> Result<Self, String> {
        let para = deb822::parse(text).into_iter().next().unwrap_or_default();
        let mut out = Release {
            by_hash: para
                .get("Acquire-By-Hash")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            all_in_arch_indexes: para
                .get("No-Support-for-Architecture-all")
                .is_some_and(|v| v.split_whitespace().any(|w| w == "Packages")),
            architectures: para
                .get("Architectures")
                .map(|v| v.split_whitespace().map(str::to_string).collect()),
            valid_until: para.get("Valid-Until").map(str::to_string),
            identity: ReleaseIdentity {
                origin: para.get("Origin").map(str::to_string),
                label: para.get("Label").map(str::to_string),
                suite: para.get("Suite").map(str::to_string),
                codename: para.get("Codename").map(str::to_string),
            },
            ..Release::default()
        };
        for line in para.get("SHA256").unwrap_or("").lines() {
            let mut w = line.split_whitespace();
            let (Some(digest), Some(size), Some(path), None) =
                (w.next(), w.next(), w.next(), w.next())
            else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(format!("malformed SHA256 line {line:?}"));
            };
            let digest =
                parse_sha256(digest).ok_or_else(|| format!("malformed SHA256 line {line:?}"))?;
            let size = size
                .parse()
                .map_err(|_| format!("malformed size in SHA256 line {line:?}"))?;
            out.sha256.insert(path.to_string(), (size, digest));
        }
        Ok(out)
    }
}

impl Release {
    /// Whether the repository publishes a `binary-all` index, by apt's rules: only when the
    /// Release lists `all` among its `Architectures` (or names none) and does not say
    /// `No-Support-for-Architecture-all: Packages` (then `all` packages are in every
    /// `binary-ARCH` index).
    pub fn has_binary_all(&self) -> bool {
        !self.all_in_arch_indexes
            && self
                .architectures
                .as_ref()
                .is_none_or(|a| a.iter().any(|x| x == "all"))
    }

    /// Whether the repository builds `arch`: listed in `Architectures`, or none listed.
    pub fn builds(&self, arch: &str) -> bool {
        if arch == "all" {
            return self.has_binary_all();
        }
        self.architectures
            .as_ref()
            .is_none_or(|a| a.iter().any(|x| x == arch))
    }

    /// Fails when `Valid-Until` is before `now` (seconds since the epoch), naming the suite
    /// and the date: apt refuses such a Release, since a mirror that stopped updating (or
    /// replays an old signed file) would hide security updates.
    pub fn check_valid_until(&self, now: i64) -> Result<(), String> {
        let Some(text) = &self.valid_until else {
            return Ok(());
        };
        let until = parse_rfc2822(text).ok_or_else(|| format!("malformed Valid-Until {text:?}"))?;
        if until < now {
            let suite = self
                .identity
                .codename
                .as_deref()
                .or(self.identity.suite.as_deref())
                .unwrap_or("(unnamed suite)");
            return Err(format!(
                "the Release of {suite} expired on {text} (Valid-Until): the mirror is stale; \
                 add [check-valid-until=no] to the sources line to use it anyway"
            ));
        }
        Ok(())
    }
}

/// Seconds since the epoch of a Release date (`Tue, 08 Dec 2026 01:33:13 UTC`, the form
/// apt's `RFC1123StrToTime` reads; a numeric zone such as `+0000` is accepted too).
pub(crate) fn parse_rfc2822(text: &str) -> Option<i64> {
    let mut w = text.split_whitespace();
    let mut day = w.next()?;
    if day.ends_with(',') {
        day = w.next()?;
    }
    let day: i64 = day.parse().ok()?;
    let month = w.next()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m.eq_ignore_ascii_case(month))? as i64
        + 1;
    let year: i64 = w.next()?.parse().ok()?;
    let mut hms = w.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next().unwrap_or(Some(0))?);
    let offset = match w.next() {
        None | Some("UTC" | "GMT" | "Z") => 0,
        Some(z) if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let v: i64 = z[1..].parse().ok()?;
            let secs = (v / 100) * 3600 + (v % 100) * 60;
            if z.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        Some(_) => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + m * 60 + s - offset)
}

/// The signed text of a clearsigned message, without checking the signature: for
/// `[trusted=yes]` repositories, whose InRelease is read but not verified.
pub(crate) fn strip_clearsign(text: &str) -> Result<String, String> {
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("-----BEGIN PGP SIGNED MESSAGE-----") {
        return Err("not a clearsigned message".into());
    }
    // Armor headers (`Hash: SHA256`) end at the first empty line.
    for l in lines.by_ref() {
        if l.trim().is_empty() {
            break;
        }
    }
    let mut out = String::new();
    for l in lines {
        if l.trim_end() == "-----BEGIN PGP SIGNATURE-----" {
            return Ok(out);
        }
        // Dash-escaping (RFC 4880 7.1) protects lines that start with a dash.
        out.push_str(l.strip_prefix("- ").unwrap_or(l));
        out.push('\n');
    }
    Err("clearsigned message without signature".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5";

    #[test]
    fn sha256_section() {
        let text = format!(
            "Origin: Debian\nAcquire-By-Hash: yes\nNo-Support-for-Architecture-all: Packages\n\
             Architectures: all amd64\nMD5Sum:\n 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 main/x\n\
             SHA256:\n {DIGEST}  8790396 main/binary-amd64/Packages.xz\n {DIGEST} 12 main/binary-amd64/Packages\n"
        );
        let r = Release::parse(&text).unwrap();
        assert!(r.by_hash && r.all_in_arch_indexes);
        assert_eq!(r.architectures.unwrap(), ["all", "amd64"]);
        assert_eq!(r.sha256.len(), 2);
        let (size, digest) = r.sha256["main/binary-amd64/Packages.xz"];
        assert_eq!(size, 8790396);
        assert_eq!(super::super::hex(&digest), DIGEST);
        assert!(!r.sha256.contains_key("main/x"));

        assert!(Release::parse("SHA256:\n zz 12 main/x\n").is_err());
        assert!(Release::parse(&format!("SHA256:\n {DIGEST} x main/x\n")).is_err());
        assert!(Release::parse("Origin: x\n").unwrap().sha256.is_empty());
    }

    /// A Release file saved from deb.debian.org (signed InRelease, read without checking).
    fn saved(name: &str) -> Release {
        let path = format!(
            "{}/src/repo/testdata/{name}.InRelease",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        Release::parse(&strip_clearsign(&text).unwrap()).unwrap()
    }

    #[test]
    fn which_indexes_exist_by_apts_rules() {
        // The security suites list binary-all indexes but no `all` architecture: apt never
        // reads them, and the mirror's copies are stale.
        for suite in ["bookworm-security", "trixie-security", "bullseye-security"] {
            let r = saved(suite);
            assert!(
                r.sha256.contains_key("main/binary-all/Packages.xz"),
                "{suite}"
            );
            assert!(!r.has_binary_all() && !r.builds("all"), "{suite}");
            assert!(r.builds("amd64") && !r.builds("mips64el"), "{suite}");
            assert!(r.by_hash && !r.all_in_arch_indexes, "{suite}");
        }
        // The main suites list `all` but say its packages are in the binary-ARCH indexes.
        for suite in ["bookworm", "bookworm-updates", "trixie", "bullseye"] {
            let r = saved(suite);
            assert!(r.architectures.as_ref().unwrap().iter().any(|a| a == "all"));
            assert!(r.all_in_arch_indexes && !r.has_binary_all(), "{suite}");
            assert!(r.builds("amd64") && r.builds("i386"), "{suite}");
        }
        assert!(!saved("bullseye").builds("s390x") && saved("trixie").builds("riscv64"));
        // A repository that says nothing about architectures has every index it lists.
        let plain = Release::parse("Origin: x\n").unwrap();
        assert!(plain.has_binary_all() && plain.builds("arm64"));
        let with_all = Release::parse("Architectures: all amd64\n").unwrap();
        assert!(with_all.has_binary_all() && !with_all.builds("arm64"));
    }

    #[test]
    fn identity_of_saved_releases() {
        let r = saved("bookworm-security");
        assert_eq!(
            r.identity,
            ReleaseIdentity {
                origin: Some("Debian".into()),
                label: Some("Debian-Security".into()),
                suite: Some("oldstable-security".into()),
                codename: Some("bookworm-security".into()),
            }
        );
        assert_eq!(saved("trixie").identity.codename.as_deref(), Some("trixie"));
        assert_eq!(
            saved("bullseye").identity.suite.as_deref(),
            Some("oldoldstable")
        );
    }

    #[test]
    fn valid_until() {
        let r = saved("bookworm-security");
        assert_eq!(
            r.valid_until.as_deref(),
            Some("Tue, 08 Dec 2026 01:33:13 UTC")
        );
        let until = 1796693593; // date -d 'Tue, 08 Dec 2026 01:33:13 UTC' +%s
        assert!(r.check_valid_until(until).is_ok());
        assert!(r.check_valid_until(until - 7 * 86400).is_ok());
        let e = r.check_valid_until(until + 1).unwrap_err();
        assert!(
            e.contains("bookworm-security")
                && e.contains("expired on Tue, 08 Dec 2026 01:33:13 UTC")
                && e.contains("check-valid-until=no"),
            "{e}"
        );
        let e = saved("trixie-security")
            .check_valid_until(i64::MAX)
            .unwrap_err();
        assert!(e.contains("trixie-security"), "{e}");
        // The main suites carry no Valid-Until: they never expire.
        assert!(saved("bookworm").valid_until.is_none());
        assert!(saved("bookworm").check_valid_until(i64::MAX).is_ok());
        let bad = Release::parse("Valid-Until: soon\n").unwrap();
        assert!(bad
            .check_valid_until(0)
            .unwrap_err()
            .contains("malformed Valid-Until"));
    }

    #[test]
    fn rfc2822_dates() {
        assert_eq!(
            parse_rfc2822("Tue, 08 Dec 2026 01:33:13 UTC"),
            Some(1796693593)
        );
        assert_eq!(
            parse_rfc2822("Tue, 01 Dec 2026 01:33:13 GMT"),
            Some(1796088793)
        );
        assert_eq!(
            parse_rfc2822("Thu, 29 Feb 2024 23:59:59 +0200"),
            Some(1709243999)
        );
        assert_eq!(parse_rfc2822("Thu, 1 Jan 1970 00:00:00 UTC"), Some(0));
        for bad in [
            "",
            "Tue, 08 Foo 2026 01:33:13 UTC",
            "Tue, 08 Dec 2026 25:00:00 UTC",
            "08 Dec 2026 1:2:3 CEST",
        ] {
            assert_eq!(parse_rfc2822(bad), None, "{bad}");
        }
    }

    #[test]
    fn clearsign() {
        let msg = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: X\n- -dash\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n";
        assert_eq!(strip_clearsign(msg).unwrap(), "Origin: X\n-dash\n");
        assert!(strip_clearsign("Origin: X\n").is_err());
    }
}
