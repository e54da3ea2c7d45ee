//! The memory limit comes from the process's own cgroup, wherever the hierarchy is mounted and
//! however deep the process sits in it (issue 17, item 5): fixture trees of cgroup v1 and v2
//! files, with the `/proc/self/cgroup` and `/proc/self/mountinfo` that point into them. Before,
//! only the root of `/sys/fs/cgroup` was read, and a process in a limited cgroup below it (a 1
//! GiB v1 limit, without a cgroup namespace) fell back to 64 MiB.

use std::path::{Path, PathBuf};

use hyper_cloudrun::cgroup::memory_limit_in;

const MIB: u64 = 1024 * 1024;
const V1_UNLIMITED: &str = "9223372036854771712\n";

/// A directory tree under the system's temporary directory, removed when dropped.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "hyper-cloudrun-cgroup-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `contents` to `relative` (creating its directories).
    fn file(&self, relative: &str, contents: &str) -> &Self {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        self
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A mountinfo line for a hierarchy mounted at `point`, showing its directory `root`.
fn mount(root: &str, point: &Path, fstype: &str, super_options: &str) -> String {
    let point = point.to_str().unwrap().replace(' ', "\\040");
    format!(
        "40 31 0:38 {root} {point} rw,nosuid,nodev,noexec,relatime shared:9 - {fstype} {fstype} {super_options}\n"
    )
}

#[test]
fn cgroup_v2_the_limit_of_the_process_cgroup_or_its_nearest_limited_ancestor() {
    let t = Tree::new("v2");
    t.file("memory.stat", "")
        .file("system.slice/memory.max", "1073741824\n")
        .file("system.slice/app.service/memory.max", "max\n");
    let mountinfo = mount("/", &t.path(""), "cgroup2", "rw,nsdelegate");
    assert_eq!(
        memory_limit_in("0::/system.slice/app.service\n", &mountinfo),
        Some(1024 * MIB)
    );
    // Its own limit, when lower than its parent's.
    t.file("system.slice/app.service/memory.max", "268435456\n");
    assert_eq!(
        memory_limit_in("0::/system.slice/app.service\n", &mountinfo),
        Some(256 * MIB)
    );
}

#[test]
fn cgroup_v1_without_a_namespace_the_memory_controllers_path() {
    // As on a host whose container runtime keeps the cgroup namespace: `4:memory:/some/path`.
    let t = Tree::new("v1");
    t.file("memory/memory.limit_in_bytes", V1_UNLIMITED)
        .file("memory/process_api/memory.limit_in_bytes", V1_UNLIMITED)
        .file(
            "memory/process_api/abc123/memory.limit_in_bytes",
            "1073741824\n",
        )
        .file("cpu/process_api/abc123/cpu.shares", "1024\n");
    let mountinfo = [
        mount("/", &t.path("cpu"), "cgroup", "rw,cpu"),
        mount("/", &t.path("memory"), "cgroup", "rw,memory"),
        mount("/", &t.path("unified"), "cgroup2", "rw"),
    ]
    .concat();
    let cgroup =
        "9:name=systemd:/\n5:cpu:/process_api/abc123\n4:memory:/process_api/abc123\n0::/\n";
    assert_eq!(memory_limit_in(cgroup, &mountinfo), Some(1024 * MIB));
    // `memory` in a list of controllers mounted together.
    let combined = mount("/", &t.path("memory"), "cgroup", "rw,memory,hugetlb");
    assert_eq!(
        memory_limit_in("4:hugetlb,memory:/process_api/abc123\n", &combined),
        Some(1024 * MIB)
    );
}

#[test]
fn nested_the_lowest_limit_on_the_way_up_wins() {
    let t = Tree::new("nested");
    t.file("a/memory.max", "536870912\n")
        .file("a/b/memory.max", "max\n")
        .file("a/b/c/memory.max", "2147483648\n");
    let mountinfo = mount("/", &t.path(""), "cgroup2", "rw");
    assert_eq!(memory_limit_in("0::/a/b/c\n", &mountinfo), Some(512 * MIB));
    // Above the mount point nothing is read, even if the files exist.
    let inner = mount("/a/b", &t.path("a/b"), "cgroup2", "rw");
    assert_eq!(memory_limit_in("0::/a/b/c\n", &inner), Some(2048 * MIB));
}

#[test]
fn unlimited_at_every_level_is_no_limit() {
    let t = Tree::new("unlimited");
    t.file("memory.max", "max\n")
        .file("x/memory.max", "max\n")
        .file("v1/memory.limit_in_bytes", V1_UNLIMITED)
        .file("v1/x/memory.limit_in_bytes", V1_UNLIMITED);
    let mountinfo = [
        mount("/", &t.path(""), "cgroup2", "rw"),
        mount("/", &t.path("v1"), "cgroup", "rw,memory"),
    ]
    .concat();
    assert_eq!(memory_limit_in("4:memory:/x\n0::/x\n", &mountinfo), None);
    // No cgroup lines, or no mounts: nothing to read.
    assert_eq!(memory_limit_in("", &mountinfo), None);
    assert_eq!(memory_limit_in("0::/x\n", ""), None);
}

#[test]
fn a_namespaced_container_sees_its_own_cgroup_as_the_root() {
    // Cloud Run, `docker run` with a cgroup namespace: `0::/`, the limit at the mount point.
    let t = Tree::new("namespaced");
    t.file("memory.max", "268435456\n");
    let mountinfo = mount("/", &t.path(""), "cgroup2", "rw");
    assert_eq!(memory_limit_in("0::/\n", &mountinfo), Some(256 * MIB));
}

#[test]
fn a_mount_of_part_of_the_hierarchy_is_followed_from_its_root() {
    // Docker with cgroup v1 and no namespace: the container's directory mounted alone.
    let t = Tree::new("bind root");
    t.file("memory.limit_in_bytes", "1073741824\n");
    let mountinfo = mount("/docker/0123abcd", &t.path(""), "cgroup", "rw,memory");
    assert_eq!(
        memory_limit_in("4:memory:/docker/0123abcd\n", &mountinfo),
        Some(1024 * MIB)
    );
    // A path outside what the mount shows (the cgroup moved): the mount point's own limit.
    assert_eq!(
        memory_limit_in("4:memory:/elsewhere/x\n", &mountinfo),
        Some(1024 * MIB)
    );
    assert_eq!(
        memory_limit_in("4:memory:/docker/0123abcd/../../x\n", &mountinfo),
        Some(1024 * MIB)
    );
}

#[test]
fn on_a_hybrid_system_the_lowest_of_both_hierarchies_counts() {
    let t = Tree::new("hybrid");
    t.file("memory/app/memory.limit_in_bytes", "1073741824\n")
        .file("unified/app/memory.max", "805306368\n");
    let mountinfo = [
        mount("/", &t.path("memory"), "cgroup", "rw,memory"),
        mount("/", &t.path("unified"), "cgroup2", "rw"),
    ]
    .concat();
    assert_eq!(
        memory_limit_in("4:memory:/app\n0::/app\n", &mountinfo),
        Some(768 * MIB)
    );
}
