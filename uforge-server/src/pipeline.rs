//! The blocking work behind uploads: receiving and checking a report, analysing it, and
//! preparing what an overlay is checked against. Each step calls the library and nothing in
//! here knows about HTTP beyond the error it maps to.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use uforge_core::analysis::{self, Analysis, PreviousScan};
use uforge_core::model::{FileEntry, RawPath};
use uforge_core::progress::NoProgress;
use uforge_core::repo::{self, PackageKey, RepoIndex, RepoOptions, SourceLine};
use uforge_core::report::native::{NativeWriter, MAGIC};
use uforge_core::report::ReportReader;

use crate::api::{ApiError, ApiResult};

/// Copies an upload into `tmp`, refusing it (and removing the file) past `limit` bytes.
pub fn receive(body: &mut dyn Read, tmp: &Path, limit: u64) -> ApiResult<u64> {
    let result = (|| {
        let f = File::create(tmp)
            .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", tmp.display())))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let n = std::io::copy(&mut body.take(limit + 1), &mut w).map_err(|e| {
            if e.kind() == std::io::ErrorKind::ConnectionAborted {
                ApiError::bad_request(e.to_string())
            } else {
                ApiError::internal(format!("cannot store the upload: {e}"))
            }
        })?;
        if n > limit {
            return Err(too_large(limit));
        }
        w.flush()
            .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", tmp.display())))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// The refusal of a report over the limit.
pub fn too_large(limit: u64) -> ApiError {
    ApiError::bad_request(format!(
        "the report is larger than the limit of {limit} bytes (--max-report-bytes)"
    ))
}

/// Decodes the whole upload (either encoding) and writes it natively to `dest`. `what` names
/// the report in errors.
pub fn store_report(upload: &Path, dest: &Path, what: &str) -> uforge_core::Result<()> {
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |e| uforge_core::Error::io(op, p, e)
    };
    let mut head = [0u8; MAGIC.len()];
    let n = File::open(upload)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(io("read", upload))?;
    let open = || -> uforge_core::Result<ReportReader> {
        let f = File::open(upload).map_err(io("open", upload))?;
        ReportReader::from_reader(BufReader::with_capacity(1 << 16, f), what)
    };
    if head[..n] == MAGIC[..] {
        // Already native: decoding it to the end is the check.
        let mut r = open()?;
        r.trailer()?;
        std::fs::rename(upload, dest).map_err(io("rename", upload))?;
    } else {
        let f = File::create(dest).map_err(io("create", dest))?;
        let mut w = NativeWriter::new(BufWriter::with_capacity(1 << 20, f), what.to_string())?;
        if let Err(e) = open().and_then(|r| r.copy_to(&mut w)) {
            drop(w);
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
        let _ = std::fs::remove_file(upload);
    }
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What an analysis is run against.
pub struct AnalysisInput {
    /// The report, native.
    pub report: PathBuf,
    /// The user's synced repositories.
    pub repos: Vec<String>,
    /// The user's repository of recreated packages (used if it has a `Packages` index).
    pub user_repo: PathBuf,
    /// Reports of the complete earlier scans of the machine.
    pub previous: Vec<PathBuf>,
    /// Repository cache.
    pub cache_dir: PathBuf,
    /// Keyring for repositories without `signed-by`.
    pub keyring: Option<PathBuf>,
}

/// A `file:` URI for a local directory, escaped the way sources.list lines are read back.
pub fn file_uri(dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::from("file:");
    for &b in dir.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-+~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Analyses a stored report against the user's repositories and earlier scans.
pub fn analyze(input: &AnalysisInput) -> uforge_core::Result<Analysis> {
    let header = ReportReader::open(&input.report)?.header().clone();
    let opts = RepoOptions {
        cache_dir: input.cache_dir.clone(),
        keyring: input.keyring.clone(),
        archs: repo::archs_of(&header),
    };
    let mut lines = input.repos.clone();
    if input.user_repo.join("Packages").is_file() {
        lines.push(format!(
            "deb [trusted=yes] {} ./",
            file_uri(&input.user_repo)
        ));
    }
    let repos = repo::open_sources(&lines, &opts, &NoProgress)?;
    let refs: Vec<&dyn RepoIndex> = repos.iter().map(|r| r.as_ref()).collect();
    let previous = input
        .previous
        .iter()
        .map(|p| PreviousScan::load(ReportReader::open(p)?))
        .collect::<uforge_core::Result<Vec<_>>>()?;
    analysis::analyze(
        &|| ReportReader::open(&input.report),
        &refs,
        &previous,
        &NoProgress,
    )
}

/// Writes the analysis document (the same as `uforge-scan analyze -o`).
pub fn write_analysis(a: &Analysis, dest: &Path) -> uforge_core::Result<()> {
    let f = File::create(dest).map_err(|e| uforge_core::Error::io("create", dest, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    a.write_json(&mut w)?;
    w.flush()
        .map_err(|e| uforge_core::Error::io("write", dest, e))
}

/// The totals kept in the database and shown with a scan.
pub fn summary(a: &Analysis) -> Value {
    json!({
        "packages": a.stats.packages,
        "entries": a.stats.entries,
        "missing_packages": a.missing_packages.len(),
        "modified_files": a.modified_files.len(),
        "deleted_files": a.deleted_files.len(),
        "unknown_files": a.unknown_files.len(),
        "wanted": a.wanted.len(),
        "wanted_bytes": a.stats.wanted_bytes,
        "held": a.stats.held,
    })
}

/// What an overlay is checked against: the report entry of every wanted path. Also returns the
/// packages to rebuild once the overlay is in.
pub fn expected(
    report: &Path,
    analysis: &Path,
) -> uforge_core::Result<(HashMap<RawPath, FileEntry>, Vec<PackageKey>)> {
    let f = File::open(analysis).map_err(|e| uforge_core::Error::io("open", analysis, e))?;
    let a = Analysis::read_json(f, &analysis.display().to_string())?;
    let mut wanted: HashSet<RawPath> = a.wanted.into_iter().collect();
    let mut out = HashMap::with_capacity(wanted.len());
    let mut r = ReportReader::open(report)?;
    while let Some(e) = r.next_file()? {
        if let Some(p) = wanted.take(&e.path) {
            out.insert(p, e);
        }
    }
    Ok((out, a.missing_packages))
}

/// The default architectures of a repository sync: this host's, and `all`.
pub fn host_archs() -> Vec<String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        other => other,
    };
    vec![arch.to_string(), "all".to_string()]
}

/// Checks a sources.list line as the API receives it.
pub fn check_line(line: &str) -> ApiResult<SourceLine> {
    if line.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad_request(format!(
            "sources line {line:?}: one line, without control characters"
        )));
    }
    SourceLine::parse(line).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_escape_what_splits_a_line() {
        assert_eq!(file_uri(Path::new("/srv/a b/c%d")), "file:/srv/a%20b/c%25d");
        let line = format!("deb [trusted=yes] {} ./", file_uri(Path::new("/x y")));
        let l = SourceLine::parse(&line).unwrap();
        assert_eq!(
            uforge_core::repo::FileFetcher::path_of(&format!("{}/Packages", l.uri)).unwrap(),
            Path::new("/x y/Packages")
        );
    }
}
