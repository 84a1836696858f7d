//! Authentication, users, the OpenAPI document and repositories.

use serde_json::{json, Value};

use crate::on_both_databases;
use crate::util::{pem_fingerprint, server_bin, Backend, Server};

on_both_databases!(authentication, openapi_describes_every_route, repositories);

fn authentication(b: Backend) {
    let s = Server::start(b);
    assert_eq!(
        s.fingerprint,
        pem_fingerprint(&s.data_dir.join("tls/cert.pem"))
    );
    assert_eq!(s.admin_token.len(), 64);

    let r = s.anonymous().get("/health").expect(401);
    assert!(r.www_authenticate.as_deref().unwrap().starts_with("Bearer"));
    assert!(r.error().contains("token"), "{}", r.error());
    s.as_bearer(&"0".repeat(64)).get("/health").expect(401);
    s.as_bearer("not-a-token").get("/health").expect(401);
    s.as_basic("nobody", &s.admin_token.clone())
        .get("/health")
        .expect(401);
    s.anonymous().get("/openapi.json").expect(401);
    // An error answered before the body is read still reaches an authenticated client, not a
    // reset in the middle of its upload (unauthenticated ones: see `hardening`).
    let upload = vec![7u8; 8 << 20];
    s.admin()
        .stream("PUT", "/scans/999/overlay", &upload[..])
        .expect(404);
    s.admin().bytes("POST", "/nowhere", &upload).expect(404);
    s.anonymous().get("/scans/1").expect(401);

    let v = s.admin().get("/health").expect(200).json();
    assert_eq!(
        v,
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "user": "admin"})
    );
    let v = s
        .as_basic("admin", &s.admin_token.clone())
        .get("/health")
        .expect(200)
        .json();
    assert_eq!(v["user"], "admin");

    let bob = s.add_user("bob");
    assert_ne!(bob, s.admin_token);
    assert_eq!(
        s.as_basic("bob", &bob).get("/health").expect(200).json()["user"],
        "bob"
    );
    // A token works only under its owner's name.
    s.as_basic("admin", &bob).get("/health").expect(401);

    let mut cmd = server_bin();
    cmd.args(["user", "add", "bob", "--data-dir"])
        .arg(&s.data_dir)
        .env_remove("UFORGE_DATABASE_URL");
    if let Some(u) = &s.database_url {
        cmd.args(["--database-url", u]);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let mut cmd = server_bin();
    cmd.args(["user", "list", "--data-dir"])
        .arg(&s.data_dir)
        .env_remove("UFORGE_DATABASE_URL");
    if let Some(u) = &s.database_url {
        cmd.args(["--database-url", u]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(list.contains("admin") && list.contains("bob"), "{list}");
    assert!(!list.contains(&bob), "user list shows a token");

    let r = s.admin().get("/no/such/endpoint").expect(404);
    assert!(r.content_type.starts_with("application/json"));
    s.admin().call("PATCH", "/health").expect(405).error();
    assert!(!s.log().contains(&s.admin_token), "a token reached the log");
}

/// Every `$ref` of the document, as JSON pointers.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

fn openapi_describes_every_route(b: Backend) {
    let s = Server::start(b);
    let r = s.admin().get("/openapi.json").expect(200);
    assert!(r.content_type.starts_with("application/json"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = uforge_server::api::routes();
    for (method, path) in &routes {
        let op = &doc["paths"][*path][method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in openapi.json");
        assert!(
            op["responses"].is_object(),
            "{method} {path} has no responses"
        );
        for param in path
            .split('{')
            .skip(1)
            .map(|p| p.split('}').next().unwrap())
        {
            let declared = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == param && p["in"] == "path"));
            assert!(declared, "{method} {path}: parameter {param} undeclared");
        }
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "openapi.json documents routes the server lacks"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["basicAuth"]["scheme"], "basic");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
}

fn repositories(b: Backend) {
    let s = Server::start(b);
    let admin = s.admin();
    let flat = tempfile::tempdir().unwrap();
    std::fs::write(flat.path().join("Packages"), "").unwrap();
    let line = format!("deb [trusted=yes] file:{} ./", flat.path().display());

    let repo = admin
        .json("POST", "/repos", json!({ "line": line }))
        .expect(201)
        .json();
    let id = repo["id"].as_i64().unwrap();
    assert_eq!(
        repo,
        json!({"id": id, "line": line, "packages": null, "synced_at": null})
    );
    assert_eq!(admin.get("/repos").expect(200).json(), json!([repo]));

    let synced = admin
        .call("POST", &format!("/repos/{id}/sync"))
        .expect(200)
        .json();
    assert_eq!(synced["packages"], 0);
    let at = synced["synced_at"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.contains('T'), "{at}");
    assert_eq!(admin.get("/repos").expect(200).json(), json!([synced]));

    for (bad, needle) in [
        (
            "deb-src http://deb.debian.org/debian bookworm main",
            "deb-src",
        ),
        ("deb http://deb.debian.org/debian bookworm", "component"),
        ("rpm http://x y", "deb"),
        (
            "deb http://h/d bookworm main\ndeb http://h/e x y",
            "one line",
        ),
    ] {
        let r = admin
            .json("POST", "/repos", json!({ "line": bad }))
            .expect(400);
        assert!(r.error().contains(needle), "{bad:?}: {}", r.error());
    }
    let r = admin.bytes("POST", "/repos", b"{not json").expect(400);
    assert!(r.error().contains("JSON"), "{}", r.error());
    admin
        .json("POST", "/repos", json!({"lines": "x"}))
        .expect(400);

    let gone = admin
        .json(
            "POST",
            "/repos",
            json!({"line": "deb [trusted=yes] file:/nonexistent/uforge-repo ./"}),
        )
        .expect(201)
        .json();
    let gone_id = gone["id"].as_i64().unwrap();
    let r = admin
        .call("POST", &format!("/repos/{gone_id}/sync"))
        .expect(502);
    assert!(
        r.error().contains("/nonexistent/uforge-repo"),
        "{}",
        r.error()
    );

    let bob = s.add_user("bob");
    let bob = s.as_bearer(&bob);
    assert_eq!(bob.get("/repos").expect(200).json(), json!([]));
    bob.call("POST", &format!("/repos/{id}/sync")).expect(404);
    bob.call("DELETE", &format!("/repos/{id}")).expect(404);
    bob.call("POST", "/repos/abc/sync").expect(404);

    admin.call("DELETE", &format!("/repos/{id}")).expect(204);
    admin.call("DELETE", &format!("/repos/{id}")).expect(404);
    let left = admin.get("/repos").expect(200).json();
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], gone_id);
}
