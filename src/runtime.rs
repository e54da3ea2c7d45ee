//! The tokio runtime, sized to the CPUs this process may use.
//!
//! Cloud Run instances most often have one vCPU. There a multi-thread runtime only adds
//! cross-thread wake-ups and work stealing to every request, so with one CPU available we run
//! everything on the main thread. `available_parallelism` honours cgroup CPU quotas and the
//! affinity mask, so `taskset` and container CPU limits count.

use std::io;
use std::num::NonZeroUsize;

/// Builds the runtime for `cpus` CPUs: current-thread for one, multi-thread otherwise.
pub fn build(cpus: NonZeroUsize) -> io::Result<tokio::runtime::Runtime> {
    if cpus.get() == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cpus.get())
            .enable_all()
            .build()
    }
}

/// The CPUs this process may use (1 if the kernel will not say).
pub fn available_cpus() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}
