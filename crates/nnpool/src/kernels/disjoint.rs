//! Max backward for windows that tile the input without overlapping (kernel = stride, no
//! dilation: VGG's 2×2 stride-2 windows).
//!
//! Every input value lies in at most one window, so its gradient is that window's output
//! gradient when the window's index names it, and zero otherwise. Each input row is written
//! once, in order, from the one output row whose windows cover it: a compare and a select per
//! value, in vectors along the row (channels-first, `avx2::disjoint_pairs` for 2-wide windows)
//! or along the channels (channels-last, `avx2::disjoint_pixel`). The scatter of
//! [`super::scatter`] zeroes the gradient (or a ring) and then adds each output gradient at
//! its index: a load, an add and a store per output, on lines spread over two input rows.
//!
//! **Exactness.** The reference adds each output gradient into +0; a value no index names
//! stays +0. Here a named value is `+0 + g` ([`ScatterElem::first_sum`]), the same bits
//! (−0 gives +0, NaN is quietened as the add quietens it). This holds when every index lies in
//! its own window, as the forward's do: a unit (plane or sample) counts the values its indices
//! named, and when that count falls short of its outputs (an index outside its window, given
//! by the caller), the unit is done again by the scatter, which takes any index.
//!
//! **Where it runs** (`kernels::max_backward`): f32, where it measured faster than the
//! scatter. vgg_max_224_bwd (`PROBE_BWD=1 PROBE_N=8 plane_probe 64 224 224 2 2 0`, on a
//! Zen 1 core with AVX2, scatter → this, ms per call, into a buffer / allocating):
//! - 1 thread: channels-first 32.2–32.5 → 17.7 / 24.7–26.5 → 26.2–27.1; channels-last
//!   39.8–41.0 → 17.5–18.4 / 47.0–47.5 → 26.8–27.0;
//! - 2 threads: channels-first 15.8–16.0 → 11.1–11.7 / 15.9–16.3 → 16.4–17.3;
//!   channels-last 20.1–20.3 → 12.0–12.6 / 25.7–26.3 → 17.4–18.6.
//!
//! An allocating call spends about 10.8 ms of these in the system's zeroing of the fresh
//! pages (`clear_page_rep` in `perf`), whichever kernel runs. Not taken, where the scatter
//! was as fast or faster: the portable code channels-first (allocating, 1 thread, 26.0–27.0 →
//! 40.9, LLVM's compares of 64-bit indices against 32-bit values), f64 and bf16 (f64
//! channels-last 13.0 → 15.5 into a buffer, bf16 channels-first 10.7 → 33.1), and AVX-512
//! cores, where the scatter's ring was measured (not this path: no such core here).

use super::isa::{multiversion, Isa};
use super::out::{fill_zero, Out};
use super::scatter::{scatter_task, ScatterElem};
use super::window::AxisPlan;
#[cfg(target_arch = "x86_64")]
use super::{cast, cast_mut};
use crate::layout::Layout;
use crate::plan::Geom;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Values of input gradient one task writes at least (whole rows): channels-first planes of
/// 224² split into bands of 73 rows, channels-last samples into single rows.
const BAND_VALUES: usize = 16 << 10;

/// The windows of a problem this path takes, along H and W (D is a single slice).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DisjointShape {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    stride_h: usize,
    stride_w: usize,
    pad_top: usize,
    pad_left: usize,
    /// Values per pixel: 1 channels-first, C channels-last.
    inner: usize,
}

/// The shape when this path takes the problem: 2-D (or 1-D) windows whose side equals their
/// stride along both axes, no dilation, padding below the stride, each window the in-bounds
/// part of its tile.
pub(crate) fn applies(g: &Geom, axes: &[AxisPlan; 3]) -> Option<DisjointShape> {
    let [ad, ah, aw] = axes;
    let [d, h, w] = g.in3;
    let flat = d == 1 && ad.spans.len() == 1 && ad.spans[0].count == 1;
    let tiles =
        |a: &AxisPlan, n: usize| a.k == a.s && a.pad < a.s && super::padded::exact_spans(a, n);
    let inner = match g.layout {
        Layout::ChannelsFirst => 1,
        Layout::ChannelsLast => g.channels,
    };
    let ok = flat && inner > 0 && tiles(ah, h) && tiles(aw, w);
    ok.then_some(DisjointShape {
        h,
        w,
        oh: ah.spans.len(),
        ow: aw.spans.len(),
        stride_h: ah.s,
        stride_w: aw.s,
        pad_top: ah.pad,
        pad_left: aw.pad,
        inner,
    })
}

/// `grad_input` from the indices and output gradients, in parallel over units and bands of
/// rows; a unit whose indices do not all lie in their windows goes through the scatter.
/// Returns the first index (in unit order) outside its plane, if any (those are skipped).
pub(crate) fn max_backward<F: ScatterElem>(
    isa: Isa,
    s: &DisjointShape,
    idx: &[i64],
    gy: &[F],
    gx: &mut Out<F>,
) -> Option<i64> {
    let plane = s.h * s.w;
    let (in_unit, out_unit) = (plane * s.inner, s.oh * s.ow * s.inner);
    if in_unit == 0 || out_unit == 0 {
        gx.init();
        return None;
    }
    assert!(
        gx.len().is_multiple_of(in_unit)
            && idx.len() == gy.len()
            && idx.len() == gx.len() / in_unit * out_unit
    );
    // SAFETY: every unit's values are all stored: each row by `fill_rows` (every value of
    // it), and the whole unit again by the scatter when its indices fall short.
    let gx = unsafe { gx.uninit() };
    let row = s.w * s.inner;
    let band = BAND_VALUES.div_ceil(row) * row;
    let parallel = gx.len() >= 1 << 16;
    type Unit<'a, F> = ((&'a mut [MaybeUninit<F>], &'a [i64]), &'a [F]);
    let unit = |((gx, idx), gy): Unit<F>| {
        let rows = |(b, rows): (usize, &mut [MaybeUninit<F>])| {
            fill_rows::<F>(isa, isa, s, b * band / row, idx, gy, rows)
        };
        let named: usize = if parallel {
            gx.par_chunks_mut(band).enumerate().map(rows).sum()
        } else {
            gx.chunks_mut(band).enumerate().map(rows).sum()
        };
        match named == out_unit {
            true => None,
            false => scatter_task::<F>(isa, s.inner, plane, idx, gy, gx),
        }
    };
    let units = gx.len() / in_unit;
    if parallel && units > 1 {
        gx.par_chunks_mut(in_unit)
            .zip(idx.par_chunks(out_unit))
            .zip(gy.par_chunks(out_unit))
            .map(unit)
            .collect::<Vec<_>>()
            .into_iter()
            .find_map(|b| b)
    } else {
        gx.chunks_mut(in_unit)
            .zip(idx.chunks(out_unit))
            .zip(gy.chunks(out_unit))
            .map(unit)
            .fold(None, |first, b| first.or(b))
    }
}

multiversion!(fn fill_rows<F: ScatterElem>(isa: Isa, s: &DisjointShape, first_row: usize, idx: &[i64], gy: &[F], rows: &mut [MaybeUninit<F>]) -> usize = fill_rows_body);

/// Input rows `first_row..` of a unit (`rows`, whole rows), each from the output row whose
/// windows cover it (zeros for rows no window covers). Returns how many values an index named.
#[inline(always)]
fn fill_rows_body<F: ScatterElem>(
    isa: Isa,
    s: &DisjointShape,
    first_row: usize,
    idx: &[i64],
    gy: &[F],
    rows: &mut [MaybeUninit<F>],
) -> usize {
    let (inner, out_row) = (s.inner, s.ow * s.inner);
    let mut named = 0;
    for (k, row) in rows.chunks_exact_mut(s.w * inner).enumerate() {
        let r = first_row + k;
        let o = (r + s.pad_top) / s.stride_h;
        if o >= s.oh {
            fill_zero(row);
            continue;
        }
        let (idx, gy) = (
            &idx[o * out_row..][..out_row],
            &gy[o * out_row..][..out_row],
        );
        let first_pixel = (r * s.w) as i64;
        named += if inner == 1 {
            plane_row(isa, s, first_pixel, idx, gy, row)
        } else {
            pixel_row(isa, s, first_pixel, idx, gy, row)
        };
    }
    named
}

/// The gradient of one input value from its window's index and gradient.
#[inline(always)]
fn select<F: ScatterElem>(index: i64, g: F, pixel: i64) -> (F, usize) {
    let named = index == pixel;
    (F::first_sum_if(g, named), named as usize)
}

/// A channels-last input row: each pixel's channels from the output pixel whose window covers
/// it, in vectors along the channels.
#[inline(always)]
fn pixel_row<F: ScatterElem>(
    isa: Isa,
    s: &DisjointShape,
    first_pixel: i64,
    idx: &[i64],
    gy: &[F],
    row: &mut [MaybeUninit<F>],
) -> usize {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa; // (its AVX2 kernel is x86's)
    let inner = s.inner;
    let mut named = 0;
    for (x, out) in row.chunks_exact_mut(inner).enumerate() {
        let o = (x + s.pad_left) / s.stride_w;
        if o >= s.ow {
            fill_zero(out);
            continue;
        }
        let pixel = first_pixel + x as i64;
        let (idx, gy) = (&idx[o * inner..][..inner], &gy[o * inner..][..inner]);
        // channels `..done` written by the vector kernel, the rest here
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if let (Isa::Avx2, Some(gy), Some(out)) = (isa, cast::<F, f32>(gy), cast_mut(out)) {
            // SAFETY: `Isa::Avx2` comes only from `isa::choice()`, after detecting AVX2.
            let (n, written) = unsafe { super::avx2::disjoint_pixel(idx, gy, pixel, out) };
            (named, done) = (named + n, written);
        }
        let tail = out[done..].iter_mut().zip(&idx[done..]).zip(&gy[done..]);
        for ((v, &i), &g) in tail {
            let (value, n) = select(i, g, pixel);
            *v = MaybeUninit::new(value);
            named += n;
        }
    }
    named
}

/// A channels-first input row: the columns of whole windows in vectors (a window's `S`
/// columns interleaved), the columns of a window clipped by either end one at a time.
#[inline(always)]
fn plane_row<F: ScatterElem>(
    isa: Isa,
    s: &DisjointShape,
    first_pixel: i64,
    idx: &[i64],
    gy: &[F],
    row: &mut [MaybeUninit<F>],
) -> usize {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa; // (its AVX2 kernel is x86's)
    let (w, sw, pad) = (s.w, s.stride_w, s.pad_left);
    // windows `first..end` have all `sw` columns in the row (`pad < sw`: only window 0 is
    // clipped at the start)
    let first = usize::from(pad > 0);
    let end = ((w + pad) / sw).min(s.ow).max(first);
    let lo = (first * sw - pad).min(w);
    let hi = if end > first { end * sw - pad } else { lo };
    let mut named = 0;
    let mut column = |x: usize, v: &mut MaybeUninit<F>| {
        let o = (x + pad) / sw;
        let (value, n) = match o < s.ow {
            true => select(idx[o], gy[o], first_pixel + x as i64),
            false => (F::default(), 0),
        };
        *v = MaybeUninit::new(value);
        named += n;
    };
    for (x, v) in row[..lo].iter_mut().enumerate() {
        column(x, v);
    }
    for (x, v) in row[hi..].iter_mut().enumerate() {
        column(hi + x, v);
    }
    let (idx, gy, tiles) = (&idx[first..end], &gy[first..end], &mut row[lo..hi]);
    // whole windows `..done` written by the vector kernel, the rest here
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if let (Isa::Avx2, 2, Some(gy), Some(tiles)) = (isa, sw, cast::<F, f32>(gy), cast_mut(tiles)) {
        let at = first_pixel + lo as i64;
        // SAFETY: `Isa::Avx2` comes only from `isa::choice()`, after detecting AVX2.
        let (n, written) = unsafe { super::avx2::disjoint_pairs(idx, gy, at, tiles) };
        (named, done) = (named + n, written);
    }
    let (idx, gy, tiles) = (&idx[done..], &gy[done..], &mut tiles[done * sw..]);
    let at = first_pixel + (lo + done * sw) as i64;
    named
        + match sw {
            1 => tile_row::<F, 1>(at, idx, gy, tiles),
            2 => tile_row::<F, 2>(at, idx, gy, tiles),
            3 => tile_row::<F, 3>(at, idx, gy, tiles),
            4 => tile_row::<F, 4>(at, idx, gy, tiles),
            _ => tiles
                .iter_mut()
                .enumerate()
                .map(|(x, v)| {
                    let (value, n) = select(idx[x / sw], gy[x / sw], at + x as i64);
                    *v = MaybeUninit::new(value);
                    n
                })
                .sum(),
        }
}

/// Whole windows of `S` columns: window `j`'s columns `j·S ..` from its index and gradient,
/// the first column being pixel `first_pixel`.
#[inline(always)]
fn tile_row<F: ScatterElem, const S: usize>(
    first_pixel: i64,
    idx: &[i64],
    gy: &[F],
    tiles: &mut [MaybeUninit<F>],
) -> usize {
    let n = idx.len().min(gy.len()).min(tiles.len() / S);
    let (idx, gy, tiles) = (&idx[..n], &gy[..n], &mut tiles[..n * S]);
    let mut named = 0;
    for j in 0..n {
        // the tap the index names, relative to the window's first column
        let tap = idx[j].wrapping_sub(first_pixel + (j * S) as i64);
        named += usize::from((tap as u64) < S as u64);
        for b in 0..S {
            tiles[j * S + b] = MaybeUninit::new(F::first_sum_if(gy[j], tap == b as i64));
        }
    }
    named
}
