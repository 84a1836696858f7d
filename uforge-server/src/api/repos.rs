//! `/repos`: the package repositories a user's analyses are checked against.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use uforge_api::{ErrorBody, NewRepo, Repo as ApiRepo};
use uforge_core::repo::{default_fetcher, DebianRepo, RepoOptions, SourceLine};

use super::{blocking, db, parse_id, rfc3339, ApiError, ApiResult, JsonBody, Shared};
use crate::auth::AuthUser;
use crate::db::models::Repo;
use crate::db::{now, queries};
use crate::repo_policy;

fn repo_json(r: &Repo) -> ApiRepo {
    ApiRepo {
        id: r.id,
        line: r.line.clone(),
        packages: r.packages,
        synced_at: r.synced_at.map(rfc3339),
    }
}

/// Register a package repository (a sources.list line).
///
/// The line is checked, not fetched: sync it before analyses use it.
#[utoipa::path(
    post,
    path = "/repos",
    tag = "repos",
    operation_id = "createRepo",
    request_body = NewRepo,
    responses(
        (status = 201, description = "Registered", body = ApiRepo),
        (status = 400, description = "Not one valid `deb` line, or a bad body", body = ErrorBody),
        (status = 403, description = "A `file:`/`copy:` repository or a host only the server reaches, from a user who is not an administrator", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    JsonBody(body): JsonBody<NewRepo>,
) -> ApiResult<(StatusCode, Json<ApiRepo>)> {
    let line = body.line.trim().to_string();
    check_line(&line)?;
    allowed(&user, &line).await?;
    let r = db(&state, move |c| queries::add_repo(c, user.id, &line)).await?;
    Ok((StatusCode::CREATED, Json(repo_json(&r))))
}

/// The caller's repositories.
#[utoipa::path(
    get,
    path = "/repos",
    tag = "repos",
    operation_id = "listRepos",
    responses((status = 200, description = "The caller's repositories", body = Vec<ApiRepo>))
)]
pub(crate) async fn list(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
) -> ApiResult<Json<Vec<ApiRepo>>> {
    let rs = db(&state, move |c| queries::list_repos(c, user.id)).await?;
    Ok(Json(rs.iter().map(repo_json).collect()))
}

/// Fetch, verify and cache a repository's index now, and record its size.
#[utoipa::path(
    post,
    path = "/repos/{id}/sync",
    tag = "repos",
    operation_id = "syncRepo",
    params(("id" = i64, Path, description = "Repository id")),
    responses(
        (status = 200, description = "Synced", body = ApiRepo),
        (status = 403, description = "The repository now resolves to an address only the server reaches", body = ErrorBody),
        (status = 404, description = "No such repository of the caller's", body = ErrorBody),
        (status = 502, description = "The repository could not be fetched or verified", body = ErrorBody),
    )
)]
pub(crate) async fn sync(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiRepo>> {
    let id = parse_id(&id, "repository")?;
    let r = db(&state, move |c| queries::repo(c, user.id, id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no repository {id}")))?;
    let line = check_line(&r.line)?;
    // Again at each fetch: what the host resolves to may have changed.
    allowed(&user, &r.line).await?;
    let opts = RepoOptions {
        cache_dir: state.data.cache(),
        keyring: state.keyring.clone(),
        archs: host_archs(),
    };
    let packages = blocking(move || {
        DebianRepo::open(&line, &opts, Arc::from(default_fetcher()))
            .map(|repo| repo.len() as i64)
            .map_err(|e| match e {
                uforge_core::Error::Io { .. } => ApiError::from_core(e),
                // Whatever else went wrong came from the repository: unreachable, unsigned,
                // or indexes that do not match their Release file.
                e => ApiError::bad_gateway(e.to_string()),
            })
    })
    .await?;
    let r = db(&state, move |c| {
        queries::set_repo_synced(c, id, packages, now())
    })
    .await?;
    Ok(Json(repo_json(&r)))
}

/// Remove a repository.
#[utoipa::path(
    delete,
    path = "/repos/{id}",
    tag = "repos",
    operation_id = "deleteRepo",
    params(("id" = i64, Path, description = "Repository id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such repository of the caller's", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "repository")?;
    if db(&state, move |c| queries::delete_repo(c, user.id, id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no repository {id}")))
    }
}

/// Refuses (403) a repository only the server could reach, unless the caller may use any.
async fn allowed(user: &AuthUser, line: &str) -> ApiResult<()> {
    let (line, admin) = (vec![line.to_string()], user.admin);
    blocking(move || {
        repo_policy::check_lines(&line, admin).map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e))
    })
    .await
}

/// Checks a sources.list line as the API receives it.
fn check_line(line: &str) -> ApiResult<SourceLine> {
    if line.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad_request(format!(
            "sources line {line:?}: one line, without control characters"
        )));
    }
    SourceLine::parse(line).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The architectures a repository sync reads: this host's, and `all`.
fn host_archs() -> Vec<String> {
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
