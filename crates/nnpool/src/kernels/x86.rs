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

/// The stride-2 W pass of a whole channels-first slice as one flat loop (see `plane.rs`):
/// `t[f] = fold_j x[2f + rel_j]` for `f` in `f0..f1`, taps in order, with indices
/// `idx_base + 2f + rel_j`. `MODE`: 0 = max, 1 = max with indices, 2 = sum. Each tap of 16
/// outputs is two loads and one even-lane permute, folded into one of four accumulators.
///
/// # Safety
/// The CPU must support AVX-512F. For every tap, `2*f0 + rel >= 0` and
/// `2*(f1 - 1) + rel + 2 <= x.len()` (the permute reads one element past the last tap, which
/// must exist), `t.len() >= f1`, and `t_i.len() >= f1` when `MODE == 1`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn wpass_s2_avx512<const MODE: u8>(
    x: &[f32],
    rels: &[isize],
    idx_base: i32,
    f0: usize,
    f1: usize,
    t: &mut [f32],
    t_i: &mut [i32],
) {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let xp = x.as_ptr();
    // SAFETY (for every block below): f + 15 < f1, so for each tap the 32 loaded elements
    // 2f + rel .. 2f + rel + 31 lie within x by the caller's contract; stores write t[f..f+16].
    let load = |f: usize, rel: isize| -> __m512 {
        let at = (2 * f as isize + rel) as usize;
        unsafe {
            _mm512_permutex2var_ps(
                _mm512_loadu_ps(xp.add(at)),
                even,
                _mm512_loadu_ps(xp.add(at + 16)),
            )
        }
    };
    // One block of 16 outputs at `f`; callers keep f + 16 <= f1.
    let block = |f: usize, t: &mut [f32], t_i: &mut [i32]| {
        let mut acc = if MODE == 2 {
            _mm512_setzero_ps()
        } else {
            _mm512_set1_ps(f32::NEG_INFINITY)
        };
        let mut acc_i = _mm512_add_epi32(
            _mm512_set1_epi32(idx_base + (2 * f) as i32 + rels[0] as i32),
            lane2,
        );
        for &rel in rels {
            let v = load(f, rel);
            if MODE == 2 {
                acc = _mm512_add_ps(acc, v);
            } else {
                let m = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, acc)
                    | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                acc = _mm512_mask_mov_ps(acc, m, v);
                if MODE == 1 {
                    let vi = _mm512_add_epi32(
                        _mm512_set1_epi32(idx_base + (2 * f) as i32 + rel as i32),
                        lane2,
                    );
                    acc_i = _mm512_mask_mov_epi32(acc_i, m, vi);
                }
            }
        }
        // SAFETY: f + 16 <= f1 <= t.len() (and t_i.len() when MODE == 1).
        unsafe {
            _mm512_storeu_ps(t.as_mut_ptr().add(f), acc);
            if MODE == 1 {
                _mm512_storeu_si512(t_i.as_mut_ptr().add(f) as *mut __m512i, acc_i);
            }
        }
    };
    let mut f = f0;
    while f + 16 <= f1 {
        block(f, t, t_i);
        f += 16;
    }
    // the last partial block overlaps the previous one (pure outputs, same values)
    if f < f1 && f1 - f0 >= 16 {
        block(f1 - 16, t, t_i);
    }
}
