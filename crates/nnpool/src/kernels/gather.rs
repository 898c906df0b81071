//! Max backward by gathering (f32, channels-first, AVX-512): each input gradient element is
//! computed once, from the few output gradients whose windows cover it, and stored once.
//!
//! The scatter of [`super::scatter`] zeroes the input gradient and then adds each output
//! gradient into it at its index, one value at a time: a store, a reload and a dependent add
//! per output, every line of the gradient touched twice. For 3×3 windows at stride 2 (ResNet's
//! stem, AlexNet), the outputs whose windows cover an input column follow a fixed pattern:
//! input column `c` is covered by output column `⌊(c + pad) / 2⌋`, and by the one before it
//! when `c + pad` is even (rows alike). So a vector of 16 input columns takes its candidates'
//! gradients and indices by one fixed permute each of the output row's values from `c / 2 −
//! 1` on, and adds a candidate's gradient in the lanes where its index names the lane's
//! position.
//!
//! **Exactness.** The reference adds the output gradients in output order into +0. Here each
//! input value starts at +0 and adds its candidates in output order (output rows, then
//! columns, ascending), so every sum is the reference's, bit for bit. This holds when every
//! index lies in its window, as the forward's do; a plane counts the indices it matched, and
//! when that count falls short of its outputs (an index outside its window, given by the
//! caller), the plane is done again by the scatter, which takes any index.
//!
//! **Where it runs.** Where it measured faster than the scatter: planes of at least
//! [`MIN_PLANE`] values, gradients below [`super::scatter::STREAM_ON_THREADS_FROM_BYTES`]
//! (this machine's last-level cache), in memory that is resident already (see
//! `kernels::max_backward`). resnet_stem_max_bwd's shape (`PROBE_BWD=1 PROBE_N=N
//! plane_probe 64 112 112 3 2 1`, ms, scatter → gather, two rounds), 1 / 2 threads: N = 1
//! 0.12–0.14 → 0.11 / 0.074–0.077 → 0.060; N = 4 0.64–0.72 → 0.46–0.47 / 0.26–0.29 →
//! 0.23; N = 8 (25.7 MB, the ring at 1 thread) 1.51–1.53 → 1.14–1.22 / 0.66–0.70 → 0.50
//! (a quieter run); AlexNet's `96 55 55 3 2 0` 0.43–0.45 → 0.40 / 0.22 → 0.21–0.22. Not
//! taken, where the scatter was the faster:
//! - larger gradients, which the ring streams out without reading them (the gather's
//!   ordinary stores read each line first): `64 224 224 3 2 1` at N = 4 (51 MB) 2.9–3.1
//!   against 4.9–5.0. Streaming stores in the gather were slower on the buffers users have:
//!   laying the vectors on the cache lines of a buffer 16 bytes past one (an extra, part
//!   vector per row) took resnet_stem_max_bwd 1.14 → 1.30 ms at 1 thread, 0.49 → 0.59 at 2
//!   (on a cache-line aligned buffer, no shift: 1.19 → 0.97); streaming rows out of a staging
//!   plane took vgg_max_224_bwd's 2×2 windows 12.3 ms in bursts of 4 KiB, 9.1 whole planes,
//!   against the ring's 5.5;
//! - small planes, where the work per plane dominates: `64 28 28 3 2 1` 0.073 → 0.091,
//!   `256 14 14 3 2 1` 0.077 → 0.157 (N = 8, 1 thread);
//! - fresh pages, which the scatter zeroes just ahead of its adds (vgg_max_224_bwd 9.5
//!   against 11.7).

use super::out::Out;
use super::window::AxisPlan;
use super::Scratch;
use crate::layout::Layout;
use crate::plan::Geom;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Bytes past the indices being narrowed that are prefetched (as the scatter's
/// `INDEX_PREFETCH_AHEAD`): with the plane's indices, gradients and input gradient all
/// streaming, the hardware prefetcher alone left the loads waiting on memory.
#[cfg(target_arch = "x86_64")]
const INDEX_PREFETCH_AHEAD: usize = 4096;

/// Output rows staged ahead of the input row that first reads them (see `gather_plane_avx512`).
#[cfg(target_arch = "x86_64")]
const STAGE_AHEAD_ROWS: usize = 2;

/// Bytes past the output gradients being read that are prefetched (see
/// [`INDEX_PREFETCH_AHEAD`]; the gradients are half the bytes of the indices).
#[cfg(target_arch = "x86_64")]
const GRADIENT_PREFETCH_AHEAD: usize = 2048;

/// The smallest plane (values) the gather takes (see the module's documentation).
const MIN_PLANE: usize = 2048;

/// The windows of a problem the gather takes: 2-D planes, stride 2 along both axes, windows
/// of 3 with at most 1 of padding, no dilation.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // (its kernel is x86's)
pub(crate) struct GatherShape {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    pad_top: usize,
    pad_left: usize,
}

impl GatherShape {
    /// The row stride of a plane's staged indices and gradients: one value before and one
    /// after each row's.
    fn staged_stride(&self) -> usize {
        self.ow + 2
    }

    /// The length of a plane's staged indices or gradients, with the slack the last row's
    /// 16-lane loads read past its end.
    fn staged_len(&self) -> usize {
        self.oh * self.staged_stride() + 32
    }
}

/// The gather's shape for a problem, when it takes it: f32 (checked by the caller),
/// channels-first, AVX-512, 2-D planes of fewer than 2^31 values whose windows are plain
/// sliding windows of 3 at stride 2, padded by at most 1, of at least [`MIN_PLANE`] values,
/// and an input gradient (`bytes`) below the scatter's streaming threshold.
pub(crate) fn applies(g: &Geom, axes: &[AxisPlan; 3], bytes: usize) -> Option<GatherShape> {
    let [ad, ah, aw] = axes;
    let [d, h, w] = g.in3;
    let flat = d == 1 && ad.spans.len() == 1 && ad.spans[0].count == 1;
    let window = |a: &AxisPlan, n: usize| {
        super::padded::plain_sliding(a, n) && a.s == 2 && a.k == 3 && a.pad <= 1
    };
    let ok = cfg!(target_arch = "x86_64")
        && super::isa::has_avx512()
        && g.layout == Layout::ChannelsFirst
        && flat
        && window(ah, h)
        && window(aw, w)
        && h.checked_mul(w)
            .is_some_and(|n| n >= MIN_PLANE && n < i32::MAX as usize)
        && bytes < super::scatter::STREAM_ON_THREADS_FROM_BYTES;
    ok.then_some(GatherShape {
        h,
        w,
        oh: ah.spans.len(),
        ow: aw.spans.len(),
        pad_top: ah.pad,
        pad_left: aw.pad,
    })
}

/// `grad_input` of every plane from its indices and output gradients, in parallel over
/// planes; a plane whose indices do not all lie in their windows goes through the scatter.
/// Returns the first index (in plane order) outside its plane, if any (those are skipped).
pub(crate) fn max_backward(
    s: &GatherShape,
    idx: &[i64],
    gy: &[f32],
    gx: &mut Out<f32>,
) -> Option<i64> {
    let (pin, pout) = (s.h * s.w, s.oh * s.ow);
    assert!(
        gx.len().is_multiple_of(pin) && idx.len() == gy.len() && idx.len() == gx.len() / pin * pout
    );
    // SAFETY: every plane's values are all stored, by the gather or by the scatter after it.
    let gx = unsafe { gx.uninit() };
    let planes = gx.len() / pin;
    let threads = rayon::current_num_threads();
    // four tasks per thread at least; 16 Ki input values per task at least
    let per_task = ((1 << 14) / pin).max(planes.div_ceil(threads * 4)).max(1);
    type Unit<'a> = ((&'a mut [MaybeUninit<f32>], &'a [f32]), &'a [i64]);
    let task = |((gx, gy), idx): Unit| {
        let mut indices = Scratch::<i32>::new(s.staged_len());
        let mut gradients = Scratch::<f32>::new(s.staged_len());
        let mut stray = None;
        for ((gx, gy), idx) in gx
            .chunks_mut(pin)
            .zip(gy.chunks(pout))
            .zip(idx.chunks(pout))
        {
            if !gather_plane(s, (idx, gy), (&mut indices, &mut gradients), gx) {
                let isa = super::isa::Isa::Avx512;
                let bad = super::scatter::scatter_task::<f32>(isa, 1, pin, idx, gy, gx);
                stray = stray.or(bad);
            }
        }
        stray
    };
    if super::split_over_threads(gx.len(), 1 << 16) {
        gx.par_chunks_mut(pin * per_task)
            .zip(gy.par_chunks(pout * per_task))
            .zip(idx.par_chunks(pout * per_task))
            .map(task)
            .collect::<Vec<_>>()
            .into_iter()
            .flatten()
            .next()
    } else {
        let units = gx
            .chunks_mut(pin * per_task)
            .zip(gy.chunks(pout * per_task))
            .zip(idx.chunks(pout * per_task));
        units.map(task).fold(None, |first, b| first.or(b))
    }
}

/// One plane: its indices and gradients staged, then the gather. Returns whether every
/// index matched a position in its window (when not, `gx` holds partial sums).
fn gather_plane(
    s: &GatherShape,
    (idx, gy): (&[i64], &[f32]),
    (indices, gradients): (&mut [i32], &mut [f32]),
    gx: &mut [MaybeUninit<f32>],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `applies` took this shape only with AVX-512F detected.
        let matched = unsafe { gather_plane_avx512(s, (idx, gy), (indices, gradients), gx) };
        matched == s.oh * s.ow
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (s, idx, gy, indices, gradients, gx);
        unreachable!("the gather is taken on x86-64 only")
    }
}

/// Stages a plane's indices (narrowed to i32) and gradients in rows of
/// [`GatherShape::staged_stride`]: value `oc` of row `o` at `o * stride + 1 + oc`, with −1
/// and +0 before and after each row and in the slack after the last (the outputs past a
/// row's ends, whose indices match no position). Indices outside the i32 range saturate, and
/// match no position either (positions are below 2^31 − 1). The gather then loads 16 values
/// from any output column −1 to `ow` without masks. Stages output rows `rows`; `slack`
/// fills the slack.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn stage_avx512(
    s: &GatherShape,
    (idx, gy): (&[i64], &[f32]),
    (indices, gradients): (&mut [i32], &mut [f32]),
    rows: std::ops::Range<usize>,
    slack: bool,
) {
    use std::arch::x86_64::*;
    let (stride, ow) = (s.staged_stride(), s.ow);
    assert!(
        idx.len() == s.oh * ow
            && gy.len() == idx.len()
            && indices.len() >= s.staged_len()
            && gradients.len() >= s.staged_len()
    );
    let lanes = |n: usize| ((1u32 << n.min(16)) - 1) as __mmask16;
    for o in rows {
        let (row_i, row_g) = (
            &mut indices[o * stride..][..stride],
            &mut gradients[o * stride..][..stride],
        );
        let (src_i, src_g) = (&idx[o * ow..][..ow], &gy[o * ow..][..ow]);
        (row_i[0], row_i[ow + 1]) = (-1, -1);
        (row_g[0], row_g[ow + 1]) = (0.0, 0.0);
        let dst = row_i[1..=ow]
            .chunks_mut(16)
            .zip(row_g[1..=ow].chunks_mut(16));
        for ((di, dg), (xi, xg)) in dst.zip(src_i.chunks(16).zip(src_g.chunks(16))) {
            let m = lanes(xi.len());
            // SAFETY: the masks enable lanes below xi.len() (= the other chunks' lengths)
            // only; the prefetches are hints (they do not fault).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(
                    xi.as_ptr().cast::<i8>().wrapping_add(INDEX_PREFETCH_AHEAD),
                );
                _mm_prefetch::<_MM_HINT_T0>(
                    xg.as_ptr()
                        .cast::<i8>()
                        .wrapping_add(GRADIENT_PREFETCH_AHEAD),
                );
                let low = _mm512_maskz_loadu_epi64(m as __mmask8, xi.as_ptr());
                let high =
                    _mm512_maskz_loadu_epi64((m >> 8) as __mmask8, xi.as_ptr().wrapping_add(8));
                // (narrowed in registers: the narrowing store to memory, masked, took
                // microcode, a third of the plane's time)
                let v = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm512_cvtsepi64_epi32(low)),
                    _mm512_cvtsepi64_epi32(high),
                );
                _mm512_mask_storeu_epi32(di.as_mut_ptr(), m, v);
                _mm512_mask_storeu_ps(dg.as_mut_ptr(), m, _mm512_maskz_loadu_ps(m, xg.as_ptr()));
            }
        }
    }
    if slack {
        indices[s.oh * stride..].fill(-1);
        gradients[s.oh * stride..].fill(0.0);
    }
}

/// The gather of one plane (see the module's documentation) into `gx`: input row by input
/// row, 16 columns at a time, from the indices and gradients staged ([`stage_avx512`]) an
/// output row at a time as the input rows come to need them. Returns how many (output, input
/// position) pairs matched: the plane's output count when every index lies in its window.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gather_plane_avx512(
    s: &GatherShape,
    (idx, gy): (&[i64], &[f32]),
    (indices, gradients): (&mut [i32], &mut [f32]),
    gx: &mut [MaybeUninit<f32>],
) -> usize {
    use std::arch::x86_64::*;
    let (h, w, oh) = (s.h, s.w, s.oh);
    let stride = s.staged_stride();
    let (full, rest) = (w / 16, w % 16);
    let vectors = w.div_ceil(16);
    // vector v loads 16 staged values from 8 v on (output columns 8 v − 1 ..)
    assert!(
        s.pad_top <= 1
            && s.pad_left <= 1
            && h * w < i32::MAX as usize
            && gx.len() == h * w
            && indices.len() >= (oh.max(1) - 1) * stride + 8 * vectors + 8
            && gradients.len() >= (oh.max(1) - 1) * stride + 8 * vectors + 8
    );
    let pl = s.pad_left as i32;
    // lane j (column c0 + j) is covered by output column c0 / 2 + (j + pl) / 2 (staged value
    // 8 v + that + 1 − 8 v: `later`) and, j + pl even, the one before (`earlier`)
    let ramp = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let one = _mm512_set1_epi32(1);
    let later = _mm512_add_epi32(
        _mm512_srli_epi32::<1>(_mm512_add_epi32(ramp, _mm512_set1_epi32(pl))),
        one,
    );
    let earlier = _mm512_sub_epi32(later, one);
    let earlier_lanes: __mmask16 = if s.pad_left == 0 { 0x5555 } else { 0xaaaa };
    let tail: __mmask16 = ((1u32 << rest) - 1) as __mmask16;
    let mut matched = _mm512_setzero_si512();
    let dst = gx.as_mut_ptr().cast::<f32>();
    // SAFETY: the caller's (AVX-512F); the function asserts its bounds.
    unsafe { stage_avx512(s, (idx, gy), (&mut *indices, &mut *gradients), 0..0, true) };
    let (len_i, len_g) = (indices.len(), gradients.len());
    // (the staged rows are written through these too, as the rows come to be needed)
    let (ip, gp) = (indices.as_mut_ptr(), gradients.as_mut_ptr());
    // output rows staged
    let mut staged = 0usize;
    // input vector v of row r from the staged rows `$rows` (in output order), lanes `$lanes`
    // (macros, not closures: a closure's intrinsics were compiled outside this function's
    // AVX-512 context)
    macro_rules! vector {
        ($r:expr, $v:expr, $rows:expr, $lanes:expr) => {{
            let (r, v): (usize, usize) = ($r, $v);
            let pos = _mm512_add_epi32(_mm512_set1_epi32((r * w + 16 * v) as i32), ramp);
            let mut acc = _mm512_setzero_ps();
            for o in $rows {
                let at = o * stride + 8 * v;
                // SAFETY: row o < oh of the staged values, 16 from 8 v (asserted above).
                let (i, g) = unsafe {
                    (
                        _mm512_loadu_si512(ip.add(at).cast()),
                        _mm512_loadu_ps(gp.add(at)),
                    )
                };
                let m = _mm512_mask_cmpeq_epi32_mask(
                    $lanes & earlier_lanes,
                    _mm512_permutexvar_epi32(earlier, i),
                    pos,
                );
                acc = _mm512_mask_add_ps(acc, m, acc, _mm512_permutexvar_ps(earlier, g));
                matched = _mm512_mask_add_epi32(matched, m, matched, one);
                let m =
                    _mm512_mask_cmpeq_epi32_mask($lanes, _mm512_permutexvar_epi32(later, i), pos);
                acc = _mm512_mask_add_ps(acc, m, acc, _mm512_permutexvar_ps(later, g));
                matched = _mm512_mask_add_epi32(matched, m, matched, one);
            }
            // SAFETY: row r < h, columns 16 v .. below w (the lanes) of the plane.
            unsafe { _mm512_mask_storeu_ps(dst.add(r * w + 16 * v), $lanes, acc) };
        }};
    }
    macro_rules! row {
        ($r:expr, $rows:expr) => {{
            let (r, rows) = ($r, $rows);
            for v in 0..full {
                vector!(r, v, rows, 0xffff);
            }
            if rest > 0 {
                vector!(r, full, rows, tail);
            }
        }};
    }
    for r in 0..h {
        // the output rows whose windows cover input row r, in order
        let u = r + s.pad_top;
        let later_row = (u / 2 < oh).then_some(u / 2);
        let earlier_row = (u.is_multiple_of(2) && u >= 2 && u / 2 - 1 < oh).then(|| u / 2 - 1);
        // the rows this input row reads and the next ones, staged a row ahead of their first
        // reader: loads that span the staging's stores wait for them to reach the cache (a
        // row staged just before its first use left a third of the time on its first load)
        let need = (u / 2 + 1 + STAGE_AHEAD_ROWS).min(oh);
        if need > staged {
            // SAFETY: as above; `ip` and `gp` point to `len_i` and `len_g` values, and no
            // other reference to them is live while these slices are.
            unsafe {
                let (i, g) = (
                    std::slice::from_raw_parts_mut(ip, len_i),
                    std::slice::from_raw_parts_mut(gp, len_g),
                );
                stage_avx512(s, (idx, gy), (i, g), staged..need, false);
            }
            staged = need;
        }
        match (earlier_row, later_row) {
            (Some(a), Some(b)) => row!(r, [a, b]),
            (Some(o), None) | (None, Some(o)) => row!(r, [o]),
            (None, None) => row!(r, [0usize; 0]),
        }
    }
    _mm512_reduce_add_epi32(matched) as usize
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use crate::{Layout, PoolPlan, Pooling, Window};
    use std::mem::MaybeUninit;

    /// The forward pass's indices all lie in their windows, so the gather itself must take
    /// every plane (a plane it failed would go through the scatter and pass the integration
    /// tests all the same) and give the sums by definition, bit for bit: both paddings, ceil
    /// mode, odd sides, NaN, ±inf and ties in the data.
    #[test]
    fn gathers_forward_indices_without_falling_back() {
        if !super::super::isa::has_avx512() {
            return;
        }
        for (pad, ceil, h, w) in [
            (1, false, 64, 64),
            (0, false, 61, 67),
            (0, true, 61, 67),
            (1, true, 50, 83),
            (1, false, 33, 100),
            (0, true, 46, 46),
        ] {
            let window = Window::new(&[3, 3])
                .stride(&[2, 2])
                .padding(&[pad, pad])
                .ceil_mode(ceil);
            let plan =
                PoolPlan::new(&Pooling::max(window), &[1, 1, h, w], Layout::ChannelsFirst).unwrap();
            let s = super::applies(&plan.geom(), plan.axis_plans().unwrap(), 0)
                .expect("the gather takes the shape");
            // ties (few distinct values), a NaN and ±inf in the input
            let mut x: Vec<f32> = (0..h * w).map(|i| ((i * 7919) % 13) as f32).collect();
            (x[5], x[w + 3], x[h * w / 2]) = (f32::NAN, f32::INFINITY, f32::NEG_INFINITY);
            let (_, idx) = plan.forward_with_indices_to_vec(&x).unwrap();
            let gy: Vec<f32> = (0..idx.len())
                .map(|i| (i as f32 * 0.37).sin() * 3.0)
                .collect();
            let mut want = vec![0f32; h * w];
            for (&i, &g) in idx.iter().zip(&gy) {
                want[i as usize] += g;
            }
            let mut indices = vec![0i32; s.staged_len()];
            let mut gradients = vec![0f32; s.staged_len()];
            let mut gx = vec![MaybeUninit::new(f32::NAN); h * w];
            let taken =
                super::gather_plane(&s, (&idx, &gy), (&mut indices, &mut gradients), &mut gx);
            assert!(
                taken,
                "pad {pad} ceil {ceil} {h}×{w}: an index went unmatched"
            );
            // SAFETY: every value was initialised above.
            let got: Vec<f32> = gx.iter().map(|v| unsafe { v.assume_init() }).collect();
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "pad {pad} ceil {ceil} {h}×{w}");
        }
    }
}
