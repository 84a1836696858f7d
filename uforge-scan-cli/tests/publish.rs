//! `uforge target add|list` and `uforge image publish --wait` against a real server, and
//! `uforge image publish FILE --to` without one, to a directory.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::live::{outside_tmp, Server};
use crate::util::*;

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A done image job of `user` holding `data`, as a finished build leaves it (the build itself
/// is tested elsewhere); its id. Written with Python's sqlite3, beside the running server.
fn put_image(s: &Server, user: &str, data: &[u8], name: &str) -> i64 {
    let script = "import sqlite3, sys\n\
        db = sqlite3.connect(sys.argv[1], timeout=15)\n\
        with db:\n\
        \x20   c = db.execute(\"INSERT INTO images (user_id, format, target, network, status, \
        progress_files, progress_bytes, file, size, sha256, created_at) SELECT id, 'raw', \
        'none', 'keep', 'done', 0, 0, ?, ?, ?, datetime('now') FROM users WHERE name = ?\", \
        (sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]))\n\
        print(c.lastrowid)\n";
    let out = run_ok(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(s.data_dir().join("uforge.db"))
            .arg(name)
            .arg(data.len().to_string())
            .arg(sha256_hex(data))
            .arg(user),
    );
    let id: i64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dir = s.data_dir().join(format!("images/{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
    id
}

#[test]
fn target_add_list_and_publish_wait() {
    let s = Server::start(None);
    let token = s.add_admin("ops");
    let work = outside_tmp();
    let shelf = work.path().join("shelf");
    std::fs::create_dir(&shelf).unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let id = put_image(&s, "ops", &data, "web01.raw");

    let creds = work.path().join("creds.json");
    std::fs::write(
        &creds,
        r#"{"type": "password", "username": "ci", "password": "cli-secret-3f9"}"#,
    )
    .unwrap();
    let reg = s
        .client(
            "ops",
            &token,
            &[
                "target",
                "add",
                "reg",
                "--to",
                "oci://registry.example.com/team",
                "--credentials-file",
                creds.to_str().unwrap(),
                "--option",
                "chunk=8MiB",
            ],
        )
        .unwrap();
    assert_eq!(reg["credentials_set"], true, "{reg}");
    assert!(!reg.to_string().contains("cli-secret"), "{reg}");
    let url = format!("dir://{}", shelf.display());
    let t = s
        .client("ops", &token, &["target", "add", "shelf", "--to", &url])
        .unwrap();
    assert_eq!(t["type"], "directory", "{t}");
    let list = s.client("ops", &token, &["target", "list"]).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["reg", "shelf"]);

    let p = s
        .client(
            "ops",
            &token,
            &[
                "image",
                "publish",
                &id.to_string(),
                "--target",
                "shelf",
                "--wait",
            ],
        )
        .unwrap();
    assert_eq!(p["status"], "done", "{p}");
    assert_eq!(p["digest"], format!("sha256:{}", sha256_hex(&data)));
    assert_eq!(std::fs::read(shelf.join("web01.raw")).unwrap(), data);
    let listed = s.client("ops", &token, &["publication", "list"]).unwrap();
    assert_eq!(listed[0]["id"], p["id"], "{listed}");

    // A format the target does not take: refused, naming it.
    let e = s
        .client(
            "ops",
            &token,
            &[
                "image",
                "publish",
                &id.to_string(),
                "--target",
                "reg",
                "--wait",
            ],
        )
        .unwrap_err();
    assert!(e.contains("target reg") && e.contains("raw"), "{e}");

    let pid = p["id"].as_i64().unwrap().to_string();
    s.client("ops", &token, &["publication", "delete", &pid])
        .unwrap();
    assert!(!shelf.join("web01.raw").exists());
    s.client("ops", &token, &["target", "remove", "shelf"])
        .unwrap();

    // Without a server: the same publisher, from a local file.
    let local = work.path().join("disk.raw");
    std::fs::write(&local, &data).unwrap();
    let out = run_ok(
        Command::new(Path::new(env!("CARGO_BIN_EXE_uforge-scan")).with_file_name("uforge"))
            .args(["--json", "image", "publish", "-q", "--format", "raw"])
            .arg(&local)
            .arg("--to")
            .arg(&url)
            .env("HOME", work.path()),
    );
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["digest"], format!("sha256:{}", sha256_hex(&data)));
    assert_eq!(std::fs::read(shelf.join("disk.raw")).unwrap(), data);
    let manifest = std::fs::read_to_string(shelf.join("disk.raw.sha256")).unwrap();
    assert!(manifest.contains(&sha256_hex(&data)), "{manifest}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Off a terminal, without -q: one line per phase as it ends, with its duration.
    let second = work.path().join("disk2.raw");
    std::fs::write(&second, &data).unwrap();
    let out = run_ok(
        Command::new(Path::new(env!("CARGO_BIN_EXE_uforge-scan")).with_file_name("uforge"))
            .args(["--json", "image", "publish", "--format", "raw"])
            .arg(&second)
            .arg("--to")
            .arg(&url)
            .env("HOME", work.path()),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let upload: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("upload: done in "))
        .collect();
    assert_eq!(upload.len(), 1, "{log}");
    assert!(upload[0].ends_with("MiB"), "{log}");
    assert!(log.lines().all(|l| l.contains(": done in ")), "{log}");
}
