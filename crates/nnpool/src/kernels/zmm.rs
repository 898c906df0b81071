//! 512-bit vectors of f32 (16 lanes) or f64 (8 lanes) behind one trait, so that an AVX-512
//! kernel whose steps are the same for both element types (masked row loads, lane shifts,
//! even/odd splits, the max and sum folds) is written once: the fused channels-first strips
//! of `x86.rs` (`k3s2_strip`, `ks1_strip`), its depth fold (`fold_planes`), the 2×2
//! stride-2 row pairs of `pairs.rs` (`pairs_narrow`, `pairs_rows`, `pairs_stream`), the
//! channels-last window folded from
//! its taps (`cl_pixel`), the channels-last 3×3 stride-1 row pairs (`cl_rows2_k3`) and 2×2
//! stride-2 rows (`cl_row_k2s2`), the channels-last max with indices (`cl_pixel_indices`),
//! and the NaN/±inf check (`any_nan_or_inf_avx512`).
//!
//! A value of a [`Zmm`] type is a token: it exists only where AVX-512F was detected
//! ([`Zmm::new`] is `unsafe`), so its arithmetic methods are safe to call. Every method is
//! `#[inline(always)]`: inlined into a kernel compiled with the `avx512f` target feature, the
//! intrinsics it calls are inlined there too (a method left as a call would run outside that
//! context).

use super::window::FastFloat;
use std::arch::x86_64::*;
use std::ops::{BitOr, BitOrAssign};

/// One 512-bit vector type and its lane mask (see the module's documentation).
pub(crate) trait Zmm: Copy + 'static {
    /// The element type.
    type E: FastFloat;
    /// A vector of [`Zmm::N`] elements.
    type V: Copy;
    /// One bit per lane, bit `l` for lane `l`.
    type M: Copy + PartialEq + Default + BitOr<Output = Self::M> + BitOrAssign;
    /// Lanes per vector.
    const N: usize;
    /// Every lane.
    const ALL: Self::M;
    const NEG_INFINITY: Self::E;
    const ONE: Self::E;

    /// The token.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    unsafe fn new() -> Self;
    fn splat(self, v: Self::E) -> Self::V;
    fn zero(self) -> Self::V;
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b + c`, rounded once.
    fn fmadd(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `vmaxps`/`vmaxpd`: per lane `a > b ? a : b` (`b` when either is NaN or both are zero).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// The lanes where `x > acc` or `x` is NaN.
    fn greater_or_nan(self, x: Self::V, acc: Self::V) -> Self::M;
    /// The lanes where `x > acc` (none where either is NaN).
    fn greater(self, x: Self::V, acc: Self::V) -> Self::M;
    /// The lanes where `a` or `b` is NaN.
    fn unordered(self, a: Self::V, b: Self::V) -> Self::M;
    /// `acc` with lanes `m` taken from `x`.
    fn select(self, acc: Self::V, m: Self::M, x: Self::V) -> Self::V;
    /// Lane `l` of the result is lane `l + s` of the vectors `before`, `at`, `after` laid end
    /// to end (`at` in the middle), for `−N < s < N` (`before` is read for `s < 0` only,
    /// `after` for `s > 0` only).
    fn shifted(self, before: Self::V, at: Self::V, after: Self::V, s: isize) -> Self::V;
    /// The even lanes of `a` then of `b` (lanes `0, 2, ..` of the `2 N` values `a`, `b`).
    fn even(self, a: Self::V, b: Self::V) -> Self::V;
    /// The odd lanes of `a` then of `b`.
    fn odd(self, a: Self::V, b: Self::V) -> Self::V;
    /// The lanes below `n` (all from `n >= N` on).
    fn lanes_below(n: usize) -> Self::M;
    /// The lanes from `lo` up to below `hi` (none when `hi <= lo`; both clipped to `N`).
    fn lanes_between(lo: usize, hi: usize) -> Self::M;
    /// Lane `l` of the result is lane `idx[l]` of `a` and `b` laid end to end (indices below
    /// `2 N`, as [`Zmm::index_ramp`] makes them): with `index_ramp(s, 1)`, the lanes `l + s`
    /// (a lane shift by a count known only at run time).
    fn permute2(self, a: Self::V, idx: __m512i, b: Self::V) -> Self::V;
    /// Per 64-bit lane, the larger of `top` and the magnitudes of `v`'s values as unsigned
    /// integers (their bits without the sign): folded over the values of a plane, with
    /// [`Zmm::any_nan_or_inf`] it tells whether any is NaN or ±inf, one integer max per
    /// vector (NaN and ±inf have the largest magnitudes).
    fn magnitude_max(self, top: __m512i, v: Self::V) -> __m512i;
    /// Whether `top` (from [`Zmm::magnitude_max`], starting from zero) holds the magnitude
    /// of a NaN or an infinity.
    fn any_nan_or_inf(self, top: __m512i) -> bool;
    /// Per lane, the larger of two [`Zmm::magnitude_max`] results.
    fn max_magnitudes(self, a: __m512i, b: __m512i) -> __m512i;
    /// The vector at `p`.
    ///
    /// # Safety
    /// `p .. p + N` is valid for reads.
    unsafe fn load(self, p: *const Self::E) -> Self::V;
    /// `v` stored at `p`.
    ///
    /// # Safety
    /// `p .. p + N` is valid for writes.
    unsafe fn store(self, p: *mut Self::E, v: Self::V);
    /// `v` stored at `p` by a streaming store, which writes the line without reading it first
    /// (weakly ordered: the writer fences before others may read it).
    ///
    /// # Safety
    /// `p .. p + N` is valid for writes and `p` is 64-byte aligned.
    unsafe fn stream(self, p: *mut Self::E, v: Self::V);
    /// Lanes `m` loaded from `p`, the others from `src`.
    ///
    /// # Safety
    /// Lanes `m` of `p ..` are valid for reads (the others are not read).
    unsafe fn load_masked(self, src: Self::V, m: Self::M, p: *const Self::E) -> Self::V;
    /// Lanes `m` loaded from `p`, the others zero.
    ///
    /// # Safety
    /// As [`Zmm::load_masked`].
    unsafe fn load_masked_zero(self, m: Self::M, p: *const Self::E) -> Self::V;
    /// Lanes `m` of `v` stored at `p ..`.
    ///
    /// # Safety
    /// Lanes `m` of `p ..` are valid for writes (the others are not written).
    unsafe fn store_masked(self, p: *mut Self::E, m: Self::M, v: Self::V);
    /// Every lane the index `i` (a vector of [`Zmm::N`] indices: 32-bit lanes for f32, 64-bit
    /// for f64).
    fn splat_index(self, i: i32) -> __m512i;
    /// `acc` with lanes `m` taken from `x` (indices).
    fn select_index(self, acc: __m512i, m: Self::M, x: __m512i) -> __m512i;
    /// Lane `l` the index `start + step * l`.
    fn index_ramp(self, start: i32, step: i32) -> __m512i;
    /// Per lane `a + b` (indices).
    fn add_index(self, a: __m512i, b: __m512i) -> __m512i;
    /// Per lane the larger of `a` and `b` (indices, signed).
    fn max_index(self, a: __m512i, b: __m512i) -> __m512i;
    /// Lanes `m` of the indices `v` stored at `p ..` as 64-bit integers.
    ///
    /// # Safety
    /// Lanes `m` of `p ..` are valid for writes (the others are not written).
    unsafe fn store_indices_masked(self, p: *mut i64, m: Self::M, v: __m512i);
    /// Lanes `m` of the [`Zmm::N`] 64-bit indices at `from` copied to `to ..`.
    ///
    /// # Safety
    /// `from .. from + N` is valid for reads, lanes `m` of `to ..` for writes.
    unsafe fn copy_indices_masked(self, to: *mut i64, m: Self::M, from: *const i64);
}

/// f32, 16 lanes.
#[derive(Clone, Copy)]
pub(crate) struct F32x16(());

/// f64, 8 lanes.
#[derive(Clone, Copy)]
pub(crate) struct F64x8(());

impl Zmm for F32x16 {
    type E = f32;
    type V = __m512;
    type M = __mmask16;
    const N: usize = 16;
    const ALL: __mmask16 = 0xFFFF;
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    const ONE: f32 = 1.0;

    #[inline(always)]
    unsafe fn new() -> Self {
        F32x16(())
    }
    // SAFETY (every `unsafe` block of the arithmetic below): `self` exists only where
    // AVX-512F was detected (`new`'s contract); these intrinsics touch no memory.
    #[inline(always)]
    fn splat(self, v: f32) -> __m512 {
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    fn zero(self) -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn fmadd(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn greater_or_nan(self, x: __m512, acc: __m512) -> __mmask16 {
        unsafe {
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, acc) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x)
        }
    }
    #[inline(always)]
    fn greater(self, x: __m512, acc: __m512) -> __mmask16 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, acc) }
    }
    #[inline(always)]
    fn unordered(self, a: __m512, b: __m512) -> __mmask16 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b) }
    }
    #[inline(always)]
    fn select(self, acc: __m512, m: __mmask16, x: __m512) -> __m512 {
        unsafe { _mm512_mask_mov_ps(acc, m, x) }
    }
    #[inline(always)]
    fn shifted(self, before: __m512, at: __m512, after: __m512, s: isize) -> __m512 {
        unsafe {
            let (b, a, n) = (
                _mm512_castps_si512(before),
                _mm512_castps_si512(at),
                _mm512_castps_si512(after),
            );
            _mm512_castsi512_ps(match s {
                -3 => _mm512_alignr_epi32::<13>(a, b),
                -2 => _mm512_alignr_epi32::<14>(a, b),
                -1 => _mm512_alignr_epi32::<15>(a, b),
                0 => a,
                1 => _mm512_alignr_epi32::<1>(n, a),
                2 => _mm512_alignr_epi32::<2>(n, a),
                3 => _mm512_alignr_epi32::<3>(n, a),
                4 => _mm512_alignr_epi32::<4>(n, a),
                5 => _mm512_alignr_epi32::<5>(n, a),
                6 => _mm512_alignr_epi32::<6>(n, a),
                _ => unreachable!("lane shifts of −3 ..= 6 only"),
            })
        }
    }
    #[inline(always)]
    fn even(self, a: __m512, b: __m512) -> __m512 {
        unsafe {
            let idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            _mm512_permutex2var_ps(a, idx, b)
        }
    }
    #[inline(always)]
    fn odd(self, a: __m512, b: __m512) -> __m512 {
        unsafe {
            let idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            _mm512_permutex2var_ps(a, idx, b)
        }
    }
    #[inline(always)]
    fn lanes_below(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }
    #[inline(always)]
    fn lanes_between(lo: usize, hi: usize) -> __mmask16 {
        Self::lanes_below(hi) & !Self::lanes_below(lo)
    }
    #[inline(always)]
    fn permute2(self, a: __m512, idx: __m512i, b: __m512) -> __m512 {
        unsafe { _mm512_permutex2var_ps(a, idx, b) }
    }
    #[inline(always)]
    fn magnitude_max(self, top: __m512i, v: __m512) -> __m512i {
        unsafe {
            let magnitude = _mm512_set1_epi32(0x7fff_ffff);
            _mm512_max_epu32(top, _mm512_and_si512(_mm512_castps_si512(v), magnitude))
        }
    }
    #[inline(always)]
    fn any_nan_or_inf(self, top: __m512i) -> bool {
        unsafe { _mm512_cmpge_epu32_mask(top, _mm512_set1_epi32(0x7f80_0000)) != 0 }
    }
    #[inline(always)]
    fn max_magnitudes(self, a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_max_epu32(a, b) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        // SAFETY: AVX-512F (the token); `p ..` readable (the caller's).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        // SAFETY: AVX-512F (the token); `p ..` writable (the caller's).
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn stream(self, p: *mut f32, v: __m512) {
        // SAFETY: AVX-512F (the token); `p ..` writable and 64-byte aligned (the caller's).
        unsafe { _mm512_stream_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_masked(self, src: __m512, m: __mmask16, p: *const f32) -> __m512 {
        // SAFETY: AVX-512F (the token); lanes `m` readable (the caller's).
        unsafe { _mm512_mask_loadu_ps(src, m, p) }
    }
    #[inline(always)]
    unsafe fn load_masked_zero(self, m: __mmask16, p: *const f32) -> __m512 {
        // SAFETY: as `load_masked`.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store_masked(self, p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: AVX-512F (the token); lanes `m` writable (the caller's).
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    fn splat_index(self, i: i32) -> __m512i {
        unsafe { _mm512_set1_epi32(i) }
    }
    #[inline(always)]
    fn select_index(self, acc: __m512i, m: __mmask16, x: __m512i) -> __m512i {
        unsafe { _mm512_mask_mov_epi32(acc, m, x) }
    }
    #[inline(always)]
    fn index_ramp(self, start: i32, step: i32) -> __m512i {
        let at = |l: i32| start.wrapping_add(step.wrapping_mul(l));
        unsafe {
            _mm512_setr_epi32(
                at(0),
                at(1),
                at(2),
                at(3),
                at(4),
                at(5),
                at(6),
                at(7),
                at(8),
                at(9),
                at(10),
                at(11),
                at(12),
                at(13),
                at(14),
                at(15),
            )
        }
    }
    #[inline(always)]
    fn add_index(self, a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_add_epi32(a, b) }
    }
    #[inline(always)]
    fn max_index(self, a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_max_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn store_indices_masked(self, p: *mut i64, m: __mmask16, v: __m512i) {
        // SAFETY: AVX-512F (the token); lanes `m` writable (the caller's): the low 8 lanes
        // widened to `p ..`, the high 8 to `p + 8 ..`, each through its half of the mask.
        unsafe {
            let low = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
            let high = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(v));
            _mm512_mask_storeu_epi64(p, m as u8, low);
            _mm512_mask_storeu_epi64(p.wrapping_add(8), (m >> 8) as u8, high);
        }
    }
    #[inline(always)]
    unsafe fn copy_indices_masked(self, to: *mut i64, m: __mmask16, from: *const i64) {
        // SAFETY: AVX-512F (the token); 16 indices readable at `from`, lanes `m` of `to ..`
        // writable (the caller's): each half through its half of the mask.
        unsafe {
            let (low, high) = (
                _mm512_loadu_si512(from.cast()),
                _mm512_loadu_si512(from.add(8).cast()),
            );
            _mm512_mask_storeu_epi64(to, m as u8, low);
            _mm512_mask_storeu_epi64(to.wrapping_add(8), (m >> 8) as u8, high);
        }
    }
}

impl Zmm for F64x8 {
    type E = f64;
    type V = __m512d;
    type M = __mmask8;
    const N: usize = 8;
    const ALL: __mmask8 = 0xFF;
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    const ONE: f64 = 1.0;

    #[inline(always)]
    unsafe fn new() -> Self {
        F64x8(())
    }
    // SAFETY (every `unsafe` block of the arithmetic below): as for `F32x16`.
    #[inline(always)]
    fn splat(self, v: f64) -> __m512d {
        unsafe { _mm512_set1_pd(v) }
    }
    #[inline(always)]
    fn zero(self) -> __m512d {
        unsafe { _mm512_setzero_pd() }
    }
    #[inline(always)]
    fn add(self, a: __m512d, b: __m512d) -> __m512d {
        unsafe { _mm512_add_pd(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512d, b: __m512d) -> __m512d {
        unsafe { _mm512_sub_pd(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512d, b: __m512d) -> __m512d {
        unsafe { _mm512_div_pd(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512d, b: __m512d) -> __m512d {
        unsafe { _mm512_mul_pd(a, b) }
    }
    #[inline(always)]
    fn fmadd(self, a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        unsafe { _mm512_fmadd_pd(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512d, b: __m512d) -> __m512d {
        unsafe { _mm512_max_pd(a, b) }
    }
    #[inline(always)]
    fn greater_or_nan(self, x: __m512d, acc: __m512d) -> __mmask8 {
        unsafe {
            _mm512_cmp_pd_mask::<_CMP_GT_OQ>(x, acc) | _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(x, x)
        }
    }
    #[inline(always)]
    fn greater(self, x: __m512d, acc: __m512d) -> __mmask8 {
        unsafe { _mm512_cmp_pd_mask::<_CMP_GT_OQ>(x, acc) }
    }
    #[inline(always)]
    fn unordered(self, a: __m512d, b: __m512d) -> __mmask8 {
        unsafe { _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(a, b) }
    }
    #[inline(always)]
    fn select(self, acc: __m512d, m: __mmask8, x: __m512d) -> __m512d {
        unsafe { _mm512_mask_mov_pd(acc, m, x) }
    }
    #[inline(always)]
    fn shifted(self, before: __m512d, at: __m512d, after: __m512d, s: isize) -> __m512d {
        unsafe {
            let (b, a, n) = (
                _mm512_castpd_si512(before),
                _mm512_castpd_si512(at),
                _mm512_castpd_si512(after),
            );
            _mm512_castsi512_pd(match s {
                -3 => _mm512_alignr_epi64::<5>(a, b),
                -2 => _mm512_alignr_epi64::<6>(a, b),
                -1 => _mm512_alignr_epi64::<7>(a, b),
                0 => a,
                1 => _mm512_alignr_epi64::<1>(n, a),
                2 => _mm512_alignr_epi64::<2>(n, a),
                3 => _mm512_alignr_epi64::<3>(n, a),
                4 => _mm512_alignr_epi64::<4>(n, a),
                5 => _mm512_alignr_epi64::<5>(n, a),
                6 => _mm512_alignr_epi64::<6>(n, a),
                _ => unreachable!("lane shifts of −3 ..= 6 only"),
            })
        }
    }
    #[inline(always)]
    fn even(self, a: __m512d, b: __m512d) -> __m512d {
        unsafe { _mm512_permutex2var_pd(a, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), b) }
    }
    #[inline(always)]
    fn odd(self, a: __m512d, b: __m512d) -> __m512d {
        unsafe { _mm512_permutex2var_pd(a, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), b) }
    }
    #[inline(always)]
    fn lanes_below(n: usize) -> __mmask8 {
        ((1u32 << n.min(8)) - 1) as __mmask8
    }
    #[inline(always)]
    fn lanes_between(lo: usize, hi: usize) -> __mmask8 {
        Self::lanes_below(hi) & !Self::lanes_below(lo)
    }
    #[inline(always)]
    fn permute2(self, a: __m512d, idx: __m512i, b: __m512d) -> __m512d {
        unsafe { _mm512_permutex2var_pd(a, idx, b) }
    }
    #[inline(always)]
    fn magnitude_max(self, top: __m512i, v: __m512d) -> __m512i {
        unsafe {
            let magnitude = _mm512_set1_epi64(0x7fff_ffff_ffff_ffff);
            _mm512_max_epu64(top, _mm512_and_si512(_mm512_castpd_si512(v), magnitude))
        }
    }
    #[inline(always)]
    fn any_nan_or_inf(self, top: __m512i) -> bool {
        unsafe { _mm512_cmpge_epu64_mask(top, _mm512_set1_epi64(0x7ff0_0000_0000_0000)) != 0 }
    }
    #[inline(always)]
    fn max_magnitudes(self, a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_max_epu64(a, b) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f64) -> __m512d {
        // SAFETY: AVX-512F (the token); `p ..` readable (the caller's).
        unsafe { _mm512_loadu_pd(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64, v: __m512d) {
        // SAFETY: AVX-512F (the token); `p ..` writable (the caller's).
        unsafe { _mm512_storeu_pd(p, v) }
    }
    #[inline(always)]
    unsafe fn stream(self, p: *mut f64, v: __m512d) {
        // SAFETY: AVX-512F (the token); `p ..` writable and 64-byte aligned (the caller's).
        unsafe { _mm512_stream_pd(p, v) }
    }
    #[inline(always)]
    unsafe fn load_masked(self, src: __m512d, m: __mmask8, p: *const f64) -> __m512d {
        // SAFETY: AVX-512F (the token); lanes `m` readable (the caller's).
        unsafe { _mm512_mask_loadu_pd(src, m, p) }
    }
    #[inline(always)]
    unsafe fn load_masked_zero(self, m: __mmask8, p: *const f64) -> __m512d {
        // SAFETY: as `load_masked`.
        unsafe { _mm512_maskz_loadu_pd(m, p) }
    }
    #[inline(always)]
    unsafe fn store_masked(self, p: *mut f64, m: __mmask8, v: __m512d) {
        // SAFETY: AVX-512F (the token); lanes `m` writable (the caller's).
        unsafe { _mm512_mask_storeu_pd(p, m, v) }
    }
    #[inline(always)]
    fn splat_index(self, i: i32) -> __m512i {
        unsafe { _mm512_set1_epi64(i as i64) }
    }
    #[inline(always)]
    fn select_index(self, acc: __m512i, m: __mmask8, x: __m512i) -> __m512i {
        unsafe { _mm512_mask_mov_epi64(acc, m, x) }
    }
    #[inline(always)]
    fn index_ramp(self, start: i32, step: i32) -> __m512i {
        let at = |l: i64| start as i64 + step as i64 * l;
        unsafe { _mm512_setr_epi64(at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7)) }
    }
    #[inline(always)]
    fn add_index(self, a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_add_epi64(a, b) }
    }
    #[inline(always)]
    fn max_index(self, a: __m512i, b: __m512i) -> __m512i {
        unsafe { _mm512_max_epi64(a, b) }
    }
    #[inline(always)]
    unsafe fn store_indices_masked(self, p: *mut i64, m: __mmask8, v: __m512i) {
        // SAFETY: AVX-512F (the token); lanes `m` writable (the caller's).
        unsafe { _mm512_mask_storeu_epi64(p, m, v) }
    }
    #[inline(always)]
    unsafe fn copy_indices_masked(self, to: *mut i64, m: __mmask8, from: *const i64) {
        // SAFETY: AVX-512F (the token); 8 indices readable at `from`, lanes `m` of `to ..`
        // writable (the caller's).
        unsafe { _mm512_mask_storeu_epi64(to, m, _mm512_loadu_si512(from.cast())) }
    }
}

/// Start value of a fold by `MODE` (0 = the exact max rule, 1 = the plain max, 2 = sum): −∞
/// for max, +0 for sums; also the value of padding.
#[inline(always)]
pub(crate) fn start<L: Zmm, const MODE: u8>(l: L) -> L::V {
    if MODE == 2 {
        l.zero()
    } else {
        l.splat(L::NEG_INFINITY)
    }
}

/// One step of a fold by `MODE`, `acc` holding the earlier values: 0 = the exact max rule (the
/// later value wins when greater or NaN), 1 = the max of values without NaN (`vmax` with the
/// later value first: on equal values it keeps the earlier one), 2 = sum.
#[inline(always)]
pub(crate) fn fold<L: Zmm, const MODE: u8>(l: L, acc: L::V, x: L::V) -> L::V {
    match MODE {
        2 => l.add(acc, x),
        1 => l.max(x, acc),
        _ => l.select(acc, l.greater_or_nan(x, acc), x),
    }
}

/// A window's result from its fold: max as it is; a sum (folded in an order that may not
/// start from the reference's +0) plus +0, so that an all −0 window gives +0 as the
/// reference's does, then divided by the window's divisor: multiplied by its `reciprocal`,
/// fused with the `+ 0` (`a · reciprocal + 0`), within 1 ulp of the quotient. One operation
/// on the FMA pipes where the division and the add took two, the division on the divider, the
/// slowest unit (`ks1_strip`'s 3×3 average: 128 → 112 ns per plane). Callers take the
/// reciprocal once, outside their loops: left to the compiler, a scalar division stayed in
/// `ks1_strip`'s row loop (112 → 105 ns per plane without it).
#[inline(always)]
pub(crate) fn finish_window<L: Zmm, const MODE: u8>(l: L, a: L::V, reciprocal: L::E) -> L::V {
    if MODE == 2 {
        l.fmadd(a, l.splat(reciprocal), l.zero())
    } else {
        a
    }
}

/// `v + 0` for sums (−0 becomes +0, every other value stays), `v` for max.
#[inline(always)]
pub(crate) fn plus_zero<L: Zmm, const MODE: u8>(l: L, v: L::V) -> L::V {
    if MODE == 2 {
        l.add(v, l.zero())
    } else {
        v
    }
}

/// The H pass's [`finish_window`] for sums of W-pass rows made by `x86::fold_row_w`, which
/// are never −0 (see there): multiplied by the divisor's `reciprocal`, without the `+ 0`.
#[inline(always)]
pub(crate) fn finish_ring_window<L: Zmm, const MODE: u8>(l: L, a: L::V, reciprocal: L::E) -> L::V {
    if MODE == 2 {
        l.mul(a, l.splat(reciprocal))
    } else {
        a
    }
}

/// Slot `t < count` holds the lanes of vector `first + t` (columns `N (first + t) ..`) of a
/// row of `w` values that lie in the row; none for vectors before or past it (slots from
/// `count` on stay empty).
#[inline(always)]
pub(crate) fn row_masks<L: Zmm, const S: usize>(w: usize, first: isize, count: usize) -> [L::M; S] {
    let mut masks = [L::M::default(); S];
    let inputs = w.div_ceil(L::N) as isize;
    for (t, m) in masks.iter_mut().enumerate().take(count) {
        let i = first + t as isize;
        if (0..inputs).contains(&i) {
            *m = L::lanes_below(w - L::N * i as usize);
        }
    }
    masks
}
