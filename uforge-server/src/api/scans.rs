//! `/scans` and `/machines`: a scan's life from creation to a verified overlay.
//!
//! A scan is `created`, becomes `analyzed` once its report is in (the answer is the analysis:
//! what the overlay must carry), and `complete` once the overlay has been verified into the
//! blob store; then the packages no repository has are rebuilt.

use std::collections::{HashMap, HashSet};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use uforge_api::{
    AnalysisDocument, Comparison, ErrorBody, Machine, NewScan, OverlayResult, OverlayWanted,
    PathEntry, RecreatedRef, Scan as ApiScan, ScanStatus,
};
use uforge_core::analysis::{analyze_report, Analysis};
use uforge_core::blobstore::{to_hex, BlobStore};
use uforge_core::model::{FileEntry, RawPath};
use uforge_core::overlay::{held_entries, read_overlay_resumable, HeldEntries, ReadLimits};
use uforge_core::progress::NoProgress;
use uforge_core::repo::Sources;
use uforge_core::report::ReportReader;

use super::{
    blocking, db, file_response, parse_id, rfc3339, ApiError, ApiResult, JsonBody, Shared,
};
use crate::auth::AuthUser;
use crate::bridge;
use crate::db::models::{NewPackage, Scan};
use crate::db::now;
use crate::db::queries::{self, status};
use crate::pipeline;
use crate::recreate;

fn scan_json(s: &Scan, machine: &str) -> ApiResult<ApiScan> {
    Ok(ApiScan {
        id: s.id,
        machine: machine.to_string(),
        status: s.status.parse::<ScanStatus>().map_err(ApiError::internal)?,
        created_at: rfc3339(s.created_at),
        completed_at: s.completed_at.map(rfc3339),
        summary: s
            .summary
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok()),
    })
}

/// One of the caller's scans; 404 for anyone else's.
async fn load(state: &Shared, user: &AuthUser, id: &str) -> ApiResult<(Scan, String)> {
    let id = parse_id(id, "scan")?;
    let uid = user.id;
    db(state, move |c| queries::scan(c, uid, id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no scan {id}")))
}

/// Machine names are free text for people, within reason.
fn check_machine(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "machine name {name:?}: 1 to 255 bytes without control characters"
        )));
    }
    Ok(())
}

/// The caller's machines.
#[utoipa::path(
    get,
    path = "/machines",
    tag = "scans",
    operation_id = "listMachines",
    responses((status = 200, description = "The caller's machines", body = Vec<Machine>))
)]
pub(crate) async fn machines(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
) -> ApiResult<Json<Vec<Machine>>> {
    let ms = db(&state, move |c| queries::machines_with_stats(c, user.id)).await?;
    Ok(Json(
        ms.into_iter()
            .map(|(m, scans, last)| Machine {
                name: m.name,
                scans,
                last_scan: last.map(rfc3339),
            })
            .collect(),
    ))
}

/// Start a scan of a machine, or resume its unfinished one.
///
/// If the machine has an unfinished scan (`created` or `analyzed`), that scan is returned,
/// reset to `created`, so that rerunning the agent finishes it.
#[utoipa::path(
    post,
    path = "/scans",
    tag = "scans",
    operation_id = "createScan",
    request_body = NewScan,
    responses(
        (status = 201, description = "The scan", body = ApiScan),
        (status = 400, description = "A bad machine name or body", body = ErrorBody),
        (status = 409, description = "The unfinished scan has an upload under way", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    JsonBody(body): JsonBody<NewScan>,
) -> ApiResult<(StatusCode, Json<ApiScan>)> {
    check_machine(&body.machine)?;
    let (uid, name) = (user.id, body.machine.clone());
    let (machine, unfinished) = db(&state, move |c| {
        let m = queries::ensure_machine(c, uid, &name)?;
        let s = queries::unfinished_scan(c, m.id)?;
        Ok((m, s))
    })
    .await?;
    let scan = match unfinished {
        // Nothing to reset: handed back as it is, so concurrent calls all get it.
        Some(s) if s.status == status::CREATED && s.summary.is_none() => s,
        Some(s) => {
            let _guard = state.claim(s.id)?;
            let id = s.id;
            let scan = db(&state, move |c| queries::reset_scan(c, id)).await?;
            remove_files(&state, id).await;
            scan
        }
        None => {
            let mid = machine.id;
            db(&state, move |c| queries::create_scan(c, uid, mid)).await?
        }
    };
    Ok((StatusCode::CREATED, Json(scan_json(&scan, &machine.name)?)))
}

async fn remove_files(state: &Shared, id: i64) {
    for p in [state.data.report(id), state.data.analysis(id)] {
        let _ = tokio::fs::remove_file(p).await;
    }
}

/// `GET /scans` query.
#[derive(Deserialize)]
pub(crate) struct ListQuery {
    machine: Option<String>,
}

/// The caller's scans, newest first.
#[utoipa::path(
    get,
    path = "/scans",
    tag = "scans",
    operation_id = "listScans",
    params(("machine" = Option<String>, Query, description = "Only the scans of this machine")),
    responses((status = 200, description = "The caller's scans, newest first", body = Vec<ApiScan>))
)]
pub(crate) async fn list(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<ApiScan>>> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let ss = db(&state, move |c| {
        queries::list_scans(c, user.id, q.machine.as_deref())
    })
    .await?;
    Ok(Json(
        ss.iter()
            .map(|(s, m)| scan_json(s, m))
            .collect::<ApiResult<_>>()?,
    ))
}

/// One scan.
#[utoipa::path(
    get,
    path = "/scans/{id}",
    tag = "scans",
    operation_id = "getScan",
    params(("id" = i64, Path, description = "Scan id")),
    responses(
        (status = 200, description = "The scan", body = ApiScan),
        (status = 404, description = "No such scan of the caller's", body = ErrorBody),
    )
)]
pub(crate) async fn get_one(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiScan>> {
    let (s, m) = load(&state, &user, &id).await?;
    Ok(Json(scan_json(&s, &m)?))
}

/// Delete a scan with its report and analysis.
///
/// Blobs stay: other scans may share them. Refused while an image of the scan is queued or
/// being built: the build reads the report.
#[utoipa::path(
    delete,
    path = "/scans/{id}",
    tag = "scans",
    operation_id = "deleteScan",
    params(("id" = i64, Path, description = "Scan id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such scan of the caller's", body = ErrorBody),
        (status = 409, description = "An upload is under way, or images of the scan are queued or running", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (s, _) = load(&state, &user, &id).await?;
    let _guard = state.claim(s.id)?;
    let (uid, id) = (user.id, s.id);
    let deleted = db(&state, move |c| {
        let active = queries::active_images_of_scan(c, id)?;
        if !active.is_empty() {
            return Ok(Err(active));
        }
        queries::delete_scan(c, uid, id).map(Ok)
    })
    .await?;
    match deleted {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::not_found(format!("no scan {id}"))),
        Err(active) => {
            let ids: Vec<String> = active.iter().map(i64::to_string).collect();
            return Err(ApiError::conflict(format!(
                "scan {id} has images queued or being built ({}); wait until they end, or \
                 delete the queued ones, before deleting the scan",
                ids.join(", ")
            )));
        }
    }
    remove_files(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a scan's report (native or JSON, streamed) and receive its analysis.
///
/// The report is checked to decode and stored natively; the scan becomes `analyzed`.
#[utoipa::path(
    post,
    path = "/scans/{id}/report",
    tag = "scans",
    operation_id = "uploadReport",
    params(("id" = i64, Path, description = "Scan id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The report, native or JSON"),
    responses(
        (status = 200, description = "The analysis", body = AnalysisDocument),
        (status = 400, description = "A malformed report, naming the entry at fault", body = ErrorBody),
        (status = 404, description = "No such scan of the caller's", body = ErrorBody),
        (status = 409, description = "The scan is complete, or an upload is under way", body = ErrorBody),
        (status = 413, description = "A report past a size limit: bytes sent, entries or decoded bytes", body = ErrorBody),
        (status = 502, description = "A repository could not be fetched or verified", body = ErrorBody),
    )
)]
pub(crate) async fn upload_report(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (scan, _) = load(&state, &user, &id).await?;
    let id = scan.id;
    if scan.status == status::COMPLETE {
        return Err(ApiError::conflict(format!(
            "scan {id} is complete; start a new scan of the machine (POST /scans)"
        )));
    }
    let _guard = state.claim(id)?;
    let limit = state.max_report_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Whatever the reader leaves of the body is discarded after the answer has gone out.
    let (mut reader, _rest) = bridge::stream(req.into_body());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::from_core(pipeline::too_large(limit)));
    }

    let upload = state.data.upload(id);
    let stored = state.data.reports().join(format!("{id}.ufr.new"));
    let received = blocking({
        let upload = upload.clone();
        move || pipeline::receive(&mut reader, &upload, limit).map_err(ApiError::from_upload)
    })
    .await;
    received?;

    let what = format!("for scan {id}");
    let limits = state.report_limits;
    let checked = blocking({
        let (upload, stored) = (upload.clone(), stored.clone());
        move || pipeline::store_report(&upload, &stored, &what, limits).map_err(ApiError::from_core)
    })
    .await;
    if let Err(e) = checked {
        let _ = tokio::fs::remove_file(&upload).await;
        let _ = tokio::fs::remove_file(&stored).await;
        return Err(e);
    }

    let (uid, mid) = (user.id, scan.machine_id);
    let (repos, previous) = db(&state, move |c| {
        Ok((
            queries::synced_repo_lines(c, uid)?,
            queries::complete_scans(c, mid, id)?,
        ))
    })
    .await?;
    let admin = user.admin;
    let repos = blocking(move || {
        crate::repo_policy::check_lines(&repos, admin)
            .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))?;
        Ok(repos)
    })
    .await;
    let repos = match repos {
        Ok(r) => r,
        Err(e) => {
            let _ = tokio::fs::remove_file(&stored).await;
            return Err(e);
        }
    };
    let mut sources = Sources {
        lines: repos,
        files: Vec::new(),
        local: Vec::new(),
        keyring: state.keyring.clone(),
        cache_dir: Some(state.data.cache()),
    };
    let own_repos = state.data.user_repo(&user.name);
    let previous: Vec<_> = previous.iter().map(|p| state.data.report(*p)).collect();
    let analysis_new = state.data.reports().join(format!("{id}.analysis.json.new"));
    let analysed = blocking({
        let (analysis_new, stored) = (analysis_new.clone(), stored.clone());
        move || {
            // Packages recreated for the scan's release only.
            sources.local =
                vec![pipeline::release_repo(&own_repos, &stored).map_err(ApiError::from_core)?];
            let a = analyze_report(&stored, &sources, &previous, &NoProgress)
                .map_err(ApiError::from_core)?;
            pipeline::write_analysis(&a, &analysis_new).map_err(ApiError::from_core)?;
            Ok(pipeline::summary(&a))
        }
    })
    .await;
    let summary = match analysed {
        Ok(s) => s,
        Err(e) => {
            let _ = tokio::fs::remove_file(&stored).await;
            let _ = tokio::fs::remove_file(&analysis_new).await;
            return Err(e);
        }
    };
    let (report, analysis) = (state.data.report(id), state.data.analysis(id));
    let placed = async {
        tokio::fs::rename(&stored, &report).await?;
        tokio::fs::rename(&analysis_new, &analysis).await
    }
    .await;
    placed.map_err(|e| ApiError::internal(format!("cannot store the report of scan {id}: {e}")))?;
    let summary_text = serde_json::to_string(&summary)
        .map_err(|e| ApiError::internal(format!("cannot encode the summary: {e}")))?;
    db(&state, move |c| queries::set_analyzed(c, id, &summary_text)).await?;
    file_response(&analysis, "application/json", None).await
}

/// The stored report, native.
#[utoipa::path(
    get,
    path = "/scans/{id}/report",
    tag = "scans",
    operation_id = "downloadReport",
    params(("id" = i64, Path, description = "Scan id")),
    responses(
        (status = 200, description = "The report", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such scan of the caller's", body = ErrorBody),
        (status = 409, description = "The scan has no report yet", body = ErrorBody),
    )
)]
pub(crate) async fn download_report(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (s, _) = load(&state, &user, &id).await?;
    if s.status == status::CREATED {
        return Err(no_report(s.id));
    }
    file_response(
        &state.data.report(s.id),
        "application/octet-stream",
        Some(&format!("scan-{}.ufr", s.id)),
    )
    .await
}

fn no_report(id: i64) -> ApiError {
    ApiError::conflict(format!(
        "scan {id} has no report yet: POST /scans/{id}/report first"
    ))
}

/// The analysis of the stored report.
#[utoipa::path(
    get,
    path = "/scans/{id}/analysis",
    tag = "scans",
    operation_id = "getAnalysis",
    params(("id" = i64, Path, description = "Scan id")),
    responses(
        (status = 200, description = "The analysis", body = AnalysisDocument),
        (status = 404, description = "No such scan of the caller's", body = ErrorBody),
        (status = 409, description = "The scan has no report yet", body = ErrorBody),
    )
)]
pub(crate) async fn analysis(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (s, _) = load(&state, &user, &id).await?;
    if s.status == status::CREATED {
        return Err(no_report(s.id));
    }
    file_response(&state.data.analysis(s.id), "application/json", None).await
}

/// The report entries a scan's overlay must account for, and those of them it may leave out:
/// regular files and hard links whose content a scan of the same user holds and the blob
/// store has. Never another user's: holding a digest must not stand for having the file.
fn expected_and_held(
    state: &Shared,
    user: i64,
    id: i64,
) -> ApiResult<(Analysis, HashMap<RawPath, FileEntry>, HeldEntries)> {
    let (report, analysis) = (state.data.report(id), state.data.analysis(id));
    // The stored files are the server's own: failing to read them is ours.
    let a = Analysis::open(&analysis).map_err(|e| ApiError::internal(e.to_string()))?;
    let expected = ReportReader::open(&report)
        .and_then(|r| a.expected(r))
        .map_err(ApiError::from_core)?;
    let mut digests: Vec<String> = expected
        .values()
        .filter_map(|e| e.sha256.as_ref())
        .map(to_hex)
        .collect();
    digests.sort();
    digests.dedup();
    let mut c = state.db.get()?;
    let owned: HashSet<String> = queries::user_holds(&mut c, user, &digests)?
        .into_iter()
        .collect();
    drop(c);
    let blobs = &*state.blobs;
    let held = held_entries(&expected, |sha| {
        Ok(owned.contains(&to_hex(sha)) && blobs.has(sha)?)
    })
    .map_err(ApiError::from_core)?;
    Ok((a, expected, held))
}

/// What a scan's overlay still has to carry.
///
/// The wanted regular files and hard links whose content a scan of the caller's already holds
/// (an interrupted upload of this scan, a verified overlay of another machine) may be left
/// out of the overlay; everything else must come.
#[utoipa::path(
    get,
    path = "/scans/{id}/overlay/wanted",
    tag = "scans",
    operation_id = "getOverlayWanted",
    params(("id" = i64, Path, description = "Scan id")),
    responses(
        (status = 200, description = "What the overlay may leave out, and what it must carry", body = OverlayWanted),
        (status = 404, description = "No such scan of the caller's", body = ErrorBody),
        (status = 409, description = "No report yet, or already complete", body = ErrorBody),
    )
)]
pub(crate) async fn overlay_wanted(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Json<OverlayWanted>> {
    let (scan, _) = load(&state, &user, &id).await?;
    let id = scan.id;
    match scan.status.as_str() {
        status::CREATED => return Err(no_report(id)),
        status::COMPLETE => {
            return Err(ApiError::conflict(format!("scan {id} is already complete")))
        }
        _ => {}
    }
    let uid = user.id;
    let answer = blocking(move || {
        let (a, _, held) = expected_and_held(&state, uid, id)?;
        Ok(OverlayWanted {
            lacking: (a.wanted.len() - held.paths.len()) as u64,
            lacking_bytes: a.stats.wanted_bytes.saturating_sub(held.bytes),
            held_bytes: held.bytes,
            held: held.paths.iter().map(|p| path_entry(p)).collect(),
        })
    })
    .await?;
    Ok(Json(answer))
}

fn path_entry(p: &[u8]) -> PathEntry {
    let (path, path_b64) = match uforge_core::rawpath::to_text(p) {
        uforge_core::rawpath::TextPath::Utf8(s) => (Some(s.to_string()), None),
        uforge_core::rawpath::TextPath::Base64(b) => (None, Some(b)),
    };
    PathEntry {
        path,
        path_b64,
        package: None,
        change: None,
    }
}

/// Stream a scan's overlay.
///
/// The overlay is verified member by member against the report and the analysis into the
/// blob store; the scan becomes `complete` and the missing packages are rebuilt. It may leave
/// out what `GET /scans/{id}/overlay/wanted` lists as held. An overlay that fails (cut off,
/// a rejected member) keeps the contents that arrived whole and matched their digests, held
/// by the scan for the next upload; nothing of a rejected member is kept.
#[utoipa::path(
    put,
    path = "/scans/{id}/overlay",
    tag = "scans",
    operation_id = "uploadOverlay",
    params(("id" = i64, Path, description = "Scan id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The overlay tar"),
    responses(
        (status = 200, description = "Stored; what was recreated", body = OverlayResult),
        (status = 400, description = "A rejected overlay, naming the member", body = ErrorBody),
        (status = 404, description = "No such scan of the caller's", body = ErrorBody),
        (status = 409, description = "No report yet, already complete, or an upload under way", body = ErrorBody),
    )
)]
pub(crate) async fn upload_overlay(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<OverlayResult>> {
    let (scan, _) = load(&state, &user, &id).await?;
    let id = scan.id;
    match scan.status.as_str() {
        status::CREATED => return Err(no_report(id)),
        status::COMPLETE => {
            return Err(ApiError::conflict(format!("scan {id} is already complete")))
        }
        _ => {}
    }
    let guard = state.claim(id)?;
    // Whatever the reader leaves of the body is discarded after the answer has gone out.
    let (reader, _rest) = bridge::stream(body);
    let (report, analysis) = (state.data.report(id), state.data.analysis(id));
    let uid = user.id;
    let (receipt, missing, summary, _guard) = blocking({
        let (report, state) = (report.clone(), state.clone());
        move || {
            // The claim lives with this thread: a client gone mid-upload drops the request
            // but not the reading, and a rerun waits until what verified is recorded.
            let guard = guard;
            let (mut a, expected, held) = expected_and_held(&state, uid, id)?;
            let read = read_overlay_resumable(
                reader,
                &expected,
                &*state.blobs,
                &ReadLimits::default(),
                &held.digests,
            );
            let mut c = state.db.get()?;
            let receipt = match read {
                Ok(r) => r,
                Err(i) => {
                    let kept: Vec<String> = i.kept.iter().map(|(s, _)| to_hex(s)).collect();
                    let kept_bytes = i.kept_bytes();
                    let mut e = ApiError::from_upload(i.error);
                    if !kept.is_empty() {
                        queries::record_scan_blobs(&mut c, id, &kept)?;
                        e.message.push_str(&format!(
                            " ({} files, {kept_bytes} bytes, that arrived whole are kept for \
                             the next upload of scan {id})",
                            kept.len()
                        ));
                    }
                    return Err(e);
                }
            };
            let mut digests: Vec<String> = receipt
                .amended
                .iter()
                .filter_map(|e| e.sha256.as_ref())
                .chain(expected.values().filter_map(|e| e.sha256.as_ref()))
                .filter(|s| state.blobs.has(s).unwrap_or(false))
                .map(to_hex)
                .collect();
            digests.sort();
            digests.dedup();
            queries::record_scan_blobs(&mut c, id, &digests)?;
            let summary = pipeline::amend(&report, &analysis, &mut a, &receipt)
                .map_err(ApiError::from_core)?;
            Ok((receipt, a.missing_packages, summary, guard))
        }
    })
    .await?;
    db(&state, move |c| {
        queries::set_complete(c, id, summary.as_deref())
    })
    .await?;

    let mut answer = OverlayResult {
        status: ScanStatus::Complete,
        members: receipt.members,
        blobs: receipt.blobs,
        content_bytes: receipt.content_bytes,
        amended: receipt.amended.len() as u64,
        vanished: receipt.vanished.len() as u64,
        held: receipt.held,
        held_bytes: receipt.held_bytes,
        received_bytes: receipt.archive_bytes,
        recreated: Vec::new(),
        recreate_error: None,
    };
    if !missing.is_empty() {
        match rebuild(&state, &user, id, report, missing).await {
            Ok(list) => answer.recreated = list,
            // The overlay is stored and the scan complete whatever happens here; the answer
            // says what could not be rebuilt.
            Err(e) => answer.recreate_error = Some(e.message),
        }
    }
    Ok(Json(answer))
}

async fn rebuild(
    state: &Shared,
    user: &AuthUser,
    scan: i64,
    report: std::path::PathBuf,
    missing: Vec<uforge_core::repo::PackageKey>,
) -> ApiResult<Vec<RecreatedRef>> {
    let _one_at_a_time = state.recreating.lock().await;
    let own_repos = state.data.user_repo(&user.name);
    let blobs = state.blobs.clone();
    let built = blocking(move || {
        let dir = pipeline::release_repo(&own_repos, &report).map_err(ApiError::from_core)?;
        // Owner only, parents included: recreated packages hold the machine's files.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&dir)
            .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
        let built =
            recreate::recreate(&report, &missing, &*blobs, &dir).map_err(ApiError::from_core)?;
        crate::datadir::private_tree(&dir, None, &mut 0)?;
        Ok(built)
    })
    .await?;
    let uid = user.id;
    let rows = built.clone();
    db(state, move |c| {
        let at = now();
        let new: Vec<NewPackage<'_>> = rows
            .iter()
            .map(|p| NewPackage {
                user_id: uid,
                scan_id: Some(scan),
                name: &p.key.name,
                version: &p.key.version,
                arch: &p.key.arch,
                file: &p.file_name,
                sha256: &p.sha256,
                size: p.size as i64,
                created_at: at,
            })
            .collect();
        queries::record_packages(c, &new)
    })
    .await?;
    Ok(built
        .into_iter()
        .map(|p| RecreatedRef {
            name: p.key.name,
            version: p.key.version,
            arch: p.key.arch,
            file: p.file_name,
        })
        .collect())
}

/// What differs between two of the caller's scans (`id` before, `other` after).
#[utoipa::path(
    get,
    path = "/scans/{id}/compare/{other}",
    tag = "scans",
    operation_id = "compareScans",
    params(
        ("id" = i64, Path, description = "The earlier scan"),
        ("other" = i64, Path, description = "The later scan"),
    ),
    responses(
        (status = 200, description = "The differences", body = Comparison),
        (status = 404, description = "No such scan of the caller's", body = ErrorBody),
        (status = 409, description = "A scan has no report yet", body = ErrorBody),
    )
)]
pub(crate) async fn compare(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path((id, other)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let (a, _) = load(&state, &user, &id).await?;
    let (b, _) = load(&state, &user, &other).await?;
    for s in [&a, &b] {
        if s.status == status::CREATED {
            return Err(no_report(s.id));
        }
    }
    let (pa, pb) = (state.data.report(a.id), state.data.report(b.id));
    let c = blocking(move || {
        let open = |p: &std::path::Path| ReportReader::open(p).map_err(ApiError::from_core);
        uforge_core::analysis::compare(open(&pa)?, open(&pb)?).map_err(ApiError::from_core)
    })
    .await?;
    Ok(Json(c.to_json()))
}
