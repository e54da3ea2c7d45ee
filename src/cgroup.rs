//! The memory limit of the cgroup this process runs in, for sizing the body budget.
//!
//! Reading only `/sys/fs/cgroup/memory.max` is right only inside a cgroup namespace, where the
//! container's own cgroup is the root of what it sees, as on Cloud Run. Without one (a process
//! under systemd, a container runtime that does not unshare the cgroup namespace, a nested
//! cgroup) the limit sits in the process's own cgroup, or in one of its ancestors, further down
//! the tree. So, as the JVM does (`CgroupUtil::adjust_controller` in OpenJDK's
//! `cgroupUtil_linux.cpp` walks up the cgroup path, keeping the lowest limit):
//!
//! 1. `/proc/self/cgroup` names the process's cgroup: `0::/path` for the v2 hierarchy,
//!    `N:memory:/path` (or a controller list containing `memory`) for the v1 one
//!    (<https://docs.kernel.org/admin-guide/cgroup-v2.html>, "Processes").
//! 2. `/proc/self/mountinfo` says where each hierarchy is mounted, and which of its
//!    directories the mount shows (the 4th field, `root`; `proc(5)`): the v2 one is `cgroup2`,
//!    the v1 one `cgroup` with `memory` among its super options.
//! 3. From the process's own directory up to the mount point, each `memory.max` (v2: `max` or
//!    bytes) or `memory.limit_in_bytes` (v1: bytes, about `i64::MAX` for none) is read; the
//!    lowest limit wins, across both hierarchies on a hybrid system.

use std::path::{Path, PathBuf};

/// A v1 "limit" above this means none: the kernel reports `i64::MAX` rounded down to a page.
const NO_LIMIT: u64 = 1 << 60;

/// The memory limit of this process's cgroup or its nearest limited ancestor, in bytes;
/// `None` when there is none, or nothing could be read.
pub fn memory_limit() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // Without mountinfo (it is always there on Linux), the usual mount points.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_else(|_| {
        "0 0 0:0 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
         0 0 0:0 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
            .to_owned()
    });
    memory_limit_in(&cgroup, &mountinfo)
}

/// [`memory_limit`] from the contents of `/proc/self/cgroup` and `/proc/self/mountinfo`; the
/// limit files are read where the mountinfo says the hierarchies are (tests point it at
/// fixture trees).
pub fn memory_limit_in(cgroup: &str, mountinfo: &str) -> Option<u64> {
    let mut lowest: Option<u64> = None;
    for line in cgroup.lines() {
        // `hierarchy-ID:controller-list:cgroup-path`; the path may itself contain ':'.
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let hierarchy = if id == "0" && controllers.is_empty() {
            Hierarchy::V2
        } else if controllers.split(',').any(|c| c == "memory") {
            Hierarchy::V1
        } else {
            continue;
        };
        for mount in mounts(mountinfo).filter(|m| m.hierarchy == hierarchy) {
            for limit in limits_up_from(&mount, path, hierarchy) {
                lowest = Some(lowest.map_or(limit, |l| l.min(limit)));
            }
        }
    }
    lowest
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hierarchy {
    V1,
    V2,
}

impl Hierarchy {
    fn limit_file(self) -> &'static str {
        match self {
            Self::V1 => "memory.limit_in_bytes",
            Self::V2 => "memory.max",
        }
    }

    /// A limit file's contents as a limit: `None` for "max", v1's near-`i64::MAX`, or garbage.
    fn parse(self, contents: &str) -> Option<u64> {
        contents
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&bytes| bytes < NO_LIMIT)
    }
}

/// A mounted memory cgroup hierarchy.
#[derive(Debug)]
struct Mount {
    hierarchy: Hierarchy,
    /// The directory of the hierarchy the mount shows (`/` for all of it).
    root: String,
    point: PathBuf,
}

/// The memory cgroup mounts in `mountinfo`: `ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL…]
/// - FSTYPE SOURCE SUPER_OPTIONS` (`proc(5)`).
fn mounts(mountinfo: &str) -> impl Iterator<Item = Mount> + '_ {
    mountinfo.lines().filter_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let mut before = before.split(' ');
        let root = unescape(before.nth(3)?);
        let point = PathBuf::from(unescape(before.next()?));
        let mut after = after.split(' ');
        let fstype = after.next()?;
        let super_options = after.nth(1).unwrap_or("");
        let hierarchy = match fstype {
            "cgroup2" => Hierarchy::V2,
            "cgroup" if super_options.split(',').any(|o| o == "memory") => Hierarchy::V1,
            _ => return None,
        };
        Some(Mount {
            hierarchy,
            root,
            point,
        })
    })
}

/// mountinfo escapes space, tab, newline and backslash in paths as `\040`, `\011`, `\012`,
/// `\134`.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The limits found from the process's directory in `mount` up to the mount point.
fn limits_up_from(mount: &Mount, cgroup_path: &str, hierarchy: Hierarchy) -> Vec<u64> {
    // The process's directory relative to what the mount shows. A path outside it (the
    // process's cgroup was moved, or the path has `..`, which OpenJDK also gives up on) falls
    // back to the mount point itself.
    let root = mount.root.trim_end_matches('/');
    let relative = cgroup_path
        .strip_prefix(root)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .filter(|rest| !rest.split('/').any(|c| c == ".."))
        .unwrap_or("");
    let mut dir = mount.point.clone();
    dir.extend(relative.split('/').filter(|c| !c.is_empty()));
    let mut limits = Vec::new();
    let mut at: &Path = &dir;
    loop {
        let contents = std::fs::read_to_string(at.join(hierarchy.limit_file()));
        if let Some(limit) = contents.ok().and_then(|c| hierarchy.parse(&c)) {
            limits.push(limit);
        }
        if at == mount.point {
            break;
        }
        match at.parent() {
            Some(parent) if parent.starts_with(&mount.point) => at = parent,
            _ => break,
        }
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(
            unescape(r"/sys/fs/cgroup/a\040b\134c"),
            r"/sys/fs/cgroup/a b\c"
        );
        assert_eq!(unescape(r"/x\04"), r"/x\04");
        assert_eq!(unescape(r"\"), r"\");
    }

    #[test]
    fn only_memory_cgroup_mounts_are_taken() {
        let found: Vec<_> = mounts(
            "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
             32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
             35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
             garbage\n",
        )
        .map(|m| (m.hierarchy, m.root, m.point))
        .collect();
        assert_eq!(
            found,
            [
                (
                    Hierarchy::V1,
                    "/docker/abc".to_owned(),
                    PathBuf::from("/sys/fs/cgroup/memory")
                ),
                (
                    Hierarchy::V2,
                    "/".to_owned(),
                    PathBuf::from("/sys/fs/cgroup/unified")
                ),
            ]
        );
    }

    #[test]
    fn limit_files_parse_numbers_and_treat_max_as_none() {
        assert_eq!(Hierarchy::V2.parse("268435456\n"), Some(268_435_456));
        assert_eq!(Hierarchy::V2.parse("max\n"), None);
        assert_eq!(Hierarchy::V1.parse("9223372036854771712\n"), None);
        assert_eq!(Hierarchy::V1.parse(""), None);
    }
}
