//! Channels-last windows folded straight from the input, one output pixel at a time.
//!
//! In channels-last layout the channels of a pixel are contiguous, so one vector holds 16
//! channels of one tap and a window is `taps` loads per 16 outputs: no W-pass rows to write
//! and read back, no border logic (each pixel lists its in-bounds taps). The folds follow the
//! reference's row-major tap order, so max values and sums (then divided once by the same
//! divisor) are the reference's bits. Three shapes have kernels of their own for the rows
//! whose windows are all in bounds: 3×3 at stride 1 (two output rows at a time, each input
//! row folded along W once, the rows the top or bottom padding cuts too; `x86::cl_rows2_k3`;
//! sums then within rounding of the reference),
//! 3×3 at stride 2 on H and W, 2-D or 3-D max with a depth window of up to 3 slices (2-D one
//! output row at a time, border rows too, the W fold of the input row two output rows share
//! carried from one to the next; 3-D one output slice at a time, each slice of the depth
//! window pooled in 2-D and the slices then folded, the pooled slices the next output slice
//! reads kept; [`StrideTwoRows`], `x86::cl_row_k3s2`) and
//! 2×2 at stride 2 (`x86::cl_row_k2s2`: vgg_max_224 nhwc 8.6–9.5 → 7.3–7.5 ms, vgg_max_14 nhwc
//! 0.092 → 0.056 ms at 1 thread). They check for NaN on their own loads (the other
//! rows check each input row once, just before their windows read it), and their border
//! windows take the exact max rule, right whatever the values (the 3×3 stride-1 pairs: the
//! plain max where the kernel's own check covered the border windows' columns). Taken for
//! f32 and f64 with AVX-512 (every kernel here written once over `zmm::Zmm`, 16 f32 or 8
//! f64 channels a vector) and windows of at most [`MAX_TAPS`] taps that overlap little
//! ([`MAX_LOADS_PER_INPUT`]), and for 2-D windows of more taps at stride 1 (5×5, 7×7, ..),
//! whose rows take separable passes here ([`separable_s1`]: a W pass per input row into a ring,
//! then the H fold, both by van Herk / Gil-Werman blocks of `K` outputs).
//!
//! Where AVX2 is the level (no AVX-512), every kernel named here has an 8-lane version in
//! `avx2.rs`, taken for channel counts that are multiples of 8 (wrappers such as [`row_k3s2`] pick).
//! Before them AVX2 ran the generic window code; measured (`NNPOOL_KERNEL=avx2
//! RAYON_NUM_THREADS=1 PROBE_N=8 PROBE_NHWC=1 plane_probe`, builds alternating, 3 rounds, µs):
//! inception_max_s1 540–561 → 288–299, inception_avg_s1 749–804 → 262–396, alexnet_max
//! 487–566 → 275–295, vgg_max_14 112–186 → 53–56, resnet_stem_max 2489–2520 → 1251–1576,
//! sppf_max5 743–942 → 247–356, large_avg 1305–1398 → 623–967, max3d 2758–3157 → 1239–1410,
//! vgg_max_224 11290–11861 → 5723–5966.

use super::isa::multiversion;
use super::isa::Isa;
use super::out::{as_uninit_mut, Out};
use super::window::{window_divisor, AxisPlan, FastFloat, Reduce};
use super::zmm::{F32x16, F64x8, Zmm};
use super::{cast, cast_mut, Scratch};
use crate::element::Element;
use crate::geometry::Span;
use crate::layout::Layout;
use crate::plan::{Divisor, Geom};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// `$call!(MODE, K)` with the mode and window side of a separable pass as const generics:
/// `MODE` 1 (the plain max) for `$mode` 1, else 2 (the sum); `K` 2 to 7 (7 for any larger).
macro_rules! by_mode_and_side {
    ($mode:expr, $k:expr, $call:ident) => {
        match ($mode, $k) {
            (1, 2) => $call!(1, 2),
            (1, 3) => $call!(1, 3),
            (1, 4) => $call!(1, 4),
            (1, 5) => $call!(1, 5),
            (1, 6) => $call!(1, 6),
            (1, _) => $call!(1, 7),
            (_, 2) => $call!(2, 2),
            (_, 3) => $call!(2, 3),
            (_, 4) => $call!(2, 4),
            (_, 5) => $call!(2, 5),
            (_, 6) => $call!(2, 6),
            (_, _) => $call!(2, 7),
        }
    };
}

/// Largest window (taps) this path takes.
const MAX_TAPS: usize = 27;

/// Largest number of windows an input value falls in (taps over the stride product) this path
/// takes: each is a load of its own, where the separable kernels share one W-pass result.
/// Measured (`nnpool bench`, same-run A/B against the separable ring kernel, 1 / 2 threads):
/// resnet_stem_max nhwc (2.25 loads per input) 2.3 → 1.8 / 1.1 → 0.95 ms, vgg_max_224 nhwc
/// (1) 10.8–11.8 → 9.7–9.8 / 6.1–6.4 → 5.2–6.4, max3d nhwc (3.4) 2.9–3.1 → 2.1–2.4 / 1.5–1.8 →
/// 1.1–1.2, the 9-tap stride-1 cases about even, sppf_max5 nhwc (25) 0.55 → 0.83 / 0.41 → 0.48,
/// large_avg nhwc (49) 1.4 → 3.8 / 0.74 → 2.0.
const MAX_LOADS_PER_INPUT: usize = 9;

/// Whether [`StrideTwoRows`] takes the problem's rows: a 3×3 window at stride 2 on H and W
/// without dilation, 2-D, or 3-D (max only: sums would be divided per slice) with a depth
/// window of at most 3 slices without dilation.
fn stride_two_3x3(g: &Geom, axes: &[AxisPlan; 3], reduce: Reduce) -> bool {
    let [ad, ah, aw] = axes;
    let k3s2 = |a: &AxisPlan| a.k == 3 && a.s == 2 && a.d == 1 && a.lo < a.hi;
    let flat = g.in3[0] == 1 && g.out3[0] == 1;
    let depth = reduce == Reduce::Max && (1..=3).contains(&ad.k) && ad.d == 1;
    k3s2(ah) && k3s2(aw) && (flat || depth)
}

/// The output rows of a [`stride_two_3x3`] problem. 2-D, one output row at a time
/// ([`StrideTwoRows::row`]: `x86::cl_row_k3s2` on the interior columns). 3-D, one output slice
/// at a time ([`StrideTwoRows::slice`]): the slices of the depth window pooled in 2-D whole,
/// row by row, each into a buffer of its own (interior columns by the kernel, border columns
/// by the exact rule), except one that goes straight to the output: the kernel folds the
/// other slices' pooled rows into its own on the way. Two kinds of work are carried, so that
/// each input row is read once:
/// - within a slice, the W fold of the input row two consecutive output rows share (`top`);
/// - 3-D, the pooled slices of the last output slice's window that the next one reads too
///   (at stride 2 its last slice is the next window's first).
///
/// Measured on max3d nhwc (`PROBE_D=16 PROBE_N=2 PROBE_NHWC=1 RAYON_NUM_THREADS=1
/// plane_probe 64 56 56 3 2 1`, the row-by-row order before, which pooled each output row's
/// row of every slice of its window and folded the pooled rows, alternating with each step,
/// 5 rounds, ms per call, a loaded machine):
/// - whole slices in turn (one input stream instead of two a slice apart): even;
/// - the border columns pooled per slice too: 2.6–3.0 → 2.2–2.4. They were folded from all
///   their 3-D taps per output row, reading the input slice before, long out of cache;
/// - the middle slice straight to the output (no pooled buffer written and read back, and
///   the depth fold's loads ride on the kernel's): 2.5–2.9 → 1.8–2.3. The 2-D rows on as
///   many input bytes (32 slices of 56×56) take 1.7–1.9.
struct StrideTwoRows<L: Zmm> {
    /// The W fold of one input row, that row (`slice * h_in + row`), and whether the call
    /// that made it loaded a NaN.
    top: (Scratch<L::E>, Option<usize>, bool),
    /// 3-D: the pooled slices.
    pooled: Option<SlicePool<L::E>>,
    /// The input is large enough to prefetch ([`super::prefetch_from_bytes`]).
    prefetch: bool,
}

/// 3-D [`StrideTwoRows`]: up to three pooled input slices (`oh × ow × c` values each), the
/// slice each holds (`sample * d_in + d`), and
/// per row whether its making met a NaN.
struct SlicePool<E: FastFloat> {
    values: Scratch<E>,
    nan: Vec<bool>,
    held: [Option<usize>; 3],
    /// The border columns of the fused slice's pooled row (`ow × c` values, the interior
    /// unused).
    edge: Scratch<E>,
}

impl<L: Zmm> StrideTwoRows<L> {
    fn new(g: &Geom, axes: &[AxisPlan; 3], input_bytes: usize) -> Self {
        let aw = &axes[2];
        let len = (aw.hi - aw.lo) * g.channels;
        let flat = g.in3[0] == 1 && g.out3[0] == 1;
        let oh_n = g.out3[1];
        StrideTwoRows {
            top: (Scratch::new(len), None, false),
            pooled: (!flat).then(|| SlicePool {
                values: Scratch::new(3 * oh_n * g.out3[2] * g.channels),
                nan: vec![false; 3 * oh_n],
                held: [None; 3],
                edge: Scratch::new(g.out3[2] * g.channels),
            }),
            prefetch: input_bytes >= super::prefetch_from_bytes(),
        }
    }

    /// The interior columns of output row `oh` of slice `d` of sample `n` (of sample data
    /// `xs`), window rows `sh`, into `inner` (`len` values), by `MODE` (0: the exact max rule,
    /// 1: the plain max, 2: sums, divided by `div`). Returns whether a max mode loaded a NaN
    /// or used a carried fold whose making met one (a plain-max row is then to be redone by
    /// the exact rule).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn row<const MODE: u8, const PRE: bool, const POST: bool>(
        &mut self,
        g: &Geom,
        axes: &[AxisPlan; 3],
        xs: &[L::E],
        ([n, d], sh): ([usize; 2], Span),
        (div, around): (L::E, [&[L::E]; 2]),
        inner: &mut [MaybeUninit<L::E>],
    ) -> bool {
        let [d_in, h_in, w_in] = g.in3;
        let c = g.channels;
        let aw = &axes[2];
        let (col0, cols) = (aw.spans[aw.lo].first, aw.hi - aw.lo);
        let (top, top_row, top_nan) = &mut self.top;
        let first_row = (n * d_in + d) * h_in + sh.first;
        let ready = MODE != 0 && *top_row == Some(first_row);
        let carried_nan = ready && *top_nan;
        let at = |i: usize| ((d * h_in + sh.first + i) * w_in) * c;
        // SAFETY: `applies` checked the level the kernels run at; the window rows sh of slice d lie in the
        // sample and columns lo..hi have every tap in bounds (that is what `lo`/`hi` mean),
        // so columns col0 .. col0 + 2 cols + 1 lie in each row; `top` and `inner` hold len =
        // cols × c values, and so do `around`'s rows the const flags name (the caller's).
        let loaded_nan = unsafe {
            let with = (ready, around, self.prefetch);
            match sh.count {
                1 => {
                    let rows = [at(0)];
                    row_k3s2::<L, MODE, 1, PRE, POST>(
                        xs, rows, c, col0, cols, div, with, top, inner,
                    )
                }
                2 => {
                    let rows = [at(0), at(1)];
                    row_k3s2::<L, MODE, 2, PRE, POST>(
                        xs, rows, c, col0, cols, div, with, top, inner,
                    )
                }
                _ => {
                    let rows = [at(0), at(1), at(2)];
                    row_k3s2::<L, MODE, 3, PRE, POST>(
                        xs, rows, c, col0, cols, div, with, top, inner,
                    )
                }
            }
        };
        *top_row = Some(first_row + sh.count - 1);
        *top_nan = loaded_nan || carried_nan;
        loaded_nan || carried_nan
    }

    /// 3-D: output slice `od` of sample `n` into `out` (its `oh × ow × c` values): the slices
    /// of its depth window pooled whole (those the last call pooled are reused; interior
    /// columns by the plain max, the border columns by the exact rule), then folded row by
    /// row, earlier slices first (the interior columns with the plain max, the border columns
    /// by the exact rule). Rows whose interior met a NaN are folded window by window by the
    /// exact rule. Every output row's window rows hold 1 to 3 input rows and the depth window
    /// 1 to 3 slices (`slice_ready`). Returns whether it wrote `out` (not without the pooled
    /// slices' buffers, which only 3-D problems have).
    fn slice(
        &mut self,
        g: &Geom,
        axes: &[AxisPlan; 3],
        xs: &[L::E],
        [n, od]: [usize; 2],
        offs: &mut [usize; MAX_PIXEL_TAPS],
        out: &mut [MaybeUninit<L::E>],
    ) -> bool {
        let [ad, ah, aw] = axes;
        let (d_in, oh_n, c) = (g.in3[0], g.out3[1], g.channels);
        let row_len = g.out3[2] * c;
        let plane = oh_n * row_len;
        let sd = ad.spans[od];
        let Some(mut pool) = self.pooled.take() else {
            return false; // a 2-D problem: nothing written, the caller takes the rows on
        };
        let one = |d: usize| Span {
            first: d,
            step: 1,
            count: 1,
            padded_count: 1,
        };
        let window = n * d_in + sd.first..n * d_in + sd.first + sd.count;
        // the slice that goes straight to the output: one not pooled yet that the next
        // output slice's window does not read, with at most one slice on either side
        let next = ad
            .spans
            .get(od + 1)
            .map_or(0..0, |s| s.first..s.first + s.count);
        let fused = (0..sd.count).find(|&t| {
            let d = sd.first + t;
            t <= 1
                && sd.count - t <= 2
                && !next.contains(&d)
                && !pool.held.contains(&Some(n * d_in + d))
        });
        let mut slots = [0usize; 3];
        for (t, d) in sd.taps().enumerate() {
            let slice = n * d_in + d;
            if fused == Some(t) {
                continue;
            }
            slots[t] = match pool.held.iter().position(|&h| h == Some(slice)) {
                Some(slot) => slot,
                None => {
                    // a slot that holds no slice of this window
                    let slot = (0..3)
                        .find(|&i| pool.held[i].is_none_or(|h| !window.contains(&h)))
                        .unwrap_or(0);
                    let values = &mut pool.values[slot * plane..(slot + 1) * plane];
                    let nan = &mut pool.nan[slot * oh_n..(slot + 1) * oh_n];
                    for (oh, (row, nan)) in values.chunks_exact_mut(row_len).zip(nan).enumerate() {
                        let sh = ah.spans[oh];
                        // SAFETY: the kernels store computed values only.
                        let row = unsafe { as_uninit_mut(row) };
                        let inner = &mut row[aw.lo * c..aw.hi * c];
                        let none = (L::ONE, [&[][..], &[]]);
                        *nan = self.row::<1, false, false>(g, axes, xs, ([n, d], sh), none, inner);
                        border_pixels::<L>(g, axes, Reduce::Max, 0, xs, [one(d), sh], offs, row);
                    }
                    pool.held[slot] = Some(slice);
                    slot
                }
            };
        }
        let (count, ow_n) = (sd.count, g.out3[2]);
        for (oh, out) in out.chunks_exact_mut(row_len).enumerate() {
            let sh = ah.spans[oh];
            let at = |t: usize| slots[t] * plane + oh * row_len;
            let mut nan = (0..count).any(|t| fused != Some(t) && pool.nan[slots[t] * oh_n + oh]);
            if let Some(tf) = fused {
                // the fused slice's row, folded with its neighbours' pooled rows on the way
                let inner_of = |t: usize| &pool.values[at(t)..][aw.lo * c..aw.hi * c];
                let (pre, post) = (tf > 0, tf + 1 < count);
                let around = [
                    if pre { inner_of(tf - 1) } else { &[] },
                    if post { inner_of(tf + 1) } else { &[] },
                ];
                let inner = &mut out[aw.lo * c..aw.hi * c];
                let args = ([n, sd.first + tf], sh);
                nan |= match (pre, post) {
                    (true, true) => {
                        self.row::<1, true, true>(g, axes, xs, args, (L::ONE, around), inner)
                    }
                    (true, false) => {
                        self.row::<1, true, false>(g, axes, xs, args, (L::ONE, around), inner)
                    }
                    (false, true) => {
                        self.row::<1, false, true>(g, axes, xs, args, (L::ONE, around), inner)
                    }
                    (false, false) => {
                        self.row::<1, false, false>(g, axes, xs, args, (L::ONE, around), inner)
                    }
                };
            }
            if nan {
                pixels::<L>(g, axes, Reduce::Max, 0, xs, [sd, sh], 0..ow_n, offs, out);
                continue;
            }
            if let Some(tf) = fused {
                // SAFETY: the kernel stores computed values only.
                let edge = unsafe { as_uninit_mut(&mut pool.edge) };
                border_pixels::<L>(
                    g,
                    axes,
                    Reduce::Max,
                    0,
                    xs,
                    [one(sd.first + tf), sh],
                    offs,
                    edge,
                );
            }
            let mut taps: [&[L::E]; 3] = [&[]; 3];
            for (cols, mode) in [(aw.lo..aw.hi, 1), (0..aw.lo, 0), (aw.hi..ow_n, 0)] {
                if cols.is_empty() || (mode == 1 && fused.is_some()) {
                    continue;
                }
                let span = cols.start * c..cols.end * c;
                for (t, tap) in taps.iter_mut().enumerate().take(count) {
                    *tap = if fused == Some(t) {
                        &pool.edge[span.clone()]
                    } else {
                        &pool.values[at(t)..][span.clone()]
                    };
                }
                fold_rows::<L>(mode, &taps[..count], None, &mut out[span]);
            }
        }
        self.pooled = Some(pool);
        true
    }
}

/// Whether every output slice of a 3-D [`stride_two_3x3`] problem can take
/// [`StrideTwoRows::slice`]: every depth window holds 1 to 3 slices, every row window 1 to 3
/// rows.
fn slice_ready(axes: &[AxisPlan; 3]) -> bool {
    let [ad, ah, _] = axes;
    ad.spans.iter().all(|s| (1..=3).contains(&s.count))
        && ah.spans.iter().all(|s| (1..=3).contains(&s.count))
}

/// States of an input row in `rows_body`'s check.
const UNCHECKED: u8 = 0;
const FINITE: u8 = 1;
const SPECIAL: u8 = 2;

/// Whether this path takes the problem: f32 with AVX-512 or AVX2, f64 with AVX-512 (8
/// channels a vector).
pub(crate) fn applies<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    with_indices: bool,
) -> bool {
    let (f32, f64) = (super::same_type::<F, f32>(), super::same_type::<F, f64>());
    let taps = axes
        .iter()
        .map(|a| a.spans.iter().map(|s| s.count).max().unwrap_or(0))
        .product::<usize>();
    let strides = axes.iter().map(|a| a.s.max(1)).product::<usize>();
    g.layout == Layout::ChannelsLast
        && !(with_indices && reduce == Reduce::Max)
        && !matches!(reduce, Reduce::Sum(Divisor::PerAxis))
        && (f32 && (wide(g) || narrow(g)) || f64 && wide(g))
        && (((1..=MAX_TAPS).contains(&taps) && taps <= MAX_LOADS_PER_INPUT * strides)
            || separable_s1(g, axes).is_some())
}

/// Whether the AVX-512 kernels take the problem: 16 channels or more (a pixel fills a vector).
fn wide(g: &Geom) -> bool {
    super::isa::has_avx512() && g.channels >= 16
}

/// Whether the AVX2 kernels take the problem (AVX2 the level, not AVX-512): channel counts
/// that are multiples of 8, so that no vector has a tail (AVX2 has no masked load into a
/// chosen value, and its masked stores are slow on AMD's cores).
fn narrow(g: &Geom) -> bool {
    super::isa::avx2_level() && g.channels >= 8 && g.channels.is_multiple_of(8)
}

/// Largest window side of [`separable_s1`] problems.
const MAX_SEPARABLE_K: usize = 7;

/// Most taps of any window this path folds from its taps: a [`separable_s1`] problem's border
/// windows, and the exact-rule rows of one (a NaN or an infinity in their input).
const MAX_PIXEL_TAPS: usize = MAX_SEPARABLE_K * MAX_SEPARABLE_K;

/// The window `(kh, kw)` of a 2-D problem at stride 1 without dilation, too large to fold each
/// window from its taps (more than [`MAX_LOADS_PER_INPUT`] loads per input), whose output
/// rows take separable passes: each input row folded along W once, into a [`WRing`] of
/// `2 kh − 1` rows, then the ring's rows folded along H.
///
/// Both passes work in van Herk / Gil-Werman blocks: `K` consecutive windows share the `2 K −
/// 1` inputs they span, folded as suffixes of the first `K` and prefixes of the rest
/// (`x86::fold_row_w` along W, all channels of a block's pixels in turn;
/// `x86::fold_rows_blocked` along H, `kh` output rows from `2 kh − 1` ring rows). Per output
/// and pass that is about 2 loads and 3 folds whatever the window, where folding each window
/// took `K` loads and `K − 1` folds. The border columns are one running fold from each end
/// of the row (`x86::fold_row_w` too), and so are a sample's top and bottom border rows
/// (`x86::fold_rows_edges`, when a task holds them all); other rows (interior rows too few for
/// a block, border rows split between tasks) fold their window's ring rows in order
/// (`x86::fold_rows`). The W pass checks its loads
/// for NaN (every pixel of a row lies in an interior window); a row holding one is marked in
/// the ring, and the output rows that read it fold window by window by the exact rule.
/// Max values keep the reference's bits: every fold takes the earlier values as its
/// accumulator, W before H, so that the earliest of equal values wins as in the reference's
/// row-major fold. Sums are regrouped, within rounding of its sequential sum.
///
/// Measured with the blocks (runs of the previous build alternating with this one,
/// `PROBE_NHWC=1 PROBE_N=8 plane_probe`, 1 thread, 5 rounds): large_avg (64
/// channels, 56×56, 7×7 average) 1.32–1.77 → 0.58–1.37 ms (faster in 4 rounds of 5, by
/// 2.2–2.9× in 3); sppf_max5 (256 channels, 20×20, 5×5 max) about even (0.36–0.38 against
/// 0.37–0.39 ms): there the input's first reading and the output's stores cost most, and the
/// blocks do not change them. Before the blocks, measured
/// (`nnpool bench --layout nhwc`, same runs against the ring kernel of `window.rs` these
/// problems took before, 1 / 2 threads): sppf_max5 0.54–0.57 / 0.31–0.37 → 0.37–0.38 /
/// 0.20 ms, large_avg 1.35–1.66 / 0.71–0.82 → 1.08–1.15 / 0.57 ms. Channel counts that are
/// not a multiple of 16 fold each run's last vector through a mask (`plane_probe`, one
/// thread, cache-resident: 24 channels 56×56 7×7 average 87 → 57 µs, 40 channels 20×20 5×5
/// max 14.6 → 8.5 µs, against the ring kernel they took before).
fn separable_s1(g: &Geom, axes: &[AxisPlan; 3]) -> Option<(usize, usize)> {
    let [_, ah, aw] = axes;
    // every window holds an input value (the ring and the border columns fold at least one)
    let plain = |a: &AxisPlan| {
        a.s == 1
            && a.d == 1
            && (2..=MAX_SEPARABLE_K).contains(&a.k)
            && a.lo < a.hi
            && a.spans.iter().all(|sp| sp.count > 0)
    };
    // the border windows are cut by one end of the row (column) only, and grow towards the
    // interior (`x86::fold_row_w` and `fold_rows_edges` fold each side in one run)
    let edges = |a: &AxisPlan, n: usize| {
        let (low, high) = (&a.spans[..a.lo], &a.spans[a.hi..]);
        low.iter().all(|sp| sp.first == 0)
            && low.windows(2).all(|p| p[0].count < p[1].count)
            && high.iter().all(|sp| sp.first + sp.count == n)
            && high.windows(2).all(|p| p[0].first < p[1].first)
    };
    let edges = edges(aw, g.in3[2]) && edges(ah, g.in3[1]);
    let flat = g.in3[0] == 1 && g.out3[0] == 1;
    (flat && plain(ah) && plain(aw) && edges && ah.k * aw.k > MAX_LOADS_PER_INPUT)
        .then_some((ah.k, aw.k))
}

/// Where [`WRing`] places its rows, in bytes past the output's address modulo 4 KiB. The H
/// pass loads a vector of each ring row and stores a vector of each output row at the same
/// column, so where the two fall within a 4 KiB page matters: with the ring at the output's
/// page offset, sppf_max5 nhwc ran at 367 µs against 208–217 with it anywhere else measured,
/// 64 B to 2 KiB away (`PROBE_NHWC=1 PROBE_N=8 plane_probe 256 20 20 5 1 2`, 1 thread, the
/// ring and the output moved; its rows, 20 KiB long, all fall at the same page offset, as do
/// the output's). Whether L1 set conflicts or the loads' false dependences on the stores
/// (4 KiB aliasing) cost it, this VM's lack of hardware counters does not tell. Fresh
/// allocations all start at the same page offset, so the allocating call met it often: the
/// allocating bench call and the one into a buffer had differed by that much (0.30 against
/// 0.21 ms). Half a page away stays clear of it whatever the row lengths bring.
const RING_FROM_OUTPUT: usize = 2048;

/// Bytes by which [`WRing`] can move its rows (a page); it allocates as many more bytes.
const RING_PLACEMENT_SLACK_BYTES: usize = 4096;

/// The W-pass rows of a [`separable_s1`] problem: slot `h % slots` holds input row `h` of
/// the sample named by its tag (`sample * h_in + h`), each row an output row long, and
/// whether that input row holds a NaN (max only). `2 kh − 1` slots: the input rows of `kh`
/// consecutive output rows, which [`WRing::h_fold_block`] folds together.
struct WRing<L: Zmm> {
    rows: Scratch<L::E>,
    /// Where slot 0 starts in `rows` ([`RING_FROM_OUTPUT`]).
    base: usize,
    tags: Vec<(usize, bool)>,
    kh: usize,
    kw: usize,
    len: usize,
    /// The border columns' windows: left, their in-bounds tap counts (from column 0); right,
    /// their first columns (to the row's end).
    left: Vec<usize>,
    right: Vec<usize>,
}

impl<L: Zmm> WRing<L> {
    /// `2 kh − 1`: one slot per tag.
    fn slots(&self) -> usize {
        self.tags.len()
    }

    /// Where the slot of input row `h` starts in `rows`.
    fn slot_start(&self, h: usize) -> usize {
        self.base + h % self.slots() * self.len
    }

    fn new((kh, kw): (usize, usize), aw: &AxisPlan, len: usize, out: *const L::E) -> Self {
        let slots = 2 * kh - 1;
        let size = std::mem::size_of::<L::E>();
        let rows = Scratch::new(slots * len + RING_PLACEMENT_SLACK_BYTES / size);
        let want = (out as usize).wrapping_add(RING_FROM_OUTPUT);
        let base = want.wrapping_sub(rows.as_ptr() as usize) % RING_PLACEMENT_SLACK_BYTES / size;
        WRing {
            rows,
            base,
            tags: vec![(usize::MAX, false); slots],
            kh,
            kw,
            len,
            left: aw.spans[..aw.lo].iter().map(|sp| sp.count).collect(),
            right: aw.spans[aw.hi..].iter().map(|sp| sp.first).collect(),
        }
    }

    /// W-passes the input rows `rows` that the ring does not hold yet, by `mode` (1: the plain
    /// max, 2: the sum): rows of `xs`, sample `sample` of a problem with `h_in` rows of `w_in`
    /// pixels of `c` channels. Returns whether one of `rows` holds a NaN (max only: its
    /// windows are then to be folded by the exact rule).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn fill(
        &mut self,
        mode: u8,
        xs: &[L::E],
        sample: usize,
        [h_in, w_in]: [usize; 2],
        c: usize,
        aw: &AxisPlan,
        rows: std::ops::Range<usize>,
    ) -> bool {
        let in_row = w_in * c;
        let mut any_nan = false;
        for h in rows {
            let (slot, tag) = (h % self.slots(), sample * h_in + h);
            if self.tags[slot].0 == tag {
                any_nan |= self.tags[slot].1;
                continue;
            }
            let row = &xs[h * in_row..(h + 1) * in_row];
            let start = self.slot_start(h);
            let dst = &mut self.rows[start..][..self.len];
            // the interior columns by blocks, the border columns by running folds from the
            // row's ends
            let first = aw.spans[aw.lo].first;
            let cols = aw.hi - aw.lo;
            assert!(
                row.len() >= w_in * c
                    && first + cols + self.kw - 1 <= w_in
                    && dst.len() >= aw.spans.len() * c
                    && self.left.len() == aw.lo
                    && aw.hi + self.right.len() == aw.spans.len()
                    && self.left.iter().all(|&n| (1..=w_in).contains(&n))
                    && self.right.iter().all(|&f| f < w_in)
            );
            let (src, out) = (row.as_ptr(), dst.as_mut_ptr());
            let (inner, left, right) = ((aw.lo, first, cols), &self.left[..], &self.right[..]);
            // SAFETY: `applies` checked the level `fold_row_w` calls; the row holds w_in pixels
            // and the slot aw.spans.len() outputs, another buffer; the interior windows end at pixel first
            // + cols + kw − 1 <= w_in, the border counts and starts lie in the row (all
            // asserted); kw is 2..=MAX_SEPARABLE_K (`separable_s1`).
            let nan = unsafe {
                macro_rules! w_pass {
                    ($m:literal, $k:literal) => {
                        fold_row_w::<L, $m, $k>(src, (c, w_in), inner, (left, right), out)
                    };
                }
                by_mode_and_side!(mode, self.kw, w_pass)
            };
            self.tags[slot] = (tag, nan);
            any_nan |= nan;
        }
        any_nan
    }

    /// Output columns `cols` (of `c` channels) of one output row into `out` (the whole row):
    /// the fold of the ring rows of window rows `sh`, in order, then divided by `div`.
    #[inline(always)]
    fn h_fold(
        &self,
        mode: u8,
        sh: Span,
        cols: std::ops::Range<usize>,
        c: usize,
        div: Option<L::E>,
        out: &mut [MaybeUninit<L::E>],
    ) {
        let mut taps: [&[L::E]; MAX_SEPARABLE_K] = [&[]; MAX_SEPARABLE_K];
        for (tap, h) in taps.iter_mut().zip(sh.taps()) {
            *tap = &self.rows[self.slot_start(h)..][cols.start * c..cols.end * c];
        }
        let dst = &mut out[cols.start * c..cols.end * c];
        fold_rows::<L>(mode, &taps[..sh.count], div, dst);
    }

    /// Output columns `cols` of the border rows whose H spans are `spans` (all the `top` ones,
    /// from the sample's first row, or all the bottom ones, to its last), consecutive rows of
    /// `out` (those whole rows), by `x86::fold_rows_edges`: one running fold over the ring
    /// rows they read, then (sums) divided by `divs[i]`.
    #[inline(always)]
    fn h_fold_edges(
        &self,
        mode: u8,
        (spans, top): (&[Span], bool),
        cols: std::ops::Range<usize>,
        c: usize,
        divs: &[L::E],
        out: &mut [MaybeUninit<L::E>],
    ) {
        let rows_n = spans.len();
        let (first_row, read) = if top {
            (0, spans[rows_n - 1].count)
        } else {
            (spans[0].first, spans[0].count)
        };
        let n = cols.len() * c;
        let row_len = out.len() / rows_n;
        assert!(
            rows_n <= MAX_SEPARABLE_K
                && read <= self.slots()
                && cols.end * c <= row_len.min(self.len)
        );
        let mut srcs = [std::ptr::null::<L::E>(); MAX_SEPARABLE_K];
        for (i, p) in srcs.iter_mut().enumerate().take(read) {
            *p = self.rows[self.slot_start(first_row + i) + cols.start * c..].as_ptr();
        }
        let mut dsts = [std::ptr::null_mut::<L::E>(); MAX_SEPARABLE_K];
        for (r, p) in dsts.iter_mut().enumerate().take(rows_n) {
            *p = out[r * row_len + cols.start * c..]
                .as_mut_ptr()
                .cast::<L::E>();
        }
        let mut bounds = [0usize; MAX_SEPARABLE_K];
        for (b, sp) in bounds.iter_mut().zip(spans) {
            *b = if top { sp.count } else { sp.first - first_row };
        }
        let bounds = &bounds[..rows_n];
        let bounds = if top { Ok(bounds) } else { Err(bounds) };
        let (srcs, dsts) = (&srcs[..read], &dsts[..rows_n]);
        // SAFETY: `applies` checked the level the kernels run at; every source is a ring slot and every
        // destination an output row, each holding n values from the pointer (asserted: cols
        // lie in both); `separable_s1` checked that the top windows start at row 0 with
        // counts increasing and the bottom ones end at the last row with starts increasing,
        // so the bounds lie in 1..=read (below read for starts).
        unsafe {
            match mode {
                1 => fold_rows_edges::<L, 1>(srcs, n, bounds, divs, dsts),
                _ => fold_rows_edges::<L, 2>(srcs, n, bounds, divs, dsts),
            }
        }
    }

    /// Output columns `cols` of the `kh` consecutive output rows whose windows start at input
    /// row `first` into `out` (those whole rows): each the fold of its window's ring rows (all
    /// `2 kh − 1` in the ring), then divided by `div`, by `x86::fold_rows_blocked`.
    #[inline(always)]
    fn h_fold_block(
        &self,
        mode: u8,
        first: usize,
        cols: std::ops::Range<usize>,
        c: usize,
        div: Option<L::E>,
        out: &mut [MaybeUninit<L::E>],
    ) {
        let n = cols.len() * c;
        let row_len = out.len() / self.kh;
        assert!(self.slots() < 2 * MAX_SEPARABLE_K && cols.end * c <= row_len.min(self.len));
        let mut srcs = [std::ptr::null::<L::E>(); 2 * MAX_SEPARABLE_K - 1];
        for (i, p) in srcs.iter_mut().enumerate().take(self.slots()) {
            *p = self.rows[self.slot_start(first + i) + cols.start * c..].as_ptr();
        }
        let mut dsts = [std::ptr::null_mut::<L::E>(); MAX_SEPARABLE_K];
        for (r, p) in dsts.iter_mut().enumerate().take(self.kh) {
            *p = out[r * row_len + cols.start * c..]
                .as_mut_ptr()
                .cast::<L::E>();
        }
        let (srcs, dsts) = (&srcs[..self.slots()], &dsts[..self.kh]);
        // SAFETY: `applies` checked the level the kernels run at; kh is 2..=MAX_SEPARABLE_K; every source is a
        // ring slot and every destination an output row, each holding n values from the
        // pointer (asserted: cols lie in both).
        unsafe {
            macro_rules! vh {
                ($m:literal, $k:literal) => {
                    fold_rows_blocked::<L, $m, $k>(srcs, n, div, dsts)
                };
            }
            by_mode_and_side!(mode, self.kh, vh)
        }
    }
}

/// `dst = ` the fold of `taps` in order by `mode` (0: the exact max rule, 1: plain max, 2:
/// sum; sums finished and divided by `div` when given): one pass of a [`separable_s1`] row,
/// or the depth fold of [`StrideTwoRows::slice`].
#[inline(always)]
fn fold_rows<L: Zmm>(mode: u8, taps: &[&[L::E]], div: Option<L::E>, dst: &mut [MaybeUninit<L::E>]) {
    let n = dst.len();
    assert!(taps.len() <= MAX_SEPARABLE_K && taps.iter().all(|t| t.len() >= n));
    let mut srcs = [std::ptr::null::<L::E>(); MAX_SEPARABLE_K];
    for (p, t) in srcs.iter_mut().zip(taps) {
        *p = t.as_ptr();
    }
    let (srcs, dst) = (&srcs[..taps.len()], dst.as_mut_ptr().cast::<L::E>());
    // SAFETY: `applies` checked the level the kernels run at; every tap holds n values and
    // `dst` n (asserted), distinct buffers (the input or the ring; the ring or the output).
    unsafe {
        match mode {
            0 => fold_rows_at::<L, 0>(srcs, n, div, dst),
            1 => fold_rows_at::<L, 1>(srcs, n, div, dst),
            _ => fold_rows_at::<L, 2>(srcs, n, div, dst),
        }
    }
}

#[inline(always)]
fn rows_body<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    row0: usize,
    y: &mut [MaybeUninit<F>],
) {
    if let (Some(x), Some(y)) = (cast::<F, f32>(x), cast_mut::<_, MaybeUninit<f32>>(&mut *y)) {
        rows::<F32x16>(g, axes, reduce, x, row0, y);
    } else if let (Some(x), Some(y)) = (cast::<F, f64>(x), cast_mut::<_, MaybeUninit<f64>>(y)) {
        rows::<F64x8>(g, axes, reduce, x, row0, y);
    }
}

/// Output rows from `row0` on into `y` (whole rows), in vectors of `L`.
#[inline(always)]
fn rows<L: Zmm>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[L::E],
    row0: usize,
    y: &mut [MaybeUninit<L::E>],
) {
    let [_, h_in, w_in] = g.in3;
    let [od_n, oh_n, ow_n] = g.out3;
    let c = g.channels;
    let sample = g.in_plane() * c;
    let mut offs = [0usize; MAX_PIXEL_TAPS];
    let row_len = ow_n * c;
    let rows = y.len() / row_len;
    // Whether each input row (of sample `checked_sample`) holds a NaN or an infinity, found
    // the first time an output row reads it, just before its windows load it again (the
    // check then brings the row into cache for them rather than costing a pass of its own).
    // An output row whose input rows hold none folds with the plain max; the exact rule
    // gives the same result there.
    let mut row_state = vec![UNCHECKED; g.in3[0] * h_in];
    let mut checked_sample = usize::MAX;
    let in_row = w_in * c;
    let [_, ah, aw] = axes;
    let pairs = stride_one_3x3(g, axes);
    let k2s2 = two_by_two(g, axes);
    let from_memory = std::mem::size_of_val(x) >= super::prefetch_from_bytes();
    let mut ring =
        separable_s1(g, axes).map(|k| WRing::<L>::new(k, aw, row_len, y.as_ptr().cast()));
    let mut k3s2 = stride_two_3x3(g, axes, reduce)
        .then(|| StrideTwoRows::<L>::new(g, axes, std::mem::size_of_val(x)));
    let slices_whole = slice_ready(axes);
    let mut r = 0;
    while r < rows {
        let flat = row0 + r; // (n, od, oh) flattened
        let (n, od, oh) = (flat / (od_n * oh_n), flat / oh_n % od_n, flat % oh_n);
        let xs = &x[n * sample..(n + 1) * sample];
        let (sd, sh) = (axes[0].spans[od], ah.spans[oh]);
        if n != checked_sample {
            row_state.fill(UNCHECKED);
            checked_sample = n;
        }
        if let Some(k3s2) = k3s2.as_mut() {
            if k3s2.pooled.is_some() {
                if oh == 0 && r + oh_n <= rows && slices_whole {
                    // 3-D: one output slice, its depth window's slices pooled whole
                    let out = &mut y[r * row_len..(r + oh_n) * row_len];
                    if k3s2.slice(g, axes, xs, [n, od], &mut offs, out) {
                        r += oh_n;
                        continue;
                    }
                }
            } else if (1..=3).contains(&sh.count) {
                // 2-D: one 3×3 stride-2 row (fewer rows at a border)
                let div = divisor(reduce, [sd, sh, aw.spans[aw.lo]]);
                let out = &mut y[r * row_len..(r + 1) * row_len];
                let inner = &mut out[aw.lo * c..aw.hi * c];
                let (at, div) = (([n, 0], sh), (div, [&[][..], &[]]));
                match reduce {
                    Reduce::Sum(_) => _ = k3s2.row::<2, false, false>(g, axes, xs, at, div, inner),
                    Reduce::Max => {
                        // a NaN in the rows this call loaded, or in the making of the fold it
                        // carried over: the exact rule, every row again
                        if k3s2.row::<1, false, false>(g, axes, xs, at, div, inner) {
                            k3s2.row::<0, false, false>(g, axes, xs, at, div, inner);
                        }
                    }
                }
                border_pixels::<L>(
                    g,
                    axes,
                    reduce,
                    exact_mode(reduce),
                    xs,
                    [sd, sh],
                    &mut offs,
                    out,
                );
                r += 1;
                continue;
            }
        }
        let pair_edge = if pairs && r + 1 < rows && oh + 1 < oh_n {
            row_pair_edge(ah, oh)
        } else {
            None
        };
        if let Some(edge) = pair_edge {
            // two output rows of a 3×3 stride-1 window: their input rows are loaded once
            let divs =
                [oh, oh + 1].map(|o| divisor::<L::E>(reduce, [sd, ah.spans[o], aw.spans[aw.lo]]));
            let (out0, out1) = y[r * row_len..(r + 2) * row_len].split_at_mut(row_len);
            // the input row above the pair's first output row (where there is one)
            let top = ah.spans[oh + 1].first as isize - 1;
            let rows_at = [0, 1, 2, 3]
                .map(|i| (top + i as isize).clamp(0, h_in as isize - 1) as usize * in_row);
            let col0 = aw.spans[aw.lo].first;
            let (o0, o1) = (
                &mut out0[aw.lo * c..aw.hi * c],
                &mut out1[aw.lo * c..aw.hi * c],
            );
            let cols = aw.hi - aw.lo;
            use super::x86::{ROWS_ALL, ROWS_NO_BOTTOM, ROWS_NO_TOP};
            macro_rules! k3 {
                ($mode:literal) => {
                    match edge {
                        ROWS_NO_TOP => rows2_k3::<L, $mode, ROWS_NO_TOP>(
                            xs, rows_at, c, col0, cols, divs, o0, o1,
                        ),
                        ROWS_NO_BOTTOM => rows2_k3::<L, $mode, ROWS_NO_BOTTOM>(
                            xs, rows_at, c, col0, cols, divs, o0, o1,
                        ),
                        _ => {
                            rows2_k3::<L, $mode, ROWS_ALL>(xs, rows_at, c, col0, cols, divs, o0, o1)
                        }
                    }
                };
            }
            // SAFETY: `applies` checked the level the kernels run at; columns lo..hi of rows oh and oh + 1 have
            // every W tap in bounds (that is what `lo`/`hi` mean), and `row_pair_edge` found
            // the rows' windows to be the input rows it reads (all in bounds), so the rows
            // read and columns col0 .. col0 + cols + 2 lie in the sample. The plain max (mode
            // 1) checks every value it loads for NaN and ±inf on the way; the rows are redone
            // by the exact rule (mode 0) when it finds one.
            let checked_finite = unsafe {
                match reduce {
                    Reduce::Sum(_) => k3!(2),
                    Reduce::Max => {
                        let special = k3!(1);
                        if special {
                            k3!(0);
                        }
                        !special
                    }
                }
            };
            // The border windows (padding) fold with the plain max where the kernel checked
            // all their columns (the input columns the interior windows span, which are all
            // of them at a padding of 1) and found neither NaN nor ±inf; otherwise by the
            // exact rule, right whatever the values (checking their rows first would read
            // the rows a second time). Measured (`PROBE_NHWC=1 PROBE_N=8 plane_probe 192 28
            // 28 3 1 1`, 1 thread): the exact border pixels were 11 % of the time.
            let checked = col0..col0 + cols + 2;
            let in_checked = |ow: usize| {
                let sp = aw.spans[ow];
                sp.count == 0
                    || checked.contains(&sp.first) && checked.contains(&(sp.first + sp.count - 1))
            };
            let border_mode = if checked_finite && (0..aw.lo).chain(aw.hi..ow_n).all(in_checked) {
                1 // the plain max
            } else {
                exact_mode(reduce)
            };
            for (i, out) in [out0, out1].into_iter().enumerate() {
                let spans = [sd, ah.spans[oh + i]];
                border_pixels::<L>(g, axes, reduce, border_mode, xs, spans, &mut offs, out);
            }
            r += 2;
            continue;
        }
        if k2s2 && oh >= ah.lo && oh < ah.hi {
            // a 2×2 stride-2 row: the NaN check rides on the kernel's own loads
            let div = divisor::<L::E>(reduce, [sd, sh, aw.spans[aw.lo]]);
            let out = &mut y[r * row_len..(r + 1) * row_len];
            let rows_at = [sh.first * in_row, (sh.first + 1) * in_row];
            let col0 = aw.spans[aw.lo].first;
            let cols = aw.hi - aw.lo;
            let inner = &mut out[aw.lo * c..aw.hi * c];
            macro_rules! k2 {
                ($mode:literal, $check:expr) => {
                    row_k2s2::<L, $mode>(
                        xs,
                        rows_at,
                        c,
                        col0,
                        cols,
                        div,
                        ($check, from_memory),
                        inner,
                    )
                };
            }
            // SAFETY: `applies` checked the level the kernels run at; row oh and columns lo..hi have every tap in
            // bounds (that is what `lo`/`hi` mean), so input rows sh.first, sh.first + 1 and
            // columns col0 .. col0 + 2 cols lie in the sample.
            let mode = unsafe {
                match reduce {
                    Reduce::Sum(_) => {
                        k2!(2, false);
                        2
                    }
                    Reduce::Max => {
                        if k2!(1, true) {
                            k2!(0, false);
                            0
                        } else {
                            1
                        }
                    }
                }
            };
            // the border windows read columns the kernel did not (padding, a ceil-mode
            // overhang): they take the exact rule, right whatever the values
            let border_mode = if mode == 1 { exact_mode(reduce) } else { mode };
            border_pixels::<L>(g, axes, reduce, border_mode, xs, [sd, sh], &mut offs, out);
            r += 1;
            continue;
        }
        if let Some(ring) = ring.as_mut() {
            // the plain max (a row with a NaN takes the exact rule) or the sum
            let mode = if reduce == Reduce::Max { 1 } else { 2 };
            let kh = ring.kh;
            // kh interior rows of one sample in this task: one block, each ring row folded
            // into the kh windows that read it at once
            if oh >= ah.lo && oh + kh <= ah.hi && r + kh <= rows {
                let block_rows = sh.first..sh.first + 2 * kh - 1;
                if !ring.fill(mode, xs, n, [h_in, w_in], c, aw, block_rows) {
                    let out = &mut y[r * row_len..(r + kh) * row_len];
                    match reduce {
                        Reduce::Max => ring.h_fold_block(mode, sh.first, 0..ow_n, c, None, out),
                        Reduce::Sum(_) => {
                            let div = |ow: usize| Some(divisor(reduce, [sd, sh, aw.spans[ow]]));
                            ring.h_fold_block(mode, sh.first, aw.lo..aw.hi, c, div(aw.lo), out);
                            for ow in (0..aw.lo).chain(aw.hi..ow_n) {
                                ring.h_fold_block(mode, sh.first, ow..ow + 1, c, div(ow), out);
                            }
                        }
                    }
                    r += kh;
                    continue;
                }
            }
            // the top or the bottom border rows of a sample, all in this task: one running
            // fold over the ring rows they read
            let group = if oh == 0 && ah.lo > 0 {
                0..ah.lo
            } else if oh == ah.hi && ah.hi < oh_n {
                ah.hi..oh_n
            } else {
                0..0
            };
            if !group.is_empty() && r + group.len() <= rows {
                let spans = &ah.spans[group.clone()];
                // the top group reads rows 0 .. its last window's end, the bottom one its
                // first window's rows
                let (first, last) = (spans[0], spans[spans.len() - 1]);
                let top = oh == 0;
                let read = if top {
                    0..last.count
                } else {
                    first.first..first.first + first.count
                };
                if !ring.fill(mode, xs, n, [h_in, w_in], c, aw, read) {
                    let out = &mut y[r * row_len..(r + group.len()) * row_len];
                    match reduce {
                        Reduce::Max => ring.h_fold_edges(mode, (spans, top), 0..ow_n, c, &[], out),
                        Reduce::Sum(_) => {
                            // per row one divisor for the interior columns, each border
                            // column its own
                            let mut divs = [L::ONE; MAX_SEPARABLE_K];
                            let groups = std::iter::once(aw.lo).chain(0..aw.lo).chain(aw.hi..ow_n);
                            for ow in groups {
                                for (d, &sp) in divs.iter_mut().zip(spans) {
                                    *d = divisor(reduce, [sd, sp, aw.spans[ow]]);
                                }
                                let cols = if ow == aw.lo {
                                    aw.lo..aw.hi
                                } else {
                                    ow..ow + 1
                                };
                                let divs = &divs[..spans.len()];
                                ring.h_fold_edges(mode, (spans, top), cols, c, divs, out);
                            }
                        }
                    }
                    r += group.len();
                    continue;
                }
            }
            let out = &mut y[r * row_len..(r + 1) * row_len];
            if ring.fill(
                mode,
                xs,
                n,
                [h_in, w_in],
                c,
                aw,
                sh.first..sh.first + sh.count,
            ) {
                // a NaN in the window's rows: the exact rule, window by window
                pixels::<L>(g, axes, reduce, 0, xs, [sd, sh], 0..ow_n, &mut offs, out);
            } else {
                match reduce {
                    Reduce::Max => ring.h_fold(mode, sh, 0..ow_n, c, None, out),
                    Reduce::Sum(_) => {
                        // one divisor for the interior columns, each border column its own
                        let div = |ow: usize| Some(divisor(reduce, [sd, sh, aw.spans[ow]]));
                        ring.h_fold(mode, sh, aw.lo..aw.hi, c, div(aw.lo), out);
                        for ow in (0..aw.lo).chain(aw.hi..ow_n) {
                            ring.h_fold(mode, sh, ow..ow + 1, c, div(ow), out);
                        }
                    }
                }
            }
            r += 1;
            continue;
        }
        let out = &mut y[r * row_len..(r + 1) * row_len];
        pixel_row::<L>(
            g,
            axes,
            reduce,
            xs,
            [sd, sh],
            &mut row_state,
            &mut offs,
            out,
        );
        r += 1;
    }
}

/// One output row (`out`), every pixel folded from its taps, by the plain max where the input
/// rows it reads hold neither NaN nor ±inf (checked here the first time a row is read; `state`
/// remembers each row of the sample `xs`), else by the exact rule; sums divided.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pixel_row<L: Zmm>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    xs: &[L::E],
    [sd, sh]: [Span; 2],
    state: &mut [u8],
    offs: &mut [usize; MAX_PIXEL_TAPS],
    out: &mut [MaybeUninit<L::E>],
) {
    let h_in = g.in3[1];
    let rows_read = (0..sd.count).flat_map(|a| {
        (0..sh.count).map(move |b| (sd.first + a * sd.step) * h_in + sh.first + b * sh.step)
    });
    let in_row = g.in3[2] * g.channels;
    let mode = row_mode::<L>(reduce, state, in_row, xs, rows_read);
    pixels::<L>(g, axes, reduce, mode, xs, [sd, sh], 0..g.out3[2], offs, out);
}

/// The divisor of a window with these spans (1 for max; adaptive problems, which have no
/// single divisor, do not take this path).
fn divisor<E: FastFloat>(reduce: Reduce, spans: [Span; 3]) -> E {
    match reduce {
        Reduce::Sum(d) => E::from_i64(window_divisor(d, spans).unwrap_or(1)),
        Reduce::Max => E::from_i64(1),
    }
}

/// The fold mode that is right whatever the values: the exact max rule, or the sum.
fn exact_mode(reduce: Reduce) -> u8 {
    match reduce {
        Reduce::Sum(_) => 2,
        Reduce::Max => 0,
    }
}

/// The fold mode for output rows reading input rows `rows` (of `in_row` values each) of
/// sample `xs`: 2 = sum, 1 = plain max, 0 = max by the exact rule (a NaN or an infinity is
/// there). `state` remembers each input row's check.
#[inline(always)]
fn row_mode<L: Zmm>(
    reduce: Reduce,
    state: &mut [u8],
    in_row: usize,
    xs: &[L::E],
    rows: impl Iterator<Item = usize>,
) -> u8 {
    match reduce {
        Reduce::Sum(_) => 2,
        Reduce::Max => {
            let mut special = false;
            for row in rows {
                if state[row] == UNCHECKED {
                    let values = &xs[row * in_row..(row + 1) * in_row];
                    // SAFETY: `applies` checked AVX-512F or AVX2 (f32 only), whichever is
                    // called.
                    let hit = unsafe {
                        match cast::<L::E, f32>(values) {
                            Some(v) if !super::isa::has_avx512() => {
                                super::avx2::any_nan_or_inf_avx2(v)
                            }
                            _ => super::x86::any_nan_or_inf_avx512::<L>(values),
                        }
                    };
                    state[row] = if hit { SPECIAL } else { FINITE };
                }
                special |= state[row] == SPECIAL;
            }
            u8::from(!special)
        }
    }
}

/// Whether output rows `oh` and `oh + 1` of a [`stride_one_3x3`] problem make a pair for
/// `x86::cl_rows2_k3`, and which: both windows of 3 input rows (`ROWS_ALL`), or the first
/// cut to its last 2 by the top padding (`ROWS_NO_TOP`), or the second cut to its first 2
/// by the bottom padding (`ROWS_NO_BOTTOM`). Other rows go to the per-pixel path. Measured
/// on inception_max_s1 nhwc (`PROBE_NHWC=1 PROBE_N=8 plane_probe 192 28 28 3 1 1`, builds
/// alternating, the fastest runs, µs), before and after the top and bottom rows joined the
/// pairs (the border columns' plain max above included): 1 thread 275–287 → 251–277, 2
/// threads 186–217 → 158–176; the average 175–204 → 140–172 at 2 threads.
fn row_pair_edge(ah: &AxisPlan, oh: usize) -> Option<u8> {
    use super::x86::{ROWS_ALL, ROWS_NO_BOTTOM, ROWS_NO_TOP};
    let (a, b) = (ah.spans[oh], ah.spans[oh + 1]);
    let whole = |o: usize| o >= ah.lo && o < ah.hi;
    if whole(oh) && whole(oh + 1) {
        Some(ROWS_ALL)
    } else if whole(oh + 1) && a.count == 2 && a.first == b.first {
        Some(ROWS_NO_TOP)
    } else if whole(oh) && b.count == 2 && b.first == a.first + 1 {
        Some(ROWS_NO_BOTTOM)
    } else {
        None
    }
}

/// Whether the problem is a 2-D 3×3 window at stride 1 without dilation, whose interior
/// output rows are done two at a time by `x86::cl_rows2_k3`.
fn stride_one_3x3(g: &Geom, axes: &[AxisPlan; 3]) -> bool {
    let [_, ah, aw] = axes;
    let plain3 = |a: &AxisPlan| a.k == 3 && a.s == 1 && a.d == 1 && a.lo < a.hi;
    let flat = g.in3[0] == 1 && g.out3[0] == 1;
    flat && plain3(ah) && plain3(aw)
}

/// Whether the problem is a 2-D 2×2 window at stride 2 without dilation, whose interior
/// output rows are done by `x86::cl_row_k2s2`.
fn two_by_two(g: &Geom, axes: &[AxisPlan; 3]) -> bool {
    let [_, ah, aw] = axes;
    let plain2 = |a: &AxisPlan| a.k == 2 && a.s == 2 && a.d == 1 && a.lo < a.hi;
    g.in3[0] == 1 && g.out3[0] == 1 && plain2(ah) && plain2(aw)
}

/// Output pixels `cols` of one output row (`out`: the whole row) folded from their taps.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pixels<L: Zmm>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    mode: u8,
    xs: &[L::E],
    [sd, sh]: [Span; 2],
    cols: impl Iterator<Item = usize>,
    offs: &mut [usize; MAX_PIXEL_TAPS],
    out: &mut [MaybeUninit<L::E>],
) {
    let [_, h_in, w_in] = g.in3;
    let c = g.channels;
    for ow in cols {
        let sw = axes[2].spans[ow];
        let mut t = 0;
        for a in 0..sd.count {
            for b in 0..sh.count {
                let base = ((sd.first + a * sd.step) * h_in + sh.first + b * sh.step) * w_in;
                for e in 0..sw.count {
                    offs[t] = base + sw.first + e * sw.step;
                    t += 1;
                }
            }
        }
        let div = divisor::<L::E>(reduce, [sd, sh, sw]);
        let out = &mut out[ow * c..(ow + 1) * c];
        let offs = &offs[..t];
        // SAFETY: `applies` checked AVX-512F, or AVX2 (f32 only, and that 8 divides c);
        // every tap is an in-bounds pixel of the sample (spans are clipped to the input), so
        // off * c + c <= sample length.
        unsafe {
            if super::isa::has_avx512() {
                use super::x86::cl_pixel;
                match mode {
                    0 => cl_pixel::<L, 0>(xs, offs, c, div, out),
                    1 => cl_pixel::<L, 1>(xs, offs, c, div, out),
                    _ => cl_pixel::<L, 2>(xs, offs, c, div, out),
                }
            } else {
                use super::avx2::cl_pixel;
                let (Some(xs), Some(out)) =
                    (cast::<L::E, f32>(xs), cast_mut::<_, MaybeUninit<f32>>(out))
                else {
                    unreachable!("without AVX-512 this path takes f32 only")
                };
                let div = div.to_f64() as f32;
                match mode {
                    0 => cl_pixel::<0>(xs, offs, c, div, out),
                    1 => cl_pixel::<1>(xs, offs, c, div, out),
                    _ => cl_pixel::<2>(xs, offs, c, div, out),
                }
            }
        }
    }
}

/// The border pixels of one output row (`out`: the whole row): the columns outside the
/// interior `lo..hi` that the row kernels store.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn border_pixels<L: Zmm>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    mode: u8,
    xs: &[L::E],
    spans: [Span; 2],
    offs: &mut [usize; MAX_PIXEL_TAPS],
    out: &mut [MaybeUninit<L::E>],
) {
    let aw = &axes[2];
    let border = (0..aw.lo).chain(aw.hi..g.out3[2]);
    pixels::<L>(g, axes, reduce, mode, xs, spans, border, offs, out);
}

/// `x86::cl_rows2_k3` in vectors of `L` with AVX-512, else (f32 only) its AVX2 version.
///
/// # Safety
/// As the kernel's; the level is one [`applies`] checked.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn rows2_k3<L: Zmm, const MODE: u8, const EDGE: u8>(
    xs: &[L::E],
    rows: [usize; 4],
    c: usize,
    col0: usize,
    cols: usize,
    divs: [L::E; 2],
    o0: &mut [MaybeUninit<L::E>],
    o1: &mut [MaybeUninit<L::E>],
) -> bool {
    if super::isa::has_avx512() {
        // SAFETY: the caller's.
        return unsafe {
            super::x86::cl_rows2_k3::<L, MODE, EDGE>(xs, rows, c, col0, cols, divs, o0, o1)
        };
    }
    let (Some(xs), Some(o0), Some(o1)) = (
        cast::<L::E, f32>(xs),
        cast_mut::<_, MaybeUninit<f32>>(o0),
        cast_mut::<_, MaybeUninit<f32>>(o1),
    ) else {
        unreachable!("without AVX-512 this path takes f32 only")
    };
    let divs = divs.map(|d| d.to_f64() as f32);
    // SAFETY: the caller's (AVX2 the level).
    unsafe { super::avx2::cl_rows2_k3::<MODE, EDGE>(xs, rows, c, col0, cols, divs, o0, o1) }
}

/// `x86::cl_row_k3s2` in vectors of `L` with AVX-512, else (f32 only) its AVX2 version.
///
/// # Safety
/// As the kernel's; the level is one [`applies`] checked.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn row_k3s2<L: Zmm, const MODE: u8, const R: usize, const PRE: bool, const POST: bool>(
    xs: &[L::E],
    rows: [usize; R],
    c: usize,
    col0: usize,
    cols: usize,
    div: L::E,
    (ready, around, prefetch): (bool, [&[L::E]; 2], bool),
    top: &mut [L::E],
    out: &mut [MaybeUninit<L::E>],
) -> bool {
    if super::isa::has_avx512() {
        let with = (ready, around, prefetch);
        // SAFETY: the caller's.
        return unsafe {
            super::x86::cl_row_k3s2::<L, MODE, R, PRE, POST>(
                xs, rows, c, col0, cols, div, with, top, out,
            )
        };
    }
    let (Some(xs), Some(pre), Some(post), Some(top), Some(out)) = (
        cast::<L::E, f32>(xs),
        cast::<L::E, f32>(around[0]),
        cast::<L::E, f32>(around[1]),
        cast_mut::<L::E, f32>(top),
        cast_mut::<_, MaybeUninit<f32>>(out),
    ) else {
        unreachable!("without AVX-512 this path takes f32 only")
    };
    let with = (ready, [pre, post], prefetch);
    let div = div.to_f64() as f32;
    // SAFETY: the caller's (AVX2 the level).
    unsafe {
        super::avx2::cl_row_k3s2::<MODE, R, PRE, POST>(xs, rows, c, col0, cols, div, with, top, out)
    }
}

/// `srcs` as pointers to f32, for the AVX2 kernels (f32 only).
fn f32_pointers<E: 'static>(srcs: &[*const E]) -> &[*const f32] {
    cast(srcs).expect("without AVX-512 this path takes f32 only")
}

/// `dsts` as pointers to f32, for the AVX2 kernels (f32 only).
fn f32_pointers_mut<E: 'static>(dsts: &[*mut E]) -> &[*mut f32] {
    cast(dsts).expect("without AVX-512 this path takes f32 only")
}

/// `x86::fold_rows` in vectors of `L` with AVX-512, else (f32 only) its AVX2 version.
///
/// # Safety
/// As the kernel's; the level is one [`applies`] checked.
#[inline(always)]
unsafe fn fold_rows_at<L: Zmm, const MODE: u8>(
    srcs: &[*const L::E],
    n: usize,
    div: Option<L::E>,
    dst: *mut L::E,
) {
    if super::isa::has_avx512() {
        // SAFETY: the caller's.
        return unsafe { super::x86::fold_rows::<L, MODE>(srcs, n, div, dst) };
    }
    let (srcs, div) = (f32_pointers(srcs), div.map(|d| d.to_f64() as f32));
    // SAFETY: the caller's (AVX2 the level); `srcs` are f32 (checked), so `dst` is too.
    unsafe { super::avx2::fold_rows::<MODE>(srcs, n, div, dst.cast()) }
}

/// `x86::fold_row_w` in vectors of `L` with AVX-512, else (f32 only) its AVX2 version.
///
/// # Safety
/// As the kernel's; the level is one [`applies`] checked.
#[inline(always)]
unsafe fn fold_row_w<L: Zmm, const MODE: u8, const K: usize>(
    src: *const L::E,
    (c, w): (usize, usize),
    inner: (usize, usize, usize),
    (left, right): (&[usize], &[usize]),
    dst: *mut L::E,
) -> bool {
    if super::isa::has_avx512() {
        // SAFETY: the caller's.
        return unsafe { super::x86::fold_row_w::<L, MODE, K>(src, c, w, inner, left, right, dst) };
    }
    assert!(
        super::same_type::<L::E, f32>(),
        "without AVX-512 this path takes f32 only"
    );
    // SAFETY: the caller's (AVX2 the level); the values are f32 (asserted).
    unsafe { super::avx2::fold_row_w::<MODE, K>(src.cast(), c, w, inner, left, right, dst.cast()) }
}

/// `x86::fold_rows_edges` in vectors of `L` with AVX-512, else (f32 only) its AVX2 version.
///
/// # Safety
/// As the kernel's; the level is one [`applies`] checked.
#[inline(always)]
unsafe fn fold_rows_edges<L: Zmm, const MODE: u8>(
    srcs: &[*const L::E],
    n: usize,
    bounds: Result<&[usize], &[usize]>,
    divs: &[L::E],
    dsts: &[*mut L::E],
) {
    if super::isa::has_avx512() {
        // SAFETY: the caller's.
        return unsafe { super::x86::fold_rows_edges::<L, MODE>(srcs, n, bounds, divs, dsts) };
    }
    let divs = cast::<L::E, f32>(divs).expect("without AVX-512 this path takes f32 only");
    let (srcs, dsts) = (f32_pointers(srcs), f32_pointers_mut(dsts));
    // SAFETY: the caller's (AVX2 the level).
    unsafe { super::avx2::fold_rows_edges::<MODE>(srcs, n, bounds, divs, dsts) }
}

/// `x86::fold_rows_blocked` in vectors of `L` with AVX-512, else (f32 only) its AVX2 version.
///
/// # Safety
/// As the kernel's; the level is one [`applies`] checked.
#[inline(always)]
unsafe fn fold_rows_blocked<L: Zmm, const MODE: u8, const K: usize>(
    srcs: &[*const L::E],
    n: usize,
    div: Option<L::E>,
    dsts: &[*mut L::E],
) {
    if super::isa::has_avx512() {
        // SAFETY: the caller's.
        return unsafe { super::x86::fold_rows_blocked::<L, MODE, K>(srcs, n, div, dsts) };
    }
    let (srcs, dsts) = (f32_pointers(srcs), f32_pointers_mut(dsts));
    let div = div.map(|d| d.to_f64() as f32);
    // SAFETY: the caller's (AVX2 the level).
    unsafe { super::avx2::fold_rows_blocked::<MODE, K>(srcs, n, div, dsts) }
}

/// `x86::cl_row_k2s2` in vectors of `L` with AVX-512, else (f32 only) its AVX2 version;
/// `flags`: the kernels' `(check, prefetch)`.
///
/// # Safety
/// As the kernel's; the level is one [`applies`] checked.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn row_k2s2<L: Zmm, const MODE: u8>(
    xs: &[L::E],
    rows: [usize; 2],
    c: usize,
    col0: usize,
    cols: usize,
    div: L::E,
    flags: (bool, bool),
    out: &mut [MaybeUninit<L::E>],
) -> bool {
    if super::isa::has_avx512() {
        // SAFETY: the caller's.
        return unsafe {
            super::x86::cl_row_k2s2::<L, MODE>(xs, rows, c, col0, cols, div, flags, out)
        };
    }
    let (Some(xs), Some(out)) = (cast::<L::E, f32>(xs), cast_mut::<_, MaybeUninit<f32>>(out))
    else {
        unreachable!("without AVX-512 this path takes f32 only")
    };
    let div = div.to_f64() as f32;
    // SAFETY: the caller's (AVX2 the level).
    unsafe { super::avx2::cl_row_k2s2::<MODE>(xs, rows, c, col0, cols, div, flags, out) }
}

/// Channels-last max with indices, f32 or f64 with AVX-512 and 16 channels or more (f32 with
/// AVX2 the level: channel counts that are multiples of 8, `avx2::cl_pixel_indices`): every output
/// pixel folded from its in-bounds taps in the reference's order (`x86::cl_pixel_indices`),
/// values and indices at once, output rows split over threads. Returns `false` (nothing
/// written) for problems it does not take. Before it, these problems took the generic
/// window code, whose compare-and-select on index arrays ran one lane at a time.
pub(crate) fn forward_with_indices<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    x: &[F],
    y: &mut Out<F>,
    idx: &mut [i64],
) -> bool {
    if let (Some(x), Some(mut y)) = (cast::<F, f32>(x), y.cast::<f32>()) {
        return with_indices::<F32x16>(g, axes, x, &mut y, idx);
    }
    if let (Some(x), Some(mut y)) = (cast::<F, f64>(x), y.cast::<f64>()) {
        return with_indices::<F64x8>(g, axes, x, &mut y, idx);
    }
    false
}

/// Whether every window has an in-bounds tap, as the pixel kernels of the max with indices
/// need (a dilated window may have none).
fn every_window_has_a_tap(axes: &[AxisPlan; 3]) -> bool {
    axes.iter().all(|a| a.spans.iter().all(|s| s.count > 0))
}

/// Most planes per block of [`channels_first_with_indices_avx2`]: the pixel kernel's
/// per-pixel work is paid once for this many channels (four AVX2 vectors).
const BLOCK_PLANES: usize = 32;

/// The most input values of a block of [`channels_first_with_indices_avx2`] (8 MiB of f32):
/// large planes go in fewer planes a block, and planes too large for 8 of them keep the
/// generic code.
const MAX_BLOCK_VALUES: usize = 1 << 21;

/// Channels-first max with indices, f32 at the AVX2 level, through channels-last blocks:
/// each group of up to [`BLOCK_PLANES`] planes (a multiple of 8, fewer for planes of more
/// than 65 536 values, the last group padded with zero planes) is interleaved into one channels-last sample, pooled by the AVX2 pixel
/// kernel (`avx2::cl_pixel_indices`, through [`rows_with_indices`]), and its outputs and
/// indices taken apart into their planes again. A pixel's index is its position in the plane
/// in both layouts, so the results are the channels-last kernel's: the reference's bits.
/// (The AVX-512 level has strip kernels of its own, `padded::forward_with_indices`.)
///
/// AVX2 ran the generic window code before, 6–15× slower than its channels-last kernel.
/// Measured (`NNPOOL_KERNEL=avx2 PROBE_IDX=1 RAYON_NUM_THREADS=1 PROBE_N=8 plane_probe`, ms
/// per call, alternating with the build before): resnet_stem_max 9.9–10.4 → 4.0–4.1 (2
/// threads 4.9 → 2.2–2.3), vgg_max_224 28.7–30.5 → 15.0–15.7 (2 threads 14.3 → 9.4–9.5),
/// alexnet_max 5.1–5.3 → 1.4, inception_max_s1 4.3–4.5 → 1.9, sppf_max5 5.2 → 2.1–2.2,
/// vgg_max_14 1.3 → 0.44, max3d (`PROBE_D=16 PROBE_N=2`) 11.3 → 4.2–4.4, 512×512 planes
/// (`PROBE_N=1 plane_probe 16 512 512 3 2 1`, blocks of 8) 6.5 → 4.0 (2 threads 7.5–7.8 →
/// 2.1–2.3). Blocks of 8 planes
/// (one vector a pixel) gained half as much: the per-pixel work of the pixel kernel weighed.
///
/// Returns `false` (nothing written) for problems it does not take.
pub(crate) fn channels_first_with_indices_avx2<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    x: &[F],
    y: &mut Out<F>,
    idx: &mut [i64],
) -> bool {
    let (Some(x), Some(mut y)) = (cast::<F, f32>(x), y.cast::<f32>()) else {
        return false;
    };
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    if !super::isa::avx2_level()
        || g.layout != Layout::ChannelsFirst
        || !every_window_has_a_tap(axes)
        || in_plane == 0
        || out_plane == 0
        || g.planes() == 0
        || in_plane > MAX_BLOCK_VALUES / 8
        || idx.len() != y.len()
    {
        return false;
    }
    let cb = (MAX_BLOCK_VALUES / in_plane / 8 * 8)
        .min(BLOCK_PLANES)
        .min(g.planes().next_multiple_of(8));
    let block = Geom {
        batch: 1,
        channels: cb,
        layout: Layout::ChannelsLast,
        ..*g
    };
    // SAFETY: every plane's outputs and indices are stored below (each group's planes, every
    // output of each), with computed values only.
    let y = unsafe { y.uninit() };
    let scratch = || {
        (
            vec![0f32; in_plane * cb],
            vec![MaybeUninit::new(0f32); out_plane * cb],
            vec![0i64; out_plane * cb],
        )
    };
    type Group<'a> = ((&'a [f32], &'a mut [MaybeUninit<f32>]), &'a mut [i64]);
    let group = |(xb, yb, ib): &mut (Vec<f32>, Vec<MaybeUninit<f32>>, Vec<i64>),
                 ((xs, ys), is): Group| {
        if xs.len() < in_plane * cb {
            xb.fill(0.0);
        }
        // SAFETY (all three): AVX2 is the level (checked above); the pooled block holds
        // computed values only (the pixel kernel stores all of it), and the indices are
        // written initialised.
        unsafe { interleave(xs, in_plane, cb, xb) };
        rows_with_indices::<F32x16>(&block, axes, xb, 0, yb, ib);
        unsafe {
            let yb = std::slice::from_raw_parts(yb.as_ptr().cast::<f32>(), yb.len());
            deinterleave(yb, out_plane, cb, ys);
            deinterleave(ib, out_plane, cb, as_uninit_mut(is));
        }
    };
    let (in_group, out_group) = (in_plane * cb, out_plane * cb);
    if super::split_over_threads(x.len(), 1 << 16) {
        x.par_chunks(in_group)
            .zip(y.par_chunks_mut(out_group))
            .zip(idx.par_chunks_mut(out_group))
            .for_each_init(scratch, group);
    } else {
        let mut s = scratch();
        x.chunks(in_group)
            .zip(y.chunks_mut(out_group))
            .zip(idx.chunks_mut(out_group))
            .for_each(|u| group(&mut s, u));
    }
    true
}

/// `xb[p · cb + q] = xs[q · plane + p]` for the planes `q` of `xs` (at most `cb`): tiles of
/// 8 pixels of 8 planes, which the compiler turns into AVX2 shuffles.
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
unsafe fn interleave(xs: &[f32], plane: usize, cb: usize, xb: &mut [f32]) {
    let planes = xs.len() / plane;
    assert!(planes <= cb && xb.len() >= plane * cb);
    let (whole, full) = (planes / 8 * 8, plane / 8 * 8);
    for q0 in (0..whole).step_by(8) {
        for p0 in (0..full).step_by(8) {
            let mut tile = [[0f32; 8]; 8];
            for (q, row) in tile.iter_mut().enumerate() {
                let at = (q0 + q) * plane + p0;
                row.copy_from_slice(&xs[at..at + 8]);
            }
            for p in 0..8 {
                let out = &mut xb[(p0 + p) * cb + q0..(p0 + p) * cb + q0 + 8];
                for (q, o) in out.iter_mut().enumerate() {
                    *o = tile[q][p];
                }
            }
        }
    }
    for q in 0..planes {
        let from = if q < whole { full } else { 0 };
        for p in from..plane {
            xb[p * cb + q] = xs[q * plane + p];
        }
    }
}

/// `ys[q · plane + p] = yb[p · cb + q]` for the planes `q` of `ys` (the inverse of
/// [`interleave`]).
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
unsafe fn deinterleave<T: Copy + Default>(
    yb: &[T],
    plane: usize,
    cb: usize,
    ys: &mut [MaybeUninit<T>],
) {
    let planes = ys.len() / plane;
    assert!(planes <= cb && yb.len() >= plane * cb);
    let (whole, full) = (planes / 8 * 8, plane / 8 * 8);
    for q0 in (0..whole).step_by(8) {
        for p0 in (0..full).step_by(8) {
            let mut tile = [[T::default(); 8]; 8];
            for p in 0..8 {
                let src = &yb[(p0 + p) * cb + q0..(p0 + p) * cb + q0 + 8];
                for (q, &v) in src.iter().enumerate() {
                    tile[q][p] = v;
                }
            }
            for (q, row) in tile.iter().enumerate() {
                let at = (q0 + q) * plane + p0;
                for (d, &v) in ys[at..at + 8].iter_mut().zip(row) {
                    d.write(v);
                }
            }
        }
    }
    for q in 0..planes {
        let from = if q < whole { full } else { 0 };
        for p in from..plane {
            ys[q * plane + p].write(yb[p * cb + q]);
        }
    }
}

/// [`forward_with_indices`] in vectors of `L`.
fn with_indices<L: Zmm>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    x: &[L::E],
    y: &mut Out<L::E>,
    idx: &mut [i64],
) -> bool {
    let level = wide(g) || super::same_type::<L::E, f32>() && narrow(g);
    if g.layout != Layout::ChannelsLast
        || !level
        || !every_window_has_a_tap(axes)
        || idx.len() != y.len()
        || g.in_plane() > i32::MAX as usize
    {
        return false;
    }
    // SAFETY: every output element is stored below (each row's pixels, all channels), with
    // computed values only.
    let y = unsafe { y.uninit() };
    let row_len = g.out3[2] * g.channels;
    if row_len == 0 {
        return true;
    }
    let total_rows = y.len() / row_len;
    let per_task = ((1 << 14) / row_len).clamp(1, total_rows.max(1));
    let chunk = per_task * row_len;
    if super::split_over_threads(y.len(), 1 << 15) {
        y.par_chunks_mut(chunk)
            .zip(idx.par_chunks_mut(chunk))
            .enumerate()
            .for_each(|(i, (ys, is))| rows_with_indices::<L>(g, axes, x, i * per_task, ys, is));
    } else {
        rows_with_indices::<L>(g, axes, x, 0, y, idx);
    }
    true
}

/// How many output rows ahead [`rows_with_indices`] prefetches (into L2) the input pixels
/// that row reads first, column by column with the row it is at, on inputs larger than
/// [`super::prefetch_from_bytes`]: the loads of the taps were most of the time. Measured
/// (`PROBE_NHWC=1 PROBE_IDX=1 PROBE_N=8 plane_probe`, 2 rounds alternating with the build
/// before, ms per call): resnet_stem_max (`64 112 112 3 2 1`) 2.00–2.08 → 1.40–1.41 at 1
/// thread, 0.68–0.76 → 0.61–0.62 at 2; vgg_max_224 (`64 224 224 2 2 0`) 7.6–8.5 → 5.5–6.5.
/// One row ahead was within the noise of two (resnet_stem_max 1.47–1.65 against 1.45–1.53).
const INDEX_ROWS_AHEAD: usize = 2;

/// Output rows from `row0` on (`(n, od, oh)` flattened) into `y` and `idx` (whole rows), for
/// [`forward_with_indices`].
fn rows_with_indices<L: Zmm>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    x: &[L::E],
    row0: usize,
    y: &mut [MaybeUninit<L::E>],
    idx: &mut [i64],
) {
    let [_, h_in, w_in] = g.in3;
    let [od_n, oh_n, _] = g.out3;
    let [ad, ah, aw] = axes;
    let c = g.channels;
    let sample = g.in_plane() * c;
    let row_len = g.out3[2] * c;
    let prefetch = size_of_val(x) >= super::prefetch_from_bytes();
    let mut offs = Vec::new();
    for (r, (ys, is)) in y
        .chunks_exact_mut(row_len)
        .zip(idx.chunks_exact_mut(row_len))
        .enumerate()
    {
        let flat = row0 + r;
        let (n, od, oh) = (flat / (od_n * oh_n), flat / oh_n % od_n, flat % oh_n);
        let xs = &x[n * sample..(n + 1) * sample];
        let (sd, sh) = (ad.spans[od], ah.spans[oh]);
        // the input rows output row `oh + AHEAD` reads first (past those of the row before)
        let ahead = (oh + INDEX_ROWS_AHEAD < oh_n).then(|| {
            let last = |s: Span| s.first + s.step * (s.count.max(1) - 1);
            let (from, to) = (
                ah.spans[oh + INDEX_ROWS_AHEAD - 1],
                ah.spans[oh + INDEX_ROWS_AHEAD],
            );
            (last(from) + 1).max(to.first)..last(to) + 1
        });
        let mut col_from = 0usize;
        for (ow, sw) in aw.spans.iter().enumerate() {
            if let Some(rows) = ahead.clone().filter(|_| prefetch && sw.count > 0) {
                let col_to = sw.first + sw.step * (sw.count - 1) + 1;
                let cols = col_from.max(sw.first)..col_to;
                prefetch_pixels(xs, [h_in, w_in, c], sd, rows, cols);
                col_from = col_to;
            }
            offs.clear();
            for d in sd.taps() {
                for h in sh.taps() {
                    offs.extend(sw.taps().map(|w| (d * h_in + h) * w_in + w));
                }
            }
            let at = ow * c..(ow + 1) * c;
            let (out, out_i) = (&mut ys[at.clone()], &mut is[at]);
            // SAFETY: `with_indices` checked the level: AVX-512F, or AVX2 for f32 with a
            // multiple of 8 channels; the taps are in-bounds pixels of the sample (spans are
            // clipped to the input), at least one per window.
            unsafe {
                if super::isa::has_avx512() {
                    super::x86::cl_pixel_indices::<L>(xs, &offs, c, out, out_i);
                } else {
                    let (Some(xs), Some(out)) =
                        (cast::<L::E, f32>(xs), cast_mut::<_, MaybeUninit<f32>>(out))
                    else {
                        unreachable!("without AVX-512 this path takes f32 only")
                    };
                    super::avx2::cl_pixel_indices(xs, &offs, c, out, out_i);
                }
            }
        }
    }
}

/// Prefetches into L2 the pixels `rows × cols` (all `c` channels) of every depth tap of
/// `sd`, in a channels-last sample `xs` of `h_in × w_in` pixels.
fn prefetch_pixels<E>(
    xs: &[E],
    [h_in, w_in, c]: [usize; 3],
    sd: Span,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) {
    if cols.is_empty() {
        return;
    }
    for d in sd.taps() {
        for h in rows.clone() {
            let at = ((d * h_in + h) * w_in + cols.start) * c;
            super::x86::prefetch_lines_l2(
                xs.as_ptr().wrapping_add(at).cast(),
                cols.len() * c * size_of::<E>(),
            );
        }
    }
}

multiversion!(fn run_rows<F: FastFloat>(g: &Geom, axes: &[AxisPlan; 3], reduce: Reduce, x: &[F], row0: usize, y: &mut [MaybeUninit<F>]) -> () = rows_body);

/// Runs the problem, storing every element of `y`; output rows are split over threads
/// (results do not depend on the split). Returns `false` (nothing written) unless `F` is f32
/// or f64.
pub(crate) fn forward<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    y: &mut Out<F>,
) -> bool {
    if cast::<F, f32>(x).is_none() && cast::<F, f64>(x).is_none() {
        return false;
    }
    // SAFETY: the kernels store only computed values, and every output element: each output
    // row is either a pair of 3×3 rows, a 3×3 stride-2 row, a 2×2 row, a separable row or a
    // row of pixels, each storing its
    // interior columns and then its border columns `0..lo` and `hi..ow_n`, all channels.
    let y = unsafe { y.uninit() };
    let row_len = g.out3[2] * g.channels;
    let total_rows = y.len() / row_len.max(1);
    // an even number of rows per task, so that the 3×3 kernel's row pairs do not straddle two
    // tasks (a row left alone takes the slower per-pixel path)
    // separable problems: enough rows that the ring's first rows (W-passed again by each
    // task) are few; 3×3 stride-2 rows: enough that the folds carried over (made again by
    // each task: an input row, 3-D the pooled slices) are few
    let least = if stride_two_3x3(g, axes, reduce) {
        match g.out3[0] {
            1 => 16,
            _ => 4 * g.out3[1],
        }
    } else {
        separable_s1(g, axes).map_or(1, |(kh, _)| 4 * kh)
    };
    let per_task = ((1 << 14) / row_len.max(1))
        .max(least)
        .clamp(1, total_rows.max(1));
    let volume = g.in3[0] > 1 || g.out3[0] > 1;
    let sample_rows = g.out3[1].max(1);
    let samples = total_rows / sample_rows;
    let per_task = if stride_two_3x3(g, axes, reduce) && volume {
        // 3-D: whole output slices ([`StrideTwoRows::slice`])
        per_task.next_multiple_of(sample_rows)
    } else if separable_s1(g, axes).is_some()
        && samples >= 2 * rayon::current_num_threads()
        && per_task < sample_rows
    {
        // whole samples, when there are enough for the threads: a task that starts or ends
        // inside a sample W-passes its first rows again and folds the rows short of a block
        // one by one. large_avg nhwc had 28-row tasks and ran slower at 2 threads than at 1;
        // with whole samples (`PROBE_NHWC=1 PROBE_N=8 plane_probe 64 56 56 7 1 3 avg`, 2
        // threads, builds alternating, the faster half of 12 runs) 300–327 → 263–289 µs
        sample_rows
    } else {
        per_task + per_task % 2
    };
    if super::split_over_threads(y.len(), 1 << 15) {
        y.par_chunks_mut(per_task * row_len)
            .enumerate()
            .for_each(|(i, ys)| run_rows::<F>(isa, g, axes, reduce, x, i * per_task, ys));
    } else {
        run_rows::<F>(isa, g, axes, reduce, x, 0, y);
    }
    true
}
