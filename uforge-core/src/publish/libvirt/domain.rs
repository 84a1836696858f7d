//! The domain XML of a provisioned machine: the image's volume on a virtio disk, a virtio
//! NIC, BIOS or UEFI (secure boot off, so an unsigned GRUB boots), q35, a serial console.

use super::super::hardware::Firmware;
use super::super::target::LibvirtNetwork;
use crate::image::convert::ova::xml_escape as esc;

/// What the domain is made of.
pub(crate) struct Domain<'a> {
    pub name: &'a str,
    pub domain_type: &'a str,
    pub memory_mib: u64,
    pub cpus: u32,
    pub firmware: Firmware,
    pub pool: &'a str,
    pub volume: &'a str,
    /// `qcow2` or `raw`.
    pub disk_format: &'a str,
    pub network: &'a LibvirtNetwork,
}

impl Domain<'_> {
    /// The XML `virsh define` takes.
    pub(crate) fn xml(&self) -> String {
        let os = match self.firmware {
            Firmware::Uefi => {
                "<os firmware='efi'>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    \
                 <firmware>\n      <feature enabled='no' name='secure-boot'/>\n      \
                 <feature enabled='no' name='enrolled-keys'/>\n    </firmware>\n    \
                 <boot dev='hd'/>\n  </os>"
            }
            _ => "<os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n    <boot dev='hd'/>\n  </os>",
        };
        // Software emulation has no host CPU to pass through.
        let cpu = if self.domain_type == "kvm" {
            "<cpu mode='host-passthrough'/>"
        } else {
            "<cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>"
        };
        let (iface, ns, cmdline) = match self.network {
            LibvirtNetwork::Network { name } => (
                format!(
                    "<interface type='network'>\n      <source network='{}'/>\n      \
                     <model type='virtio'/>\n    </interface>",
                    esc(name)
                ),
                "",
                String::new(),
            ),
            LibvirtNetwork::Bridge { name } => (
                format!(
                    "<interface type='bridge'>\n      <source bridge='{}'/>\n      \
                     <model type='virtio'/>\n    </interface>",
                    esc(name)
                ),
                "",
                String::new(),
            ),
            // libvirt 9's own user-mode interface cannot forward ports without passt, so the
            // NIC is QEMU's: on its command line, with the forwards.
            LibvirtNetwork::User { net, forwards } => {
                let mut netdev = "user,id=ufnet0".to_string();
                if let Some(n) = net {
                    netdev.push_str(&format!(",net={n}"));
                }
                for f in forwards {
                    netdev.push_str(&format!(",hostfwd={f}"));
                }
                (
                    String::new(),
                    " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'",
                    format!(
                        "  <qemu:commandline>\n    <qemu:arg value='-netdev'/>\n    \
                         <qemu:arg value='{}'/>\n    <qemu:arg value='-device'/>\n    \
                         <qemu:arg value='virtio-net-pci,netdev=ufnet0,bus=pcie.0,addr=0x10'/>\n  \
                         </qemu:commandline>\n",
                        esc(&netdev)
                    ),
                )
            }
        };
        format!(
            "<domain type='{dtype}'{ns}>\n  <name>{name}</name>\n  \
             <memory unit='MiB'>{mem}</memory>\n  <vcpu>{cpus}</vcpu>\n  {os}\n  \
             <features><acpi/><apic/></features>\n  {cpu}\n  <clock offset='utc'/>\n  \
             <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  \
             <on_crash>destroy</on_crash>\n  <devices>\n    \
             <disk type='volume' device='disk'>\n      \
             <driver name='qemu' type='{fmt}'/>\n      \
             <source pool='{pool}' volume='{vol}'/>\n      \
             <target dev='vda' bus='virtio'/>\n    </disk>\n    {iface}\n    \
             <serial type='pty'><target port='0'/></serial>\n    \
             <console type='pty'><target type='serial' port='0'/></console>\n    \
             <memballoon model='virtio'/>\n  </devices>\n{cmdline}</domain>\n",
            dtype = esc(self.domain_type),
            name = esc(self.name),
            mem = self.memory_mib,
            cpus = self.cpus,
            fmt = esc(self.disk_format),
            pool = esc(self.pool),
            vol = esc(self.volume),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_of_each_network_and_firmware() {
        let user = LibvirtNetwork::User {
            net: Some("192.0.2.0/24".into()),
            forwards: vec!["tcp:127.0.0.1:8080-192.0.2.10:80".into()],
        };
        let d = Domain {
            name: "web<01>",
            domain_type: "qemu",
            memory_mib: 1024,
            cpus: 2,
            firmware: Firmware::Uefi,
            pool: "p",
            volume: "web01.qcow2",
            disk_format: "qcow2",
            network: &user,
        };
        let x = d.xml();
        assert!(x.contains("<name>web&lt;01&gt;</name>"), "{x}");
        assert!(x.contains("firmware='efi'") && x.contains("name='secure-boot'"));
        assert!(
            x.contains("user,id=ufnet0,net=192.0.2.0/24,hostfwd=tcp:127.0.0.1:8080-192.0.2.10:80")
        );
        assert!(x.contains("<vcpu>2</vcpu>") && x.contains("qemu64"));
        let net = LibvirtNetwork::Network {
            name: "default".into(),
        };
        let x = Domain {
            firmware: Firmware::Bios,
            domain_type: "kvm",
            network: &net,
            ..d
        }
        .xml();
        assert!(!x.contains("efi") && x.contains("host-passthrough"));
        assert!(x.contains("<source network='default'/>") && !x.contains("qemu:commandline"));
    }
}
