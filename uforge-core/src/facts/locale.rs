//! Installation parameters: time zone, keyboard, locale and host name.

use super::rootfs::{child, lossy, split_last, RootFs};
use super::shellvars::ShellVars;
use crate::model::Keyboard;

/// `/etc/timezone` when present (Debian writes it), else the zone `/etc/localtime` links to.
pub(crate) fn timezone(fs: &mut RootFs) -> Option<String> {
    if let Some(tz) = fs.read(b"/etc/timezone").and_then(|t| first_line(&t)) {
        return Some(tz);
    }
    // Follow one link at a time: the first target inside a zoneinfo tree is the configured
    // name, while fully resolving could end at an alias's canonical zone.
    let mut path = b"/etc/localtime".to_vec();
    for _ in 0..8 {
        let target = fs.read_link(&path)?;
        path = if target.starts_with(b"/") {
            target
        } else {
            child(split_last(&path).0, &target)
        };
        if let Some(at) = find(&path, b"zoneinfo/") {
            let mut zone = &path[at + b"zoneinfo/".len()..];
            for prefix in [&b"posix/"[..], b"right/"] {
                zone = zone.strip_prefix(prefix).unwrap_or(zone);
            }
            // A dangling link configures nothing; `is_file` resolves within the root.
            return (!zone.is_empty() && fs.is_file(&path)).then(|| lossy(zone));
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Debian's XKB settings, else systemd's vconsole.conf, else Red Hat/SUSE sysconfig.
pub(crate) fn keyboard(fs: &mut RootFs) -> Option<Keyboard> {
    let xkb = |v: &ShellVars, layout: String| Keyboard {
        layout,
        variant: v.string("XKBVARIANT"),
        model: v.string("XKBMODEL"),
        options: v.string("XKBOPTIONS"),
    };
    if let Some(v) = fs
        .read(b"/etc/default/keyboard")
        .map(|t| ShellVars::parse(&t))
    {
        if let Some(layout) = v.string("XKBLAYOUT") {
            return Some(xkb(&v, layout));
        }
    }
    if let Some(v) = fs.read(b"/etc/vconsole.conf").map(|t| ShellVars::parse(&t)) {
        if let Some(layout) = v.string("KEYMAP").or_else(|| v.string("XKBLAYOUT")) {
            return Some(xkb(&v, layout));
        }
    }
    let v = ShellVars::parse(&fs.read(b"/etc/sysconfig/keyboard")?);
    let table = v.get("KEYTABLE").or_else(|| v.get("LAYOUT"))?;
    let layout = table.strip_suffix(".gz").unwrap_or(table);
    let layout = layout.strip_suffix(".map").unwrap_or(layout);
    Some(Keyboard {
        layout: layout.to_string(),
        ..Keyboard::default()
    })
}

/// `LANG` from wherever the distribution keeps it.
pub(crate) fn locale(fs: &mut RootFs) -> Option<String> {
    let sources: [(&[u8], &str); 4] = [
        (b"/etc/default/locale", "LANG"),
        (b"/etc/locale.conf", "LANG"),
        (b"/etc/sysconfig/i18n", "LANG"),
        (b"/etc/sysconfig/language", "RC_LANG"),
    ];
    sources
        .into_iter()
        .find_map(|(path, key)| ShellVars::parse(&fs.read(path)?).string(key))
}

/// The configured host name; a live system without one still has the kernel's.
pub(crate) fn hostname(fs: &mut RootFs, live: bool) -> Option<String> {
    let configured = [&b"/etc/hostname"[..], b"/etc/HOSTNAME"]
        .into_iter()
        .find_map(|p| fs.read(p).and_then(|t| first_line(&t)));
    if configured.is_some() || !live {
        return configured;
    }
    first_line(&std::fs::read("/proc/sys/kernel/hostname").ok()?)
}

/// First line that is neither blank nor a comment, trimmed.
fn first_line(text: &[u8]) -> Option<String> {
    String::from_utf8_lossy(text)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn root() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("etc/default")).unwrap();
        fs::create_dir_all(tmp.path().join("etc/sysconfig")).unwrap();
        tmp
    }

    #[test]
    fn timezone_from_link_inside_root() {
        let tmp = root();
        let r = tmp.path();
        // Asia/Tokyo exists on most hosts; the root does not have it yet, so it must not count.
        symlink("/usr/share/zoneinfo/Asia/Tokyo", r.join("etc/localtime")).unwrap();
        let mut rfs = RootFs::new(r);
        assert_eq!(timezone(&mut rfs), None);
        fs::create_dir_all(r.join("usr/share/zoneinfo/Asia")).unwrap();
        fs::write(r.join("usr/share/zoneinfo/Asia/Tokyo"), "TZif").unwrap();
        assert_eq!(timezone(&mut rfs).as_deref(), Some("Asia/Tokyo"));

        fs::remove_file(r.join("etc/localtime")).unwrap();
        fs::create_dir_all(r.join("usr/share/zoneinfo/posix/America")).unwrap();
        fs::write(r.join("usr/share/zoneinfo/posix/America/Lima"), "TZif").unwrap();
        symlink(
            "../usr/share/zoneinfo/posix/America/Lima",
            r.join("etc/localtime"),
        )
        .unwrap();
        assert_eq!(timezone(&mut rfs).as_deref(), Some("America/Lima"));

        fs::write(
            r.join("etc/timezone"),
            "# set by installer\n Europe/Paris \n",
        )
        .unwrap();
        assert_eq!(timezone(&mut rfs).as_deref(), Some("Europe/Paris"));
        assert!(rfs.errors.is_empty());
    }

    #[test]
    fn keyboard_sources() {
        let tmp = root();
        let r = tmp.path();
        let mut rfs = RootFs::new(r);
        assert_eq!(keyboard(&mut rfs), None);
        fs::write(
            r.join("etc/sysconfig/keyboard"),
            "KEYTABLE=\"de-latin1.map.gz\"\n",
        )
        .unwrap();
        assert_eq!(keyboard(&mut rfs).unwrap().layout, "de-latin1");
        fs::write(
            r.join("etc/vconsole.conf"),
            "KEYMAP=fr-latin9\nFONT=eurlatgr\n",
        )
        .unwrap();
        assert_eq!(
            keyboard(&mut rfs),
            Some(Keyboard {
                layout: "fr-latin9".into(),
                ..Keyboard::default()
            })
        );
        fs::write(
            r.join("etc/default/keyboard"),
            "XKBMODEL=\"pc105\"\nXKBLAYOUT=\"fr\"\nXKBVARIANT=\"oss\"\nXKBOPTIONS=\"\"\n",
        )
        .unwrap();
        let k = keyboard(&mut rfs).unwrap();
        assert_eq!(k.layout, "fr");
        assert_eq!(k.variant.as_deref(), Some("oss"));
        assert_eq!(k.model.as_deref(), Some("pc105"));
        assert_eq!(k.options, None);
    }

    #[test]
    fn locale_and_hostname() {
        let tmp = root();
        let r = tmp.path();
        let mut rfs = RootFs::new(r);
        assert_eq!(locale(&mut rfs), None);
        assert_eq!(hostname(&mut rfs, false), None);
        fs::write(r.join("etc/sysconfig/i18n"), "LANG=\"en_US.UTF-8\"\n").unwrap();
        assert_eq!(locale(&mut rfs).as_deref(), Some("en_US.UTF-8"));
        fs::write(r.join("etc/locale.conf"), "LANG=de_DE.UTF-8\n").unwrap();
        assert_eq!(locale(&mut rfs).as_deref(), Some("de_DE.UTF-8"));
        fs::write(r.join("etc/HOSTNAME"), "suse01.example.com\n").unwrap();
        assert_eq!(
            hostname(&mut rfs, false).as_deref(),
            Some("suse01.example.com")
        );
        fs::write(r.join("etc/hostname"), "\n# comment\n  web01  \n").unwrap();
        assert_eq!(hostname(&mut rfs, false).as_deref(), Some("web01"));
    }
}
