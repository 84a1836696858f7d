//! The test services of `tests/services/`: a private OCI registry, a Garage S3 store and a
//! libvirt daemon, each started by its script in a directory of its own and stopped when
//! the handle is dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace;

/// A running service.
pub struct Service {
    script: PathBuf,
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

/// A script of `tests/services/`.
pub fn script(name: &str) -> PathBuf {
    workspace().join("tests/services").join(name)
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

impl Service {
    /// Starts `NAME.sh start DIR` (`registry`, `garage`, `libvirt`) with extra environment.
    pub fn start(name: &str, vars: &[(&str, &str)]) -> Service {
        let dir = tempfile::Builder::new()
            .prefix(&format!("uforge-{name}-"))
            .tempdir_in("/var/tmp")
            .expect("a directory for the service");
        let script = script(&format!("{name}.sh"));
        let mut s = Service {
            script,
            dir,
            env: HashMap::new(),
        };
        s.run("start", vars);
        s
    }

    fn run(&mut self, cmd: &str, vars: &[(&str, &str)]) {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg(cmd)
            .arg(self.dir.path().join("svc"))
            .envs(vars.iter().copied())
            .output()
            .expect("run the service script");
        assert!(
            out.status.success(),
            "{} {cmd}: {}{}",
            self.script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.env = parse_env(&String::from_utf8_lossy(&out.stdout));
    }

    /// A value the script printed (`REGISTRY_HOST`, `S3_ENDPOINT`...).
    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{} printed no {key}", self.script.display()))
    }

    /// The service's directory (its data, logs and config).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().join("svc")
    }

    /// Kills the service's process with SIGKILL, as a crash would (`pid_key` names it).
    pub fn kill(&self, pid_key: &str) {
        let pid: i32 = self.get(pid_key).parse().expect("a pid");
        // SAFETY: kill(2) on a pid the service script started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        for _ in 0..100 {
            // SAFETY: signal 0 only checks the process exists.
            if unsafe { libc::kill(pid, 0) } != 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Starts the service again on the same configuration and data.
    pub fn restart(&mut self) {
        self.run("restart", &[]);
    }

    /// Where `path` of the service's directory is.
    pub fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        self.dir().join(path)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(self.dir.path().join("svc"))
            .output();
    }
}

/// The cached guest disk of `tests/services/guest-image.sh` (built on first use): boots
/// under BIOS and UEFI, gets an address by DHCP and serves `uforge-guest-ok` on port 80.
pub fn guest_image() -> PathBuf {
    let out = Command::new("bash")
        .arg(script("guest-image.sh"))
        .output()
        .expect("run guest-image.sh");
    assert!(
        out.status.success(),
        "guest-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
