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
//! **Where it runs.** Where it measured faster than the scatter: gradients from
//! [`GATHER_FROM_BYTES`] (from memory, not cache) that the scatter would not stream through
//! its ring (more than one thread, below the ring's threshold), in memory that is resident
//! already (see `kernels::max_backward`). resnet_stem_max_bwd nchw at 2 threads
//! (`PROBE_BWD=1 RAYON_NUM_THREADS=2 PROBE_N=8 plane_probe 64 112 112 3 2 1`, ms, the
//! scatter against the gather, alternating, four rounds): into a buffer 0.66–0.70 → 0.61–0.65,
//! allocating 0.67–0.78 → 0.54–0.63. On gradients in cache the scatter was the faster
//! (`PROBE_N=1..4`: 0.12 → 0.13 ms .. 0.55 → 0.56 at 1 thread), and so were the ring (its
//! streaming stores write lines without reading them: vgg_max_224_bwd 5.5 against 8.9 ms)
//! and the scatter on fresh pages (9.5 against 11.7 ms); 2×2 windows on small planes took
//! 3× the scatter's time (`512 14 14 2 2 0`: 0.13 → 0.42 ms), the per-plane work dominating.
//! Streaming the gather's rows out from a staging plane was slower still (12.3 ms on
//! vgg_max_224_bwd, bursts of 4 KiB; whole planes 9.1).

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

/// Bytes past the output gradients being read that are prefetched (see
/// [`INDEX_PREFETCH_AHEAD`]; the gradients are half the bytes of the indices).
#[cfg(target_arch = "x86_64")]
const GRADIENT_PREFETCH_AHEAD: usize = 2048;

/// The smallest input gradient (bytes) the gather takes: on gradients in cache the scatter
/// was the faster (see the module's documentation).
const GATHER_FROM_BYTES: usize = super::PREFETCH_FROM_BYTES;

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
/// sliding windows of 3 at stride 2, padded by at most 1, from [`GATHER_FROM_BYTES`] of input
/// gradient (`bytes`).
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
            .is_some_and(|n| n > 0 && n < i32::MAX as usize)
        && bytes >= GATHER_FROM_BYTES;
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
        let need = (u / 2 + 1).min(oh);
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
