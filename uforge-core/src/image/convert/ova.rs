//! The OVA package: a ustar archive of an OVF 1.0 descriptor, a manifest and a stream-optimized
//! VMDK, in that order (readers that stream an OVA need the descriptor first).
//!
//! The virtual machine: 2 vCPUs, 2048 MiB of memory, an LSI Logic SCSI controller with the
//! disk, one VMXNET3 network adapter on the network `VM Network`, and the guest OS from the
//! scan. A scan does not record the machine's CPU count or memory; these are modest values a
//! server boots with, changed after import like any VM setting.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{convert, VMDK_OPTIONS};
use crate::image::container::{hex, Archive, Scratch};
use crate::image::Staged;
use crate::model::OsInfo;
use crate::{Error, Result};

const CPUS: u32 = 2;
const MEMORY_MIB: u32 = 2048;

/// Writes the OVA of the raw disk `disk` (`size` bytes) to `out`.
pub(super) fn write(staged: &Staged<'_>, disk: &Path, size: u64, out: &Path) -> Result<()> {
    let base = file_base(staged.name);
    let vmdk = Scratch::beside(out, "disk1.vmdk");
    convert(disk, &vmdk.0, "vmdk", VMDK_OPTIONS)?;
    let (vmdk_size, vmdk_sha) = size_and_sha256(&vmdk.0)?;

    let vmdk_name = format!("{base}-disk1.vmdk");
    let ovf_name = format!("{base}.ovf");
    let ovf = descriptor(&Descriptor {
        name: staged.name,
        id: &base,
        vmdk: &vmdk_name,
        vmdk_size,
        capacity: size,
        os: &staged.machine.os,
    });
    let manifest = format!(
        "SHA256({ovf_name})= {}\nSHA256({vmdk_name})= {}\n",
        hex(&Sha256::digest(ovf.as_bytes())),
        hex(&vmdk_sha)
    );

    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut a = Archive::create(out, mtime)?;
    a.file(&ovf_name, ovf.as_bytes())?;
    a.file(&format!("{base}.mf"), manifest.as_bytes())?;
    let f = File::open(&vmdk.0).map_err(|e| Error::io("open", &vmdk.0, e))?;
    a.copy(
        &vmdk_name,
        vmdk_size,
        BufReader::with_capacity(1 << 20, f),
        &vmdk.0,
    )?;
    a.finish()
}

fn size_and_sha256(path: &Path) -> Result<(u64, [u8; 32])> {
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", path, e)),
        };
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, h.finalize().into()))
}

/// The base of the member names: the image name restricted to characters every OVF tool and
/// file system takes.
fn file_base(name: &str) -> String {
    crate::image::naming::safe_name(name).unwrap_or_else(|| "uforge-image".to_string())
}

/// How the guest OS is named: the CIM operating system type (`ovf:id`), VMware's guest id
/// and a description.
fn guest_os(os: &OsInfo) -> (u32, &'static str, String) {
    let major = os
        .version_id
        .as_deref()
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse::<u32>().ok());
    let id = os.id.as_deref().unwrap_or("");
    let like = |family: &str| id == family || os.id_like.iter().any(|l| l == family);
    let (cim, vmw) = if id == "debian" {
        // Debian 12 runs as well under the Debian 11 id, which hosts from ESXi 7.0 U2 know;
        // the Debian 12 id needs ESXi 8.
        let vmw = match major {
            Some(..=8) => "debian8_64Guest",
            Some(9) => "debian9_64Guest",
            Some(10) => "debian10_64Guest",
            _ => "debian11_64Guest",
        };
        (96, vmw)
    } else if id == "ubuntu" {
        (94, "ubuntu64Guest")
    } else if like("debian") {
        (96, "debian11_64Guest")
    } else if id == "centos" {
        (107, "centos8_64Guest")
    } else if like("rhel") || like("fedora") {
        let vmw = match major {
            Some(..=7) => "rhel7_64Guest",
            Some(8) => "rhel8_64Guest",
            _ => "rhel9_64Guest",
        };
        (80, vmw)
    } else if like("suse") || like("sles") {
        (85, "sles15_64Guest")
    } else {
        (101, "other4xLinux64Guest")
    };
    let description = os
        .pretty_name
        .clone()
        .unwrap_or_else(|| "Linux 64-bit".to_string());
    (cim, vmw, description)
}

/// What the descriptor describes.
struct Descriptor<'a> {
    /// The image name, shown as the VM's name.
    name: &'a str,
    /// The VM's id (`file_base` of the name).
    id: &'a str,
    /// The VMDK member's name and size.
    vmdk: &'a str,
    vmdk_size: u64,
    /// The disk's virtual size in bytes.
    capacity: u64,
    os: &'a OsInfo,
}

/// The OVF 1.0 descriptor. Hardware items list their RASD elements in the schema's
/// (alphabetical) order, which strict validators such as ovftool check.
fn descriptor(d: &Descriptor<'_>) -> String {
    let (cim, vmw_os, os_description) = guest_os(d.os);
    let name = xml_escape(d.name);
    let id = xml_escape(d.id);
    let vmdk = xml_escape(d.vmdk);
    let os_description = xml_escape(&os_description);
    let product = xml_escape(d.os.pretty_name.as_deref().unwrap_or(d.name));
    let version = xml_escape(d.os.version_id.as_deref().unwrap_or(""));
    let (vmdk_size, capacity) = (d.vmdk_size, d.capacity);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{vmdk}" ovf:id="file1" ovf:size="{vmdk_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{id}">
    <Info>A migrated machine</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="{cim}" vmw:osType="{vmw_os}">
      <Info>The kind of installed guest operating system</Info>
      <Description>{os_description}</Description>
    </OperatingSystemSection>
    <ProductSection>
      <Info>The software installed on the machine</Info>
      <Product>{product}</Product>
      <Version>{version}</Version>
    </ProductSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{id}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>{CPUS} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{CPUS}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory size</rasd:Description>
        <rasd:ElementName>{MEMORY_MIB}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{MEMORY_MIB}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on "VM Network"</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

/// XML text with `&`, `<`, `>`, `"` and `'` escaped.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot hold other control characters at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe() {
        assert_eq!(file_base("web01.example.com"), "web01.example.com");
        assert_eq!(file_base("../etc/x y"), "etc-x-y");
        assert_eq!(file_base(""), "uforge-image");
        assert_eq!(xml_escape("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos; ");
    }

    #[test]
    fn guest_os_follows_os_release() {
        let os = |id: &str, v: &str, like: &[&str]| OsInfo {
            id: Some(id.into()),
            version_id: Some(v.into()),
            id_like: like.iter().map(|s| s.to_string()).collect(),
            ..OsInfo::default()
        };
        assert_eq!(guest_os(&os("debian", "10", &[])).1, "debian10_64Guest");
        assert_eq!(guest_os(&os("debian", "12", &[])).0, 96);
        assert_eq!(guest_os(&os("debian", "12", &[])).1, "debian11_64Guest");
        assert_eq!(
            guest_os(&os("ubuntu", "22.04", &["debian"])).1,
            "ubuntu64Guest"
        );
        assert_eq!(
            guest_os(&os("rocky", "9.3", &["rhel", "centos", "fedora"])).1,
            "rhel9_64Guest"
        );
        assert_eq!(guest_os(&os("alpine", "3.19", &[])).0, 101);
    }
}
