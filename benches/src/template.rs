//! Times the dependency check of a real machine's package set.
//!
//! `uforge-bench-template ROOT CACHE LINE RUNS [SKIP,...]` reads the installed packages of the
//! Debian root ROOT but SKIP (packages no repository has), makes a template pinning them (and
//! one leaving them free), opens the repository
//! LINE (sources.list syntax, release `{release}` or the suite itself) with its indexes cached
//! in CACHE, and prints `load SECONDS`, `pinned SECONDS` and `free SECONDS`: the index load
//! once, then the best of RUNS checks of each template.

use std::path::Path;
use std::time::Instant;

use uforge_core::blobstore::LocalBlobStore;
use uforge_core::image::install::wanted;
use uforge_core::progress::NoProgress;
use uforge_core::repo::{PackageKey, RepoOptions};
use uforge_core::template::solve::{check, CheckOptions, PackageUniverse};
use uforge_core::template::{OsProfile, PackageSpec, Template};

fn main() -> uforge_core::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (root, cache, line, runs, skip) = match &args[..] {
        [r, c, l, n] => (r, c, l, n, ""),
        [r, c, l, n, s] => (r, c, l, n, s.as_str()),
        _ => {
            eprintln!("usage: uforge-bench-template ROOT CACHE LINE RUNS [SKIP,...]");
            std::process::exit(2);
        }
    };
    let skip: Vec<&str> = skip.split(',').collect();
    let runs: usize = runs.parse().unwrap_or(5);
    let db = uforge_core::pkgdb::open(Path::new(root))?.expect("a dpkg database");
    let arch = db.native_arch().unwrap_or("amd64").to_string();
    let pinned: Vec<PackageSpec> = wanted(db.packages())
        .into_iter()
        .filter(|p| !skip.contains(&p.name.as_str()))
        .map(|p| PackageSpec::pinned(&PackageKey::of(p)))
        .collect();
    let mut t = Template {
        name: "bench".into(),
        version: "1".into(),
        os: OsProfile {
            distribution: "debian".into(),
            release: "bookworm".into(),
            arch: arch.clone(),
            repositories: vec![line.clone()],
            pkgs: pinned.clone(),
        },
        ..Template::default()
    };
    let started = Instant::now();
    let universe = PackageUniverse::open(&t.os, &RepoOptions::new(cache), &NoProgress)?;
    println!("load {:.3}", started.elapsed().as_secs_f64());
    println!("packages {} of {}", pinned.len(), universe.len());
    let scratch =
        std::env::temp_dir().join(format!("uforge-bench-template-{}", std::process::id()));
    let blobs = LocalBlobStore::open(&scratch)?;
    let best = |t: &Template| -> uforge_core::Result<f64> {
        let mut best = f64::MAX;
        for _ in 0..runs {
            let started = Instant::now();
            check(t, &universe, &blobs, &CheckOptions::default())?;
            best = best.min(started.elapsed().as_secs_f64());
        }
        Ok(best)
    };
    println!("pinned {:.4}", best(&t)?);
    t.os.pkgs = pinned.iter().map(|p| p.unpinned(&arch)).collect();
    println!("free {:.4}", best(&t)?);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
