//! Output buffers that may not be initialised yet.
//!
//! The allocating API (`PoolPlan::forward_to_vec` and friends) hands the kernels fresh,
//! uninitialised memory. Kernels that store every output element (the channels-last direct
//! path, the 2×2 pairs, the fused channels-first kernels and the average backward of
//! `padded.rs`, the backward scatter, which zeroes each plane itself) write into it as it
//! is; the rest of the channels-first padded path takes it task by task, each part zeroed by
//! its task just before the task writes it ([`Out::par_chunks_init`]); every other path asks for
//! [`Out::init`], which zero-fills it first. Zeroing a buffer that is then overwritten costs
//! a full extra pass over the output (about 1 ms per 25 MB on one core here), which is what
//! the allocating calls used to pay on every path.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A mutable output slice, initialised or not.
pub(crate) struct Out<'a, T> {
    buf: &'a mut [MaybeUninit<T>],
    init: bool,
}

impl<'a, T: Copy + Default + Send + 'static> Out<'a, T> {
    /// A caller's buffer (initialised).
    pub fn from_init(y: &'a mut [T]) -> Self {
        // SAFETY: through this view only initialised values are ever written (`uninit`'s
        // contract, `init`'s fill), so the caller's slice stays initialised.
        let buf = unsafe { as_uninit_mut(y) };
        Out { buf, init: true }
    }

    /// Fresh memory (not initialised).
    pub fn from_uninit(buf: &'a mut [MaybeUninit<T>]) -> Self {
        Out { buf, init: false }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the buffer's memory is backed by pages already: a caller's buffer, or fresh
    /// memory the allocator reused (see [`crate::alloc::resident`]). Writing memory that is
    /// not costs a page fault per page, the system zeroing each page first.
    pub fn resident(&self) -> bool {
        self.init || crate::alloc::resident(self.buf)
    }

    /// The buffer as values, zero-filled first if it was not initialised.
    pub fn init(&mut self) -> &mut [T] {
        if !self.init {
            fill_zero_par(self.buf);
            self.init = true;
        }
        // SAFETY: every element is initialised (it came so, or was just filled), and
        // `MaybeUninit<T>` has the layout of `T`.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast(), self.buf.len()) }
    }

    /// The buffer as it is, for a kernel that stores every element.
    ///
    /// # Safety
    /// The caller writes only initialised values, and (when it reports the problem handled)
    /// writes every element: the allocating callers then take the buffer as initialised.
    pub unsafe fn uninit(&mut self) -> &mut [MaybeUninit<T>] {
        self.buf
    }

    /// The buffer in initialised chunks of `n` elements, for kernels that fill their output
    /// task by task: a fresh buffer's chunks are zeroed each by its own task, just before it
    /// writes them (in cache, by the thread that uses them), not by a pass of their own.
    pub fn par_chunks_init(&mut self, n: usize) -> impl IndexedParallelIterator<Item = &mut [T]> {
        let init = self.init;
        self.buf
            .par_chunks_mut(n)
            .map(move |part| init_part(part, init))
    }

    /// The same buffer viewed as `U`, when `U` is `T`.
    pub fn cast<U: 'static>(&mut self) -> Option<Out<'_, U>> {
        let buf = super::cast_mut::<MaybeUninit<T>, MaybeUninit<U>>(self.buf)?;
        Some(Out {
            buf,
            init: self.init,
        })
    }
}

/// A part of an `Out` buffer as values: as it is when the buffer came initialised, else
/// zero-filled.
fn init_part<T: Copy + Default>(part: &mut [MaybeUninit<T>], init: bool) -> &mut [T] {
    if init {
        // SAFETY: the buffer came initialised (`Out::from_init`) and only initialised values
        // were written since; `MaybeUninit<T>` has the layout of `T`.
        unsafe { std::slice::from_raw_parts_mut(part.as_mut_ptr().cast(), part.len()) }
    } else {
        fill_zero(part)
    }
}

/// Zero-fills `buf` (in parallel when large: the first touch of fresh pages is the costly
/// part, and is split over the threads that will use the buffer) and returns it initialised.
pub(crate) fn fill_zero_par<T: Copy + Default + Send>(buf: &mut [MaybeUninit<T>]) -> &mut [T] {
    const PART: usize = 1 << 20;
    let part = PART / std::mem::size_of::<T>().max(1);
    if super::split_over_threads(buf.len(), part + 1) {
        buf.par_chunks_mut(part).for_each(|p| {
            fill_zero(p);
        });
        // SAFETY: every part was just written; `MaybeUninit<T>` has the layout of `T`.
        unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), buf.len()) }
    } else {
        fill_zero(buf)
    }
}

/// Zero-fills `buf` and returns it initialised.
pub(crate) fn fill_zero<T: Copy + Default>(buf: &mut [MaybeUninit<T>]) -> &mut [T] {
    buf.fill(MaybeUninit::new(T::default()));
    // SAFETY: every element was just written; `MaybeUninit<T>` has the layout of `T`.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), buf.len()) }
}

/// An initialised slice viewed as possibly uninitialised, for a kernel that stores into
/// either kind of buffer.
///
/// # Safety
/// Only initialised values may be written through the view (the slice stays initialised).
pub(crate) unsafe fn as_uninit_mut<T>(y: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`; the caller writes initialised values.
    unsafe { std::slice::from_raw_parts_mut(y.as_mut_ptr().cast(), y.len()) }
}

/// A buffer as values once every element has been stored.
///
/// # Safety
/// Every element of `buf` is initialised.
pub(crate) unsafe fn assume_init_mut<T>(buf: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`; the caller vouches for every element.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), buf.len()) }
}
