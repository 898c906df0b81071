//! Output buffers. A fresh multi-megabyte buffer costs a page fault per 4 KiB page on first
//! write, which can take longer than the pooling itself. [`zeroed`] asks Linux for transparent
//! huge pages on large buffers (one fault per 2 MiB), and is what the allocating API uses.

use rayon::prelude::*;

/// Buffers at least this large are advised to use huge pages.
const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// A zero-filled vector of `n` elements; on Linux, large ones are backed by huge pages when
/// the kernel allows it (`transparent_hugepage` set to `madvise` or `always`).
///
/// ```
/// let v: Vec<f32> = nnpool::zeroed(10);
/// assert!(v.iter().all(|&x| x == 0.0));
/// ```
pub fn zeroed<T: crate::Element>(n: usize) -> Vec<T> {
    let bytes = n.saturating_mul(std::mem::size_of::<T>());
    if bytes < PARALLEL_ZEROING || rayon::current_num_threads() == 1 {
        let v = vec![T::default(); n];
        advise_huge(v.as_ptr(), bytes);
        return v;
    }
    // Written by the threads the pooling will run on: the first touch of each page (a fault,
    // or zeroing memory the allocator had already used) is split between them too, where
    // `vec!` would do all of it on this thread.
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_ptr(), bytes);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(PARALLEL_ZEROING / std::mem::size_of::<T>().max(1))
        .for_each(|part| part.fill(std::mem::MaybeUninit::new(T::default())));
    // SAFETY: the capacity is at least n and its first n elements were all written above.
    unsafe { v.set_len(n) };
    v
}

/// Buffers at least this large are zeroed by all threads, in parts of this size.
const PARALLEL_ZEROING: usize = 1 << 20;

#[cfg(target_os = "linux")]
fn advise_huge<T>(ptr: *const T, bytes: usize) {
    if bytes < HUGE_PAGE_THRESHOLD {
        return;
    }
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).div_ceil(HUGE) * HUGE;
    let end = (ptr as usize + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: [start, end) lies inside the vector's live allocation (of at least `bytes`
        // from `ptr`); MADV_HUGEPAGE only changes how the kernel backs those pages, never
        // their contents or validity, and a failure is harmless (we ignore it).
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge<T>(_: *const T, _: usize) {}
