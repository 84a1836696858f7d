//! `/targets`: where a user publishes images. A target is the user's own: another user's
//! answers 404 wherever it is named. Its credentials are sealed with the server key as they
//! arrive and never leave the server again (answers show only `credentials_set`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use uforge_api::{ErrorBody, NewTarget, Target as ApiTarget, TargetCredentials};
use uforge_core::publish::destination;
use uforge_core::publish::{Credentials, Secret, TargetKind, TargetSpec};

use super::{blocking, db, rfc3339, ApiError, ApiResult, JsonBody, Shared};
use crate::auth::AuthUser;
use crate::db::models::{NewTargetRow, TargetRow};
use crate::db::now;
use crate::db::publish::{self as pubq, TargetDeletion, TargetKey};
use crate::repo_policy;
use crate::sealing::target_context;

/// The API form of a target.
fn target_json(t: &TargetRow) -> ApiResult<ApiTarget> {
    let spec: TargetSpec =
        serde_json::from_str(&t.spec).map_err(|e| ApiError::internal(e.to_string()))?;
    let options: BTreeMap<String, String> =
        serde_json::from_str(&t.options).map_err(|e| ApiError::internal(e.to_string()))?;
    let ca_pem_set = match &spec {
        TargetSpec::Registry(r) => r.tls.ca_pem.is_some(),
        TargetSpec::S3(s) => s.tls.ca_pem.is_some(),
        _ => false,
    };
    Ok(ApiTarget {
        id: t.id,
        name: t.name.clone(),
        kind: spec.kind().name().to_string(),
        url: t.url.clone(),
        options,
        description: spec.display(),
        ca_pem_set,
        credentials_set: t.credentials.is_some(),
        formats: spec
            .kind()
            .formats()
            .iter()
            .map(|f| f.name().to_string())
            .collect(),
        provisions: spec.kind().provisions(),
        created_at: rfc3339(t.created_at),
    })
}

/// How a path segment names a target: digits are an id, anything else a name.
pub(crate) fn key_of(text: &str) -> TargetKey {
    match text.parse::<i64>() {
        Ok(id) => TargetKey::Id(id),
        Err(_) => TargetKey::Name(text.to_string()),
    }
}

/// One of the caller's targets; 404 for anyone else's.
pub(crate) async fn load(state: &Shared, user: &AuthUser, text: &str) -> ApiResult<TargetRow> {
    let key = key_of(text);
    let uid = user.id;
    db(state, move |c| pubq::target(c, uid, &key))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no target {text:?}")))
}

/// Target names go into messages and command lines: a letter first, then a safe alphabet
/// (never all digits, which would read as an id).
fn check_name(name: &str) -> ApiResult<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid target name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-', \
             starting with a letter"
        )))
    }
}

/// Options that belong to a publication, or that would read a file of the server.
const NOT_TARGET_OPTIONS: [(&str, &str); 5] = [
    (
        "ca",
        "give the CA certificate's PEM text as `ca_pem`; the server reads no file for it",
    ),
    (
        "name",
        "the name at the target is given with each publication",
    ),
    ("memory", "memory is given with each deployment"),
    ("cpus", "CPUs are given with each deployment"),
    ("firmware", "the firmware is given with each deployment"),
];

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The library's description of the target a request describes.
fn spec_of(body: &NewTarget) -> ApiResult<TargetSpec> {
    if body.url.contains(['?', '#']) {
        return Err(ApiError::bad_request(format!(
            "url {:?}: give options in `options`, not in the URL",
            body.url
        )));
    }
    for (k, why) in NOT_TARGET_OPTIONS {
        if body.options.contains_key(k) {
            return Err(ApiError::bad_request(format!("option `{k}`: {why}")));
        }
    }
    let mut url = body.url.clone();
    for (i, (k, v)) in body.options.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&encode(k));
        url.push('=');
        url.push_str(&encode(v));
    }
    let parsed = destination::parse(&url).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut spec = parsed.target;
    // A target's URL names a place, and every path segment of it belongs to that place.
    let join = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            format!("{a}/{b}")
        }
    };
    match (&mut spec, parsed.name) {
        (TargetSpec::Registry(r), Some(last)) => {
            if last.contains([':', '@']) {
                return Err(ApiError::bad_request(format!(
                    "url {:?}: a target names a registry and namespace; the repository and \
                     tag are given with each publication",
                    body.url
                )));
            }
            r.namespace = join(&r.namespace, &last);
        }
        (TargetSpec::S3(s), Some(last)) => s.prefix = join(&s.prefix, &last),
        _ => {}
    }
    if let Some(pem) = &body.ca_pem {
        match &mut spec {
            TargetSpec::Registry(r) => r.tls.ca_pem = Some(pem.clone()),
            TargetSpec::S3(s) => s.tls.ca_pem = Some(pem.clone()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "ca_pem: a {} target has no TLS endpoint",
                    other.kind()
                )))
            }
        }
    }
    if let Some(kind) = &body.kind {
        if kind.trim() != spec.kind().name() {
            return Err(ApiError::bad_request(format!(
                "type {kind:?} does not match the URL {:?}, which names a {} target",
                body.url,
                spec.kind()
            )));
        }
    }
    Ok(spec)
}

/// Why an ordinary user may not make the server publish to `spec`, if not: the same rule as
/// for repositories (local files and services behind the server are an administrator's).
/// Blocking: it resolves host names.
fn refusal(spec: &TargetSpec) -> Option<String> {
    match spec {
        TargetSpec::Directory(_) => Some(
            "a directory target writes into the server's own file system; only an \
             administrator may add one"
                .into(),
        ),
        TargetSpec::Libvirt(_) => Some(
            "a libvirt target runs virsh on the server host; only an administrator may add one"
                .into(),
        ),
        TargetSpec::Registry(r) => {
            let base = if r.registry.contains("://") {
                r.registry.clone()
            } else {
                format!("https://{}", r.registry)
            };
            repo_policy::refusal(&format!("{}/", base.trim_end_matches('/')))
        }
        TargetSpec::S3(s) => {
            repo_policy::refusal(&format!("{}/", s.endpoint.trim_end_matches('/')))
        }
        _ => Some("this kind of target is not supported here".into()),
    }
}

/// The library's form of the request's credentials.
pub(crate) fn credentials_of(c: &TargetCredentials) -> Credentials {
    match c.clone() {
        TargetCredentials::None => Credentials::None,
        TargetCredentials::Password { username, password } => Credentials::Password {
            username,
            password: Secret::new(password),
        },
        TargetCredentials::Token { token } => Credentials::Token {
            token: Secret::new(token),
        },
        TargetCredentials::AccessKey {
            access_key_id,
            secret_access_key,
            session_token,
        } => Credentials::AccessKey {
            access_key_id,
            secret_access_key: Secret::new(secret_access_key),
            session_token: session_token.map(Secret::new),
        },
    }
}

/// Checks the credentials suit the target (the library refuses a kind the target does not
/// take) and seals them; `None` for no credentials.
fn seal(
    state: &Shared,
    user: i64,
    name: &str,
    spec: &TargetSpec,
    c: &TargetCredentials,
) -> ApiResult<Option<Vec<u8>>> {
    let creds = credentials_of(c);
    let none = matches!(creds, Credentials::None);
    let plain = if none {
        None
    } else {
        Some(serde_json::to_vec(&creds).map_err(|e| ApiError::internal(e.to_string()))?)
    };
    uforge_core::publish::publisher(spec, creds)
        .map_err(|e| ApiError::bad_request(format!("credentials: {e}")))?;
    match plain {
        None => Ok(None),
        Some(p) => state
            .key
            .seal(&p, &target_context(user, name))
            .map(Some)
            .map_err(|e| ApiError::internal(format!("{e:#}"))),
    }
}

/// Add a publish target.
#[utoipa::path(
    post,
    path = "/targets",
    tag = "publishing",
    operation_id = "createTarget",
    request_body = NewTarget,
    responses(
        (status = 201, description = "Added", body = ApiTarget),
        (status = 400, description = "A bad name, URL, option or credentials", body = ErrorBody),
        (status = 403, description = "A local target, which only an administrator may add", body = ErrorBody),
        (status = 409, description = "The caller has a target of that name", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    JsonBody(body): JsonBody<NewTarget>,
) -> ApiResult<(StatusCode, Json<ApiTarget>)> {
    check_name(&body.name)?;
    let spec = spec_of(&body)?;
    let admin = user.admin;
    let st = state.clone();
    let uid = user.id;
    let row = blocking(move || {
        if !repo_policy::unrestricted(admin) {
            if let Some(why) = refusal(&spec) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("target {}: {why}", body.name),
                ));
            }
        }
        let sealed = seal(&st, uid, &body.name, &spec, &body.credentials)?;
        let spec_json =
            serde_json::to_string(&spec).map_err(|e| ApiError::internal(e.to_string()))?;
        let options =
            serde_json::to_string(&body.options).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut c = st.db.get()?;
        let created = pubq::create_target(
            &mut c,
            &NewTargetRow {
                user_id: uid,
                name: &body.name,
                kind: spec.kind().name(),
                url: &body.url,
                options: &options,
                spec: &spec_json,
                credentials: sealed.as_deref(),
                created_at: now(),
            },
        )?;
        created.ok_or_else(|| {
            ApiError::conflict(format!("you already have a target named {}", body.name))
        })
    })
    .await?;
    tracing::info!(target = row.name, kind = row.kind, "target added");
    Ok((StatusCode::CREATED, Json(target_json(&row)?)))
}

/// The caller's targets, by name.
#[utoipa::path(
    get,
    path = "/targets",
    tag = "publishing",
    operation_id = "listTargets",
    responses((status = 200, description = "The caller's targets", body = Vec<ApiTarget>))
)]
pub(crate) async fn list(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
) -> ApiResult<Json<Vec<ApiTarget>>> {
    let uid = user.id;
    let ts = db(&state, move |c| pubq::list_targets(c, uid)).await?;
    Ok(Json(ts.iter().map(target_json).collect::<ApiResult<_>>()?))
}

/// One target, by id or name.
#[utoipa::path(
    get,
    path = "/targets/{target}",
    tag = "publishing",
    operation_id = "getTarget",
    params(("target" = String, Path, description = "Target id or name")),
    responses(
        (status = 200, description = "The target", body = ApiTarget),
        (status = 404, description = "No such target of the caller's", body = ErrorBody),
    )
)]
pub(crate) async fn get_one(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(target): Path<String>,
) -> ApiResult<Json<ApiTarget>> {
    Ok(Json(target_json(&load(&state, &user, &target).await?)?))
}

/// Replace a target's credentials (publications to it use them from their next attempt).
#[utoipa::path(
    put,
    path = "/targets/{target}/credentials",
    tag = "publishing",
    operation_id = "setTargetCredentials",
    params(("target" = String, Path, description = "Target id or name")),
    request_body = TargetCredentials,
    responses(
        (status = 200, description = "Replaced", body = ApiTarget),
        (status = 400, description = "Credentials the target does not take", body = ErrorBody),
        (status = 404, description = "No such target of the caller's", body = ErrorBody),
    )
)]
pub(crate) async fn set_credentials(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(target): Path<String>,
    JsonBody(body): JsonBody<TargetCredentials>,
) -> ApiResult<Json<ApiTarget>> {
    let t = load(&state, &user, &target).await?;
    let st = state.clone();
    let uid = user.id;
    let row = blocking(move || {
        let spec: TargetSpec =
            serde_json::from_str(&t.spec).map_err(|e| ApiError::internal(e.to_string()))?;
        let sealed = seal(&st, uid, &t.name, &spec, &body)?;
        let mut c = st.db.get()?;
        if !pubq::set_target_credentials(&mut c, uid, t.id, sealed.as_deref())? {
            return Err(ApiError::not_found(format!("no target {:?}", t.name)));
        }
        pubq::target(&mut c, uid, &TargetKey::Id(t.id))?
            .ok_or_else(|| ApiError::not_found(format!("no target {:?}", t.name)))
    })
    .await?;
    tracing::info!(target = row.name, "target credentials replaced");
    Ok(Json(target_json(&row)?))
}

/// Delete a target. Refused while publications to it are recorded: deleting those is what
/// takes back what they pushed, and that needs the target.
#[utoipa::path(
    delete,
    path = "/targets/{target}",
    tag = "publishing",
    operation_id = "deleteTarget",
    params(("target" = String, Path, description = "Target id or name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such target of the caller's", body = ErrorBody),
        (status = 409, description = "Publications to it are recorded", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<Shared>,
    Extension(user): Extension<AuthUser>,
    Path(target): Path<String>,
) -> ApiResult<StatusCode> {
    let t = load(&state, &user, &target).await?;
    let (uid, id) = (user.id, t.id);
    match db(&state, move |c| pubq::delete_target(c, uid, id)).await? {
        TargetDeletion::Deleted => Ok(StatusCode::NO_CONTENT),
        TargetDeletion::Missing => Err(ApiError::not_found(format!("no target {target:?}"))),
        TargetDeletion::InUse(ids) => Err(ApiError::conflict(format!(
            "target {} has publications ({}); delete them first (that removes what they \
             pushed)",
            t.name,
            ids.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Whether `kind` takes `format`, as an error naming the target when not.
pub(crate) fn check_format(
    name: &str,
    kind: TargetKind,
    format: uforge_core::image::Format,
) -> ApiResult<()> {
    if kind.formats().contains(&format) {
        return Ok(());
    }
    let takes: Vec<&str> = kind.formats().iter().map(|f| f.name()).collect();
    Err(ApiError::bad_request(format!(
        "target {name} is a {kind} target, which takes {} images, not {format}",
        takes.join(", ")
    )))
}
