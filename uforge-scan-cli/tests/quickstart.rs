//! The README's quick start and the walk-through after it, followed as written: the commands
//! are read from the README's code blocks (an edit that breaks them breaks this test) and run
//! in order, on a clean data directory, a free port, the drifted fixture root and this build's
//! own binaries.
//!
//! The quick-start command runs verbatim; the script it starts is pointed at the test's
//! places through the environment variables it honours (`UFORGE_DATA_DIR`, `UFORGE_LISTEN`,
//! `UFORGE_SCAN_ROOT`, `UFORGE_BIN_DIR`). The client and stop commands name the quick start's
//! fixed places, so before they run the test substitutes exactly these and nothing else:
//!
//! | in the README                 | in the test                          |
//! |-------------------------------|--------------------------------------|
//! | `/var/lib/uforge-quickstart`  | the test's data directory            |
//! | `target/release/`             | the directory of the test's binaries |
//! | `127.0.0.1:8443`              | the test's free port on loopback     |
//!
//! "The same steps by hand" run line by line in one shell, as a reader types them, with the
//! binaries on `PATH`, `UFORGE_LISTEN` naming a free port, `/var/lib/uforge` and
//! `127.0.0.1:8443` replaced as above, the token `user add` printed pasted for `...`, and
//! `--root FIXTURE` given to the agent (the test's source machine is the fixture, not this
//! host). The test waits for the server's URL before the next line, as the reader does.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::live::{outside_tmp, server_bin};
use crate::util::*;

/// The README's data directory, binary directory and address of the quick start.
const README_DATA: &str = "/var/lib/uforge-quickstart";
const README_BIN: &str = "target/release/";
const README_LISTEN: &str = "127.0.0.1:8443";

/// What the README's "Quick start" section says to run.
struct Walkthrough {
    /// The quick-start command.
    quickstart: String,
    /// The client commands that follow it.
    client: String,
    /// The command that stops the server the quick start leaves running.
    stop: String,
    /// "The same steps by hand".
    by_hand: String,
    /// The command that stops the server started by hand.
    stop_by_hand: String,
}

impl Walkthrough {
    fn read() -> Walkthrough {
        let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
        let start = readme
            .find("\n## Quick start\n")
            .expect("the README has a Quick start section");
        let section = &readme[start + 1..];
        // Up to the next heading (a line starting with `#` inside a code block is no heading).
        let end = ["\n## ", "\n### "]
            .iter()
            .filter_map(|h| section.find(h))
            .min()
            .unwrap_or(section.len());
        let section = &section[..end];
        let blocks = code_blocks(section);
        assert!(
            blocks.len() >= 3,
            "the quick start has lost its code blocks:\n{section}"
        );
        let by_hand = section
            .find("The same steps by hand")
            .expect("the quick start shows the steps by hand");
        Walkthrough {
            quickstart: blocks[0].clone(),
            client: blocks[1].clone(),
            stop: stop_command(&section[..by_hand]),
            by_hand: blocks[2].clone(),
            stop_by_hand: stop_command(&section[by_hand..]),
        }
    }
}

/// The first inline `kill ...` command of `prose`: how it says to stop a server.
fn stop_command(prose: &str) -> String {
    // Markdown joins the lines of an inline code span with a space.
    let prose = prose.split_whitespace().collect::<Vec<_>>().join(" ");
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|code| code.starts_with("kill "))
        .unwrap_or_else(|| panic!("the README says no longer how to stop the server: {prose}"))
        .to_string()
}

/// The contents of the section's ```sh blocks, in order.
fn code_blocks(section: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The test's places for the README's.
struct Places {
    data: PathBuf,
    bin: PathBuf,
    listen: String,
    root: PathBuf,
}

impl Places {
    /// `text` with the README's quick-start places replaced by the test's (the table above);
    /// `names` are those it must hold, so that a README naming other places fails here rather
    /// than running against them.
    fn map(&self, text: &str, names: &[&str]) -> String {
        for fixed in names {
            assert!(
                text.contains(fixed),
                "the README's command no longer names {fixed}: adjust the mapping\n{text}"
            );
        }
        text.replace(README_DATA, self.data.to_str().unwrap())
            .replace(README_BIN, &format!("{}/", self.bin.display()))
            .replace(README_LISTEN, &self.listen)
    }

    /// Runs `script` with bash from the top of the repository, as the README's reader does,
    /// stopping at the first command that fails and naming it; `env` adds to the environment.
    fn run(&self, script: &str, env: &[(&str, &str)]) -> Output {
        let strict = format!(
            "set -eEuo pipefail\ntrap 'echo \"README command failed ($?): $BASH_COMMAND\" >&2' \
             ERR\n{script}"
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(strict).current_dir(repo());
        // The reader's shell sets none of the client's variables; the block does.
        for var in ["UFORGE_URL", "UFORGE_USER", "UFORGE_TOKEN", "UFORGE_CACERT"] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        cmd.output().expect("run bash")
    }

    /// Runs the quick-start command with the script's knobs set to the test's places.
    fn quickstart(&self, walk: &Walkthrough, env: &[(&str, &str)]) -> Output {
        let mut all = vec![
            ("UFORGE_DATA_DIR", self.data.to_str().unwrap()),
            ("UFORGE_LISTEN", self.listen.as_str()),
            ("UFORGE_SCAN_ROOT", self.root.to_str().unwrap()),
            ("UFORGE_BIN_DIR", self.bin.to_str().unwrap()),
        ];
        all.extend_from_slice(env);
        self.run(&walk.quickstart, &all)
    }

    /// `uforge --json ARGS` as the quick start's user.
    fn client(&self, args: &[&str]) -> Value {
        let out = run_ok(
            Command::new(self.bin.join("uforge"))
                .args(["-U", &format!("https://{}", self.listen), "-u", "demo"])
                .arg("--cacert")
                .arg(self.data.join("tls/cert.pem"))
                .arg("--token-file")
                .arg(self.data.join("demo.token"))
                .arg("--json")
                .args(args),
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The pid the server's pid file names.
    fn server_pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.data.join("server.pid")).unwrap();
        text.trim().parse().unwrap()
    }

    /// Whether something accepts connections at the server's address.
    fn listening(&self) -> bool {
        TcpStream::connect(&self.listen).is_ok()
    }
}

/// Kills the server the quick start leaves running if the test ends before it stopped it.
struct KillOnDrop(PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("server.pid")) {
            if alive(pid.trim().parse().unwrap_or(0)) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

/// Whether `pid` is a live (not zombie) `uforge-server`.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.split_once(") ")
            .is_some_and(|(comm, rest)| comm.ends_with("(uforge-server") && !rest.starts_with('Z'))
    })
}

/// Waits until `pid` has ended.
fn wait_ended(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(Instant::now() < deadline, "server {pid} still runs");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a command printed: stdout and stderr.
fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a command printed, after asserting that it succeeded (all of it shown if not).
fn assert_ok(what: &str, out: &Output) -> (String, String) {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "{what} failed: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// The pid in the quick start's `server: URL (pid N, ...)` line, checked against its places.
fn server_line(places: &Places, stdout: &str) -> u32 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("server: "))
        .unwrap_or_else(|| panic!("no server line:\n{stdout}"));
    let head = format!("server: https://{} (pid ", places.listen);
    let rest = line.strip_prefix(&head).unwrap_or_else(|| panic!("{line}"));
    let (pid, rest) = rest.split_once(',').unwrap_or_else(|| panic!("{line}"));
    assert_eq!(
        rest,
        format!(" data in {0}, log {0}/server.log)", places.data.display()),
        "{line}"
    );
    pid.parse().unwrap_or_else(|_| panic!("{line}"))
}

/// The rows of a table whose first cell is a number: its cells.
fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.first().is_some_and(|c| c.parse::<u64>().is_ok()))
        .collect()
}

/// The `scan list` table's rows of machine `name`: (id, status), oldest first.
fn scans_of<'a>(table: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
    let header = table
        .lines()
        .find(|l| l.starts_with("ID ") && l.contains(" MACHINE ") && l.contains(" STATUS "))
        .unwrap_or_else(|| panic!("no scan table:\n{table}"));
    let cols: Vec<&str> = header.split_whitespace().collect();
    let at = |c| cols.iter().position(|h| *h == c).unwrap();
    let mut scans = rows(table)
        .into_iter()
        .filter(|r| r.len() >= cols.len() && r[at("MACHINE")] == name)
        .map(|r| (r[at("ID")], r[at("STATUS")]))
        .collect::<Vec<_>>();
    scans.sort_by_key(|(id, _)| id.parse::<u64>().unwrap());
    scans
}

#[test]
fn readme_quick_start_and_walkthrough() {
    let walk = Walkthrough::read();
    let root = fixture("drifted");
    let host = std::fs::read_to_string(root.join("etc/hostname")).unwrap();
    let host = host.trim();
    let work = outside_tmp();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let places = Places {
        // Not there yet: the quick start makes it.
        data: work.path().join("uforge-quickstart"),
        bin: server_bin().parent().unwrap().to_path_buf(),
        listen: format!("127.0.0.1:{port}"),
        root: root.clone(),
    };
    let _guard = KillOnDrop(places.data.clone());

    // The quick start: a server left running, a user, three synced suites, one scan.
    let out = places.quickstart(&walk, &[]);
    let (stdout, stderr) = assert_ok("the quick start", &out);
    let pid = server_line(&places, &stdout);
    assert_eq!(
        places.server_pid(),
        pid,
        "the pid file names another server"
    );
    assert!(alive(pid), "the server did not stay running");
    assert!(places.listening());
    for suite in ["bookworm", "bookworm-updates", "bookworm-security"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&format!(" {suite} main")) && l.contains("Z  ")),
            "{suite} was not synced:\n{stdout}"
        );
    }
    assert_eq!(scans_of(&stdout, host), [("1", "complete")], "{stdout}");
    assert!(
        stdout.contains("\nacme-agent  2.4.1-1  amd64  acme-agent_2.4.1-1_amd64.deb\n"),
        "the in-house package was not recreated:\n{stdout}"
    );
    assert!(
        stderr.contains(&format!("scan 1 of {host} complete: ")),
        "{stderr}"
    );
    assert!(
        stderr.contains("  recreated acme-agent_2.4.1-1_amd64.deb\n"),
        "{stderr}"
    );
    let token = std::fs::read_to_string(places.data.join("demo.token")).unwrap();
    assert!(!token.trim().is_empty());
    assert!(
        !stdout.contains(token.trim()) && !stderr.contains(token.trim()),
        "the token was printed"
    );

    // The README's next commands work against the server it left running.
    let out = places.run(
        &places.map(&walk.client, &[README_DATA, README_BIN, README_LISTEN]),
        &[],
    );
    let (listed, _) = assert_ok("the README's client commands", &out);
    assert_eq!(scans_of(&listed, host), [("1", "complete")], "{listed}");

    // A rerun reuses the server and scans again: incremental, the in-house package now from
    // the server's repository of recreated packages.
    let out = places.quickstart(&walk, &[]);
    let (stdout, stderr) = assert_ok("the quick start's rerun", &out);
    assert_eq!(
        server_line(&places, &stdout),
        pid,
        "the rerun started another server"
    );
    assert_eq!(
        scans_of(&stdout, host),
        [("1", "complete"), ("2", "complete")],
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "  1 packages no public repository has: 0 missing (0 recreated now), 1 recreated \
             by earlier scans, 0 held by earlier scans\n"
        ),
        "{stderr}"
    );
    let synced: Vec<Value> = places.client(&["repo", "list"]).as_array().unwrap().clone();
    assert_eq!(
        synced.len(),
        3,
        "the rerun registered a suite twice: {synced:?}"
    );

    // Half done: the security suite is registered again while its mirror refuses
    // connections, so its sync fails and the quick start stops there, as a first run
    // behind a broken network does.
    let security = synced
        .iter()
        .find(|r| r["line"].as_str().unwrap().contains(" bookworm-security "))
        .unwrap();
    places.client(&["repo", "delete", &security["id"].to_string()]);
    let stop = places.map(&walk.stop, &[README_DATA]);
    let out = places.run(&stop, &[]);
    assert_ok("the README's stop command", &out);
    wait_ended(pid);
    let refused = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", refused.local_addr().unwrap());
    drop(refused);
    let out = places.quickstart(&walk, &[("http_proxy", &proxy)]);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "the sync through a refusing proxy passed:\n{stdout}"
    );
    assert!(
        stderr.contains("/sync: HTTP 502: ")
            && stderr.contains("bookworm-security/InRelease")
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
    let half = places.client(&["repo", "list"]);
    let unsynced: Vec<&Value> = half
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["synced_at"].is_null())
        .collect();
    assert_eq!(unsynced.len(), 1, "{half}");
    assert!(
        unsynced[0]["line"]
            .as_str()
            .unwrap()
            .contains(" bookworm-security "),
        "{half}"
    );
    assert_eq!(
        places.client(&["scan", "list"]).as_array().unwrap().len(),
        2,
        "the failed run scanned"
    );
    // That server fetches through the refusing proxy; the README's way stops it.
    let broken = places.server_pid();
    assert_ne!(broken, pid);
    assert_ok("the README's stop command", &places.run(&stop, &[]));
    wait_ended(broken);

    // The rerun finishes it: the suite synced, under the same registration, then the scan.
    let out = places.quickstart(&walk, &[]);
    let (stdout, _) = assert_ok("the quick start after a failed sync", &out);
    let again = server_line(&places, &stdout);
    assert_ne!(again, broken);
    let repos = places.client(&["repo", "list"]);
    let repos = repos.as_array().unwrap();
    assert_eq!(repos.len(), 3, "{repos:?}");
    assert!(repos.iter().all(|r| !r["synced_at"].is_null()), "{repos:?}");
    assert_eq!(
        repos
            .iter()
            .find(|r| r["line"] == unsynced[0]["line"])
            .unwrap()["id"],
        unsynced[0]["id"]
    );
    assert_eq!(
        scans_of(&stdout, host),
        [("1", "complete"), ("2", "complete"), ("3", "complete")],
        "{stdout}"
    );

    // Stopped the README's way, it is gone and its port is free.
    assert_ok("the README's stop command", &places.run(&stop, &[]));
    wait_ended(again);
    assert!(
        !places.listening(),
        "something still listens on {}",
        places.listen
    );
}

/// One bash that runs commands one after the other, as a reader types them into a terminal:
/// what they export and start stays for the next ones. Each command's output, exit status and
/// the simple commands in it that failed are kept apart.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    dir: PathBuf,
    count: usize,
}

/// What one command of a [`Shell`] did.
struct Ran {
    status: i32,
    stdout: String,
    stderr: String,
    /// The simple commands that failed, with their exit status.
    failed: String,
    /// Where its stdout goes (a background job goes on writing there).
    out: PathBuf,
}

impl Shell {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Shell {
        let mut cmd = Command::new("bash");
        // Its own process group, so that what it started in the background ends with it.
        cmd.current_dir(repo())
            .stdin(Stdio::piped())
            .process_group(0);
        for var in ["UFORGE_URL", "UFORGE_USER", "UFORGE_TOKEN", "UFORGE_CACERT"] {
            cmd.env_remove(var);
        }
        let mut child = cmd.envs(env.iter().copied()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut shell = Shell {
            child,
            stdin,
            dir: dir.to_path_buf(),
            count: 0,
        };
        let fails = dir.join("failed");
        shell.send(&format!(
            "trap 'echo \"$BASH_COMMAND: exit $?\" >>{}' ERR",
            quote(&fails)
        ));
        shell
    }

    fn send(&mut self, text: &str) {
        writeln!(self.stdin, "{text}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Runs `command` (lines joined by `\` included) and waits for it, `limit` at most.
    fn run(&mut self, command: &str, limit: Duration) -> Ran {
        self.count += 1;
        let base = self.dir.join(self.count.to_string());
        let (out, err, rc) = (
            base.with_extension("out"),
            base.with_extension("err"),
            base.with_extension("rc"),
        );
        let fails = self.dir.join("failed");
        let _ = std::fs::remove_file(&fails);
        // The status lands under its final name only once written, so it is never read half.
        self.send(&format!(
            "{{ {command}\n}} </dev/null >{} 2>{}; echo $? >{rc}.new && mv {rc}.new {rc}",
            quote(&out),
            quote(&err),
            rc = quote(&rc),
        ));
        let deadline = Instant::now() + limit;
        while !rc.exists() {
            assert!(
                Instant::now() < deadline,
                "{command} did not finish in {limit:?}"
            );
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the shell ended during {command}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        Ran {
            status: read(&rc).trim().parse().unwrap(),
            stdout: read(&out),
            stderr: read(&err),
            failed: read(&fails),
            out,
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["--", &group]).status();
        let _ = self.child.wait();
    }
}

/// `p` quoted for the shell.
fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// The commands of a code block: its lines, continuation lines joined, blank ones left out.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        current.push_str(line);
        if line.ends_with('\\') {
            current.push('\n');
            continue;
        }
        if !current.trim().is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.clear();
    }
    assert!(
        current.is_empty(),
        "a command ends with a continuation: {current}"
    );
    out
}

#[test]
fn readme_steps_by_hand() {
    let walk = Walkthrough::read();
    let root = fixture("drifted");
    let work = outside_tmp();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let data = work.path().join("uforge");
    let bin = server_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shelldir = work.path().join("shell");
    std::fs::create_dir(&shelldir).unwrap();
    let mut shell = Shell::start(
        &shelldir,
        &[("PATH", path.as_str()), ("UFORGE_LISTEN", listen.as_str())],
    );
    let map = |c: &str| {
        c.replace("/var/lib/uforge", data.to_str().unwrap())
            .replace(README_LISTEN, &listen)
    };
    let lines = commands(&walk.by_hand);
    let find = |start: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("the steps by hand no longer run {start}:\n{lines:?}"))
    };
    let ok = |what: &str, ran: &Ran| {
        assert!(
            ran.status == 0 && ran.failed.is_empty(),
            "{what} failed ({}): {}\n--- stdout\n{}\n--- stderr\n{}",
            ran.status,
            ran.failed,
            ran.stdout,
            ran.stderr
        );
    };
    let (serve, user, export, agent) = (
        find("uforge-server serve "),
        find("uforge-server user add "),
        find("export "),
        find("uforge-scan run "),
    );
    assert!(serve < user && user < export && export < agent, "{lines:?}");

    let mut token = None;
    let mut server = None;
    let mut outputs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut command = map(line);
        if i == export {
            let token: &String = token.as_ref().expect("user add printed a token");
            assert!(command.contains("UFORGE_TOKEN=..."), "{command}");
            command = command.replace("UFORGE_TOKEN=...", &format!("UFORGE_TOKEN={token}"));
        }
        if i == agent {
            command = command.replacen(
                "uforge-scan run ",
                &format!("uforge-scan run --root {} ", quote(&root)),
                1,
            );
        }
        // The server runs on in the background: its line returns at once.
        let limit = Duration::from_secs(if i == serve { 30 } else { 900 });
        let ran = shell.run(&command, limit);
        ok(line, &ran);
        if i == serve {
            // The test's own bookkeeping: which process the README's stop command must end.
            let pid = shell.run("echo $!", Duration::from_secs(30));
            server = Some(pid.stdout.trim().parse::<u32>().unwrap());
            let deadline = Instant::now() + Duration::from_secs(60);
            let url = format!("listening on https://{listen}");
            let printed = loop {
                let printed = std::fs::read_to_string(&ran.out).unwrap_or_default();
                if printed.contains(&url) {
                    break printed;
                }
                assert!(
                    Instant::now() < deadline,
                    "the server printed no URL:\n{printed}"
                );
                std::thread::sleep(Duration::from_millis(100));
            };
            assert!(printed.contains("SHA-256 fingerprint: "), "{printed}");
            assert!(
                printed.contains("created user admin; API token"),
                "{printed}"
            );
        }
        if i == user {
            let printed = ran.stdout.trim();
            assert!(printed.starts_with("created user alice; "), "{printed}");
            token = printed.split_whitespace().last().map(str::to_string);
        }
        outputs.push(ran);
    }
    let server = server.expect("the steps by hand start a server");

    // The suite synced, the machine scanned, its in-house package recreated.
    let sync = &outputs[find("uforge repo add ")];
    let packages: u64 = rows(&sync.stdout)
        .last()
        .and_then(|r| r.get(1).and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("{}", sync.stdout));
    assert!(packages > 50_000, "{}", sync.stdout);
    let scanned = &outputs[agent];
    // Off a terminal, one line per phase as it ends.
    let phases: Vec<&str> = scanned
        .stderr
        .lines()
        .filter_map(|l| l.split_once(": done in ").map(|(p, _)| p))
        .collect();
    assert_eq!(
        phases,
        ["connect", "scan", "packages", "facts", "files", "report", "overlay"],
        "{}",
        scanned.stderr
    );
    assert!(
        scanned.stderr.contains("scan 1 of web01 complete: ")
            && scanned
                .stderr
                .contains("  recreated acme-agent_2.4.1-1_amd64.deb\n"),
        "{}",
        scanned.stderr
    );
    let last = &outputs[lines.len() - 1];
    assert_eq!(
        scans_of(&last.stdout, "web01"),
        [("1", "complete")],
        "{}",
        last.stdout
    );
    assert!(
        last.stdout.contains("\nstatus            complete\n"),
        "{}",
        last.stdout
    );
    assert!(
        last.stdout
            .contains("\nacme-agent  2.4.1-1  amd64  acme-agent_2.4.1-1_amd64.deb\n"),
        "{}",
        last.stdout
    );

    // Stopped the README's way, it is gone.
    let stop = shell.run(&walk.stop_by_hand, Duration::from_secs(30));
    ok(&walk.stop_by_hand, &stop);
    wait_ended(server);
    assert!(
        TcpStream::connect(&listen).is_err(),
        "{listen} still answers"
    );
}
