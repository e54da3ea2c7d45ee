//! The global allocator of musl builds, which is what the image ships: dlmalloc (pure Rust)
//! instead of musl's own mallocng. glibc builds keep glibc's malloc.
//!
//! mallocng serves every allocation above ~128 KiB with a fresh `mmap` and returns it with
//! `munmap` when freed, so each large request body costs its pages again in page faults; glibc
//! and dlmalloc keep such memory in their heap for the next one. Measured on the musl build
//! (bench/README.md, "Allocator"): `POST /echo` of 1 MB bodies over h2c moves +40 % MB/s with
//! -30 % peak RSS (546 k → 77 k page faults for 2,000 bodies), HTTP/1.1 instructions per
//! request unchanged, h2c ones +6 %, +8.7 KB `gzip -9`. Like mallocng, dlmalloc takes one lock
//! per call, so it changes nothing for the multi-thread runtime's contention. Pure Rust: no C
//! toolchain is involved in the flake's musl build.

#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
