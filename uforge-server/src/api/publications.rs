//! `POST /images/{id}/publications` and `/publications`: finished images sent to the caller's
//! targets (and, on a libvirt target, machines started from them) by background jobs.
//!
//! A job is polled like an image job until `done` (then `location` and `digest` say where
//! the image is) or `failed` (then `error` names the target and says why; `retry` queues it
//! again and resumes what was sent). Deleting a done publication removes what it pushed.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use uforge_api::{
    Deployed, ErrorBody, ImageStatus, NewPublication, Publication as ApiPublication,
    PublicationProgress,
};
use uforge_core::image::Format;
use uforge_core::publish::{Firmware, InstanceSpec, Publication, TargetKind, TargetSpec};

use super::{blocking, db, parse_id, rfc3339, targets, ApiError, ApiResult, JsonBody, Shared};
use crate::auth::AuthUser;
use crate::db::models::{NewPublicationRow, PublicationRow};
use crate::db::now;
use crate::db::publish::{self as pubq, Deletion, Retry, TargetKey};
use crate::db::queries::{self, image_status};

/// The API form of a job.
fn publication_json(p: &PublicationRow, target: &str) -> ApiResult<ApiPublication> {
    let status: ImageStatus = p
        .status
        .parse::<ImageStatus>()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let done = status == ImageStatus::Done;
    let result: Option<Publication> = match &p.result {
        Some(r) => Some(serde_json::from_str(r).map_err(|e| ApiError::internal(e.to_string()))?),
        None => None,
    };
    let percent = if done {
        Some(100)
    } else {
        p.progress_total
            .filter(|t| *t > 0 && status == ImageStatus::Running)
            .map(|t| (p.progress_bytes.clamp(0, t) as i128 * 100 / t as i128) as i64)
    };
    let result = result.as_ref().filter(|_| done);
    Ok(ApiPublication {
        id: p.id,
        image: p.image_id,
        target: target.to_string(),
        name: p.name.clone(),
        deploy: p.instance.is_some(),
        status,
        phase: p.phase.clone(),
        progress: PublicationProgress {
            bytes: p.progress_bytes,
            total_bytes: p.progress_total,
            percent,
        },
        error: p.error.clone(),
        error_kind: p.error_kind.clone(),
        location: result.map(|r| r.location.clone()),
        digest: result.map(|r| r.digest.clone()),
        size: result.map(|r| r.size),
        sent: result.map(|r| r.sent),
        instance: result.and_then(|r| r.instance.as_ref()).map(|i| Deployed {
            name: i.name.clone(),
            firmware: i.firmware.name().to_string(),
            memory: i.memory_mib,
            cpus: i.cpus,
            forwards: i.forwards.clone(),
        }),
        created_at: rfc3339(p.created_at),
        started_at: p.started_at.map(rfc3339),
        finished_at: p.finished_at.map(rfc3339),
    })
}

/// One of the caller's publications; 404 for anyone else's.
async fn load(state: &Shared, user: &AuthUser, id: &str) -> ApiResult<(PublicationRow, String)> {
    let id = parse_id(id, "publication")?;
    let uid = user.id;
    db(state, move |c| pubq::publication(c, uid, id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no publication {id}")))
}

/// The name at the target a request asks for: its `name`, with its `tag` for a registry.
fn name_of(body: &NewPublication, kind: TargetKind, file: &str) -> ApiResult<Option<String>> {
    let Some(tag) = &body.tag else {
        return Ok(body.name.clone());
    };
    if kind != TargetKind::Registry {
        return Err(ApiError::bad_request(format!(
            "tag: a {kind} target has no tags; give the name at the target as `name`"
        )));
    }
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(ApiError::bad_request(format!(
            "tag {tag:?}: use letters, digits, '.', '_' or '-' (at most 128)"
        )));
    }
    let repo = match &body.name {
        Some(n) if n.contains(':') => {
            return Err(ApiError::bad_request(format!(
                "name {n:?} has a tag and `tag` gives another; give one"
            )))
        }
        Some(n) => n.clone(),
        // The image's own name: the file name up to its extensions.
        None => file.split('.').next().unwrap_or(file).to_ascii_lowercase(),
    };
    Ok(Some(format!("{repo}:{tag}")))
}

/// The machine a request asks to start, if any.
fn instance_of(body: &NewPublication, kind: TargetKind) -> ApiResult<Option<InstanceSpec>> {
    let asked = body.memory.is_some() || body.cpus.is_some() || body.firmware.is_some();
    let start = body.start.unwrap_or(asked);
    if !start {
        if asked {
            return Err(ApiError::bad_request(
                "memory, cpus and firmware are for a deployment; leave out `start: false`",
            ));
        }
        return Ok(None);
    }
    if !kind.provisions() {
        return Err(ApiError::bad_request(format!(
            "start: a {kind} target cannot start machines; deploy to a libvirt target"
        )));
    }
    let firmware = match &body.firmware {
        None => Firmware::Auto,
        Some(f) => Firmware::parse(f).ok_or_else(|| {
            ApiError::bad_request(format!("firmware {f:?}: expected auto, bios or uefi"))
        })?,
    };
    let memory_mib = body.memory.unwrap_or(1024);
    let cpus = body.cpus.unwrap_or(1);
    if !(64..=1 << 22).contains(&memory_mib) || !(1..=256).contains(&cpus) {
        return Err(ApiError::bad_request(format!(
            "memory {memory_mib} MiB and {cpus} CPUs: expected 64 MiB to 4 TiB and 1 to 256 CPUs"
        )));
    }
    Ok(Some(InstanceSpec {
        name: body.name.clone(),
        memory_mib,
        cpus,
        firmware,
    }))
}

/// Publish a finished image to one of the caller's targets (with `start`, `memory` or
/// `cpus` on a libvirt target: deploy it).
///
/// Answers at once; poll `GET /publications/{id}` until it is `done` or `failed`.
#[utoipa::path(
    post,
    path = "/images/{id}/publications",
    tag = "publishing",
    operation_id = "createPublication",
    params(("id" = i64, Path, description = "Image id")),
    request_body = NewPublication,
    responses(
        (status = 202, description = "Queued", body = ApiPublication),
        (status = 400, description = "A format the target does not take, a bad name, tag or machine", body = ErrorBody),
        (status = 404, description = "No such image or target of the caller's", body = ErrorBody),
        (status = 409, description = "The image is not done", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(image): Path<String>,
    JsonBody(body): JsonBody<NewPublication>,
) -> ApiResult<(StatusCode, Json<ApiPublication>)> {
    let image_id = parse_id(&image, "image")?;
    let uid = user.id;
    let (image, _) = db(&state, move |c| queries::image(c, uid, image_id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no image {image_id}")))?;
    let target = targets::load(&state, &user, &body.target).await?;
    let (image_status::DONE, Some(file)) = (image.status.as_str(), image.file.as_deref()) else {
        return Err(ApiError::conflict(format!(
            "image {} is {}: only a built image can be published",
            image.id, image.status
        )));
    };
    let spec: TargetSpec =
        serde_json::from_str(&target.spec).map_err(|e| ApiError::internal(e.to_string()))?;
    let format: Format = image
        .format
        .parse::<Format>()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    targets::check_format(&target.name, spec.kind(), format)?;
    let name = name_of(&body, spec.kind(), file)?;
    if let Some(n) = &name {
        if n.is_empty()
            || n.len() > 255
            || n.contains(['/', '\0']) && spec.kind() != TargetKind::Registry
        {
            return Err(ApiError::bad_request(format!(
                "name {n:?}: expected a file, object or volume name (no '/')"
            )));
        }
    }
    let instance = instance_of(&body, spec.kind())?;
    let instance = instance
        .map(|i| serde_json::to_string(&i))
        .transpose()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let target_id = target.id;
    let row = db(&state, move |c| {
        pubq::create_publication(
            c,
            &NewPublicationRow {
                user_id: uid,
                image_id: Some(image_id),
                target_id,
                name: name.as_deref(),
                instance: instance.as_deref(),
                status: image_status::QUEUED,
                created_at: now(),
            },
        )
    })
    .await?;
    state.jobs.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(publication_json(&row, &target.name)?),
    ))
}

/// `GET /publications` query.
#[derive(Deserialize)]
pub(crate) struct ListQuery {
    image: Option<i64>,
}

/// The caller's publications, newest first.
#[utoipa::path(
    get,
    path = "/publications",
    tag = "publishing",
    operation_id = "listPublications",
    params(("image" = Option<i64>, Query, description = "Only the publications of this image")),
    responses(
        (status = 200, description = "The caller's publications, newest first", body = Vec<ApiPublication>),
        (status = 400, description = "A bad query", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<ApiPublication>>> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let uid = user.id;
    let ps = db(&state, move |c| pubq::list_publications(c, uid, q.image)).await?;
    Ok(Json(
        ps.iter()
            .map(|(p, t)| publication_json(p, t))
            .collect::<ApiResult<_>>()?,
    ))
}

/// One publication: status, phase, bytes sent, error, where the image went.
#[utoipa::path(
    get,
    path = "/publications/{id}",
    tag = "publishing",
    operation_id = "getPublication",
    params(("id" = i64, Path, description = "Publication id")),
    responses(
        (status = 200, description = "The job", body = ApiPublication),
        (status = 404, description = "No such publication of the caller's", body = ErrorBody),
    )
)]
pub(crate) async fn get_one(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiPublication>> {
    let (p, t) = load(&state, &user, &id).await?;
    Ok(Json(publication_json(&p, &t)?))
}

/// Queue a failed publication again; it resumes what the failed attempt sent.
#[utoipa::path(
    post,
    path = "/publications/{id}/retry",
    tag = "publishing",
    operation_id = "retryPublication",
    params(("id" = i64, Path, description = "Publication id")),
    responses(
        (status = 202, description = "Queued again", body = ApiPublication),
        (status = 404, description = "No such publication of the caller's", body = ErrorBody),
        (status = 409, description = "The publication has not failed", body = ErrorBody),
    )
)]
pub(crate) async fn retry(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<ApiPublication>)> {
    let (p, target) = load(&state, &user, &id).await?;
    let (uid, id) = (user.id, p.id);
    match db(&state, move |c| pubq::retry_publication(c, uid, id)).await? {
        Retry::Queued(row) => {
            state.jobs.wake();
            Ok((StatusCode::ACCEPTED, Json(publication_json(&row, &target)?)))
        }
        Retry::NotFailed(s) => Err(ApiError::conflict(format!(
            "publication {id} is {s}; only a failed one is retried"
        ))),
        Retry::Missing => Err(ApiError::not_found(format!("no publication {id}"))),
    }
}

/// Delete a publication: what it pushed is removed from the target first (the image file,
/// the registry manifest, the object, the volume and the machine started), where the target
/// allows it; the record stays when the target refuses.
#[utoipa::path(
    delete,
    path = "/publications/{id}",
    tag = "publishing",
    operation_id = "deletePublication",
    params(("id" = i64, Path, description = "Publication id")),
    responses(
        (status = 204, description = "Deleted, with what it pushed"),
        (status = 404, description = "No such publication of the caller's", body = ErrorBody),
        (status = 409, description = "The publication is running", body = ErrorBody),
        (status = 502, description = "The target refused to delete what was pushed", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (p, target_name) = load(&state, &user, &id).await?;
    let id = p.id;
    let running = || {
        ApiError::conflict(format!(
            "publication {id} is running; delete it once it is done or failed"
        ))
    };
    if p.status == image_status::RUNNING {
        return Err(running());
    }
    let uid = user.id;
    if let (image_status::DONE, Some(result)) = (p.status.as_str(), p.result.clone()) {
        let st = state.clone();
        let target_id = p.target_id;
        blocking(move || {
            let mut c = st.db.get()?;
            let t = pubq::target(&mut c, uid, &TargetKey::Id(target_id))?
                .ok_or_else(|| ApiError::not_found(format!("no target {target_name:?}")))?;
            drop(c);
            let open = crate::publishing::open_target(&st.key, &t)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let record: Publication =
                serde_json::from_str(&result).map_err(|e| ApiError::internal(e.to_string()))?;
            uforge_core::publish::publisher(&open.spec, open.credentials)
                .and_then(|p| p.delete(&record))
                .map_err(|e| {
                    ApiError::bad_gateway(format!(
                        "{}; the publication is kept",
                        crate::publishing::error_text(&t.name, &e)
                    ))
                })
        })
        .await?;
    }
    match db(&state, move |c| pubq::delete_publication(c, uid, id)).await? {
        Deletion::Deleted => {}
        Deletion::Running => return Err(running()),
        Deletion::Missing => return Err(ApiError::not_found(format!("no publication {id}"))),
    }
    let dir = state.data.publication_work(id);
    blocking(move || {
        if let Err(e) = uforge_core::image::chroot::remove_tree(&dir) {
            tracing::error!("{}", uforge_core::error::chain(&e));
        }
        Ok(())
    })
    .await?;
    tracing::info!(publication = id, "publication deleted");
    Ok(StatusCode::NO_CONTENT)
}
