//! Local accounts from the root's `/etc/passwd` and `/etc/group`. The shadow files are never
//! read: a report must not carry password hashes.

use std::collections::HashMap;
use std::path::Path;

use super::rootfs::{lossy, RootFs};
use crate::model::{Group, User};

/// Users and groups of the root, in file order.
pub(crate) fn gather(fs: &mut RootFs) -> (Vec<User>, Vec<Group>) {
    let users = fs.read(b"/etc/passwd").map(|t| parse_passwd(&t));
    let groups = fs.read(b"/etc/group").map(|t| parse_group(&t));
    (users.unwrap_or_default(), groups.unwrap_or_default())
}

/// Lines of a colon-separated database with exactly `n` fields; comments and NIS `+`/`-`
/// entries are skipped along with malformed lines.
fn records(text: &[u8], n: usize) -> impl Iterator<Item = Vec<String>> + '_ {
    text.split(|&b| b == b'\n').filter_map(move |line| {
        if line.is_empty() || matches!(line[0], b'#' | b'+' | b'-') {
            return None;
        }
        let fields: Vec<String> = line.split(|&b| b == b':').map(lossy).collect();
        (fields.len() == n && !fields[0].is_empty()).then_some(fields)
    })
}

fn parse_passwd(text: &[u8]) -> Vec<User> {
    records(text, 7)
        .filter_map(|mut f| {
            Some(User {
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                shell: f.pop()?,
                home: f.pop()?,
                gecos: f.pop()?,
                name: std::mem::take(&mut f[0]),
            })
        })
        .collect()
}

fn parse_group(text: &[u8]) -> Vec<Group> {
    records(text, 4)
        .filter_map(|f| {
            Some(Group {
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
                name: f[0].clone(),
            })
        })
        .collect()
}

/// User and group names by id, from the scanned root's own databases (not the host's, which
/// may number its accounts differently).
#[derive(Debug, Clone, Default)]
pub struct IdNames {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl IdNames {
    /// Reads the root's `/etc/passwd` and `/etc/group`; unreadable files give no names.
    pub fn load(root: &Path) -> IdNames {
        let (users, groups) = gather(&mut RootFs::new(root));
        Self::from_entries(&users, &groups)
    }

    fn from_entries(users: &[User], groups: &[Group]) -> IdNames {
        let mut names = IdNames::default();
        // The first entry wins for a duplicated id, as in glibc's lookups.
        for u in users {
            names.users.entry(u.uid).or_insert_with(|| u.name.clone());
        }
        for g in groups {
            names.groups.entry(g.gid).or_insert_with(|| g.name.clone());
        }
        names
    }

    /// Name of user `uid`, if the root has one.
    pub fn user(&self, uid: u32) -> Option<&str> {
        self.users.get(&uid).map(String::as_str)
    }

    /// Name of group `gid`, if the root has one.
    pub fn group(&self, gid: u32) -> Option<&str> {
        self.groups.get(&gid).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn databases_and_names() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("etc")).unwrap();
        fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken:x:1\n+nis::::::\n\
             toor:x:0:0::/root:/bin/sh\nalice:x:1001:1001:Alice A,,,:/home/alice:/bin/bash\n\
             bad:x:notanumber:1:::\n",
        )
        .unwrap();
        fs::write(
            tmp.path().join("etc/group"),
            "root:x:0:\nsudo:x:27:alice,bob\ndeploy:x:1500:\nalias:x:1500:\n",
        )
        .unwrap();
        let mut rfs = RootFs::new(tmp.path());
        let (users, groups) = gather(&mut rfs);
        assert_eq!(users.len(), 3);
        assert_eq!(users[2].name, "alice");
        assert_eq!(users[2].gecos, "Alice A,,,");
        assert_eq!(users[2].home, "/home/alice");
        assert_eq!(users[2].shell, "/bin/bash");
        assert_eq!(groups[1].members, ["alice", "bob"]);
        assert!(groups[2].members.is_empty());

        let names = IdNames::load(tmp.path());
        assert_eq!(names.user(0), Some("root"));
        assert_eq!(names.user(1001), Some("alice"));
        assert_eq!(names.user(4242), None);
        assert_eq!(names.group(1500), Some("deploy"));
        assert_eq!(IdNames::load(Path::new("/nonexistent")).user(0), None);
    }
}
