//! `/images` and `POST /scans/{id}/images`: machine images built from complete scans.
//!
//! Asking for an image queues a job and answers at once (`202`); workers (see
//! [`crate::jobs`]) build it. The job is polled until `done` (then its file can be
//! downloaded) or `failed` (then `error` says why).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use uforge_api::{
    ErrorBody, Image as ApiImage, ImageFile, ImageProgress, ImageStatus, NewImage as NewImageBody,
    TuningLog,
};
use uforge_core::image::{phase_step, Format, NetworkPolicy, Target, PHASES};

use super::{db, file_response, parse_id, rfc3339, ApiError, ApiResult, JsonBody, Shared, PREFIX};
use crate::auth::AuthUser;
use crate::db::models::{Image, NewImage};
use crate::db::now;
use crate::db::queries::{self, image_status, status, ImageDeletion};
use crate::jobs;

/// The API form of a job.
fn image_json(i: &Image, machine: Option<&str>) -> ApiResult<ApiImage> {
    let status: ImageStatus = i.status.parse().map_err(ApiError::internal)?;
    let done = status == ImageStatus::Done;
    let percent = if done {
        Some(100)
    } else {
        // A phase that moves no bytes (the install counts dpkg's steps) counts its total in
        // entries.
        let done = if i.progress_bytes > 0 {
            i.progress_bytes
        } else {
            i.progress_files
        };
        i.progress_total
            .filter(|t| *t > 0 && status == ImageStatus::Running)
            .map(|t| (done.clamp(0, t) as i128 * 100 / t as i128) as i64)
    };
    let url = |tail: &str| done.then(|| format!("{PREFIX}/images/{}/{tail}", i.id));
    Ok(ApiImage {
        id: i.id,
        scan: i.scan_id,
        machine: machine.map(str::to_string),
        format: i.format.clone(),
        target: i.target.clone(),
        network: i.network.clone(),
        status,
        phase: i.phase.clone(),
        progress: ImageProgress {
            step: i.phase.as_deref().and_then(phase_step).map(|n| n as u64),
            steps: PHASES.len() as u64,
            files: i.progress_files,
            bytes: i.progress_bytes,
            total_bytes: i.progress_total,
            percent,
        },
        error: i.error.clone(),
        file: i.file.clone(),
        size: i.size,
        sha256: i.sha256.clone(),
        created_at: rfc3339(i.created_at),
        started_at: i.started_at.map(rfc3339),
        finished_at: i.finished_at.map(rfc3339),
        download_url: url("download"),
        tuning_log_url: url("tuning-log"),
    })
}

/// One of the caller's image jobs; 404 for anyone else's.
async fn load(state: &Shared, user: &AuthUser, id: &str) -> ApiResult<(Image, Option<String>)> {
    let id = parse_id(id, "image")?;
    let uid = user.id;
    db(state, move |c| queries::image(c, uid, id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no image {id}")))
}

/// Queue an image of a complete scan.
///
/// Answers at once; poll `GET /images/{id}` until the job is `done` or `failed`.
#[utoipa::path(
    post,
    path = "/scans/{id}/images",
    tag = "images",
    operation_id = "createImage",
    params(("id" = i64, Path, description = "Scan id")),
    request_body = NewImageBody,
    responses(
        (status = 202, description = "Queued", body = ApiImage),
        (status = 400, description = "An unknown format, target or network policy, or a bad body", body = ErrorBody),
        (status = 404, description = "No such scan of the caller's", body = ErrorBody),
        (status = 409, description = "The scan is not complete", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(scan): Path<String>,
    JsonBody(body): JsonBody<NewImageBody>,
) -> ApiResult<(StatusCode, Json<ApiImage>)> {
    let scan_id = parse_id(&scan, "scan")?;
    let uid = user.id;
    let (scan, machine) = db(&state, move |c| queries::scan(c, uid, scan_id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no scan {scan_id}")))?;
    let bad = |e: uforge_core::Error| ApiError::bad_request(e.to_string());
    let format: Format = body.format.trim().parse().map_err(bad)?;
    let target: Target = match &body.target {
        Some(t) => t.trim().parse().map_err(bad)?,
        None => format.default_target(),
    };
    let network: NetworkPolicy = match &body.network {
        Some(n) => n.trim().parse().map_err(bad)?,
        None => NetworkPolicy::default(),
    };
    if scan.status != status::COMPLETE {
        return Err(ApiError::conflict(format!(
            "scan {} is {}: its overlay is not stored yet, so there is nothing to build an \
             image from; finish the scan first (the agent sends the overlay)",
            scan.id, scan.status
        )));
    }
    let image = db(&state, move |c| {
        queries::create_image(
            c,
            &NewImage {
                user_id: uid,
                scan_id: Some(scan.id),
                format: format.name(),
                target: target.name(),
                network: network.name(),
                status: image_status::QUEUED,
                created_at: now(),
                allow_upgrades: body.allow_upgrades,
            },
        )
    })
    .await?;
    state.jobs.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(image_json(&image, Some(&machine))?),
    ))
}

/// `GET /images` query.
#[derive(Deserialize)]
pub(crate) struct ListQuery {
    scan: Option<i64>,
}

/// The caller's image jobs, newest first.
#[utoipa::path(
    get,
    path = "/images",
    tag = "images",
    operation_id = "listImages",
    params(("scan" = Option<i64>, Query, description = "Only the images of this scan")),
    responses(
        (status = 200, description = "The caller's image jobs, newest first", body = Vec<ApiImage>),
        (status = 400, description = "A bad query", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<ApiImage>>> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let is = db(&state, move |c| queries::list_images(c, user.id, q.scan)).await?;
    Ok(Json(
        is.iter()
            .map(|(i, m)| image_json(i, m.as_deref()))
            .collect::<ApiResult<_>>()?,
    ))
}

/// One image job: status, phase, progress, error, size and digest.
#[utoipa::path(
    get,
    path = "/images/{id}",
    tag = "images",
    operation_id = "getImage",
    params(("id" = i64, Path, description = "Image id")),
    responses(
        (status = 200, description = "The job", body = ApiImage),
        (status = 404, description = "No such image of the caller's", body = ErrorBody),
    )
)]
pub(crate) async fn get_one(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiImage>> {
    let (i, m) = load(&state, &user, &id).await?;
    Ok(Json(image_json(&i, m.as_deref())?))
}

fn not_done(i: &Image) -> ApiError {
    let why = match i.status.as_str() {
        image_status::FAILED => format!(
            "image {} failed: {}",
            i.id,
            i.error.as_deref().unwrap_or("no reason recorded")
        ),
        s => format!("image {} is {s}, not done yet", i.id),
    };
    ApiError::conflict(why)
}

/// The tuning log of a finished image: every change the build made to the scanned files.
#[utoipa::path(
    get,
    path = "/images/{id}/tuning-log",
    tag = "images",
    operation_id = "getTuningLog",
    params(("id" = i64, Path, description = "Image id")),
    responses(
        (status = 200, description = "The tuning log", body = TuningLog),
        (status = 404, description = "No such image of the caller's", body = ErrorBody),
        (status = 409, description = "The image is not done", body = ErrorBody),
    )
)]
pub(crate) async fn tuning_log(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (i, _) = load(&state, &user, &id).await?;
    if i.status != image_status::DONE {
        return Err(not_done(&i));
    }
    let (uid, id) = (user.id, i.id);
    match db(&state, move |c| queries::image_tuning_log(c, uid, id)).await? {
        Some(Some(log)) => Ok(([(header::CONTENT_TYPE, "application/json")], log).into_response()),
        // Deleted in between, or done without a log: neither should happen.
        _ => Err(ApiError::not_found(format!("no tuning log for image {id}"))),
    }
}

/// Where a finished image's file lies on the server's host: for a client on that host, which
/// can link to it rather than store the image twice.
#[utoipa::path(
    get,
    path = "/images/{id}/file",
    tag = "images",
    operation_id = "getImageFile",
    params(("id" = i64, Path, description = "Image id")),
    responses(
        (status = 200, description = "The file's path, device, inode and size", body = ImageFile),
        (status = 404, description = "No such image of the caller's, or its file is gone", body = ErrorBody),
        (status = 409, description = "The image is not done", body = ErrorBody),
    )
)]
pub(crate) async fn file(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Json<ImageFile>> {
    use std::os::unix::fs::MetadataExt;
    let (i, _) = load(&state, &user, &id).await?;
    let (image_status::DONE, Some(file)) = (&i.status[..], i.file.as_deref()) else {
        return Err(not_done(&i));
    };
    let path = std::path::absolute(state.data.image_dir(i.id).join(file))
        .map_err(|e| ApiError::internal(format!("cannot resolve the image's path: {e}")))?;
    let meta = tokio::fs::metadata(&path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ApiError::not_found("the file is gone")
        } else {
            ApiError::internal(format!("cannot stat {}: {e}", path.display()))
        }
    })?;
    Ok(Json(ImageFile {
        path: path
            .to_str()
            .ok_or_else(|| ApiError::internal("the data directory's path is not UTF-8"))?
            .to_string(),
        device: meta.dev(),
        inode: meta.ino(),
        size: meta.len(),
    }))
}

/// The whole output of the step that failed a failed image job (its error holds only the end).
#[utoipa::path(
    get,
    path = "/images/{id}/log",
    tag = "images",
    operation_id = "getImageLog",
    params(("id" = i64, Path, description = "Image id")),
    responses(
        (status = 200, description = "The log, as text", content_type = "text/plain", body = String),
        (status = 404, description = "No such image of the caller's, or it kept no log", body = ErrorBody),
    )
)]
pub(crate) async fn log(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (i, _) = load(&state, &user, &id).await?;
    let path = state.data.image_log(i.id);
    if !path.is_file() {
        return Err(ApiError::not_found(format!(
            "image {} kept no log: only a failed job keeps the output of the step that failed \
             (this one is {})",
            i.id, i.status
        )));
    }
    file_response(&path, "text/plain; charset=utf-8", None).await
}

/// Download a finished image, streamed with its length and file name.
#[utoipa::path(
    get,
    path = "/images/{id}/download",
    tag = "images",
    operation_id = "downloadImage",
    params(("id" = i64, Path, description = "Image id")),
    responses(
        (status = 200, description = "The image file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such image of the caller's, or its file is gone", body = ErrorBody),
        (status = 409, description = "The image is not done", body = ErrorBody),
    )
)]
pub(crate) async fn download(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (i, _) = load(&state, &user, &id).await?;
    let (image_status::DONE, Some(file)) = (&i.status[..], i.file.as_deref()) else {
        return Err(not_done(&i));
    };
    let path = state.data.image_dir(i.id).join(file);
    file_response(&path, "application/octet-stream", Some(file)).await
}

/// Delete an image job and its file.
///
/// A running job is refused: it cannot be stopped half way.
#[utoipa::path(
    delete,
    path = "/images/{id}",
    tag = "images",
    operation_id = "deleteImage",
    params(("id" = i64, Path, description = "Image id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such image of the caller's", body = ErrorBody),
        (status = 409, description = "The image is being built", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "image")?;
    let uid = user.id;
    // Checked before the row goes: a publication being sent needs the file. One queued
    // between the check and the deletion fails, saying its image was deleted.
    let sending = db(&state, move |c| {
        crate::db::publish::active_publications_of_image(c, id)
    })
    .await?;
    if !sending.is_empty() && load(&state, &user, &id.to_string()).await.is_ok() {
        return Err(ApiError::conflict(format!(
            "image {id} is being published (publications {}); delete it once they end",
            sending
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    match db(&state, move |c| {
        let d = queries::delete_image(c, uid, id)?;
        if d == ImageDeletion::Deleted {
            crate::db::publish::detach_image(c, id)?;
        }
        Ok(d)
    })
    .await?
    {
        ImageDeletion::Missing => Err(ApiError::not_found(format!("no image {id}"))),
        ImageDeletion::Running => Err(ApiError::conflict(format!(
            "image {id} is being built; delete it once it is done or failed"
        ))),
        ImageDeletion::Deleted => {
            let data = state.data.clone();
            super::blocking(move || {
                jobs::remove_image_files(&data, id);
                Ok(())
            })
            .await?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
