//! f16/bf16 ⇄ f32 slice conversions for the half-precision paths (the forward through the f32
//! kernels, the planewise backward).
//!
//! `half`'s slice conversions take F16C, but call a function per 8 values through a closure:
//! on cache-resident parts (`PROBE_DTYPE=f16 PROBE_N=8 plane_probe 192 28 28 3 1 1 avg`) they
//! took 35 % of the f16 forward. These loops convert 16 values an instruction at the AVX-512
//! level (8 with F16C); bf16 is a shift up, and down with `half`'s rounding rule, in loops
//! the compiler vectorises. Results are the bits `half` gives: round to nearest even, NaN
//! kept NaN.

use super::isa::Isa;
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// `dst[i] = src[i]` as f32 (exact).
pub(crate) fn widen_f16(isa: Isa, src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512 {
            // SAFETY: `Isa::Avx512` is chosen only where AVX-512F was detected.
            return unsafe { x86::widen_f16_avx512(src, dst) };
        }
        if isa == Isa::Avx2 && std::arch::is_x86_feature_detected!("f16c") {
            // SAFETY: AVX and F16C were detected (`Isa::Avx2` implies AVX2).
            return unsafe { x86::widen_f16_f16c(src, dst) };
        }
    }
    let _ = isa;
    src.convert_to_f32_slice(dst);
}

/// `dst[i] = src[i]` rounded to the nearest f16 (ties to even).
pub(crate) fn narrow_f16(isa: Isa, src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512 {
            // SAFETY: `Isa::Avx512` is chosen only where AVX-512F was detected.
            return unsafe { x86::narrow_f16_avx512(src, dst) };
        }
        if isa == Isa::Avx2 && std::arch::is_x86_feature_detected!("f16c") {
            // SAFETY: AVX and F16C were detected (`Isa::Avx2` implies AVX2).
            return unsafe { x86::narrow_f16_f16c(src, dst) };
        }
    }
    let _ = isa;
    dst.convert_from_f32_slice(src);
}

/// `dst[i] = src[i]` as f32 (exact: the bits moved up).
pub(crate) fn widen_bf16(isa: Isa, src: &[bf16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `Isa::Avx512` is chosen only where AVX-512F and BW were detected.
        return unsafe { x86::widen_bf16_avx512(src, dst) };
    }
    let _ = isa;
    widen_bf16_body(src, dst);
}

#[inline(always)]
fn widen_bf16_body(src: &[bf16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits(u32::from(s.to_bits()) << 16);
    }
}

/// `dst[i] = src[i]` rounded to the nearest bf16 (ties to even; a NaN stays NaN, quiet), as
/// `bf16::from_f32`.
pub(crate) fn narrow_bf16(isa: Isa, src: &[f32], dst: &mut [bf16]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `Isa::Avx512` is chosen only where AVX-512F and BW were detected.
        return unsafe { x86::narrow_bf16_avx512(src, dst) };
    }
    let _ = isa;
    narrow_bf16_body(src, dst);
}

#[inline(always)]
fn narrow_bf16_body(src: &[f32], dst: &mut [bf16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        let x = s.to_bits();
        let nan = x & 0x7fff_ffff > 0x7f80_0000;
        // adding 0x7fff and the kept part's lowest bit carries into it exactly when the
        // dropped half is above one half, or one half and the kept part odd
        let rounded = x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16;
        let bits = if nan { (x >> 16) | 0x40 } else { rounded };
        *d = bf16::from_bits(bits as u16);
    }
}

/// `y[i] = y[i] / d[i]`, or `y[i] / d` for one divisor `[d]`, in f32; a divisor of 0 gives 0
/// (the reference's rule for a window without input elements).
pub(crate) fn divide(isa: Isa, y: &mut [f32], d: &[f32]) {
    assert!(d.len() == 1 || d.len() >= y.len());
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `Isa::Avx512` is chosen only where AVX-512F was detected.
        return unsafe { x86::divide_avx512(y, d) };
    }
    let _ = isa;
    divide_body(y, d);
}

#[inline(always)]
fn divide_body(y: &mut [f32], d: &[f32]) {
    // a select, not a branch: the loops vectorise
    let quotient = |s: f32, d: f32| {
        let q = s / d;
        if d == 0.0 {
            0.0
        } else {
            q
        }
    };
    match d {
        [d] => y.iter_mut().for_each(|v| *v = quotient(*v, *d)),
        _ => y.iter_mut().zip(d).for_each(|(v, &d)| *v = quotient(*v, d)),
    }
}

/// The rows of the average backward's tap adds (see [`add_taps_rounded_f16`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Taps {
    /// Rows, `row_step` apart, each `span` elements.
    pub rows: usize,
    pub row_step: usize,
    pub span: usize,
    /// Taps per row, `dilation` apart.
    pub k: usize,
    pub dilation: usize,
}

impl Taps {
    /// Whether `acc` and `d` hold every element the adds touch.
    fn fit(&self, acc: &[f32], d: &[f32]) -> bool {
        self.k >= 1
            && self.rows >= 1
            && acc.len() >= (self.rows - 1) * self.row_step + self.span
            && d.len() >= self.span + (self.k - 1) * self.dilation
    }
}

/// In each row `r` of `acc`: `acc[r·row_step + x] = f16(acc[r·row_step + x] + d[x + m −
/// kw·dilation])` as f32 for `kw` from `k − 1` down to 0, `m = (k − 1)·dilation`, each sum
/// rounded (PyTorch's `+=` on an f16 gradient; the values of `acc` are f16 values): the
/// taps of the input rows one output row reaches, in the average backward. At the AVX-512
/// level each 16 elements of a row are loaded and stored once, the rows' rounding chains
/// side by side.
pub(crate) fn add_taps_rounded_f16(isa: Isa, acc: &mut [f32], d: &[f32], taps: Taps) {
    assert!(taps.fit(acc, d));
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `Isa::Avx512` is chosen only where AVX-512F was detected; sizes asserted.
        return unsafe { x86::add_taps_rounded_avx512::<false>(acc, d, taps) };
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 && std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: AVX and F16C were detected (`Isa::Avx2` implies AVX2); sizes asserted.
        return unsafe { x86::add_taps_rounded_f16c(acc, d, taps) };
    }
    let _ = isa;
    add_taps_body(acc, d, taps, |s| f16::from_f32(s).to_f32());
}

/// [`add_taps_rounded_f16`] for bf16.
pub(crate) fn add_taps_rounded_bf16(isa: Isa, acc: &mut [f32], d: &[f32], taps: Taps) {
    assert!(taps.fit(acc, d));
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `Isa::Avx512` is chosen only where AVX-512F was detected; sizes asserted.
        return unsafe { x86::add_taps_rounded_avx512::<true>(acc, d, taps) };
    }
    let _ = isa;
    add_taps_body(acc, d, taps, |s| bf16::from_f32(s).to_f32());
}

fn add_taps_body(acc: &mut [f32], d: &[f32], t: Taps, round: impl Fn(f32) -> f32) {
    let m = (t.k - 1) * t.dilation;
    for r in 0..t.rows {
        for (x, a) in acc[r * t.row_step..][..t.span].iter_mut().enumerate() {
            let mut v = *a;
            for kw in (0..t.k).rev() {
                v = round(v + d[x + m - kw * t.dilation]);
            }
            *a = v;
        }
    }
}

/// `v[i] = f16(v[i])` as f32 (each value rounded to f16).
pub(crate) fn round_f16(isa: Isa, v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `Isa::Avx512` is chosen only where AVX-512F was detected.
        return unsafe { x86::round_f16_avx512(v) };
    }
    let _ = isa;
    for x in v {
        *x = f16::from_f32(*x).to_f32();
    }
}

/// `v[i] = bf16(v[i])` as f32 (each value rounded to bf16).
pub(crate) fn round_bf16(v: &mut [f32]) {
    for x in v {
        *x = bf16::from_f32(*x).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    /// How far ahead of its reads a widening loop prefetches. The half-precision forward
    /// widens its input part by part, each part then pooled from the core's cache: between
    /// parts the hardware prefetcher loses the stream, and each part's first reads waited on
    /// memory. Prefetching past the part's end starts the next one's lines during the pooling.
    /// `PROBE_DTYPE=f16 RAYON_NUM_THREADS=1 PROBE_N=8 plane_probe 64 224 224 2 2 0`, ms per
    /// call, two rounds alternating with the build before: 5.14–5.20 → 3.83–3.90.
    const PREFETCH_AHEAD_BYTES: usize = 4096;

    /// Prefetches the line `PREFETCH_AHEAD_BYTES` past `p` into the L1 cache.
    #[inline(always)]
    fn prefetch_ahead<T>(p: *const T) {
        let ahead = p.cast::<i8>().wrapping_add(PREFETCH_AHEAD_BYTES);
        // SAFETY: a prefetch reads nothing and cannot fault, whatever the address (past the
        // end of the source included); SSE, which it needs, is part of x86-64.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead) }
    }

    /// The lanes below `n` of a 16-lane block.
    #[inline(always)]
    fn lanes_below(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            (1 << n) - 1
        }
    }

    /// [`super::add_taps_rounded_f16`] (`BF16`: the bf16 rounding, on the bits).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `taps.fit(acc, d)`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_taps_rounded_avx512<const BF16: bool>(
        acc: &mut [f32],
        d: &[f32],
        t: super::Taps,
    ) {
        let m = (t.k - 1) * t.dilation;
        let mut x = 0;
        while x < t.span {
            // the rows are short (a plane's width): the tail masked, not a scalar loop
            let mask = lanes_below(t.span - x);
            for r in 0..t.rows {
                let at = r * t.row_step + x;
                // SAFETY: the mask enables elements x .. min(x + 16, span) of row r, inside
                // `acc` ((rows − 1)·row_step + span ≤ acc.len()), and of `d` from
                // x + m − kw·dilation ≤ x + m on, below span + m ≤ d.len() (masked-off lanes
                // are not accessed).
                unsafe {
                    let mut v = _mm512_maskz_loadu_ps(mask, acc.as_ptr().add(at));
                    for kw in (0..t.k).rev() {
                        let tap = d.as_ptr().add(x + m - kw * t.dilation);
                        v = round::<BF16>(_mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, tap)));
                    }
                    _mm512_mask_storeu_ps(acc.as_mut_ptr().add(at), mask, v);
                }
            }
            x += 16;
        }
    }

    /// [`super::add_taps_rounded_f16`] with F16C: 8 elements of a row at a time, the row's
    /// tail one by one.
    ///
    /// # Safety
    /// The CPU must support AVX and F16C; `taps.fit(acc, d)`.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn add_taps_rounded_f16c(acc: &mut [f32], d: &[f32], t: super::Taps) {
        let m = (t.k - 1) * t.dilation;
        let whole = t.span / 8 * 8;
        for r in 0..t.rows {
            let row = &mut acc[r * t.row_step..][..t.span];
            for x in (0..whole).step_by(8) {
                // SAFETY: elements x .. x + 8 ≤ span of the row, and of `d` from
                // x + m − kw·dilation on, below span + m ≤ d.len() (asserted by the caller).
                unsafe {
                    let mut v = _mm256_loadu_ps(row.as_ptr().add(x));
                    for kw in (0..t.k).rev() {
                        let tap = _mm256_loadu_ps(d.as_ptr().add(x + m - kw * t.dilation));
                        let s = _mm256_add_ps(v, tap);
                        v = _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(s));
                    }
                    _mm256_storeu_ps(row.as_mut_ptr().add(x), v);
                }
            }
            for (x, a) in row.iter_mut().enumerate().skip(whole) {
                for kw in (0..t.k).rev() {
                    *a = f16::from_f32(*a + d[x + m - kw * t.dilation]).to_f32();
                }
            }
        }
    }

    /// `s` rounded to f16 (`BF16`: bf16) to nearest, ties to even, as f32; a NaN stays NaN.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn round<const BF16: bool>(s: __m512) -> __m512 {
        if BF16 {
            // the top 16 bits rounded on the integer bits; a NaN kept as it is
            let b = _mm512_castps_si512(s);
            let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
            let up = _mm512_add_epi32(b, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
            let r = _mm512_and_si512(up, _mm512_set1_epi32(0xffff_0000u32 as i32));
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(s, s);
            _mm512_mask_blend_ps(nan, _mm512_castsi512_ps(r), s)
        } else {
            _mm512_cvtph_ps(_mm512_cvtps_ph::<NEAREST>(s))
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn round_f16_avx512(v: &mut [f32]) {
        let n = v.len();
        let mut x = 0;
        while x < n {
            let mask = lanes_below(n - x);
            // SAFETY: the mask enables elements x .. min(x + 16, n) only.
            unsafe {
                let a = _mm512_maskz_loadu_ps(mask, v.as_ptr().add(x));
                let r = _mm512_cvtph_ps(_mm512_cvtps_ph::<NEAREST>(a));
                _mm512_mask_storeu_ps(v.as_mut_ptr().add(x), mask, r);
            }
            x += 16;
        }
    }

    /// [`super::widen_bf16_body`] compiled for AVX-512.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn widen_bf16_avx512(src: &[half::bf16], dst: &mut [f32]) {
        // a 64-byte line of the source at a time
        for (s, d) in src.chunks(32).zip(dst.chunks_mut(32)) {
            prefetch_ahead(s.as_ptr());
            super::widen_bf16_body(s, d);
        }
    }

    /// [`super::narrow_bf16_body`] compiled for AVX-512.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn narrow_bf16_avx512(src: &[f32], dst: &mut [half::bf16]) {
        super::narrow_bf16_body(src, dst);
    }

    /// [`super::divide_body`] compiled for AVX-512 (16 quotients an instruction).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn divide_avx512(y: &mut [f32], d: &[f32]) {
        super::divide_body(y, d);
    }

    use half::f16;
    use std::arch::x86_64::*;

    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

    /// `dst[i] = convert(src[i])`: `$block` on each whole block of `$n` values (`$s` the
    /// source block, `$d` the destination block), `$one` on each value of the tail (`$x`).
    macro_rules! in_blocks {
        ($src:expr, $dst:expr, $n:literal, |$s:ident, $d:ident| $block:expr, |$x:ident| $one:expr) => {{
            let mut s = $src.chunks_exact($n);
            let mut d = $dst.chunks_exact_mut($n);
            for ($s, $d) in (&mut s).zip(&mut d) {
                // SAFETY: `$s` holds `$n` source values and `$d` `$n` destination values, the
                // block's loads and stores reach no further (unaligned accesses).
                unsafe { $block }
            }
            for (d, $x) in d.into_remainder().iter_mut().zip(s.remainder()) {
                *d = $one;
            }
        }};
    }

    /// # Safety
    /// The CPU must support AVX-512F; `dst.len() == src.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn widen_f16_avx512(src: &[f16], dst: &mut [f32]) {
        in_blocks!(
            src,
            dst,
            16,
            |s, d| {
                prefetch_ahead(s.as_ptr());
                let h = _mm256_loadu_si256(s.as_ptr().cast());
                _mm512_storeu_ps(d.as_mut_ptr(), _mm512_cvtph_ps(h))
            },
            |x| x.to_f32()
        );
    }

    /// # Safety
    /// The CPU must support AVX-512F; `dst.len() == src.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn narrow_f16_avx512(src: &[f32], dst: &mut [f16]) {
        in_blocks!(
            src,
            dst,
            16,
            |s, d| {
                let h = _mm512_cvtps_ph::<NEAREST>(_mm512_loadu_ps(s.as_ptr()));
                _mm256_storeu_si256(d.as_mut_ptr().cast(), h)
            },
            |x| f16::from_f32(*x)
        );
    }

    /// # Safety
    /// The CPU must support AVX and F16C; `dst.len() == src.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn widen_f16_f16c(src: &[f16], dst: &mut [f32]) {
        in_blocks!(
            src,
            dst,
            8,
            |s, d| {
                // (one prefetch a 64-byte line: every other block)
                if s.as_ptr() as usize % 64 < 16 {
                    prefetch_ahead(s.as_ptr());
                }
                let h = _mm_loadu_si128(s.as_ptr().cast());
                _mm256_storeu_ps(d.as_mut_ptr(), _mm256_cvtph_ps(h))
            },
            |x| x.to_f32()
        );
    }

    /// # Safety
    /// The CPU must support AVX and F16C; `dst.len() == src.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn narrow_f16_f16c(src: &[f32], dst: &mut [f16]) {
        in_blocks!(
            src,
            dst,
            8,
            |s, d| {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(s.as_ptr()));
                _mm_storeu_si128(d.as_mut_ptr().cast(), h)
            },
            |x| f16::from_f32(*x)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tap adds give `half`'s rounding of each f32 sum, in the taps' order, at every
    /// level, over sums near every f16 value (ties, subnormals, overflow to ±inf, NaN), for
    /// one tap and for several, dilated; the plain roundings likewise.
    #[test]
    fn tap_adds_round_each_sum_as_half() {
        use super::super::isa::clamp_to_available;
        let mut acc = Vec::new();
        let mut d = Vec::new();
        for bits in 0..=u16::MAX {
            let h = f16::from_bits(bits).to_f32();
            let step = h.abs() * 2f32.powi(-11);
            // the addends: half an f16 step (ties), a little more or less, tiny, large
            for v in [step, step * 1.001, step * 0.999, -step, 2f32.powi(-25), 1e4] {
                acc.push(h);
                d.push(v);
            }
        }
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512].map(clamp_to_available) {
            for (k, dilation) in [(1, 1), (3, 1), (2, 3)] {
                // three rows of 37 (two vectors and a tail), 40 apart, per block of the data
                let m = (k - 1) * dilation;
                let t = Taps {
                    rows: 3,
                    row_step: 40,
                    span: 37,
                    k,
                    dilation,
                };
                for (a, d) in acc.chunks_exact(120).zip(d.chunks_exact(37 + m)) {
                    let model = |round: &dyn Fn(f32) -> f32| -> Vec<f32> {
                        let mut want = a.to_vec();
                        for r in 0..3 {
                            for x in 0..37 {
                                want[r * 40 + x] = (0..k).rev().fold(want[r * 40 + x], |v, kw| {
                                    round(v + d[x + m - kw * dilation])
                                });
                            }
                        }
                        want
                    };
                    let mut got = a.to_vec();
                    add_taps_rounded_f16(isa, &mut got, d, t);
                    let want = model(&|s| f16::from_f32(s).to_f32());
                    assert!(
                        want.iter().zip(&got).all(|(w, g)| same(*w, *g)),
                        "{isa:?} f16 {t:?}"
                    );
                    let mut got = a.to_vec();
                    add_taps_rounded_bf16(isa, &mut got, d, t);
                    let want = model(&|s| bf16::from_f32(s).to_f32());
                    assert!(
                        want.iter().zip(&got).all(|(w, g)| same(*w, *g)),
                        "{isa:?} bf16 {t:?}"
                    );
                }
            }
            let sums: Vec<f32> = acc.iter().zip(&d).map(|(a, v)| a + v).collect();
            let mut got = sums.clone();
            round_f16(isa, &mut got);
            assert!(sums
                .iter()
                .zip(&got)
                .all(|(s, g)| same(f16::from_f32(*s).to_f32(), *g)));
            let mut got = sums.clone();
            round_bf16(&mut got);
            assert!(sums
                .iter()
                .zip(&got)
                .all(|(s, g)| same(bf16::from_f32(*s).to_f32(), *g)));
        }
    }

    /// Every f16 and bf16 bit pattern widens to `half`'s f32, and f32 values around every
    /// rounding boundary (each pattern widened, and one f32 ulp either side, and the
    /// midpoints to the next pattern) narrow to `half`'s bits (NaN: any NaN).
    #[test]
    fn conversions_give_halfs_bits() {
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        use super::super::isa::clamp_to_available;
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512].map(clamp_to_available) {
            let h: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
            let b: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
            let mut wide = vec![0f32; h.len()];
            widen_f16(isa, &h, &mut wide);
            assert!(h.iter().zip(&wide).all(|(h, w)| same(h.to_f32(), *w)));
            widen_bf16(isa, &b, &mut wide);
            assert!(b.iter().zip(&wide).all(|(b, w)| same(b.to_f32(), *w)));
            let mut probes = Vec::new();
            for bits in 0..=u16::MAX {
                for v in [
                    f16::from_bits(bits).to_f32(),
                    bf16::from_bits(bits).to_f32(),
                ] {
                    let next = f32::from_bits(v.to_bits().wrapping_add(1 << 13));
                    probes.extend([
                        v,
                        f32::from_bits(v.to_bits().wrapping_add(1)),
                        f32::from_bits(v.to_bits().wrapping_sub(1)),
                        (v + next) / 2.0,
                        f32::from_bits(v.to_bits().wrapping_add(1 << 15)),
                        f32::from_bits(v.to_bits().wrapping_add(1 << 12)),
                    ]);
                }
            }
            let mut hs = vec![f16::ZERO; probes.len()];
            narrow_f16(isa, &probes, &mut hs);
            for (p, h) in probes.iter().zip(&hs) {
                assert!(
                    same(f16::from_f32(*p).to_f32(), h.to_f32()),
                    "{isa:?} f16 of {p:e}"
                );
            }
            let mut bs = vec![bf16::ZERO; probes.len()];
            narrow_bf16(isa, &probes, &mut bs);
            for (p, b) in probes.iter().zip(&bs) {
                let want = bf16::from_f32(*p);
                assert!(
                    want.to_bits() == b.to_bits() || (want.is_nan() && b.is_nan()),
                    "bf16 of {p:e}"
                );
            }
        }
    }
}
