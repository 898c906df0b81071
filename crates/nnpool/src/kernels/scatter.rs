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

/// Bytes the channels-first scatter prefetches ahead of the indices and output gradients it
/// reads. With two input streams and a read-modify-write scattered over the plane, the
/// hardware prefetcher alone left the streams short: resnet_stem_max_bwd nchw at 1 thread
/// (`PROBE_BWD=1 plane_probe`) 3.0–4.2 → 2.3–3.5 ms (2, 4 and 8 KiB ahead alike; cache-resident
/// planes even). Channels-last, each output pixel scatters into up to `K²` input pixels, and
/// the prefetch only cost.
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

/// Scatter of one plane (`inner == 1`, its indices and gradients prefetched ahead) or sample
/// (`inner == C`), zeroed first. Returns the first index that lies outside the plane, if any
/// (it is skipped).
#[inline(always)]
fn scatter_unit<F: FastFloat>(
    inner: usize,
    plane: usize,
    idx: &[i64],
    gy: &[F],
    gx: &mut [MaybeUninit<F>],
) -> Option<i64> {
    let gx = fill_zero(gx);
    let mut bad = None;
    if inner == 1 {
        // a cache line of indices at a time
        for (k, (ic, gc)) in idx.chunks(8).zip(gy.chunks(8)).enumerate() {
            prefetch_ahead(idx, 64 * k);
            let gy_at = 8 * k * size_of::<F>();
            if gy_at.is_multiple_of(64) {
                prefetch_ahead(gy, gy_at);
            }
            for (&i, &g) in ic.iter().zip(gc) {
                if (i as u64) < plane as u64 {
                    gx[i as usize] += g;
                } else if bad.is_none() {
                    bad = Some(i);
                }
            }
        }
    } else {
        // (no prefetch: vgg_max_224_bwd nhwc ran 13.4–15.0 → 14.7–18.9 ms with it)
        for (pix_i, pix_g) in idx.chunks_exact(inner).zip(gy.chunks_exact(inner)) {
            for (c, (&i, &g)) in pix_i.iter().zip(pix_g).enumerate() {
                if (i as u64) < plane as u64 {
                    gx[i as usize * inner + c] += g;
                } else if bad.is_none() {
                    bad = Some(i);
                }
            }
        }
    }
    bad
}

multiversion!(fn scatter_task<F: FastFloat>(inner: usize, plane: usize, idx: &[i64], gy: &[F], gx: &mut [MaybeUninit<F>]) -> Option<i64> = scatter_unit);

/// `grad_input[plane][idx] += grad_output`, in parallel over planes/samples, each zeroed
/// first (so `gx` may be fresh memory: its first touch is the zeroing of each plane, in
/// cache just before its scatter). Returns the first out-of-plane index (those are skipped).
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
    // SAFETY: every plane (or sample) is zero-filled by `scatter_unit` before anything else
    // touches it, then only sums of values are stored; the planes tile `gx`.
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
