//! Separable window kernels for max and average pooling (and adaptive/global pooling, whose
//! windows are also per-axis spans).
//!
//! A window is reduced along W first (one pass per input row), then along H (combining those
//! row results), then along D. Because each step groups a contiguous run of the row-major tap
//! sequence, and the max combine `later if later > earlier || isnan(later) else earlier` is
//! associative, max values and indices are *identical* to the reference's sequential scan (first
//! maximum, last NaN). Sums are added row by row, so averages differ from the reference's
//! sequential sum only by rounding (documented tolerance: see `crate` docs).
//!
//! Frame versus kernel: per axis, outputs whose taps are all in bounds form the *interior*,
//! reduced by branch-free loops vectorised across outputs (channels-first) or channels
//! (channels-last); border outputs use their clipped spans. W-pass results live in a ring of
//! `effective kernel height` rows, so every input row is reduced along W once.

use super::isa::{multiversion, Isa};
use crate::element::Element;
use crate::geometry::Span;
use crate::layout::Layout;
use crate::plan::{Divisor, Geom};

use rayon::prelude::*;

/// Element types with fast window kernels: the accumulator is the type itself.
pub(crate) trait FastFloat: Element<Acc = Self> + crate::element::Accumulator {}
impl FastFloat for f32 {}
impl FastFloat for f64 {}

/// One axis of a window problem.
#[derive(Debug, Clone)]
pub(crate) struct AxisPlan {
    pub spans: Vec<Span>,
    /// Outputs `[lo, hi)` have all `k` taps in bounds at `o*s - pad + j*d`.
    pub lo: usize,
    pub hi: usize,
    pub k: usize,
    pub s: usize,
    pub d: usize,
    pub pad: usize,
    /// Rows of W-pass results a window needs at once (ring size).
    pub extent: usize,
}

impl AxisPlan {
    pub fn sliding(a: &crate::geometry::AxisGeometry) -> Self {
        let spans: Vec<Span> = (0..a.output).map(|o| a.span(o)).collect();
        let eff = a.dilation * (a.kernel - 1) + 1;
        let lo = a.pad_begin.div_ceil(a.stride).min(a.output);
        let hi = if a.input + a.pad_begin >= eff {
            ((a.input + a.pad_begin - eff) / a.stride + 1).min(a.output)
        } else {
            0
        }
        .max(lo);
        AxisPlan {
            spans,
            lo,
            hi,
            k: a.kernel,
            s: a.stride,
            d: a.dilation,
            pad: a.pad_begin,
            extent: eff,
        }
    }

    pub fn from_spans(spans: Vec<Span>) -> Self {
        let extent = spans
            .iter()
            .map(|s| {
                if s.count == 0 {
                    1
                } else {
                    (s.count - 1) * s.step + 1
                }
            })
            .max()
            .unwrap_or(1);
        AxisPlan {
            spans,
            lo: 0,
            hi: 0,
            k: 1,
            s: 1,
            d: 1,
            pad: 0,
            extent,
        }
    }

    pub fn n_out(&self) -> usize {
        self.spans.len()
    }

    pub fn has_empty_window(&self) -> bool {
        self.spans.iter().any(|s| s.count == 0)
    }
}

/// What a window problem computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reduce {
    Max,
    Sum(Divisor),
}

#[inline(always)]
fn take<F: FastFloat>(earlier: F, later: F) -> bool {
    later > earlier || later.is_nan()
}

/// W pass of one input row for max, channels-first (`inner == 1`): `dst[o]` = reduction of the
/// row over window `o`, `dst_i[o]` its plane-local index (`row_idx` + column).
#[inline(always)]
fn wpass_max_cf<F: FastFloat, const IDX: bool>(
    row: &[F],
    aw: &AxisPlan,
    dst: &mut [F],
    dst_i: &mut [i32],
    row_idx: i32,
) {
    let border = (0..aw.lo).chain(aw.hi..aw.n_out());
    for o in border {
        let sp = aw.spans[o];
        let mut v = F::LOWEST;
        let mut vi = sp.first as i32;
        for t in sp.taps() {
            let x = row[t];
            if take(v, x) {
                v = x;
                vi = t as i32;
            }
        }
        dst[o] = v;
        if IDX {
            dst_i[o] = row_idx + vi;
        }
    }
    let (lo, hi) = (aw.lo, aw.hi);
    if lo >= hi {
        return;
    }
    let base = lo * aw.s - aw.pad;
    match aw.s {
        1 => interior_max::<F, IDX, 1>(
            row,
            base,
            aw.k,
            aw.d,
            1,
            &mut dst[lo..hi],
            &mut dst_i[if IDX { lo..hi } else { 0..0 }],
            row_idx,
        ),
        2 => interior_max::<F, IDX, 2>(
            row,
            base,
            aw.k,
            aw.d,
            2,
            &mut dst[lo..hi],
            &mut dst_i[if IDX { lo..hi } else { 0..0 }],
            row_idx,
        ),
        s => interior_max::<F, IDX, 0>(
            row,
            base,
            aw.k,
            aw.d,
            s,
            &mut dst[lo..hi],
            &mut dst_i[if IDX { lo..hi } else { 0..0 }],
            row_idx,
        ),
    }
}

/// Interior outputs: output `i` reads `row[base + i*stride + j*d]` for `j < k`, all in bounds.
/// `S` is the stride when known at compile time (1 or 2), else 0 and `stride` is used.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn interior_max<F: FastFloat, const IDX: bool, const S: usize>(
    row: &[F],
    base: usize,
    k: usize,
    d: usize,
    stride: usize,
    dst: &mut [F],
    dst_i: &mut [i32],
    row_idx: i32,
) {
    let s = if S == 0 { stride } else { S };
    let n = dst.len();
    // The frame guarantees that the last tap of the last interior output is inside the row.
    assert!(base + (n - 1) * s + (k - 1) * d < row.len());
    assert!(!IDX || dst_i.len() == n);
    for (i, v) in dst.iter_mut().enumerate() {
        // SAFETY: base + i*s <= base + (n-1)*s + (k-1)*d < row.len(), checked above.
        *v = unsafe { *row.get_unchecked(base + i * s) };
    }
    if IDX {
        for (i, vi) in dst_i.iter_mut().enumerate() {
            *vi = row_idx + (base + i * s) as i32;
        }
    }
    for j in 1..k {
        let off = base + j * d;
        if IDX {
            for i in 0..n {
                // SAFETY: off + i*s <= base + (n-1)*s + (k-1)*d < row.len() (checked above);
                // i < n == dst.len() == dst_i.len().
                unsafe {
                    let x = *row.get_unchecked(off + i * s);
                    let v = dst.get_unchecked_mut(i);
                    let take_it = take(*v, x);
                    *v = if take_it { x } else { *v };
                    let vi = dst_i.get_unchecked_mut(i);
                    *vi = if take_it {
                        row_idx + (off + i * s) as i32
                    } else {
                        *vi
                    };
                }
            }
        } else {
            for (i, v) in dst.iter_mut().enumerate() {
                // SAFETY: off + i*s < row.len(), as above.
                let x = unsafe { *row.get_unchecked(off + i * s) };
                *v = if take(*v, x) { x } else { *v };
            }
        }
    }
}

/// W pass for max, channels-last: pixels of `c` lanes; vectorised across channels.
#[inline(always)]
fn wpass_max_cl<F: FastFloat, const IDX: bool>(
    row: &[F],
    c: usize,
    aw: &AxisPlan,
    dst: &mut [F],
    dst_i: &mut [i32],
    row_idx: i32,
) {
    for (o, sp) in aw.spans.iter().enumerate() {
        let out = &mut dst[o * c..(o + 1) * c];
        let mut taps = sp.taps();
        let first = taps
            .next()
            .expect("fast kernels only see non-empty windows");
        out.copy_from_slice(&row[first * c..(first + 1) * c]);
        if IDX {
            dst_i[o * c..(o + 1) * c].fill(row_idx + first as i32);
        }
        for t in taps {
            let src = &row[t * c..(t + 1) * c];
            if IDX {
                let ti = row_idx + t as i32;
                for ((v, vi), &x) in out
                    .iter_mut()
                    .zip(dst_i[o * c..(o + 1) * c].iter_mut())
                    .zip(src)
                {
                    let tk = take(*v, x);
                    *v = if tk { x } else { *v };
                    *vi = if tk { ti } else { *vi };
                }
            } else {
                for (v, &x) in out.iter_mut().zip(src) {
                    *v = if take(*v, x) { x } else { *v };
                }
            }
        }
    }
}

/// W pass for sums (any layout): `dst[o*c + l]` = Σ over window `o`, taps in order.
#[inline(always)]
fn wpass_sum<F: FastFloat>(row: &[F], c: usize, aw: &AxisPlan, dst: &mut [F]) {
    if c == 1 {
        for o in (0..aw.lo).chain(aw.hi..aw.n_out()) {
            let mut acc = F::zero();
            for t in aw.spans[o].taps() {
                acc += row[t];
            }
            dst[o] = acc;
        }
        let (lo, hi) = (aw.lo, aw.hi);
        if lo < hi {
            let base = lo * aw.s - aw.pad;
            match aw.s {
                1 => interior_sum::<F, 1>(row, base, aw.k, aw.d, 1, &mut dst[lo..hi]),
                2 => interior_sum::<F, 2>(row, base, aw.k, aw.d, 2, &mut dst[lo..hi]),
                s => interior_sum::<F, 0>(row, base, aw.k, aw.d, s, &mut dst[lo..hi]),
            }
        }
        return;
    }
    for (o, sp) in aw.spans.iter().enumerate() {
        let out = &mut dst[o * c..(o + 1) * c];
        out.fill(F::zero());
        for t in sp.taps() {
            for (v, &x) in out.iter_mut().zip(&row[t * c..(t + 1) * c]) {
                *v += x;
            }
        }
    }
}

#[inline(always)]
fn interior_sum<F: FastFloat, const S: usize>(
    row: &[F],
    base: usize,
    k: usize,
    d: usize,
    stride: usize,
    dst: &mut [F],
) {
    let s = if S == 0 { stride } else { S };
    let n = dst.len();
    assert!(base + (n - 1) * s + (k - 1) * d < row.len());
    for (i, v) in dst.iter_mut().enumerate() {
        // SAFETY: base + i*s < row.len(), checked above.
        *v = unsafe { *row.get_unchecked(base + i * s) };
    }
    for j in 1..k {
        let off = base + j * d;
        for (i, v) in dst.iter_mut().enumerate() {
            // SAFETY: off + i*s <= base + (n-1)*s + (k-1)*d < row.len(), checked above.
            *v += unsafe { *row.get_unchecked(off + i * s) };
        }
    }
}

/// Everything one task needs to reduce a range of output rows of one 3-D output slab.
pub(crate) struct Problem<'a> {
    pub axes: &'a [AxisPlan; 3],
    pub reduce: Reduce,
    /// Input spatial sizes (D, H, W) and the channel lanes per pixel (1 or C).
    pub in3: [usize; 3],
    pub inner: usize,
}

/// Scratch reused across the rows of one task.
struct Scratch<F> {
    ring: Vec<F>,
    ring_i: Vec<i32>,
    tags: Vec<usize>,
    tmp: Vec<F>,
    tmp_i: Vec<i32>,
}

/// Reduces output rows `[oh0, oh1)` of output depth `od` for one plane (`inner == 1`) or one
/// sample (`inner == C`). `x` is the plane/sample's input; `out`/`out_i` the rows' outputs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn slab<F: FastFloat, const IDX: bool>(
    p: &Problem,
    x: &[F],
    od: usize,
    oh0: usize,
    oh1: usize,
    out: &mut [F],
    out_i: &mut [i32],
    sc: &mut Scratch<F>,
) {
    let [ad, ah, aw] = p.axes;
    let [_, h_in, w_in] = p.in3;
    let c = p.inner;
    let row_len = aw.n_out() * c;
    let is_max = p.reduce == Reduce::Max;
    let dspan = ad.spans[od];
    for (t_d, d) in dspan.taps().enumerate() {
        let slice = &x[d * h_in * w_in * c..(d + 1) * h_in * w_in * c];
        // Ring rows hold W-pass results of this depth slice.
        sc.tags.iter_mut().for_each(|t| *t = usize::MAX);
        let into_tmp = t_d > 0;
        for oh in oh0..oh1 {
            let hs = ah.spans[oh];
            let dst_range = (oh - oh0) * row_len..(oh - oh0 + 1) * row_len;
            for (t_h, h) in hs.taps().enumerate() {
                let slot = h % ah.extent;
                let ring_row = slot * row_len..(slot + 1) * row_len;
                if sc.tags[slot] != h {
                    let row = &slice[h * w_in * c..(h + 1) * w_in * c];
                    let row_idx = ((d * h_in + h) * w_in) as i32;
                    let dst = &mut sc.ring[ring_row.clone()];
                    if is_max {
                        let dst_i = if IDX {
                            &mut sc.ring_i[ring_row.clone()]
                        } else {
                            &mut [][..]
                        };
                        if c == 1 {
                            wpass_max_cf::<F, IDX>(row, aw, dst, dst_i, row_idx);
                        } else {
                            wpass_max_cl::<F, IDX>(row, c, aw, dst, dst_i, row_idx);
                        }
                    } else {
                        wpass_sum(row, c, aw, dst);
                    }
                    sc.tags[slot] = h;
                }
                let (target, target_i) = if into_tmp {
                    (
                        &mut sc.tmp[dst_range.clone()],
                        if IDX {
                            &mut sc.tmp_i[dst_range.clone()]
                        } else {
                            &mut [][..]
                        },
                    )
                } else {
                    (
                        &mut out[dst_range.clone()],
                        if IDX {
                            &mut out_i[dst_range.clone()]
                        } else {
                            &mut [][..]
                        },
                    )
                };
                let src = &sc.ring[ring_row.clone()];
                if t_h == 0 {
                    target.copy_from_slice(src);
                    if IDX {
                        target_i.copy_from_slice(&sc.ring_i[ring_row.clone()]);
                    }
                } else if is_max {
                    combine_max::<F, IDX>(
                        target,
                        target_i,
                        src,
                        if IDX {
                            &sc.ring_i[ring_row.clone()]
                        } else {
                            &[][..]
                        },
                    );
                } else {
                    for (v, &s) in target.iter_mut().zip(src) {
                        *v += s;
                    }
                }
            }
            if into_tmp {
                let (o, oi) = (
                    &mut out[dst_range.clone()],
                    if IDX {
                        &mut out_i[dst_range.clone()]
                    } else {
                        &mut [][..]
                    },
                );
                if is_max {
                    combine_max::<F, IDX>(
                        o,
                        oi,
                        &sc.tmp[dst_range.clone()],
                        if IDX {
                            &sc.tmp_i[dst_range.clone()]
                        } else {
                            &[][..]
                        },
                    );
                } else {
                    for (v, &s) in o.iter_mut().zip(&sc.tmp[dst_range.clone()]) {
                        *v += s;
                    }
                }
            }
        }
    }
    if let Reduce::Sum(div) = p.reduce {
        for oh in oh0..oh1 {
            let row = &mut out[(oh - oh0) * row_len..(oh - oh0 + 1) * row_len];
            for (ow, px) in row.chunks_exact_mut(c).enumerate() {
                let spans = [dspan, ah.spans[oh], aw.spans[ow]];
                divide_pixel(px, div, &spans);
            }
        }
    }
}

#[inline(always)]
fn combine_max<F: FastFloat, const IDX: bool>(
    dst: &mut [F],
    dst_i: &mut [i32],
    src: &[F],
    src_i: &[i32],
) {
    if IDX {
        for ((v, vi), (&s, &si)) in dst
            .iter_mut()
            .zip(dst_i.iter_mut())
            .zip(src.iter().zip(src_i))
        {
            let tk = take(*v, s);
            *v = if tk { s } else { *v };
            *vi = if tk { si } else { *vi };
        }
    } else {
        for (v, &s) in dst.iter_mut().zip(src) {
            *v = if take(*v, s) { s } else { *v };
        }
    }
}

/// Divides a pixel's sums as the reference does (one division by the window divisor, or one
/// division per axis for adaptive pooling).
#[inline(always)]
fn divide_pixel<F: FastFloat>(px: &mut [F], div: Divisor, spans: &[Span; 3]) {
    match div {
        Divisor::PerAxis => {
            let (a, b, c) = (
                F::from_i64(spans[0].count as i64),
                F::from_i64(spans[1].count as i64),
                F::from_i64(spans[2].count as i64),
            );
            for v in px {
                *v = *v / a / b / c;
            }
        }
        _ => {
            let real = spans.iter().map(|s| s.count).product::<usize>();
            let padded = spans.iter().map(|s| s.padded_count).product::<usize>();
            let d = match div {
                Divisor::Padded => padded as i64,
                Divisor::Real => real as i64,
                Divisor::Override(d) => d,
                Divisor::PerAxis => unreachable!(),
            };
            if d == 0 {
                px.iter_mut().for_each(|v| *v = F::zero());
            } else {
                let df = F::from_i64(d);
                for v in px {
                    *v = *v / df;
                }
            }
        }
    }
}

/// One task: output rows `[oh0, oh1)` of output depth `od` of one plane/sample.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn task_body<F: FastFloat>(
    p: &Problem,
    x: &[F],
    od: usize,
    oh0: usize,
    oh1: usize,
    out: &mut [F],
    out_i: Option<&mut [i32]>,
) {
    let [_, ah, aw] = p.axes;
    let row_len = aw.n_out() * p.inner;
    let rows = oh1 - oh0;
    let with_idx = out_i.is_some();
    let mut sc = Scratch {
        ring: vec![F::zero(); ah.extent * row_len],
        ring_i: if with_idx {
            vec![0; ah.extent * row_len]
        } else {
            Vec::new()
        },
        tags: vec![usize::MAX; ah.extent],
        tmp: if p.axes[0].extent > 1 {
            vec![F::zero(); rows * row_len]
        } else {
            Vec::new()
        },
        tmp_i: if with_idx && p.axes[0].extent > 1 {
            vec![0; rows * row_len]
        } else {
            Vec::new()
        },
    };
    match out_i {
        Some(oi) => slab::<F, true>(p, x, od, oh0, oh1, out, oi, &mut sc),
        None => slab::<F, false>(p, x, od, oh0, oh1, out, &mut [], &mut sc),
    }
}

multiversion!(fn run_task<F: FastFloat>(p: &Problem, x: &[F], od: usize, oh0: usize, oh1: usize, out: &mut [F], out_i: Option<&mut [i32]>) -> () = task_body);

/// Runs a window problem over the whole tensor, in parallel, with results independent of the
/// thread count. Returns `false` (nothing written) for problems it does not take.
pub(crate) fn forward<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    y: &mut [F],
    idx: Option<&mut [i64]>,
) -> bool {
    if axes.iter().any(AxisPlan::has_empty_window) || g.in_plane() > i32::MAX as usize {
        return false;
    }
    let [od_n, oh_n, ow_n] = g.out3;
    let inner = match g.layout {
        Layout::ChannelsFirst => 1,
        Layout::ChannelsLast => g.channels,
    };
    let p = Problem {
        axes,
        reduce,
        in3: g.in3,
        inner,
    };
    let in_unit = g.in_plane() * inner; // one plane (cf) or one sample (cl)
    let out_unit = g.out_plane() * inner;
    let units = match g.layout {
        Layout::ChannelsFirst => g.batch * g.channels,
        Layout::ChannelsLast => g.batch,
    };
    let row_len = ow_n * inner;
    // Split each unit's output rows so that there is enough work for every thread, without
    // changing any result (a task recomputes the W pass of the rows it shares with a neighbour).
    let threads = rayon::current_num_threads();
    let total_rows = units * od_n * oh_n;
    let work = y.len();
    let rows_per_task = if work < (1 << 15) || threads == 1 {
        oh_n
    } else {
        (total_rows / (threads * 8)).clamp(1, oh_n)
    };
    let chunks_per_slab = oh_n.div_ceil(rows_per_task);
    let chunk_len = rows_per_task * row_len;
    let run = |slab_id: usize, chunk: usize, out: &mut [F], out_i: Option<&mut [i32]>| {
        let unit = slab_id / od_n;
        let od = slab_id % od_n;
        let oh0 = chunk * rows_per_task;
        let oh1 = (oh0 + rows_per_task).min(oh_n);
        run_task::<F>(
            isa,
            &p,
            &x[unit * in_unit..(unit + 1) * in_unit],
            od,
            oh0,
            oh1,
            out,
            out_i,
        );
    };
    let slab_len = oh_n * row_len;
    debug_assert_eq!(y.len(), units * out_unit);
    match idx {
        None => {
            let body = |(i, out): (usize, &mut [F])| {
                let slab_id = i / chunks_per_slab;
                run(slab_id, i % chunks_per_slab, out, None)
            };
            if work < (1 << 15) {
                slab_chunks(y, slab_len, chunk_len)
                    .enumerate()
                    .for_each(body);
            } else {
                par_slab_chunks(y, slab_len, chunk_len)
                    .enumerate()
                    .for_each(body);
            }
        }
        Some(idx) => {
            let body = |(i, (out, oi)): (usize, (&mut [F], &mut [i64]))| {
                let mut tmp = vec![0i32; out.len()];
                run(
                    i / chunks_per_slab,
                    i % chunks_per_slab,
                    out,
                    Some(&mut tmp),
                );
                for (d, s) in oi.iter_mut().zip(tmp) {
                    *d = s as i64;
                }
            };
            if work < (1 << 15) {
                slab_chunks(y, slab_len, chunk_len)
                    .zip(slab_chunks(idx, slab_len, chunk_len))
                    .enumerate()
                    .for_each(body);
            } else {
                par_slab_chunks(y, slab_len, chunk_len)
                    .zip(par_slab_chunks(idx, slab_len, chunk_len))
                    .enumerate()
                    .for_each(body);
            }
        }
    }
    true
}

/// Splits `v` into slabs of `slab` elements and each slab into chunks of at most `chunk`.
fn slab_chunks<T>(v: &mut [T], slab: usize, chunk: usize) -> impl Iterator<Item = &mut [T]> {
    v.chunks_mut(slab).flat_map(move |s| s.chunks_mut(chunk))
}

fn par_slab_chunks<T: Send>(
    v: &mut [T],
    slab: usize,
    chunk: usize,
) -> impl IndexedParallelIterator<Item = &mut [T]> {
    // Every slab splits into the same number of chunks, so (slab, chunk) flattens to an index.
    let per = slab.div_ceil(chunk);
    let n = v.len() / slab;
    let mut parts: Vec<&mut [T]> = Vec::with_capacity(n * per);
    for s in v.chunks_mut(slab) {
        parts.extend(s.chunks_mut(chunk));
    }
    parts.into_par_iter()
}
