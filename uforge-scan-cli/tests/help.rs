//! The help texts of `uforge` and `uforge-scan`, every subcommand's, against the snapshots in
//! `tests/help/` (`UFORGE_BLESS=1` rewrites them after a deliberate change), and the
//! completions and man pages made from the same command lines.

use std::path::Path;

use uforge_scan_cli::docs;

#[test]
fn help_texts_match_their_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/help");
    let bless = std::env::var_os("UFORGE_BLESS").is_some();
    for cmd in docs::commands() {
        let text = docs::help_texts(&cmd);
        let file = dir.join(format!("{}.txt", cmd.get_name()));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}; UFORGE_BLESS=1 writes it", file.display()));
        if text != want {
            let first = text
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "{} differs from the help texts from line {}:\n  now: {:?}\n  was: {:?}\n\
                 (UFORGE_BLESS=1 rewrites it after a deliberate change)",
                file.display(),
                first + 1,
                text.lines().nth(first),
                want.lines().nth(first)
            );
        }
    }
}

#[test]
fn help_texts_agree_across_commands() {
    let texts: String = docs::commands().iter().map(docs::help_texts).collect();
    // `run` always talks to a server: nothing tells it that the URL may be left out.
    assert!(!texts.contains("local commands"), "{texts}");
    // One default per option, stated once.
    for block in texts.split("\n$ ") {
        for para in block.split("\n\n") {
            assert!(
                para.matches("[default:").count() <= 1,
                "two defaults in one option:\n{para}"
            );
        }
    }
    // The options image build and image generate share read alike.
    let section = |cmd: &str| {
        texts
            .split("\n$ ")
            .find(|b| b.starts_with(cmd))
            .unwrap_or_else(|| panic!("no {cmd}"))
            .to_string()
    };
    let (build, generate) = (
        section("uforge image build --help"),
        section("uforge image generate --help"),
    );
    for needle in [
        "-f, --format <FORMAT>",
        "--network <POLICY>",
        "`keep` the source's network configuration or set every interface to `dhcp`",
        "[default: keep]",
        "--allow-upgrades",
    ] {
        assert!(build.contains(needle), "build lacks {needle}:\n{build}");
        assert!(
            generate.contains(needle),
            "generate lacks {needle}:\n{generate}"
        );
    }
    assert!(
        section("uforge-scan run --help").contains("-u alice \\\n"),
        "the example of run wraps only where it says"
    );
}

#[test]
fn completions_and_man_pages_are_generated() {
    let out = tempfile::tempdir().unwrap();
    let files = docs::write(out.path()).unwrap();
    for f in [
        "completions/uforge.bash",
        "completions/_uforge",
        "completions/uforge.fish",
        "completions/uforge-scan.bash",
        "man/uforge.1",
        "man/uforge-image-generate.1",
        "man/uforge-scan-run.1",
    ] {
        let p = out.path().join(f);
        assert!(files.contains(&p), "{f} not written: {files:?}");
    }
    let bash = std::fs::read_to_string(out.path().join("completions/uforge.bash")).unwrap();
    assert!(bash.contains("--allow-upgrades"), "{bash}");
    let man = std::fs::read_to_string(out.path().join("man/uforge-image-download.1")).unwrap();
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    assert!(man.contains("link"), "{man}");
}
