//! When a kernel splits its work across rayon's threads.
//!
//! The parties of a session often share a machine's cores: `demo` and the QUIC benches run
//! five processes on two cores. Splitting then has two costs beyond waking a thread:
//! - a parallel call from a thread outside rayon's pool hands its work to the pool and sleeps
//!   until a worker is done, two wake-ups even when the work is not split;
//! - a job that a worker steals may wait a whole time slice for a core, and the kernel waits
//!   with it.
//!
//! A kernel therefore goes parallel only for work that takes one core about half a
//! millisecond or more, and otherwise stays on the calling thread without touching rayon.
//! Each threshold below is about that much work for its kind of kernel (measured on an
//! AVX-512 core).

use rayon::prelude::*;

/// Elements of an elementwise map over `u64` words, which memory bandwidth bounds (1-3 ns
/// per element), and of the per-element kernels over bits and small fields.
pub const ELEMENTWISE: usize = 1 << 18;

/// Words of AES-CTR output (about 1 ns per word).
pub const PRG_WORDS: usize = 1 << 19;

/// Multiply-adds of a ring matmul (about 8 per ns).
pub const MATMUL_MACS: usize = 1 << 22;

/// `items.map(f)` in order: on rayon's threads if `parallel`, else on the calling thread.
pub(crate) fn map_vec<T, U, F>(items: Vec<T>, parallel: bool, f: F) -> Vec<U>
where
    T: Send,
    U: Send,
    F: Fn(T) -> U + Sync + Send,
{
    if parallel {
        items.into_par_iter().map(f).collect()
    } else {
        items.into_iter().map(f).collect()
    }
}
