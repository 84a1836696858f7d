//! Red Hat (`/etc/sysconfig/network-scripts`) and SUSE (`/etc/sysconfig/network`) `ifcfg-*`
//! files.

use super::{cidr, push_unique};
use crate::facts::rootfs::{child, lossy, RootFs};
use crate::facts::shellvars::ShellVars;
use crate::model::{NetMethod, NetworkInterface};

const DIRS: [&[u8]; 2] = [b"/etc/sysconfig/network-scripts", b"/etc/sysconfig/network"];

/// Suffixes of copies that the network scripts skip.
const IGNORED: [&str; 7] = ["~", ".bak", ".orig", ".old", ".rpmnew", ".rpmsave", ".swp"];

/// One entry per `ifcfg-*` file.
pub(super) fn gather(fs: &mut RootFs) -> Vec<NetworkInterface> {
    let mut out = Vec::new();
    for dir in DIRS {
        for name in fs.list(dir) {
            let Some(suffix) = name.strip_prefix(b"ifcfg-").map(lossy) else {
                continue;
            };
            let path = child(dir, &name);
            if suffix.is_empty() || IGNORED.iter().any(|s| suffix.ends_with(s)) {
                continue;
            }
            if let Some(text) = fs.read(&path) {
                out.push(interface(&ShellVars::parse(&text), suffix, &path));
            }
        }
    }
    out
}

/// Keys `base`, `base0`, `base1`... (and SUSE's `base_label`) in a stable order, with the
/// suffix that pairs each with its `PREFIX`/`NETMASK`.
fn numbered<'v>(v: &'v ShellVars, base: &str) -> Vec<(String, &'v str)> {
    let mut found: Vec<(String, &str)> = v
        .keys()
        .filter_map(|k| {
            let rest = k.strip_prefix(base)?;
            let ok = rest.chars().all(|c| c.is_ascii_digit()) || rest.starts_with('_');
            Some((rest.to_string(), v.get(k)?)).filter(|_| ok)
        })
        .collect();
    // Plain key first, then numeric order, then labels.
    found.sort_by_key(|(s, _)| {
        (
            !s.is_empty(),
            s.parse::<u32>().unwrap_or(u32::MAX),
            s.clone(),
        )
    });
    found
}

fn interface(v: &ShellVars, suffix: String, path: &[u8]) -> NetworkInterface {
    let name = v.string("DEVICE").unwrap_or(suffix);
    let mut iface = NetworkInterface {
        source: "ifcfg".to_string(),
        file: lossy(path),
        gateway: v.string("GATEWAY"),
        mac: v.string("HWADDR").or_else(|| v.string("MACADDR")),
        ..NetworkInterface::default()
    };
    for (n, addr) in numbered(v, "IPADDR") {
        let mask = v
            .get(&format!("PREFIX{n}"))
            .or_else(|| v.get(&format!("PREFIXLEN{n}")))
            .or_else(|| v.get(&format!("NETMASK{n}")));
        push_unique(&mut iface.addresses, [cidr(addr, mask)]);
    }
    let v6 = v.get("IPV6ADDR").into_iter().chain(
        v.get("IPV6ADDR_SECONDARIES")
            .unwrap_or_default()
            .split_whitespace(),
    );
    push_unique(&mut iface.addresses, v6.map(str::to_string));
    push_unique(
        &mut iface.dns,
        numbered(v, "DNS").into_iter().map(|(_, d)| d.to_string()),
    );
    let proto = v.get("BOOTPROTO").unwrap_or("none").to_ascii_lowercase();
    iface.method = if name == "lo" {
        NetMethod::Loopback
    } else if proto.starts_with("dhcp") || proto == "bootp" {
        NetMethod::Dhcp
    } else if proto == "auto6" {
        NetMethod::Auto
    } else if !iface.addresses.is_empty() {
        NetMethod::Static
    } else {
        NetMethod::Manual
    };
    iface.name = name;
    iface
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn redhat_and_suse() {
        let tmp = tempfile::tempdir().unwrap();
        let rh = tmp.path().join("etc/sysconfig/network-scripts");
        let suse = tmp.path().join("etc/sysconfig/network");
        fs::create_dir_all(&rh).unwrap();
        fs::create_dir_all(&suse).unwrap();
        fs::write(
            rh.join("ifcfg-eth0"),
            "TYPE=Ethernet\nBOOTPROTO=none\nDEVICE=\"eth0\"\nIPADDR=192.0.2.10\n\
             NETMASK=255.255.255.0\nIPADDR1='192.0.2.11'\nPREFIX1=25\nGATEWAY=192.0.2.1\n\
             DNS2=192.0.2.54\nDNS1=192.0.2.53\nHWADDR=52:54:00:00:00:0a\n\
             IPV6ADDR=2001:db8::10/64\n",
        )
        .unwrap();
        fs::write(rh.join("ifcfg-eth1"), "BOOTPROTO=dhcp\nONBOOT=yes\n").unwrap();
        fs::write(
            rh.join("ifcfg-lo"),
            "DEVICE=lo\nIPADDR=127.0.0.1\nNETMASK=255.0.0.0\n",
        )
        .unwrap();
        fs::write(rh.join("ifcfg-eth0.bak"), "BOOTPROTO=dhcp\n").unwrap();
        fs::write(
            suse.join("ifcfg-eth2"),
            "BOOTPROTO='static'\nIPADDR='10.0.0.2/16'\nIPADDR_2='10.0.0.3'\nPREFIXLEN=''\n",
        )
        .unwrap();
        let mut rfs = RootFs::new(tmp.path());
        let ifs = gather(&mut rfs);
        let names: Vec<_> = ifs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "eth1", "lo", "eth2"]);
        let e0 = &ifs[0];
        assert_eq!(e0.method, NetMethod::Static);
        assert_eq!(
            e0.addresses,
            ["192.0.2.10/24", "192.0.2.11/25", "2001:db8::10/64"]
        );
        assert_eq!(e0.gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(e0.dns, ["192.0.2.53", "192.0.2.54"]);
        assert_eq!(e0.mac.as_deref(), Some("52:54:00:00:00:0a"));
        assert_eq!(e0.file, "/etc/sysconfig/network-scripts/ifcfg-eth0");
        assert_eq!(ifs[1].method, NetMethod::Dhcp);
        assert_eq!(ifs[2].method, NetMethod::Loopback);
        assert_eq!(ifs[3].addresses, ["10.0.0.2/16", "10.0.0.3"]);
        assert_eq!(ifs[3].method, NetMethod::Static);
    }
}
