//! Wide stride-1 windows in channels-last layout (YOLO's SPP 9×9 and 13×13, large average
//! windows) by van Herk / Gil-Werman: a cost per output that does not grow with the window.
//!
//! Along one axis, the padded positions are cut into blocks of `k`. Within each block a prefix
//! fold `g` (from the block's start) and a suffix fold `h` (to the block's end) are formed;
//! a window starting at `o` is the block `h[o]` itself when `o` starts a block, else
//! `h[o] ∘ g[o + k − 1]`: the end of one block, then the start of the next. Three folds per
//! output and per axis, whatever `k`. The W pass runs along each input row (one position a
//! pixel, its channels the lanes), the H pass along the columns of the W results (one position
//! a row of them, every value of the row a lane), so every loop runs over contiguous lanes,
//! which the compiler vectorises.
//!
//! Max folds by the exact rule ([`take`]: the later value wins when greater or NaN), which
//! picks the last NaN of a sequence if it has one, else its first maximum; the rule is
//! associative, and both passes combine earlier positions with later ones in order, so values
//! equal the reference's bit for bit (±0 ties and NaN payloads included). Sums start from +0
//! in every block, are grouped by the blocks (within the averages' rounding tolerance: the
//! error of a sum of `k` terms, as the reference's own), end with `+ 0` (an all −0 window
//! gives +0, as the reference's sum from 0), and are divided as the reference divides
//! ([`divide_row`]).
//!
//! Before it these shapes took the generic window code, a fold per tap. `PROBE_NHWC=1
//! PROBE_N=8 RAYON_NUM_THREADS=T plane_probe C H W K 1 K/2 [avg]`, ms per call, two rounds
//! alternating with the build before, 1 thread / 2 threads:
//! - SPP's 9×9 max (`256 20 20 9 1 4`): 1.81–1.82 → 0.39 / 0.97 → 0.20;
//! - 13×13 max (`256 20 20 13 1 6`): 2.47–2.48 → 0.42 / 1.36–1.37 → 0.21–0.22;
//! - 9×9 average: 0.46 → 0.43–0.44 / 0.29 → 0.22;
//! - 15×15 max on 56×56 (`64 56 56 15 1 7`): 6.17–6.19 → 0.92–0.93 / 3.33 → 0.50–0.55;
//!   average 1.55–1.58 → 1.01–1.03 / 0.88–0.90 → 0.54–0.62;
//! - SPP's 9×9 max in f16 1.92 → 0.46, in f64 2.18 → 0.81 (1 thread).
//!
//! A sample is one task; its W pass keeps one input row's folds, its H pass runs [`H_LANES`]
//! lanes at a time, all in the core's cache. A single image splits its rows' W passes and its
//! lanes' H passes over the threads (each H task into a packed block, then gathered), the same
//! folds, so the same bits: `PROBE_N=1`, 2 threads, µs per call, SPP 13×13 max 45–48 → 33–34,
//! 9×9 average 48–50 → 32–33, `64 56 56 15 1 7 avg` 104–115 → 67–69. Channels-first planes
//! take `x86::wide_s1_strip` (the W pass here would run one lane a position).
//!
//! The max folds by the plain max (one `vmax`) when the sample holds no NaN or infinity: SPP
//! 9×9 max 0.39 → 0.35 ms (`PROBE_N=8`, 1 thread), the suffix folds first and the prefix fold
//! then run forward, each output written as it completes (no prefix array) included. Doubling
//! runs in flat passes over whole rows (as the channels-first kernel does in registers) were
//! slower here: 0.35 → 0.57–0.64 ms, one pass over the row per level.

use super::isa::{multiversion, Isa};
use super::out::Out;
// how an axis folds: the exact max rule, the max of values without NaN (one `vmax`), a sum
use super::padded::{by_mode, EXACT_MAX, PLAIN_MAX, SUM};
use super::window::{divide_row, init, take, AxisPlan, FastFloat, Reduce};
use super::Scratch;
use crate::layout::Layout;
use crate::plan::Geom;
use rayon::prelude::*;

/// The narrowest window (taps along H or W) this path takes: narrower ones have their own
/// kernels, a fold per tap on registers (`direct.rs`, up to 7 taps a side).
const MIN_TAPS: usize = 8;

/// Whether an axis is a plain stride-1 sliding window: output `o` folds inputs `o − pad ..
/// o − pad + k`, clipped to the input (no dilation).
fn sliding_stride_1(a: &AxisPlan, n: usize) -> bool {
    a.s == 1 && super::padded::plain_sliding(a, n)
}

/// Whether this problem takes the running folds: channels-last, 2-D (or 1-D), stride 1
/// without dilation along H and W, a window of at least [`MIN_TAPS`] along one of them, no
/// indices asked for.
pub(crate) fn applies(g: &Geom, axes: &[AxisPlan; 3], with_indices: bool) -> bool {
    g.layout == Layout::ChannelsLast
        && !with_indices
        && g.channels > 0
        && g.batch > 0
        && g.in_plane() > 0
        && g.in3[0] == 1
        && g.out3[0] == 1
        && axes[0].k == 1
        && axes[1].k.max(axes[2].k) >= MIN_TAPS
        && sliding_stride_1(&axes[1], g.in3[1])
        && sliding_stride_1(&axes[2], g.in3[2])
}

/// Lanes the H pass folds at a time: its prefix and suffix folds (`oh + kh − 1` positions of
/// this many values each) then stay in the core's L2 cache.
const H_LANES: usize = 512;

/// The folds of one axis: `x` holds `n` positions, position `i` the `lanes` values from
/// `x[i * stride]`; output `o` (of `out`) folds padded positions `o .. o + k`, padded position
/// `p` being input `p − pad` (the identity outside the input), into `y[o * y_stride ..]
/// [..lanes]`, by `M` (`EXACT_MAX`, `PLAIN_MAX` or `SUM`). First the suffix folds `h`, from each
/// block's end back to its start; then the prefix fold runs forward through the positions
/// (`g`: `lanes` values, one position), and output `o` is written as soon as position `o + k
/// − 1` is folded in. `h` is scratch of at least `(out + k − 1) · lanes` values (measured
/// against the prefixes of every position in memory: see the module's documentation).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn running_axis<F: FastFloat, const M: u8>(
    x: &[F],
    (n, stride, lanes): (usize, usize, usize),
    (k, pad, out): (usize, usize, usize),
    y: &mut [F],
    y_stride: usize,
    g: &mut [F],
    h: &mut [F],
) {
    let fold = |earlier: F, later: F| -> F {
        match M {
            SUM => earlier + later,
            // one max instruction: the exact rule when no NaN is involved (equal values keep
            // the earlier one)
            PLAIN_MAX => {
                if later > earlier {
                    later
                } else {
                    earlier
                }
            }
            _ => {
                if take(earlier, later) {
                    later
                } else {
                    earlier
                }
            }
        }
    };
    let identity = if M == SUM {
        init::<F, true>()
    } else {
        init::<F, false>()
    };
    let positions = out + k - 1;
    let input = |p: usize| -> Option<&[F]> {
        let i = p.checked_sub(pad).filter(|&i| i < n)?;
        Some(&x[i * stride..i * stride + lanes])
    };
    // suffix folds, from each block's end back to its start
    for p in (0..positions).rev() {
        let (cur, after) = h.split_at_mut((p + 1) * lanes);
        let cur = &mut cur[p * lanes..];
        let block_end = p % k == k - 1 || p + 1 == positions;
        match (block_end, input(p)) {
            (true, Some(v)) => cur.copy_from_slice(v),
            (true, None) => cur.fill(identity),
            (false, Some(v)) => {
                for ((c, &a), &b) in cur.iter_mut().zip(v).zip(&after[..lanes]) {
                    *c = fold(a, b);
                }
            }
            (false, None) => cur.copy_from_slice(&after[..lanes]),
        }
    }
    // the prefix fold, block by block (a block's first position: the value itself), and the
    // outputs ending at each position
    let g = &mut g[..lanes];
    for p in 0..positions {
        match (p % k == 0, input(p)) {
            (true, Some(v)) => g.copy_from_slice(v),
            (true, None) => g.fill(identity),
            (false, Some(v)) => {
                for (c, &b) in g.iter_mut().zip(v) {
                    *c = fold(*c, b);
                }
            }
            (false, None) => {}
        }
        let Some(o) = (p + 1).checked_sub(k) else {
            continue;
        };
        let dst = &mut y[o * y_stride..o * y_stride + lanes];
        let end = &h[o * lanes..(o + 1) * lanes];
        if o % k == 0 {
            dst.copy_from_slice(end);
        } else {
            for ((d, &a), &b) in dst.iter_mut().zip(end).zip(&*g) {
                *d = fold(a, b);
            }
        }
    }
}

/// The combine of a sample: sums; max by the plain max when the sample holds no NaN (or
/// infinity: the check is `v − v`), else by the exact rule.
fn mode_of<F: FastFloat>(reduce: Reduce, x: &[F]) -> u8 {
    match reduce {
        Reduce::Sum(_) => SUM,
        Reduce::Max if super::padded::maybe_nan(x, super::isa::has_avx512()) => EXACT_MAX,
        Reduce::Max => PLAIN_MAX,
    }
}

/// The W pass of whole input rows `x` (`w` pixels of `c` channels each) into `rows` (`ow`
/// pixels each).
#[inline(always)]
fn w_pass<F: FastFloat, const M: u8>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    x: &[F],
    rows: &mut [F],
    (pre, suf): (&mut [F], &mut [F]),
) {
    let (c, w, ow, aw) = (g.channels, g.in3[2], g.out3[2], &axes[2]);
    for (xr, tr) in x.chunks_exact(w * c).zip(rows.chunks_exact_mut(ow * c)) {
        running_axis::<F, M>(xr, (w, c, c), (aw.k, aw.pad, ow), tr, c, pre, suf);
    }
}

/// The H pass of lanes `l0 .. l0 + lanes` of every W-pass row of a sample (`rows`): output
/// row `o` into `y[o * y_stride ..][..lanes]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn h_pass<F: FastFloat, const M: u8>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    rows: &[F],
    (l0, lanes): (usize, usize),
    y: &mut [F],
    y_stride: usize,
    (pre, suf): (&mut [F], &mut [F]),
) {
    let (h, oh, ah) = (g.in3[1], g.out3[1], &axes[1]);
    let row_len = g.out3[2] * g.channels;
    running_axis::<F, M>(
        &rows[l0..],
        (h, row_len, lanes),
        (ah.k, ah.pad, oh),
        y,
        y_stride,
        pre,
        suf,
    );
}

/// Run `j` (below `row_len.div_ceil(H_LANES)`) of the lanes the H pass takes at a time in
/// W-pass rows of `row_len` values: `(first lane, lanes)`, [`H_LANES`] each, the last run
/// shorter. The H pass on one thread and the one split over threads cut the rows alike, so
/// their folds, and bits, are the same.
fn lane_run(row_len: usize, j: usize) -> (usize, usize) {
    let l0 = j * H_LANES;
    (l0, H_LANES.min(row_len - l0))
}

/// Output row `o` of a sum: `+ 0` (an all −0 window gives +0, as the reference's sum from 0),
/// then divided as the reference divides.
#[inline(always)]
fn finish_sum_row<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    o: usize,
    row: &mut [F],
) {
    if let Reduce::Sum(div) = reduce {
        row.iter_mut().for_each(|v| *v += F::zero());
        divide_row(
            row,
            g.channels,
            div,
            axes[0].spans[0],
            axes[1].spans[o],
            &axes[2],
        );
    }
}

/// Scratch for the folds of [`running_axis`] on this problem's axes: the prefix (one
/// position) and the suffixes (every position).
fn fold_scratch<F: FastFloat>(g: &Geom, axes: &[AxisPlan; 3]) -> (Scratch<F>, Scratch<F>) {
    let (c, oh, ow) = (g.channels, g.out3[1], g.out3[2]);
    let fold_len = ((ow + axes[2].k - 1) * c).max((oh + axes[1].k - 1) * H_LANES.min(ow * c));
    (Scratch::new(c.max(H_LANES)), Scratch::new(fold_len))
}

/// One sample (`h × w` pixels of `c` channels) into `y` (`oh × ow` pixels) by the combine
/// `M`: the W pass into `rows`, then the H pass in runs of [`H_LANES`] lanes; sums then
/// divided.
#[inline(always)]
fn sample_by<F: FastFloat, const M: u8>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    y: &mut [F],
    (rows, pre, suf): (&mut [F], &mut [F], &mut [F]),
) {
    let row_len = g.out3[2] * g.channels;
    w_pass::<F, M>(g, axes, x, rows, (&mut *pre, &mut *suf));
    for j in 0..row_len.div_ceil(H_LANES) {
        let (l0, lanes) = lane_run(row_len, j);
        let scratch = (&mut *pre, &mut *suf);
        h_pass::<F, M>(g, axes, rows, (l0, lanes), &mut y[l0..], row_len, scratch);
    }
    for (o, row) in y.chunks_exact_mut(row_len).enumerate() {
        finish_sum_row(g, axes, reduce, o, row);
    }
}

#[inline(always)]
fn samples<F: FastFloat>(g: &Geom, axes: &[AxisPlan; 3], reduce: Reduce, x: &[F], y: &mut [F]) {
    let (in_unit, out_unit) = (g.in_plane() * g.channels, g.out_plane() * g.channels);
    let mut rows = Scratch::<F>::new(g.in3[1] * g.out3[2] * g.channels);
    let (mut pre, mut suf) = fold_scratch::<F>(g, axes);
    for (xs, ys) in x.chunks_exact(in_unit).zip(y.chunks_exact_mut(out_unit)) {
        let scratch = (&mut rows[..], &mut pre[..], &mut suf[..]);
        by_mode!(
            mode_of(reduce, xs),
            sample_by::<F>(g, axes, reduce, xs, ys, scratch)
        );
    }
}

multiversion!(fn run_samples<F: FastFloat>(g: &Geom, axes: &[AxisPlan; 3], reduce: Reduce, x: &[F], y: &mut [F]) -> () = samples);

/// The W pass of whole input rows by a combine known at run time (a task of
/// [`sample_over_threads`]).
#[inline(always)]
fn w_rows<F: FastFloat>(g: &Geom, axes: &[AxisPlan; 3], mode: u8, x: &[F], rows: &mut [F]) {
    let (mut pre, mut suf) = fold_scratch::<F>(g, axes);
    let scratch = (&mut pre[..], &mut suf[..]);
    by_mode!(mode, w_pass::<F>(g, axes, x, rows, scratch));
}

multiversion!(fn run_w_rows<F: FastFloat>(g: &Geom, axes: &[AxisPlan; 3], mode: u8, x: &[F], rows: &mut [F]) -> () = w_rows);

/// The H pass of lanes `l0 ..` of a sample's W-pass rows into a packed block `y` (`oh` rows of
/// `y.len() / oh` lanes), by a combine known at run time (a task of [`sample_over_threads`]).
#[inline(always)]
fn h_lanes<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    mode: u8,
    rows: &[F],
    l0: usize,
    y: &mut [F],
) {
    let lanes = y.len() / g.out3[1];
    let (mut pre, mut suf) = fold_scratch::<F>(g, axes);
    let scratch = (&mut pre[..], &mut suf[..]);
    by_mode!(
        mode,
        h_pass::<F>(g, axes, rows, (l0, lanes), y, lanes, scratch)
    );
}

multiversion!(fn run_h_lanes<F: FastFloat>(g: &Geom, axes: &[AxisPlan; 3], mode: u8, rows: &[F], l0: usize, y: &mut [F]) -> () = h_lanes);

/// One sample over the threads (a single image): its rows' W passes in tasks of rows, then
/// its H pass in tasks of [`H_LANES`] lanes, each into a packed block of its own, then the
/// output rows from the blocks. The same folds as [`sample_by`] on one thread, so the same
/// bits.
fn sample_over_threads<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    y: &mut [F],
) {
    let (c, [_, h, w], [_, oh, ow]) = (g.channels, g.in3, g.out3);
    let row_len = ow * c;
    let mode = mode_of(reduce, x);
    let mut rows = Scratch::<F>::new(h * row_len);
    let rows = &mut rows[..h * row_len];
    let per_task = h.div_ceil(4 * rayon::current_num_threads()).max(1);
    x.par_chunks(w * c * per_task)
        .zip(rows.par_chunks_mut(row_len * per_task))
        .for_each(|(xs, ts)| run_w_rows::<F>(isa, g, axes, mode, xs, ts));
    let rows = &*rows;
    // run j's block: oh rows of its lanes (H_LANES apart from the next block's)
    let block = oh * H_LANES.min(row_len);
    let blocks = row_len.div_ceil(H_LANES) * block;
    let mut packed = Scratch::<F>::new(blocks);
    // (a scratch buffer may be longer than asked for)
    let packed = &mut packed[..blocks];
    packed
        .par_chunks_mut(block)
        .enumerate()
        .for_each(|(j, block)| {
            let (l0, lanes) = lane_run(row_len, j);
            let block = &mut block[..oh * lanes];
            run_h_lanes::<F>(isa, g, axes, mode, rows, l0, block);
        });
    let packed = &*packed;
    let per_task = oh.div_ceil(4 * rayon::current_num_threads()).max(1);
    y.par_chunks_mut(row_len * per_task)
        .enumerate()
        .for_each(|(t, band)| run_gather::<F>(isa, g, axes, reduce, packed, t * per_task, band));
}

/// Output rows `o0 ..` of a sample (`y`, whole rows) from the packed blocks of
/// [`sample_over_threads`]'s H pass, sums then divided.
#[inline(always)]
fn gather<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    packed: &[F],
    o0: usize,
    y: &mut [F],
) {
    let (oh, row_len) = (g.out3[1], g.out3[2] * g.channels);
    let block = oh * H_LANES.min(row_len);
    for (i, row) in y.chunks_exact_mut(row_len).enumerate() {
        let o = o0 + i;
        for j in 0..row_len.div_ceil(H_LANES) {
            let (l0, lanes) = lane_run(row_len, j);
            row[l0..l0 + lanes].copy_from_slice(&packed[j * block + o * lanes..][..lanes]);
        }
        finish_sum_row(g, axes, reduce, o, row);
    }
}

multiversion!(fn run_gather<F: FastFloat>(g: &Geom, axes: &[AxisPlan; 3], reduce: Reduce, packed: &[F], o0: usize, y: &mut [F]) -> () = gather);

/// Pools a channels-last problem that [`applies`] takes, samples split over the threads (a
/// sample's results do not depend on which thread computes it).
pub(crate) fn forward<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    out: &mut Out<F>,
) {
    let (in_unit, out_unit) = (g.in_plane() * g.channels, g.out_plane() * g.channels);
    let y = out.init();
    if super::split_over_threads(x.len(), 1 << 15) && g.batch > 1 {
        x.par_chunks(in_unit)
            .zip(y.par_chunks_mut(out_unit))
            .for_each(|(xs, ys)| run_samples::<F>(isa, g, axes, reduce, xs, ys));
    } else if super::split_over_threads(x.len(), 1 << 15) {
        sample_over_threads(isa, g, axes, reduce, x, y);
    } else {
        run_samples::<F>(isa, g, axes, reduce, x, y);
    }
}
