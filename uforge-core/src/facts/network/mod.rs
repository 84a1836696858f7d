//! Network configuration, one reader per configuration system. Several systems may be
//! configured at once (and disagree); every entry is kept so the reader of the report sees
//! what each would do.

mod ifcfg;
mod ifupdown;
mod ini;
mod netplan;
mod networkd;
mod networkmanager;

use super::rootfs::RootFs;
use crate::model::{NetMethod, NetworkInterface};

/// Every configured interface, ordered by source then name.
pub(crate) fn gather(fs: &mut RootFs) -> Vec<NetworkInterface> {
    let mut all = ifupdown::gather(fs);
    all.extend(netplan::gather(fs));
    all.extend(networkmanager::gather(fs));
    all.extend(networkd::gather(fs));
    all.extend(ifcfg::gather(fs));
    all.sort_by(|a, b| (&a.source, &a.name).cmp(&(&b.source, &b.name)));
    all
}

/// Where an interface has several stanzas (IPv4 and IPv6), the one that says most about its
/// addressing wins.
fn rank(m: NetMethod) -> u8 {
    match m {
        NetMethod::Static => 4,
        NetMethod::Dhcp => 3,
        NetMethod::Auto => 2,
        NetMethod::Loopback => 1,
        NetMethod::Manual => 0,
    }
}

/// The stronger of two methods, by [`rank`].
fn stronger(a: NetMethod, b: NetMethod) -> NetMethod {
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Prefix length of a netmask, dotted (`255.255.255.0`) or already a length (`24`); `None`
/// for a non-contiguous or malformed mask.
fn prefix_len(mask: &str) -> Option<u32> {
    if let Ok(len) = mask.parse::<u32>() {
        return (len <= 128).then_some(len);
    }
    let bits = u32::from(mask.parse::<std::net::Ipv4Addr>().ok()?);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then(|| bits.leading_ones())
}

/// `addr` in CIDR form using `mask` when it has no prefix of its own.
fn cidr(addr: &str, mask: Option<&str>) -> String {
    match mask.and_then(prefix_len) {
        Some(len) if !addr.contains('/') => format!("{addr}/{len}"),
        _ => addr.to_string(),
    }
}

/// Appends the items of `list` not already in `to`.
fn push_unique(to: &mut Vec<String>, list: impl IntoIterator<Item = String>) {
    for item in list {
        if !item.is_empty() && !to.contains(&item) {
            to.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert_eq!(prefix_len("255.255.255.0"), Some(24));
        assert_eq!(prefix_len("255.255.240.0"), Some(20));
        assert_eq!(prefix_len("255.255.255.255"), Some(32));
        assert_eq!(prefix_len("0.0.0.0"), Some(0));
        assert_eq!(prefix_len("255.0.255.0"), None);
        assert_eq!(prefix_len("64"), Some(64));
        assert_eq!(prefix_len("x"), None);
        assert_eq!(cidr("10.0.0.1", Some("255.0.0.0")), "10.0.0.1/8");
        assert_eq!(cidr("10.0.0.1/16", Some("255.0.0.0")), "10.0.0.1/16");
        assert_eq!(cidr("10.0.0.1", None), "10.0.0.1");
        assert_eq!(
            stronger(NetMethod::Dhcp, NetMethod::Static),
            NetMethod::Static
        );
        assert_eq!(stronger(NetMethod::Dhcp, NetMethod::Auto), NetMethod::Dhcp);
    }
}
