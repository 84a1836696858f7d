//! Installing the scanned package set, at the scanned versions, into a fresh root.
//!
//! The install is done by `mmdebstrap`, confined in a [sandbox](super::sandbox) where it is
//! root of a user namespace only (apt resolves nothing: every package is named with its
//! exact version and architecture, and dpkg runs every maintainer script as a real install
//! does, but never as root of the host). The initramfs is not built during the install: the kernel hook and the initramfs
//! trigger would each build it, and the tuning step builds it once for the target instead.

use std::path::Path;
use std::process::Command;

use super::cmd;
use super::sandbox::{self, Sandbox};
use crate::facts::UsrLayout;
use crate::model::Package;
use crate::progress::Progress;
use crate::repo::{PackageKey, RepoIndex, Sources};
use crate::{Error, Result};

/// What to install where.
#[derive(Debug)]
pub struct InstallSpec<'a> {
    /// The scanned packages (only those dpkg had `installed` are installed).
    pub packages: &'a [Package],
    /// The scanned release's suite (`bookworm`).
    pub suite: &'a str,
    /// Package repositories (the flat ones of recreated packages trusted) and the keyring for
    /// those that name none (default: the host's apt keyrings).
    pub sources: &'a Sources,
    /// The root to fill: empty, or a freshly made filesystem with only `lost+found`.
    pub root: &'a Path,
    /// The source's /usr layout, set up before any package is unpacked.
    pub layout: &'a UsrLayout,
}

/// The packages a build installs: those the source had installed.
pub fn wanted(packages: &[Package]) -> Vec<&Package> {
    packages
        .iter()
        .filter(|p| p.manager == "dpkg" && p.status == "installed")
        .collect()
}

/// The sources.list line of a flat repository of recreated packages.
pub fn local_line(dir: &Path) -> String {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    // copy: puts the .deb files in the root's apt cache, where dpkg in the chroot reads them.
    format!("deb [trusted=yes] copy:{} ./", dir.display())
}

/// The sources.list lines mmdebstrap and apt in the new root are given: the repositories, then
/// the local ones that have an index.
pub fn lines(sources: &Sources) -> Vec<String> {
    let mut out = sources.lines.clone();
    out.extend(sources.indexed_local().map(local_line));
    out
}

/// Fails, naming every package, when some scanned package is in none of the repositories.
pub fn check_available(packages: &[Package], repos: &[Box<dyn RepoIndex>]) -> Result<()> {
    let missing: Vec<String> = wanted(packages)
        .into_iter()
        .map(PackageKey::of)
        .filter(|k| !repos.iter().any(|r| r.has(k)))
        .map(|k| k.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = missing.iter().take(20).map(String::as_str).collect();
    Err(Error::Invalid(format!(
        "no repository can supply {} of the scanned packages: {}{}; register a repository \
         that has them, or finish the scan so that the server recreates them",
        missing.len(),
        shown.join(", "),
        if missing.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    )))
}

/// Installs the packages into `spec.root`.
pub fn install(spec: &InstallSpec<'_>, progress: &dyn Progress) -> Result<()> {
    cmd::require("mmdebstrap", "mmdebstrap")?;
    let pkgs = wanted(spec.packages);
    if pkgs.is_empty() {
        return Err(Error::Invalid(
            "the scan lists no installed dpkg packages: there is nothing to install".into(),
        ));
    }
    // Packages do not say how /usr was merged (debootstrap's links, usrmerge, base-files'
    // links), and usr-is-merged's preinst refuses a root without the links: the new root
    // gets the source's before the first package is unpacked.
    let layout_hook = spec.layout.setup_hook()?;
    // dpkg unpacks, then sets up, every package: two steps each, counted from its own lines.
    let steps = 2 * pkgs.len() as u64;
    progress.phase("install", Some(steps));
    let include: Vec<String> = pkgs
        .iter()
        .map(|p| format!("{}:{}={}", p.name, p.arch, p.version))
        .collect();
    let mut c = Command::new("mmdebstrap");
    c.args([
        "--mode=root",
        "--variant=custom",
        "--format=directory",
        // A new filesystem has lost+found.
        "--skip=check/empty",
        // dpkg's own lines, which the progress counts (and a failure's log then holds).
        "--verbose",
    ])
    .arg(format!("--include={}", include.join(",")));
    if let Some(hook) = &layout_hook {
        c.arg(format!("--setup-hook={hook}"));
    }
    c    .arg(
        "--extract-hook=mkdir -p \"$1/usr/sbin\" && chroot \"$1\" dpkg-divert --quiet --local --rename --add \
         /usr/sbin/update-initramfs && printf '#!/bin/sh\\nexit 0\\n' >\"$1/usr/sbin/update-initramfs\" \
         && chmod 0755 \"$1/usr/sbin/update-initramfs\"",
    )
    .arg(
        "--customize-hook=rm -f \"$1/usr/sbin/update-initramfs\" && chroot \"$1\" dpkg-divert \
         --quiet --local --rename --remove /usr/sbin/update-initramfs",
    );
    if let Some(k) = &spec.sources.keyring {
        c.arg(format!("--keyring={}", k.display()));
    }
    if Path::new(EATMYDATA_HOOKS).is_dir() && cmd::have("eatmydata") {
        // The root is thrown away if the build fails: dpkg's fsyncs buy nothing here.
        c.arg(format!("--hook-dir={EATMYDATA_HOOKS}"));
    }
    c.arg(spec.suite).arg(spec.root);
    let lines = lines(spec.sources);
    c.args(&lines);
    // mmdebstrap is root of a user namespace only: dpkg and the maintainer scripts it runs in
    // the root never hold a privilege of the host's. It downloads, so it keeps the network.
    let mut sandbox = Sandbox::host_tools(spec.root).network(true);
    for dir in sandbox::local_repos(&lines) {
        sandbox = sandbox.bind(&dir, false);
    }
    if let Some(k) = &spec.sources.keyring {
        sandbox = sandbox.bind(k, false);
    }
    let done = std::sync::atomic::AtomicU64::new(0);
    let observe = |line: &[u8]| {
        if dpkg_step(line) && done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < steps {
            progress.advance(1, 0);
        }
    };
    sandbox
        .run_observed(&mut c, &observe)
        .map_err(|e| Error::Invalid(format!("installing the packages: {e}")))?;
    let counted = done.load(std::sync::atomic::Ordering::Relaxed).min(steps);
    progress.advance(steps - counted, 0);
    progress.finish();
    Ok(())
}

/// Whether a line of dpkg's output is one of the two steps every package goes through.
fn dpkg_step(line: &[u8]) -> bool {
    line.starts_with(b"Unpacking ") || line.starts_with(b"Setting up ")
}

/// mmdebstrap's hook that runs dpkg under eatmydata.
const EATMYDATA_HOOKS: &str = "/usr/share/mmdebstrap/hooks/eatmydata";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use crate::scan::{scan_to_report, ScanOptions};
    use std::collections::BTreeMap;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A local package whose postinst records its environment in the root, then escapes the
    /// chroot dpkg runs it in (the classic double chroot) and goes for host files.
    fn hostile_package(repo: &Path, root: &Path, canary: &Path, created: &Path) {
        let pkg = repo.join("build");
        std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
        std::fs::write(
            pkg.join("DEBIAN/control"),
            "Package: evil-postinst\nVersion: 1.0\nArchitecture: amd64\n\
             Maintainer: x <x@example.org>\nDescription: escapes its chroot\n",
        )
        .unwrap();
        let postinst = format!(
            r#"#!/bin/sh
env >/var/lib/evil-env
perl -e '
mkdir "/tmp/.x"; chroot "/tmp/.x" or die; chdir ".." for 1..64; chroot "." or die;
if (open(my $f, ">", "{created}")) {{ print $f "pwned" }}
chown 65534, 65534, "{canary}"; chmod 0666, "{canary}";
open(my $o, ">", "{root}/var/lib/evil-escaped") or die; print $o "escaped\n";
'
exit 0
"#,
            created = created.display(),
            canary = canary.display(),
            root = root.display()
        );
        let p = pkg.join("DEBIAN/postinst");
        std::fs::write(&p, postinst).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let deb = repo.join("evil-postinst_1.0_amd64.deb");
        let st = Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&pkg)
            .arg(&deb)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::remove_dir_all(&pkg).unwrap();
        crate::recreate::write_flat_index(repo).unwrap();
    }

    /// Records the install phase's total and how it advanced.
    #[derive(Default)]
    struct Steps {
        total: std::sync::Mutex<Option<u64>>,
        done: AtomicU64,
        calls: AtomicU64,
    }

    impl crate::progress::Progress for Steps {
        fn phase(&self, _name: &str, total: Option<u64>) {
            *self.total.lock().unwrap() = total;
        }
        fn advance(&self, files: u64, _bytes: u64) {
            self.done.fetch_add(files, Ordering::Relaxed);
            self.calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn maintainer_scripts_never_reach_the_host_and_get_a_clean_environment() {
        let steps = Steps::default();
        // A stray variable of the operator's shell must not reach the scripts.
        std::env::set_var("HTTPLIB2_CA_CERTS", "/nonexistent");
        let fixture = crate::test_fixture::debian_root();
        let scanned = scan_to_report(&ScanOptions::new(&fixture), &NoProgress).unwrap();
        let layout = UsrLayout::of(&scanned.files, &scanned.header.packages);
        let mut packages = scanned.header.packages;
        // The fixture's in-house package is in no repository.
        packages.retain(|p| p.name != "acme-agent");
        packages.push(Package {
            name: "evil-postinst".into(),
            version: "1.0".into(),
            arch: "amd64".into(),
            manager: "dpkg".into(),
            status: "installed".into(),
            ..Package::default()
        });
        let work = tempfile::tempdir_in("/var/tmp").unwrap();
        let root = work.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let host = tempfile::tempdir_in("/var/tmp").unwrap();
        let canary = host.path().join("canary");
        std::fs::write(&canary, "canary").unwrap();
        std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).unwrap();
        let created = host.path().join("created");
        let repo = work.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        hostile_package(&repo, &root, &canary, &created);
        let sources = Sources {
            local: vec![repo],
            ..Sources::new(vec![uforge_test_support::mirror_line()])
        };
        install(
            &InstallSpec {
                packages: &packages,
                suite: "bookworm",
                sources: &sources,
                root: &root,
                layout: &layout,
            },
            &steps,
        )
        .unwrap();

        // Progress came package by package from dpkg's own lines, not in one jump at the end.
        let wanted = 2 * wanted(&packages).len() as u64;
        assert_eq!(*steps.total.lock().unwrap(), Some(wanted));
        assert_eq!(steps.done.load(Ordering::Relaxed), wanted);
        let calls = steps.calls.load(Ordering::Relaxed);
        assert!(calls > wanted / 2, "{calls} advances for {wanted} steps");

        // The script did escape its chroot, into the sandbox, and reached nothing of the host.
        assert_eq!(
            std::fs::read_to_string(root.join("var/lib/evil-escaped")).unwrap(),
            "escaped\n"
        );
        let meta = std::fs::metadata(&canary).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, 0o600)
        );
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "canary");
        assert!(!created.exists());
        assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 1);

        // Files are owned on disk as in a real install, by root, not by the namespace's ids.
        for f in [
            "usr/bin/dpkg",
            "etc/passwd",
            "var/lib/dpkg/status",
            "var/lib/evil-env",
        ] {
            let m = std::fs::symlink_metadata(root.join(f)).unwrap();
            assert_eq!((m.uid(), m.gid()), (0, 0), "{f}");
        }
        let out = Command::new("find")
            .arg(&root)
            .args([
                "-xdev", "(", "-uid", "+65535", "-o", "-gid", "+65535", ")", "-print",
            ])
            .output()
            .unwrap();
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );

        // The environment: the documented one, plus what mmdebstrap, dpkg and debconf
        // themselves set for scripts; nothing of the host's.
        let env = std::fs::read_to_string(root.join("var/lib/evil-env")).unwrap();
        let vars: BTreeMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
        assert!(!vars.contains_key("HTTPLIB2_CA_CERTS"), "{env}");
        assert_eq!(vars.get("HOME"), Some(&"/root"), "{env}");
        assert_eq!(vars.get("LANG"), Some(&"C.UTF-8"), "{env}");
        assert!(
            vars["PATH"].starts_with(crate::image::sandbox::CLEAN_ENV[0].1),
            "{env}"
        );
        for k in vars.keys() {
            let documented = crate::image::sandbox::CLEAN_ENV.iter().any(|(d, _)| d == k);
            let tools = k.starts_with("DPKG_")
                || k.starts_with("DEBCONF_")
                || [
                    "PWD",
                    "OLDPWD",
                    "SHLVL",
                    "LANGUAGE",
                    "LD_PRELOAD",
                    "LD_LIBRARY_PATH",
                ]
                .contains(k);
            assert!(documented || tools, "{k} reached the script: {env}");
        }
    }
}
