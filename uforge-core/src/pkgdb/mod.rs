//! Package manager databases under a root: which packages are installed and which files they own.

mod dpkg;

use std::collections::HashMap;
use std::path::Path;

pub use dpkg::DpkgDb;

use crate::model::Package;
use crate::Result;

/// A package manager's database read from a scanned root.
pub trait PackageDb {
    /// The manager's name as recorded in reports (`dpkg`).
    fn manager(&self) -> &'static str;
    /// Every package the database knows, sorted by name then architecture.
    fn packages(&self) -> &[Package];
    /// The manager's native architecture (`amd64`), if the database tells.
    fn native_arch(&self) -> Option<&str>;
    /// The package that owns an in-root absolute path (`/usr/bin/ls`), after resolving the
    /// directory symlinks of the root (so `/bin/ls` listed by a package owns `/usr/bin/ls` on a
    /// merged-/usr system). Directories shared by several packages report the first by name.
    fn owner(&self, path: &[u8]) -> Option<&str>;
    /// The in-root paths a package lists, resolved the same way as [`PackageDb::owner`].
    fn files_of(&self, package: &str) -> &[Vec<u8>];
}

/// Opens whichever package database the root has. `Ok(None)` when it has none (a container
/// image without a package manager, a bare directory).
pub fn open(root: &Path) -> Result<Option<Box<dyn PackageDb + Send + Sync>>> {
    if root.join("var/lib/dpkg/status").is_file() {
        return Ok(Some(Box::new(DpkgDb::open(root)?)));
    }
    Ok(None)
}

/// The names that identify packages in a report's `package` fields: the plain name, or
/// `name:arch` when several architectures of the same name are installed (as dpkg names them).
/// One per package, in the same order.
pub fn package_keys(packages: &[Package]) -> Vec<String> {
    let mut count: HashMap<&str, u32> = HashMap::new();
    for p in packages {
        *count.entry(p.name.as_str()).or_default() += 1;
    }
    packages
        .iter()
        .map(|p| {
            if count[p.name.as_str()] > 1 {
                format!("{}:{}", p.name, p.arch)
            } else {
                p.name.clone()
            }
        })
        .collect()
}
