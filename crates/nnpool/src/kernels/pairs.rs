//! 2×2 windows at stride 2 without padding on channels-first planes of even sides — the
//! pooling of VGG, U-Net and most classification backbones — in one pass over row pairs.
//!
//! With even sides every window lies inside one plane and its column pair inside one row, so
//! the planes of a task are one tall image of row pairs, each giving one output row, and
//! consecutive output rows follow each other in the output: there is no per-plane work at
//! all, which is what small planes (14×14: one vector per row) paid for on the general paths.
//! With AVX-512:
//! - rows of one vector at most (VGG's last planes, 14×14) go two row pairs at a time
//!   (`x86::pairs_narrow`): four loads, four permutes and three folds for two output rows;
//! - wider rows go row pair by row pair (`x86::pairs_rows`), `2 N` columns a step: four
//!   loads, four permutes and three folds for `N` outputs, masked at the row's end;
//! - inputs from memory (`prefetch_from_bytes` and more) whose rows are whole vector pairs
//!   (VGG's 224 columns) go by `x86::pairs_stream`, whose outputs are written by streaming
//!   stores, which skip reading the output's lines first.
//!
//! These replaced two flat passes (a W pass over the whole task, then an H pass over its row
//! pairs from an L1-sized scratch). Where AVX2 is the level, `avx2::pairs_rows_avx2` does both
//! at once, 8 outputs from 4 loads.
//!
//! f32 and f64 with AVX-512 (the kernels written once over `zmm::Zmm`), f32 at the AVX2 level.
//!
//! Volumes (2×2×2 at stride 2, C3D's and 3-D U-Net's pooling; AVX-512) pool each slice so,
//! into a scratch pair, then fold the pair along the depth (`x86::fold_planes`).
//!
//! Folds keep the reference's row-major order (each row's pair, then the two rows, then the two
//! slices), so max values and NaNs are its bits: a task is folded with the plain max and
//! checked for NaN on the same loads, and folded again by the exact rule if it holds one. Sums
//! differ from the reference's sequential sum by rounding only, then are divided by the same
//! divisor (multiplied by its reciprocal, within 1 ulp of the quotient).

use super::out::Out;
use super::window::{window_divisor, AxisPlan, FastFloat, Reduce};
use super::zmm::Zmm;
use super::{cast, cast_mut};
use crate::element::{Accumulator, Element};
use crate::layout::Layout;
use crate::plan::{Divisor, Geom};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Input values per chunk (at least one row pair; a task takes 8). Set for the two flat passes
/// the one-pass kernels replaced, whose H pass of a chunk was short enough that the loads of
/// the next W pass followed on before the memory pipeline drained. Measured then (`nnpool
/// bench --case vgg_max_224,vgg_max_14 --layout nchw --threads 1`, same run): 448 (one row
/// pair) 6.7–7.0 / 0.087 ms, 2048 6.6–7.0 / 0.080, 8192 8.9 / 0.094, 65536 9.3–9.4 / 0.102.
const CHUNK: usize = 1 << 11;

/// Whether this path takes the problem.
pub(crate) fn applies<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    with_indices: bool,
) -> bool {
    // every window two full taps: no padding, no partial (ceil-mode) window, nothing left over
    let halves = |a: &AxisPlan, n: usize| {
        a.k == 2
            && a.s == 2
            && a.d == 1
            && a.pad == 0
            && n.is_multiple_of(2)
            && a.spans.len() * 2 == n
            && a.spans.iter().all(|sp| sp.count == 2)
    };
    // AVX2: inputs smaller than the last-level cache (`avx2::pairs_rows_avx2`, f32 only)
    let small = g.planes() * g.in_plane() * 4 < super::prefetch_from_bytes();
    let (f32, f64) = (super::same_type::<F, f32>(), super::same_type::<F, f64>());
    (super::isa::has_avx512() && (f32 || f64) || f32 && super::isa::avx2_level() && small)
        && g.layout == Layout::ChannelsFirst
        && !(with_indices && reduce == Reduce::Max)
        && !matches!(reduce, Reduce::Sum(Divisor::PerAxis))
        && ((g.in3[0] == 1 && g.out3[0] == 1)
            || (super::isa::has_avx512() && halves(&axes[0], g.in3[0])))
        && g.in3[2] > 0
        && halves(&axes[1], g.in3[1])
        && halves(&axes[2], g.in3[2])
}

/// Runs the problem (see [`applies`]), storing every element of `y`; tasks take whole row
/// pairs, so results do not depend on the thread count. Returns `false` (nothing written)
/// unless `F` is f32 or f64.
pub(crate) fn forward<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    y: &mut Out<F>,
) -> bool {
    use super::zmm::{F32x16, F64x8};
    if let (Some(x), Some(mut y)) = (cast::<F, f32>(x), y.cast::<f32>()) {
        // SAFETY: the kernels store computed values only, every output row of every task
        // (the tasks of `y` follow those of `x`: half the rows, half the width).
        forward_lanes::<F32x16>(g, axes, reduce, x, unsafe { y.uninit() });
        return true;
    }
    if let (Some(x), Some(mut y)) = (cast::<F, f64>(x), y.cast::<f64>()) {
        // SAFETY: as above.
        forward_lanes::<F64x8>(g, axes, reduce, x, unsafe { y.uninit() });
        return true;
    }
    false
}

/// [`forward`] in vectors of `L`: f32 (with AVX-512, or at the AVX2 level), f64 (AVX-512).
fn forward_lanes<L: Zmm>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) {
    let div = match reduce {
        Reduce::Sum(d) => {
            let spans = [axes[0].spans[0], axes[1].spans[0], axes[2].spans[0]];
            window_divisor(d, spans).unwrap_or(1)
        }
        Reduce::Max => 1,
    };
    let div = L::E::from_i64(div);
    let w = g.in3[2];
    if g.in3[0] > 1 {
        volumes::<L>(reduce, div, g, x, y);
        return;
    }
    let prefetch = std::mem::size_of_val(x) >= super::prefetch_from_bytes();
    let pair_in = 2 * w; // the input of one output row
    let pairs_per_chunk = (CHUNK / pair_in).max(1);
    let chunk_in = pairs_per_chunk * pair_in;
    let chunk_out = pairs_per_chunk * (w / 2);
    if prefetch && super::isa::has_avx512() && w.is_multiple_of(2 * L::N) {
        // inputs from memory, rows of whole vectors: one pass, streamed out
        let stream =
            |xs: &[L::E], ys: &mut [MaybeUninit<L::E>]| stream_task::<L>(reduce, div, w, xs, ys);
        over_tasks(x, y, chunk_in * 8, 4, stream);
        return;
    }
    if super::isa::has_avx512() {
        let one_pass = |xs: &[L::E], ys: &mut [MaybeUninit<L::E>]| {
            _ = one_pass_task::<L>((reduce, prefetch), div, w, xs, ys);
        };
        over_tasks(x, y, chunk_in * 8, 4, one_pass);
        return;
    }
    // AVX2: both passes at once, no scratch
    let run = |xs: &[L::E], ys: &mut [MaybeUninit<L::E>]| {
        for (xc, yc) in xs.chunks(chunk_in).zip(ys.chunks_mut(chunk_out)) {
            _ = chunk_avx2::<L>(reduce, div, w, xc, yc);
        }
    };
    over_tasks(x, y, chunk_in * 8, 4, run);
}

/// One task's whole row pairs (of `w` values, a multiple of `2 N`) by `x86::pairs_stream`,
/// the max by the exact rule again where the task holds a NaN or an infinity.
fn stream_task<L: Zmm>(
    reduce: Reduce,
    div: L::E,
    w: usize,
    x: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) {
    use super::x86::pairs_stream;
    // SAFETY: the caller checked AVX-512F; the kernel asserts its bounds.
    unsafe {
        match reduce {
            Reduce::Sum(_) => _ = pairs_stream::<L, 2>(x, (w, false), div, y),
            Reduce::Max => {
                if pairs_stream::<L, 1>(x, (w, true), div, y) {
                    pairs_stream::<L, 0>(x, (w, false), div, y);
                }
            }
        }
    }
}

/// One task's whole row pairs (of `w` values) by `x86::pairs_narrow` (`w` at most `N`) or
/// `x86::pairs_rows`, the max by the exact rule again where the task holds a NaN. Returns
/// whether it took the exact rule.
#[must_use]
fn one_pass_task<L: Zmm>(
    (reduce, prefetch): (Reduce, bool),
    div: L::E,
    w: usize,
    x: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    use super::x86::{pairs_narrow, pairs_rows};
    type Kernel<L> = unsafe fn(
        &[<L as Zmm>::E],
        (usize, bool, bool),
        <L as Zmm>::E,
        &mut [MaybeUninit<<L as Zmm>::E>],
    ) -> bool;
    let [sum, plain, exact]: [Kernel<L>; 3] = if w <= L::N {
        [
            pairs_narrow::<L, 2>,
            pairs_narrow::<L, 1>,
            pairs_narrow::<L, 0>,
        ]
    } else {
        [pairs_rows::<L, 2>, pairs_rows::<L, 1>, pairs_rows::<L, 0>]
    };
    // SAFETY: the caller checked AVX-512F; the kernels assert their bounds.
    unsafe {
        match reduce {
            Reduce::Sum(_) => {
                _ = sum(x, (w, false, prefetch), div, y);
                false
            }
            Reduce::Max => {
                let special = plain(x, (w, true, prefetch), div, y);
                if special {
                    exact(x, (w, false, false), div, y);
                }
                special
            }
        }
    }
}

/// `run` over tasks of `per_task` input values (the last one shorter) and their outputs,
/// `shrink` times fewer, in parallel when the input is large enough.
fn over_tasks<E: Send + Sync>(
    x: &[E],
    y: &mut [MaybeUninit<E>],
    per_task: usize,
    shrink: usize,
    run: impl Fn(&[E], &mut [MaybeUninit<E>]) + Sync,
) {
    if super::split_over_threads(x.len(), 1 << 16) {
        x.par_chunks(per_task)
            .zip(y.par_chunks_mut(per_task / shrink))
            .for_each(|(xs, ys)| run(xs, ys));
    } else {
        run(x, y);
    }
}

/// The 2×2×2 stride-2 windows of volumes of even sides (`g.in3`): each pair of input slices
/// (consecutive in `x`, whatever the volume) pooled in 2-D by [`one_pass_task`] (sums not
/// divided yet) into a scratch pair, folded along the depth into its output slice (by the exact
/// rule when either slice took it), then sums divided: multiplied by the reciprocal of `div`,
/// within 1 ulp of the quotient. Tasks take whole slice pairs. Measured (`PROBE_D=16 PROBE_N=2
/// plane_probe 64 56 56 2 2 0 [avg]`, 1 thread, against the general path's W pass, H pass and
/// depth fold, two rounds alternating, ns per input slice): max 852–930 → 563–626, average
/// 991–1025 → 590–708. The 2-D path on as many bytes (`PROBE_N=2 plane_probe 1024 56 56 2 2 0`)
/// ran at about the same rate in the same minutes. The one-pass slices against the two flat
/// passes (`PROBE_D=16 PROBE_N=8 plane_probe C H W 2 2 0`, 1 thread, builds alternating, µs per
/// call): 64×56×56 3514–3530 → 2961–3126, 32×28×28 225–226 → 201–206.
fn volumes<L: Zmm>(reduce: Reduce, div: L::E, g: &Geom, x: &[L::E], y: &mut [MaybeUninit<L::E>]) {
    use super::x86::fold_planes;
    const EXACT_MAX: u8 = 0;
    const PLAIN_MAX: u8 = 1;
    const SUM: u8 = 2;
    let [_, h, w] = g.in3;
    let (pin, pout) = (h * w, (h / 2) * (w / 2));
    let reciprocal = L::ONE / div;
    let prefetch = std::mem::size_of_val(x) >= super::prefetch_from_bytes();
    let run = |xs: &[L::E], ys: &mut [MaybeUninit<L::E>]| {
        let mut pooled = vec![L::E::default(); 2 * pout];
        for (pair, out) in xs.chunks_exact(2 * pin).zip(ys.chunks_exact_mut(pout)) {
            let mut exact = false;
            for (slice, into) in pair.chunks_exact(pin).zip(pooled.chunks_exact_mut(pout)) {
                // SAFETY: the kernels store computed values only.
                let into = unsafe { super::out::as_uninit_mut(into) };
                exact |= one_pass_task::<L>((reduce, prefetch), L::ONE, w, slice, into);
            }
            // SAFETY: `applies` checked AVX-512F for volumes; `pooled` holds two slices of
            // `pout` values and `out` as many.
            unsafe {
                match reduce {
                    Reduce::Sum(_) => fold_planes::<L, SUM>(&pooled, pout, out),
                    Reduce::Max if exact => fold_planes::<L, EXACT_MAX>(&pooled, pout, out),
                    Reduce::Max => fold_planes::<L, PLAIN_MAX>(&pooled, pout, out),
                }
            }
            if matches!(reduce, Reduce::Sum(_)) {
                // SAFETY: `fold_planes` stored every value of `out`.
                for v in unsafe { super::out::assume_init_mut(out) } {
                    *v = *v * reciprocal;
                }
            }
        }
    };
    // whole slice pairs per task, about 64 Ki input values
    let per_task = (2 * pin) * ((1 << 16) / (2 * pin)).max(1);
    over_tasks(x, y, per_task, 8, run);
}

/// One chunk of whole row pairs at the AVX2 level (`avx2::pairs_rows_avx2`: both passes at
/// once). Returns whether the max took the exact rule (the chunk holds a NaN).
#[must_use]
fn chunk_avx2<L: Zmm>(
    reduce: Reduce,
    div: L::E,
    w: usize,
    x: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    use super::avx2::pairs_rows_avx2 as both;
    const EXACT_MAX: u8 = 0;
    const PLAIN_MAX: u8 = 1;
    const SUM: u8 = 2;
    // (`applies` takes f32 only without AVX-512)
    let (Some(x), Some(y)) = (cast::<L::E, f32>(x), cast_mut::<_, MaybeUninit<f32>>(y)) else {
        unreachable!("without AVX-512 this path takes f32 only")
    };
    let div = div.to_f64() as f32;
    // SAFETY: `applies` checked AVX2 (the level, where AVX-512 is not); the kernel asserts
    // its bounds (whole row pairs: the chunks of `x` are).
    unsafe {
        match reduce {
            Reduce::Sum(_) => {
                _ = both::<SUM>(x, w, div, false, y);
                false
            }
            Reduce::Max => {
                let special = both::<PLAIN_MAX>(x, w, div, true, y);
                if special {
                    both::<EXACT_MAX>(x, w, div, false, y);
                }
                special
            }
        }
    }
}
