//! Channels-last windows folded straight from the input, one output pixel at a time.
//!
//! In channels-last layout the channels of a pixel are contiguous, so one vector holds 16
//! channels of one tap and a window is `taps` loads per 16 outputs: no W-pass rows to write
//! and read back, no border logic (each pixel lists its in-bounds taps). The folds follow the
//! reference's row-major tap order, so max values and sums (then divided once by the same
//! divisor) are the reference's bits. Taken for f32 with AVX-512, windows of at most
//! [`MAX_TAPS`] taps and samples of at most [`MAX_SAMPLE_BYTES`] (the separable kernels win on
//! larger ones).

use super::isa::multiversion;
use super::isa::Isa;
use super::window::{window_divisor, AxisPlan, FastFloat, Reduce};
use super::{cast, cast_mut};
use crate::layout::Layout;
use crate::plan::{Divisor, Geom};
use rayon::prelude::*;

/// Largest window (taps) this path takes. Measured (`nnpool bench`, same-run A/B against the
/// separable ring kernel, 1 thread): vgg_max_14 nhwc (4 taps) 0.12 → 0.088 ms; 9-tap cases
/// about even; sppf_max5 (25 taps) even to slower; large_avg (49 taps) 3× slower.
const MAX_TAPS: usize = 9;

/// Largest sample (bytes) this path takes: larger ones stream from memory, where the ring
/// kernel was faster (resnet_stem_max nhwc 3.9 against 2.4 ms, vgg_max_224 13.3 against 9.5).
const MAX_SAMPLE_BYTES: usize = 1 << 20;

/// Whether this path takes the problem.
pub(crate) fn applies(g: &Geom, axes: &[AxisPlan; 3], reduce: Reduce, with_indices: bool) -> bool {
    let taps = axes
        .iter()
        .map(|a| a.spans.iter().map(|s| s.count).max().unwrap_or(0))
        .product::<usize>();
    g.layout == Layout::ChannelsLast
        && !(with_indices && reduce == Reduce::Max)
        && !matches!(reduce, Reduce::Sum(Divisor::PerAxis))
        && super::isa::has_avx512()
        && g.channels >= 16
        && (1..=MAX_TAPS).contains(&taps)
        && g.in_plane() * g.channels * std::mem::size_of::<f32>() <= MAX_SAMPLE_BYTES
}

#[inline(always)]
fn rows_body<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    modes: &[u8],
    x: &[F],
    row0: usize,
    y: &mut [F],
) {
    let (Some(x32), Some(y32)) = (cast::<F, f32>(x), cast_mut::<F, f32>(y)) else {
        return;
    };
    let [_, h_in, w_in] = g.in3;
    let [od_n, oh_n, ow_n] = g.out3;
    let c = g.channels;
    let sample = g.in_plane() * c;
    let mut offs = [0usize; MAX_TAPS];
    let row_len = ow_n * c;
    let rows = y32.len() / row_len;
    for r in 0..rows {
        let flat = row0 + r; // (n, od, oh) flattened
        let (n, od, oh) = (flat / (od_n * oh_n), flat / oh_n % od_n, flat % oh_n);
        let xs = &x32[n * sample..(n + 1) * sample];
        let (sd, sh) = (axes[0].spans[od], axes[1].spans[oh]);
        for ow in 0..ow_n {
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
            let div = match reduce {
                // adaptive problems (no single divisor) do not take this path
                Reduce::Sum(d) => window_divisor(d, [sd, sh, sw]).unwrap_or(1) as f32,
                Reduce::Max => 1.0,
            };
            let out = &mut y32[(r * ow_n + ow) * c..(r * ow_n + ow + 1) * c];
            // SAFETY: `applies` checked AVX-512F; every tap is an in-bounds pixel of the sample
            // (spans are clipped to the input), so off * c + c <= sample length.
            unsafe {
                match modes[n] {
                    0 => super::x86::cl_pixel::<0>(xs, &offs[..t], c, div, out),
                    1 => super::x86::cl_pixel::<1>(xs, &offs[..t], c, div, out),
                    _ => super::x86::cl_pixel::<2>(xs, &offs[..t], c, div, out),
                }
            }
        }
    }
}

multiversion!(fn run_rows<F: FastFloat>(g: &Geom, axes: &[AxisPlan; 3], reduce: Reduce, modes: &[u8], x: &[F], row0: usize, y: &mut [F]) -> () = rows_body);

/// Runs the problem; output rows are split over threads (results do not depend on the split).
/// Returns `false` (nothing written) unless `F` is f32.
pub(crate) fn forward<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    y: &mut [F],
) -> bool {
    let Some(x32) = cast::<F, f32>(x) else {
        return false;
    };
    // per sample: 0 = max by the exact rule (a NaN or infinity is present), 1 = plain max,
    // 2 = sum
    let sample = (g.in_plane() * g.channels).max(1);
    let mode = |xs: &[f32]| match reduce {
        Reduce::Sum(_) => 2u8,
        // SAFETY: `applies` checked AVX-512F.
        Reduce::Max if unsafe { super::x86::any_nan_or_inf_avx512(xs) } => 0,
        Reduce::Max => 1,
    };
    let modes: Vec<u8> = if x.len() >= 1 << 16 {
        x32.par_chunks(sample).map(mode).collect()
    } else {
        x32.chunks(sample).map(mode).collect()
    };
    let row_len = g.out3[2] * g.channels;
    let total_rows = y.len() / row_len.max(1);
    let per_task = ((1 << 14) / row_len.max(1)).clamp(1, total_rows.max(1));
    if y.len() >= 1 << 15 && rayon::current_num_threads() > 1 {
        y.par_chunks_mut(per_task * row_len)
            .enumerate()
            .for_each(|(i, ys)| run_rows::<F>(isa, g, axes, reduce, &modes, x, i * per_task, ys));
    } else {
        run_rows::<F>(isa, g, axes, reduce, &modes, x, 0, y);
    }
    true
}
