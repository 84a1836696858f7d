//! Disk formats checked with `qemu-img` itself: every output must pass `qemu-img check` where
//! the format has one, report the right format and virtual size, and hold the same sectors as
//! the raw disk (`qemu-img compare`).

use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::*;
use crate::image::Target;
use crate::model::{Machine, OsInfo};

const DISK: u64 = 64 << 20;
/// Where the test data lies, inside the GPT partition.
const DATA_AT: u64 = 10 << 20;

/// A sparse raw disk of `size` bytes with a GPT partition table and 1 MiB of data.
fn raw_disk(dir: &Path, size: u64) -> PathBuf {
    let path = dir.join("disk.raw");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(size).unwrap();
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8 ^ 0x5a).collect();
    f.write_all_at(&data, DATA_AT).unwrap();
    drop(f);
    let mut c = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run sfdisk");
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(b"label: gpt\n,,L\n")
        .unwrap();
    assert!(c.wait().unwrap().success(), "sfdisk failed");
    path
}

fn machine() -> Machine {
    Machine {
        arch: "x86_64".into(),
        os: OsInfo {
            id: Some("debian".into()),
            version_id: Some("12".into()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            ..OsInfo::default()
        },
        ..Machine::default()
    }
}

fn write(format: Format, disk: Option<&Path>, out: &Path, name: &str) -> crate::Result<()> {
    let m = machine();
    let staged = Staged {
        root: Path::new("/nonexistent"),
        disk,
        name,
        machine: &m,
        target: format.default_target(),
    };
    format.writer().write(&staged, out)
}

fn qemu_img(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new("qemu-img")
        .args(args)
        .output()
        .expect("run qemu-img")
}

/// `qemu-img info` of `path` read as `fmt` (a fixed VHD has no header, only a footer, so it
/// would be probed as raw).
fn info(path: &Path, fmt: &str) -> Value {
    let out = qemu_img(&[
        "info".as_ref(),
        "--output=json".as_ref(),
        "-f".as_ref(),
        fmt.as_ref(),
        path.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `qemu-img compare` of the raw disk with an image of format `fmt`: same guest-visible bytes.
fn assert_same_sectors(disk: &Path, image: &Path, fmt: &str) {
    let out = qemu_img(&[
        "compare".as_ref(),
        "-f".as_ref(),
        "raw".as_ref(),
        "-F".as_ref(),
        fmt.as_ref(),
        disk.as_os_str(),
        image.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{fmt}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_checks(image: &Path, fmt: &str) {
    let out = qemu_img(&[
        "check".as_ref(),
        "-f".as_ref(),
        fmt.as_ref(),
        image.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "qemu-img check {fmt}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_disk_format_holds_the_raw_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = raw_disk(dir.path(), DISK);
    for (format, qemu_name, checkable) in [
        (Format::Raw, "raw", false),
        (Format::Qcow2, "qcow2", true),
        (Format::Vmdk, "vmdk", true),
        (Format::Vhd, "vpc", false),
        (Format::Vhdx, "vhdx", true),
        (Format::Vdi, "vdi", true),
    ] {
        let out = dir.path().join(format!("out.{}", format.extension()));
        write(format, Some(&disk), &out, "web01").unwrap_or_else(|e| panic!("{format}: {e}"));
        let i = info(&out, qemu_name);
        assert_eq!(i["format"], qemu_name, "{format}: {i}");
        assert_eq!(i["virtual-size"], DISK, "{format}: {i}");
        if checkable {
            assert_checks(&out, qemu_name);
        }
        assert_same_sectors(&disk, &out, qemu_name);
        let meta = std::fs::metadata(&out).unwrap();
        match format {
            // Sparse: only the partition tables and the data are allocated.
            Format::Raw => {
                assert_eq!(meta.len(), DISK);
                assert!(meta.blocks() * 512 < 8 << 20, "raw is dense: {meta:?}");
            }
            Format::Qcow2 => assert!(meta.len() < 8 << 20, "qcow2 of {} bytes", meta.len()),
            Format::Vmdk => {
                assert_eq!(
                    i["format-specific"]["data"]["create-type"],
                    "streamOptimized"
                );
                assert!(meta.len() < 8 << 20, "vmdk of {} bytes", meta.len());
            }
            // Fixed: the raw sectors and a 512-byte footer.
            Format::Vhd => assert_eq!(meta.len(), DISK + 512),
            // Dynamic: only the data's blocks are allocated (VHDX files have holes in them).
            _ => assert!(
                meta.blocks() * 512 < 16 << 20,
                "{format} is dense: {meta:?}"
            ),
        }
    }
}

#[test]
fn disks_that_cannot_be_converted_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let disk = raw_disk(dir.path(), DISK + 512);
    let out = dir.path().join("out.vhd");
    let e = write(Format::Vhd, Some(&disk), &out, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("MiB") && e.contains("disk.raw"), "{e}");
    assert!(!out.exists());

    let e = write(Format::Qcow2, None, &out, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("raw disk"), "{e}");

    let missing = dir.path().join("missing.raw");
    let e = write(Format::Qcow2, Some(&missing), &out, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.raw"), "{e}");

    let odd = dir.path().join("odd.raw");
    std::fs::write(&odd, b"abc").unwrap();
    let e = write(Format::Raw, Some(&odd), &out, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sector"), "{e}");

    let e = DiskFormat(Format::Oci)
        .write(
            &Staged {
                root: dir.path(),
                disk: Some(&disk),
                name: "x",
                machine: &machine(),
                target: Target::Container,
            },
            &out,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a disk format"), "{e}");
}

/// What the OVF descriptor says, as read by Python's XML parser (which refuses a descriptor
/// that is not well formed).
fn parse_ovf(ovf: &[u8]) -> Value {
    let script = r#"
import json, sys
import xml.etree.ElementTree as ET
ns = {"ovf": "http://schemas.dmtf.org/ovf/envelope/1",
      "rasd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
      "vmw": "http://www.vmware.com/schema/ovf"}
O = "{%s}" % ns["ovf"]
root = ET.fromstring(sys.stdin.buffer.read())
f = root.find("ovf:References/ovf:File", ns)
d = root.find("ovf:DiskSection/ovf:Disk", ns)
vs = root.find("ovf:VirtualSystem", ns)
os_ = vs.find("ovf:OperatingSystemSection", ns)
items = []
for it in vs.findall("ovf:VirtualHardwareSection/ovf:Item", ns):
    items.append({c.tag.split("}")[1]: c.text for c in it})
print(json.dumps({
  "tag": root.tag,
  "href": f.get(O + "href"), "size": f.get(O + "size"), "file_id": f.get(O + "id"),
  "capacity": d.get(O + "capacity"), "units": d.get(O + "capacityAllocationUnits"),
  "file_ref": d.get(O + "fileRef"), "disk_format": d.get(O + "format"),
  "name": vs.find("ovf:Name", ns).text,
  "os_id": os_.get(O + "id"), "os_type": os_.get("{%s}osType" % ns["vmw"]),
  "product": vs.find("ovf:ProductSection/ovf:Product", ns).text,
  "items": items,
}))
"#;
    let mut c = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    use std::io::Write;
    c.stdin.take().unwrap().write_all(ovf).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OVF descriptor does not parse: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(ovf)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn ova_holds_descriptor_manifest_and_stream_optimized_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = raw_disk(dir.path(), DISK);
    let out = dir.path().join("web01.ova");
    write(Format::Ova, Some(&disk), &out, "web01 <prod>").unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "disk.raw" && n != "web01.ova")
        .collect();
    assert!(leftovers.is_empty(), "scratch files left: {leftovers:?}");

    // GNU tar reads it as a plain archive.
    let listing = Command::new("tar").arg("-tf").arg(&out).output().unwrap();
    assert!(listing.status.success());
    let names = String::from_utf8(listing.stdout).unwrap();
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "web01--prod.ovf",
            "web01--prod.mf",
            "web01--prod-disk1.vmdk"
        ]
    );

    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&out).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        assert_eq!(&e.header().as_bytes()[257..263], b"ustar\0", "not ustar");
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        members.push((name, data));
    }
    let (ovf, mf, vmdk) = (&members[0], &members[1], &members[2]);

    let d = parse_ovf(&ovf.1);
    assert_eq!(d["tag"], "{http://schemas.dmtf.org/ovf/envelope/1}Envelope");
    assert_eq!(d["href"], vmdk.0.as_str());
    assert_eq!(d["size"], vmdk.1.len().to_string());
    assert_eq!(d["file_ref"], d["file_id"]);
    assert_eq!(d["capacity"], DISK.to_string());
    assert_eq!(d["units"], "byte");
    assert!(d["disk_format"]
        .as_str()
        .unwrap()
        .ends_with("#streamOptimized"));
    assert_eq!(d["name"], "web01 <prod>");
    assert_eq!(d["os_id"], "96");
    assert_eq!(d["os_type"], "debian11_64Guest");
    assert_eq!(d["product"], "Debian GNU/Linux 12 (bookworm)");
    let item = |kind: &str| -> Value {
        d["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ResourceType"] == kind)
            .unwrap_or_else(|| panic!("no item of resource type {kind}: {d}"))
            .clone()
    };
    assert_eq!(item("3")["VirtualQuantity"], "2");
    assert_eq!(item("4")["VirtualQuantity"], "2048");
    assert_eq!(item("4")["AllocationUnits"], "byte * 2^20");
    assert_eq!(item("6")["ResourceSubType"], "lsilogic");
    assert_eq!(item("17")["Parent"], item("6")["InstanceID"]);
    assert_eq!(item("17")["HostResource"], "ovf:/disk/vmdisk1");
    assert_eq!(item("10")["ResourceSubType"], "VmxNet3");

    let mf = String::from_utf8(mf.1.clone()).unwrap();
    let lines: Vec<&str> = mf.lines().collect();
    assert_eq!(lines.len(), 2, "{mf}");
    for (line, (name, data)) in lines.iter().zip([ovf, vmdk]) {
        let want = format!("SHA256({name})= {}", hex(&Sha256::digest(data)));
        assert_eq!(*line, want);
    }

    let vmdk_path = dir.path().join("back.vmdk");
    std::fs::write(&vmdk_path, &vmdk.1).unwrap();
    assert_checks(&vmdk_path, "vmdk");
    assert_same_sectors(&disk, &vmdk_path, "vmdk");
    let i = info(&vmdk_path, "vmdk");
    assert_eq!(
        i["format-specific"]["data"]["create-type"],
        "streamOptimized"
    );
    assert_eq!(i["virtual-size"], DISK);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
