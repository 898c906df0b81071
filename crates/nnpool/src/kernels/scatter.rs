//! Backward kernels.
//!
//! - Max-type ops: `grad_input[idx] += grad_output` plane by plane (channels-first) or sample
//!   by sample (channels-last), each in output order, so every gradient element receives its
//!   contributions in the same order whatever the thread count (deterministic, and identical to
//!   the reference).
//! - Average: the transpose of the separable forward. Per output row, deltas `gy / divisor`
//!   are spread along W into one row buffer, which is added into every input row of the
//!   window (then along D for 3-d). Only one row of scratch per task; sums are grouped by output
//!   row, so results match the reference within rounding.

use super::isa::{multiversion, Isa};
use super::out::{fill_zero, Out};
use super::window::{divide_row, AxisPlan, FastFloat};
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
fn scatter_unit<F: FastFloat>(
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
                unsafe { *slot.assume_init_mut() += $g };
            } else {
                let at = ($at, $i, $c, $g);
                ready = zero_ahead(gx, (inner, plane), (ready, step), at, &mut bad);
            }
        };
    }
    if inner == 1 {
        // a cache line of indices at a time
        for (k, (ic, gc)) in idx.chunks(8).zip(gy.chunks(8)).enumerate() {
            prefetch_ahead(idx, 64 * k);
            let gy_at = 8 * k * size_of::<F>();
            if gy_at.is_multiple_of(64) {
                prefetch_ahead(gy, gy_at);
            }
            for (j, (&i, &g)) in ic.iter().zip(gc).enumerate() {
                add!(8 * k + j, i, 0, g);
            }
        }
    } else {
        let pixels = idx.chunks_exact(inner).zip(gy.chunks_exact(inner));
        for (p, (pix_i, pix_g)) in pixels.enumerate() {
            for at in (0..inner * size_of::<i64>()).step_by(64) {
                prefetch_ahead(idx, p * inner * size_of::<i64>() + at);
            }
            for at in (0..inner * size_of::<F>()).step_by(64) {
                prefetch_ahead(gy, p * inner * size_of::<F>() + at);
            }
            for (c, (&i, &g)) in pix_i.iter().zip(pix_g).enumerate() {
                add!(p * inner + c, i, c, g);
            }
        }
    }
    fill_zero(&mut gx[ready * inner..plane * inner]);
    bad.map(|(_, i)| i)
}

/// The rare case of [`scatter_unit`]: index `i`, at position `at` of the indices, lies at or
/// past the zeroed pixels `..ready` (of `inner` values each). Zeroes the pixels up to it (at
/// least `step`) and adds `g` to value `c` of pixel `i`, or notes `i` in `bad` when it lies
/// outside the plane (`bad` keeps the one earliest in the indices). Returns the new `ready`.
#[cold]
#[inline(never)]
fn zero_ahead<F: FastFloat>(
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
    unsafe { *slot.assume_init_mut() += g };
    to
}

multiversion!(fn scatter_task<F: FastFloat>(inner: usize, plane: usize, idx: &[i64], gy: &[F], gx: &mut [MaybeUninit<F>]) -> Option<i64> = scatter_unit);

/// `grad_input[plane][idx] += grad_output`, in parallel over planes/samples, each zeroed
/// first, a step at a time just ahead of its scatter (so `gx` may be fresh memory: its first
/// touch is that zeroing). Returns the first out-of-plane index (those are skipped).
pub(crate) fn max_backward<F: FastFloat>(
    isa: Isa,
    g: &Geom,
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
    // SAFETY: `scatter_unit` zero-fills every value of its plane (or sample), each before
    // anything else touches it, then stores only sums of values; the planes tile `gx`.
    let gx = unsafe { gx.uninit() };
    let plane = g.in_plane();
    type Unit<'a, F> = ((&'a mut [MaybeUninit<F>], &'a [F]), &'a [i64]);
    let work = |((gx, gy), idx): Unit<F>| scatter_task::<F>(isa, inner, plane, idx, gy, gx);
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

/// Average backward of one plane/sample.
#[inline(always)]
fn avg_unit<F: FastFloat>(
    axes: &[AxisPlan; 3],
    div: Divisor,
    in3: [usize; 3],
    inner: usize,
    gy: &[F],
    gx: &mut [F],
) {
    let [ad, ah, aw] = axes;
    let [_, h_in, w_in] = in3;
    let (oh_n, ow_n) = (ah.spans.len(), aw.spans.len());
    let in_row = w_in * inner;
    gx.fill(F::zero());
    let mut row = vec![F::zero(); in_row];
    let mut deltas: Vec<F> = Vec::with_capacity(ow_n * inner);
    for (od, sd) in ad.spans.iter().enumerate() {
        for (oh, sh) in ah.spans.iter().enumerate() {
            // this output row's deltas, then spread along W
            row.fill(F::zero());
            let gy_row =
                &gy[((od * oh_n + oh) * ow_n) * inner..((od * oh_n + oh + 1) * ow_n) * inner];
            // (plain loops: an iterator adapter here is compiled outside the ISA context)
            deltas.clear();
            deltas.extend_from_slice(gy_row);
            divide_row(&mut deltas, inner, div, *sd, *sh, aw);
            if inner == 1 {
                for (ow, sw) in aw.spans.iter().enumerate() {
                    for t in sw.taps() {
                        row[t] += deltas[ow];
                    }
                }
            } else {
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
                    let dst = &mut gx[(d * h_in + h) * in_row..(d * h_in + h + 1) * in_row];
                    for (a, &b) in dst.iter_mut().zip(&row) {
                        *a += b;
                    }
                }
            }
        }
    }
}

multiversion!(fn avg_task<F: FastFloat>(axes: &[AxisPlan; 3], div: Divisor, in3: [usize; 3], inner: usize, gy: &[F], gx: &mut [F]) -> () = avg_unit);

/// Average (and adaptive/global average) backward, in parallel over planes/samples.
pub(crate) fn avg_backward<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    div: Divisor,
    gy: &[F],
    gx: &mut Out<F>,
) {
    if let Some(shape) = super::padded::avg_backward_shape(g, axes, div) {
        super::padded::avg_backward::<F>(isa, &shape, axes, div, gy, gx);
        return;
    }
    let gx = gx.init();
    let inner = inner_of(g);
    let (in_unit, out_unit) = (g.in_plane() * inner, g.out_plane() * inner);
    let work = |(gx, gy): (&mut [F], &[F])| avg_task::<F>(isa, axes, div, g.in3, inner, gy, gx);
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
