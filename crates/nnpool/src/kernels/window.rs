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
use super::out::Out;
use super::plane::PlaneScratch;
use crate::element::Element;
use crate::geometry::Span;
use crate::layout::Layout;
use crate::plan::{Divisor, Geom};

use rayon::prelude::*;

/// Element types with fast window kernels: the accumulator is the type itself.
pub(crate) trait FastFloat:
    Element<Acc = Self> + crate::element::Accumulator + super::ScratchValue
{
}
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
    /// Each window's element count and padded count (for vectorised division).
    pub real: Vec<u32>,
    pub padded: Vec<u32>,
}

fn counts(spans: &[Span]) -> (Vec<u32>, Vec<u32>) {
    let clip = |n: usize| n.min(u32::MAX as usize) as u32;
    (
        spans.iter().map(|s| clip(s.count)).collect(),
        spans.iter().map(|s| clip(s.padded_count)).collect(),
    )
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
        let (real, padded) = counts(&spans);
        AxisPlan {
            real,
            padded,
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
        let (real, padded) = counts(&spans);
        AxisPlan {
            real,
            padded,
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

/// The max combine: the later tap replaces the running maximum when it is greater or NaN.
#[inline(always)]
pub(crate) fn take<F: FastFloat>(earlier: F, later: F) -> bool {
    later > earlier || later.is_nan()
}

/// Covers `0..n` with register blocks: 64 lanes while they fit, then 16, then one block of 16
/// that overlaps the previous one (outputs are pure, so computing some twice is harmless), or
/// single outputs when `n < 16`. Several independent 16-lane accumulators hide the latency of
/// the compare-and-select chain. A macro, not a closure: a closure would be compiled outside
/// the caller's `#[target_feature]` context.
macro_rules! blocked {
    ($n:expr, $i:ident => wide: $wide:expr, narrow: $narrow:expr, single: $single:expr) => {{
        let n = $n;
        let mut $i = 0;
        while $i + 64 <= n {
            $wide;
            $i += 64;
        }
        while $i + 16 <= n {
            $narrow;
            $i += 16;
        }
        if $i < n {
            if n >= 16 {
                let $i = n - 16;
                $narrow;
            } else {
                while $i < n {
                    $single;
                    $i += 1;
                }
            }
        }
    }};
}

/// The W pass of one input row into `dst` (`n_out * c` values, plane-local indices in
/// `dst_i` when `IDX`), for max (`SUM == false`) or sums.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn wpass<F: FastFloat, const IDX: bool, const SUM: bool>(
    row: &[F],
    c: usize,
    aw: &AxisPlan,
    dst: &mut [F],
    dst_i: &mut [i32],
    row_idx: i32,
    phases: &mut Vec<F>,
) {
    if c == 1 {
        wpass_cf::<F, IDX, SUM>(row, aw, dst, dst_i, row_idx, phases);
    } else {
        wpass_cl::<F, IDX, SUM>(row, c, aw, dst, dst_i, row_idx);
    }
}

/// The identity of the reduction: 0 for sums, LOWEST for max.
#[inline(always)]
pub(crate) fn init<F: FastFloat, const SUM: bool>() -> F {
    if SUM {
        F::zero()
    } else {
        F::LOWEST
    }
}

/// Channels-first W pass: border outputs by their spans, interior outputs in register blocks
/// of consecutive outputs.
#[inline(always)]
fn wpass_cf<F: FastFloat, const IDX: bool, const SUM: bool>(
    row: &[F],
    aw: &AxisPlan,
    dst: &mut [F],
    dst_i: &mut [i32],
    row_idx: i32,
    phases: &mut Vec<F>,
) {
    for o in (0..aw.lo).chain(aw.hi..aw.n_out()) {
        let sp = aw.spans[o];
        let mut v = init::<F, SUM>();
        let mut vi = sp.first as i32;
        for t in sp.taps() {
            let x = row[t];
            if SUM {
                v += x;
            } else if take(v, x) {
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
    let di = if IDX { &mut dst_i[lo..hi] } else { &mut [][..] };
    match aw.s {
        1 => interior_cf::<F, IDX, SUM, 1>(
            row,
            base,
            aw.k,
            aw.d,
            1,
            &mut dst[lo..hi],
            di,
            row_idx,
            &[],
        ),
        2 => {
            deinterleave::<F, 2>(row, phases);
            interior_cf::<F, IDX, SUM, 2>(
                row,
                base,
                aw.k,
                aw.d,
                2,
                &mut dst[lo..hi],
                di,
                row_idx,
                phases,
            )
        }
        s @ 3..=4 => {
            deinterleave_any(row, s, phases);
            interior_cf::<F, IDX, SUM, 0>(
                row,
                base,
                aw.k,
                aw.d,
                s,
                &mut dst[lo..hi],
                di,
                row_idx,
                phases,
            )
        }
        s => interior_cf::<F, IDX, SUM, 0>(
            row,
            base,
            aw.k,
            aw.d,
            s,
            &mut dst[lo..hi],
            di,
            row_idx,
            &[],
        ),
    }
}

/// Interior outputs: output `i` reads `row[base + i*stride + j*d]` for `j < k`, all in bounds.
/// `S` is the stride when known at compile time (1 or 2), else 0 and `stride` is used.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn interior_cf<F: FastFloat, const IDX: bool, const SUM: bool, const S: usize>(
    row: &[F],
    base: usize,
    k: usize,
    d: usize,
    stride: usize,
    dst: &mut [F],
    dst_i: &mut [i32],
    row_idx: i32,
    phases: &[F],
) {
    let s = if S == 0 { stride } else { S };
    let n = dst.len();
    // The frame guarantees that the last tap of the last interior output is inside the row.
    assert!(n > 0 && base + (n - 1) * s + (k - 1) * d < row.len());
    assert!(!IDX || dst_i.len() == n);
    let plen = row.len().div_ceil(s);
    let cf = CfRow {
        row,
        phases,
        plen,
        base,
        k,
        d,
        s,
        row_idx,
    };
    blocked!(n, i => wide: cf.block::<IDX, SUM, S, 4>(i, dst, dst_i),
        narrow: cf.block::<IDX, SUM, S, 1>(i, dst, dst_i),
        single: cf.one::<IDX, SUM>(i, dst, dst_i));
}

/// Splits a row into its `S` phases: `phases[p*plen + i] = row[i*S + p]`, so that strided taps
/// become contiguous loads.
#[inline(always)]
fn deinterleave<F: FastFloat, const S: usize>(row: &[F], phases: &mut Vec<F>) {
    let plen = row.len().div_ceil(S);
    phases.clear();
    phases.resize(S * plen, F::zero());
    let full = row.len() / S;
    let (p0, rest) = phases.split_at_mut(plen);
    if S == 2 {
        let (p0, p1) = (&mut p0[..full], &mut rest[..full]);
        let src = &row[..2 * full];
        #[cfg(target_arch = "x86_64")]
        if let (Some(src), Some(e), Some(o)) = (
            super::cast::<F, f32>(src),
            super::cast_mut::<F, f32>(p0),
            super::cast_mut::<F, f32>(p1),
        ) {
            if super::isa::has_avx512() {
                // SAFETY: has_avx512() confirmed AVX-512F at run time; the slices have
                // lengths 2*full, full, full.
                unsafe { super::x86::deinterleave2_avx512(src, e, o) };
                return finish_deinterleave::<F, S>(row, phases, full, plen);
            }
        }
        for i in 0..full {
            p0[i] = src[2 * i];
            p1[i] = src[2 * i + 1];
        }
    }
    finish_deinterleave::<F, S>(row, phases, full, plen);
}

/// The elements past the last full group of `S` (and every element when `S != 2`).
#[inline(always)]
fn finish_deinterleave<F: FastFloat, const S: usize>(
    row: &[F],
    phases: &mut [F],
    full: usize,
    plen: usize,
) {
    let start = if S == 2 { full * S } else { 0 };
    for i in start..row.len() {
        phases[(i % S) * plen + i / S] = row[i];
    }
}

#[inline(always)]
fn deinterleave_any<F: FastFloat>(row: &[F], s: usize, phases: &mut Vec<F>) {
    let plen = row.len().div_ceil(s);
    phases.clear();
    phases.resize(s * plen, F::zero());
    for (i, &v) in row.iter().enumerate() {
        phases[(i % s) * plen + i / s] = v;
    }
}

/// Sixteen lanes of a running reduction (value and index), meant to live in registers.
#[derive(Clone, Copy)]
pub(crate) struct Lanes<F> {
    pub v: [F; 16],
    pub i: [i32; 16],
}

impl<F: FastFloat> Lanes<F> {
    #[inline(always)]
    pub fn new<const SUM: bool>(i: [i32; 16]) -> Self {
        Lanes {
            v: [init::<F, SUM>(); 16],
            i,
        }
    }

    /// Folds in the next tap (later in scan order than everything folded so far).
    #[inline(always)]
    pub fn fold<const IDX: bool, const SUM: bool>(&mut self, x: &[F; 16], xi: &[i32; 16]) {
        for l in 0..16 {
            if SUM {
                self.v[l] += x[l];
            } else {
                // `|`, not `take`'s `||`: both compares on every lane, no branch
                #[allow(clippy::eq_op)] // (x != x: NaN)
                let tk = (x[l] > self.v[l]) | (x[l] != x[l]);
                self.v[l] = if tk { x[l] } else { self.v[l] };
                if IDX {
                    self.i[l] = if tk { xi[l] } else { self.i[l] };
                }
            }
        }
    }

    #[inline(always)]
    pub fn store<const IDX: bool>(&self, dst: &mut [F], dst_i: &mut [i32], at: usize) {
        dst[at..at + 16].copy_from_slice(&self.v);
        if IDX {
            dst_i[at..at + 16].copy_from_slice(&self.i);
        }
    }
}

#[inline(always)]
fn arith_idx(base: i32, step: i32) -> [i32; 16] {
    let mut a = [0i32; 16];
    for (l, v) in a.iter_mut().enumerate() {
        *v = base + l as i32 * step;
    }
    a
}

/// One channels-first input row and the geometry of its interior outputs.
struct CfRow<'a, F> {
    row: &'a [F],
    /// The row split into `s` phases (`phases[p*plen + i] = row[i*s + p]`), or empty.
    phases: &'a [F],
    plen: usize,
    base: usize,
    k: usize,
    d: usize,
    s: usize,
    row_idx: i32,
}

impl<F: FastFloat> CfRow<'_, F> {
    /// Outputs `i0..i0 + 16*Q` in `Q` independent register blocks.
    #[inline(always)]
    fn block<const IDX: bool, const SUM: bool, const S: usize, const Q: usize>(
        &self,
        i0: usize,
        dst: &mut [F],
        dst_i: &mut [i32],
    ) {
        let s = if S == 0 { self.s } else { S };
        let mut acc = [Lanes::<F>::new::<SUM>([0; 16]); Q];
        for (q, a) in acc.iter_mut().enumerate() {
            if IDX {
                a.i = arith_idx(
                    self.row_idx + (self.base + (i0 + q * 16) * s) as i32,
                    s as i32,
                );
            }
        }
        for j in 0..self.k {
            for (q, a) in acc.iter_mut().enumerate() {
                let off = self.base + j * self.d + (i0 + q * 16) * s;
                let mut x = [F::zero(); 16];
                if s == 1 {
                    x.copy_from_slice(&self.row[off..off + 16]);
                } else if !self.phases.is_empty() {
                    // taps off, off+s, .. are consecutive elements of one phase
                    let at = (off % s) * self.plen + off / s;
                    x.copy_from_slice(&self.phases[at..at + 16]);
                } else {
                    for (l, v) in x.iter_mut().enumerate() {
                        // SAFETY: interior_cf asserted base + (n-1)*s + (k-1)*d < row.len(),
                        // and i0 + 16*q + l < n, j < k.
                        *v = unsafe { *self.row.get_unchecked(off + l * s) };
                    }
                }
                let xi = if IDX {
                    arith_idx(self.row_idx + off as i32, s as i32)
                } else {
                    [0; 16]
                };
                a.fold::<IDX, SUM>(&x, &xi);
            }
        }
        for (q, a) in acc.iter().enumerate() {
            a.store::<IDX>(dst, dst_i, i0 + q * 16);
        }
    }

    /// Output `i` alone.
    #[inline(always)]
    fn one<const IDX: bool, const SUM: bool>(&self, i: usize, dst: &mut [F], dst_i: &mut [i32]) {
        let mut v = init::<F, SUM>();
        let mut vi = self.row_idx + (self.base + i * self.s) as i32;
        for j in 0..self.k {
            let t = self.base + i * self.s + j * self.d;
            let x = self.row[t];
            if SUM {
                v += x;
            } else if take(v, x) {
                v = x;
                vi = self.row_idx + t as i32;
            }
        }
        dst[i] = v;
        if IDX {
            dst_i[i] = vi;
        }
    }
}

/// Channels-last W pass: each output pixel's `c` channels in register blocks; the window's
/// taps are pixels, all lanes of a tap share its index.
#[inline(always)]
fn wpass_cl<F: FastFloat, const IDX: bool, const SUM: bool>(
    row: &[F],
    c: usize,
    aw: &AxisPlan,
    dst: &mut [F],
    dst_i: &mut [i32],
    row_idx: i32,
) {
    for (o, sp) in aw.spans.iter().enumerate() {
        let first = row_idx + sp.first as i32;
        let out = &mut dst[o * c..(o + 1) * c];
        let out_i = if IDX {
            &mut dst_i[o * c..(o + 1) * c]
        } else {
            &mut [][..]
        };
        blocked!(c, c0 => wide: cl_block::<F, IDX, SUM, 4>(row, c, *sp, c0, first, row_idx, out, out_i),
            narrow: cl_block::<F, IDX, SUM, 1>(row, c, *sp, c0, first, row_idx, out, out_i),
            single: cl_one::<F, IDX, SUM>(row, c, *sp, c0, first, row_idx, out, out_i));
    }
}

/// Channels `c0..c0 + 16*Q` of one channels-last output pixel.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cl_block<F: FastFloat, const IDX: bool, const SUM: bool, const Q: usize>(
    row: &[F],
    c: usize,
    sp: Span,
    c0: usize,
    first: i32,
    row_idx: i32,
    out: &mut [F],
    out_i: &mut [i32],
) {
    let mut acc = [Lanes::<F>::new::<SUM>([first; 16]); Q];
    for t in sp.taps() {
        let ti = [row_idx + t as i32; 16];
        for (q, a) in acc.iter_mut().enumerate() {
            let at = t * c + c0 + q * 16;
            let src: &[F; 16] = row[at..at + 16].try_into().expect("16 values");
            a.fold::<IDX, SUM>(src, &ti);
        }
    }
    for (q, a) in acc.iter().enumerate() {
        a.store::<IDX>(out, out_i, c0 + q * 16);
    }
}

/// Channel `l` of one channels-last output pixel, alone.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cl_one<F: FastFloat, const IDX: bool, const SUM: bool>(
    row: &[F],
    c: usize,
    sp: Span,
    l: usize,
    first: i32,
    row_idx: i32,
    out: &mut [F],
    out_i: &mut [i32],
) {
    let mut v = init::<F, SUM>();
    let mut vi = first;
    for t in sp.taps() {
        let x = row[t * c + l];
        if SUM {
            v += x;
        } else if take(v, x) {
            v = x;
            vi = row_idx + t as i32;
        }
    }
    out[l] = v;
    if IDX {
        out_i[l] = vi;
    }
}

/// Combines the W-pass rows `rows` (offsets into the ring, in row-major tap order) into one
/// output row, in register blocks.
#[inline(always)]
fn hpass<F: FastFloat, const IDX: bool, const SUM: bool>(
    ring: &[F],
    ring_i: &[i32],
    rows: &[usize],
    out: &mut [F],
    out_i: &mut [i32],
) {
    blocked!(out.len(), j0 => wide: h_block::<F, IDX, SUM, 4>(ring, ring_i, rows, j0, out, out_i),
        narrow: h_block::<F, IDX, SUM, 1>(ring, ring_i, rows, j0, out, out_i),
        single: h_one::<F, IDX, SUM>(ring, ring_i, rows, j0, out, out_i));
}

/// Elements `j0..j0 + 16*Q` of one output row, combined over the window's W-pass rows.
#[inline(always)]
fn h_block<F: FastFloat, const IDX: bool, const SUM: bool, const Q: usize>(
    ring: &[F],
    ring_i: &[i32],
    rows: &[usize],
    j0: usize,
    out: &mut [F],
    out_i: &mut [i32],
) {
    let mut acc = [Lanes::<F>::new::<SUM>([0; 16]); Q];
    for &ro in rows {
        for (q, a) in acc.iter_mut().enumerate() {
            let at = ro + j0 + q * 16;
            let src: &[F; 16] = ring[at..at + 16].try_into().expect("16 values");
            let src_i: [i32; 16] = if IDX {
                ring_i[at..at + 16].try_into().expect("16 values")
            } else {
                [0; 16]
            };
            // The first row replaces LOWEST unless it holds -inf, where its index must win too.
            a.fold::<IDX, SUM>(src, &src_i);
        }
        if !SUM && IDX && ro == rows[0] {
            // indices of lanes still at LOWEST (all -inf) must be the first row's
            for (q, a) in acc.iter_mut().enumerate() {
                let at = ro + j0 + q * 16;
                for l in 0..16 {
                    if a.v[l] == F::LOWEST && !a.v[l].is_nan() {
                        a.i[l] = ring_i[at + l];
                    }
                }
            }
        }
    }
    for (q, a) in acc.iter().enumerate() {
        a.store::<IDX>(out, out_i, j0 + q * 16);
    }
}

/// Element `j` of one output row, alone.
#[inline(always)]
fn h_one<F: FastFloat, const IDX: bool, const SUM: bool>(
    ring: &[F],
    ring_i: &[i32],
    rows: &[usize],
    j: usize,
    out: &mut [F],
    out_i: &mut [i32],
) {
    let mut v = init::<F, SUM>();
    let mut vi = 0;
    for (r, &ro) in rows.iter().enumerate() {
        let x = ring[ro + j];
        if SUM {
            v += x;
        } else if r == 0 || take(v, x) {
            v = x;
            if IDX {
                vi = ring_i[ro + j];
            }
        }
    }
    out[j] = v;
    if IDX {
        out_i[j] = vi;
    }
}

/// Everything one task needs to reduce a range of output rows of one 3-D output slab.
pub(crate) struct Problem<'a> {
    pub axes: &'a [AxisPlan; 3],
    pub reduce: Reduce,
    /// Input spatial sizes (D, H, W).
    pub in3: [usize; 3],
    /// Channel lanes per pixel: 1 (channels-first) or C (channels-last).
    pub inner: usize,
}

/// Scratch reused across the rows of one task: a ring of W-pass rows per depth tap.
struct Scratch<F> {
    ring: Vec<F>,
    ring_i: Vec<i32>,
    tags: Vec<usize>,
    rows: Vec<usize>,
    phases: Vec<F>,
}

/// Reduces output rows `[oh0, oh1)` of output depth `od` for one plane (`inner == 1`) or one
/// sample (`inner == C`). `x` is the plane/sample's input; `out`/`out_i` the rows' outputs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn slab<F: FastFloat, const IDX: bool, const SUM: bool>(
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
    let e = ah.extent;
    let dspan = ad.spans[od];
    for oh in oh0..oh1 {
        let hs = ah.spans[oh];
        sc.rows.clear();
        for (td, d) in dspan.taps().enumerate() {
            for h in hs.taps() {
                let slot = td * e + h % e;
                let tag = d * h_in + h;
                let ro = slot * row_len;
                if sc.tags[slot] != tag {
                    let row = &x[(d * h_in + h) * w_in * c..(d * h_in + h + 1) * w_in * c];
                    let row_idx = ((d * h_in + h) * w_in) as i32;
                    let dst_i = if IDX {
                        &mut sc.ring_i[ro..ro + row_len]
                    } else {
                        &mut [][..]
                    };
                    wpass::<F, IDX, SUM>(
                        row,
                        c,
                        aw,
                        &mut sc.ring[ro..ro + row_len],
                        dst_i,
                        row_idx,
                        &mut sc.phases,
                    );
                    sc.tags[slot] = tag;
                }
                sc.rows.push(ro);
            }
        }
        let dst = &mut out[(oh - oh0) * row_len..(oh - oh0 + 1) * row_len];
        let dst_i = if IDX {
            &mut out_i[(oh - oh0) * row_len..(oh - oh0 + 1) * row_len]
        } else {
            &mut [][..]
        };
        hpass::<F, IDX, SUM>(&sc.ring, &sc.ring_i, &sc.rows, dst, dst_i);
        if let Reduce::Sum(div) = p.reduce {
            divide_row(dst, c, div, dspan, hs, aw);
        }
    }
}

/// The divisor of every output (row-major over the three axes), as the reference forms it;
/// `None` for adaptive pooling, which divides once per axis.
pub(crate) fn window_divisors(axes: &[AxisPlan; 3], div: Divisor) -> Option<Vec<i64>> {
    let [ad, ah, aw] = axes;
    let mut out = Vec::with_capacity(ad.spans.len() * ah.spans.len() * aw.spans.len());
    for &sd in &ad.spans {
        for &sh in &ah.spans {
            for &sw in &aw.spans {
                out.push(window_divisor(div, [sd, sh, sw])?);
            }
        }
    }
    Some(out)
}

/// The one value of `v` when all of its values are equal (and it has any).
pub(crate) fn single_value<T: PartialEq + Copy>(v: &[T]) -> Option<T> {
    let (&first, rest) = v.split_first()?;
    rest.iter().all(|&e| e == first).then_some(first)
}

/// The single integer divisor of a window, as the reference forms it (`None` for adaptive
/// pooling, which divides once per axis).
#[inline(always)]
pub(crate) fn window_divisor(div: Divisor, spans: [Span; 3]) -> Option<i64> {
    match div {
        Divisor::PerAxis => None,
        Divisor::Padded => Some(spans.iter().map(|s| s.padded_count).product::<usize>() as i64),
        Divisor::Real => Some(spans.iter().map(|s| s.count).product::<usize>() as i64),
        Divisor::Override(d) => Some(d),
    }
}

/// Divides a window sum as the reference does: once by the window's divisor (a zero divisor,
/// possible only for a window without input elements, gives 0), or once per axis for adaptive
/// pooling. The one place the fast kernels apply the divisor rule, forward and backward.
#[inline(always)]
pub(crate) fn divide_by_window<F: FastFloat>(v: F, div: Divisor, spans: [Span; 3]) -> F {
    let Some(d) = window_divisor(div, spans) else {
        return v
            / F::from_i64(spans[0].count as i64)
            / F::from_i64(spans[1].count as i64)
            / F::from_i64(spans[2].count as i64);
    };
    if d == 0 {
        F::zero()
    } else {
        v / F::from_i64(d)
    }
}

/// Divides one output row of sums (`c` lanes per pixel) exactly as [`divide_by_window`] does,
/// in loops the compiler vectorises: the divisor `count_d * count_h * count_w` is formed as
/// `F(count_d * count_h) * F(count_w)`, which equals `F(product)` whenever the product is below
/// 2^24 (checked; larger windows take the scalar rule).
#[inline(always)]
pub(crate) fn divide_row<F: FastFloat>(
    row: &mut [F],
    c: usize,
    div: Divisor,
    sd: Span,
    sh: Span,
    aw: &AxisPlan,
) {
    let n = aw.spans.len().min(row.len() / c.max(1));
    let (outer, per_w) = match div {
        Divisor::PerAxis => {
            let (fd, fh) = (F::from_i64(sd.count as i64), F::from_i64(sh.count as i64));
            for ow in 0..n {
                let fw = F::from_i64(aw.real[ow] as i64);
                for v in &mut row[ow * c..(ow + 1) * c] {
                    *v = *v / fd / fh / fw;
                }
            }
            return;
        }
        Divisor::Override(d) => {
            let f = F::from_i64(d);
            for v in &mut row[..n * c] {
                *v = if d == 0 { F::zero() } else { *v / f };
            }
            return;
        }
        Divisor::Padded => (sd.padded_count * sh.padded_count, &aw.padded),
        Divisor::Real => (sd.count * sh.count, &aw.real),
    };
    let max_w = per_w[..n].iter().copied().max().unwrap_or(0) as usize;
    if outer.checked_mul(max_w).is_none_or(|p| p > 1 << 24) {
        for ow in 0..n {
            for v in &mut row[ow * c..(ow + 1) * c] {
                *v = divide_by_window(*v, div, [sd, sh, aw.spans[ow]]);
            }
        }
        return;
    }
    let fa = F::from_i64(outer as i64);
    if c == 1 {
        // (branch-free, so that it vectorises: a divisor of 0 gives 0)
        for (v, &w) in row[..n].iter_mut().zip(&per_w[..n]) {
            let d = fa * F::from_i64(w as i64);
            let q = *v / d;
            *v = if d == F::zero() { F::zero() } else { q };
        }
    } else {
        for ow in 0..n {
            let d = fa * F::from_i64(per_w[ow] as i64);
            for v in &mut row[ow * c..(ow + 1) * c] {
                *v = if d == F::zero() { F::zero() } else { *v / d };
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
    let [ad, ah, aw] = p.axes;
    let row_len = aw.n_out() * p.inner;
    let with_idx = out_i.is_some();
    let slots = ad.spans[od].count.max(1) * ah.extent;
    let mut sc = Scratch {
        ring: vec![F::zero(); slots * row_len],
        ring_i: if with_idx {
            vec![0; slots * row_len]
        } else {
            Vec::new()
        },
        tags: vec![usize::MAX; slots],
        rows: Vec::with_capacity(64),
        phases: Vec::new(),
    };
    match (out_i, p.reduce) {
        (Some(oi), Reduce::Max) => slab::<F, true, false>(p, x, od, oh0, oh1, out, oi, &mut sc),
        (None, Reduce::Max) => slab::<F, false, false>(p, x, od, oh0, oh1, out, &mut [], &mut sc),
        (_, Reduce::Sum(_)) => slab::<F, false, true>(p, x, od, oh0, oh1, out, &mut [], &mut sc),
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
    out: &mut Out<F>,
    mut idx: Option<&mut [i64]>,
) -> bool {
    if axes.iter().any(AxisPlan::has_empty_window) || g.in_plane() > i32::MAX as usize {
        return false;
    }
    if g.layout == Layout::ChannelsFirst
        && is_global(axes, g.in3)
        && g.in_plane() > 0
        && matches!(reduce, Reduce::Max | Reduce::Sum(Divisor::PerAxis))
    {
        global_cf::<F>(isa, g, reduce, x, out.init(), idx);
        return true;
    }
    if g.layout == Layout::ChannelsLast
        && is_global(axes, g.in3)
        && g.in_plane() > 0
        && g.channels > 0
        && idx.is_none()
        && matches!(reduce, Reduce::Max | Reduce::Sum(Divisor::PerAxis))
    {
        global_cl::<F>(isa, g, reduce, x, out.init());
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(i), Reduce::Max) = (idx.as_deref_mut(), reduce) {
        if super::direct::forward_with_indices::<F>(g, axes, x, out, i)
            || super::padded::forward_with_indices::<F>(g, axes, x, out, i)
            || super::direct::channels_first_with_indices_avx2::<F>(g, axes, x, out, i)
        {
            return true;
        }
    }
    if super::running::applies(g, axes, idx.is_some()) && !super::few_channels::applies(g) {
        super::running::forward::<F>(isa, g, axes, reduce, x, out);
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if super::direct::applies::<F>(g, axes, reduce, idx.is_some())
        && super::direct::forward::<F>(isa, g, axes, reduce, x, out)
    {
        return true;
    }
    if super::few_channels::applies(g)
        && super::few_channels::forward::<F>(isa, g, axes, reduce, x, out, idx.as_deref_mut())
    {
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if super::pairs::applies::<F>(g, axes, reduce, idx.is_some())
        && super::pairs::forward::<F>(g, axes, reduce, x, out)
    {
        return true;
    }
    if let Some(shape) = super::padded::applies::<F>(g, axes, reduce, idx.is_some()) {
        super::padded::forward::<F>(isa, &shape, axes, reduce, x, out);
        return true;
    }
    // the remaining paths take an initialised buffer (zero-filled here if it is fresh)
    let y = out.init();
    if g.layout == Layout::ChannelsFirst && super::plane::applies(axes, g.in3[2]) {
        planes::<F>(isa, g, axes, reduce, x, y, idx);
        return true;
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

#[inline(always)]
fn plane_body<F: FastFloat>(
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    in3: [usize; 3],
    x: &[F],
    y: &mut [F],
    y_i: Option<&mut [i32]>,
    sc: &mut PlaneScratch<F>,
) {
    match (y_i, reduce) {
        (Some(yi), Reduce::Max) => {
            super::plane::plane::<F, true, false>(axes, reduce, in3, x, y, yi, sc)
        }
        (None, Reduce::Max) => {
            super::plane::plane::<F, false, false>(axes, reduce, in3, x, y, &mut [], sc)
        }
        (_, Reduce::Sum(_)) => {
            super::plane::plane::<F, false, true>(axes, reduce, in3, x, y, &mut [], sc)
        }
    }
}

multiversion!(fn run_plane<F: FastFloat>(axes: &[AxisPlan; 3], reduce: Reduce, in3: [usize; 3], x: &[F], y: &mut [F], y_i: Option<&mut [i32]>, sc: &mut PlaneScratch<F>) -> () = plane_body);

/// Channels-first problems whose planes take the flat path: one task per plane.
fn planes<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    y: &mut [F],
    idx: Option<&mut [i64]>,
) {
    let (pin, pout) = (g.in_plane(), g.out_plane());
    let par = super::split_over_threads(y.len(), 1 << 15);
    // one scratch per task, not per plane: vgg_max_224's W-pass rows with indices (200 KB a
    // plane) were allocated afresh from the system for every plane, and their pages faulted
    // in every time
    match idx {
        None => {
            let f = |sc: &mut PlaneScratch<F>, (xp, yp): (&[F], &mut [F])| {
                run_plane::<F>(isa, axes, reduce, g.in3, xp, yp, None, sc)
            };
            if par {
                x.par_chunks(pin)
                    .zip(y.par_chunks_mut(pout))
                    .for_each_init(PlaneScratch::new, f);
            } else {
                let mut sc = PlaneScratch::new();
                x.chunks(pin)
                    .zip(y.chunks_mut(pout))
                    .for_each(|p| f(&mut sc, p));
            }
        }
        Some(idx) => {
            // the plane's indices are made as i32 (the kernels' lanes), then widened
            type Work<F> = (PlaneScratch<F>, Vec<i32>);
            let f = |(sc, plane_idx): &mut Work<F>,
                     ((xp, yp), ip): ((&[F], &mut [F]), &mut [i64])| {
                plane_idx.resize(pout, 0);
                run_plane::<F>(isa, axes, reduce, g.in3, xp, yp, Some(plane_idx), sc);
                for (d, &s) in ip.iter_mut().zip(plane_idx.iter()) {
                    *d = s as i64;
                }
            };
            let init = || (PlaneScratch::new(), Vec::new());
            if par {
                x.par_chunks(pin)
                    .zip(y.par_chunks_mut(pout))
                    .zip(idx.par_chunks_mut(pout))
                    .for_each_init(init, f);
            } else {
                let mut work = init();
                x.chunks(pin)
                    .zip(y.chunks_mut(pout))
                    .zip(idx.chunks_mut(pout))
                    .for_each(|p| f(&mut work, p));
            }
        }
    }
}

/// Whether every axis has one window covering its whole input (global pooling).
fn is_global(axes: &[AxisPlan; 3], in3: [usize; 3]) -> bool {
    axes.iter().zip(in3).all(|(a, n)| {
        a.spans.len() == 1 && a.spans[0].first == 0 && a.spans[0].count == n && a.spans[0].step == 1
    })
}

/// Global pooling of one contiguous plane. Lane `l` of each 16-lane block folds elements
/// `l, l+16, ..`; the lanes are then merged with an order-free rule on (value, index) pairs —
/// NaN beats numbers and the later NaN wins; a larger value wins; equal values keep the
/// smaller index — which gives exactly the reference's first maximum / last NaN.
#[inline(always)]
fn global_plane<F: FastFloat>(x: &[F], reduce: Reduce) -> (F, i32) {
    let n = x.len();
    let blocks = n / 16;
    match reduce {
        Reduce::Sum(_) => {
            let mut acc = [[F::zero(); 16]; 4];
            let mut b = 0;
            while b + 4 <= blocks {
                for (q, a) in acc.iter_mut().enumerate() {
                    let src: &[F; 16] = x[(b + q) * 16..(b + q + 1) * 16]
                        .try_into()
                        .expect("16 values");
                    for l in 0..16 {
                        a[l] += src[l];
                    }
                }
                b += 4;
            }
            while b < blocks {
                let src: &[F; 16] = x[b * 16..(b + 1) * 16].try_into().expect("16 values");
                for l in 0..16 {
                    acc[0][l] += src[l];
                }
                b += 1;
            }
            // merge the four accumulators lane-wise, then halve the lanes (a tree, not a chain
            // of 64 dependent adds: on 7×7 planes that chain was the whole cost)
            let mut lanes = [F::zero(); 16];
            for l in 0..16 {
                lanes[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
            }
            let mut width = 8;
            while width > 0 {
                for l in 0..width {
                    lanes[l] += lanes[l + width];
                }
                width /= 2;
            }
            let mut total = lanes[0];
            for &v in &x[blocks * 16..] {
                total += v;
            }
            // the caller divides (all planes at once, vectorised)
            (total, 0)
        }
        Reduce::Max => {
            let mut acc = Lanes::<F>::new::<false>([0; 16]);
            for l in 0..16 {
                acc.i[l] = l as i32;
            }
            for b in 0..blocks {
                let src: &[F; 16] = x[b * 16..(b + 1) * 16].try_into().expect("16 values");
                let mut xi = [0i32; 16];
                for (l, v) in xi.iter_mut().enumerate() {
                    *v = (b * 16 + l) as i32;
                }
                acc.fold::<true, false>(src, &xi);
            }
            // merge lanes (only lanes that saw an element) and the tail
            let mut best = (F::LOWEST, 0i32, false);
            let mut merge = |v: F, i: i32| {
                let (bv, bi, seen) = best;
                let better = if !seen {
                    true
                } else if v.is_nan() || bv.is_nan() {
                    v.is_nan() && (!bv.is_nan() || i > bi)
                } else {
                    v > bv || (v == bv && i < bi)
                };
                if better {
                    best = (v, i, true);
                }
            };
            if blocks > 0 {
                for l in 0..16 {
                    merge(acc.v[l], acc.i[l]);
                }
            }
            for (t, &v) in x[blocks * 16..].iter().enumerate() {
                merge(v, (blocks * 16 + t) as i32);
            }
            (best.0, best.1)
        }
    }
}

#[inline(always)]
fn global_body<F: FastFloat>(
    x: &[F],
    plane: usize,
    reduce: Reduce,
    counts: [usize; 3],
    y: &mut [F],
    y_i: Option<&mut [i64]>,
) {
    match y_i {
        Some(yi) => {
            for ((xp, v), i) in x.chunks_exact(plane).zip(y.iter_mut()).zip(yi.iter_mut()) {
                let (a, b) = global_plane(xp, reduce);
                *v = a;
                *i = b as i64;
            }
        }
        None => {
            for (xp, v) in x.chunks_exact(plane).zip(y.iter_mut()) {
                *v = global_plane(xp, reduce).0;
            }
        }
    }
    if let Reduce::Sum(_) = reduce {
        divide_per_axis(y, counts);
    }
}

/// Global sums to averages by the adaptive divisor rule: divided once per axis, in order
/// (dividing by 1 is exact, so those are skipped), as the reference divides them.
#[inline(always)]
fn divide_per_axis<F: FastFloat>(y: &mut [F], counts: [usize; 3]) {
    for n in counts {
        if n != 1 {
            let f = F::from_i64(n as i64);
            for v in y.iter_mut() {
                *v = *v / f;
            }
        }
    }
}

/// Global pooling of channels-last samples `x` (`y`: their outputs, `c` channels each): every
/// channel folds the pixels in order, `BLOCK` channels at a time across the vector lanes, so
/// sums are the reference's own sequence (from +0, the same bits) and max follows its exact
/// rule (start from the first pixel; a larger value or a NaN replaces).
#[inline(always)]
fn global_cl_body<F: FastFloat>(
    x: &[F],
    c: usize,
    reduce: Reduce,
    counts: [usize; 3],
    y: &mut [F],
) {
    // 128 channels: 8 AVX-512 accumulators of f32 (16 of AVX2), kept in registers over all
    // pixels. Measured (resnet_gap nhwc, 1 / 2 threads): 64 channels 15 / 9 µs, 128 11 / 7,
    // 256 10–14 / 7 (32 registers of AVX2 or f64: spills).
    const BLOCK: usize = 128;
    let pixels = x.len() / y.len().max(1);
    for (xs, ys) in x.chunks_exact(pixels * c).zip(y.chunks_exact_mut(c)) {
        let mut ch = 0;
        while ch + BLOCK <= c {
            let px = |p: usize| -> &[F; BLOCK] {
                xs[p * c + ch..p * c + ch + BLOCK]
                    .try_into()
                    .expect("BLOCK values")
            };
            let acc: [F; BLOCK] = fold_pixels(reduce, pixels, px);
            ys[ch..ch + BLOCK].copy_from_slice(&acc);
            ch += BLOCK;
        }
        // the channel tail, one channel at a time
        for ch in ch..c {
            let acc: [F; 1] =
                fold_pixels(reduce, pixels, |p| std::array::from_ref(&xs[p * c + ch]));
            ys[ch] = acc[0];
        }
    }
    if let Reduce::Sum(_) = reduce {
        divide_per_axis(y, counts);
    }
}

/// `N` channels folded over `pixels` pixels (`px(p)`: pixel `p`'s values), in pixel order.
#[inline(always)]
fn fold_pixels<'a, F: FastFloat, const N: usize>(
    reduce: Reduce,
    pixels: usize,
    px: impl Fn(usize) -> &'a [F; N],
) -> [F; N] {
    match reduce {
        Reduce::Sum(_) => {
            let mut acc = [F::zero(); N];
            for p in 0..pixels {
                let v = px(p);
                for l in 0..N {
                    acc[l] += v[l];
                }
            }
            acc
        }
        Reduce::Max => {
            let mut acc = *px(0);
            for p in 1..pixels {
                let v = px(p);
                for l in 0..N {
                    if v[l] > acc[l] || v[l].is_nan() {
                        acc[l] = v[l];
                    }
                }
            }
            acc
        }
    }
}

multiversion!(fn run_global_cl<F: FastFloat>(x: &[F], c: usize, reduce: Reduce, counts: [usize; 3], y: &mut [F]) -> () = global_cl_body);

/// Global pooling of channels-last tensors (without indices), samples split over threads.
fn global_cl<F: FastFloat>(isa: Isa, g: &Geom, reduce: Reduce, x: &[F], y: &mut [F]) {
    let (c, sample) = (g.channels, g.in_plane() * g.channels);
    let per_task = ((1 << 15) / sample).max(1);
    if super::split_over_threads(x.len(), 1 << 16) {
        x.par_chunks(sample * per_task)
            .zip(y.par_chunks_mut(c * per_task))
            .for_each(|(xs, ys)| run_global_cl::<F>(isa, xs, c, reduce, g.in3, ys));
    } else {
        run_global_cl::<F>(isa, x, c, reduce, g.in3, y);
    }
}

/// Global averages of short f32 planes on AVX-512, 16 planes reduced together
/// (`x86::plane_averages_avx512`), or on AVX2, 8 together (`avx2::plane_averages_avx2`);
/// false (nothing written) where those kernels do not apply.
fn short_plane_averages<F: FastFloat>(
    isa: Isa,
    x: &[F],
    plane: usize,
    reduce: Reduce,
    counts: [usize; 3],
    y: &mut [F],
) -> bool {
    // up to 16 vectors a plane: beyond that one plane's own fold hides the reduction
    #[cfg(target_arch = "x86_64")]
    {
        let lanes = match isa {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
            Isa::Portable => 0,
        };
        if matches!(reduce, Reduce::Sum(_)) && (1..=16 * lanes).contains(&plane) {
            if let (Some(x32), Some(y32)) = (super::cast::<F, f32>(x), super::cast_mut::<F, f32>(y))
            {
                let divisors: Vec<f32> = counts
                    .iter()
                    .filter(|&&n| n != 1)
                    .map(|&n| n as f32)
                    .collect();
                // SAFETY: an Isa is chosen only where the CPU has its features (AVX-512F,
                // AVX2); plane > 0, and x holds y.len() planes (the caller's chunks pair
                // planes with outputs).
                unsafe {
                    if isa == Isa::Avx512 {
                        super::x86::plane_averages_avx512(x32, plane, &divisors, y32);
                    } else {
                        super::avx2::plane_averages_avx2(x32, plane, &divisors, y32);
                    }
                }
                return true;
            }
        }
    }
    let _ = (isa, x, plane, reduce, counts, y);
    false
}

multiversion!(fn run_global<F: FastFloat>(x: &[F], plane: usize, reduce: Reduce, counts: [usize; 3], y: &mut [F], y_i: Option<&mut [i64]>) -> () = global_body);

/// Global pooling of channels-first tensors: one reduction per plane, planes split over
/// threads in chunks.
fn global_cf<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    reduce: Reduce,
    x: &[F],
    y: &mut [F],
    idx: Option<&mut [i64]>,
) {
    let plane = g.in_plane();
    // whole groups of 16 planes per task (`short_plane_averages` reduces 16 or 8 at a time)
    let planes_per_task = ((1 << 16) / plane.max(1)).max(1).next_multiple_of(16);
    let par = super::split_over_threads(x.len(), 1 << 17);
    match idx {
        None => {
            let f = |(xs, ys): (&[F], &mut [F])| {
                if !short_plane_averages(isa, xs, plane, reduce, g.in3, ys) {
                    run_global::<F>(isa, xs, plane, reduce, g.in3, ys, None)
                }
            };
            if par {
                x.par_chunks(plane * planes_per_task)
                    .zip(y.par_chunks_mut(planes_per_task))
                    .for_each(f);
            } else {
                f((x, y));
            }
        }
        Some(idx) => {
            let f = |((xs, ys), is): ((&[F], &mut [F]), &mut [i64])| {
                run_global::<F>(isa, xs, plane, reduce, g.in3, ys, Some(is))
            };
            if par {
                x.par_chunks(plane * planes_per_task)
                    .zip(y.par_chunks_mut(planes_per_task))
                    .zip(idx.par_chunks_mut(planes_per_task))
                    .for_each(f);
            } else {
                f(((x, y), idx));
            }
        }
    }
}
