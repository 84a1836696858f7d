//! The table forms of the server's answers, as `uforge` prints them without `--json`.

use std::fmt::Display;

use uforge_api::{Comparison, Image, Machine, Package, Repo, Scan, ScanSummary};

/// A value, or `-` when there is none.
pub(super) fn or_dash<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

/// Bytes as MiB with one decimal.
pub(super) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

pub(super) fn scans(v: &Vec<Scan>) -> Vec<String> {
    let mut rows = vec![format!(
        "{:>6}  {:<20} {:<9} {:<25} {:>8} {:>8}",
        "ID", "MACHINE", "STATUS", "CREATED", "ENTRIES", "WANTED"
    )];
    for x in v {
        let summary = |f: fn(&ScanSummary) -> u64| or_dash(&x.summary.as_ref().map(f));
        rows.push(format!(
            "{:>6}  {:<20} {:<9} {:<25} {:>8} {:>8}",
            x.id,
            x.machine,
            x.status,
            x.created_at,
            summary(|s| s.entries),
            summary(|s| s.wanted)
        ));
    }
    rows
}

pub(super) fn scan(x: &Scan) -> Vec<String> {
    let mut rows = vec![
        format!("scan       {}", x.id),
        format!("machine    {}", x.machine),
        format!("status     {}", x.status),
        format!("created    {}", x.created_at),
        format!("completed  {}", or_dash(&x.completed_at)),
    ];
    if let Some(m) = &x.summary {
        // In the order of the names, as the server's JSON lists them.
        for (k, v) in [
            ("deleted_files", m.deleted_files),
            ("entries", m.entries),
            ("held", m.held),
            ("missing_packages", m.missing_packages),
            ("modified_files", m.modified_files),
            ("packages", m.packages),
            ("unknown_files", m.unknown_files),
            ("wanted", m.wanted),
            ("wanted_bytes", m.wanted_bytes),
        ] {
            rows.push(format!("{k:<10} {v}"));
        }
    }
    rows
}

pub(super) fn comparison(v: &Comparison) -> Vec<String> {
    let mut rows = Vec::new();
    for p in &v.packages {
        rows.push(format!(
            "package {:<40} {} -> {}",
            p.name,
            or_dash(&p.before),
            or_dash(&p.after)
        ));
    }
    for f in &v.files {
        rows.push(format!(
            "{:<8} {} {}",
            f.status,
            f.shown_path(),
            serde_json::to_string(&f.what).unwrap_or_default()
        ));
    }
    rows
}

pub(super) fn repo(v: &Repo) -> Vec<String> {
    repos(&vec![v.clone()])
}

pub(super) fn repos(v: &Vec<Repo>) -> Vec<String> {
    let mut rows = vec![format!(
        "{:>4}  {:>8}  {:<25} LINE",
        "ID", "PACKAGES", "SYNCED"
    )];
    for r in v {
        rows.push(format!(
            "{:>4}  {:>8}  {:<25} {}",
            r.id,
            or_dash(&r.packages),
            or_dash(&r.synced_at),
            r.line
        ));
    }
    rows
}

pub(super) fn machines(v: &Vec<Machine>) -> Vec<String> {
    let mut rows = vec![format!("{:<30} {:>6}  LAST SCAN", "MACHINE", "SCANS")];
    for m in v {
        rows.push(format!(
            "{:<30} {:>6}  {}",
            m.name,
            m.scans,
            or_dash(&m.last_scan)
        ));
    }
    rows
}

pub(super) fn packages(v: &Vec<Package>) -> Vec<String> {
    let mut rows = vec![format!(
        "{:<30} {:<20} {:<8} FILE",
        "NAME", "VERSION", "ARCH"
    )];
    for p in v {
        rows.push(format!(
            "{:<30} {:<20} {:<8} {}",
            p.name, p.version, p.arch, p.file
        ));
    }
    rows
}

/// One line saying where a job is: `image 7: running [2/5] install 41% (1234 files, 56.0 MiB)`.
pub(super) fn progress_line(job: &Image) -> String {
    let mut line = format!("image {}: {}", job.id, job.status);
    let p = &job.progress;
    if job.status == uforge_api::ImageStatus::Running {
        if let Some(phase) = &job.phase {
            match p.step {
                Some(n) => line.push_str(&format!(" [{n}/{}] {phase}", p.steps)),
                None => line.push_str(&format!(" {phase}")),
            }
        }
        if let Some(pc) = p.percent {
            line.push_str(&format!(" {pc}%"));
        }
        if p.files > 0 || p.bytes > 0 {
            line.push_str(&format!(
                " ({} files, {})",
                p.files,
                mib(u64::try_from(p.bytes).unwrap_or(0))
            ));
        }
    }
    line
}

/// The table form of one job.
pub(super) fn image(x: &Image) -> Vec<String> {
    let mut rows = vec![
        format!("image      {}", x.id),
        format!("scan       {} ({})", or_dash(&x.scan), or_dash(&x.machine)),
        format!(
            "format     {} for {}, network {}",
            x.format, x.target, x.network
        ),
        format!(
            "status     {}",
            progress_line(x).split_once(": ").map_or("", |p| p.1)
        ),
    ];
    if x.status != uforge_api::ImageStatus::Running && x.phase.is_some() {
        rows.push(format!("phase      {}", or_dash(&x.phase)));
    }
    if x.error.is_some() {
        rows.push(format!("error      {}", or_dash(&x.error)));
    }
    if let Some(size) = x.size {
        rows.push(format!(
            "file       {} ({})",
            or_dash(&x.file),
            mib(u64::try_from(size).unwrap_or(0))
        ));
        rows.push(format!("sha256     {}", or_dash(&x.sha256)));
    }
    rows.push(format!("created    {}", x.created_at));
    rows.push(format!("started    {}", or_dash(&x.started_at)));
    rows.push(format!("finished   {}", or_dash(&x.finished_at)));
    rows
}

/// The table form of a list of jobs.
pub(super) fn images(v: &Vec<Image>) -> Vec<String> {
    let mut rows = vec![format!(
        "{:>5}  {:>5}  {:<20} {:<14} {:<9} {:<8} {:<9} {:>10}  CREATED",
        "ID", "SCAN", "MACHINE", "FORMAT", "TARGET", "STATUS", "PHASE", "SIZE"
    )];
    for x in v {
        rows.push(format!(
            "{:>5}  {:>5}  {:<20} {:<14} {:<9} {:<8} {:<9} {:>10}  {}",
            x.id,
            or_dash(&x.scan),
            or_dash(&x.machine),
            x.format,
            x.target,
            x.status,
            or_dash(&x.phase),
            x.size
                .map(|s| mib(u64::try_from(s).unwrap_or(0)))
                .unwrap_or_else(|| "-".into()),
            x.created_at
        ));
    }
    rows
}
