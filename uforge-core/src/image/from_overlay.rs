//! The whole migration on one machine: a report and its overlay file to an image, the steps a
//! server spreads over an upload and a job (take in the overlay, recreate the packages no
//! repository has, build).

use std::fs::File;
use std::path::Path;

use super::build::{build, check_space, BuildResult, BuildSpec};
use crate::analysis::Analysis;
use crate::model::FileKind;
use crate::overlay::{read_overlay, ReadLimits};
use crate::progress::Progress;
use crate::recreate::recreate_packages;
use crate::report::ReportReader;
use crate::{Error, Result};

/// Room the blob store needs beyond the files themselves (staging, directories).
const STORE_SLACK: u64 = 64 << 20;

/// Builds the image `spec` asks for from the overlay file `overlay`, made from `analysis` of
/// `spec.report`: verifies the overlay into `spec.blobs` (after checking there is room for its
/// contents in `spec.work_dir`), recreates the packages no repository has into
/// `WORK_DIR/recreated`, a flat repository the build installs from besides `spec.sources`,
/// and runs [`build`].
pub fn build_from_overlay(
    overlay: &Path,
    analysis: &Analysis,
    spec: &BuildSpec<'_>,
    progress: &dyn Progress,
) -> Result<BuildResult> {
    let expected = analysis.expected(ReportReader::open(spec.report)?)?;
    // The contents are stored unpacked (sparse files at full size) before the build starts.
    let stored: u64 = expected
        .values()
        .filter(|e| e.kind == FileKind::File)
        .map(|e| e.size)
        .sum();
    std::fs::create_dir_all(spec.work_dir).map_err(|e| Error::io("create", spec.work_dir, e))?;
    check_space(spec.work_dir, stored + STORE_SLACK)?;
    let input = File::open(overlay).map_err(|e| Error::io("open", overlay, e))?;
    read_overlay(input, &expected, spec.blobs, &ReadLimits::default())?;
    drop(expected);

    let recreated = spec.work_dir.join("recreated");
    if !analysis.missing_packages.is_empty() {
        recreate_packages(
            spec.report,
            &analysis.missing_packages,
            spec.blobs,
            &recreated,
        )?;
    }
    let mut sources = spec.sources.clone();
    sources.local.push(recreated);
    build(
        &BuildSpec {
            sources: &sources,
            extra_outputs: spec.extra_outputs.clone(),
            ..*spec
        },
        progress,
    )
}
