//! `/packages`: the packages rebuilt from a user's overlays.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Json};
use uforge_api::{ErrorBody, Package};

use super::{blocking, db, file_response, ApiError, ApiResult, Shared};
use crate::auth::AuthUser;
use crate::db::queries;

/// The packages recreated for the caller.
#[utoipa::path(
    get,
    path = "/packages",
    tag = "packages",
    operation_id = "listPackages",
    responses((status = 200, description = "The caller's recreated packages", body = Vec<Package>))
)]
pub(crate) async fn list(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
) -> ApiResult<Json<Vec<Package>>> {
    let ps = db(&state, move |c| queries::list_packages(c, user.id)).await?;
    Ok(Json(
        ps.into_iter()
            .map(|p| Package {
                name: p.name,
                version: p.version,
                arch: p.arch,
                file: p.file,
                sha256: p.sha256,
                scan: p.scan_id,
            })
            .collect(),
    ))
}

/// Download a recreated `.deb`.
#[utoipa::path(
    get,
    path = "/packages/{file}",
    tag = "packages",
    operation_id = "downloadPackage",
    params(("file" = String, Path, description = "The file name `GET /packages` lists")),
    responses(
        (status = 200, description = "The package", content_type = "application/vnd.debian.binary-package", body = Vec<u8>),
        (status = 404, description = "No such package of the caller's", body = ErrorBody),
    )
)]
pub(crate) async fn download(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    let missing = || ApiError::not_found(format!("no package file {file:?}"));
    // Only names the database lists are served, and those are plain file names; checked again
    // so that no path can ever leave the user's directory.
    if file.is_empty() || file.starts_with('.') || file.contains('/') {
        return Err(missing());
    }
    let f = file.clone();
    let uid = user.id;
    let Some(p) = db(&state, move |c| queries::package_file(c, uid, &f)).await? else {
        return Err(missing());
    };
    // Each release has its own directory of recreated packages; the file is in one of them.
    let own = state.data.user_repo(&user.name);
    let name = p.file.clone();
    let path = blocking(move || {
        let dirs = std::fs::read_dir(&own).into_iter().flatten().flatten();
        Ok(dirs
            .map(|d| d.path().join(&name))
            .find(|f| f.is_file())
            .unwrap_or_else(|| own.join(&name)))
    })
    .await?;
    file_response(
        &path,
        "application/vnd.debian.binary-package",
        Some(&p.file),
    )
    .await
}
