//! PostgreSQL for the tests: the server `UFORGE_TEST_PG` names (a URL without a database,
//! `postgres://USER@HOST:PORT`), or else a throwaway cluster of our own, started once per test
//! process (as the `postgres` user when we are root: initdb refuses root) and stopped when the
//! process exits. Each caller gets a fresh database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The cluster this process started: (bin directory, cluster directory).
static OWN: Mutex<Option<(PathBuf, PathBuf)>> = Mutex::new(None);

/// `postgres://USER@HOST:PORT`, without a database.
pub fn base_url() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| match std::env::var("UFORGE_TEST_PG") {
        Ok(u) if !u.is_empty() => server_part(&u).to_string(),
        _ => start_cluster(),
    })
}

/// The URL up to the host and port.
fn server_part(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => &url[..after + i],
        None => url.trim_end_matches('/'),
    }
}

/// A new, empty database; its URL.
pub fn fresh_database() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = base_url();
    let name = format!(
        "uforge_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let out = Command::new(psql())
        .arg(format!("{base}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql (apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "CREATE DATABASE {name} on {base}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{base}/{name}")
}

/// The newest installed server's binaries (Debian's layout).
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

fn psql() -> PathBuf {
    bin_dir()
        .map(|b| b.join("psql"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (initdb refuses root).
fn pg_tool(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    let exe = bin.join(tool);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

extern "C" fn stop_cluster() {
    let own = OWN.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((bin, dir)) = own {
        let data = dir.join("data");
        let _ = pg_tool(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn start_cluster() -> String {
    let bin = bin_dir()
        .expect("PostgreSQL is not installed: apt-get install postgresql (or set UFORGE_TEST_PG)");
    let dir = tempfile::Builder::new()
        .prefix("uforge-test-pg")
        .tempdir_in("/var/tmp")
        .unwrap()
        .keep();
    if is_root() {
        let ok = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown postgres {}", dir.display());
    }
    let data = dir.join("data");
    let out = pg_tool(
        &bin,
        "initdb",
        &[
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
        ],
    );
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1",
        dir.display()
    );
    let log = dir.join("log");
    let out = pg_tool(
        &bin,
        "pg_ctl",
        &[
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-o",
            &opts,
            "start",
        ],
    );
    assert!(
        out.status.success(),
        "pg_ctl start: {}{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    *OWN.lock().unwrap() = Some((bin, dir));
    // SAFETY: registering a plain function to run at exit.
    unsafe { libc::atexit(stop_cluster) };
    format!("postgres://postgres@127.0.0.1:{port}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_cut_after_the_port() {
        use super::server_part;
        assert_eq!(server_part("postgres://u@h:5/db"), "postgres://u@h:5");
        assert_eq!(server_part("postgres://u@h:5"), "postgres://u@h:5");
        assert_eq!(server_part("postgres://u@h:5/"), "postgres://u@h:5");
    }
}
