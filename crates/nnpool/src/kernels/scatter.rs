//! Backward kernels.
//!
//! - Max-type ops: `grad_input[idx] += grad_output` plane by plane (channels-first) or sample
//!   by sample (channels-last), each in output order, so every gradient element receives its
//!   contributions in the same order whatever the thread count (deterministic, and identical to
//!   the reference). f32, f64, f16 and bf16 ([`ScatterElem`]).
//! - Average (f32, f64; f16 and bf16 in `planewise`):
//!   the transpose of the separable forward. Per output row, deltas `gy / divisor`
//!   are spread along W into one row buffer, which is added into every input row of the
//!   window (then along D for 3-d). Only one row of scratch per task; sums are grouped by output
//!   row, so results match the reference within rounding.

use super::isa::{multiversion, Isa};
use super::out::{fill_zero, Out};
use super::window::{divide_row, AxisPlan, FastFloat};
use crate::element::Element;
use crate::layout::Layout;
use crate::plan::{Divisor, Geom};
use rayon::prelude::*;
use std::mem::MaybeUninit;

fn inner_of(g: &Geom) -> usize {
    match g.layout {
        Layout::ChannelsFirst => 1,
        Layout::ChannelsLast => g.channels,
    }
}

/// A gradient element the max scatter adds into in place, as `reference::add_in` does: f32
/// and f64 in their own arithmetic; f16 and bf16 in f32, rounded after every add (PyTorch's
/// `Half` and `BFloat16` arithmetic), so the sums are the reference's bits in every type.
/// Zero bits are +0 in each.
///
/// f16 and bf16 went through `planewise`'s plane-by-plane loops before, which read a
/// channels-last sample's values `C` apart. Measured (`PROBE_DTYPE=f16|bf16 PROBE_BWD=1
/// PROBE_N=8 plane_probe 64 112 112 3 2 1`, two rounds alternating, µs per plane, 1 / 2
/// threads): channels-last f16 49–51 / 25 → 5.5–5.6 / 2.7, bf16 39–40 / 20 → 6.1 / 2.9–3.0;
/// channels-first f16 12.8–13.0 / 6.7–6.8 → 5.2–5.5 / 2.5–2.8, bf16 11.0–11.2 / 6.0–6.2 →
/// 5.2–5.3 / 2.6.
pub(crate) trait ScatterElem: Element {
    /// `*slot = *slot + g`, rounded to `Self`.
    fn add_in(slot: &mut Self, g: Self);

    /// `+0 + g`, rounded to `Self`: a value's gradient when `g` is its only contribution.
    #[inline(always)]
    fn first_sum(g: Self) -> Self {
        let mut sum = Self::default();
        Self::add_in(&mut sum, g);
        sum
    }

    /// [`ScatterElem::first_sum`] of `g` when `named`, else +0. f32 selects by a mask of
    /// bits, so that a vectorised loop loads `g` unconditionally: as a branch, it became a
    /// masked load (`vmaskmovps`), slow on AMD cores.
    #[inline(always)]
    fn first_sum_if(g: Self, named: bool) -> Self {
        match named {
            true => Self::first_sum(g),
            false => Self::default(),
        }
    }
}

impl ScatterElem for f32 {
    #[inline(always)]
    fn add_in(slot: &mut f32, g: f32) {
        *slot += g;
    }

    #[inline(always)]
    fn first_sum_if(g: f32, named: bool) -> f32 {
        f32::from_bits((0.0 + g).to_bits() & u32::from(named).wrapping_neg())
    }
}

impl ScatterElem for f64 {
    #[inline(always)]
    fn add_in(slot: &mut f64, g: f64) {
        *slot += g;
    }
}

/// `add_in` for a 16-bit float whose bits `exp` are its exponent: the common case, an
/// element's first gradient (`+0 + g`), is `g` itself without the conversions, except for
/// −0 (the sum is +0) and NaN (the add quietens it).
macro_rules! half_add_in {
    ($t:ty, $exp:literal) => {
        impl ScatterElem for $t {
            #[inline(always)]
            fn add_in(slot: &mut $t, g: $t) {
                let (a, b) = (slot.to_bits(), g.to_bits());
                *slot = if a == 0 && b != 0x8000 && b & 0x7fff <= $exp {
                    g
                } else {
                    <$t>::from_f32(slot.to_f32() + g.to_f32())
                };
            }
        }
    };
}
half_add_in!(half::f16, 0x7c00);
half_add_in!(half::bf16, 0x7f80);

/// Bytes the scatter prefetches ahead of the indices and output gradients it reads. With two
/// input streams and a read-modify-write scattered over the plane, the hardware prefetcher
/// alone left the streams short: resnet_stem_max_bwd nchw at 1 thread (`PROBE_BWD=1
/// plane_probe`) 3.0–4.2 → 2.3–3.5 ms (2, 4 and 8 KiB ahead alike; cache-resident planes
/// even); channels-last, see [`scatter_unit`].
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const INDEX_PREFETCH_AHEAD: usize = 4096;

/// Prefetches the cache line [`INDEX_PREFETCH_AHEAD`] past byte `at` of `data`.
#[inline(always)]
fn prefetch_ahead<T>(data: &[T], at: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it does not fault, and `wrapping_add` forms the
    // address without claiming it lies in the allocation.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (data.as_ptr() as *const i8).wrapping_add(at + INDEX_PREFETCH_AHEAD);
        _mm_prefetch::<_MM_HINT_T0>(p);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}

/// Runs `$body` for each output of a unit in order, with its position in `idx` (`$at`), its
/// index (`$i`), its channel (`$c`, 0 channels-first) and its gradient (`$g`), prefetching
/// the indices and gradients [`INDEX_PREFETCH_AHEAD`] bytes ahead: a cache line of indices at
/// a time channels-first, a pixel at a time channels-last (`inner` channels).
macro_rules! for_each_index {
    ($inner:expr, $idx:expr, $gy:expr, |$at:ident, $i:ident, $c:ident, $g:ident| $body:expr) => {
        let (inner, idx, gy) = ($inner, $idx, $gy);
        if inner == 1 {
            for (k, (ic, gc)) in idx.chunks(8).zip(gy.chunks(8)).enumerate() {
                prefetch_ahead(idx, 64 * k);
                let gy_at = 8 * k * size_of_val(&gy[0]);
                if gy_at.is_multiple_of(64) {
                    prefetch_ahead(gy, gy_at);
                }
                for (j, (&$i, &$g)) in ic.iter().zip(gc).enumerate() {
                    let ($at, $c) = (8 * k + j, 0);
                    $body;
                }
            }
        } else {
            let pixels = idx.chunks_exact(inner).zip(gy.chunks_exact(inner));
            for (p, (pix_i, pix_g)) in pixels.enumerate() {
                for at in (0..inner * size_of::<i64>()).step_by(64) {
                    prefetch_ahead(idx, p * inner * size_of::<i64>() + at);
                }
                for at in (0..inner * size_of_val(&pix_g[0])).step_by(64) {
                    prefetch_ahead(gy, p * inner * size_of_val(&pix_g[0]) + at);
                }
                for ($c, (&$i, &$g)) in pix_i.iter().zip(pix_g).enumerate() {
                    let $at = p * inner + $c;
                    $body;
                }
            }
        }
    };
}

/// Bytes of a plane (or sample) zeroed at a time just ahead of its scatter, so that the
/// zeros are still in cache when the scatter adds to them (a channels-last sample zeroed whole
/// first, 3.2 MB for resnet_stem_max_bwd, went out of L2 before its scatter came back to it).
const ZERO_STEP_BYTES: usize = 4096;

/// Scatter of one plane (`inner == 1`) or sample (`inner == C`), the indices and gradients it
/// reads prefetched ahead ([`INDEX_PREFETCH_AHEAD`]). Contributions arrive in output order, as
/// in the reference. The unit is zeroed a step ahead of the indices ([`ZERO_STEP_BYTES`]): an
/// index at or past the zeroed part first zeroes up to it, so any index order is right, and
/// what is left is zeroed at the end. Returns the first index (in `idx`'s order) that lies
/// outside the plane, if any (they are skipped).
///
/// Channels-last, measured (`PROBE_BWD=1 PROBE_NHWC=1 PROBE_N=8 plane_probe`, alternating
/// with the build before, which zeroed the sample whole first and did not prefetch, ms per
/// call): resnet_stem_max_bwd (`64 112 112 3 2 1`) 3.3–3.5 → 2.6–2.7 at 1 thread, 1.5–1.7 →
/// 1.24–1.28 at 2; vgg_max_224_bwd (`64 224 224 2 2 0`) 11.6–12.2 → 10.0–11.0. The zeroing
/// step alone gave 3–5 %. Channels-first about even.
#[inline(always)]
fn scatter_unit<F: ScatterElem>(
    inner: usize,
    plane: usize,
    idx: &[i64],
    gy: &[F],
    gx: &mut [MaybeUninit<F>],
) -> Option<i64> {
    assert!(gx.len() >= plane * inner && idx.len() == gy.len() && idx.len().is_multiple_of(inner));
    let step = (ZERO_STEP_BYTES / size_of::<F>() / inner).max(1);
    // pixels `..ready` are zeroed
    let mut ready = 0usize;
    // the first stray index: (its position in `idx`, its value)
    let mut bad: Option<(usize, i64)> = None;
    // the common case inline: the pixel is zeroed already
    macro_rules! add {
        ($at:expr, $i:expr, $c:expr, $g:expr) => {
            if ($i as u64) < ready as u64 {
                let slot = &mut gx[$i as usize * inner + $c];
                // SAFETY: pixel `i` lies below `ready`, whose values were all zeroed.
                unsafe { F::add_in(slot.assume_init_mut(), $g) };
            } else {
                let at = ($at, $i, $c, $g);
                ready = zero_ahead(gx, (inner, plane), (ready, step), at, &mut bad);
            }
        };
    }
    for_each_index!(inner, idx, gy, |at, i, c, g| add!(at, i, c, g));
    fill_zero(&mut gx[ready * inner..plane * inner]);
    bad.map(|(_, i)| i)
}

/// The rare case of [`scatter_unit`]: index `i`, at position `at` of the indices, lies at or
/// past the zeroed pixels `..ready` (of `inner` values each). Zeroes the pixels up to it (at
/// least `step`) and adds `g` to value `c` of pixel `i`, or notes `i` in `bad` when it lies
/// outside the plane (`bad` keeps the one earliest in the indices). Returns the new `ready`.
#[cold]
#[inline(never)]
fn zero_ahead<F: ScatterElem>(
    gx: &mut [MaybeUninit<F>],
    (inner, plane): (usize, usize),
    (ready, step): (usize, usize),
    (at, i, c, g): (usize, i64, usize, F),
    bad: &mut Option<(usize, i64)>,
) -> usize {
    if (i as u64) >= plane as u64 {
        if bad.is_none_or(|(first, _)| at < first) {
            *bad = Some((at, i));
        }
        return ready;
    }
    let to = (i as usize + 1).max(ready + step).min(plane);
    fill_zero(&mut gx[ready * inner..to * inner]);
    let slot = &mut gx[i as usize * inner + c];
    // SAFETY: pixel `i` lies below `to`, whose values are all zeroed now.
    unsafe { F::add_in(slot.assume_init_mut(), g) };
    to
}

multiversion!(pub(crate) fn scatter_task<F: ScatterElem>(inner: usize, plane: usize, idx: &[i64], gy: &[F], gx: &mut [MaybeUninit<F>]) -> Option<i64> = scatter_unit);

/// A caller's output gradient at least this large (bytes), in units (planes or samples) of at
/// least [`RING_UNIT_FROM_BYTES`], is scattered through an L2-sized ring and streamed out
/// ([`scatter_ring_unit`]): it cannot stay in cache, and zeroing it in place first reads every
/// line of it from memory (the store misses) only to overwrite it.
///
/// Measured (`PROBE_BWD=1 PROBE_N=8 plane_probe`, AVX-512, alternating with the build before,
/// ms per call, 1 / 2 threads):
/// - resnet_stem_max_bwd nhwc (`64 112 112 3 2 1`): 2.9–3.2 → 2.3–2.5 / 1.3–2.5 → 1.7;
/// - vgg_max_224_bwd nhwc (`64 224 224 2 2 0`): 10.6–11.5 → 10.7–11.2 / 7.7–8.8 → 6.9–7.2;
/// - vgg_max_224_bwd nchw: 9.1–10.0 → 9.4–10.2 / 6.1–6.8 → 5.7–6.0.
///
/// Fresh memory that the system has yet to back with pages (an allocating call's new
/// mapping) keeps [`scatter_unit`]: the kernel zeroes each page on its first touch, so the
/// lines are in cache when the scatter zeroes and adds to them, and the streaming stores only
/// wrote the memory a second time (`PROBE_ALLOC=1`: vgg_max_224_bwd nchw 17.4 → 21.5 ms at 1
/// thread, 11.7 → 13.6 at 2; nhwc 18.7–20.1 → 21.1–21.5 and 10.2–11.8 → 13.8–14.1). Fresh
/// memory that is resident already ([`Out::resident`]: glibc serves allocations up to 32 MB
/// from its heap again after the first is freed) takes the ring as a caller's buffer does:
/// resnet_stem_max_bwd allocating, 1 thread, nchw 2.00–2.22 → 1.44–1.45 ms, nhwc 1.47–1.60
/// → 1.34–1.35.
const STREAM_FROM_BYTES: usize = super::PREFETCH_FROM_BYTES;

/// With more than one thread, gradients smaller than this (bytes; this machine's 32 MiB
/// last-level cache) keep [`scatter_unit`]: there the ring's streaming stores were the
/// slower. Measured (`PROBE_BWD=1 RAYON_NUM_THREADS=2 plane_probe`, into a buffer, ring
/// against no ring, two rounds, ms): resnet_stem_max_bwd (`64 112 112 3 2 1`) at `PROBE_N=8`
/// (25.7 MB) nchw 0.78–0.81 against 0.77, nhwc 0.94–0.97 against 0.73; at `PROBE_N=16` (51.4
/// MB) nchw 1.64 against 2.35–2.39, nhwc 1.89–1.92 against 1.94–2.00; vgg_max_224_bwd (102.8
/// MB) nchw 3.02–3.03 against 4.62–4.73, nhwc 3.63–3.75 against 4.05–4.10. One thread takes
/// the ring from [`STREAM_FROM_BYTES`]: resnet_stem_max_bwd nchw 1.43–1.45 against
/// 1.92–2.22, nhwc 1.34–1.39 against 1.47–1.60.
pub(crate) const STREAM_ON_THREADS_FROM_BYTES: usize = 32 << 20;

/// The smallest unit the ring takes (bytes). Each unit ends with a burst of streaming stores
/// (the ring's last window) that the scatter does not overlap; on 50 KB planes
/// (resnet_stem_max_bwd nchw) that made the ring slower than zeroing in place: 2.1–2.3 →
/// 2.4–2.6 ms at 1 thread, 1.2–1.4 → 1.4–1.5 at 2. Units many rings long amortise it:
/// smaller channels-first planes go through the ring in groups of consecutive planes.
const RING_UNIT_FROM_BYTES: usize = 128 << 10;

/// The largest ring [`scatter_ring_unit`] scatters into (bytes), well inside the 1 MiB L2 of
/// this machine's cores. The ring holds the input pixels one output row's windows reach (where
/// a max pool's argmaxes lie) and a flush either side, rounded up to a power of two: 16 KiB for
/// resnet_stem_max_bwd and vgg_max_224_bwd channels-first, 128 KiB channels-last. Larger
/// reaches (3-D windows over big slices) keep [`scatter_unit`].
const RING_BYTES: usize = 256 << 10;

/// Bytes the ring moves out at a time (whole cache lines, a multiple of 64). Streaming a line
/// at a time behind the scatter instead (stores spread evenly, no bursts) was far slower:
/// resnet_stem_max_bwd 2.1–2.3 → 4.0–5.6 ms at 1 thread, the core waiting on the streaming
/// stores.
const FLUSH_BYTES: usize = 4096;

thread_local! {
    /// A ring buffer that holds only zeros between uses: [`scatter_ring_unit`] leaves every
    /// value it touched zero again, so no task zeroes it afresh. (`u64` words: aligned for
    /// `f32` and `f64`, whose +0.0 is all zero bits.)
    static ZERO_RING: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's ring of `len` zeros, placed half a page from `like` (the
/// gradient it streams into) modulo 4 KiB: at the same offset within a 64-byte line, so the
/// flushes' ring loads and zeroing stores are aligned exactly where their streaming stores
/// are, and never on the same 4 KiB offset as the stores just before them.
///
/// The ring wherever the allocator put it made the speed depend on the gradient's address:
/// on a Zen 3 core, resnet_stem_max_bwd at 1 thread took 4.2–4.9 ms at 14 of the 16 float
/// offsets in a line, 3.2–3.5 at the two where the ring's 256-bit loads split no line
/// (`PROBE_GX_OFF=0..16 PROBE_BWD=1 PROBE_N=8 plane_probe 64 112 112 3 2 1`, best of
/// three); at the gradient's line offset, 3.4–4.0 at every one (channels-last 3.1–3.2 at
/// offset 8, where it took 3.7–4.0); half a page away too, 3.07–3.2 at offset 0.
fn with_zero_ring<F: ScatterElem, R>(
    len: usize,
    like: *const F,
    f: impl FnOnce(&mut [F]) -> R,
) -> R {
    const PAGE: usize = 4096;
    const { assert!(8 % align_of::<F>() == 0) };
    let words = (len * size_of::<F>() + PAGE).div_ceil(8);
    let mut buf = ZERO_RING.with(|r| r.take());
    if buf.len() < words {
        buf = vec![0u64; words];
    }
    let base = buf.as_mut_ptr().cast::<u8>();
    let shift = (like as usize + PAGE / 2).wrapping_sub(base as usize) % PAGE;
    // SAFETY: `shift` is below 4096 and a multiple of `align_of::<F>()` (both addresses are
    // aligned to it: `like` is an `F`'s, `base` a `u64`'s, and `align_of::<F>()` divides 8
    // and 4096), so the `len` values from `base + shift` lie within the buffer's
    // `len * size_of::<F>() + 4096` bytes, suitably aligned. They are all zero (fresh, or
    // left so by the last user: values outside the slice are never touched), and zero bits
    // are a valid `F` (+0.0). The slice borrows `buf`, which outlives it.
    let ring = unsafe { std::slice::from_raw_parts_mut(base.add(shift).cast::<F>(), len) };
    let r = f(ring);
    // kept only when `f` returned: a panic part-way would leave values in it
    ZERO_RING.with(|r| *r.borrow_mut() = buf);
    r
}

/// The scatter of [`scatter_unit`] for gradients that do not fit in cache. Element `e` of
/// the unit (`pixel * inner + channel`) is summed in a ring of zeros while it lies in the
/// ring's window `lo..lo + ring.len()`; an element past the window slides it forward,
/// streaming the elements it leaves behind into `gx` (non-temporal stores: no read of `gx`
/// at all) and zeroing them in the ring; the rare element below the window (indices out of
/// raster order) is added in `gx` itself. Each element still receives its contributions in
/// output order from +0.0, so the sums are the reference's bits. Elements no index reaches
/// are streamed out as zeros. Leaves the ring all zeros. Returns the first stray index.
///
/// `gx` holds one unit or, channels-first, a group of consecutive planes (`idx` and `gy`
/// theirs): plane `q`'s elements follow on at `q * plane`, so the window slides on through
/// the group and streams out once at its end, not at the end of every small plane.
#[inline(always)]
fn scatter_ring_unit<F: ScatterElem>(
    isa: Isa,
    (inner, plane): (usize, usize),
    idx: &[i64],
    gy: &[F],
    gx: &mut [MaybeUninit<F>],
    ring: &mut [F],
) -> Option<i64> {
    let (n_unit, len) = (plane * inner, ring.len());
    let units = gx.len() / n_unit;
    let n = units * n_unit;
    let flush = FLUSH_BYTES / size_of::<F>();
    assert!(
        len.is_power_of_two()
            && len.is_multiple_of(flush)
            && units > 0
            && gx.len() == n
            && idx.len() == gy.len()
            && idx.len().is_multiple_of(inner * units)
    );
    let mask = len - 1;
    // elements `..lo` are in `gx`, `lo..lo + len` in the ring, the rest untouched
    let mut lo = 0usize;
    let mut bad: Option<i64> = None;
    // where the current plane of a group (channels-first) starts in `gx`
    let mut offset = 0usize;
    macro_rules! add {
        ($i:expr, $c:expr, $g:expr) => {
            if ($i as u64) < plane as u64 {
                let e = offset + $i as usize * inner + $c;
                if e.wrapping_sub(lo) < len {
                    // SAFETY: `e & mask` is below `len`, the ring's length.
                    unsafe { F::add_in(ring.get_unchecked_mut(e & mask), $g) };
                } else {
                    lo = ring_miss(isa, (gx, &mut *ring), (n, lo, flush), e, $g);
                }
            } else if bad.is_none() {
                bad = Some($i);
            }
        };
    }
    let out_unit = idx.len() / units;
    for (idx, gy) in idx.chunks(out_unit.max(1)).zip(gy.chunks(out_unit.max(1))) {
        for_each_index!(inner, idx, gy, |_at, i, c, g| add!(i, c, g));
        offset += n_unit;
    }
    let end = (lo + len).min(n);
    flush_ring(isa, (gx, ring), (lo, end), flush);
    stream_out(isa, &mut gx[end..n], None);
    stream_fence();
    bad
}

/// The rare case of [`scatter_ring_unit`]: element `e` (below `n`) lies outside the ring's
/// window `lo..lo + ring.len()`. Returns the window's new start.
#[cold]
#[inline(never)]
fn ring_miss<F: ScatterElem>(
    isa: Isa,
    (gx, ring): (&mut [MaybeUninit<F>], &mut [F]),
    (n, lo, flush): (usize, usize, usize),
    e: usize,
    g: F,
) -> usize {
    let len = ring.len();
    if e < lo {
        // SAFETY: elements below `lo` were all streamed out (written) already.
        unsafe { F::add_in(gx[e].assume_init_mut(), g) };
        return lo;
    }
    // the least whole-flush start whose window holds `e` (past `lo`: `e >= lo + len`)
    let new_lo = (e / flush + 1) * flush - len;
    let kept = (lo + len).min(new_lo);
    flush_ring(isa, (&mut *gx, &mut *ring), (lo, kept), flush);
    // elements between the old window and the new one received nothing
    stream_out(isa, &mut gx[kept..new_lo.min(n)], None);
    F::add_in(&mut ring[e & (len - 1)], g);
    new_lo
}

/// Streams the ring's elements `from..to` (`from` a multiple of `flush`) into `gx`, zeroing
/// them in the ring.
fn flush_ring<F: ScatterElem>(
    isa: Isa,
    (gx, ring): (&mut [MaybeUninit<F>], &mut [F]),
    (from, to): (usize, usize),
    flush: usize,
) {
    let mask = ring.len() - 1;
    for at in (from..to).step_by(flush) {
        let m = flush.min(to - at);
        // (a flush never wraps: `at` and the ring's length are multiples of `flush`)
        let r = at & mask;
        stream_out(isa, &mut gx[at..at + m], Some(&mut ring[r..r + m]));
    }
}

/// Writes `src` into `dst` (zeros when `None`) with non-temporal stores where the target has
/// them, and zeroes `src`. Call [`stream_fence`] before the task ends.
fn stream_out<F: ScatterElem>(isa: Isa, dst: &mut [MaybeUninit<F>], mut src: Option<&mut [F]>) {
    let n = dst.len();
    let size = size_of::<F>();
    let head = match dst.as_ptr().cast::<u8>().align_offset(64) {
        off if off.is_multiple_of(size) => (off / size).min(n),
        _ => n,
    };
    let lines = (n - head) * size / 64;
    let body = lines * 64 / size;
    let mut scalar = |range: std::ops::Range<usize>| {
        for k in range {
            let v = match src.as_deref_mut() {
                Some(s) => std::mem::take(&mut s[k]),
                None => F::default(),
            };
            dst[k].write(v);
        }
    };
    scalar(0..head);
    scalar(head + body..n);
    #[cfg(target_arch = "x86_64")]
    {
        let d = dst[head..head + body].as_mut_ptr().cast::<u8>();
        let s = src.map(|s| s[head..head + body].as_mut_ptr().cast::<u8>());
        // SAFETY: `d` is 64-byte aligned and `lines * 64` bytes of `dst` lie from it; `s`,
        // when given, as many of `src` (a distinct slice); `Isa::Avx512` and `Isa::Avx2` are
        // only produced after AVX-512F and AVX2 (with AVX) were detected, SSE2 is in every
        // x86-64.
        unsafe {
            match isa {
                Isa::Avx512 => stream_lines_avx512(d, s, lines),
                Isa::Avx2 => stream_lines_avx2(d, s, lines),
                _ => stream_lines_sse2(d, s, lines),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        scalar(head..head + body);
    }
}

/// Non-temporal stores are weakly ordered: fence them before the task reports done.
fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 (sfence) is in every x86-64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

/// Defines `$name(dst, src, lines)`: streams `lines` 64-byte lines from `src` (zeros when
/// `None`) to `dst` in `$vec` stores, zeroing `src`.
///
/// The functions' safety contract: `dst` is 64-byte aligned with `lines * 64` writable bytes;
/// `src`, when given, has as many readable and writable bytes, apart from `dst`; the CPU
/// has `$feature`.
macro_rules! stream_lines {
    ($name:ident, $feature:literal, $vec:ty, $zero:ident, $load:ident, $store:ident, $stream:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name(dst: *mut u8, src: Option<*mut u8>, lines: usize) {
            use std::arch::x86_64::*;
            const BYTES: usize = size_of::<$vec>();
            let zero = $zero();
            for q in 0..lines * 64 / BYTES {
                // SAFETY: vector `q` lies within both buffers (the contract), `dst` aligned.
                unsafe {
                    let v = match src {
                        Some(s) => {
                            let p = s.add(BYTES * q).cast::<$vec>();
                            let v = $load(p);
                            $store(p, zero);
                            v
                        }
                        None => zero,
                    };
                    $stream(dst.add(BYTES * q).cast(), v);
                }
            }
        }
    };
}

stream_lines!(
    stream_lines_avx512,
    "avx512f",
    __m512i,
    _mm512_setzero_si512,
    _mm512_loadu_si512,
    _mm512_storeu_si512,
    _mm512_stream_si512
);
// 256-bit streaming stores where AVX2 is the level: on a Zen 3 core, resnet_stem_max_bwd at
// 1 thread (through the ring) took 3.55–3.72 → 3.02–3.11 ms channels-first, 3.81–3.93 →
// 3.46–3.47 channels-last, against the 128-bit ones (`PROBE_BWD=1 PROBE_N=8 plane_probe 64
// 112 112 3 2 1`, three rounds alternating).
stream_lines!(
    stream_lines_avx2,
    "avx",
    __m256i,
    _mm256_setzero_si256,
    _mm256_loadu_si256,
    _mm256_storeu_si256,
    _mm256_stream_si256
);
stream_lines!(
    stream_lines_sse2,
    "sse2",
    __m128i,
    _mm_setzero_si128,
    _mm_loadu_si128,
    _mm_storeu_si128,
    _mm_stream_si128
);

multiversion!(fn scatter_ring_task<F: ScatterElem>(stream_isa: Isa, units: (usize, usize), idx: &[i64], gy: &[F], gx: &mut [MaybeUninit<F>], ring: &mut [F]) -> Option<i64> = scatter_ring_unit);

/// The smallest gradient (bytes) that takes the ring on more than one thread: channels-last
/// gradients on AVX2 cores take it from [`STREAM_FROM_BYTES`], as on one thread, others
/// from [`STREAM_ON_THREADS_FROM_BYTES`].
///
/// On a Zen 3 core (AVX2; its 32 MiB L3 shared with other machines' work), the ring placed
/// by [`with_zero_ring`] was the faster for resnet_stem_max_bwd channels-last at 2 threads,
/// and still the slower channels-first (`PROBE_BWD=1 PROBE_N=8 RAYON_NUM_THREADS=2
/// plane_probe 64 112 112 3 2 1`, into a buffer, ring against no ring, three rounds
/// alternating, ms): nhwc 1.47–1.79 against 1.82–2.16 (two gradient offsets), nchw
/// 1.74–1.82 against 1.45–1.79; at `PROBE_N=4` (12.8 MB) nhwc 0.71–0.79 against 0.71–0.91.
/// The AVX-512 figures of [`STREAM_ON_THREADS_FROM_BYTES`] predate the ring's placement and
/// stand until measured again on such a core.
fn ring_on_threads_from(isa: Isa, layout: Layout) -> usize {
    match (isa, layout) {
        (Isa::Avx2, Layout::ChannelsLast) => STREAM_FROM_BYTES,
        _ => STREAM_ON_THREADS_FROM_BYTES,
    }
}

/// Whether [`max_backward`] scatters a gradient of `bytes` in `layout` through the streaming
/// ring on the current thread count and `isa` (see [`STREAM_FROM_BYTES`],
/// [`ring_on_threads_from`]); `resident` says whether its memory is backed by pages already
/// (asked last: a system call).
pub(crate) fn takes_ring(
    (isa, layout): (Isa, Layout),
    bytes: usize,
    resident: impl FnOnce() -> bool,
) -> bool {
    bytes >= STREAM_FROM_BYTES
        && (rayon::current_num_threads() == 1 || bytes >= ring_on_threads_from(isa, layout))
        && resident()
}

/// `grad_input[plane][idx] += grad_output`, in parallel over planes/samples, each zeroed
/// first, a step at a time just ahead of its scatter (so `gx` may be fresh memory: its first
/// touch is that zeroing). Returns the first out-of-plane index (those are skipped).
pub(crate) fn max_backward<F: ScatterElem>(
    isa: Isa,
    g: &Geom,
    reach: impl FnOnce() -> Option<usize>,
    idx: &[i64],
    gy: &[F],
    gx: &mut Out<F>,
) -> Option<i64> {
    let inner = inner_of(g);
    let (in_unit, out_unit) = (g.in_plane() * inner, g.out_plane() * inner);
    if in_unit == 0 || out_unit == 0 {
        gx.init();
        return None;
    }
    let bytes = gx.len() * size_of::<F>();
    let streams = takes_ring((isa, g.layout), bytes, || gx.resident());
    // SAFETY: `scatter_unit` zero-fills every value of its plane (or sample), each before
    // anything else touches it, then stores only sums of values; the planes tile `gx`.
    let gx = unsafe { gx.uninit() };
    let plane = g.in_plane();
    type Unit<'a, F> = ((&'a mut [MaybeUninit<F>], &'a [F]), &'a [i64]);
    // the ring must hold one output row's reach and a flush on either side of it
    let flush = FLUSH_BYTES / size_of::<F>();
    let ring_len = streams
        .then(reach)
        .flatten()
        .and_then(|r| r.checked_mul(inner)?.checked_add(2 * flush))
        .and_then(usize::checked_next_power_of_two)
        .filter(|&r| r * size_of::<F>() <= RING_BYTES)
        .unwrap_or(0);
    // The ring's units: channels-first planes go in groups of at least
    // `RING_UNIT_FROM_BYTES` (consecutive planes lie one after the other in `gx` too);
    // smaller channels-last samples keep `scatter_unit`.
    let group = match inner {
        1 if ring_len > 0 => RING_UNIT_FROM_BYTES.div_ceil(in_unit * size_of::<F>()),
        _ => 1,
    };
    let (in_unit, out_unit) = (in_unit * group, out_unit * group);
    let ring_len = match in_unit * size_of::<F>() {
        bytes if bytes >= RING_UNIT_FROM_BYTES => ring_len,
        _ => 0,
    };
    let work = |((gx, gy), idx): Unit<F>| {
        if ring_len > 0 {
            with_zero_ring(ring_len, gx.as_ptr().cast::<F>(), |ring| {
                scatter_ring_task::<F>(isa, isa, (inner, plane), idx, gy, gx, ring)
            })
        } else {
            scatter_task::<F>(isa, inner, plane, idx, gy, gx)
        }
    };
    if gx.len() < (1 << 16) {
        gx.chunks_mut(in_unit)
            .zip(gy.chunks(out_unit))
            .zip(idx.chunks(out_unit))
            .map(work)
            .fold(None, |first, b| first.or(b)) // every plane, even after a stray index
    } else {
        gx.par_chunks_mut(in_unit)
            .zip(gy.par_chunks(out_unit))
            .zip(idx.par_chunks(out_unit))
            .map(work)
            .collect::<Vec<_>>()
            .into_iter()
            .find_map(|b| b)
    }
}

/// One channels-first output row's deltas spread along W as a sum of shifted copies: the
/// deltas are placed `s` apart in a zeroed buffer (`z[margin + ow·s] = delta[ow]`), and input
/// `x` receives `Σ_j z[margin + x + pad − j·d]`, the taps `x = ow·s − pad + j·d` of every
/// window that reaches it, positions outside the input dropped as the spans clip them. The
/// `k` shifted adds are vector loops, where adding each delta into its window's taps, one
/// value at a time, chained every add through a store and a reload: 3×3 stride-2 windows on
/// 56² planes took 3.1 µs per plane, 81 % of it that loop.
struct SpacedDeltas<F> {
    z: Vec<F>,
    margin: usize,
    k: usize,
    s: usize,
    d: usize,
    pad: usize,
}

impl<F: FastFloat> SpacedDeltas<F> {
    /// Whether `aw` has plain sliding windows over `w_in` inputs (each span the in-bounds taps
    /// of `o·s − pad + j·d`, `j < k`), not adaptive ones.
    fn applies(aw: &AxisPlan, w_in: usize) -> bool {
        let (k, s, d, pad) = (aw.k, aw.s, aw.d, aw.pad);
        k > 0
            && s > 0
            && d > 0
            && aw.spans.iter().enumerate().all(|(o, span)| {
                let start = (o * s) as i128 - pad as i128;
                let taps = (0..k as i128)
                    .map(|j| start + j * d as i128)
                    .filter(|&t| t >= 0 && t < w_in as i128);
                span.taps().map(|t| t as i128).eq(taps)
            })
    }

    /// For an axis [`SpacedDeltas::applies`] takes.
    fn new(aw: &AxisPlan, w_in: usize) -> Self {
        let (k, s, d, pad) = (aw.k, aw.s, aw.d, aw.pad);
        let margin = (k - 1) * d;
        let len = margin + (aw.spans.len() * s).max(w_in + pad) + 1;
        SpacedDeltas {
            z: vec![F::zero(); len],
            margin,
            k,
            s,
            d,
            pad,
        }
    }

    /// `row = ` the deltas of one output row spread over their windows' taps.
    #[inline(always)]
    fn spread(&mut self, isa: Isa, deltas: &[F], row: &mut [F]) {
        let (m, s) = (self.margin, self.s);
        // only these positions are ever written: the gaps between them stay zero
        let spaced = &mut self.z[m..m + deltas.len() * s];
        match s {
            1 => spaced.copy_from_slice(deltas),
            // (the gap written too: a vector interleave with zeros)
            2 => {
                for (pair, &v) in spaced.chunks_exact_mut(2).zip(deltas) {
                    pair[0] = v;
                    pair[1] = F::zero();
                }
            }
            _ => {
                for (at, &v) in spaced.chunks_exact_mut(s).zip(deltas) {
                    at[0] = v;
                }
            }
        }
        let w = row.len();
        let base = m + self.pad;
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 {
            if let (Some(row), Some(z)) = (
                super::cast_mut::<F, f32>(&mut *row),
                super::cast::<F, f32>(&self.z),
            ) {
                // SAFETY: `Isa::Avx512` is only chosen where the CPU has AVX-512F.
                unsafe { super::x86::sum_shifted_avx512(row, z, base, self.d, self.k) };
                return;
            }
        }
        row.copy_from_slice(&self.z[base..base + w]);
        for j in 1..self.k {
            let from = base - j * self.d;
            add_assign(isa, row, &self.z[from..from + w]);
        }
    }
}

/// `dst[i] += src[i]`: f32 at the AVX-512 level by an explicit loop with a masked tail (the
/// compiler's own loop for these short rows, 56 values, ran 32 at a time and left the rest to
/// a scalar loop; written in chunks of 16, it was vectorised across the chunks, with gathers
/// and scatters), else the compiler's loop.
#[inline(always)]
fn add_assign<F: FastFloat>(isa: Isa, dst: &mut [F], src: &[F]) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        if let (Some(d), Some(s)) = (
            super::cast_mut::<F, f32>(&mut *dst),
            super::cast::<F, f32>(src),
        ) {
            // SAFETY: `Isa::Avx512` is only chosen where the CPU has AVX-512F.
            unsafe { super::x86::add_assign_avx512(d, s) };
            return;
        }
    }
    let _ = isa;
    for (a, &b) in dst.iter_mut().zip(src) {
        *a += b;
    }
}

/// Average backward of one plane/sample. Each input row is stored whole the first time a
/// window reaches it (as `0 + value`, the reference's first add, which makes a −0 +0), added
/// into after, and zero-filled at the end if no window reached it: no pass of its own zeroes
/// the gradient first (16 % of the time of 3×3 stride-2 windows on 56² planes, where it was
/// a `memset` of every plane).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn avg_unit<F: FastFloat>(
    isa: Isa,
    axes: &[AxisPlan; 3],
    div: Divisor,
    in3: [usize; 3],
    inner: usize,
    spaced: bool,
    gy: &[F],
    gx: &mut [MaybeUninit<F>],
) {
    let [ad, ah, aw] = axes;
    let [d_in, h_in, w_in] = in3;
    let (oh_n, ow_n) = (ah.spans.len(), aw.spans.len());
    let in_row = w_in * inner;
    let mut stored = vec![false; d_in * h_in];
    let mut row = vec![F::zero(); in_row];
    let mut deltas: Vec<F> = Vec::with_capacity(ow_n * inner);
    let mut spaced = spaced.then(|| SpacedDeltas::new(aw, w_in));
    for (od, sd) in ad.spans.iter().enumerate() {
        for (oh, sh) in ah.spans.iter().enumerate() {
            // this output row's deltas, then spread along W
            let gy_row =
                &gy[((od * oh_n + oh) * ow_n) * inner..((od * oh_n + oh + 1) * ow_n) * inner];
            // (plain loops: an iterator adapter here is compiled outside the ISA context)
            deltas.clear();
            deltas.extend_from_slice(gy_row);
            divide_row(&mut deltas, inner, div, *sd, *sh, aw);
            if let Some(spaced) = &mut spaced {
                spaced.spread(isa, &deltas, &mut row);
            } else if inner == 1 {
                row.fill(F::zero());
                for (ow, sw) in aw.spans.iter().enumerate() {
                    for t in sw.taps() {
                        row[t] += deltas[ow];
                    }
                }
            } else {
                row.fill(F::zero());
                for (ow, sw) in aw.spans.iter().enumerate() {
                    let dl = &deltas[ow * inner..(ow + 1) * inner];
                    for t in sw.taps() {
                        for (a, &b) in row[t * inner..(t + 1) * inner].iter_mut().zip(dl) {
                            *a += b;
                        }
                    }
                }
            }
            // add the row into every input row (and depth slice) of the window
            for d in sd.taps() {
                for h in sh.taps() {
                    let r = d * h_in + h;
                    let dst = &mut gx[r * in_row..(r + 1) * in_row];
                    if stored[r] {
                        // SAFETY: row `r` was stored whole (below) when a window first
                        // reached it.
                        let dst = unsafe { super::out::assume_init_mut(dst) };
                        add_assign(isa, dst, &row);
                    } else {
                        for (a, &b) in dst.iter_mut().zip(&row) {
                            *a = MaybeUninit::new(F::zero() + b);
                        }
                        stored[r] = true;
                    }
                }
            }
        }
    }
    for (r, _) in stored.iter().enumerate().filter(|(_, &s)| !s) {
        fill_zero(&mut gx[r * in_row..(r + 1) * in_row]);
    }
}

multiversion!(fn avg_task<F: FastFloat>(at: Isa, axes: &[AxisPlan; 3], div: Divisor, in3: [usize; 3], inner: usize, spaced: bool, gy: &[F], gx: &mut [MaybeUninit<F>]) -> () = avg_unit);

/// Average (and adaptive/global average) backward, in parallel over planes/samples.
pub(crate) fn avg_backward<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    div: Divisor,
    gy: &[F],
    gx: &mut Out<F>,
) {
    if super::few_channels::applies(g) {
        super::few_channels::avg_backward::<F>(isa, g, axes, div, gy, gx);
        return;
    }
    if let Some(shape) = super::padded::avg_backward_shape(g, axes, div) {
        super::padded::avg_backward::<F>(isa, &shape, axes, div, gy, gx);
        return;
    }
    // SAFETY: `avg_unit` stores every element of its plane (or sample), initialised values
    // only; the planes tile `gx`.
    let gx = unsafe { gx.uninit() };
    let inner = inner_of(g);
    let (in_unit, out_unit) = (g.in_plane() * inner, g.out_plane() * inner);
    let spaced = inner == 1 && SpacedDeltas::<F>::applies(&axes[2], g.in3[2]);
    let work = |(gx, gy): (&mut [MaybeUninit<F>], &[F])| {
        avg_task::<F>(isa, isa, axes, div, g.in3, inner, spaced, gy, gx)
    };
    if gx.len() < (1 << 16) {
        gx.chunks_mut(in_unit)
            .zip(gy.chunks(out_unit))
            .for_each(work);
    } else {
        gx.par_chunks_mut(in_unit)
            .zip(gy.par_chunks(out_unit))
            .for_each(work);
    }
}
