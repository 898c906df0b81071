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
pub(crate) fn widen_bf16(src: &[bf16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits(u32::from(s.to_bits()) << 16);
    }
}

/// `dst[i] = src[i]` rounded to the nearest bf16 (ties to even; a NaN stays NaN, quiet), as
/// `bf16::from_f32`.
pub(crate) fn narrow_bf16(src: &[f32], dst: &mut [bf16]) {
    assert_eq!(src.len(), dst.len());
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

#[cfg(target_arch = "x86_64")]
mod x86 {
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

    /// # Safety
    /// The CPU must support AVX-512F; `dst.len() == src.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn widen_f16_avx512(src: &[f16], dst: &mut [f32]) {
        let mut s = src.chunks_exact(16);
        let mut d = dst.chunks_exact_mut(16);
        for (s, d) in (&mut s).zip(&mut d) {
            // SAFETY: `s` holds 16 f16 (32 bytes) and `d` 16 f32; unaligned accesses.
            unsafe {
                let h = _mm256_loadu_si256(s.as_ptr().cast());
                _mm512_storeu_ps(d.as_mut_ptr(), _mm512_cvtph_ps(h));
            }
        }
        for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
            *d = s.to_f32();
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F; `dst.len() == src.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn narrow_f16_avx512(src: &[f32], dst: &mut [f16]) {
        let mut s = src.chunks_exact(16);
        let mut d = dst.chunks_exact_mut(16);
        for (s, d) in (&mut s).zip(&mut d) {
            // SAFETY: `s` holds 16 f32 and `d` 16 f16 (32 bytes); unaligned accesses.
            unsafe {
                let h = _mm512_cvtps_ph::<NEAREST>(_mm512_loadu_ps(s.as_ptr()));
                _mm256_storeu_si256(d.as_mut_ptr().cast(), h);
            }
        }
        for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
            *d = f16::from_f32(*s);
        }
    }

    /// # Safety
    /// The CPU must support AVX and F16C; `dst.len() == src.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn widen_f16_f16c(src: &[f16], dst: &mut [f32]) {
        let mut s = src.chunks_exact(8);
        let mut d = dst.chunks_exact_mut(8);
        for (s, d) in (&mut s).zip(&mut d) {
            // SAFETY: `s` holds 8 f16 (16 bytes) and `d` 8 f32; unaligned accesses.
            unsafe {
                let h = _mm_loadu_si128(s.as_ptr().cast());
                _mm256_storeu_ps(d.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
            *d = s.to_f32();
        }
    }

    /// # Safety
    /// The CPU must support AVX and F16C; `dst.len() == src.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn narrow_f16_f16c(src: &[f32], dst: &mut [f16]) {
        let mut s = src.chunks_exact(8);
        let mut d = dst.chunks_exact_mut(8);
        for (s, d) in (&mut s).zip(&mut d) {
            // SAFETY: `s` holds 8 f32 and `d` 8 f16 (16 bytes); unaligned accesses.
            unsafe {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(s.as_ptr()));
                _mm_storeu_si128(d.as_mut_ptr().cast(), h);
            }
        }
        for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
            *d = f16::from_f32(*s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            widen_bf16(&b, &mut wide);
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
            narrow_bf16(&probes, &mut bs);
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
