//! Repositories end to end: local repositories built with dpkg tools, and the real Debian mirror.

use crate::test_fixture::debian_root;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::*;
use crate::model;

fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn fetcher() -> Arc<dyn Fetcher> {
    Arc::from(default_fetcher())
}

fn open(line: &str, cache: &Path) -> Result<DebianRepo> {
    DebianRepo::open(
        &SourceLine::parse(line).unwrap(),
        &RepoOptions::new(cache),
        fetcher(),
    )
}

/// Builds two packages into `base/pool`: `uft-demo` (all, xz) with a file, a script, a symlink,
/// a hard link and a conffile; `uft-zst` (amd64, zstd).
fn build_pool(base: &Path) {
    sh(
        r#"
        src=$(mktemp -d); trap 'rm -rf "$src"' EXIT
        d="$src/demo"
        mkdir -p "$d/DEBIAN" "$d/usr/share/uft-demo" "$d/usr/bin" "$d/etc/uft-demo" pool
        printf 'Package: uft-demo\nVersion: 1.0-1\nArchitecture: all\nMaintainer: T <t@example.invalid>\nDescription: demo\n' >"$d/DEBIAN/control"
        echo /etc/uft-demo/demo.conf >"$d/DEBIAN/conffiles"
        echo "hello from uforge" >"$d/usr/share/uft-demo/hello.txt"
        ln "$d/usr/share/uft-demo/hello.txt" "$d/usr/share/uft-demo/hard.txt"
        ln -s hello.txt "$d/usr/share/uft-demo/link"
        printf '#!/bin/sh\necho demo\n' >"$d/usr/bin/uft-demo"; chmod 0755 "$d/usr/bin/uft-demo"
        echo "setting=1" >"$d/etc/uft-demo/demo.conf"
        dpkg-deb --root-owner-group -Zxz --build "$d" pool/uft-demo_1.0-1_all.deb >/dev/null
        z="$src/zst"
        mkdir -p "$z/DEBIAN" "$z/usr/lib/uft"
        printf 'Package: uft-zst\nSource: uft-src (2.0)\nVersion: 1:2.0\nArchitecture: amd64\nMaintainer: T <t@example.invalid>\nDescription: zstd\n' >"$z/DEBIAN/control"
        head -c 100000 /dev/urandom >"$z/usr/lib/uft/blob"
        dpkg-deb --root-owner-group -Zzstd --build "$z" pool/uft-zst_2.0_amd64.deb >/dev/null
        cp -a "$d" "$z" .
        "#,
        base,
    );
}

fn sha256sum(path: &Path) -> [u8; 32] {
    let out = sh(&format!("sha256sum '{}'", path.display()), Path::new("/"));
    parse_sha256(out.split_whitespace().next().unwrap()).unwrap()
}

fn find<'a>(m: &'a DebManifest, path: &str) -> &'a DebFile {
    m.files
        .iter()
        .find(|f| f.path == path.as_bytes())
        .unwrap_or_else(|| panic!("{path} not in manifest of {}", m.key))
}

#[test]
fn flat_repository() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("repo");
    std::fs::create_dir_all(&base).unwrap();
    build_pool(&base);
    // A bare dpkg-scanpackages directory: no Release, a compressed index only.
    sh(
        "dpkg-scanpackages pool /dev/null 2>/dev/null | gzip -9 >Packages.gz",
        &base,
    );
    let cache = t.path().join("cache");
    let line = format!("deb [trusted=yes] file:{} ./", base.display());
    let repo = open(&line, &cache).unwrap();
    assert_eq!(repo.name(), line);
    assert_eq!(repo.len(), 2);
    let demo = PackageKey::new("uft-demo", "1.0-1", "all");
    let zst = PackageKey::new("uft-zst", "1:2.0", "amd64");
    assert!(repo.has(&demo) && repo.has(&zst));
    assert!(!repo.has(&PackageKey::new("uft-demo", "1.0-2", "all")));
    assert_eq!(
        repo.record(&zst).unwrap().source.as_deref(),
        Some("uft-src")
    );
    assert_eq!(
        repo.record(&demo).unwrap().filename,
        "pool/uft-demo_1.0-1_all.deb"
    );
    assert!(repo
        .manifest(&PackageKey::new("nope", "1", "all"))
        .unwrap()
        .is_none());

    repo.prefetch(&[demo.clone(), zst.clone(), demo.clone()], 2)
        .unwrap();
    let m = repo.manifest(&demo).unwrap().unwrap();
    assert_eq!(m.conffiles, [b"/etc/uft-demo/demo.conf".to_vec()]);
    let src = base.join("demo");
    let root = find(&m, "/");
    assert_eq!(root.kind, model::FileKind::Dir);
    assert!(m
        .files
        .iter()
        .all(|f| f.path == b"/" || !f.path.ends_with(b"/")));
    let conf = find(&m, "/etc/uft-demo/demo.conf");
    assert_eq!(
        conf.sha256,
        Some(sha256sum(&src.join("etc/uft-demo/demo.conf")))
    );
    let script = find(&m, "/usr/bin/uft-demo");
    assert_eq!(
        (script.kind, script.mode, script.uid, script.gid),
        (model::FileKind::File, 0o755, 0, 0)
    );
    assert_eq!(
        script.sha256,
        Some(sha256sum(&src.join("usr/bin/uft-demo")))
    );
    let link = find(&m, "/usr/share/uft-demo/link");
    assert_eq!(
        (link.kind, link.target.as_deref()),
        (model::FileKind::Symlink, Some(&b"hello.txt"[..]))
    );
    // dpkg-deb stores one of the two names as a hard link to the other, either way round.
    let hello = sha256sum(&src.join("usr/share/uft-demo/hello.txt"));
    let (a, b) = (
        find(&m, "/usr/share/uft-demo/hello.txt"),
        find(&m, "/usr/share/uft-demo/hard.txt"),
    );
    assert_eq!((a.sha256, b.sha256), (Some(hello), Some(hello)));
    let (first, second) = if a.kind == model::FileKind::Hardlink {
        (b, a)
    } else {
        (a, b)
    };
    assert_eq!(
        (first.kind, second.kind),
        (model::FileKind::File, model::FileKind::Hardlink)
    );
    assert_eq!(second.target.as_deref(), Some(first.path.as_slice()));
    let z = repo.manifest(&zst).unwrap().unwrap();
    let blob = find(&z, "/usr/lib/uft/blob");
    assert_eq!(
        (blob.size, blob.sha256),
        (100000, Some(sha256sum(&base.join("zst/usr/lib/uft/blob"))))
    );

    // Manifests come from the cache: no .deb is needed the second time.
    std::fs::remove_dir_all(cache.join("debs")).unwrap();
    let again = open(&line, &cache).unwrap();
    assert_eq!(*again.manifest(&demo).unwrap().unwrap(), *m);
    assert!(!cache.join("debs").exists());
    // .deb files are downloaded whole and verified.
    let deb = again.deb_path(&zst).unwrap().unwrap();
    assert_eq!(sha256sum(&deb), again.record(&zst).unwrap().sha256);

    let arm = open(
        &format!("deb [trusted=yes arch=arm64] file:{} ./", base.display()),
        &cache,
    )
    .unwrap();
    assert!(arm.has(&demo) && !arm.has(&zst));
}

#[test]
fn flat_release_hashes_are_checked() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("repo");
    std::fs::create_dir_all(base.join("sub")).unwrap();
    build_pool(&base);
    // Filenames are relative to the base URI even when the index sits in a subdirectory.
    sh(
        r#"dpkg-scanpackages pool /dev/null 2>/dev/null >sub/Packages
           printf 'Origin: test\nSHA256:\n %s %s Packages\n' "$(sha256sum <sub/Packages | cut -d' ' -f1)" "$(stat -c %s sub/Packages)" >sub/Release"#,
        &base,
    );
    let line = format!("deb [trusted=yes] file://{} sub/", base.display());
    let repo = open(&line, &t.path().join("c1")).unwrap();
    assert!(repo
        .manifest(&PackageKey::new("uft-demo", "1.0-1", "all"))
        .unwrap()
        .is_some());

    sh("echo 'Package: injected' >>sub/Packages", &base);
    let e = open(&line, &t.path().join("c2")).err().unwrap().to_string();
    assert!(
        e.contains("sub/Packages") && e.contains("does not match"),
        "{e}"
    );
}

/// Shell lines that make a throwaway signing key in `gnupg` and export it to `keyring.gpg`
/// and `keyring.asc` in the current directory; the agent is stopped when the script ends.
fn throwaway_key(gnupg: &Path) -> String {
    format!(
        r#"export GNUPGHOME='{}'
        chmod 700 "$GNUPGHOME"
        trap 'gpgconf --kill gpg-agent' EXIT
        gpg -q --batch --passphrase '' --quick-gen-key 'uforge test <t@example.invalid>' ed25519 sign never 2>/dev/null
        gpg -q --export >keyring.gpg
        gpg -q --armor --export >keyring.asc"#,
        gnupg.display()
    )
}

/// A signed suite-style repository (`dists/`), signed with a throwaway key.
#[test]
fn signed_repository() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("repo");
    let gnupg = t.path().join("gnupg");
    std::fs::create_dir_all(base.join("dists/test/main/binary-amd64")).unwrap();
    std::fs::create_dir_all(&gnupg).unwrap();
    build_pool(&base);
    let script = format!(
        r#"
        {key}
        cd repo
        dpkg-scanpackages pool /dev/null 2>/dev/null >dists/test/main/binary-amd64/Packages
        gzip -k dists/test/main/binary-amd64/Packages
        cd dists/test
        {{ printf 'Suite: test\nArchitectures: amd64\nComponents: main\nSHA256:\n'
          for f in main/binary-amd64/Packages main/binary-amd64/Packages.gz; do
            printf ' %s %s %s\n' "$(sha256sum <$f | cut -d' ' -f1)" "$(stat -c %s $f)" "$f"
          done; }} >Release
        gpg -q --batch --clearsign -o InRelease Release
        gpg -q --batch --detach-sign -o Release.gpg Release
        "#,
        key = throwaway_key(&gnupg)
    );
    sh(&script, t.path());
    let key = PackageKey::new("uft-zst", "1:2.0", "amd64");
    let cache = t.path().join("cache");
    let uri = format!("file:{}", base.display());
    let with = |opts: &str| open(&format!("deb [{opts}] {uri} test main"), &cache);
    let gpg = t.path().join("keyring.gpg");
    let asc = t.path().join("keyring.asc");

    let repo = with(&format!("signed-by={}", gpg.display())).unwrap();
    assert!(repo.has(&key) && repo.has(&PackageKey::new("uft-demo", "1.0-1", "all")));
    assert!(repo.manifest(&key).unwrap().is_some());
    // An armored keyring works too; the cached index is reused (same Release).
    assert!(with(&format!("signed-by={}", asc.display()))
        .unwrap()
        .has(&key));
    // Not signed by the Debian archive keys: refused even though the index is cached.
    let e = open(&format!("deb {uri} test main"), &cache)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("InRelease") && e.contains("signature check failed"),
        "{e}"
    );

    // Release + detached Release.gpg.
    std::fs::remove_file(base.join("dists/test/InRelease")).unwrap();
    assert!(with(&format!("signed-by={}", gpg.display()))
        .unwrap()
        .has(&key));
    let mut rel = std::fs::read(base.join("dists/test/Release")).unwrap();
    rel.extend_from_slice(b"Label: forged\n");
    std::fs::write(base.join("dists/test/Release"), &rel).unwrap();
    let e = with(&format!("signed-by={}", gpg.display()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("dists/test/Release") && e.contains("signature check failed"),
        "{e}"
    );
    std::fs::remove_file(base.join("dists/test/Release.gpg")).unwrap();
    let e = with(&format!("signed-by={}", gpg.display()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unsigned"), "{e}");
}

/// A cache kept across runs so that the mirror test only fetches InRelease when warm.
fn mirror_cache() -> PathBuf {
    let base =
        std::env::var_os("UFORGE_FIXTURE_CACHE").unwrap_or("/var/cache/uforge-fixtures".into());
    PathBuf::from(base).join("repo-cache-test")
}

const BOOKWORM: &str = "deb http://deb.debian.org/debian bookworm main";

#[test]
fn debian_mirror_matches_installed_files() {
    let root = debian_root();
    let started = std::time::Instant::now();
    let repo = open(BOOKWORM, &mirror_cache()).unwrap();
    eprintln!(
        "opened {} ({} packages) in {:?}",
        repo.name(),
        repo.len(),
        started.elapsed()
    );
    assert!(repo.len() > 30000);
    let admin = root.join("var/lib/dpkg");
    let mut keys = Vec::new();
    for name in ["base-files", "hostname"] {
        let q = format!(
            "dpkg-query --admindir='{}' -W -f '${{Version}} ${{Architecture}}' {name}",
            admin.display()
        );
        let out = sh(&q, Path::new("/"));
        let (version, arch) = out.split_once(' ').unwrap();
        let key = PackageKey::new(name, version, arch);
        assert!(repo.has(&key), "{key} not in {}", repo.name());
        keys.push(key);
    }
    repo.prefetch(&keys, 2).unwrap();
    for key in &keys {
        let m = repo.manifest(key).unwrap().unwrap();
        let (mut files, mut links) = (0, 0);
        for f in &m.files {
            // Only /usr and /etc: with merged /usr the root has /usr/bin/x where the .deb
            // says /bin/x. Conffiles may have been edited on the machine.
            let comparable = f.path.starts_with(b"/usr/") || f.path.starts_with(b"/etc/");
            if !comparable || m.conffiles.contains(&f.path) {
                continue;
            }
            let on_disk = crate::rawpath::join(&root, &f.path);
            match f.kind {
                model::FileKind::File | model::FileKind::Hardlink => {
                    let data = std::fs::read(&on_disk).unwrap();
                    let digest: [u8; 32] = Sha256::digest(&data).into();
                    assert_eq!(f.sha256, Some(digest), "{}", on_disk.display());
                    assert_eq!(f.size, data.len() as u64);
                    files += 1;
                }
                model::FileKind::Symlink => {
                    let target = std::fs::read_link(&on_disk).unwrap();
                    assert_eq!(
                        f.target.as_deref(),
                        Some(target.as_os_str().as_encoded_bytes())
                    );
                    links += 1;
                }
                _ => {}
            }
        }
        eprintln!("{key}: {files} files and {links} symlinks match the fixture root");
        assert!(files > 0, "{key}: nothing compared");
    }
    let base_files = repo.manifest(&keys[0]).unwrap().unwrap();
    assert!(base_files.conffiles.contains(&b"/etc/issue".to_vec()));

    let started = std::time::Instant::now();
    let warm = open(BOOKWORM, &mirror_cache()).unwrap();
    eprintln!("reopened from cache in {:?}", started.elapsed());
    assert_eq!(warm.len(), repo.len());

    let missing = "deb http://deb.debian.org/debian no-such-suite main";
    let e = open(missing, &mirror_cache()).err().unwrap().to_string();
    assert!(
        e.contains("dists/no-such-suite") && e.contains("neither InRelease nor Release"),
        "{e}"
    );
}

/// The security suites list a `binary-all` index without `all` among their architectures; apt
/// never reads it (the mirror's copy is stale), and neither does opening the suite.
#[test]
fn security_suites_are_read_as_apt_reads_them() {
    for suite in ["bookworm-security", "trixie-security"] {
        let line = format!("deb http://deb.debian.org/debian-security {suite} main");
        let repo = open(&line, &mirror_cache()).unwrap();
        assert!(repo.len() > 100, "{suite}: {} packages", repo.len());
        // Its `all` packages come from binary-amd64, as the Release says.
        assert!(repo.records().any(|r| r.key.arch == "all"), "{suite}");
        assert!(repo
            .records()
            .all(|r| r.key.arch == "all" || r.key.arch == "amd64"));
        let id = repo.identity().unwrap();
        assert_eq!(id.codename.as_deref(), Some(suite));
        assert_eq!(id.origin.as_deref(), Some("Debian"));
    }
}

#[test]
fn index_selection_of_saved_releases() {
    let saved = |name: &str| {
        let path = format!(
            "{}/src/repo/testdata/{name}.InRelease",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        super::release::Release::parse(&super::release::strip_clearsign(&text).unwrap()).unwrap()
    };
    let archs = ["amd64".to_string(), "all".to_string()];
    let line = |l: &str| SourceLine::parse(l).unwrap();
    let sec = line("deb http://deb.debian.org/debian-security bookworm-security main contrib");
    assert_eq!(
        super::debian::index_dirs(&sec, &archs, Some(&saved("bookworm-security"))),
        ["main/binary-amd64", "contrib/binary-amd64"]
    );
    let main = line("deb http://deb.debian.org/debian trixie main");
    assert_eq!(
        super::debian::index_dirs(&main, &archs, Some(&saved("trixie"))),
        ["main/binary-amd64"]
    );
    let multi = ["amd64".to_string(), "s390x".to_string(), "all".to_string()];
    assert_eq!(
        super::debian::index_dirs(&main, &multi, Some(&saved("bullseye"))),
        ["main/binary-amd64"]
    );
    // Without a Release (an unsigned trusted repository) every wanted index is tried.
    assert_eq!(
        super::debian::index_dirs(&main, &archs, None),
        ["main/binary-amd64", "main/binary-all"]
    );
}

/// `Valid-Until` of a signed suite: an expired Release is refused, naming the suite and the
/// date, unless the line says `check-valid-until=no`.
#[test]
fn expired_release_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("repo");
    let gnupg = t.path().join("gnupg");
    std::fs::create_dir_all(base.join("dists/old/main/binary-amd64")).unwrap();
    std::fs::create_dir_all(&gnupg).unwrap();
    build_pool(&base);
    let script = format!(
        r#"
        {key}
        cd repo
        dpkg-scanpackages pool /dev/null 2>/dev/null >dists/old/main/binary-amd64/Packages
        cd dists/old
        f=main/binary-amd64/Packages
        printf 'Codename: old
Valid-Until: Thu, 01 Jan 2015 00:00:00 UTC
Architectures: amd64
SHA256:
 %s %s %s
'             "$(sha256sum <$f | cut -d' ' -f1)" "$(stat -c %s $f)" "$f" >Release
        gpg -q --batch --clearsign -o InRelease Release
        "#,
        key = throwaway_key(&gnupg)
    );
    sh(&script, t.path());
    let uri = format!("file:{}", base.display());
    let key = t.path().join("keyring.gpg");
    let cache = t.path().join("cache");
    let e = open(
        &format!("deb [signed-by={}] {uri} old main", key.display()),
        &cache,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("dists/old/InRelease")
            && e.contains("Release of old expired on Thu, 01 Jan 2015 00:00:00 UTC"),
        "{e}"
    );
    let line = format!(
        "deb [signed-by={} check-valid-until=no] {uri} old main",
        key.display()
    );
    let repo = open(&line, &cache).unwrap();
    assert!(repo.has(&PackageKey::new("uft-zst", "1:2.0", "amd64")));
    assert!(repo.has(&PackageKey::new("uft-demo", "1.0-1", "all")));
}

#[test]
fn tampered_inrelease_is_rejected() {
    let real = super::fetch::fetch_bytes(
        &*fetcher(),
        "http://deb.debian.org/debian/dists/bookworm/InRelease",
    )
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    let dists = t.path().join("dists/bookworm");
    std::fs::create_dir_all(&dists).unwrap();
    let line = format!("deb file:{} bookworm main", t.path().display());

    // Untouched, the signature holds and opening stops at the missing index instead.
    std::fs::write(dists.join("InRelease"), &real).unwrap();
    let e = open(&line, &t.path().join("cache"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("main/binary-amd64/Packages") && e.contains("not found"),
        "{e}"
    );
    // A keyring with only one of the signing keys is enough, as with apt's signed-by.
    let one_key = "/usr/share/keyrings/debian-archive-bookworm-stable.gpg";
    let partial = format!(
        "deb [signed-by={one_key}] file:{} bookworm main",
        t.path().display()
    );
    let e = open(&partial, &t.path().join("cache"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not found"), "{e}");

    let mut forged = real.clone();
    let at = forged.windows(9).position(|w| w == b"Codename:").unwrap() + 11;
    forged[at] ^= 0x01;
    std::fs::write(dists.join("InRelease"), &forged).unwrap();
    let e = open(&line, &t.path().join("cache"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("dists/bookworm/InRelease") && e.contains("signature check failed"),
        "{e}"
    );
}
