//! The memory allocator's settings of the tools' processes.
//!
//! A step of private training allocates and frees tensors of one to tens of megabytes in
//! every round (PrivateCompare's bit shares alone are 63 bytes per compared value). With
//! glibc's defaults each allocation of that size is a fresh `mmap` whose pages fault in one
//! by one when written, and each free a `munmap`: about 85 ms of kernel time per batch-128
//! step of network D, a fifth of the step. Keeping freed memory in the process lets the next
//! round reuse pages that are already mapped.

/// Serves large allocations from the heap (below 1 GiB, glibc's largest heap threshold being
/// lower on some versions: then 32 MiB) and never trims freed memory back to the operating
/// system, so that the tensors of one round reuse the pages of the last. The process keeps
/// its peak heap until it exits. glibc only; elsewhere nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes the allocator's thresholds; it is called before the
        // process starts other threads.
        unsafe {
            if libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30) == 0 {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            }
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}
