//! Output buffers. A fresh multi-megabyte buffer costs a page fault per 4 KiB page on first
//! write, which can take longer than the pooling itself. [`zeroed`] asks Linux for transparent
//! huge pages on large buffers (one fault per 2 MiB), and is what the allocating API uses.

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
    let v = vec![T::default(); n];
    advise_huge(&v);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge<T>(v: &[T]) {
    let bytes = std::mem::size_of_val(v);
    if bytes < HUGE_PAGE_THRESHOLD {
        return;
    }
    const HUGE: usize = 2 << 20;
    let start = (v.as_ptr() as usize).div_ceil(HUGE) * HUGE;
    let end = (v.as_ptr() as usize + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: [start, end) lies inside the vector's live allocation; MADV_HUGEPAGE only
        // changes how the kernel backs those pages, never their contents or validity, and a
        // failure is harmless (we ignore it).
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge<T>(_: &[T]) {}
