//! `uforge template from-scan` and `uforge template build`: appliance templates on this
//! machine, without a server. A scan's report and overlay become a template directory
//! (`template.yml` + `files/`), which people edit and generate images from.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use uforge_core::analysis::{self, Analysis};
use uforge_core::blobstore::LocalBlobStore;
use uforge_core::image::{Format, Output};
use uforge_core::overlay::{read_overlay_for, ReadLimits};
use uforge_core::repo::{RepoOptions, Sources};
use uforge_core::template::{file, generate, import, solve};

use super::image_local::{scratch, sidecar, PhaseLog};
use super::image_options::ImageOptions;

/// `uforge template` subcommands that need no server.
#[derive(Debug, Subcommand)]
pub enum LocalCmd {
    /// Import a scan (its report and overlay) as a template directory: `template.yml` and
    /// the `files/` it refers to.
    FromScan(Box<FromScanArgs>),
    /// Generate an image from a template directory on this machine (needs root: loop
    /// devices, mounts, chroots): dependency check, packages, My Software, install profile,
    /// boot scripts, tuning.
    Build(Box<BuildArgs>),
    /// Check a template directory's dependencies against its repositories: the packages the
    /// check adds, or why it cannot be installed (exit status 1).
    Check(CheckArgs),
}

/// Arguments of `uforge template check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The template: its `template.yml`, or the directory holding it and `files/`.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Keyring of repositories that name none (default: the Debian archive keyring).
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Where repository indexes and packages are cached.
    #[arg(long, value_name = "DIR", env = "UFORGE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Arguments of `uforge template from-scan`.
#[derive(Debug, Args)]
pub struct FromScanArgs {
    /// The scan's report.
    #[arg(long, value_name = "REPORT")]
    pub report: PathBuf,
    /// The overlay made for that report (`uforge-scan overlay`).
    #[arg(long, value_name = "TAR")]
    pub overlay: PathBuf,
    /// The analysis the overlay was made from (default: analyse the report again).
    #[arg(long, value_name = "FILE")]
    pub analysis: Option<PathBuf>,
    /// The repositories the scan is analysed against; they become the template's.
    #[command(flatten)]
    pub sources: Sources,
    /// Name, version, pinning.
    #[command(flatten)]
    pub import: import::ImportOptions,
    /// The template directory to write (created; must not hold a template yet).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
}

/// Arguments of `uforge template build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The template: its `template.yml`, or the directory holding it and `files/`.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Image format: raw, qcow2, vmdk, vhd, vhdx, vdi, ova, oci, docker-archive, tar.gz.
    #[arg(long, short = 'f', default_value = "qcow2")]
    pub format: String,
    /// Target, network, package upgrades.
    #[command(flatten)]
    pub image: ImageOptions,
    /// The image file to write; the tuning log is written beside it
    /// (`FILE.tuning-log.json`).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Keyring of repositories that name none (default: the Debian archive keyring).
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// Where repository indexes and packages are cached.
    #[arg(long, value_name = "DIR", env = "UFORGE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Scratch directory (needs room for the whole image; default: beside the output).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Print no progress.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs a local `uforge template` subcommand.
pub fn run(cmd: LocalCmd, json_out: bool) -> Result<()> {
    match cmd {
        LocalCmd::FromScan(a) => from_scan(&a, json_out),
        LocalCmd::Build(a) => build(&a, json_out),
        LocalCmd::Check(a) => check(&a, json_out),
    }
}

/// The directory of a template given by its `template.yml` or its directory.
pub(super) fn template_dir(file: &Path) -> &Path {
    if file.is_dir() {
        file
    } else {
        file.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }
}

fn check(a: &CheckArgs, json_out: bool) -> Result<()> {
    let dir = template_dir(&a.file);
    let work = scratch(None, &std::env::temp_dir().join("x"), "check")?;
    let (t, blobs) = file::open_working(dir, &work.0.join("blobs"))
        .with_context(|| format!("cannot read the template in {}", dir.display()))?;
    let opts = RepoOptions {
        keyring: a.keyring.clone(),
        ..RepoOptions::new(
            Sources {
                cache_dir: a.cache_dir.clone(),
                ..Sources::default()
            }
            .cache_dir(),
        )
    };
    let quiet = uforge_core::progress::NoProgress;
    let universe = solve::PackageUniverse::open(&t.os, &opts, &quiet)?;
    let res = solve::check(&t, &universe, &blobs, &solve::CheckOptions::default())?;
    let added: Vec<String> = res.added().map(|p| p.key.to_string()).collect();
    let dropped: Vec<String> = res
        .dropped
        .iter()
        .map(|d| format!("{}: {}", d.package.name, d.why))
        .collect();
    if json_out {
        println!(
            "{}",
            json!({ "packages": res.packages.len(), "added": added, "dropped": dropped })
        );
    } else {
        println!(
            "{} {}: {} packages install together ({} added)",
            t.name,
            t.version,
            res.packages.len(),
            added.len()
        );
        for p in &added {
            println!("  adds {p}");
        }
        for d in &dropped {
            println!("  drops {d}");
        }
    }
    Ok(())
}

fn from_scan(a: &FromScanArgs, json_out: bool) -> Result<()> {
    if a.output.join(file::TEMPLATE_FILE).exists() {
        bail!(
            "{} holds a template already; choose another directory",
            a.output.display()
        );
    }
    let progress = PhaseLog {
        start: std::time::Instant::now(),
        quiet: true,
        last: Default::default(),
    };
    let mut sources = a.sources.clone();
    sources.read_files()?;
    let analysis = match &a.analysis {
        Some(p) => Analysis::open(p)?,
        None => analysis::analyze_report(&a.report, &sources, &[], &progress)
            .with_context(|| format!("analysis of {} failed", a.report.display()))?,
    };
    let work = scratch(None, &a.output, "import")?;
    let blobs = LocalBlobStore::open(work.0.join("blobs"))?;
    let input = std::fs::File::open(&a.overlay)
        .with_context(|| format!("cannot open the overlay {}", a.overlay.display()))?;
    read_overlay_for(input, &a.report, &analysis, &blobs, &ReadLimits::default())
        .with_context(|| format!("cannot read the overlay {}", a.overlay.display()))?;
    let opts = import::ImportOptions {
        repositories: sources.lines.clone(),
        ..a.import.clone()
    };
    let t = import::import_scan(&a.report, &analysis, &blobs, &opts)
        .with_context(|| format!("cannot import the scan {}", a.report.display()))?;
    file::export(&t, &blobs, &a.output)
        .with_context(|| format!("cannot write the template to {}", a.output.display()))?;
    let files: usize = t.software.iter().map(|c| c.files.len()).sum();
    if json_out {
        println!(
            "{}",
            json!({
                "template": a.output.join(file::TEMPLATE_FILE).display().to_string(),
                "name": t.name,
                "version": t.version,
                "release": t.os.release,
                "packages": t.os.pkgs.len(),
                "files": files,
            })
        );
    } else {
        println!(
            "{} ({} {}, {} {}: {} packages, {} files)",
            a.output.join(file::TEMPLATE_FILE).display(),
            t.name,
            t.version,
            t.os.distribution,
            t.os.release,
            t.os.pkgs.len(),
            files
        );
    }
    Ok(())
}

fn build(a: &BuildArgs, json_out: bool) -> Result<()> {
    let format: Format = a.format.parse()?;
    let target = a.image.target()?;
    let network = a.image.network()?;
    let dir = template_dir(&a.file);
    if a.output.exists() {
        bail!(
            "{} exists already; choose another output or remove it",
            a.output.display()
        );
    }
    let work = scratch(a.work_dir.as_deref(), &a.output, "template")?;
    let (t, blobs) = file::open_working(dir, &work.0.join("blobs"))
        .with_context(|| format!("cannot read the template in {}", dir.display()))?;
    let progress = PhaseLog {
        start: std::time::Instant::now(),
        quiet: a.quiet,
        last: Default::default(),
    };
    let cache_dir = Sources {
        cache_dir: a.cache_dir.clone(),
        ..Sources::default()
    }
    .cache_dir();
    let spec = generate::GenerateSpec {
        template: &t,
        blobs: &blobs,
        cache_dir,
        keyring: a.keyring.clone(),
    };
    let build_dir = work.0.join("build");
    let out = Output {
        format,
        target,
        network,
        work_dir: &build_dir,
        output: &a.output,
        extra_outputs: Vec::new(),
        allow_upgrades: a.image.allow_upgrades,
    };
    let res = generate::generate(&spec, &out, &progress).with_context(|| {
        format!(
            "cannot generate the {format} image of {} {}",
            t.name, t.version
        )
    })?;
    let log_path = sidecar(&a.output);
    std::fs::write(&log_path, serde_json::to_vec_pretty(&res.build.tuning_log)?)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let added: Vec<String> = res.resolution.added().map(|p| p.key.to_string()).collect();
    let dropped: Vec<String> = res
        .resolution
        .dropped
        .iter()
        .map(|d| format!("{}: {}", d.package.name, d.why))
        .collect();
    let b = &res.build;
    if json_out {
        println!(
            "{}",
            json!({
                "output": b.output.display().to_string(),
                "format": b.format,
                "target": b.target,
                "size": b.size,
                "sha256": b.sha256,
                "tuning_log": log_path.display().to_string(),
                "packages": res.resolution.packages.len(),
                "added": added,
                "dropped": dropped,
                "software": b.reconcile,
            })
        );
    } else {
        println!(
            "{} ({} {}, {:.1} MiB, sha256 {})",
            b.output.display(),
            b.format,
            b.target,
            b.size as f64 / 1048576.0,
            b.sha256
        );
        println!(
            "  {} packages installed ({} added by the dependency check: {})",
            res.resolution.packages.len(),
            added.len(),
            added.join(", ")
        );
        for d in &dropped {
            println!("  dropped {d}");
        }
        for s in &b.tuning_log.steps {
            println!(
                "  {:<11} {} ({} changes)",
                s.name,
                s.description,
                s.changes.len()
            );
        }
        println!("  tuning log: {}", log_path.display());
    }
    Ok(())
}
