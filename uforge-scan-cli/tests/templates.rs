//! White-box migration end to end: the bootable fixture scanned and imported as a template
//! (`uforge template from-scan`), edited in its YAML as a person would, generated as a qcow2
//! (`uforge template build`) and booted twice from the same disk under QEMU, with SeaBIOS
//! then with OVMF.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::images::{http_get, json_of, scan_fixture, uforge, Vm, TOKEN};
use crate::live::outside_tmp;
use crate::util::*;

/// The package the edit removes (nothing of the fixture depends on it).
const REMOVED: &str = "keyboard-configuration";
/// The disk size the edit asks for.
const DISK_MIB: u64 = 6144;

/// Waits until the every-boot script's page says it ran `boots` times, and returns it.
fn wait_facts(vm: &mut Vm, boots: u32) -> String {
    let deadline = Instant::now() + Duration::from_secs(600);
    let want = format!("everyboot={boots}\n");
    while Instant::now() < deadline {
        if let Some(f) = http_get(vm.port, "/facts.txt") {
            if f.contains(&want) && f.ends_with("done\n") {
                return f;
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    panic!(
        "no facts for boot {boots} in 10 minutes; console:\n{}",
        vm.serial()
    );
}

/// The template directory's `template.yml`, edited: `redis-server` added, one package
/// removed, a component with a 0750 file added, a first-boot and an every-boot script, the
/// time zone and the static address changed.
fn edit(dir: &Path) {
    let path = dir.join("template.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("timezone: Europe/Paris"), "{text}");
    assert!(text.contains("192.0.2.10/24"), "{text}");
    let mut out = String::new();
    let mut removed = false;
    for line in text.lines() {
        if line
            .trim_start()
            .starts_with(&format!("- {{name: {REMOVED},"))
        {
            removed = true;
            continue;
        }
        out.push_str(
            &line
                .replace("timezone: Europe/Paris", "timezone: Asia/Tokyo")
                .replace("192.0.2.10/24", "192.0.2.20/24"),
        );
        out.push('\n');
        if line == "    pkgs:" {
            out.push_str("    - {name: redis-server}\n");
        }
    }
    assert!(removed, "{REMOVED} is not in the template: {text}");
    // A disk larger than the one sized for the contents (4 GiB here).
    let mut out = match out.find("\n    disk:\n") {
        Some(at) => {
            let at = at + "\n    disk:\n".len();
            format!("{}      size_mib: {DISK_MIB}\n{}", &out[..at], &out[at..])
        }
        None => out.replacen(
            "\n  installation:\n",
            &format!("\n  installation:\n    disk: {{size_mib: {DISK_MIB}}}\n"),
            1,
        ),
    };
    assert!(out.contains(&format!("size_mib: {DISK_MIB}")), "{out}");
    assert!(
        !out.contains("\n  config:"),
        "the import has boot scripts already"
    );
    // The file ends with the bundles list: a component and the boot scripts go after it.
    out.push_str(
        "  - name: extras\n    version: \"1\"\n    files:\n\
         \x20   - {path: /opt/extras, type: dir, mode: \"0755\"}\n\
         \x20   - {path: /opt/extras/tool, type: file, mode: \"0750\", owner: root, group: root, source: tool.sh}\n\
         \x20 config:\n\
         \x20 - {name: mark.sh, frequency: firstboot, source: firstboot.sh}\n\
         \x20 - {name: facts.sh, frequency: everyboot, source: everyboot.sh}\n",
    );
    std::fs::write(&path, out).unwrap();
    let files = dir.join("files");
    std::fs::write(files.join("tool.sh"), "#!/bin/sh\necho extras tool\n").unwrap();
    std::fs::write(
        files.join("firstboot.sh"),
        "#!/bin/sh\nmkdir -p /var/lib/uforge-test\necho ran >>/var/lib/uforge-test/firstboot.log\nsync\n",
    )
    .unwrap();
    std::fs::write(
        files.join("everyboot.sh"),
        format!(
            r#"#!/bin/sh
mkdir -p /var/lib/uforge-test
echo boot >>/var/lib/uforge-test/everyboot.log
for i in $(seq 120); do r=$(redis-cli ping 2>&1) && [ "$r" = PONG ] && break; sleep 1; done
{{
echo "firstboot=$(wc -l </var/lib/uforge-test/firstboot.log)"
echo "everyboot=$(wc -l </var/lib/uforge-test/everyboot.log)"
echo "tool=$(stat -c %a:%U:%G /opt/extras/tool)"
echo "removed=$(dpkg-query -W -f='${{db:Status-Status}}' {REMOVED} 2>/dev/null || echo absent)"
echo "timezone=$(cat /etc/timezone):$(readlink /etc/localtime)"
echo "redis=$r"
echo done
}} >/var/www/html/facts.tmp
# On disk before the page shows it: the test stops the machine once it has read the page.
sync
mv /var/www/html/facts.tmp /var/www/html/facts.txt
"#
        ),
    )
    .unwrap();
}

#[test]
fn edited_template_generates_an_image_that_boots_twice() {
    let work = outside_tmp();
    let s = scan_fixture(&fixture("bootable"), work.path());
    let dir = work.path().join("web01");
    let imported = json_of(
        uforge()
            .args(["--json", "template", "from-scan", "--repo", &mirror_line()])
            .arg("--report")
            .arg(&s.report)
            .arg("--overlay")
            .arg(&s.overlay)
            .arg("--analysis")
            .arg(&s.analysis)
            .arg("-o")
            .arg(&dir),
    );
    assert_eq!(imported["name"], "web01", "{imported}");
    edit(&dir);

    // A package no repository has: check and build both refuse it by name, before anything is
    // written.
    let yml = dir.join("template.yml");
    let edited = std::fs::read_to_string(&yml).unwrap();
    std::fs::write(
        &yml,
        edited.replace(
            "    - {name: redis-server}\n",
            "    - {name: no-such-package-uforge}\n    - {name: redis-server}\n",
        ),
    )
    .unwrap();
    let image = work.path().join("web01.qcow2");
    for args in [
        vec!["template", "check", "--file"],
        vec!["template", "build", "-o", image.to_str().unwrap(), "--file"],
    ] {
        let out = uforge().args(&args).arg(&yml).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("cannot be installed") && err.contains("no-such-package-uforge"),
            "{args:?}: {err}"
        );
        assert!(!image.exists());
    }
    std::fs::write(&yml, &edited).unwrap();
    let checked = json_of(
        uforge()
            .args(["--json", "template", "check", "--file"])
            .arg(&yml),
    );
    assert!(
        checked["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("redis-tools")),
        "{checked:#}"
    );

    let built = json_of(
        uforge()
            .args(["--json", "template", "build", "-f", "qcow2", "--file"])
            .arg(dir.join("template.yml"))
            .arg("-o")
            .arg(&image),
    );
    // redis-server's dependencies the source lacked were added by the check.
    let added: Vec<&str> = built["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        added.iter().any(|p| p.starts_with("redis-tools")),
        "{built:#}"
    );
    let log: Value =
        serde_json::from_slice(&std::fs::read(built["tuning_log"].as_str().unwrap()).unwrap())
            .unwrap();
    assert!(
        log["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "bootloader"),
        "{log:#}"
    );
    run_ok(Command::new("qemu-img").arg("check").arg(&image));
    let info: Value = serde_json::from_slice(
        &run_ok(
            Command::new("qemu-img")
                .args(["info", "--output=json"])
                .arg(&image),
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(info["virtual-size"], DISK_MIB << 20, "{info:#}");

    // The image is what its template states (checked before a boot changes it)...
    let out = uforge()
        .args(["--json", "image", "verify", "--template"])
        .arg(&yml)
        .arg(&image)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert!(out.status.success(), "{v:#}");
    assert!(v["unexplained"].as_array().unwrap().is_empty(), "{v:#}");
    assert!(
        v["unexplained_packages"].as_array().unwrap().is_empty(),
        "{v:#}"
    );
    assert!(v["entries"].as_u64().unwrap() > 100, "{v:#}");
    // ...and not what another template states: a mode, the time zone and a package.
    let other = work.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(
        other.join("template.yml"),
        edited
            .replace("timezone: Asia/Tokyo", "timezone: Europe/Paris")
            .replace("mode: \"0750\", owner", "mode: \"0700\", owner")
            .replace(
                "    - {name: redis-server}\n",
                &format!("    - {{name: redis-server}}\n    - {{name: {REMOVED}}}\n"),
            ),
    )
    .unwrap();
    run_ok(
        Command::new("cp")
            .arg("-al")
            .arg(dir.join("files"))
            .arg(&other),
    );
    let out = uforge()
        .args(["image", "verify", "--template"])
        .arg(&other)
        .arg(&image)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}{stderr}");
    for want in [
        "modified /opt/extras/tool mode: 700 expected, 750 found",
        "modified /etc/timezone content",
        "modified /etc/localtime target: a link to /usr/share/zoneinfo/Europe/Paris expected",
        &format!("package  {REMOVED} any version -> absent"),
    ] {
        assert!(stdout.contains(want), "{want:?} not in:\n{stdout}{stderr}");
    }
    assert!(
        stderr.contains("differs from template web01 1 in 4 ways"),
        "{stderr}"
    );

    // First boot, SeaBIOS, writing to the image itself.
    let mut vm = Vm::start(&image, "qcow2", false, work.path(), false, "192.0.2.20");
    let (page, status) = vm.wait_served();
    assert!(page.contains(TOKEN), "{page}");
    assert!(status.contains("addresses=192.0.2.20"), "{status}");
    let facts = wait_facts(&mut vm, 1);
    assert!(facts.contains("firstboot=1\n"), "{facts}");
    assert!(facts.contains("tool=750:root:root\n"), "{facts}");
    assert!(facts.contains("removed=absent\n"), "{facts}");
    assert!(
        facts.contains("timezone=Asia/Tokyo:/usr/share/zoneinfo/Asia/Tokyo\n"),
        "{facts}"
    );
    assert!(facts.contains("redis=PONG\n"), "{facts}");
    drop(vm);

    // Second boot of the same disk, OVMF: the first-boot script does not run again.
    let mut vm = Vm::start(&image, "qcow2", true, work.path(), false, "192.0.2.20");
    let facts = wait_facts(&mut vm, 2);
    assert!(facts.contains("firstboot=1\n"), "{facts}");
    assert!(facts.contains("redis=PONG\n"), "{facts}");
    let (page, _) = vm.wait_served();
    assert!(page.contains(TOKEN), "{page}");
    assert!(vm.serial().contains("BdsDxe"), "not booted by OVMF");
}
