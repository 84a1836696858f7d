//! A Debian (apt) repository opened from one sources line: its verified package indexes, and
//! the manifests of its `.deb` files, fetched on demand.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cache::{self, TempFile};
use super::fetch::{fetch_bytes, fetch_optional};
use super::release::{strip_clearsign, Release, ReleaseIdentity};
use super::{
    deb, err, hex, packages, verify, DebManifest, Fetcher, PackageKey, PackageRecord, RepoIndex,
    RepoOptions, SourceLine, DEFAULT_KEYRING,
};
use crate::{Error, Result};

/// Format tags of the cache files; bump when the serialized types change.
const INDEX_MAGIC: &[u8] = b"uforge-repo-index-2\n";
const MANIFEST_MAGIC: &[u8] = b"uforge-deb-manifest-1\n";

/// The parsed indexes of a repository, tied to the Release they were checked against.
#[derive(Serialize, Deserialize)]
struct CachedIndex {
    release_sha256: [u8; 32],
    records: Vec<PackageRecord>,
}

/// A Debian repository: what it carries, and the manifests of its packages.
pub struct DebianRepo {
    name: String,
    base: String,
    identity: Option<ReleaseIdentity>,
    records: HashMap<PackageKey, PackageRecord>,
    cache_dir: PathBuf,
    fetcher: Arc<dyn Fetcher>,
    memo: Mutex<HashMap<PackageKey, Arc<DebManifest>>>,
}

impl DebianRepo {
    /// Opens a repository: fetches `InRelease` (or `Release` + `Release.gpg`) and verifies its
    /// signature (unless `[trusted=yes]`), then reads the `Packages` indexes of the wanted
    /// architectures (the line's `arch=`, else `opts.archs`), each checked against the SHA-256
    /// list of the Release file. When the fetched Release equals the cached one, the parsed
    /// indexes come from the cache and no `Packages` file is fetched.
    ///
    /// The fetcher is kept to download `.deb` files lazily (see [`RepoIndex::manifest`]).
    pub fn open(line: &SourceLine, opts: &RepoOptions, fetcher: Arc<dyn Fetcher>) -> Result<Self> {
        let name = line.to_string();
        let base = line.uri.trim_end_matches('/').to_string();
        let archs = line.arch.clone().unwrap_or_else(|| opts.archs.clone());
        if archs.is_empty() {
            return Err(err(&name, "no architecture to read"));
        }
        let meta = if line.is_flat() {
            match line.suite.trim_end_matches('/') {
                "" | "." => base.clone(),
                sub => format!("{base}/{}", sub.trim_start_matches("./")),
            }
        } else {
            format!("{base}/dists/{}", line.suite)
        };
        // Sorted, so that the same architectures in another order share the cached index.
        let mut sorted = archs.clone();
        sorted.sort();
        let id = Sha256::digest(format!(
            "{}\n{}\n{}\n{}",
            base,
            line.suite,
            line.components.join(" "),
            sorted.join(" ")
        ));
        let dir = opts.cache_dir.join("indexes").join(hex(&id));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let keyring = line
            .signed_by
            .clone()
            .or_else(|| opts.keyring.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING));
        let tmp = opts.cache_dir.join("tmp");

        let signed = fetch_release(&*fetcher, &meta, line.trusted, &keyring, &tmp)?;
        if let Some((_, release, url)) = &signed {
            if line.check_valid_until {
                release.check_valid_until(now()).map_err(|m| err(url, m))?;
            }
        }
        let cached = IndexCache {
            release: dir.join("Release"),
            index: dir.join("index.bin"),
        };
        let records = match signed.as_ref().and_then(|(raw, _, _)| cached.load(raw)) {
            Some(records) => records,
            None => {
                let release = signed.as_ref().map(|(_, r, url)| (r, url.as_str()));
                read_indexes(line, &archs, &meta, release, &*fetcher, &name)?
            }
        };
        let mut repo = DebianRepo {
            name,
            base,
            identity: signed.as_ref().map(|(_, r, _)| r.identity.clone()),
            records: HashMap::with_capacity(records.len()),
            cache_dir: opts.cache_dir.clone(),
            fetcher,
            memo: Mutex::new(HashMap::new()),
        };
        // When several indexes list a package (`all` packages in every architecture's
        // index), the first is kept.
        for r in records {
            repo.records.entry(r.key.clone()).or_insert(r);
        }
        if let Some((raw, _, _)) = &signed {
            let mut records: Vec<PackageRecord> = repo.records.values().cloned().collect();
            records.sort_by(|a, b| a.key.cmp(&b.key));
            cached.store(raw, records)?;
        }
        Ok(repo)
    }

    /// The repository base URI (without trailing slash), to which `Filename`s are relative.
    pub fn base_uri(&self) -> &str {
        &self.base
    }

    /// Which release the repository carries, from its Release file (`None` for a flat
    /// repository without one).
    pub fn identity(&self) -> Option<&ReleaseIdentity> {
        self.identity.as_ref()
    }

    /// The index record of a package, if the repository carries it.
    pub fn record(&self, key: &PackageKey) -> Option<&PackageRecord> {
        self.records.get(key)
    }

    /// Every package the repository carries, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = &PackageRecord> {
        self.records.values()
    }

    /// How many packages the repository carries (for the wanted architectures).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the repository carries no package for the wanted architectures.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The verified `.deb` of a package in the local cache, downloading it if needed;
    /// `Ok(None)` if the repository does not carry the package.
    pub fn deb_path(&self, key: &PackageKey) -> Result<Option<PathBuf>> {
        match self.records.get(key) {
            Some(rec) => self.download(rec).map(Some),
            None => Ok(None),
        }
    }

    /// Downloads and reads the manifests of many packages with `threads` workers, so that
    /// later [`RepoIndex::manifest`] calls are served from memory. Packages the repository does
    /// not carry are ignored. Every package is attempted; the error reports the failures.
    pub fn prefetch(&self, keys: &[PackageKey], threads: usize) -> Result<()> {
        let todo: Vec<&PackageKey> = {
            let memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
            let mut seen = HashSet::new();
            keys.iter()
                .filter(|k| self.has(k) && !memo.contains_key(*k) && seen.insert(*k))
                .collect()
        };
        let next = AtomicUsize::new(0);
        let errors = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, todo.len().max(1)) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(key) = todo.get(i) else { break };
                    if let Err(e) = self.manifest(key) {
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                    }
                });
            }
        });
        let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            n => Err(err(
                &self.name,
                format!(
                    "{n} of {} packages failed; first: {}",
                    todo.len(),
                    errors[0]
                ),
            )),
        }
    }

    /// The cached `.deb` of a record, downloaded and checked against the index if missing.
    fn download(&self, rec: &PackageRecord) -> Result<PathBuf> {
        let dir = self.cache_dir.join("debs");
        let dest = dir.join(format!("{}.deb", hex(&rec.sha256)));
        // Cached files were checked when downloaded and are named by digest; the size check
        // catches a file damaged since without rehashing every time.
        if std::fs::metadata(&dest).is_ok_and(|m| m.len() == rec.size) {
            return Ok(dest);
        }
        let url = format!("{}/{}", self.base, rec.filename);
        let mut body = self.fetcher.fetch(&url)?;
        let (tmp, mut file) = TempFile::create_in(&dir, "deb")?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(err(&url, format!("reading: {e}"))),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(|e| Error::io("write", tmp.path(), e))?;
            size += n as u64;
        }
        let digest: [u8; 32] = hasher.finalize().into();
        if size != rec.size || digest != rec.sha256 {
            return Err(err(
                &url,
                format!(
                    "download does not match the index: expected {} bytes with SHA-256 {}, got {size} bytes with {}",
                    rec.size,
                    hex(&rec.sha256),
                    hex(&digest)
                ),
            ));
        }
        drop(file);
        tmp.persist(&dest)?;
        Ok(dest)
    }

    /// The manifest of a record: from the manifest cache, else from its `.deb`.
    fn load_manifest(&self, rec: &PackageRecord) -> Result<DebManifest> {
        let path = self
            .cache_dir
            .join("manifests")
            .join(format!("{}.bin", hex(&rec.sha256)));
        if let Some(mut m) = cache::load::<DebManifest>(&path, MANIFEST_MAGIC) {
            m.key = rec.key.clone();
            return Ok(m);
        }
        let deb = self.download(rec)?;
        let file = std::fs::File::open(&deb).map_err(|e| Error::io("open", &deb, e))?;
        let m = deb::read_manifest(BufReader::new(file), rec.key.clone()).map_err(|msg| {
            // A damaged cached copy must not poison later runs.
            let _ = std::fs::remove_file(&deb);
            err(format!("package {} ({})", rec.key, deb.display()), msg)
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        cache::store(&path, MANIFEST_MAGIC, &m)?;
        Ok(m)
    }
}

impl RepoIndex for DebianRepo {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn identity(&self) -> Option<ReleaseIdentity> {
        self.identity.clone()
    }

    fn has(&self, key: &PackageKey) -> bool {
        self.records.contains_key(key)
    }

    fn manifest(&self, key: &PackageKey) -> Result<Option<Arc<DebManifest>>> {
        let Some(rec) = self.records.get(key) else {
            return Ok(None);
        };
        if let Some(m) = self.memo.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(Some(m.clone()));
        }
        // Loaded outside the lock so that other threads keep working meanwhile.
        let m = Arc::new(self.load_manifest(rec).map_err(|e| match e {
            Error::Repo { .. } | Error::NotFound { .. } => err(format!("package {key}"), e),
            other => other,
        })?);
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Some(memo.entry(key.clone()).or_insert(m).clone()))
    }
}

/// The cached parsed indexes of one repository, next to the Release they were checked against.
struct IndexCache {
    release: PathBuf,
    index: PathBuf,
}

impl IndexCache {
    /// The cached records, if they were built from exactly these Release bytes.
    fn load(&self, raw_release: &[u8]) -> Option<Vec<PackageRecord>> {
        // Comparing the small Release copy first avoids decoding a stale index.
        if std::fs::read(&self.release).ok()? != raw_release {
            return None;
        }
        let c = cache::load::<CachedIndex>(&self.index, INDEX_MAGIC)?;
        (c.release_sha256 == <[u8; 32]>::from(Sha256::digest(raw_release))).then_some(c.records)
    }

    fn store(&self, raw_release: &[u8], records: Vec<PackageRecord>) -> Result<()> {
        let c = CachedIndex {
            release_sha256: Sha256::digest(raw_release).into(),
            records,
        };
        // The index goes first, and carries the digest of its Release: a crash between the two
        // writes leaves a mismatch that `load` detects.
        cache::store(&self.index, INDEX_MAGIC, &c)?;
        cache::write_atomic(&self.release, raw_release)
    }
}

/// Fetches, checks and parses every `Packages` index the line asks for.
fn read_indexes(
    line: &SourceLine,
    archs: &[String],
    meta: &str,
    release: Option<(&Release, &str)>,
    fetcher: &dyn Fetcher,
    name: &str,
) -> Result<Vec<PackageRecord>> {
    let release_url = release.map_or(meta, |(_, url)| url);
    let release = release.map(|(r, _)| r);
    let keep = |a: &str| a == "all" || archs.iter().any(|w| w == a);
    let mut records = Vec::new();
    let mut found = 0;
    for rel_dir in index_dirs(line, archs, release) {
        let index = fetch_index(fetcher, meta, &rel_dir, release, release_url, line.trusted)?;
        let Some((url, bytes)) = index else {
            continue;
        };
        found += 1;
        let reader = decompressor(&url, &bytes)?;
        records.extend(packages::parse(BufReader::new(reader), keep, &url)?);
    }
    if found == 0 {
        return Err(err(
            name,
            format!(
                "no Packages index for architectures {} under {meta}",
                archs.join(", ")
            ),
        ));
    }
    Ok(records)
}

/// Fetches and authenticates the Release file under `meta`. Returns the fetched bytes (the
/// cache compares them), the parsed Release and its URL; `None` only for a trusted repository
/// that has no Release at all (a bare `dpkg-scanpackages` directory).
fn fetch_release(
    fetcher: &dyn Fetcher,
    meta: &str,
    trusted: bool,
    keyring: &Path,
    tmp: &Path,
) -> Result<Option<(Vec<u8>, Release, String)>> {
    let parse = |text: &[u8], url: &str| {
        Release::parse(&String::from_utf8_lossy(text)).map_err(|m| err(url, m))
    };
    let url = format!("{meta}/InRelease");
    if let Some(raw) = fetch_optional(fetcher, &url)? {
        let text = if trusted {
            strip_clearsign(&String::from_utf8_lossy(&raw))
                .map_err(|m| err(&url, m))?
                .into_bytes()
        } else {
            verify::inrelease(&raw, keyring, tmp, &url)?
        };
        let release = parse(&text, &url)?;
        return Ok(Some((raw, release, url)));
    }
    let url = format!("{meta}/Release");
    let Some(raw) = fetch_optional(fetcher, &url)? else {
        if trusted {
            return Ok(None);
        }
        return Err(err(
            meta,
            "the repository has neither InRelease nor Release",
        ));
    };
    if !trusted {
        let sig_url = format!("{url}.gpg");
        let sig = fetch_optional(fetcher, &sig_url)?.ok_or_else(|| {
            err(
                &url,
                "unsigned (no InRelease, no Release.gpg); add [trusted=yes] to the sources line to accept it",
            )
        })?;
        verify::detached(&raw, &sig, keyring, tmp, &url)?;
    }
    let release = parse(&raw, &url)?;
    Ok(Some((raw, release, url)))
}

/// Directories (relative to the Release file) whose `Packages` index is read: apt's rules,
/// so that an index the Release lists but apt never reads (a stale `binary-all` of a suite
/// without `all` in its `Architectures`) is not read either.
pub(super) fn index_dirs(
    line: &SourceLine,
    archs: &[String],
    release: Option<&Release>,
) -> Vec<String> {
    if line.is_flat() {
        // One index for every architecture; records are filtered by architecture instead.
        return vec![String::new()];
    }
    let mut out = Vec::new();
    for comp in &line.components {
        for arch in archs {
            if release.is_none_or(|r| r.builds(arch)) {
                out.push(format!("{comp}/binary-{arch}"));
            }
        }
    }
    out
}

/// Seconds since the epoch, for `Valid-Until`.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Fetches the `Packages` index of `rel_dir`, in the best compression the Release lists, and
/// checks it. `Ok(None)` when the repository legitimately has no such index (an architecture
/// it does not build).
fn fetch_index(
    fetcher: &dyn Fetcher,
    meta: &str,
    rel_dir: &str,
    release: Option<&Release>,
    release_url: &str,
    trusted: bool,
) -> Result<Option<(String, Vec<u8>)>> {
    let names: Vec<String> = ["Packages.xz", "Packages.gz", "Packages"]
        .iter()
        .map(|n| {
            if rel_dir.is_empty() {
                n.to_string()
            } else {
                format!("{rel_dir}/{n}")
            }
        })
        .collect();
    let listed = release.and_then(|r| {
        names
            .iter()
            .find_map(|n| r.sha256.get(n).map(|&(size, digest)| (n, size, digest)))
    });
    if let Some((name, size, digest)) = listed {
        let url = format!("{meta}/{name}");
        let by_hash = format!("{meta}/{rel_dir}/by-hash/SHA256/{}", hex(&digest));
        // By-hash names are immutable, so a mirror update between fetching the Release and the
        // index cannot produce a mismatch; fall back to the plain name where it is missing.
        let bytes = match release.is_some_and(|r| r.by_hash) && !rel_dir.is_empty() {
            true => match fetch_optional(fetcher, &by_hash)? {
                Some(b) => b,
                None => fetch_bytes(fetcher, &url)?,
            },
            false => fetch_bytes(fetcher, &url)?,
        };
        let got: [u8; 32] = Sha256::digest(&bytes).into();
        if bytes.len() as u64 != size || got != digest {
            return Err(err(
                &url,
                format!(
                    "does not match {release_url}: expected {size} bytes with SHA-256 {}, got {} bytes with {}",
                    hex(&digest),
                    bytes.len(),
                    hex(&got)
                ),
            ));
        }
        return Ok(Some((url, bytes)));
    }
    let arch = rel_dir.rsplit_once("binary-").map(|(_, a)| a);
    let shown = if rel_dir.is_empty() { meta } else { rel_dir };
    match release {
        // Nothing to check against is acceptable only when trust was asked for.
        Some(r) if !r.sha256.is_empty() || !trusted => {
            // No `binary-all` (its packages are in the other indexes), or an architecture the
            // repository does not build: nothing to read, not an error.
            let unbuilt = |a: &str| {
                r.architectures
                    .as_ref()
                    .is_some_and(|list| !list.iter().any(|x| x == a))
            };
            if arch.is_some_and(|a| a == "all" || unbuilt(a)) {
                return Ok(None);
            }
            Err(err(
                release_url,
                format!("lists no SHA-256 for a Packages index of {shown}"),
            ))
        }
        _ => {
            for name in &names {
                let url = format!("{meta}/{name}");
                if let Some(bytes) = fetch_optional(fetcher, &url)? {
                    return Ok(Some((url, bytes)));
                }
            }
            if arch == Some("all") {
                return Ok(None);
            }
            Err(err(
                format!("{meta}/{rel_dir}").trim_end_matches('/'),
                "no Packages, Packages.gz or Packages.xz index (unsigned repository without Release)",
            ))
        }
    }
}

/// A reader of the decompressed index, chosen by the URL's extension.
fn decompressor<'a>(url: &str, bytes: &'a [u8]) -> Result<Box<dyn Read + 'a>> {
    Ok(if url.ends_with(".xz") {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(bytes))
    } else if url.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    })
}
