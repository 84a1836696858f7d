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

/// Bytes for people: `512 B`, `1.5 KiB`, `9.1 GiB` (binary units, one decimal).
pub(super) fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The lines of a table whose columns are as wide as their widest cell, two spaces apart. A
/// heading starting with `>` right-aligns its column (numbers, sizes); the last column is not
/// padded, so lines carry no trailing blanks.
pub(super) fn table(head: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let right: Vec<bool> = head.iter().map(|h| h.starts_with('>')).collect();
    let head: Vec<String> = head
        .iter()
        .map(|h| h.trim_start_matches('>').to_string())
        .collect();
    let width = |c: &str| c.chars().count();
    let mut widths: Vec<usize> = head.iter().map(|h| width(h)).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(c));
        }
    }
    let line = |cells: &[String]| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = " ".repeat(widths[i].saturating_sub(width(c)));
            if right[i] {
                out.push_str(&pad);
                out.push_str(c);
            } else {
                out.push_str(c);
                if i < last {
                    out.push_str(&pad);
                }
            }
        }
        out
    };
    std::iter::once(line(&head))
        .chain(rows.iter().map(|r| line(r)))
        .collect()
}

/// `key value` lines with the values aligned after the longest key.
fn fields(pairs: &[(&str, String)]) -> Vec<String> {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs.iter().map(|(k, v)| format!("{k:<w$}  {v}")).collect()
}

pub(super) fn scans(v: &[Scan]) -> Vec<String> {
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|x| {
            let summary = |f: fn(&ScanSummary) -> u64| or_dash(&x.summary.as_ref().map(f));
            vec![
                x.id.to_string(),
                x.machine.clone(),
                x.status.to_string(),
                x.created_at.clone(),
                summary(|s| s.entries),
                summary(|s| s.wanted),
                x.summary
                    .as_ref()
                    .map_or_else(|| "-".into(), |s| size(s.wanted_bytes)),
            ]
        })
        .collect();
    table(
        &[
            ">ID", "MACHINE", "STATUS", "CREATED", ">ENTRIES", ">WANTED", ">SIZE",
        ],
        &rows,
    )
}

pub(super) fn scan(x: &Scan) -> Vec<String> {
    let mut pairs = vec![
        ("scan", x.id.to_string()),
        ("machine", x.machine.clone()),
        ("status", x.status.to_string()),
        ("created", x.created_at.clone()),
        ("completed", or_dash(&x.completed_at)),
    ];
    if let Some(m) = &x.summary {
        // In the order of the names, as the server's JSON lists them; bytes for people here,
        // exact in `--json`.
        for (k, v) in [
            ("deleted_files", m.deleted_files.to_string()),
            ("entries", m.entries.to_string()),
            ("held", m.held.to_string()),
            ("missing_packages", m.missing_packages.to_string()),
            ("modified_files", m.modified_files.to_string()),
            ("packages", m.packages.to_string()),
            ("unknown_files", m.unknown_files.to_string()),
            ("wanted", m.wanted.to_string()),
            ("wanted_bytes", size(m.wanted_bytes)),
        ] {
            pairs.push((k, v));
        }
    }
    fields(&pairs)
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
    repos(std::slice::from_ref(v))
}

pub(super) fn repos(v: &[Repo]) -> Vec<String> {
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                or_dash(&r.packages),
                or_dash(&r.synced_at),
                r.line.clone(),
            ]
        })
        .collect();
    table(&[">ID", ">PACKAGES", "SYNCED", "LINE"], &rows)
}

pub(super) fn machines(v: &[Machine]) -> Vec<String> {
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|m| vec![m.name.clone(), m.scans.to_string(), or_dash(&m.last_scan)])
        .collect();
    table(&["MACHINE", ">SCANS", "LAST SCAN"], &rows)
}

pub(super) fn packages(v: &[Package]) -> Vec<String> {
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                p.arch.clone(),
                p.file.clone(),
            ]
        })
        .collect();
    table(&["NAME", "VERSION", "ARCH", "FILE"], &rows)
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
                size(u64::try_from(p.bytes).unwrap_or(0))
            ));
        }
    }
    line
}

/// The table form of one job.
pub(super) fn image(x: &Image) -> Vec<String> {
    let mut pairs = vec![
        ("image", x.id.to_string()),
        (
            "scan",
            format!("{} ({})", or_dash(&x.scan), or_dash(&x.machine)),
        ),
        (
            "format",
            format!("{} for {}, network {}", x.format, x.target, x.network),
        ),
        (
            "status",
            progress_line(x)
                .split_once(": ")
                .map_or("", |p| p.1)
                .to_string(),
        ),
    ];
    if x.status != uforge_api::ImageStatus::Running && x.phase.is_some() {
        pairs.push(("phase", or_dash(&x.phase)));
    }
    if x.error.is_some() {
        pairs.push(("error", or_dash(&x.error)));
    }
    if let Some(bytes) = x.size {
        pairs.push((
            "file",
            format!(
                "{} ({})",
                or_dash(&x.file),
                size(u64::try_from(bytes).unwrap_or(0))
            ),
        ));
        pairs.push(("sha256", or_dash(&x.sha256)));
    }
    pairs.push(("created", x.created_at.clone()));
    pairs.push(("started", or_dash(&x.started_at)));
    pairs.push(("finished", or_dash(&x.finished_at)));
    fields(&pairs)
}

/// The table form of a list of jobs.
pub(super) fn images(v: &[Image]) -> Vec<String> {
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|x| {
            vec![
                x.id.to_string(),
                or_dash(&x.scan),
                or_dash(&x.machine),
                x.format.clone(),
                x.target.clone(),
                x.status.to_string(),
                or_dash(&x.phase),
                x.size
                    .map(|s| size(u64::try_from(s).unwrap_or(0)))
                    .unwrap_or_else(|| "-".into()),
                x.created_at.clone(),
            ]
        })
        .collect();
    table(
        &[
            ">ID", ">SCAN", "MACHINE", "FORMAT", "TARGET", "STATUS", "PHASE", ">SIZE", "CREATED",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(9_817_086_383), "9.1 GiB");
    }

    #[test]
    fn columns_fit_their_content() {
        let rows = vec![
            vec!["1".into(), "a-package-with-a-long-name".into(), "x".into()],
            vec!["1234".into(), "b".into(), "y".into()],
        ];
        assert_eq!(
            table(&[">ID", "NAME", "FILE"], &rows),
            [
                "  ID  NAME                        FILE",
                "   1  a-package-with-a-long-name  x",
                "1234  b                           y",
            ]
        );
    }
}
