//! Output buffers. A fresh multi-megabyte buffer costs a page fault per 4 KiB page on first
//! write, which can take longer than the pooling itself. [`zeroed`] asks Linux for transparent
//! huge pages on large buffers (one fault per 2 MiB). The allocating API (`PoolPlan::
//! forward_to_vec` and friends, the `array` functions) goes through [`write_new`], which
//! hands the kernels the fresh memory itself.

use crate::kernels::out::{fill_zero_par, Out};

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
    let mut v = fresh::<T>(n);
    // Written by the threads the pooling will run on: the first touch of each page (a fault,
    // or zeroing memory the allocator had already used) is split between them too, where
    // `vec!` would do all of it on this thread.
    fill_zero_par(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is at least n and its first n elements were all written above.
    unsafe { v.set_len(n) };
    v
}

/// An empty vector with room for `n` elements (advised to use huge pages when large).
fn fresh<T>(n: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_ptr(), n.saturating_mul(std::mem::size_of::<T>()));
    v
}

/// A new vector of `n` elements written by `write`, which gets them as fresh (uninitialised)
/// memory: kernels that store every element skip the zeroing a `&mut [T]` would need. In
/// debug builds the memory holds a poison value (-12345) instead, so that a kernel that
/// misses an element fails the tests against the reference.
///
/// # Safety
/// When `write` returns Ok, it has initialised every element of its buffer.
pub(crate) unsafe fn write_new<T: crate::Element>(
    n: usize,
    write: impl FnOnce(&mut Out<T>) -> crate::Result<()>,
) -> crate::Result<Vec<T>> {
    let mut v = fresh::<T>(n);
    let buf = &mut v.spare_capacity_mut()[..n];
    if cfg!(debug_assertions) {
        buf.fill(std::mem::MaybeUninit::new(T::from_f64(-12345.0)));
    }
    write(&mut Out::from_uninit(buf))?;
    // SAFETY: the capacity is at least n, and `write` initialised all n elements (this
    // function's contract).
    unsafe { v.set_len(n) };
    Ok(v)
}

/// Whether the memory of `buf` is backed by pages already, judged from eight pages spread
/// over it (`mincore`): true for memory an allocator hands out again, false for a new
/// mapping, whose pages the system supplies (zeroed) on their first touch. False where it
/// cannot tell (other systems, a failed call).
#[cfg(target_os = "linux")]
pub(crate) fn resident<T>(buf: &[T]) -> bool {
    const SAMPLES: usize = 8;
    let bytes = std::mem::size_of_val(buf);
    if bytes == 0 {
        return true;
    }
    // SAFETY: sysconf only reads a system constant.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return false,
    };
    let start = buf.as_ptr() as usize;
    (0..SAMPLES).all(|k| {
        let at = (start + (bytes - 1) * k / (SAMPLES - 1)) / page * page;
        let mut state = 0u8;
        // SAFETY: `at` is the page-aligned start of a page holding a byte of `buf`, which
        // lies in a live mapping; mincore only reads the page tables and writes one byte
        // (one page's state) into `state`.
        let ok = unsafe { libc::mincore(at as *mut libc::c_void, 1, &mut state) };
        ok == 0 && state & 1 == 1
    })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn resident<T>(_: &[T]) -> bool {
    false
}

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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// A new mapping has no pages until it is written; memory that was written has.
    #[test]
    fn residency_of_fresh_and_written_memory() {
        let n = 64 << 20; // above any allocator's mapping threshold: a new mapping
        let mut v: Vec<u8> = Vec::with_capacity(n);
        assert!(!super::resident(&v.spare_capacity_mut()[..n]));
        v.resize(n, 1);
        assert!(super::resident(&v));
        assert!(super::resident::<u8>(&[]));
    }
}
