//! A scan's life: report, analysis, overlays (cut off, hostile, corrupt, then whole), rebuilt
//! packages, an incremental second scan, and the reports the server must refuse.

use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uforge_core::report::native::MAGIC;

use crate::on_both_databases;
use crate::util::roots::{small_root, PACKAGE};
use crate::util::{count_files, Backend, Options, Server};
use uforge_test_support::tar::{end_of_archive, ustar_member};

on_both_databases!(
    scan_life_cycle,
    refused_reports,
    json_reports_are_stored_natively,
    an_interrupted_overlay_is_finished_by_what_is_lacking
);

fn paths(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["path"].as_str().map(str::to_string))
        .collect()
}

fn scan_of(s: &Server, id: i64) -> Value {
    s.admin().get(&format!("/scans/{id}")).expect(200).json()
}

fn scan_life_cycle(b: Backend) {
    let s = Server::start(b);
    let root = small_root();
    let admin = s.admin();

    admin
        .json("POST", "/scans", json!({"machine": ""}))
        .expect(400);
    let scan = admin
        .json("POST", "/scans", json!({"machine": "web01"}))
        .expect(201)
        .json();
    let id = scan["id"].as_i64().unwrap();
    assert_eq!(scan["machine"], "web01");
    assert_eq!(scan["status"], "created");
    assert_eq!(scan["summary"], Value::Null);
    assert_eq!(scan["completed_at"], Value::Null);
    let r = admin
        .bytes("PUT", &format!("/scans/{id}/overlay"), &end_of_archive())
        .expect(409);
    assert!(r.error().contains("report"), "{}", r.error());
    admin.get(&format!("/scans/{id}/analysis")).expect(409);

    // Another user sees none of it.
    let bob = s.add_user("bob");
    let bob = s.as_bearer(&bob);
    bob.get(&format!("/scans/{id}")).expect(404);
    assert_eq!(bob.get("/scans").expect(200).json(), json!([]));
    assert_eq!(bob.get("/machines").expect(200).json(), json!([]));
    bob.bytes("POST", &format!("/scans/{id}/report"), b"x")
        .expect(404);
    bob.bytes("PUT", &format!("/scans/{id}/overlay"), b"x")
        .expect(404);
    bob.get(&format!("/scans/{id}/compare/{id}")).expect(404);
    bob.call("DELETE", &format!("/scans/{id}")).expect(404);

    // The report, streamed; the answer is the analysis.
    let report = std::fs::read(&root.report).unwrap();
    let r = admin
        .stream("POST", &format!("/scans/{id}/report"), &report[..])
        .expect(200);
    assert!(r.content_type.starts_with("application/json"));
    let analysis = r.body.clone();
    let a = r.json();
    assert_eq!(a["format"], "uforge-analysis");
    assert_eq!(
        a["missing_packages"],
        json!([{"name": PACKAGE, "version": "1.0-1", "arch": "amd64"}])
    );
    let wanted = paths(&a["wanted"]);
    for p in [
        "/etc/app.conf",
        "/srv/data/blob.bin",
        "/usr/bin/acme-tool",
        "/var/lib/dpkg/status",
    ] {
        assert!(wanted.iter().any(|w| w == p), "{p} not wanted: {wanted:?}");
    }
    let st = scan_of(&s, id);
    assert_eq!(st["status"], "analyzed");
    assert_eq!(st["summary"]["missing_packages"], 1);
    assert_eq!(st["summary"]["wanted"], wanted.len());
    assert_eq!(
        admin.get(&format!("/scans/{id}/analysis")).expect(200).body,
        analysis
    );
    let stored = admin.get(&format!("/scans/{id}/report")).expect(200).body;
    assert_eq!(stored, report, "a native report is stored as sent");

    let overlay = root.overlay(&root.report, &analysis);
    let ovl = format!("/scans/{id}/overlay");

    // Cut off half way: what arrived whole before the cut is kept for the next upload.
    let r = admin
        .bytes("PUT", &ovl, &overlay[..overlay.len() / 2])
        .expect(400);
    assert!(r.error().contains("truncated"), "{}", r.error());
    assert!(
        r.error().contains("kept for the next upload"),
        "{}",
        r.error()
    );
    assert_eq!(scan_of(&s, id)["status"], "analyzed");
    let blobs_before = s.blob_count();

    // A member that climbs out of the root.
    let mut evil = ustar_member(b"../../etc/cron.d/evil", b"* * * * * root sh\n");
    evil.extend(end_of_archive());
    let r = admin.bytes("PUT", &ovl, &evil).expect(400);
    assert!(r.error().contains("../../etc/cron.d/evil"), "{}", r.error());

    // A member nobody asked for, ahead of the real ones.
    let mut unwanted = ustar_member(b"etc/shadow", b"root::0:0:99999:7:::\n");
    unwanted.extend(&overlay);
    let r = admin.stream("PUT", &ovl, &unwanted[..]).expect(400);
    assert!(r.error().contains("etc/shadow"), "{}", r.error());

    // Content that does not match the report.
    let mut corrupt = overlay.clone();
    let at = corrupt.len() / 2;
    corrupt[at] ^= 0xff;
    let r = admin.stream("PUT", &ovl, &corrupt[..]).expect(400);
    assert!(r.error().contains("overlay member"), "{}", r.error());

    assert_eq!(s.blob_count(), blobs_before, "a refused member left blobs");
    assert_eq!(s.staged_count(), 0, "a refused overlay left staged blobs");
    assert_eq!(scan_of(&s, id)["status"], "analyzed");

    // The whole overlay, streamed.
    let done = admin.stream("PUT", &ovl, &overlay[..]).expect(200).json();
    assert_eq!(done["status"], "complete");
    assert!(done["members"].as_u64().unwrap() >= 4, "{done}");
    assert!(done["blobs"].as_u64().unwrap() >= 4, "{done}");
    assert!(done["content_bytes"].as_u64().unwrap() >= 300_000, "{done}");
    let deb = format!("{PACKAGE}_1.0-1_amd64.deb");
    assert_eq!(
        done["recreated"],
        json!([{"name": PACKAGE, "version": "1.0-1", "arch": "amd64", "file": deb}]),
        "{done}"
    );
    assert!(s.blob_count() > blobs_before);
    let st = scan_of(&s, id);
    assert_eq!(st["status"], "complete");
    assert!(st["completed_at"].is_string());
    admin.stream("PUT", &ovl, &overlay[..]).expect(409);
    admin
        .stream("POST", &format!("/scans/{id}/report"), &report[..])
        .expect(409);

    // The rebuilt package.
    let pkgs = admin.get("/packages").expect(200).json();
    assert_eq!(pkgs.as_array().unwrap().len(), 1, "{pkgs}");
    assert_eq!(pkgs[0]["file"], deb.as_str());
    assert_eq!(pkgs[0]["scan"], id);
    let r = admin.get(&format!("/packages/{deb}")).expect(200);
    let sha: String = Sha256::digest(&r.body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(pkgs[0]["sha256"], sha.as_str());
    let file = s.tmp.path().join(&deb);
    std::fs::write(&file, &r.body).unwrap();
    let info = Command::new("dpkg-deb")
        .arg("--field")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("Package: acme-tool") && info.contains("Version: 1.0-1"),
        "{info}"
    );
    let list = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(&file)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("./usr/bin/acme-tool"));
    bob.get(&format!("/packages/{deb}")).expect(404);
    admin.get("/packages/%2E%2E%2Fuforge.db").expect(404);
    admin.get("/packages/nothing.deb").expect(404);

    let machines = admin.get("/machines").expect(200).json();
    assert_eq!(machines[0]["name"], "web01");
    assert_eq!(machines[0]["scans"], 1);
    assert!(machines[0]["last_scan"].is_string());

    // A second scan of the machine ships only what changed.
    std::fs::write(
        root.root.join("etc/app.conf"),
        "listen = 9090\nworkers = 8\n",
    )
    .unwrap();
    let report2 = root.rescan("scan2.ufr");
    let id2 = admin
        .json("POST", "/scans", json!({"machine": "web01"}))
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    assert_ne!(id2, id);
    let r = admin
        .bytes(
            "POST",
            &format!("/scans/{id2}/report"),
            &std::fs::read(&report2).unwrap(),
        )
        .expect(200);
    let analysis2 = r.body.clone();
    let a2 = r.json();
    let wanted2 = paths(&a2["wanted"]);
    assert!(wanted2.iter().any(|w| w == "/etc/app.conf"), "{wanted2:?}");
    assert!(
        !wanted2.iter().any(|w| w == "/srv/data/blob.bin"),
        "{wanted2:?}"
    );
    assert_eq!(a2["missing_packages"], json!([]));
    assert!(scan_of(&s, id2)["summary"]["held"].as_u64().unwrap() > 0);
    let overlay2 = root.overlay(&report2, &analysis2);
    let done2 = admin
        .stream("PUT", &format!("/scans/{id2}/overlay"), &overlay2[..])
        .expect(200)
        .json();
    assert_eq!(done2["recreated"], json!([]));

    let cmp = admin
        .get(&format!("/scans/{id}/compare/{id2}"))
        .expect(200)
        .json();
    let changed = cmp["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/app.conf")
        .unwrap_or_else(|| panic!("{cmp}"));
    assert_eq!(changed["status"], "modified");
    assert!(changed["what"]
        .as_array()
        .unwrap()
        .contains(&json!("content")));

    // Another machine: the package now comes from the user's repository of rebuilt ones.
    let id3 = admin
        .json("POST", "/scans", json!({"machine": "web02"}))
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let a3 = admin
        .bytes(
            "POST",
            &format!("/scans/{id3}/report"),
            &std::fs::read(&report2).unwrap(),
        )
        .expect(200)
        .json();
    assert_eq!(a3["missing_packages"], json!([]), "{a3}");
    // Starting again hands back the unfinished scan, reset.
    let again = admin
        .json("POST", "/scans", json!({"machine": "web02"}))
        .expect(201)
        .json();
    assert_eq!(again["id"], id3);
    assert_eq!(again["status"], "created");
    assert_eq!(again["summary"], Value::Null);
    admin.get(&format!("/scans/{id3}/report")).expect(409);

    let web01 = admin.get("/scans?machine=web01").expect(200).json();
    let ids: Vec<i64> = web01
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [id2, id]);
    assert_eq!(
        admin
            .get("/scans")
            .expect(200)
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );

    admin.call("DELETE", &format!("/scans/{id}")).expect(204);
    admin.get(&format!("/scans/{id}")).expect(404);
    assert!(!s.data_dir.join(format!("reports/{id}.ufr")).exists());
    assert_eq!(
        admin.get("/packages").expect(200).json()[0]["scan"],
        Value::Null
    );
}

fn refused_reports(b: Backend) {
    let limit = 300u64;
    let s = Server::start_with(
        b,
        Options {
            max_report_bytes: Some(limit),
            ..Options::default()
        },
    );
    let root = small_root();
    let admin = s.admin();
    let id = admin
        .json("POST", "/scans", json!({"machine": "db01"}))
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let url = format!("/scans/{id}/report");
    let report = std::fs::read(&root.report).unwrap();
    assert!(report.len() as u64 > limit);

    let r = admin.bytes("POST", &url, &report).expect(413);
    assert!(r.error().contains("limit of 300 bytes"), "{}", r.error());
    let r = admin.stream("POST", &url, &report[..]).expect(413);
    assert!(r.error().contains("limit of 300 bytes"), "{}", r.error());

    let r = admin.bytes("POST", &url, b"hello, world").expect(400);
    assert!(
        r.error()
            .contains("neither a native uforge report nor JSON"),
        "{}",
        r.error()
    );
    let r = admin.bytes("POST", &url, &report[..200]).expect(400);
    assert!(
        r.error().contains("malformed report for scan"),
        "{}",
        r.error()
    );
    let r = admin
        .bytes("POST", &url, br#"{"format": "nothing"}"#)
        .expect(400);
    assert!(r.error().contains("malformed report"), "{}", r.error());
    assert!(report.starts_with(MAGIC));

    assert_eq!(
        count_files(&s.data_dir.join("reports")),
        0,
        "a refused report was kept"
    );
    assert_eq!(scan_of(&s, id)["status"], "created");
}

fn json_reports_are_stored_natively(b: Backend) {
    let s = Server::start(b);
    let root = small_root();
    let json_report = root.rescan("scan.json");
    let admin = s.admin();
    let id = admin
        .json("POST", "/scans", json!({"machine": "app01"}))
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let analysis = admin
        .stream(
            "POST",
            &format!("/scans/{id}/report"),
            std::fs::File::open(&json_report).unwrap(),
        )
        .expect(200)
        .body;
    let stored = admin.get(&format!("/scans/{id}/report")).expect(200).body;
    assert!(stored.starts_with(MAGIC));
    let overlay = root.overlay(&json_report, &analysis);
    let done = admin
        .stream("PUT", &format!("/scans/{id}/overlay"), &overlay[..])
        .expect(200)
        .json();
    assert_eq!(done["status"], "complete");
}

/// The stored blob of a digest, hashed again.
fn stored_digest(s: &Server, hex: &str) -> Option<String> {
    let p = s.data_dir.join("blobs/sha256").join(&hex[..2]).join(hex);
    let data = std::fs::read(p).ok()?;
    Some(format!("{:x}", Sha256::digest(&data)))
}

/// The wanted regular files of a report, path to hex digest.
fn wanted_files(report: &std::path::Path, wanted: &[String]) -> Vec<(String, String)> {
    use uforge_core::model::FileKind;
    let mut r = uforge_core::report::ReportReader::open(report).unwrap();
    let mut out = Vec::new();
    while let Some(e) = r.next_file().unwrap() {
        let p = String::from_utf8(e.path.clone()).unwrap();
        if e.kind == FileKind::File && wanted.contains(&p) {
            out.push((p, uforge_core::blobstore::to_hex(&e.sha256.unwrap())));
        }
    }
    out
}

/// An overlay cut at 60% of its bytes keeps what arrived whole; the server then says what it
/// still lacks, and a second overlay carrying only that completes the scan. A rejected member
/// keeps the good ones before it and nothing of itself. What a user holds counts for another
/// machine of theirs, never for another user.
fn an_interrupted_overlay_is_finished_by_what_is_lacking(b: Backend) {
    let s = Server::start(b);
    let root = small_root();
    let admin = s.admin();
    let report = std::fs::read(&root.report).unwrap();
    fn new_scan(who: &crate::util::Client<'_>, machine: &str, report: &[u8]) -> (i64, Vec<u8>) {
        let id = who
            .json("POST", "/scans", json!({"machine": machine}))
            .expect(201)
            .json()["id"]
            .as_i64()
            .unwrap();
        let analysis = who
            .stream("POST", &format!("/scans/{id}/report"), report)
            .expect(200)
            .body;
        (id, analysis)
    }
    let (id, analysis) = new_scan(&admin, "web01", &report);
    let a: Value = serde_json::from_slice(&analysis).unwrap();
    let wanted = paths(&a["wanted"]);
    let files = wanted_files(&root.report, &wanted);
    let overlay = root.overlay(&root.report, &analysis);
    let ovl = format!("/scans/{id}/overlay");
    let lacking = |id: i64| {
        admin
            .get(&format!("/scans/{id}/overlay/wanted"))
            .expect(200)
            .json()
    };
    let w = lacking(id);
    assert_eq!(w["held"], json!([]), "{w}");
    assert_eq!(w["lacking"], wanted.len(), "{w}");

    // A rejected member (its content altered) after good ones: the good ones stay, nothing of
    // it does, and the error names it.
    let blob = files.iter().find(|f| f.0 == "/srv/data/blob.bin").unwrap();
    let mut corrupt = overlay.clone();
    // The member's own header is the last block naming it (a pax header may come first).
    let at = overlay
        .windows(b"srv/data/blob.bin".len())
        .rposition(|w| w == b"srv/data/blob.bin")
        .unwrap();
    corrupt[at + 512 + 1000] ^= 0x40;
    let r = admin.stream("PUT", &ovl, &corrupt[..]).expect(400);
    assert!(r.error().contains("srv/data/blob.bin"), "{}", r.error());
    assert_eq!(
        stored_digest(&s, &blob.1),
        None,
        "the rejected member was stored"
    );
    let before: Vec<&(String, String)> = files.iter().filter(|f| f.0 < blob.0).collect();
    assert!(!before.is_empty());
    for (p, hex) in &before {
        assert_eq!(stored_digest(&s, hex).as_deref(), Some(&hex[..]), "{p}");
    }
    let held = paths(&lacking(id)["held"]);
    assert_eq!(held, before.iter().map(|f| f.0.clone()).collect::<Vec<_>>());
    assert_eq!(s.staged_count(), 0);

    // Cut at 60% of its bytes, as a dropped link does.
    let cut = overlay.len() * 6 / 10;
    let r = admin.bytes("PUT", &ovl, &overlay[..cut]).expect(400);
    assert!(r.error().contains("truncated"), "{}", r.error());
    assert_eq!(scan_of(&s, id)["status"], "analyzed");
    let w = lacking(id);
    let held = paths(&w["held"]);
    assert!(!held.is_empty(), "{w}");
    assert_eq!(
        w["lacking"].as_u64().unwrap() as usize,
        wanted.len() - held.len(),
        "{w}"
    );
    for h in &held {
        let (_, hex) = files.iter().find(|f| &f.0 == h).unwrap();
        assert_eq!(stored_digest(&s, hex).as_deref(), Some(&hex[..]), "{h}");
    }

    // Another user holds none of it, and cannot ask about this scan.
    let bob = s.add_user("bob");
    let bob = s.as_bearer(&bob);
    bob.get(&format!("/scans/{id}/overlay/wanted")).expect(404);
    let (bid, _) = new_scan(&bob, "web01", &report);
    let theirs = bob
        .get(&format!("/scans/{bid}/overlay/wanted"))
        .expect(200)
        .json();
    assert_eq!(theirs["held"], json!([]), "{theirs}");
    // An overlay of bob's that leaves out what only alice holds is incomplete.
    let mut rest = a.clone();
    rest["wanted"] = json!(a["wanted"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !held.iter().any(|h| Some(h.as_str()) == p["path"].as_str()))
        .cloned()
        .collect::<Vec<_>>());
    let rest_doc = serde_json::to_vec(&rest).unwrap();
    let second = root.overlay(&root.report, &rest_doc);
    let r = bob
        .stream("PUT", &format!("/scans/{bid}/overlay"), &second[..])
        .expect(400);
    assert!(
        r.error().contains("missing from the overlay"),
        "{}",
        r.error()
    );

    // The second overlay carries only what is lacking, and completes the scan.
    assert!(second.len() < overlay.len());
    let done = admin.stream("PUT", &ovl, &second[..]).expect(200).json();
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["held"], held.len(), "{done}");
    assert_eq!(done["received_bytes"], second.len(), "{done}");
    assert_eq!(
        done["held_bytes"].as_u64().unwrap() + done["content_bytes"].as_u64().unwrap(),
        a["stats"]["wanted_bytes"].as_u64().unwrap(),
        "{done}"
    );
    for (p, hex) in &files {
        assert_eq!(stored_digest(&s, hex).as_deref(), Some(&hex[..]), "{p}");
    }
    assert_eq!(scan_of(&s, id)["status"], "complete");
    assert_eq!(s.staged_count(), 0);

    // Another machine of the same user with the same files sends none of their content.
    // (The in-house package now comes from the user's repository of recreated packages: its
    // files are not wanted again.)
    let (other, analysis) = new_scan(&admin, "web02", &report);
    let a: Value = serde_json::from_slice(&analysis).unwrap();
    let w = lacking(other);
    let all: Vec<String> = wanted_files(&root.report, &paths(&a["wanted"]))
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert!(all.len() >= 4, "{a}");
    assert_eq!(paths(&w["held"]), all, "{w}");
    assert_eq!(w["lacking_bytes"], 0, "{w}");
}
