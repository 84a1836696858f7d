//! The JSON documents of container images: the image config (shared by OCI and docker-archive),
//! the OCI manifest and index, and docker's `manifest.json`.

use std::path::Path;

use serde_json::{json, Value};

use crate::fsroot::{Links, RootDir};
use crate::model::Machine;
use crate::{Error, Result};

/// Media types of the OCI image specification.
pub(super) const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(super) const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(super) const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The tag of the one image an archive holds (`oci:DIR:latest`, `NAME:latest`).
pub(super) const TAG: &str = "latest";

/// `PATH` of the image config: Debian's default for root, so `docker run IMAGE CMD` finds
/// commands wherever the distribution put them.
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An OCI platform: architecture and variant in Go naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Platform {
    pub architecture: &'static str,
    pub variant: Option<&'static str>,
}

/// The OCI platform of the scanned machine, from its kernel architecture name (or, when the
/// scan found none, the package manager's).
pub(super) fn platform(machine: &Machine) -> Result<Platform> {
    let arch = if machine.arch.is_empty() {
        machine.package_arch.as_deref().unwrap_or("")
    } else {
        machine.arch.as_str()
    };
    let (architecture, variant) = match arch {
        "x86_64" | "amd64" => ("amd64", None),
        "aarch64" | "arm64" => ("arm64", Some("v8")),
        "armv7l" | "armv7" | "armhf" => ("arm", Some("v7")),
        "armv6l" => ("arm", Some("v6")),
        "armv5tel" | "armel" => ("arm", Some("v5")),
        "i386" | "i486" | "i586" | "i686" => ("386", None),
        "ppc64le" | "ppc64el" => ("ppc64le", None),
        "ppc64" => ("ppc64", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "mips64el" => ("mips64le", None),
        "loongarch64" | "loong64" => ("loong64", None),
        "" => {
            return Err(Error::Invalid(
                "the scan recorded no architecture, so the image config cannot name one".into(),
            ))
        }
        other => {
            return Err(Error::Invalid(format!(
                "architecture `{other}` has no OCI platform name"
            )))
        }
    };
    Ok(Platform {
        architecture,
        variant,
    })
}

/// The command a container runs when none is given: `/bin/sh` (or `/usr/bin/sh` when `/bin`
/// holds none) when the root has a shell.
///
/// A migrated machine's services normally run under its init system, but `/sbin/init`
/// (systemd) only works in a privileged container with cgroups mounted, which the image cannot
/// promise; a shell works everywhere, is what `docker run -it IMAGE` expects, and the service
/// command can be given at run time. Without a shell the config names no command.
pub(super) fn default_cmd(root: &Path) -> Option<Vec<String>> {
    // Nothing here follows a symlink: an absolute one (`bin -> /usr/bin`) would lead to the
    // host's files rather than the image's.
    let dir = RootDir::open(root, Links::Refuse).ok()?;
    let meta = |p: &str| dir.lstat(p.as_bytes()).ok();
    let is_dir = |p: &str| meta(p).is_some_and(|m| m.is_dir());
    let usr_sh = is_dir("/usr") && is_dir("/usr/bin") && meta("/usr/bin/sh").is_some();
    let bin_is_usr_bin = dir
        .node(b"/bin")
        .and_then(|n| n.read_link())
        .is_ok_and(|t| t == b"usr/bin" || t == b"/usr/bin");
    let shell = if (is_dir("/bin") && meta("/bin/sh").is_some()) || (bin_is_usr_bin && usr_sh) {
        "/bin/sh"
    } else if usr_sh {
        "/usr/bin/sh"
    } else {
        return None;
    };
    Some(vec![shell.to_string()])
}

/// What the image config says about the image.
pub(super) struct ConfigInput<'a> {
    pub platform: Platform,
    /// `sha256:HEX` of the uncompressed layer.
    pub diff_id: &'a str,
    /// RFC 3339 time of the build.
    pub created: &'a str,
    pub cmd: Option<Vec<String>>,
    /// The image's name, for the history entry.
    pub name: &'a str,
}

/// The image config, valid both as an OCI image config and as a docker image config.
pub(super) fn config(c: &ConfigInput<'_>) -> Vec<u8> {
    let mut run = json!({ "Env": [PATH_ENV] });
    if let Some(cmd) = &c.cmd {
        run["Cmd"] = json!(cmd);
    }
    let mut v = json!({
        "created": c.created,
        "architecture": c.platform.architecture,
        "os": "linux",
        "config": run,
        "rootfs": { "type": "layers", "diff_ids": [c.diff_id] },
        "history": [{
            "created": c.created,
            "created_by": format!("uforge: root tree of {}", c.name),
            "comment": "migrated machine, one layer",
        }],
    });
    if let Some(variant) = c.platform.variant {
        v["variant"] = json!(variant);
    }
    to_bytes(&v)
}

/// A content descriptor.
pub(super) fn descriptor(media_type: &str, digest: &str, size: u64) -> Value {
    json!({ "mediaType": media_type, "digest": digest, "size": size })
}

/// The OCI image manifest of one config and one layer (descriptors).
pub(super) fn manifest(config: Value, layer: Value) -> Vec<u8> {
    to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config,
        "layers": [layer],
    }))
}

/// The `index.json` of an OCI layout holding one manifest, tagged [`TAG`].
pub(super) fn index(manifest: Value, platform: Platform, name: &str) -> Vec<u8> {
    let mut m = manifest;
    m["annotations"] = json!({
        "org.opencontainers.image.ref.name": TAG,
        "org.opencontainers.image.title": name,
    });
    let mut p = json!({ "architecture": platform.architecture, "os": "linux" });
    if let Some(variant) = platform.variant {
        p["variant"] = json!(variant);
    }
    m["platform"] = p;
    to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [m],
    }))
}

/// The `oci-layout` file.
pub(super) fn oci_layout() -> Vec<u8> {
    to_bytes(&json!({ "imageLayoutVersion": "1.0.0" }))
}

/// docker's `manifest.json`: one image, its config file, tag and layer file.
pub(super) fn docker_manifest(config_file: &str, repo_tag: &str, layer_file: &str) -> Vec<u8> {
    to_bytes(&json!([{
        "Config": config_file,
        "RepoTags": [repo_tag],
        "Layers": [layer_file],
    }]))
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value always serializes")
}

/// A docker repository name from the image name: lowercase letters and digits in words
/// joined by `-` (the reference grammar refuses uppercase, and a `.` in the first component
/// would make it a registry host).
pub(super) fn repository(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(100);
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "uforge-image".to_string()
    } else {
        out.to_string()
    }
}

/// `secs` since the epoch as an RFC 3339 UTC time (`2024-05-01T12:00:00Z`).
pub(super) fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn architectures_map_to_oci_names() {
        let mut m = Machine::default();
        for (arch, want, variant) in [
            ("x86_64", "amd64", None),
            ("aarch64", "arm64", Some("v8")),
            ("armv7l", "arm", Some("v7")),
            ("i686", "386", None),
            ("ppc64le", "ppc64le", None),
        ] {
            m.arch = arch.into();
            let p = platform(&m).unwrap();
            assert_eq!((p.architecture, p.variant), (want, variant), "{arch}");
        }
        m.arch.clear();
        m.package_arch = Some("arm64".into());
        assert_eq!(platform(&m).unwrap().architecture, "arm64");
        m.package_arch = None;
        assert!(platform(&m).is_err());
        m.arch = "vax".into();
        let e = platform(&m).unwrap_err().to_string();
        assert!(e.contains("vax"), "{e}");
    }

    #[test]
    fn config_names_platform_layer_and_command() {
        let c = config(&ConfigInput {
            platform: Platform {
                architecture: "arm64",
                variant: Some("v8"),
            },
            diff_id: "sha256:00",
            created: "2024-01-01T00:00:00Z",
            cmd: Some(vec!["/bin/sh".into()]),
            name: "web01",
        });
        let v: Value = serde_json::from_slice(&c).unwrap();
        assert_eq!(v["architecture"], "arm64");
        assert_eq!(v["variant"], "v8");
        assert_eq!(v["os"], "linux");
        assert_eq!(v["rootfs"]["diff_ids"][0], "sha256:00");
        assert_eq!(v["config"]["Cmd"][0], "/bin/sh");
        assert_eq!(v["history"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn repository_names_follow_the_reference_grammar() {
        assert_eq!(repository("Web01.example.com"), "web01-example-com");
        assert_eq!(repository("--a__b--"), "a-b");
        assert_eq!(repository("été"), "t");
        assert_eq!(repository("!!!"), "uforge-image");
        assert_eq!(repository(&"x".repeat(300)).len(), 100);
    }

    #[test]
    fn default_command_is_a_shell_when_there_is_one() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(default_cmd(d.path()), None);
        std::fs::create_dir_all(d.path().join("usr/bin")).unwrap();
        std::fs::write(d.path().join("usr/bin/sh"), b"").unwrap();
        assert_eq!(default_cmd(d.path()), Some(vec!["/usr/bin/sh".to_string()]));
        std::os::unix::fs::symlink("usr/bin", d.path().join("bin")).unwrap();
        assert_eq!(default_cmd(d.path()), Some(vec!["/bin/sh".to_string()]));
    }
}
