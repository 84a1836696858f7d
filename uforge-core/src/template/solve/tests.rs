//! The relation rules on small hand-made universes, one rule per case; the checks against the
//! real bookworm and trixie indexes are in `template::tests`.

use super::*;
use crate::blobstore::LocalBlobStore;
use crate::repo::{PackageRecord, PackageRelations};
use crate::template::{OsProfile, PackageSpec, Template};

fn rec(name: &str, version: &str, arch: &str, fields: &[(&str, &str)]) -> PackageRecord {
    let text: String = fields.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
    let para = crate::deb822::parse(&text)
        .into_iter()
        .next()
        .unwrap_or_default();
    PackageRecord {
        key: PackageKey::new(name, version, arch),
        filename: format!("pool/{name}.deb"),
        size: 1,
        sha256: [0; 32],
        source: None,
        relations: PackageRelations::of(&para),
    }
}

fn template(pkgs: &[PackageSpec]) -> Template {
    Template {
        name: "t".into(),
        version: "1".into(),
        os: OsProfile {
            distribution: "debian".into(),
            release: "test".into(),
            arch: "amd64".into(),
            repositories: Vec::new(),
            pkgs: pkgs.to_vec(),
        },
        ..Template::default()
    }
}

fn solve(u: &PackageUniverse, pkgs: &[PackageSpec]) -> crate::Result<Resolution> {
    let store = tempfile::tempdir().unwrap();
    let blobs = LocalBlobStore::open(store.path()).unwrap();
    check(&template(pkgs), u, &blobs, &CheckOptions::default())
}

fn names(r: &Resolution) -> Vec<String> {
    r.packages.iter().map(|p| p.key.to_string()).collect()
}

fn free(n: &str) -> PackageSpec {
    PackageSpec::free(n)
}

fn pin(n: &str, v: &str, a: &str) -> PackageSpec {
    PackageSpec::pinned(&PackageKey::new(n, v, a))
}

#[test]
fn newest_fitting_version_and_version_constraints() {
    let u = PackageUniverse::new(
        "amd64",
        [
            rec(
                "app",
                "2.0",
                "amd64",
                &[("Depends", "lib (>= 1.5), lib (<< 3)")],
            ),
            rec("lib", "1.0", "amd64", &[]),
            rec("lib", "2.0", "amd64", &[]),
            rec("lib", "3.0", "amd64", &[]),
        ],
    );
    let r = solve(&u, &[free("app")]).unwrap();
    assert_eq!(names(&r), ["app_2.0_amd64", "lib_2.0_amd64"]);
    assert_eq!(
        r.get("lib").unwrap().reason,
        Reason::Dependency("app".into())
    );
    // A pin outside the range cannot be combined.
    let e = solve(&u, &[free("app"), pin("lib", "3.0", "amd64")]).unwrap_err();
    assert!(e.to_string().contains("lib"), "{e}");
}

#[test]
fn virtual_and_versioned_provides() {
    let u = PackageUniverse::new(
        "amd64",
        [
            rec("mailer", "1", "all", &[("Depends", "mta")]),
            rec(
                "exim",
                "4",
                "amd64",
                &[("Provides", "mta"), ("Conflicts", "mta")],
            ),
            rec(
                "postfix",
                "3",
                "amd64",
                &[("Provides", "mta"), ("Conflicts", "mta")],
            ),
            rec("needs-api", "1", "amd64", &[("Depends", "api (>= 2)")]),
            rec("old-impl", "9", "amd64", &[("Provides", "api (= 1)")]),
            rec("new-impl", "1", "amd64", &[("Provides", "api (= 2)")]),
            rec("plain-impl", "5", "amd64", &[("Provides", "api")]),
        ],
    );
    // The template's own provider is preferred, and its self-conflict through Provides ignored.
    let r = solve(&u, &[free("mailer"), free("postfix")]).unwrap();
    assert_eq!(names(&r), ["mailer_1_all", "postfix_3_amd64"]);
    // A versioned dependency is met only by a versioned Provides of a fitting version.
    let r = solve(&u, &[free("needs-api")]).unwrap();
    assert!(
        names(&r).contains(&"new-impl_1_amd64".to_string()),
        "{:?}",
        names(&r)
    );
    // Two providers that conflict on the virtual name.
    let p = match solve(&u, &[free("exim"), free("postfix")]).unwrap_err() {
        Error::Unsatisfiable { problems, .. } => problems,
        e => panic!("{e}"),
    };
    assert!(
        p[0].contains("exim 4") && p[0].contains("postfix 3") && p[0].contains("Conflicts: mta"),
        "{p:?}"
    );
}

#[test]
fn alternatives_breaks_and_pre_depends() {
    let u = PackageUniverse::new(
        "amd64",
        [
            rec(
                "web",
                "1",
                "amd64",
                &[("Pre-Depends", "init-a | init-b"), ("Depends", "tool")],
            ),
            rec("init-a", "1", "amd64", &[]),
            rec("init-b", "1", "amd64", &[]),
            rec("tool", "2", "amd64", &[("Breaks", "web (<< 1)")]),
            rec("tool", "3", "amd64", &[("Breaks", "web (<< 2)")]),
        ],
    );
    // The first alternative; the newest tool breaks this web, so the older one is chosen.
    let r = solve(&u, &[free("web")]).unwrap();
    assert_eq!(names(&r), ["init-a_1_amd64", "tool_2_amd64", "web_1_amd64"]);
    // With the second alternative listed, it is used instead of adding the first.
    let r = solve(&u, &[free("web"), free("init-b")]).unwrap();
    assert_eq!(names(&r), ["init-b_1_amd64", "tool_2_amd64", "web_1_amd64"]);
    // Pinning the breaking version names the relation.
    let e = solve(&u, &[free("web"), pin("tool", "3", "amd64")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("Breaks: web (<< 2)"), "{e}");
}

#[test]
fn multiarch_qualifiers() {
    let u = PackageUniverse::new(
        "amd64",
        [
            rec(
                "app",
                "1",
                "i386",
                &[("Depends", "helper, interp:any, libfoo")],
            ),
            rec("helper", "1", "amd64", &[("Multi-Arch", "foreign")]),
            rec("interp", "1", "amd64", &[("Multi-Arch", "allowed")]),
            rec("libfoo", "1", "amd64", &[("Multi-Arch", "same")]),
            rec("libfoo", "1", "i386", &[("Multi-Arch", "same")]),
            rec("tool", "1", "amd64", &[]),
            rec("tool", "1", "i386", &[]),
        ],
    );
    // An i386 package: M-A foreign and :any on M-A allowed are met by amd64 packages; a
    // plain dependency on a M-A same library needs the i386 one.
    let r = solve(&u, &[pin("app", "1", "i386")]).unwrap();
    assert_eq!(
        names(&r),
        [
            "app_1_i386",
            "helper_1_amd64",
            "interp_1_amd64",
            "libfoo_1_i386"
        ]
    );
    // M-A same instances coexist; other packages of one name cannot.
    assert!(solve(
        &u,
        &[pin("libfoo", "1", "amd64"), pin("libfoo", "1", "i386")]
    )
    .is_ok());
    let e = solve(&u, &[pin("tool", "1", "amd64"), pin("tool", "1", "i386")]).unwrap_err();
    assert!(e.to_string().contains("tool"), "{e}");
}

#[test]
fn essential_packages_are_added_and_auto_ones_dropped() {
    let u = PackageUniverse::new(
        "amd64",
        [
            rec("app", "1", "amd64", &[]),
            rec("coreutils", "9", "amd64", &[("Essential", "yes")]),
            rec("newlib", "2", "amd64", &[("Conflicts", "oldlib2")]),
            rec("oldlib2", "1", "amd64", &[]),
            rec("user", "1", "amd64", &[("Depends", "newlib")]),
        ],
    );
    let r = solve(&u, &[free("app")]).unwrap();
    assert_eq!(r.get("coreutils").unwrap().reason, Reason::Essential);
    // A dependency of the source gone from the repositories, and one that no longer fits.
    let gone = PackageSpec {
        auto: true,
        ..free("oldlib1")
    };
    let clash = PackageSpec {
        auto: true,
        ..free("oldlib2")
    };
    let r = solve(&u, &[free("user"), gone.clone(), clash.clone()]).unwrap();
    let dropped: Vec<&str> = r.dropped.iter().map(|d| d.package.name.as_str()).collect();
    assert_eq!(dropped, ["oldlib1", "oldlib2"]);
    assert!(r.get("newlib").is_some());
    // Asked for by name, a package that is gone fails the check.
    let e = solve(&u, &[free("oldlib1")]).unwrap_err().to_string();
    assert!(e.contains("no repository has package oldlib1"), "{e}");
}
