//! Netplan: `/etc/netplan/*.yaml`.

use yaml_rust2::{Yaml, YamlLoader};

use super::push_unique;
use crate::facts::rootfs::{child, lossy, RootFs};
use crate::model::{NetMethod, NetworkInterface};

/// Device kinds that carry addressing; ids are unique across them.
const KINDS: [&str; 5] = ["ethernets", "bonds", "bridges", "vlans", "wifis"];

/// Files are merged in name order, a later file overriding the keys it repeats, as netplan does.
pub(super) fn gather(fs: &mut RootFs) -> Vec<NetworkInterface> {
    // (id, merged definition, last file that touched it), in order of first appearance.
    let mut defs: Vec<(String, Yaml, Vec<u8>)> = Vec::new();
    for name in fs.list(b"/etc/netplan") {
        if !name.ends_with(b".yaml") {
            continue;
        }
        let path = child(b"/etc/netplan", &name);
        let Some(text) = fs.read(&path) else {
            continue;
        };
        let docs = match YamlLoader::load_from_str(&String::from_utf8_lossy(&text)) {
            Ok(d) => d,
            Err(e) => {
                fs.error(&path, format!("invalid YAML: {e}"));
                continue;
            }
        };
        let Some(network) = docs.first().map(|d| &d["network"]) else {
            continue;
        };
        for kind in KINDS {
            let Some(devices) = network[kind].as_hash() else {
                continue;
            };
            for (id, def) in devices {
                let Some(id) = scalar(id) else {
                    continue;
                };
                match defs.iter_mut().find(|(i, _, _)| *i == id) {
                    Some((_, old, file)) => {
                        merge(old, def);
                        file.clone_from(&path);
                    }
                    None => defs.push((id, def.clone(), path.clone())),
                }
            }
        }
    }
    defs.into_iter()
        .map(|(id, def, file)| interface(id, &def, &file))
        .collect()
}

/// Mappings merge key by key; anything else is replaced.
fn merge(into: &mut Yaml, from: &Yaml) {
    match (into, from) {
        (Yaml::Hash(a), Yaml::Hash(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(old) => merge(old, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

fn interface(id: String, def: &Yaml, file: &[u8]) -> NetworkInterface {
    let mut iface = NetworkInterface {
        name: scalar(&def["set-name"]).unwrap_or(id),
        source: "netplan".to_string(),
        file: lossy(file),
        mac: scalar(&def["match"]["macaddress"]).or_else(|| scalar(&def["macaddress"])),
        ..NetworkInterface::default()
    };
    for addr in def["addresses"].as_vec().into_iter().flatten() {
        // An address with options is a one-key mapping: `- 10.0.0.5/24: {label: x}`.
        let addr = match addr.as_hash() {
            Some(h) => h.keys().next().and_then(scalar),
            None => scalar(addr),
        };
        push_unique(&mut iface.addresses, addr);
    }
    let dhcp = ["dhcp4", "dhcp6"].iter().any(|k| truthy(&def[*k]));
    iface.method = if !iface.addresses.is_empty() {
        NetMethod::Static
    } else if dhcp {
        NetMethod::Dhcp
    } else {
        NetMethod::Manual
    };
    let default_route = def["routes"].as_vec().into_iter().flatten().find_map(|r| {
        let to = scalar(&r["to"])?;
        matches!(to.as_str(), "default" | "0.0.0.0/0" | "::/0")
            .then(|| scalar(&r["via"]))
            .flatten()
    });
    iface.gateway = scalar(&def["gateway4"])
        .or_else(|| scalar(&def["gateway6"]))
        .or(default_route);
    let dns = def["nameservers"]["addresses"]
        .as_vec()
        .into_iter()
        .flatten();
    push_unique(&mut iface.dns, dns.filter_map(scalar));
    iface
}

fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Netplan accepts YAML 1.1 booleans, which a YAML 1.2 parser leaves as strings.
fn truthy(y: &Yaml) -> bool {
    match y {
        Yaml::Boolean(b) => *b,
        Yaml::String(s) => matches!(s.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "y"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn files_merge_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("etc/netplan");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("50-cloud-init.yaml"),
            "network:\n  version: 2\n  ethernets:\n    eth0:\n      match:\n        \
             macaddress: \"52:54:00:aa:bb:cc\"\n      set-name: ens3\n      dhcp4: true\n    \
             eth1:\n      dhcp6: yes\n  bonds:\n    bond0:\n      addresses: [10.0.0.5/24]\n",
        )
        .unwrap();
        fs::write(
            dir.join("90-override.yaml"),
            "network:\n  ethernets:\n    eth0:\n      addresses:\n        - 192.0.2.7/24\n        \
             - \"2001:db8::7/64\":\n            lifetime: 0\n      routes:\n        - to: 10.9.0.0/16\n          \
             via: 192.0.2.9\n        - to: default\n          via: 192.0.2.1\n      nameservers:\n        \
             addresses: [192.0.2.53, \"2001:db8::53\"]\n",
        )
        .unwrap();
        fs::write(dir.join("99-broken.yaml"), "network: [unclosed\n").unwrap();
        fs::write(dir.join("README"), "not yaml").unwrap();
        let mut rfs = RootFs::new(tmp.path());
        let ifs = gather(&mut rfs);
        assert_eq!(ifs.len(), 3);
        let ens3 = &ifs[0];
        assert_eq!(ens3.name, "ens3");
        assert_eq!(ens3.file, "/etc/netplan/90-override.yaml");
        assert_eq!(ens3.method, NetMethod::Static);
        assert_eq!(ens3.addresses, ["192.0.2.7/24", "2001:db8::7/64"]);
        assert_eq!(ens3.gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(ens3.dns, ["192.0.2.53", "2001:db8::53"]);
        assert_eq!(ens3.mac.as_deref(), Some("52:54:00:aa:bb:cc"));
        assert_eq!(
            (ifs[1].name.as_str(), ifs[1].method),
            ("eth1", NetMethod::Dhcp)
        );
        assert_eq!(
            (ifs[2].name.as_str(), ifs[2].method),
            ("bond0", NetMethod::Static)
        );
        assert_eq!(rfs.errors.len(), 1);
        assert_eq!(rfs.errors[0].path, b"/etc/netplan/99-broken.yaml");
    }
}
