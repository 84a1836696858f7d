//! Black-box migration end to end: real Debian roots scanned, rebuilt as images by the server
//! and by `uforge image build`, booted from their own disks with `qemu-system-x86_64` (BIOS
//! and OVMF UEFI), checked with `qemu-img`, `skopeo` and `umoci`, and compared with the scan
//! by `uforge image verify`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::live::{outside_tmp, Server};
use crate::util::*;

/// The token the fixtures' nginx page carries.
pub(crate) const TOKEN: &str = "uforge-token-7f3a9c";

pub(crate) fn uforge() -> Command {
    Command::new(Path::new(env!("CARGO_BIN_EXE_uforge-scan")).with_file_name("uforge"))
}

/// Runs a command and returns its parsed JSON standard output.
pub(crate) fn json_of(cmd: &mut Command) -> Value {
    let out = run_ok(cmd);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Report, analysis and overlay of a fixture, made with the local tools, in `dir`.
pub(crate) struct Scanned {
    pub(crate) report: PathBuf,
    pub(crate) analysis: PathBuf,
    pub(crate) overlay: PathBuf,
}

pub(crate) fn scan_fixture(root: &Path, dir: &Path) -> Scanned {
    let s = Scanned {
        report: dir.join("machine.report"),
        analysis: dir.join("analysis.json"),
        overlay: dir.join("overlay.tar"),
    };
    run_ok(
        scan_bin()
            .arg("scan")
            .arg("--root")
            .arg(root)
            .arg("-o")
            .arg(&s.report)
            .arg("-q"),
    );
    run_ok(
        scan_bin()
            .args(["analyze", "-q", "--repo", &mirror_line(), "--report"])
            .arg(&s.report)
            .arg("-o")
            .arg(&s.analysis),
    );
    run_ok(
        scan_bin()
            .args(["overlay", "-q", "--report"])
            .arg(&s.report)
            .arg("--analysis")
            .arg(&s.analysis)
            .arg("-o")
            .arg(&s.overlay),
    );
    s
}

/// `uforge image build` of a scanned fixture.
fn build(s: &Scanned, formats: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    build_from(s, &mirror_line(), formats, out, extra)
}

/// `uforge image build` of a scanned fixture from the repository `repo`.
fn build_from(
    s: &Scanned,
    repo: &str,
    formats: &str,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    uforge()
        .args([
            "--json", "image", "build", "--repo", repo, "--format", formats,
        ])
        .arg("--report")
        .arg(&s.report)
        .arg("--overlay")
        .arg(&s.overlay)
        .arg("--analysis")
        .arg(&s.analysis)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// `uforge image verify`: the unexplained differences, which must be none.
pub(crate) fn verify(image: &Path, report: &Path, log: Option<&Path>) -> Value {
    let mut c = uforge();
    c.args(["--json", "image", "verify"])
        .arg(image)
        .arg("--report")
        .arg(report);
    if let Some(l) = log {
        c.arg("--tuning-log").arg(l);
    }
    let out = c.output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert!(
        out.status.success(),
        "{} is not the scanned machine plus its tuning: {v:#}",
        image.display()
    );
    assert_eq!(v["unexplained"].as_array().unwrap().len(), 0, "{v:#}");
    assert_eq!(
        v["unexplained_packages"].as_array().unwrap().len(),
        0,
        "{v:#}"
    );
    assert!(v["entries"].as_u64().unwrap() > 5000, "{v}");
    v
}

/// `qemu-img info` of an image, in the given format (a fixed VHD has no header to probe).
fn qemu_info(image: &Path, format: &str) -> Value {
    json_of(
        Command::new("qemu-img")
            .args(["info", "--output=json", "-f", format])
            .arg(image),
    )
}

/// How QEMU runs guests: software emulation (TCG), unless `UFORGE_QEMU_ACCEL=kvm` asks for
/// KVM. A nested KVM can start a guest and then hang it once the kernel runs, which no quick
/// probe tells apart from a working one, so KVM is used only where it is known to work.
fn accel() -> Vec<&'static str> {
    match std::env::var("UFORGE_QEMU_ACCEL").as_deref() {
        Ok("kvm") => vec!["-accel", "kvm", "-cpu", "host"],
        _ => vec!["-accel", "tcg"],
    }
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on loopback `port`: the body of a 200 answer.
pub(crate) fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: web01\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")).then(|| body.to_string())
}

/// A virtual machine booted from an image's own disk, stopped when dropped.
pub(crate) struct Vm {
    child: Child,
    serial: PathBuf,
    pub(crate) port: u16,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Vm {
    /// Boots `image` (no `-kernel`: the image's bootloader), with the source's network
    /// (192.0.2.0/24, gateway .1) so its static address works, and the guest's port 80 at
    /// 192.0.2.10 forwarded to a loopback port.
    pub(crate) fn boot(image: &Path, format: &str, uefi: bool, dir: &Path) -> Vm {
        Vm::start(image, format, uefi, dir, true, "192.0.2.10")
    }

    /// Boots `image` like [`Vm::boot`], with the page of the guest at `address` forwarded;
    /// without `snapshot` what the guest writes stays on the image.
    pub(crate) fn start(
        image: &Path,
        format: &str,
        uefi: bool,
        dir: &Path,
        snapshot: bool,
        address: &str,
    ) -> Vm {
        let port = free_port();
        let serial = dir.join(format!("serial-{port}.log"));
        let mut c = Command::new("qemu-system-x86_64");
        c.args(accel())
            .args(["-m", "1024", "-smp", "2", "-display", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-drive")
            .arg(format!(
                "file={},format={format},if=virtio,snapshot={}",
                image.display(),
                if snapshot { "on" } else { "off" }
            ))
            .arg("-netdev")
            .arg(format!(
                "user,id=n0,net=192.0.2.0/24,host=192.0.2.1,dns=192.0.2.53,\
                 hostfwd=tcp:127.0.0.1:{port}-{address}:80"
            ))
            .args(["-device", "virtio-net-pci,netdev=n0"]);
        if uefi {
            let vars = dir.join(format!("vars-{port}.fd"));
            std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
            c.arg("-drive")
                .arg("if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd")
                .arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    vars.display()
                ));
        }
        let child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Vm {
            child,
            serial,
            port,
        }
    }

    pub(crate) fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// Waits until the guest serves its page and the custom unit has written its whole status
    /// page, and returns both.
    pub(crate) fn wait_served(&mut self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the VM stopped ({status}); console:\n{}", self.serial());
            }
            // The unit writes its page line by line: wait for the last one.
            if let (Some(page), Some(st)) =
                (http_get(self.port, "/"), http_get(self.port, "/status.txt"))
            {
                if st.lines().any(|l| l.starts_with("addresses=")) {
                    return (page, st);
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        panic!(
            "the VM served nothing in 10 minutes; console:\n{}",
            self.serial()
        );
    }
}

/// Boots an image and checks it behaves like the source machine: the page with the token,
/// the custom unit run, the host name and the static address of the source.
fn boots_like_the_source(image: &Path, format: &str, uefi: bool, dir: &Path) {
    let mut vm = Vm::boot(image, format, uefi, dir);
    let (page, status) = vm.wait_served();
    assert!(page.contains(TOKEN), "{page}");
    assert!(
        status.contains("acme agent 2.4.1"),
        "the unit did not run: {status}"
    );
    assert!(status.contains("hostname=web01"), "{status}");
    assert!(status.contains("addresses=192.0.2.10"), "{status}");
    let console = vm.serial();
    assert!(
        console.contains("web01 login:") || console.contains("acme-app"),
        "{console}"
    );
    if uefi {
        assert!(console.contains("BdsDxe"), "not booted by OVMF: {console}");
    }
}

#[test]
fn server_images_boot_on_bios_and_uefi() {
    let server = Server::start(None);
    let token = server.add_user("alice");
    let repo = server
        .client("alice", &token, &["repo", "add", &mirror_line()])
        .unwrap();
    let id = repo["id"].as_i64().unwrap().to_string();
    server
        .client("alice", &token, &["repo", "sync", &id])
        .unwrap();
    let root = fixture("bootable");
    let (out, _) = server.agent(&server.url, "alice", &token, "web01", &root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scans = server.client("alice", &token, &["scan", "list"]).unwrap();
    let scan = scans[0]["id"].as_i64().unwrap().to_string();

    let work = outside_tmp();
    let mut images = Vec::new();
    for format in ["qcow2", "raw"] {
        let job = server
            .client(
                "alice",
                &token,
                &["image", "generate", &scan, "--format", format, "--wait"],
            )
            .unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(job["status"], "done", "{job}");
        assert_eq!(job["target"], "kvm", "{job}");
        let id = job["id"].as_i64().unwrap().to_string();
        let file = work.path().join(format!("web01.{format}"));
        server
            .client(
                "alice",
                &token,
                &["image", "download", &id, "-o", file.to_str().unwrap()],
            )
            .unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            job["size"].as_u64().unwrap()
        );
        images.push((format, file));
    }
    let list = server.client("alice", &token, &["image", "list"]).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    let (_, qcow2) = &images[0];
    assert_eq!(qemu_info(qcow2, "qcow2")["format"], "qcow2");
    run_ok(Command::new("qemu-img").arg("check").arg(qcow2));
    boots_like_the_source(qcow2, "qcow2", false, work.path());
    let (_, raw) = &images[1];
    boots_like_the_source(raw, "raw", true, work.path());

    // The migration fidelity report: nothing differs from the scan but the logged tuning.
    let report = work.path().join("web01.report");
    run_ok(
        scan_bin()
            .arg("scan")
            .arg("--root")
            .arg(&root)
            .arg("-o")
            .arg(&report)
            .arg("-q"),
    );
    for (_, image) in &images {
        verify(image, &report, None);
    }
}

#[test]
fn kernel_is_injected_and_every_disk_format_is_written() {
    let work = outside_tmp();
    let s = scan_fixture(&fixture("drifted"), work.path());
    let dir = work.path().join("images");
    let out = build(&s, "qcow2,raw,vmdk,vhd,vhdx,vdi,ova", &dir, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    let qcow2 = dir.join("web01.qcow2");
    assert_eq!(Path::new(res["output"].as_str().unwrap()), qcow2);

    // The source has no kernel: the tuning installed one, and says so.
    let log: Value =
        serde_json::from_slice(&std::fs::read(dir.join("web01.qcow2.tuning-log.json")).unwrap())
            .unwrap();
    let packages = log["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "packages")
        .expect("a packages step");
    assert!(
        packages["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("linux-image-6.")),
        "{packages}"
    );
    assert!(packages["description"]
        .as_str()
        .unwrap()
        .contains("no kernel"));

    for (file, format) in [
        ("web01.qcow2", "qcow2"),
        ("web01.raw", "raw"),
        ("web01.vmdk", "vmdk"),
        ("web01.vhd", "vpc"),
        ("web01.vhdx", "vhdx"),
        ("web01.vdi", "vdi"),
    ] {
        let p = dir.join(file);
        let info = qemu_info(&p, format);
        assert_eq!(info["format"], format, "{file}: {info}");
        if format != "raw" && format != "vpc" {
            run_ok(Command::new("qemu-img").arg("check").arg(&p));
        }
        if format == "vpc" {
            let virtual_size = info["virtual-size"].as_u64().unwrap();
            assert_eq!(virtual_size % (1 << 20), 0, "Azure needs 1 MiB alignment");
            assert_eq!(
                std::fs::metadata(&p).unwrap().len(),
                virtual_size + 512,
                "fixed VHD"
            );
        }
        if format == "vmdk" {
            assert_eq!(
                info["format-specific"]["data"]["create-type"],
                "streamOptimized"
            );
        }
    }

    // The OVA: descriptor first, well formed, naming its disk with the right size.
    let ova = dir.join("web01.ova");
    let listing =
        String::from_utf8(run_ok(Command::new("tar").arg("-tvf").arg(&ova)).stdout).unwrap();
    let members: Vec<(&str, u64)> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (*f.last().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert!(members[0].0.ends_with(".ovf"), "{listing}");
    let (vmdk, vmdk_size) = *members.iter().find(|m| m.0.ends_with(".vmdk")).unwrap();
    let x = work.path().join("ova");
    std::fs::create_dir_all(&x).unwrap();
    run_ok(Command::new("tar").arg("-xf").arg(&ova).arg("-C").arg(&x));
    let ovf = x.join(members[0].0);
    run_ok(
        Command::new("python3")
            .args([
                "-c",
                "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); \
         f = d.getElementsByTagName('File')[0]; \
         print(f.getAttribute('ovf:href'), f.getAttribute('ovf:size'))",
            ])
            .arg(&ovf),
    );
    let text = std::fs::read_to_string(&ovf).unwrap();
    assert!(text.contains(&format!("ovf:href=\"{vmdk}\"")), "{text}");
    assert!(
        text.contains(&format!("ovf:size=\"{vmdk_size}\"")),
        "{text}"
    );
    run_ok(Command::new("qemu-img").arg("check").arg(x.join(vmdk)));

    boots_like_the_source(&qcow2, "qcow2", false, work.path());
    verify(&qcow2, &s.report, None);
    verify(&ova, &s.report, None);
}

#[test]
fn container_images_unpack_to_the_source() {
    let work = outside_tmp();
    let s = scan_fixture(&fixture("drifted"), work.path());
    let dir = work.path().join("trees");
    let out = build(&s, "oci,docker-archive,tar.gz", &dir, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["target"], "container", "{res}");
    let log = dir.join("web01.oci.tar.tuning-log.json");
    let steps: Vec<String> = serde_json::from_slice::<Value>(&std::fs::read(&log).unwrap())
        .unwrap()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    for not in ["packages", "bootloader", "fstab", "network", "initramfs"] {
        assert!(
            !steps.iter().any(|s| s == not),
            "a container got {not}: {steps:?}"
        );
    }

    // OCI layout: skopeo reads it, umoci unpacks it, and the root is the source's.
    let layout = work.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(dir.join("web01.oci.tar"))
            .arg("-C")
            .arg(&layout),
    );
    let inspect = json_of(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}", layout.display())),
    );
    assert_eq!(inspect["Architecture"], "amd64", "{inspect}");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1, "{inspect}");
    let bundle = work.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
    );
    verify(&bundle.join("rootfs"), &s.report, Some(&log));

    let docker = json_of(Command::new("skopeo").arg("inspect").arg(format!(
        "docker-archive:{}",
        dir.join("web01.docker.tar").display()
    )));
    assert_eq!(docker["Architecture"], "amd64", "{docker}");
    verify(&dir.join("web01.tar.gz"), &s.report, None);
}

#[test]
fn bad_image_requests_fail_clearly_and_leave_nothing() {
    let work = outside_tmp();
    let s = scan_fixture(&fixture("drifted"), work.path());
    let fail = |formats: &str, out: &Path, extra: &[&str]| -> String {
        let o = build(&s, formats, out, extra);
        assert!(!o.status.success(), "{formats} {extra:?} succeeded");
        assert!(!out.exists(), "{} left behind", out.display());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let out = work.path().join("web01.img");
    let e = fail("qcow3", &out, &[]);
    assert!(
        e.contains("unknown image format `qcow3`") && e.contains("qcow2"),
        "{e}"
    );
    let e = fail("qcow2", &out, &["--target", "mars"]);
    assert!(
        e.contains("unknown image target `mars`") && e.contains("openstack"),
        "{e}"
    );
    let e = fail("qcow2", &out, &["--target", "container"]);
    assert!(e.contains("container"), "{e}");

    // Only another release's suite: refused by name, never used for this release.
    let other = mirror_line().replace(" bookworm ", " bullseye ");
    let o = build_from(&s, &other, "qcow2", &out, &[]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no repository is of the scan's release") && e.contains("bullseye"),
        "{e}"
    );
    assert!(!out.exists());

    // A full disk: the build stops before writing anything.
    let small = work.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&small),
    );
    let out_small = small.join("web01.qcow2");
    let e = fail(
        "qcow2",
        &out_small,
        &["--work-dir", small.to_str().unwrap()],
    );
    let left: Vec<_> = std::fs::read_dir(&small).unwrap().collect();
    let _ = Command::new("umount").arg(&small).status();
    assert!(e.contains("not enough free space"), "{e}");
    assert!(left.is_empty(), "left behind: {left:?}");
}
