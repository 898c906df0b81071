//! Explicit x86-64 SIMD for the few data movements LLVM does not vectorise well on short rows.

use std::arch::x86_64::*;

/// `even[i] = src[2i]`, `odd[i] = src[2i + 1]` for `i < even.len()`, 16 pairs per step, the tail
/// with masked loads and stores (no scalar remainder loop).
///
/// # Safety
/// The CPU must support AVX-512F. `src.len() >= 2 * even.len()` and `odd.len() == even.len()`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn deinterleave2_avx512(src: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let n = even.len();
    assert!(src.len() >= 2 * n && odd.len() == n);
    let idx_even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let idx_odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so src[2i .. 2i + 32] and even/odd[i .. i + 16] are in bounds.
        unsafe {
            let a = _mm512_loadu_ps(src.as_ptr().add(2 * i));
            let b = _mm512_loadu_ps(src.as_ptr().add(2 * i + 16));
            _mm512_storeu_ps(
                even.as_mut_ptr().add(i),
                _mm512_permutex2var_ps(a, idx_even, b),
            );
            _mm512_storeu_ps(
                odd.as_mut_ptr().add(i),
                _mm512_permutex2var_ps(a, idx_odd, b),
            );
        }
        i += 16;
    }
    let rest = n - i;
    if rest > 0 {
        let m_out: __mmask16 = ((1u32 << rest) - 1) as __mmask16;
        let pairs = 2 * rest;
        let m_a: __mmask16 = if pairs >= 16 {
            0xFFFF
        } else {
            ((1u32 << pairs) - 1) as __mmask16
        };
        let m_b: __mmask16 = if pairs > 16 {
            ((1u32 << (pairs - 16)) - 1) as __mmask16
        } else {
            0
        };
        // SAFETY: the masks enable only lanes below 2n in src and below n in even/odd.
        unsafe {
            let a = _mm512_maskz_loadu_ps(m_a, src.as_ptr().add(2 * i));
            let b = _mm512_maskz_loadu_ps(m_b, src.as_ptr().add(2 * i + 16));
            _mm512_mask_storeu_ps(
                even.as_mut_ptr().add(i),
                m_out,
                _mm512_permutex2var_ps(a, idx_even, b),
            );
            _mm512_mask_storeu_ps(
                odd.as_mut_ptr().add(i),
                m_out,
                _mm512_permutex2var_ps(a, idx_odd, b),
            );
        }
    }
}
