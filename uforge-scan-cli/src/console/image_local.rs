//! `uforge image build` and `uforge image verify`: building an image from a report and an
//! overlay on this machine, without a server, and checking an image against its scan.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use uforge_core::analysis::{self, Analysis};
use uforge_core::blobstore::LocalBlobStore;
use uforge_core::image::{self, naming, verify::Verification, BuildSpec, Format};
use uforge_core::repo::Sources;
use uforge_core::report::ReportReader;
use uforge_core::template::{file, verify};

use super::image_options::ImageOptions;

/// Arguments of `uforge image build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The scan's report.
    #[arg(long, value_name = "REPORT")]
    pub report: PathBuf,
    /// The overlay made for that report (`uforge-scan overlay`).
    #[arg(long, value_name = "TAR")]
    pub overlay: PathBuf,
    /// The analysis the overlay was made from (default: analyse the report again).
    #[arg(long, value_name = "FILE")]
    pub analysis: Option<PathBuf>,
    /// The repositories the packages are installed from.
    #[command(flatten)]
    pub sources: Sources,
    /// Image format: raw, qcow2, vmdk, vhd, vhdx, vdi, ova, oci, docker-archive, tar.gz.
    /// Several, comma separated, are written from one build (all disks, or all trees); `-o`
    /// is then a directory.
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: String,
    /// Target, network, package upgrades.
    #[command(flatten)]
    pub image: ImageOptions,
    /// The image file to write (a directory for several formats, which get `HOSTNAME.EXT`).
    /// The tuning log is written beside it (`FILE.tuning-log.json`).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Scratch directory (needs room for the whole image; default: beside the output).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Print no progress.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Arguments of `uforge image verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image: a disk image in any format qemu-img reads, an OVA, a tar.gz, or a directory
    /// holding an unpacked root (`umoci unpack`).
    pub image: PathBuf,
    /// The scan's report: the image must be the scanned machine plus its logged tuning.
    #[arg(long, value_name = "REPORT", required_unless_present = "template")]
    pub report: Option<PathBuf>,
    /// The tuning log (default: the one inside the image).
    #[arg(long, value_name = "FILE")]
    pub tuning_log: Option<PathBuf>,
    /// The template the image was generated from (its `template.yml` or directory) instead
    /// of a scan: the image must have its packages, My Software files and removals, boot
    /// scripts, time zone, host name and accounts.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["report", "tuning_log"])]
    pub template: Option<PathBuf>,
    /// Scratch directory (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

/// Prints each build phase with the time it started, on stderr: a build takes minutes.
pub(super) struct PhaseLog {
    pub(super) start: std::time::Instant,
    pub(super) quiet: bool,
    pub(super) last: std::sync::Mutex<String>,
}

impl uforge_core::progress::Progress for PhaseLog {
    fn phase(&self, name: &str, _total: Option<u64>) {
        let mut last = self.last.lock().expect("not poisoned");
        if self.quiet || *last == name {
            return;
        }
        *last = name.to_string();
        eprintln!("[{:>6.1}s] {name}", self.start.elapsed().as_secs_f64());
    }
}

/// Removes a scratch directory when the command ends, however it ends.
pub(super) struct Scratch(pub(super) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        // A build cut short may leave its disk mounted in the scratch directory: detached
        // first, so that the removal never reaches into a mounted filesystem.
        let _ = uforge_core::image::chroot::remove_tree(&self.0);
    }
}

/// A fresh scratch directory: `given`, or a hidden one beside `near`.
pub(super) fn scratch(given: Option<&Path>, near: &Path, tag: &str) -> Result<Scratch> {
    let dir = match given {
        Some(d) => d.join(format!("uforge-{tag}-{}", std::process::id())),
        None => {
            let parent = near
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            parent.join(format!(".uforge-{tag}-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the scratch directory {}", dir.display()))?;
    // Repositories and chroots are given absolute paths.
    Ok(Scratch(dir.canonicalize()?))
}

/// Runs `uforge image build`; prints a summary (or JSON) on stdout.
pub fn build(a: &BuildArgs, json_out: bool) -> Result<()> {
    let formats: Vec<Format> = a
        .format
        .split(',')
        .map(|f| f.trim().parse())
        .collect::<uforge_core::Result<_>>()?;
    let target = a.image.target()?;
    let network = a.image.network()?;
    let header = ReportReader::open(&a.report)
        .with_context(|| format!("cannot read the report {}", a.report.display()))?
        .header()
        .clone();
    let outputs: Vec<PathBuf> = if formats.len() == 1 {
        vec![a.output.clone()]
    } else {
        std::fs::create_dir_all(&a.output)
            .with_context(|| format!("cannot create {}", a.output.display()))?;
        formats
            .iter()
            .map(|f| {
                a.output
                    .join(naming::file_name(&header.machine, *f, "image"))
            })
            .collect()
    };
    for o in &outputs {
        if o.exists() {
            bail!(
                "{} exists already; choose another output or remove it",
                o.display()
            );
        }
    }
    let progress = PhaseLog {
        start: std::time::Instant::now(),
        quiet: a.quiet,
        last: Default::default(),
    };
    let work = scratch(a.work_dir.as_deref(), &a.output, "build")?;

    let mut sources = a.sources.clone();
    sources.read_files()?;
    let analysis = match &a.analysis {
        Some(p) => Analysis::open(p)?,
        None => analysis::analyze_report(&a.report, &sources, &[], &progress)
            .with_context(|| format!("analysis of {} failed", a.report.display()))?,
    };
    let blobs = LocalBlobStore::open(work.0.join("blobs"))?;
    let spec = BuildSpec {
        report: &a.report,
        blobs: &blobs,
        sources: &sources,
        format: formats[0],
        target,
        network,
        work_dir: &work.0.join("build"),
        output: &outputs[0],
        extra_outputs: formats[1..]
            .iter()
            .copied()
            .zip(outputs[1..].iter().cloned())
            .collect(),
        allow_upgrades: a.image.allow_upgrades,
    };
    let res = image::build_from_overlay(&a.overlay, &analysis, &spec, &progress)
        .with_context(|| format!("cannot build the {} image", a.format))?;
    let log_json = serde_json::to_vec_pretty(&res.tuning_log)?;
    let log_path = sidecar(&outputs[0]);
    for o in &outputs {
        let p = sidecar(o);
        std::fs::write(&p, &log_json).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if json_out {
        println!(
            "{}",
            json!({
                "output": res.output.display().to_string(),
                "format": res.format,
                "target": res.target,
                "size": res.size,
                "sha256": res.sha256,
                "tuning_log": log_path.display().to_string(),
                "reconcile": res.reconcile,
                "layout": res.layout,
                "also": res.extra.iter().map(|(f, p, size, sha)| json!({
                    "format": f, "output": p.display().to_string(), "size": size, "sha256": sha,
                })).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "{} ({} {}, {:.1} MiB, sha256 {})",
            res.output.display(),
            res.format,
            res.target,
            res.size as f64 / 1048576.0,
            res.sha256
        );
        println!("  layout: {}", res.layout.describe());
        for (f, p, size, sha) in &res.extra {
            println!(
                "{} ({f}, {:.1} MiB, sha256 {sha})",
                p.display(),
                *size as f64 / 1048576.0
            );
        }
        for s in &res.tuning_log.steps {
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

/// Where the tuning log of an image file is written.
pub fn sidecar(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_os_string();
    s.push(".tuning-log.json");
    PathBuf::from(s)
}

/// Runs `uforge image verify`; fails (exit status 1) when a difference is unexplained.
pub fn verify(a: &VerifyArgs, json_out: bool) -> Result<()> {
    let work = scratch(
        a.work_dir.as_deref(),
        &std::env::temp_dir().join("x"),
        "verify",
    )?;
    let Some(report) = &a.report else {
        let template = a.template.as_deref().expect("clap requires one");
        return verify_template(&a.image, template, &work.0, json_out);
    };
    let v: Verification = image::verify::verify(&a.image, report, a.tuning_log.as_deref(), &work.0)
        .with_context(|| format!("cannot verify {}", a.image.display()))?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_differences(&v.unexplained, &v.unexplained_packages, (",", "-"));
        eprintln!(
            "{} entries compared: {} unexplained differences, {} explained by the tuning log, \
             {} unexplained package differences",
            v.entries,
            v.unexplained.len(),
            v.explained,
            v.unexplained_packages.len()
        );
        eprintln!(
            "layout: source {}; image {}",
            v.layout.describe(),
            v.image_layout.describe()
        );
        if let Some(first) = v.absent_sockets.first() {
            eprintln!(
                "{} sockets of the source are absent (first: {first}): no archive carries a \
                 socket; the program listening on one creates it when it starts",
                v.absent_sockets.len()
            );
        }
    }
    if !v.is_faithful() {
        bail!(
            "{} differences from the scan are not explained by the tuning log",
            v.unexplained.len() + v.unexplained_packages.len()
        );
    }
    Ok(())
}

/// One line per difference, then one per package difference: `what` joined by `sep`, a
/// package the image lacks shown as `absent`.
fn print_differences(
    files: &[image::verify::Difference],
    packages: &[uforge_core::analysis::PackageChange],
    (sep, absent): (&str, &str),
) {
    for d in files {
        println!("{:<8} {} {}", d.status, d.path, d.what.join(sep));
    }
    for p in packages {
        println!(
            "package  {} {} -> {}",
            p.name,
            p.before.as_deref().unwrap_or("-"),
            p.after.as_deref().unwrap_or(absent)
        );
    }
}

/// `uforge image verify --template`: fails (exit status 1) when the image does not meet a
/// statement of the template.
fn verify_template(image: &Path, template: &Path, work: &Path, json_out: bool) -> Result<()> {
    let dir = super::template_local::template_dir(template);
    let (t, _blobs) = file::open_working(dir, &work.join("blobs"))
        .with_context(|| format!("cannot read the template in {}", dir.display()))?;
    let v = verify::verify_template(image, &t, work)
        .with_context(|| format!("cannot verify {}", image.display()))?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_differences(&v.unexplained, &v.unexplained_packages, (", ", "absent"));
        eprintln!(
            "{} {}: {} paths and {} packages checked: {} paths and {} packages differ",
            t.name,
            t.version,
            v.entries,
            v.packages,
            v.unexplained.len(),
            v.unexplained_packages.len()
        );
    }
    if !v.is_faithful() {
        bail!(
            "the image differs from template {} {} in {} ways",
            t.name,
            t.version,
            v.unexplained.len() + v.unexplained_packages.len()
        );
    }
    Ok(())
}
