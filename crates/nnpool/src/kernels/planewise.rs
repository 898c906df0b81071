//! Exact plane-by-plane kernels for what has no SIMD kernel: Lp pooling (finite p), forward
//! and backward, and the average backward of f16 and bf16, whose gradients PyTorch rounds
//! after every add (the SIMD average backward takes f32 and f64; the max scatter takes all
//! four, `scatter::ScatterElem`). Each computes what `reference`
//! computes, from the same scalar helpers and in the same order, so its results are the
//! reference's bits. What differs is the cost:
//! - planes (channels-first) or samples (channels-last) are rayon tasks;
//! - each axis's windows are listed once per call, where the reference works a window out again
//!   for every output, and a window's taps are plain index loops, not chained iterators;
//! - Lp's powers `x^p` are taken once per element, not once for every window that holds it,
//!   and its window sums are formed tap by tap over all outputs ([`TapSums`]).
//!
//! Measured (`plane_probe`, `PROBE_N=8`, against `NNPOOL_KERNEL=reference`, the path before,
//! ms, 1 / 2 threads): Lp p = 2 on inception_avg_s1's shape (`192 28 28 3 1 1 lp`) forward
//! 116 / 116 → 10.5 / 5.4, backward (`PROBE_BWD=1`) 252 / 251 → 28.1 / 14.1; the bf16 average
//! backward on that shape (`PROBE_DTYPE=bf16 PROBE_BWD=1 .. avg`) 154 / 154 → 34.3 / 17.4.

use super::convert::Taps;
use crate::element::{Accumulator, Element};
use crate::geometry::{AxisGeometry, AxisSpans, Span};
use crate::layout::Layout;
use crate::plan::{Divisor, Geom, WindowTable};
use crate::reference::{
    add_in, divide_spans, lp_onnx_term, lp_torch_delta, lp_torch_input_factor, lp_torch_output,
    pow_t,
};
use crate::LpVariant;
use num_traits::{Float, Zero};
use rayon::prelude::*;

/// Values a task should hold at least, so that small planes are grouped.
const MIN_TASK_VALUES: usize = 1 << 14;

/// One plane of a unit: its index among all planes (`n * C + c`, for per-plane windows) and
/// where its values lie in the unit's input and output alike (`base + i * step`).
#[derive(Clone, Copy)]
struct Plane {
    index: usize,
    base: usize,
    step: usize,
}

/// Runs `f(unit, planes, dst)` for every unit of the problem in parallel: a unit is a plane
/// channels-first, a sample channels-last (its planes interleaved), and `dst` is its part of
/// the written buffer, `per_plane` values for each of its planes.
fn par_units<D: Send>(
    g: &Geom,
    dst: &mut [D],
    per_plane: usize,
    f: impl Fn(usize, &mut dyn Iterator<Item = Plane>, &mut [D]) + Sync,
) {
    let (planes_per_unit, step) = match g.layout {
        Layout::ChannelsFirst => (1, 1),
        Layout::ChannelsLast => (g.channels, g.channels),
    };
    let unit_len = per_plane * planes_per_unit;
    if unit_len == 0 || dst.is_empty() {
        return;
    }
    let run = |(u, d): (usize, &mut [D])| {
        let first = u * planes_per_unit;
        let mut planes = (0..planes_per_unit).map(|c| Plane {
            index: first + c,
            base: c,
            step,
        });
        f(u, &mut planes, d)
    };
    let min_units = (MIN_TASK_VALUES / unit_len).max(1);
    if super::split_over_threads(dst.len(), MIN_TASK_VALUES) {
        dst.par_chunks_mut(unit_len)
            .with_min_len(min_units)
            .enumerate()
            .for_each(run);
    } else {
        dst.chunks_mut(unit_len).enumerate().for_each(run);
    }
}

/// Each axis's windows, listed once.
struct Windows([Vec<Span>; 3]);

impl Windows {
    fn list(g: &Geom, table: &WindowTable, plane: usize) -> Self {
        let w = table.plane(plane);
        Windows(std::array::from_fn(|a| {
            (0..g.out3[a]).map(|o| w[a].get(o)).collect()
        }))
    }

    /// Calls `f(o, spans)` for every output of a plane in order (`o` plane-local, flat).
    #[inline(always)]
    fn for_each(&self, mut f: impl FnMut(usize, [Span; 3])) {
        let [d, h, w] = &self.0;
        let mut o = 0;
        for &sd in d {
            for &sh in h {
                for &sw in w {
                    f(o, [sd, sh, sw]);
                    o += 1;
                }
            }
        }
    }
}

/// Windows shared by every plane listed once; per-plane windows (fractional) listed per plane.
enum WindowCache<'a> {
    Shared(Windows),
    PerPlane(&'a Geom, &'a WindowTable),
}

impl<'a> WindowCache<'a> {
    fn new(g: &'a Geom, table: &'a WindowTable) -> Self {
        match table {
            WindowTable::Shared(_) => WindowCache::Shared(Windows::list(g, table, 0)),
            WindowTable::PerPlane(_) => WindowCache::PerPlane(g, table),
        }
    }

    fn with<R>(&self, plane: usize, f: impl FnOnce(&Windows) -> R) -> R {
        match self {
            WindowCache::Shared(w) => f(w),
            WindowCache::PerPlane(g, t) => f(&Windows::list(g, t, plane)),
        }
    }
}

/// The window sums of a plane for sliding windows (and their transpose, the average
/// backward's [`spread`](TapSums::spread)), formed tap by tap over all outputs (a loop the
/// compiler vectorises) instead of window by window: each output still receives its taps in
/// row-major order from +0, the reference's order. The values sit in a zero-padded plane, so a
/// tap past the input adds +0, which leaves a sum as it is: a running sum from +0 is never −0,
/// and every other value, NaN and ±inf included, is unchanged by adding +0.
struct TapSums<A> {
    axes: [AxisGeometry; 3],
    /// The padded plane's sides: the padding before, then room for every tap.
    sides: [usize; 3],
    padded: Vec<A>,
}

impl<A: Accumulator> TapSums<A> {
    /// `None` unless every axis of `table` has sliding windows (Lp pooling's always do).
    fn new(table: &WindowTable) -> Option<Self> {
        let WindowTable::Shared(w) = table else {
            return None;
        };
        // the axes a lower rank embeds in 3-D: one window of the one input element
        let unit = Span {
            first: 0,
            step: 1,
            count: 1,
            padded_count: 1,
        };
        let mut axes = Vec::with_capacity(3);
        for a in w {
            axes.push(match a {
                AxisSpans::Sliding(g) => *g,
                AxisSpans::Table(t) if t[..] == [unit] => AxisGeometry {
                    input: 1,
                    output: 1,
                    kernel: 1,
                    stride: 1,
                    dilation: 1,
                    pad_begin: 0,
                    pad_end: 0,
                },
                _ => return None,
            });
        }
        let axes: [AxisGeometry; 3] = axes.try_into().ok()?;
        let sides = axes.each_ref().map(|g| {
            let last_tap = g.output.saturating_sub(1) * g.stride + (g.kernel - 1) * g.dilation;
            (g.input + g.pad_begin).max(last_tap + 1)
        });
        let padded = vec![A::zero(); sides.iter().product()];
        Some(TapSums {
            axes,
            sides,
            padded,
        })
    }

    /// `sums[o]` for every output `o` of a plane whose value at plane-local flat index `i` is
    /// `value(i)`.
    fn sums(&mut self, value: impl Fn(usize) -> A, sums: &mut [A]) {
        let [gd, gh, gw] = &self.axes;
        let [_, lh, lw] = self.sides;
        for (at, from) in self.input_rows() {
            for (w, v) in self.padded[at..at + gw.input].iter_mut().enumerate() {
                *v = value(from + w);
            }
        }
        sums.fill(A::zero());
        let ow = gw.output;
        for kd in 0..gd.kernel {
            for kh in 0..gh.kernel {
                for kw in 0..gw.kernel {
                    for od in 0..gd.output {
                        for oh in 0..gh.output {
                            let d = od * gd.stride + kd * gd.dilation;
                            let h = oh * gh.stride + kh * gh.dilation;
                            let at = (d * lh + h) * lw + kw * gw.dilation;
                            let out = &mut sums[(od * gh.output + oh) * ow..][..ow];
                            if gw.stride == 1 {
                                for (s, v) in out.iter_mut().zip(&self.padded[at..at + ow]) {
                                    *s += *v;
                                }
                            } else {
                                for (j, s) in out.iter_mut().enumerate() {
                                    *s += self.padded[at + j * gw.stride];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

impl<A: Accumulator> TapSums<A> {
    /// The transpose of [`sums`](Self::sums): adds `deltas[o]` (one per output, as the output
    /// lies) into every tap of window `o` by `add`, in the padded plane. Each element receives
    /// its deltas in output order, the reference's: output rows in order, and within one, the
    /// outputs reaching an element from taps `kw` and `kw'` at `ow·stride + kw·dilation`
    /// fixed lie in the reverse order of their taps, so the taps go from last to first, each
    /// a loop over the row's outputs, into distinct elements. Measured against adding each
    /// output's delta into its window's taps (`PROBE_N=8 RAYON_NUM_THREADS=1 plane_probe`,
    /// `PROBE_DTYPE=f16|bf16 PROBE_BWD=1`, ms): f16 `192 28 28 3 1 1 avg` channels-last 28.4 →
    /// 23.0, bf16 channels-first 17.9 → 16.5, f16 `64 56 56 2 2 0 avg` 5.8 → 5.1.
    /// Taps past the input land in the padding, which [`unpad_into`](Self::unpad_into)
    /// leaves out.
    ///
    /// All the taps of the input rows one output row reaches (in one input slice) are added
    /// in one call, `add_taps(rows, their Taps, deltas)`: in each row, `acc[x] +=
    /// deltas[x + (k − 1)·dilation − kw·dilation]` for `kw` from `k − 1` down to 0, `deltas`
    /// the output row's deltas with `(k − 1)·dilation` zeros on each side (adding +0 leaves a
    /// value as it is, see above); with a stride, spread out to the input's spacing with +0
    /// between. Each element is then loaded and stored once per output row, not once per
    /// tap (f16 stores of rows shifted by one tap, read back at once, each cost a
    /// store-forwarding stall), and the rows' rounding chains are independent.
    fn spread(&mut self, deltas: &[A], add_taps: impl Fn(&mut [A], Taps, &[A])) {
        let [gd, gh, gw] = &self.axes;
        let [_, lh, lw] = self.sides;
        self.padded.fill(A::zero());
        let ow = gw.output;
        if ow == 0 {
            return;
        }
        let margin = (gw.kernel - 1) * gw.dilation;
        let spaced_len = (ow - 1) * gw.stride + 1;
        let span = spaced_len + margin;
        let mut spaced = vec![A::zero(); span + margin];
        for od in 0..gd.output {
            for oh in 0..gh.output {
                let row = &deltas[(od * gh.output + oh) * ow..][..ow];
                for (j, &v) in row.iter().enumerate() {
                    spaced[margin + j * gw.stride] = v;
                }
                for kd in 0..gd.kernel {
                    let d = od * gd.stride + kd * gd.dilation;
                    let h = oh * gh.stride;
                    let first = (d * lh + h) * lw;
                    let row_step = gh.dilation * lw;
                    let end = first + (gh.kernel - 1) * row_step + span;
                    let taps = Taps {
                        rows: gh.kernel,
                        row_step,
                        span,
                        k: gw.kernel,
                        dilation: gw.dilation,
                    };
                    add_taps(&mut self.padded[first..end], taps, &spaced);
                }
            }
        }
    }

    /// The input elements of the padded plane, in order, into `out` (one per input element).
    fn unpad_into(&self, out: &mut [A]) {
        let n = self.axes[2].input;
        for (at, to) in self.input_rows() {
            out[to..to + n].copy_from_slice(&self.padded[at..at + n]);
        }
    }

    /// Each input row's start in the padded plane and in the plane-local flat input, in order.
    fn input_rows(&self) -> impl Iterator<Item = (usize, usize)> {
        let [gd, gh, gw] = self.axes;
        let [_, lh, lw] = self.sides;
        (0..gd.input).flat_map(move |d| {
            (0..gh.input).map(move |h| {
                let at = ((d + gd.pad_begin) * lh + h + gh.pad_begin) * lw + gw.pad_begin;
                (at, (d * gh.input + h) * gw.input)
            })
        })
    }
}

/// A plane's window sums: by [`TapSums`] where the windows slide, else window by window.
enum PlaneSums<A> {
    Taps(TapSums<A>),
    Windows(Vec<A>),
}

impl<A: Accumulator> PlaneSums<A> {
    fn new(table: &WindowTable, in_plane: usize) -> Self {
        match TapSums::new(table) {
            Some(t) => PlaneSums::Taps(t),
            None => PlaneSums::Windows(vec![A::zero(); in_plane]),
        }
    }

    fn sums(&mut self, g: &Geom, w: &Windows, value: impl Fn(usize) -> A, sums: &mut [A]) {
        match self {
            PlaneSums::Taps(t) => t.sums(value, sums),
            PlaneSums::Windows(values) => {
                for (i, v) in values.iter_mut().enumerate() {
                    *v = value(i);
                }
                w.for_each(|o, s| {
                    let mut sum = A::zero();
                    for_each_tap(g.in3, s, |i| sum += values[i]);
                    sums[o] = sum;
                });
            }
        }
    }
}

/// Calls `f(i)` for the plane-local flat index of every tap of a window, in row-major order
/// (the reference's scan order).
#[inline(always)]
fn for_each_tap(in3: [usize; 3], [sd, sh, sw]: [Span; 3], mut f: impl FnMut(usize)) {
    let [_, ih, iw] = in3;
    for a in 0..sd.count {
        let d = sd.first + a * sd.step;
        for b in 0..sh.count {
            let row = (d * ih + sh.first + b * sh.step) * iw + sw.first;
            for c in 0..sw.count {
                f(row + c * sw.step);
            }
        }
    }
}

/// Whether this path runs (the fast kernels are on: `NNPOOL_KERNEL=reference` keeps the
/// reference, so the two can be compared).
fn enabled() -> bool {
    super::fast_isa().is_some()
}

/// Lp pooling forward for a finite `p` (see `reference::lp_forward`); `false` when not taken.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lp_forward<T: Element>(
    g: &Geom,
    table: &WindowTable,
    p: f64,
    variant: LpVariant,
    area: usize,
    x: &[T],
    y: &mut [T],
) -> bool {
    if !enabled() || !p.is_finite() {
        return false;
    }
    let (pa, inv) = (T::Acc::from_f64(p), T::Acc::from_f64(1.0 / p));
    let k = T::Acc::from_i64(area as i64);
    let (pin, pout) = (g.in_plane(), g.out_plane());
    let cache = WindowCache::new(g, table);
    par_units(g, y, pout, |u, planes, yu| {
        let per_unit = yu.len() / pout;
        let xu = &x[u * pin * per_unit..][..pin * per_unit];
        let mut plane_sums = PlaneSums::new(table, pin);
        let mut sums = vec![T::Acc::zero(); pout];
        for pl in planes {
            let power = |i: usize| {
                let xi = xu[pl.base + i * pl.step].to_acc();
                match variant {
                    LpVariant::Torch => pow_t::<T>(xi, pa),
                    LpVariant::Onnx => xi.abs().powf(pa),
                }
            };
            cache.with(pl.index, |w| {
                plane_sums.sums(g, w, power, &mut sums);
                w.for_each(|o, s| {
                    let sum = sums[o];
                    let out = match variant {
                        LpVariant::Torch => lp_torch_output::<T>(sum, s, k, inv),
                        LpVariant::Onnx => sum.powf(inv),
                    };
                    yu[pl.base + o * pl.step] = T::from_acc(out);
                })
            });
        }
    });
    true
}

/// Lp pooling backward for a finite `p` (see `reference::lp_backward`); `false` when not taken.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lp_backward<T: Element>(
    g: &Geom,
    table: &WindowTable,
    p: f64,
    variant: LpVariant,
    area: usize,
    x: &[T],
    gy: &[T],
    gx: &mut [T],
) -> bool {
    if !enabled() || !p.is_finite() {
        return false;
    }
    let (pa, inv) = (T::Acc::from_f64(p), T::Acc::from_f64(1.0 / p));
    let k = T::Acc::from_i64(area as i64);
    let zero = T::Acc::zero();
    let (pin, pout) = (g.in_plane(), g.out_plane());
    let cache = WindowCache::new(g, table);
    par_units(g, gx, pin, |u, planes, gxu| {
        let per_unit = gxu.len() / pin;
        let xu = &x[u * pin * per_unit..][..gxu.len()];
        let gyu = &gy[u * pout * per_unit..][..pout * per_unit];
        let mut plane_sums = PlaneSums::new(table, pin);
        let mut sums = vec![zero; pout];
        let mut acc = vec![zero; pin];
        for pl in planes {
            let xi = |i: usize| xu[pl.base + i * pl.step].to_acc();
            let power = |i: usize| match variant {
                LpVariant::Torch => pow_t::<T>(xi(i), pa),
                LpVariant::Onnx => xi(i).abs().powf(pa),
            };
            acc.fill(zero);
            cache.with(pl.index, |w| {
                plane_sums.sums(g, w, power, &mut sums);
                w.for_each(|o, s| {
                    let gout = gyu[pl.base + o * pl.step].to_acc();
                    let sum = sums[o];
                    match variant {
                        LpVariant::Torch => {
                            let delta = lp_torch_delta::<T>(gout, sum, s, k, inv);
                            for_each_tap(g.in3, s, |i| add_in::<T>(&mut acc[i], delta));
                        }
                        LpVariant::Onnx if sum > zero => {
                            let scale = gout * sum.powf(inv) / sum;
                            for_each_tap(g.in3, s, |i| acc[i] += lp_onnx_term(scale, xi(i), pa));
                        }
                        LpVariant::Onnx => {}
                    }
                })
            });
            for (i, a) in acc.iter().enumerate() {
                let v = match variant {
                    LpVariant::Torch => lp_torch_input_factor::<T>(*a, xi(i), pa),
                    LpVariant::Onnx => *a,
                };
                gxu[pl.base + i * pl.step] = T::from_acc(v);
            }
        }
    });
    true
}

/// `values` as accumulators, for f16 and bf16 widened into `buf` by one slice conversion (F16C
/// for f16, 8 values an instruction, where `to_acc` is a call per value): `None` for the
/// other types, which widen as they are read.
fn widened<'a, T: Element>(values: &[T], buf: &'a mut Vec<f32>) -> Option<&'a [T::Acc]> {
    if !is_half::<T>() {
        return None;
    }
    buf.resize(values.len(), 0.0);
    super::widen(values, buf);
    super::cast::<f32, T::Acc>(buf)
}

/// Whether `T` is f16 or bf16.
fn is_half<T: Element>() -> bool {
    let none: &[T] = &[];
    super::cast::<T, half::f16>(none).is_some() || super::cast::<T, half::bf16>(none).is_some()
}

/// Stores plane `pl`'s accumulated values into `dst` (value `i` at `pl.base + i·pl.step`),
/// rounded to `T`: by one slice conversion where the plane is contiguous and `T` is f16 or
/// bf16.
fn store_plane<T: Element>(acc: &[T::Acc], pl: &Plane, dst: &mut [T]) {
    if pl.step == 1 && is_half::<T>() {
        if let Some(wide) = super::cast::<T::Acc, f32>(acc) {
            super::narrow(wide, &mut dst[pl.base..pl.base + acc.len()]);
            return;
        }
    }
    for (i, a) in acc.iter().enumerate() {
        dst[pl.base + i * pl.step] = T::from_acc(*a);
    }
}

/// Average backward (see `reference::avg_backward`) where the SIMD kernels decline: f16 and
/// bf16 always (PyTorch rounds their gradient after every add), other types for the problems
/// those kernels do not take; `false` when not taken.
pub(crate) fn avg_backward<T: Element>(
    g: &Geom,
    table: &WindowTable,
    div: Divisor,
    gy: &[T],
    gx: &mut [T],
) -> bool {
    if !enabled() {
        return false;
    }
    let (pin, pout) = (g.in_plane(), g.out_plane());
    let cache = WindowCache::new(g, table);
    if g.layout == Layout::ChannelsLast && g.channels > 1 {
        if let WindowCache::Shared(windows) = &cache {
            if avg_backward_channels_last(g, windows, div, gy, gx) {
                return true;
            }
        }
    }
    let divisors = (matches!(table, WindowTable::Shared(_)) && div != Divisor::PerAxis)
        .then(|| plane_divisors(&cache, div, pout))
        .flatten();
    par_units(g, gx, pin, |u, planes, gxu| {
        let per_unit = gxu.len() / pin;
        let gyu = &gy[u * pout * per_unit..][..pout * per_unit];
        let mut buf = Vec::new();
        let wide = widened(gyu, &mut buf);
        let mut acc = vec![T::Acc::zero(); pin];
        // sliding windows: the deltas of a plane first, then spread tap by tap
        let mut spread = TapSums::<T::Acc>::new(table);
        let mut deltas = vec![T::Acc::zero(); if spread.is_some() { pout } else { 0 }];
        // and, with one divisor per window (shared by the planes) and f32 sums, the deltas
        // divided in one vector loop: a division per output, its divisor formed anew, was
        // most of the f16 and bf16 average backward once the adds were vector loops
        let divisors = divisors.as_ref().filter(|_| spread.is_some());
        for pl in planes {
            if spread.is_none() {
                // (the spread's `unpad_into` writes every element)
                acc.fill(T::Acc::zero());
            }
            if let (Some(d), Some(q)) = (divisors, super::cast_mut::<T::Acc, f32>(&mut deltas)) {
                let wide = wide.and_then(super::cast::<T::Acc, f32>);
                for (o, q) in q.iter_mut().enumerate() {
                    let at = pl.base + o * pl.step;
                    *q = wide.map_or_else(|| gyu[at].to_f64() as f32, |wide| wide[at]);
                }
                let isa = super::fast_isa().unwrap_or(super::isa::Isa::Portable);
                super::convert::divide(isa, q, d);
            } else {
                cache.with(pl.index, |w| {
                    w.for_each(|o, s| {
                        // PyTorch computes the delta in T, then adds it in T
                        let at = pl.base + o * pl.step;
                        let gout = wide.map_or_else(|| gyu[at].to_acc(), |wide| wide[at]);
                        let delta = divide_spans(gout, div, s);
                        if spread.is_some() {
                            // (rounded to T below, all at once)
                            deltas[o] = delta;
                        } else {
                            let delta = T::round_acc(delta);
                            for_each_tap(g.in3, s, |i| add_in::<T>(&mut acc[i], delta));
                        }
                    })
                });
            }
            if let Some(spread) = spread.as_mut() {
                round_row::<T>(&mut deltas);
                spread.spread(&deltas, add_taps_rounded::<T>);
                spread.unpad_into(&mut acc);
            }
            store_plane::<T>(&acc, &pl, gxu);
        }
    });
    true
}

/// [`avg_backward`] of channels-last f16 or bf16 samples, a pixel's channels side by side
/// (`false` for other types): per output pixel, in output order, the deltas `T(gy / divisor)`
/// of all its channels, added into each tap pixel's channels with every sum rounded to `T`.
/// Each element receives its contributions in output order from +0, as in the reference,
/// so the results are its bits; the adds are vector loops over the channels, where the
/// plane-by-plane loops read every plane's values `C` apart.
///
/// Measured against the plane-by-plane loops (`PROBE_DTYPE=f16|bf16 PROBE_NHWC=1 PROBE_BWD=1
/// PROBE_N=8 plane_probe .. avg`, two rounds alternating, µs per plane, 1 / 2 threads):
/// `64 56 56 3 2 1` f16 8.7–8.8 / 4.3–4.4 → 1.54–1.58 / 0.85–0.91, bf16 7.9–8.0 / 3.9 →
/// 1.98–1.99 / 1.00–1.06; `192 28 28 3 1 1` f16 4.1 / 2.0 → 1.19–1.20 / 0.54–0.55, bf16 4.0
/// / 2.0 → 1.60–1.62 / 0.78–0.79.
fn avg_backward_channels_last<T: Element>(
    g: &Geom,
    windows: &Windows,
    div: Divisor,
    gy: &[T],
    gx: &mut [T],
) -> bool {
    type Add = fn(super::isa::Isa, &mut [f32], &[f32], Taps);
    type Round = fn(super::isa::Isa, &mut [f32]);
    let (add, round): (Add, Round) = match T::DTYPE {
        crate::element::DType::F16 => (
            super::convert::add_taps_rounded_f16,
            super::convert::round_f16,
        ),
        crate::element::DType::BF16 => (super::convert::add_taps_rounded_bf16, |_, v| {
            super::convert::round_bf16(v)
        }),
        _ => return false,
    };
    let isa = super::fast_isa().unwrap_or(super::isa::Isa::Portable);
    let (c, [_, ih, iw]) = (g.channels, g.in3);
    let sample_out = g.out_plane() * c;
    // (a sample is a unit channels-last; one without outputs is stored as zeros)
    par_units(g, gx, g.in_plane(), |u, _, gxs| {
        let gys = &gy[u * sample_out..][..sample_out];
        let mut wide = vec![0f32; sample_out];
        super::widen(gys, &mut wide);
        let mut acc = vec![0f32; gxs.len()];
        let mut deltas = vec![0f32; c];
        windows.for_each(|o, s| {
            deltas.copy_from_slice(&wide[o * c..][..c]);
            match super::window::window_divisor(div, s) {
                Some(d) => super::convert::divide(isa, &mut deltas, &[d as f32]),
                None => deltas
                    .iter_mut()
                    .for_each(|q| *q = divide_spans(*q, div, s)),
            }
            round(isa, &mut deltas);
            let [sd, sh, sw] = s;
            if sw.count == 0 {
                return;
            }
            let row = Taps {
                rows: sw.count,
                row_step: sw.step * c,
                span: c,
                k: 1,
                dilation: 1,
            };
            for dd in sd.taps() {
                for hh in sh.taps() {
                    let first = (dd * ih + hh) * iw + sw.first;
                    add(isa, &mut acc[first * c..], &deltas, row);
                }
            }
        });
        super::narrow(&acc, gxs);
    });
    true
}

/// The divisor of each output of a plane, as f32, where every plane shares its windows and
/// each window has one divisor (`None` otherwise).
fn plane_divisors(cache: &WindowCache, div: Divisor, pout: usize) -> Option<Vec<f32>> {
    let mut d = vec![0f32; pout];
    let mut all = true;
    cache.with(0, |w| {
        w.for_each(|o, s| match super::window::window_divisor(div, s) {
            Some(v) => d[o] = v as f32,
            None => all = false,
        })
    });
    all.then_some(d)
}

/// The taps of the input rows one output row reaches, in `T`'s arithmetic (see
/// `reference::add_in` and [`TapSums::spread`]): in each row, `acc[x] += deltas[x + m −
/// kw·dilation]` for `kw` from `k − 1` down to 0, `m = (k − 1)·dilation`; for f16 and bf16
/// each sum rounded to `T`, in vector loops (`convert`). With the deltas divided in one
/// vector loop (`plane_divisors`), against a scalar rounding per add, one tap at a time, and
/// a division per output (`PROBE_BWD=1 PROBE_N=8 RAYON_NUM_THREADS=1 plane_probe`, two
/// rounds alternating, µs per plane): `192 28 28 3 1 1 avg` f16 13.4 → 2.8, bf16 10.6–10.7 →
/// 3.2; `64 56 56 2 2 0 avg` f16 9.8–10.0 → 2.8–2.9, bf16 8.3 → 3.9.
fn add_taps_rounded<T: Element>(acc: &mut [T::Acc], taps: Taps, deltas: &[T::Acc]) {
    let isa = super::fast_isa().unwrap_or(super::isa::Isa::Portable);
    if let (Some(a), Some(d)) = (
        super::cast_mut::<T::Acc, f32>(acc),
        super::cast::<T::Acc, f32>(deltas),
    ) {
        match T::DTYPE {
            crate::element::DType::F16 => {
                return super::convert::add_taps_rounded_f16(isa, a, d, taps)
            }
            crate::element::DType::BF16 => {
                return super::convert::add_taps_rounded_bf16(isa, a, d, taps)
            }
            _ => {}
        }
    }
    let m = (taps.k - 1) * taps.dilation;
    for r in 0..taps.rows {
        for (x, a) in acc[r * taps.row_step..][..taps.span].iter_mut().enumerate() {
            for kw in (0..taps.k).rev() {
                add_in::<T>(a, deltas[x + m - kw * taps.dilation]);
            }
        }
    }
}

/// `v[i]` rounded to `T` (see [`add_taps_rounded`]).
fn round_row<T: Element>(v: &mut [T::Acc]) {
    let isa = super::fast_isa().unwrap_or(super::isa::Isa::Portable);
    if let Some(w) = super::cast_mut::<T::Acc, f32>(v) {
        match T::DTYPE {
            crate::element::DType::F16 => return super::convert::round_f16(isa, w),
            crate::element::DType::BF16 => return super::convert::round_bf16(w),
            _ => {}
        }
    }
    v.iter_mut().for_each(|a| *a = T::round_acc(*a));
}
