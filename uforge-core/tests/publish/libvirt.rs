//! The libvirt target against a private libvirtd: a bootable qcow2 uploaded into a pool and
//! started as a TCG domain with a virtio disk and NIC and a forwarded port; the guest boots
//! and serves its page; then it is destroyed and the volume deleted. A pool on a tiny tmpfs
//! is full; a missing socket is unreachable.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use uforge_core::image::Format;
use uforge_core::progress::NoProgress;
use uforge_core::publish::{
    self, Credentials, ErrorKind, Firmware, InstanceSpec, LibvirtNetwork, LibvirtTarget,
    PublishRequest, TargetSpec,
};
use uforge_test_support::services::{guest_image, Service};

use crate::util::Counter;

fn virsh(uri: &str, args: &[&str]) -> String {
    let out = Command::new("virsh")
        .arg("-q")
        .arg("-c")
        .arg(uri)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn http_get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: guest\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

#[test]
fn libvirt_provisions_a_guest_that_boots_and_serves() {
    let image = guest_image();
    let work = tempfile::Builder::new()
        .prefix("uforge-lvpub-")
        .tempdir_in("/var/tmp")
        .unwrap();
    // The tiny pool's tmpfs is mounted before libvirtd starts, so its namespace has it.
    let tiny = work.path().join("tiny");
    std::fs::create_dir(&tiny).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&tiny)
        .status()
        .unwrap()
        .success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(tiny.clone());
    let lv = Service::start(
        "libvirt",
        &[("LIBVIRT_CACHE_DIR", "/var/cache/uforge-tools/libvirt-cache")],
    );
    let uri = lv.get("LIBVIRT_URI").to_string();
    let pool = work.path().join("pool");
    std::fs::create_dir(&pool).unwrap();
    for (name, dir) in [("uf", &pool), ("tiny", &tiny)] {
        virsh(
            &uri,
            &[
                "pool-define-as",
                name,
                "dir",
                "--target",
                dir.to_str().unwrap(),
            ],
        );
        virsh(&uri, &["pool-start", name]);
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let forward = format!("tcp:127.0.0.1:{port}-:80");
    let spec = TargetSpec::Libvirt(LibvirtTarget {
        uri: uri.clone(),
        pool: "uf".into(),
        network: LibvirtNetwork::User {
            net: None,
            forwards: vec![forward.clone()],
        },
        domain_type: "qemu".into(),
    });
    let mut req = PublishRequest::new(&image, Format::Qcow2);
    req.name = Some("guest.qcow2".into());
    req.instance = Some(InstanceSpec {
        name: Some("uf-guest".into()),
        memory_mib: 1024,
        cpus: 2,
        firmware: Firmware::Auto,
    });
    let counter = Counter::new();
    let p = publish::publish(&spec, Credentials::None, &req, &counter).unwrap();
    let size = std::fs::metadata(&image).unwrap().len();
    assert_eq!((p.size, p.sent, counter.sent()), (size, size, size));
    assert_eq!(p.location, "uf/guest.qcow2");
    let inst = p.instance.clone().unwrap();
    // The image boots both ways; BIOS is picked when it can.
    assert_eq!(inst.firmware, Firmware::Bios);
    assert_eq!(inst.forwards, vec![forward]);
    assert_eq!(
        std::fs::read(pool.join("guest.qcow2")).unwrap(),
        std::fs::read(&image).unwrap()
    );
    let info = virsh(&uri, &["dominfo", "uf-guest"]);
    assert!(info.contains("running"), "{info}");
    assert!(
        info.contains("1048576 KiB")
            && info
                .lines()
                .any(|l| l.starts_with("CPU(s):") && l.ends_with(" 2")),
        "{info}"
    );
    let xml = virsh(&uri, &["dumpxml", "uf-guest"]);
    assert!(
        xml.contains("bus='virtio'") && xml.contains("virtio-net-pci"),
        "{xml}"
    );

    let deadline = Instant::now() + Duration::from_secs(420);
    let mut page = None;
    while Instant::now() < deadline && page.is_none() {
        page = http_get(port).filter(|b| b.contains("uforge-guest-ok"));
        std::thread::sleep(Duration::from_secs(2));
    }
    let log = std::fs::read_to_string(
        std::path::Path::new(lv.get("LIBVIRT_QEMU_LOG_DIR")).join("uf-guest.log"),
    )
    .unwrap_or_default();
    assert!(
        page.is_some(),
        "the guest served nothing on port {port}; qemu log:\n{log}"
    );

    publish::publisher(&spec, Credentials::None)
        .unwrap()
        .delete(&p)
        .unwrap();
    assert!(!virsh(&uri, &["list", "--all", "--name"]).contains("uf-guest"));
    assert!(!pool.join("guest.qcow2").exists());
    assert!(http_get(port).is_none());

    // A full pool: a clear error, and no volume left behind.
    let full = TargetSpec::Libvirt(LibvirtTarget {
        uri: uri.clone(),
        pool: "tiny".into(),
        network: LibvirtNetwork::Network {
            name: "default".into(),
        },
        domain_type: "qemu".into(),
    });
    let mut req = PublishRequest::new(&image, Format::Qcow2);
    req.retries = 0;
    let e = publish::publish(&full, Credentials::None, &req, &NoProgress).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoSpace, "{e}");
    assert!(e.to_string().starts_with(&full.display()), "{e}");
    assert!(virsh(&uri, &["vol-list", "tiny"]).trim().is_empty());

    // No daemon behind the socket.
    let gone = TargetSpec::Libvirt(LibvirtTarget {
        uri: format!("qemu:///system?socket={}/none", work.path().display()),
        pool: "uf".into(),
        network: LibvirtNetwork::Network {
            name: "default".into(),
        },
        domain_type: "qemu".into(),
    });
    let e = publish::publish(&gone, Credentials::None, &req, &NoProgress).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
}
