//! `GET /openapi.json`: the API described as OpenAPI 3.1, generated from the request and
//! answer types of `uforge-api` and the handlers' route annotations. A test checks that it
//! names every route of the router.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

use super::{health, images, packages, publications, repos, scans, targets};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "uforge server API",
        version = "1",
        description = "Migrate Linux machines: reports, analyses, overlays, recreated packages \
            and images. Every endpoint, this document included, needs a user's API token: \
            `Authorization: Bearer TOKEN`, or `Authorization: Basic base64(USER:TOKEN)`. A user \
            sees only what they own: another user's repository, machine, scan, package, \
            image, target or publication gets 404. Errors are `{\"error\": \"...\"}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    servers((url = "/api/v1")),
    security(("bearerAuth" = []), ("basicAuth" = [])),
    modifiers(&Security),
    tags(
        (name = "server"),
        (name = "repos"),
        (name = "scans"),
        (name = "packages"),
        (name = "images"),
        (name = "publishing")
    ),
    paths(
        health::health,
        document,
        repos::create,
        repos::list,
        repos::sync,
        repos::remove,
        scans::machines,
        scans::create,
        scans::list,
        scans::get_one,
        scans::remove,
        scans::upload_report,
        scans::download_report,
        scans::analysis,
        scans::upload_overlay,
        scans::overlay_wanted,
        scans::compare,
        images::create,
        images::list,
        images::get_one,
        images::remove,
        images::tuning_log,
        images::download,
        images::log,
        images::file,
        packages::list,
        packages::download,
        targets::create,
        targets::list,
        targets::get_one,
        targets::set_credentials,
        targets::remove,
        publications::create,
        publications::list,
        publications::get_one,
        publications::retry,
        publications::remove,
    )
)]
struct ApiDoc;

/// The two ways of presenting a token.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = |s: HttpAuthScheme, what: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(s).description(Some(what)).build())
        };
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearerAuth",
            scheme(HttpAuthScheme::Bearer, "A user's API token (64 hex digits)"),
        );
        c.add_security_scheme(
            "basicAuth",
            scheme(
                HttpAuthScheme::Basic,
                "USER:TOKEN, the token's owner and the token",
            ),
        );
    }
}

/// The document, generated once.
pub(crate) fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document encodes")
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "server",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        (status = 401, description = "Missing, malformed or wrong token", body = uforge_api::ErrorBody),
    )
)]
pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}

#[cfg(test)]
mod tests {
    #[test]
    fn schemas_come_from_the_api_types() {
        let doc: serde_json::Value = serde_json::from_str(super::json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = &doc["components"]["schemas"];
        for name in [
            "Scan",
            "ScanSummary",
            "Image",
            "OverlayResult",
            "AnalysisDocument",
            "Target",
            "NewTarget",
            "TargetCredentials",
            "Publication",
            "NewPublication",
        ] {
            assert!(schemas[name].is_object(), "{name} missing");
        }
        assert_eq!(
            schemas["ScanStatus"]["enum"],
            serde_json::json!(["created", "analyzed", "complete"])
        );
    }
}
