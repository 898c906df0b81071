//! Explicit x86-64 SIMD for the few data movements LLVM does not vectorise well on short rows.

use super::zmm::{self, F32x16, Zmm};
use std::arch::x86_64::*;
use std::mem::MaybeUninit;

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
        let m_out = lanes_below(rest);
        let pairs = 2 * rest;
        let m_a: __mmask16 = lanes_below(pairs);
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
/// outputs is two loads and one even-lane permute, folded into one of four accumulators. The
/// input is prefetched into L2 [`PREFETCH_BYTES_AHEAD`] ahead: the max with indices of
/// vgg_max_224 and resnet_stem_max nchw (`PROBE_IDX=1 PROBE_N=8 plane_probe 64 224 224 2 2 0`,
/// `.. 64 112 112 3 2 1`, 1 thread, builds alternating, 2 rounds, ns per plane) 32.3–36.3k →
/// 23.3–25.5k and 10.5–11.5k → 9.4–9.5k; alexnet_max (cache-resident) even.
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
    let ahead = PREFETCH_BYTES_AHEAD / std::mem::size_of::<f32>();
    let mut f = f0;
    while f + 16 <= f1 {
        // the block's 32 inputs, PREFETCH_BYTES_AHEAD further on
        prefetch_lines_l2(xp.wrapping_add(2 * f + ahead).cast(), 128);
        block(f, t, t_i);
        f += 16;
    }
    // the last partial block overlaps the previous one (pure outputs, same values)
    if f < f1 && f1 - f0 >= 16 {
        block(f1 - 16, t, t_i);
    }
}

/// Max with indices over flat taps, in f32 (`plane.rs`'s flat W and H passes): for `f` in
/// `f0..f1`, `out[f]` is the max of `src[p·plen + f + off]` over the taps `(p, off, add)` in
/// order by the reference's rule (a later value wins when greater or NaN, so the earliest of
/// equal values keeps its index), and `out_i[f]` its index: `src_i` at the same position, or
/// `idx_mul · f + add`. 64 outputs at a time in four accumulators, then 16, the last ones
/// through a mask. Where the generic code ran one lane at a time (its compare-and-select on
/// index arrays did not vectorise), this is one compare pair and two blends per 16 taps.
///
/// # Safety
/// The CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn flat_max_indices(
    src: &[f32],
    plen: usize,
    src_i: Option<&[i32]>,
    taps: &[(usize, isize, i32)],
    idx_mul: i32,
    (f0, f1): (usize, usize),
    out: &mut [f32],
    out_i: &mut [i32],
) {
    if f0 >= f1 {
        return;
    }
    assert!(
        !taps.is_empty()
            && out.len() >= f1
            && out_i.len() >= f1
            && src_i.is_none_or(|si| si.len() >= src.len())
    );
    for &(p, off, _) in taps {
        let first = (p * plen) as isize + f0 as isize + off;
        let last = (p * plen) as isize + f1 as isize - 1 + off;
        assert!(first >= 0 && (last as usize) < src.len());
    }
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let lane_steps = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(idx_mul));
    let (xp, ip) = (src.as_ptr(), src_i.map(|s| s.as_ptr()));
    let (yp, yip) = (out.as_mut_ptr(), out_i.as_mut_ptr());
    // tap (p, off, add)'s values and indices at outputs f .. f + 16, lanes m
    let load = |(p, off, add): (usize, isize, i32), f: usize, m: __mmask16| {
        let at = ((p * plen) as isize + f as isize + off) as usize;
        // SAFETY: the lanes of m are outputs below f1 (and f >= f0), whose positions lie in
        // src and src_i (asserted for every tap); masked-off lanes are not read.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, xp.add(at));
            let vi = match ip {
                Some(ip) => _mm512_maskz_loadu_epi32(m, ip.add(at)),
                None => _mm512_add_epi32(_mm512_set1_epi32(idx_mul * f as i32 + add), lane_steps),
            };
            (v, vi)
        }
    };
    // Q blocks of 16 outputs from f, the last block's lanes m
    macro_rules! blocks {
        ($q:literal, $f:expr, $m:expr) => {{
            let (f, m): (usize, __mmask16) = ($f, $m);
            let mask = |q: usize| if q + 1 == $q { m } else { 0xFFFF };
            let mut acc = [(_mm512_setzero_ps(), _mm512_setzero_si512()); $q];
            for (q, a) in acc.iter_mut().enumerate() {
                *a = load(taps[0], f + 16 * q, mask(q));
            }
            for &tap in &taps[1..] {
                for (q, (v, vi)) in acc.iter_mut().enumerate() {
                    let (x, xi) = load(tap, f + 16 * q, mask(q));
                    let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, *v)
                        | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
                    *v = _mm512_mask_mov_ps(*v, take, x);
                    *vi = _mm512_mask_mov_epi32(*vi, take, xi);
                }
            }
            for (q, &(v, vi)) in acc.iter().enumerate() {
                // SAFETY: the lanes of mask(q) are outputs below f1 <= out.len(), out_i.len().
                unsafe {
                    _mm512_mask_storeu_ps(yp.add(f + 16 * q), mask(q), v);
                    _mm512_mask_storeu_epi32(yip.add(f + 16 * q), mask(q), vi);
                }
            }
        }};
    }
    let mut f = f0;
    while f + 64 <= f1 {
        blocks!(4, f, 0xFFFF);
        f += 64;
    }
    while f + 16 <= f1 {
        blocks!(1, f, 0xFFFF);
        f += 16;
    }
    if f < f1 {
        blocks!(1, f, lanes_below(f1 - f));
    }
}

/// Copies `src` (at most 16 values) to the start of `dst` with one masked load and store.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn copy_short_avx512(dst: &mut [f32], src: &[f32]) {
    let n = src.len();
    assert!(n <= 16 && n <= dst.len());
    let m = lanes_below(n);
    // SAFETY: the mask enables only lanes below n, in bounds of src and dst (asserted).
    unsafe {
        let v = _mm512_maskz_loadu_ps(m, src.as_ptr());
        _mm512_mask_storeu_ps(dst.as_mut_ptr(), m, v);
    }
}

/// Start value and combine step of the padded-plane passes (`padded.rs`), in f32: `MODE` 0 =
/// the exact max rule, 1 = the plain max, 2 = sum (see [`zmm::start`] and [`zmm::fold`]).
#[inline]
#[target_feature(enable = "avx512f")]
fn pad_start<const MODE: u8>() -> __m512 {
    // SAFETY: this function runs with AVX-512F only (its target feature).
    zmm::start::<F32x16, MODE>(unsafe { F32x16::new() })
}

#[inline]
#[target_feature(enable = "avx512f")]
fn pad_fold<const MODE: u8>(acc: __m512, x: __m512) -> __m512 {
    // SAFETY: as in `pad_start`.
    zmm::fold::<F32x16, MODE>(unsafe { F32x16::new() }, acc, x)
}

/// The input vectors `xs` of a [`ks1_strip`] row (slot `t`: vector `v0 − 1 + t` of the row
/// starting at `row_start`, lanes `masks[t]`), each divided by its divisors: one for all, or
/// one per input (laid out as the input). Lanes outside the row (padding, +0) divide by 1, and
/// slots with none in it are left as they are.
#[inline(always)]
fn divide_row<L: Zmm>(
    l: L,
    xs: &[L::V; 6],
    divisors: &[L::E],
    row_start: usize,
    v0: usize,
    masks: &[L::M; 6],
) -> [L::V; 6] {
    let none = L::M::default();
    if let [d] = divisors {
        let d = l.splat(*d);
        // slots without lanes in the row hold padding (+0): nothing to divide
        return std::array::from_fn(|t| {
            if masks[t] == none {
                xs[t]
            } else {
                l.div(xs[t], d)
            }
        });
    }
    let row = divisors[row_start..].as_ptr();
    let one = l.splat(L::ONE);
    std::array::from_fn(|t| {
        if masks[t] == none {
            return xs[t];
        }
        let i = (v0 + t) as isize - 1;
        // SAFETY: the divisors lie as the input does (`ks1_strip` asserts it), so the row's
        // own mask keeps the load within the row (masked-off lanes are not read; the address
        // is only formed, wrapping).
        let d = unsafe { l.load_masked(one, masks[t], row.wrapping_offset(L::N as isize * i)) };
        l.div(xs[t], d)
    })
}

/// The lanes below `n` (all 16 from `n >= 16` on).
#[inline]
fn lanes_below(n: usize) -> __mmask16 {
    F32x16::lanes_below(n)
}

/// W pass of a padded plane, stride 1: `t[f] = fold_j p[f + j]` for every `f < t.len()`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pad_wpass_s1<const MODE: u8, const K: usize>(
    p: &[f32],
    k: usize,
    t: &mut [f32],
) {
    let k = if K > 0 { K } else { k };
    assert!(t.len().is_multiple_of(16) && k >= 1 && t.len() + k <= p.len() + 1);
    let (src, dst) = (p.as_ptr(), t.as_mut_ptr());
    let mut f = 0;
    // SAFETY (all blocks below): f + 16 <= t.len() and f + j + 16 <= t.len() + k - 1 <= p.len()
    // for every tap j < k, as asserted above.
    while f + 32 <= t.len() {
        unsafe {
            let (mut a, mut b) = (pad_start::<MODE>(), pad_start::<MODE>());
            for j in 0..k {
                a = pad_fold::<MODE>(a, _mm512_loadu_ps(src.add(f + j)));
                b = pad_fold::<MODE>(b, _mm512_loadu_ps(src.add(f + 16 + j)));
            }
            _mm512_storeu_ps(dst.add(f), a);
            _mm512_storeu_ps(dst.add(f + 16), b);
        }
        f += 32;
    }
    if f < t.len() {
        unsafe {
            let mut a = pad_start::<MODE>();
            for j in 0..k {
                a = pad_fold::<MODE>(a, _mm512_loadu_ps(src.add(f + j)));
            }
            _mm512_storeu_ps(dst.add(f), a);
        }
    }
}

/// W pass of a padded plane, stride 2: `t[f] = fold_j phase_(j % 2)[f + j / 2]`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pad_wpass_s2<const MODE: u8, const K: usize>(
    even: &[f32],
    odd: &[f32],
    k: usize,
    t: &mut [f32],
) {
    let k = if K > 0 { K } else { k };
    assert!(t.len().is_multiple_of(16) && k >= 1 && t.len() + k / 2 <= even.len().min(odd.len()));
    let (e, o, dst) = (even.as_ptr(), odd.as_ptr(), t.as_mut_ptr());
    let mut f = 0;
    while f + 32 <= t.len() {
        // SAFETY: f + 32 <= t.len() and f + 16 + j/2 + 16 <= t.len() + k/2 <= each phase's len.
        unsafe {
            let (mut a, mut b) = (pad_start::<MODE>(), pad_start::<MODE>());
            for j in 0..k {
                let src = if j % 2 == 0 { e } else { o };
                a = pad_fold::<MODE>(a, _mm512_loadu_ps(src.add(f + j / 2)));
                b = pad_fold::<MODE>(b, _mm512_loadu_ps(src.add(f + 16 + j / 2)));
            }
            _mm512_storeu_ps(dst.add(f), a);
            _mm512_storeu_ps(dst.add(f + 16), b);
        }
        f += 32;
    }
    while f < t.len() {
        // SAFETY: f + 16 <= t.len() and f + j/2 + 16 <= t.len() + k/2 <= len of each phase.
        unsafe {
            let mut a = pad_start::<MODE>();
            for j in 0..k {
                let src = if j % 2 == 0 { e } else { o };
                a = pad_fold::<MODE>(a, _mm512_loadu_ps(src.add(f + j / 2)));
            }
            _mm512_storeu_ps(dst.add(f), a);
        }
        f += 16;
    }
}

/// H pass of a padded plane: output row `i` folds rows `i*sh .. i*sh + kh` (each `q` apart)
/// of `t`, written into `y` (`oh × ow`) a vector at a time, the last vector of each row
/// through a mask of the lanes inside the row. Two rows at a time, so that two independent
/// chains of `kh` folds are in flight.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pad_hpass<const MODE: u8, const K: usize>(
    t: &[f32],
    q: usize,
    kh: usize,
    sh: usize,
    oh: usize,
    ow: usize,
    y: &mut [f32],
) {
    let kh = if K > 0 { K } else { kh };
    let vectors = ow.div_ceil(16);
    assert!(
        kh >= 1
            && oh >= 1
            && ow >= 1
            && vectors * 16 <= q
            && ((oh - 1) * sh + kh) * q <= t.len()
            && oh * ow <= y.len()
    );
    let (src, dst) = (t.as_ptr(), y.as_mut_ptr());
    let last: __mmask16 = ((1u32 << (ow - 16 * (vectors - 1))) - 1) as __mmask16;
    let mask = |v: usize| if v + 1 == vectors { last } else { 0xFFFF };
    // SAFETY (all blocks below): for rows i < oh and vectors v < vectors, the loads read
    // t[(i*sh + r)*q + 16v ..][..16] with (i*sh + r + 1)*q <= ((oh-1)*sh + kh)*q <= t.len()
    // (16v + 16 <= q); the masked stores write only lanes o < ow of y[i*ow + o], below
    // oh*ow <= y.len().
    let mut i = 0;
    while i + 2 <= oh {
        let (ra, rb) = (src.add(i * sh * q), src.add((i + 1) * sh * q));
        let (ya, yb) = (dst.add(i * ow), dst.add((i + 1) * ow));
        for v in 0..vectors {
            let (mut a, mut b) = (pad_start::<MODE>(), pad_start::<MODE>());
            for r in 0..kh {
                // SAFETY: rows, vectors and lanes as stated above the loops.
                unsafe {
                    a = pad_fold::<MODE>(a, _mm512_loadu_ps(ra.add(r * q + 16 * v)));
                    b = pad_fold::<MODE>(b, _mm512_loadu_ps(rb.add(r * q + 16 * v)));
                }
            }
            // SAFETY: rows, vectors and lanes as stated above the loops.
            unsafe {
                _mm512_mask_storeu_ps(ya.add(16 * v), mask(v), a);
                _mm512_mask_storeu_ps(yb.add(16 * v), mask(v), b);
            }
        }
        i += 2;
    }
    if i < oh {
        let (ra, ya) = (src.add(i * sh * q), dst.add(i * ow));
        for v in 0..vectors {
            let mut a = pad_start::<MODE>();
            for r in 0..kh {
                // SAFETY: rows, vectors and lanes as stated above the loops.
                unsafe {
                    a = pad_fold::<MODE>(a, _mm512_loadu_ps(ra.add(r * q + 16 * v)));
                }
            }
            // SAFETY: rows, vectors and lanes as stated above the loops.
            unsafe { _mm512_mask_storeu_ps(ya.add(16 * v), mask(v), a) };
        }
    }
}

/// `y[f] = op(y[f], a[f])` for every `f`, 16 at a time, the tail masked (the tail of `a`
/// loaded with `a_pad` in the lanes past `y`'s end, which are not stored).
#[inline(always)]
unsafe fn update_with_avx512(
    y: &mut [f32],
    a: &[f32],
    a_pad: f32,
    op: impl Fn(__m512, __m512) -> __m512,
) {
    assert!(a.len() >= y.len());
    let n = y.len();
    let (yp, ap) = (y.as_mut_ptr(), a.as_ptr());
    let mut f = 0;
    while f + 16 <= n {
        // SAFETY: f + 16 <= n <= a.len(); the caller has AVX-512F.
        unsafe {
            let v = op(_mm512_loadu_ps(yp.add(f)), _mm512_loadu_ps(ap.add(f)));
            _mm512_storeu_ps(yp.add(f), v);
        }
        f += 16;
    }
    if f < n {
        let m = lanes_below(n - f);
        // SAFETY: the mask enables only the lanes below n; the caller has AVX-512F.
        unsafe {
            let v = op(
                _mm512_maskz_loadu_ps(m, yp.add(f)),
                _mm512_mask_loadu_ps(_mm512_set1_ps(a_pad), m, ap.add(f)),
            );
            _mm512_mask_storeu_ps(yp.add(f), m, v);
        }
    }
}

/// `y[f] /= d[f]` for every `f`, 16 at a time, the tail masked.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn divide_avx512(y: &mut [f32], d: &[f32]) {
    // SAFETY: the caller vouches for AVX-512F.
    unsafe { update_with_avx512(y, d, 1.0, |y, d| _mm512_div_ps(y, d)) }
}

/// `y[f] += a[f]` for every `f`, 16 at a time, the tail masked.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn add_assign_avx512(y: &mut [f32], a: &[f32]) {
    // SAFETY: the caller vouches for AVX-512F.
    unsafe { update_with_avx512(y, a, 0.0, |y, a| _mm512_add_ps(y, a)) }
}

/// `y[f] = Σ_{j<k} z[base − j·step + f]` for every `f` (the sum in `j` order), 16 at a time,
/// the tail masked: each output vector summed in a register and stored once.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn sum_shifted_avx512(
    y: &mut [f32],
    z: &[f32],
    base: usize,
    step: usize,
    k: usize,
) {
    let n = y.len();
    assert!(k >= 1 && (k - 1) * step <= base && base + n <= z.len());
    let (yp, zp) = (y.as_mut_ptr(), z.as_ptr());
    let mut f = 0;
    while f + 16 <= n {
        // SAFETY: every load reads z[base − j·step + f ..][..16] with j < k, within z by the
        // assertion; the store writes y[f..f + 16], f + 16 <= n.
        unsafe {
            let mut v = _mm512_loadu_ps(zp.add(base + f));
            for j in 1..k {
                v = _mm512_add_ps(v, _mm512_loadu_ps(zp.add(base - j * step + f)));
            }
            _mm512_storeu_ps(yp.add(f), v);
        }
        f += 16;
    }
    if f < n {
        let m = lanes_below(n - f);
        // SAFETY: the mask enables only the lanes below n, as above.
        unsafe {
            let mut v = _mm512_maskz_loadu_ps(m, zp.add(base + f));
            for j in 1..k {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, zp.add(base - j * step + f)));
            }
            _mm512_mask_storeu_ps(yp.add(f), m, v);
        }
    }
}

/// Whether `x` holds a NaN or an infinity: those are exactly the values whose magnitude bits
/// (as an unsigned integer) reach the infinity's, so the check is an integer max of the
/// magnitudes (one-cycle operations, four independent chains) and one compare at the end.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn any_nan_or_inf_avx512<L: Zmm>(x: &[L::E]) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let n = x.len();
    let p = x.as_ptr();
    let mut acc = [_mm512_setzero_si512(); 4];
    let mut f = 0;
    while f + 4 * L::N <= n {
        for (q, a) in acc.iter_mut().enumerate() {
            // SAFETY: f + N q + N <= f + 4 N <= n.
            *a = l.magnitude_max(*a, unsafe { l.load(p.add(f + L::N * q)) });
        }
        f += 4 * L::N;
    }
    while f < n {
        // SAFETY: the mask enables only the lanes below n.
        let v = unsafe { l.load_masked_zero(L::lanes_below(n - f), p.add(f)) };
        acc[0] = l.magnitude_max(acc[0], v);
        f += L::N;
    }
    acc.iter().any(|&a| l.any_nan_or_inf(a))
}

/// One output pixel of a channels-last window problem, folded straight from the input: for
/// every channel, `out[ch] = fold over the taps (in the reference's row-major order) of
/// x[off * c + ch]`, then (sums) divided by `div`. 4 channel vectors at a time, then single
/// vectors, the channel tail masked. Sums come out in the reference's order: the same bits.
///
/// # Safety
/// The CPU must support AVX-512F. Every `off * c + c <= x.len()` and `out.len() >= c`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn cl_pixel<L: Zmm, const MODE: u8>(
    x: &[L::E],
    offs: &[usize],
    c: usize,
    div: L::E,
    out: &mut [MaybeUninit<L::E>],
) {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let n = L::N;
    assert!(out.len() >= c && offs.iter().all(|&o| o * c + c <= x.len()));
    let (src, dst) = (x.as_ptr(), out.as_mut_ptr().cast::<L::E>());
    // (macros, not closures: a closure here is compiled outside the AVX-512 context)
    macro_rules! finish {
        ($a:expr) => {
            if MODE == 2 {
                l.div($a, l.splat(div))
            } else {
                $a
            }
        };
    }
    macro_rules! fold {
        ($acc:expr, $x:expr) => {
            zmm::fold::<L, MODE>(l, $acc, $x)
        };
    }
    let mut ch = 0;
    while ch + 4 * n <= c {
        let mut acc = [zmm::start::<L, MODE>(l); 4];
        for &o in offs {
            let p = o * c + ch;
            for (q, a) in acc.iter_mut().enumerate() {
                // SAFETY: p + N q + N <= o*c + c <= x.len() (asserted).
                *a = fold!(*a, unsafe { l.load(src.add(p + n * q)) });
            }
        }
        for (q, a) in acc.iter().enumerate() {
            // SAFETY: ch + N q + N <= c <= out.len().
            unsafe { l.store(dst.add(ch + n * q), finish!(*a)) };
        }
        ch += 4 * n;
    }
    while ch < c {
        let m = L::lanes_below(c - ch);
        let mut a = zmm::start::<L, MODE>(l);
        for &o in offs {
            // SAFETY: the mask enables lanes ch..ch+n <= c of pixel o, inside x (asserted); the
            // masked-off lanes hold 0 (sums) or are never stored.
            let v = unsafe { l.load_masked_zero(m, src.add(o * c + ch)) };
            a = fold!(a, v);
        }
        // SAFETY: lanes below c - ch only, inside out (c <= out.len()).
        unsafe { l.store_masked(dst.add(ch), m, finish!(a)) };
        ch += n;
    }
}

/// One channels-last output pixel of the max with indices, in vectors of `L`: channel `ch` of
/// `out` is the max of `x[o · c + ch]` over the taps `o` of `offs` in order, by the
/// reference's rule (a later value wins when greater or NaN: the earliest of equal values,
/// the last NaN), and `idx[ch]` that tap's `o`, its pixel's position in the sample (`(d · H +
/// h) · W + w`, the index PyTorch returns). Four vectors of channels at a time, then one, the
/// last through a mask; f32's indices are kept as 32-bit lanes and widened on the store.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn cl_pixel_indices<L: Zmm>(
    x: &[L::E],
    offs: &[usize],
    c: usize,
    out: &mut [MaybeUninit<L::E>],
    idx: &mut [i64],
) {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let n = L::N;
    assert!(
        !offs.is_empty()
            && out.len() >= c
            && idx.len() >= c
            && offs
                .iter()
                .all(|&o| o * c + c <= x.len() && o <= i32::MAX as usize)
    );
    let (src, dst, dst_i) = (
        x.as_ptr(),
        out.as_mut_ptr().cast::<L::E>(),
        idx.as_mut_ptr(),
    );
    // Q vectors of channels from ch, the last one's lanes m
    macro_rules! channels {
        ($q:literal, $ch:expr, $m:expr) => {{
            let (ch, m): (usize, L::M) = ($ch, $m);
            let mask = |q: usize| if q + 1 == $q { m } else { L::ALL };
            let mut acc = [(l.zero(), l.splat_index(0)); $q];
            for (q, a) in acc.iter_mut().enumerate() {
                // SAFETY: lanes ch + N q + lane < c of pixel offs[0], inside x (asserted).
                let v = unsafe { l.load_masked_zero(mask(q), src.add(offs[0] * c + ch + n * q)) };
                *a = (v, l.splat_index(offs[0] as i32));
            }
            for &o in &offs[1..] {
                let at = l.splat_index(o as i32);
                for (q, (v, vi)) in acc.iter_mut().enumerate() {
                    // SAFETY: as above, for pixel o.
                    let x = unsafe { l.load_masked_zero(mask(q), src.add(o * c + ch + n * q)) };
                    let take = l.greater_or_nan(x, *v);
                    *v = l.select(*v, take, x);
                    *vi = l.select_index(*vi, take, at);
                }
            }
            for (q, &(v, vi)) in acc.iter().enumerate() {
                let at = ch + n * q;
                // SAFETY: lanes at + lane < c <= out.len(), idx.len() (the mask's).
                unsafe {
                    l.store_masked(dst.add(at), mask(q), v);
                    l.store_indices_masked(dst_i.add(at), mask(q), vi);
                }
            }
        }};
    }
    let mut ch = 0;
    while ch + 4 * n <= c {
        channels!(4, ch, L::ALL);
        ch += 4 * n;
    }
    while ch + n <= c {
        channels!(1, ch, L::ALL);
        ch += n;
    }
    if ch < c {
        channels!(1, ch, L::lanes_below(c - ch));
    }
}

/// Asks for the cache lines of `bytes` bytes from `from` to be brought into L2 (`prefetcht1`),
/// one line at a time. Any address will do: a prefetch reads nothing the program sees and
/// does not fault (past an input's end too), and the addresses are only formed, wrapping.
#[inline]
pub(crate) fn prefetch_lines_l2(from: *const u8, bytes: usize) {
    let mut off = 0;
    while off < bytes {
        // SAFETY: SSE is part of every x86-64 CPU; the prefetch is a hint only, as above (no
        // memory is read or claimed).
        unsafe { _mm_prefetch::<_MM_HINT_T1>(from.wrapping_add(off).cast()) };
        off += 64;
    }
}

/// Asks for the `values` elements at `at[k]` two rows (of `row_step` elements) further on in
/// `src` to be brought into L2: for a 2×2 stride-2 output row that reads input rows `r`,
/// `r + 1` (`at`: one column of each), the same column of the next output row's input rows.
/// The hardware prefetcher alone left one thread well short of the memory's speed on these
/// two interleaved streams. Measured (`PROBE_NHWC=1 PROBE_N=8 plane_probe 64 224 224 2 2 0`,
/// vgg_max_224 nhwc, rows ahead set at run time, two rounds, ms per call): 1 thread none
/// 5.36–5.44, 1 input row ahead 3.11–3.27, 2 rows 2.95–3.11, 3 rows 3.15–3.19, 4 rows
/// 3.07–3.18, 6 rows 3.29–3.41; 2 threads none 3.16–3.19, 2 rows 2.49–2.52, 4 rows 2.37–2.44.
#[inline(always)]
pub(crate) fn k2s2_prefetch<E>(src: *const E, at: [usize; 2], row_step: usize, values: usize) {
    for p in at {
        let from = src.wrapping_add(p + 2 * row_step).cast::<u8>();
        prefetch_lines_l2(from, values * std::mem::size_of::<E>());
    }
}

/// How far ahead (bytes) [`k3s2_strip`] prefetches its plane's input rows into L2 (with
/// `PREFETCH`: inputs larger than the last-level cache). Measured (`PROBE_N=8 plane_probe 64
/// 112 112 3 2 1` and `PROBE_D=16 PROBE_N=2 plane_probe 64 56 56 3 2 1`, resnet_stem_max and
/// max3d nchw, 1 thread, builds run alternately, ms per call): 4 KiB no gain; 16 KiB
/// resnet_stem_max 1.09–1.40 → 0.97–1.20 and max3d 1.49–2.72 → 1.09–1.18; 48 KiB even with
/// 16 KiB.
const PREFETCH_BYTES_AHEAD: usize = 16384;

/// How many output rows ahead [`cl_row_k3s2`] prefetches (into L2) the input pixels of the
/// column it is at. The hardware prefetcher alone left one thread's stream short of the
/// memory's speed. Measured (`PROBE_NHWC=1 PROBE_N=8 plane_probe 64 112 112 3 2 1`,
/// resnet_stem_max nhwc, builds run alternately, ms per call): none 1.22–1.36, 1 row ahead
/// 1.06–1.19 (1 thread; 2 threads 0.67–0.87 → 0.55–0.71); against 1 row, 2 rows 1.21–1.38 →
/// 1.10–1.20, then 4 rows no better (for max3d's shorter rows too: 1.25–1.35 with 2, 1.30–1.49
/// with 4). Prefetching into L1 was slower: 8 or 24 columns ahead in the same rows 1.43–1.78
/// → 1.81–2.14; 2 rows ahead, max3d nhwc 1.46–1.80 → 2.48–2.83.
const PREFETCH_ROWS_AHEAD: usize = 2;

/// One output row of a channels-last 3×3 window at stride 2 on both axes, interior columns
/// only: output column `j` (of `cols`) folds input rows `rows[0 .. R]` (element offsets of
/// column 0 in `x`; `R` is 3, or fewer in a border row) at columns `col0 + 2j .. col0 + 2j +
/// 2`, each row along W first, then the `R` W folds top to bottom (the reference's row-major
/// order regrouped: max values are its bits; sums differ from its sequential sum by rounding
/// only, the documented tolerance, then `+ 0` and divided by `div`).
///
/// Consecutive output rows share an input row (the last of one is the first of the next), so
/// `top` (`cols × c` values) carries its W fold from one call to the next: with `top_ready`
/// it holds the W fold of `rows[0]` (by the same `MODE`'s rule, or the exact rule), and on
/// return it holds that of `rows[R - 1]`. Each input row is thus read once, two rows side by
/// side, a pixel's channels together: measured against [`cl_rows2_k3`] (five rows at a time, in
/// column tiles) on resnet_stem_max nhwc, one thread, same process, alternating: 1.75–2.45 →
/// 1.2–1.6 ms.
///
/// The max modes (0: the exact rule, 1: the plain max) also return whether any value they
/// loaded is NaN (one unordered compare per two loads); the caller redoes a plain-max row by
/// the exact rule then, with `top_ready` false, and keeps the answer with what it carries
/// over (a NaN in a carried fold that is folded in as a later value would be lost to the
/// plain max). Sums return `false`.
///
/// With `PRE` (`POST`), `around[0]` (`around[1]`), `cols × c` values, is folded in before
/// (after) the window: 3-D, the pooled rows of the slices before (after) this one in the depth
/// window, so that the middle slice's pooled row goes to the output without a store and a
/// load of its own.
///
/// # Safety
/// The CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn cl_row_k3s2<
    L: Zmm,
    const MODE: u8,
    const R: usize,
    const PRE: bool,
    const POST: bool,
>(
    x: &[L::E],
    rows: [usize; R],
    c: usize,
    col0: usize,
    cols: usize,
    div: L::E,
    (top_ready, around, prefetch): (bool, [&[L::E]; 2], bool),
    top: &mut [L::E],
    out: &mut [MaybeUninit<L::E>],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    assert!(
        (1..=3).contains(&R)
            && cols >= 1
            && top.len() >= cols * c
            && out.len() >= cols * c
            && (!PRE || around[0].len() >= cols * c)
            && (!POST || around[1].len() >= cols * c)
            && rows
                .iter()
                .all(|&r| r + (col0 + 2 * cols + 1) * c <= x.len())
    );
    let (src, t, dst) = (
        x.as_ptr(),
        top.as_mut_ptr(),
        out.as_mut_ptr().cast::<L::E>(),
    );
    let (pre, post) = (around[0].as_ptr(), around[1].as_ptr());
    // a macro, not a closure: a closure would be compiled outside the ISA context
    macro_rules! fold {
        ($acc:expr, $v:expr) => {
            zmm::fold::<L, MODE>(l, $acc, $v)
        };
    }
    let reciprocal = L::ONE / div;
    let mut nan = L::M::default();
    // The loads are masked to the channels below c; every address is inside x (asserted) for
    // those lanes, and masked-off lanes are neither read nor stored.
    macro_rules! load {
        ($row:expr, $col:expr, $ch:expr, $m:expr) => {
            // SAFETY: row + (col + 1) * c <= x.len() for col <= col0 + 2 cols (asserted), and
            // the mask keeps the lanes below c.
            unsafe { l.load_masked_zero($m, src.add($row + $col * c + $ch)) }
        };
    }
    // the first column of each row is checked here, the others by the loop's compares
    if MODE < 2 {
        let first = if top_ready { 1 } else { 0 };
        let mut ch = 0;
        while ch < c {
            let m = L::lanes_below(c - ch);
            for &row in &rows[first..] {
                let a = load!(row, col0, ch, m);
                nan |= l.unordered(a, a);
            }
            ch += L::N;
        }
    }
    macro_rules! wfold {
        ($row:expr, $col:expr, $ch:expr, $m:expr) => {{
            let (a0, a1, a2) = (
                load!($row, $col, $ch, $m),
                load!($row, $col + 1, $ch, $m),
                load!($row, $col + 2, $ch, $m),
            );
            if MODE < 2 {
                nan |= l.unordered(a1, a2);
            }
            fold!(fold!(a0, a1), a2)
        }};
    }
    // `$ready`: a literal, so that the choice between the carried fold and a fresh one is
    // made once per call, outside the loops
    macro_rules! column {
        ($j:expr, $ch:expr, $m:expr, $ready:literal) => {{
            let (j, ch, m): (usize, usize, L::M) = ($j, $ch, $m);
            let col = col0 + 2 * j;
            let at = j * c + ch;
            let w0 = if $ready {
                // SAFETY: at + N <= cols * c <= top.len() for the lanes of m (below c).
                unsafe { l.load_masked_zero(m, t.add(at)) }
            } else {
                wfold!(rows[0], col, ch, m)
            };
            let (mut acc, mut last) = (w0, w0);
            for &row in &rows[1..] {
                last = wfold!(row, col, ch, m);
                acc = fold!(acc, last);
            }
            if PRE {
                // SAFETY: at + N <= cols * c <= around[0].len() for the lanes of m.
                acc = fold!(unsafe { l.load_masked_zero(m, pre.add(at)) }, acc);
            }
            if POST {
                // SAFETY: at + N <= cols * c <= around[1].len() for the lanes of m.
                acc = fold!(acc, unsafe { l.load_masked_zero(m, post.add(at)) });
            }
            let y = zmm::finish_window::<L, MODE>(l, acc, reciprocal);
            // SAFETY: as above, for top and out (both hold cols * c values).
            unsafe {
                l.store_masked(t.add(at), m, last);
                l.store_masked(dst.add(at), m, y);
            }
        }};
    }
    let n = L::N;
    let whole = c / n * n;
    // prefetch: the two new input pixels of column j in the two input rows that output row
    // PREFETCH_ROWS_AHEAD below reads first (interior rows: rows evenly spaced)
    let pf_bytes = 2 * c * std::mem::size_of::<L::E>();
    let row_step = if R == 3 && prefetch {
        rows[1] - rows[0]
    } else {
        0
    };
    let pf_rows = [1, 2].map(|k| rows[0] + (2 * PREFETCH_ROWS_AHEAD + k) * row_step);
    macro_rules! columns {
        ($ready:literal) => {
            for j in 0..cols {
                if row_step > 0 {
                    let at = (col0 + 2 * j + 1) * c;
                    for row in pf_rows {
                        prefetch_lines_l2(src.wrapping_add(row + at).cast(), pf_bytes);
                    }
                }
                let mut ch = 0;
                while ch + 4 * n <= whole {
                    column!(j, ch, L::ALL, $ready);
                    column!(j, ch + n, L::ALL, $ready);
                    column!(j, ch + 2 * n, L::ALL, $ready);
                    column!(j, ch + 3 * n, L::ALL, $ready);
                    ch += 4 * n;
                }
                while ch < whole {
                    column!(j, ch, L::ALL, $ready);
                    ch += n;
                }
                if ch < c {
                    column!(j, ch, L::lanes_below(c - ch), $ready);
                }
            }
        };
    }
    if top_ready {
        columns!(true);
    } else {
        columns!(false);
    }
    nan != L::M::default()
}

/// [`cl_rows2_k3`]: both output rows' windows have all three input rows.
pub(crate) const ROWS_ALL: u8 = 0;
/// [`cl_rows2_k3`]: the first output row's window lacks its top input row (padding).
pub(crate) const ROWS_NO_TOP: u8 = 1;
/// [`cl_rows2_k3`]: the second output row's window lacks its bottom input row (padding).
pub(crate) const ROWS_NO_BOTTOM: u8 = 2;

/// Whether [`cl_rows2_k3`] with `EDGE` reads input row `b` (of 4).
#[inline(always)]
pub(crate) const fn row_read<const EDGE: u8>(b: usize) -> bool {
    !(EDGE == ROWS_NO_TOP && b == 0 || EDGE == ROWS_NO_BOTTOM && b == 3)
}

/// Two adjacent output rows of a channels-last 3×3 window at stride 1 on both axes, interior
/// columns only: output column `j` (of `cols`) of row `i` (0 or 1) folds input rows
/// `rows[i] .. rows[i + 2]` (element offsets of column 0 in `x`) at columns `col0 + j ..
/// col0 + j + 2`. Each input row is folded along W once for both output rows, and
/// neighbouring columns share a pair (per 16 outputs 2 loads and 5.5 folds instead of 9 and
/// 8). The folds keep the reference's row-major order (each row left to right, then the rows
/// top to bottom, regrouped only), so max values are its bits; sums then differ from its
/// sequential sum by rounding only (the documented tolerance), then are divided by `divs[i]`.
/// The plain max (`MODE` 1) also returns whether any value it loaded is NaN or ±inf (an
/// integer max of the magnitudes, on the loads it makes anyway); the caller redoes the rows by
/// the exact rule then. Other modes return `false`. With `EDGE` [`ROWS_NO_TOP`] (a first
/// output row whose window the top padding cuts) row 0 folds `rows[1]` and `rows[2]` only and
/// `rows[0]` is not read; with [`ROWS_NO_BOTTOM`] (the bottom padding cuts the second row's
/// window) row 1 folds `rows[1]` and `rows[2]` only and `rows[3]` is not read.
///
/// # Safety
/// The CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn cl_rows2_k3<L: Zmm, const MODE: u8, const EDGE: u8>(
    x: &[L::E],
    rows: [usize; 4],
    c: usize,
    col0: usize,
    cols: usize,
    divs: [L::E; 2],
    out0: &mut [MaybeUninit<L::E>],
    out1: &mut [MaybeUninit<L::E>],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    assert!(
        cols >= 1
            && out0.len() >= cols * c
            && out1.len() >= cols * c
            && (0..4).all(|b| !row_read::<EDGE>(b) || rows[b] + (col0 + cols + 2) * c <= x.len())
    );
    // Columns in tiles whose input (4 rows) fits in a third of L1: the first block of
    // channels brings a tile's lines in, the others find them there (one block at a time over
    // whole rows would fetch every line once per block, from L2 or further). Measured on
    // alexnet_max / inception_max_s1 / resnet_stem_max channels-last, one thread: whole rows
    // 30.0 / 292 / 87.4 µs, 8 KiB tiles 26.8 / 336 / 76.7, 16 KiB 26.3 / 287 / 75.7, 32 KiB
    // 26.4 / 283 / 82.6.
    const TILE_BYTES: usize = 16 << 10;
    let tile = (TILE_BYTES / (c * 4 * std::mem::size_of::<L::E>()))
        .saturating_sub(2)
        .max(1);
    let reciprocals = divs.map(|d| L::ONE / d);
    let mut top = _mm512_setzero_si512();
    let mut j0 = 0;
    while j0 < cols {
        let n_cols = tile.min(cols - j0);
        let (o0, o1) = (&mut out0[j0 * c..], &mut out1[j0 * c..]);
        let c0 = col0 + j0;
        let mut ch = 0;
        // `V` vectors of channels from `ch`, the lanes of `m` in each
        macro_rules! block {
            ($v:literal, $m:expr) => {
                rows2_k3_block::<L, MODE, EDGE, $v>(
                    x,
                    rows,
                    c,
                    c0,
                    n_cols,
                    reciprocals,
                    ch,
                    $m,
                    o0,
                    o1,
                )
            };
        }
        while ch + 2 * L::N <= c {
            // SAFETY: lanes ch .. ch + 2 N <= c of the asserted pixels.
            top = l.max_magnitudes(top, unsafe { block!(2, L::ALL) });
            ch += 2 * L::N;
        }
        while ch < c {
            let n = (c - ch).min(L::N);
            // SAFETY: lanes ch .. ch + n <= c of the asserted pixels.
            top = l.max_magnitudes(top, unsafe { block!(1, L::lanes_below(n)) });
            ch += n;
        }
        j0 += n_cols;
    }
    l.any_nan_or_inf(top)
}

/// Channels `ch .. ch + N V` (the lanes of `m` in each vector) of [`cl_rows2_k3`].
///
/// # Safety
/// The CPU must support AVX-512F; `cl_rows2_k3`'s assertion holds and the lanes of `m` in
/// vectors `ch + N v` (v < V) lie below `c`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn rows2_k3_block<L: Zmm, const MODE: u8, const EDGE: u8, const V: usize>(
    x: &[L::E],
    rows: [usize; 4],
    c: usize,
    col0: usize,
    cols: usize,
    reciprocals: [L::E; 2],
    ch: usize,
    m: L::M,
    out0: &mut [MaybeUninit<L::E>],
    out1: &mut [MaybeUninit<L::E>],
) -> __m512i {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let src = x.as_ptr();
    let mut top = _mm512_setzero_si512();
    let mut load = |row: usize, col: usize, v: usize| -> L::V {
        // SAFETY: row + (col + 1) * c <= x.len() (the caller's assertion) and the mask keeps
        // the lanes below c.
        let a = unsafe { l.load_masked_zero(m, src.add(row + col * c + ch + L::N * v)) };
        if MODE == 1 {
            top = l.magnitude_max(top, a);
        }
        a
    };
    let fold = |a, b| zmm::fold::<L, MODE>(l, a, b);
    // per input row and vector: the last column loaded and the fold of the last two
    let mut last = [[l.zero(); V]; 4];
    let mut pair = [[l.zero(); V]; 4];
    for b in (0..4).filter(|&b| row_read::<EDGE>(b)) {
        for v in 0..V {
            let (a, z) = (load(rows[b], col0, v), load(rows[b], col0 + 1, v));
            pair[b][v] = fold(a, z);
            last[b][v] = z;
        }
    }
    let (d0, d1) = (
        out0.as_mut_ptr().cast::<L::E>(),
        out1.as_mut_ptr().cast::<L::E>(),
    );
    for j in 0..cols {
        let col = col0 + j;
        for v in 0..V {
            let mut row = [l.zero(); 4];
            for b in (0..4).filter(|&b| row_read::<EDGE>(b)) {
                let z = load(rows[b], col + 2, v);
                row[b] = fold(pair[b][v], z);
                pair[b][v] = fold(last[b][v], z);
                last[b][v] = z;
            }
            let middle = fold(row[1], row[2]);
            let y0 = if EDGE == ROWS_NO_TOP {
                middle
            } else {
                fold(row[0], middle)
            };
            let y1 = if EDGE == ROWS_NO_BOTTOM {
                middle
            } else {
                fold(middle, row[3])
            };
            let at = j * c + ch + L::N * v;
            let finish = |y, r| zmm::finish_window::<L, MODE>(l, y, r);
            // SAFETY: at + N <= cols * c <= out.len() for the lanes of m (below c).
            unsafe {
                l.store_masked(d0.add(at), m, finish(y0, reciprocals[0]));
                l.store_masked(d1.add(at), m, finish(y1, reciprocals[1]));
            }
        }
    }
    top
}

/// Stores a run of whole vectors, pushed in order, at `dst ..` with streaming stores (which
/// write a cache line without reading it first: half the memory traffic of an output that is
/// written once), laid on the cache lines whatever `dst`'s alignment: each line takes
/// the end of one vector and the start of the next (a lane shift by `shift`, how far `dst`
/// lies past a line), and the part lines at the run's two ends are stored as usual (lines
/// that may hold a neighbour's values). Measured (`PROBE_NHWC=1 PROBE_N=8 plane_probe 64 224
/// 224 2 2 0`, vgg_max_224 nhwc into a buffer 16 bytes past a line, three rounds, ms per
/// call): 1 thread 3.33–3.61 → 2.96–3.20, 2 threads 2.82–2.92 → 2.53–2.74.
pub(crate) struct LineWriter<L: Zmm> {
    dst: *mut L::E,
    shift: usize,
    onto_lines: __m512i,
    before: L::V,
    pushed: usize,
}

impl<L: Zmm> LineWriter<L> {
    #[inline(always)]
    pub(crate) fn new(l: L, dst: *mut L::E) -> Self {
        let shift = (dst as usize % 64) / std::mem::size_of::<L::E>();
        Self {
            dst,
            shift,
            onto_lines: l.index_ramp((L::N - shift) as i32, 1),
            before: l.zero(),
            pushed: 0,
        }
    }

    /// Stores `v`, the run's next vector (values `pushed × N ..` from `dst`), all of it or
    /// the part of it that the lines stored so far reach.
    ///
    /// # Safety
    /// The run's values from `dst` up to those of `v` are valid for writes, `dst` is aligned
    /// to its element, and the CPU supports AVX-512F.
    #[inline(always)]
    pub(crate) unsafe fn push(&mut self, l: L, v: L::V) {
        let at = self.pushed * L::N;
        // SAFETY: the caller's: values ..at + N from dst are writable; the streamed line
        // (at − shift .., at ≥ N) lies inside them and on a line (dst lies `shift` values
        // past one).
        unsafe {
            if self.shift == 0 {
                l.stream(self.dst.add(at), v);
            } else if at == 0 {
                l.store_masked(self.dst, L::lanes_below(L::N - self.shift), v);
            } else {
                let line = l.permute2(self.before, self.onto_lines, v);
                l.stream(self.dst.add(at - self.shift), line);
            }
        }
        self.before = v;
        self.pushed += 1;
    }

    /// Stores the end of the last vector (the part line the streamed ones stopped short of)
    /// and fences the streaming stores (weakly ordered) before the run is handed on.
    ///
    /// # Safety
    /// As [`LineWriter::push`] for the last vector pushed.
    #[inline(always)]
    pub(crate) unsafe fn finish(self, l: L) {
        if self.shift > 0 && self.pushed > 0 {
            let last = (self.pushed - 1) * L::N;
            let lanes = L::lanes_between(L::N - self.shift, L::N);
            // SAFETY: the last vector's values, writable (the caller's).
            unsafe { l.store_masked(self.dst.add(last), lanes, self.before) };
        }
        _mm_sfence();
    }
}

/// One output row of a channels-last 2×2 stride-2 window, interior columns: output column
/// `j` (of `cols`) folds input rows `rows[0]`, `rows[1]` (element offsets of column 0 in `x`)
/// at columns `col0 + 2j`, `col0 + 2j + 1`, in the reference's row-major order (then, sums,
/// `+ 0` and divided by `div`). With `check`, also returns whether any value read may be NaN
/// (exactly: whether `(a + b) + (c + d) - itself` is NaN for some window, which it is for a
/// NaN, an infinity or a sum past the largest float; the caller redoes the row with the exact
/// rule then, which is right in every case). The check rides on the loads the row makes
/// anyway, so the input is read once. With `prefetch` (inputs from memory), the two pixels of
/// column `j` in the next output row's input rows (`rows` two rows on) are asked into L2 as
/// column `j` is folded ([`k2s2_prefetch`]).
///
/// # Safety
/// The CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn cl_row_k2s2<L: Zmm, const MODE: u8>(
    x: &[L::E],
    rows: [usize; 2],
    c: usize,
    col0: usize,
    cols: usize,
    div: L::E,
    (check, prefetch): (bool, bool),
    out: &mut [MaybeUninit<L::E>],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    assert!(
        cols >= 1
            && out.len() >= cols * c
            && rows.iter().all(|&r| r + (col0 + 2 * cols) * c <= x.len())
    );
    let src = x.as_ptr();
    let dst = out.as_mut_ptr().cast::<L::E>();
    let reciprocal = L::ONE / div;
    let fold = |a, b| zmm::fold::<L, MODE>(l, a, b);
    let mut special = l.zero();
    // streamed (inputs from memory): the row's results, whole vectors per pixel, are one run
    let streamed = prefetch && c.is_multiple_of(L::N);
    let mut lines = LineWriter::<L>::new(l, dst);
    for j in 0..cols {
        let (p0, p1) = (rows[0] + (col0 + 2 * j) * c, rows[1] + (col0 + 2 * j) * c);
        if prefetch {
            k2s2_prefetch(src, [p0, p1], rows[1] - rows[0], 2 * c);
        }
        let mut ch = 0;
        while ch < c {
            let m = L::lanes_below(c - ch);
            // SAFETY: pixels col0 + 2j and col0 + 2j + 1 of both rows lie in x (asserted),
            // lanes ch .. below c; the stores write lanes below c of output pixel j < cols
            // (streamed: the run's vector `at / N`, inside the row's cols × c values).
            unsafe {
                let a = l.load_masked_zero(m, src.add(p0 + ch));
                let b = l.load_masked_zero(m, src.add(p0 + c + ch));
                let e = l.load_masked_zero(m, src.add(p1 + ch));
                let f = l.load_masked_zero(m, src.add(p1 + c + ch));
                if check {
                    let sum = l.add(l.add(a, b), l.add(e, f));
                    special = l.add(special, l.sub(sum, sum));
                }
                let y = fold(fold(fold(a, b), e), f);
                let y = zmm::finish_window::<L, MODE>(l, y, reciprocal);
                if streamed {
                    lines.push(l, y);
                } else {
                    l.store_masked(dst.add(j * c + ch), m, y);
                }
            }
            ch += L::N;
        }
    }
    if streamed {
        // SAFETY: the run's cols × c / N vectors were pushed, all of the row.
        unsafe { lines.finish(l) };
    }
    l.unordered(special, special) != L::M::default()
}

/// A sum's window results `v` from their fold (outputs `at ..`, lanes `mask`), divided by
/// their divisors as [`zmm::finish_window`] divides (its doc has the reasons and the measurements):
/// multiplied by the reciprocal, fused with the `+ 0` (from +0, as the reference's sums: an
/// all −0 window gives +0). `reciprocals` holds one per output, or one for all (or none)
/// broadcast in `broadcast`.
///
/// # Safety
/// With one reciprocal per output, lanes `mask` of `reciprocals[at..]` lie in it (the others
/// are zero: their results must go to no store).
#[inline(always)]
unsafe fn finish_sum<L: Zmm>(
    l: L,
    v: L::V,
    broadcast: L::V,
    reciprocals: &[L::E],
    at: usize,
    mask: L::M,
) -> L::V {
    let r = match reciprocals.len() {
        0 | 1 => broadcast,
        // SAFETY: the caller's: lanes `mask` of `reciprocals[at..]` lie in it.
        _ => unsafe { l.load_masked_zero(mask, reciprocals.as_ptr().add(at)) },
    };
    l.fmadd(v, r, l.zero())
}

/// 2×2 stride-2 windows of consecutive row pairs of `w` values (a multiple of `2 N`) in one
/// pass, for inputs from memory: per `2 N` columns of a row pair, each row's column pairs
/// folded (even then odd lanes), then the two rows, then (sums) `+ 0` and divided by `div`: the
/// grouping of [`pairs_rows`], so the same bits. Each row pair is prefetched into L2
/// [`PREFETCH_BYTES_AHEAD`] ahead (as `k3s2_strip` prefetches its rows), and the outputs, one
/// run of whole vectors, go out by streaming stores ([`LineWriter`]): with nothing else stored
/// (the two passes' scratch stores waited behind streaming stores). With `check`, returns
/// whether any value read is NaN or ±inf. Measured (`PROBE_N=8 plane_probe 64 224 224 2 2 0`,
/// vgg_max_224 nchw into a buffer 16 bytes past a line, three rounds alternating, ms per call),
/// against the two passes (prefetching): 1 thread 3.29–3.42 → 3.13–3.16, 2 threads 2.65–2.91 →
/// 2.24–2.47; each row pair 16 KiB ahead against 4 KiB ahead of each step, 3.06–3.18 against
/// 3.15–3.49 at 1 thread, even at 2; against [`pairs_rows`] (ordinary stores; into a buffer
/// as allocated, 1 thread), 2.78–2.81 against 2.99–3.05.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pairs_stream<L: Zmm, const MODE: u8>(
    x: &[L::E],
    (w, check): (usize, bool),
    div: L::E,
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let n = L::N;
    assert!(w > 0 && w.is_multiple_of(2 * n) && x.len().is_multiple_of(2 * w));
    let rows = x.len() / (2 * w);
    assert!(y.len() >= rows * (w / 2));
    let reciprocal = L::ONE / div;
    let (src, dst) = (x.as_ptr(), y.as_mut_ptr().cast::<L::E>());
    let mut top = [_mm512_setzero_si512(); 2];
    let mut lines = LineWriter::<L>::new(l, dst);
    let pair_bytes = 2 * w * std::mem::size_of::<L::E>();
    for r in 0..rows {
        let pair = src.wrapping_add(2 * r * w).cast::<u8>();
        prefetch_lines_l2(pair.wrapping_add(PREFETCH_BYTES_AHEAD), pair_bytes);
        for j in (0..w).step_by(2 * n) {
            let (at0, at1) = (2 * r * w + j, (2 * r + 1) * w + j);
            // SAFETY: columns j .. j + 2N <= w of rows 2r, 2r + 1 < 2 rows of x; the run's
            // next vector is outputs r w / 2 + j / 2 .. + N of y (rows * w / 2 of them).
            unsafe {
                let (a0, a1) = (l.load(src.add(at0)), l.load(src.add(at0 + n)));
                let (b0, b1) = (l.load(src.add(at1)), l.load(src.add(at1 + n)));
                if check {
                    top[0] = l.magnitude_max(l.magnitude_max(top[0], a0), b0);
                    top[1] = l.magnitude_max(l.magnitude_max(top[1], a1), b1);
                }
                let upper = zmm::fold::<L, MODE>(l, l.even(a0, a1), l.odd(a0, a1));
                let lower = zmm::fold::<L, MODE>(l, l.even(b0, b1), l.odd(b0, b1));
                let out = zmm::fold::<L, MODE>(l, upper, lower);
                lines.push(l, zmm::finish_window::<L, MODE>(l, out, reciprocal));
            }
        }
    }
    // SAFETY: every vector of the run was pushed.
    unsafe { lines.finish(l) };
    l.any_nan_or_inf(top[0]) || l.any_nan_or_inf(top[1])
}

/// 2×2 stride-2 windows over consecutive row pairs of `w` values, `w` even and at most `N`
/// (rows of one vector at most: VGG's last 14×14 planes), in one pass: `y[r][j] = (x[2r][2j] ⊕
/// x[2r][2j + 1]) ⊕ (x[2r + 1][2j] ⊕ x[2r + 1][2j + 1])`, then (sums) `+ 0` and divided by
/// `div`. Two row pairs at a time: four row loads, each row's column pairs split by two
/// permutes that set the first pair's halves beside the second's, so that their three folds
/// give the two output rows, `w` values in a row in `y`, one store. The folds group each row's
/// pair, then the two rows: the reference's row-major order regrouped, so max values and NaNs
/// are its bits. The two flat passes this replaced (a W pass over the whole task, then an H
/// pass over its row pairs) spent most of their time on the H pass's rows of `w / 2` values, a
/// masked load pair and a masked store per 7 outputs. Measured (`RAYON_NUM_THREADS=T PROBE_N=8
/// plane_probe C H W 2 2 0`, against the two passes, builds alternating, µs per call):
/// vgg_max_14 (512×14×14) 1 thread 50.4–51.1 → 32.9–33.5, 2 threads 29.6–30.1 → 19.0–19.1, its
/// average 49.9–50.4 → 32.8–33.3; 256×16×16 33.6–33.8 → 21.1–21.9; f64 512×8×8 28.9–29.0 →
/// 21.1–21.2. With `check`, also returns whether any value read is NaN. With `prefetch` (inputs
/// from memory), the stream is asked into L2 [`PREFETCH_BYTES_AHEAD`] ahead.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pairs_narrow<L: Zmm, const MODE: u8>(
    x: &[L::E],
    (w, check, prefetch): (usize, bool, bool),
    div: L::E,
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let half = w / 2;
    let pairs = x.len().checked_div(2 * w).unwrap_or(0);
    assert!(
        w >= 2
            && w.is_multiple_of(2)
            && w <= L::N
            && x.len() == pairs * 2 * w
            && y.len() >= pairs * half
    );
    let (src, dst) = (x.as_ptr(), y.as_mut_ptr().cast::<L::E>());
    let reciprocal = L::ONE / div;
    // lanes below half: the even columns of the first row; from half on those of the second
    let even = l.select_index(
        l.index_ramp(0, 2),
        L::lanes_between(half, L::N),
        l.index_ramp((L::N - w) as i32, 2),
    );
    let odd = l.add_index(even, l.splat_index(1));
    let row = L::lanes_below(w);
    let mut nan = L::M::default();
    // output rows k (and k + 1 with `$both`) from input rows 2k .. 2k + 4
    macro_rules! rows {
        ($k:expr, $both:literal) => {{
            let at = 2 * $k * w;
            if prefetch {
                let from = src.wrapping_add(at).cast::<u8>();
                prefetch_lines_l2(
                    from.wrapping_add(PREFETCH_BYTES_AHEAD),
                    4 * w * size_of::<L::E>(),
                );
            }
            // SAFETY: rows 2k, 2k + 1 (and 2k + 2, 2k + 3 with `$both`) lie in x (k + 1 <=
            // pairs, or k + 2 with `$both`: the callers); the mask keeps lanes below w.
            let (r0, r1, r2, r3) = unsafe {
                if $both {
                    (
                        l.load_masked_zero(row, src.add(at)),
                        l.load_masked_zero(row, src.add(at + w)),
                        l.load_masked_zero(row, src.add(at + 2 * w)),
                        l.load_masked_zero(row, src.add(at + 3 * w)),
                    )
                } else {
                    (
                        l.load_masked_zero(row, src.add(at)),
                        l.load_masked_zero(row, src.add(at + w)),
                        l.zero(),
                        l.zero(),
                    )
                }
            };
            if check {
                nan |= l.unordered(r0, r1) | l.unordered(r2, r3);
            }
            let top = zmm::fold::<L, MODE>(l, l.permute2(r0, even, r2), l.permute2(r0, odd, r2));
            let low = zmm::fold::<L, MODE>(l, l.permute2(r1, even, r3), l.permute2(r1, odd, r3));
            let y = zmm::finish_window::<L, MODE>(l, zmm::fold::<L, MODE>(l, top, low), reciprocal);
            let lanes = if $both { row } else { L::lanes_below(half) };
            // SAFETY: output rows k (and k + 1), half values each, lie in y (asserted).
            unsafe { l.store_masked(dst.add($k * half), lanes, y) };
        }};
    }
    let mut k = 0;
    while k + 2 <= pairs {
        rows!(k, true);
        k += 2;
    }
    if k < pairs {
        rows!(k, false);
    }
    nan != L::M::default()
}

/// [`pairs_narrow`]'s windows on rows of any even width `w` above `N`, in one pass, row pair
/// by row pair: per `2 N` columns of a row pair, four loads (masked past the row's end), four
/// permutes and three folds give `N` outputs (fewer at the row's end). The folds group as
/// [`pairs_narrow`]'s do, so the bits are the same. With `check`, also returns
/// whether any value read is NaN. With `prefetch` (inputs from memory), each row pair is
/// asked into L2 [`PREFETCH_BYTES_AHEAD`] ahead.
///
/// Measured against the two flat passes (`RAYON_NUM_THREADS=T PROBE_N=B plane_probe C H W 2 2
/// 0`, 1 thread unless said, builds alternating, µs per call): cache-resident 256×28×28
/// 85–87 → 60, 256×24×24 62–64 → 43–48, 128×56×56 176–192 → 156–159, 128×40×40 92–93 →
/// 92–98, 256×32×32 (`PROBE_N=1`) 13.1–13.2 → 10.0–10.2, 64×224×224 (`PROBE_N=1`) 196–199 →
/// 159–178; from memory 64×112×112 641–671 → 512–533 (2 threads 325–332 → 230–237),
/// 32×224×226 1594–1607 → 1471–1513 (2 threads 932–962 → 914–948). The masks of a row's last
/// columns are the same for every row pair and taken once: computed at each step, 128×56×56
/// was slower than the two passes (223–246).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pairs_rows<L: Zmm, const MODE: u8>(
    x: &[L::E],
    (w, check, prefetch): (usize, bool, bool),
    div: L::E,
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let n = L::N;
    let half = w / 2;
    let pairs = x.len().checked_div(2 * w).unwrap_or(0);
    assert!(w > n && w.is_multiple_of(2) && x.len() == pairs * 2 * w && y.len() >= pairs * half);
    let (src, dst) = (x.as_ptr(), y.as_mut_ptr().cast::<L::E>());
    let reciprocal = L::ONE / div;
    let pair_bytes = 2 * w * size_of::<L::E>();
    let mut nan = L::M::default();
    // one row pair's outputs from the `2 N` columns from `col` (lanes `ma`, `mb`: the
    // columns below w; `mo`: the outputs)
    macro_rules! step {
        ($r0:expr, $r1:expr, $out:expr, $col:expr, $ma:expr, $mb:expr, $mo:expr) => {{
            let (r0, r1, col): (*const L::E, *const L::E, usize) = ($r0, $r1, $col);
            // SAFETY: lanes below w − col of columns col .. of rows 2k, 2k + 1 < 2 pairs: in
            // x.
            let (a, b, e, f) = unsafe {
                (
                    l.load_masked_zero($ma, r0.add(col)),
                    l.load_masked_zero($mb, r0.add(col + n)),
                    l.load_masked_zero($ma, r1.add(col)),
                    l.load_masked_zero($mb, r1.add(col + n)),
                )
            };
            if check {
                nan |= l.unordered(a, b) | l.unordered(e, f);
            }
            let top = zmm::fold::<L, MODE>(l, l.even(a, b), l.odd(a, b));
            let low = zmm::fold::<L, MODE>(l, l.even(e, f), l.odd(e, f));
            let v = zmm::finish_window::<L, MODE>(l, zmm::fold::<L, MODE>(l, top, low), reciprocal);
            // SAFETY: outputs col / 2 .. below half of output row k, inside y (asserted).
            unsafe { l.store_masked($out.add(col / 2), $mo, v) };
        }};
    }
    if w <= 2 * n && !prefetch {
        // one step per row pair, its masks the same for all: the general loop below does the
        // same steps, but its loop and prefetch tests per row pair cost short rows (without
        // this path, `PROBE_N=8 plane_probe 256 24 24 2 2 0`: 42–44 → 51–53 µs; 256×28×28 60
        // → 62–65)
        let (ma, mb, mo) = (L::ALL, L::lanes_below(w - n), L::lanes_below(half));
        for k in 0..pairs {
            let r0 = src.wrapping_add(2 * k * w);
            step!(
                r0,
                r0.wrapping_add(w),
                dst.wrapping_add(k * half),
                0,
                ma,
                mb,
                mo
            );
        }
        return nan != L::M::default();
    }
    // whole steps of 2 N columns, then the row's last columns (their masks the same for all)
    let whole = w / (2 * n) * (2 * n);
    let (ma, mb, mo) = (
        L::lanes_below(w - whole),
        L::lanes_below((w - whole).saturating_sub(n)),
        L::lanes_below(half - whole / 2),
    );
    for k in 0..pairs {
        let (r0, r1) = (
            src.wrapping_add(2 * k * w),
            src.wrapping_add((2 * k + 1) * w),
        );
        if prefetch {
            prefetch_lines_l2(
                r0.cast::<u8>().wrapping_add(PREFETCH_BYTES_AHEAD),
                pair_bytes,
            );
        }
        let out = dst.wrapping_add(k * half);
        let mut col = 0;
        while col < whole {
            step!(r0, r1, out, col, L::ALL, L::ALL, L::ALL);
            col += 2 * n;
        }
        if whole < w {
            step!(r0, r1, out, whole, ma, mb, mo);
        }
    }
    nan != L::M::default()
}

/// Index vectors of `_mm512_permutex2var_ps` that take lanes `shift .. shift + 16` of two
/// concatenated vectors, for `shift < count`.
#[inline]
#[target_feature(enable = "avx512f")]
fn shift_indices(count: usize) -> [__m512i; 16] {
    let mut out = [_mm512_setzero_si512(); 16];
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (j, v) in out.iter_mut().enumerate().take(count.min(16)) {
        *v = _mm512_add_epi32(lanes, _mm512_set1_epi32(j as i32));
    }
    out
}

/// The W pass (stride `S`, 1 or 2) of one channels-first plane straight from its input (see
/// `padded.rs`): W-pass row `r` (for `r < rows`, `q` apart in `t`) is
/// `t[r][f] = fold_j p[r][S*f + j]` for `f < 16 * vectors`, where `p` is the plane padded with
/// the start value of `MODE` (`pad_top` rows above, `pad_left` columns before). The padded row
/// is never written out: its vectors are masked loads of the input row (the padding lanes
/// masked off); at stride 2 they are split into even and odd columns by two permutes; tap `j`
/// of 16 outputs is then a two-vector permute of one phase. With `check`, also returns whether
/// any input value read is NaN or ±inf (`v - v` is NaN exactly then); the caller redoes a
/// plain-max pass with the exact rule when it is.
///
/// # Safety
/// The CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pad_wpass_direct<const MODE: u8, const S: usize, const K: usize>(
    x: &[f32],
    w: usize,
    k: usize,
    pad_top: usize,
    pad_left: usize,
    rows: usize,
    vectors: usize,
    q: usize,
    check: bool,
    t: &mut [f32],
) -> bool {
    let k = if K > 0 { K } else { k };
    let h = x.len().checked_div(w).unwrap_or(0);
    assert!(
        (S == 1 || S == 2)
            && (1..=16).contains(&k)
            && w >= 1
            && (1..=8).contains(&vectors)
            && 16 * vectors <= q
            && rows * q <= t.len()
    );
    // lanes of padded vector m (columns 16m ..) that hold input columns 0..w
    let mut masks = [0 as __mmask16; 2 * 8 + 2];
    for (m, mask) in masks.iter_mut().enumerate().take(S * (vectors + 1)) {
        let lo = pad_left.saturating_sub(16 * m).min(16);
        let hi = (pad_left + w).saturating_sub(16 * m).min(16);
        *mask = if hi > lo {
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
        } else {
            0
        };
    }
    let pad = pad_start::<MODE>();
    let shifts = shift_indices(k.div_ceil(S));
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let (src, dst) = (x.as_ptr(), t.as_mut_ptr());
    // the largest magnitude read (as integer bits): NaN or ±inf exactly when it reaches the
    // infinity's (see `any_nan_or_inf_avx512`)
    let magnitude = _mm512_set1_epi32(0x7fff_ffff);
    let mut top = _mm512_setzero_si512();
    for r in 0..rows {
        // SAFETY: r < rows and 16 * vectors <= q, so the stores stay in t[r*q .. (r+1)*q].
        let out = unsafe { dst.add(r * q) };
        if r < pad_top || r - pad_top >= h {
            for v in 0..vectors {
                // SAFETY: as above.
                unsafe { _mm512_storeu_ps(out.add(16 * v), pad) };
            }
            continue;
        }
        // column c of the padded row is x[row + c - pad_left]; masked-off lanes are not read
        let row = src.wrapping_add((r - pad_top) * w).wrapping_sub(pad_left);
        let mut load = |m: usize| -> __m512 {
            // SAFETY: the mask enables only lanes whose column 16m + l - pad_left lies in
            // 0..w of input row r - pad_top < h, inside x.
            let v = unsafe { _mm512_mask_loadu_ps(pad, masks[m], row.wrapping_add(16 * m)) };
            if check {
                let bits = _mm512_maskz_and_epi32(masks[m], _mm512_castps_si512(v), magnitude);
                top = _mm512_max_epu32(top, bits);
            }
            v
        };
        // the padded columns 16*S*v .. of this row, as S phases (S = 1: the row itself)
        let mut phases = |v: usize| -> (__m512, __m512) {
            if S == 1 {
                (load(v), pad)
            } else {
                let (a, b) = (load(2 * v), load(2 * v + 1));
                (
                    _mm512_permutex2var_ps(a, even, b),
                    _mm512_permutex2var_ps(a, odd, b),
                )
            }
        };
        // taps past the first phase vectors need the next ones (not when k <= S)
        let shifted = k > S;
        let mut cur = phases(0);
        for v in 0..vectors {
            let next = if shifted { phases(v + 1) } else { (pad, pad) };
            // tap 0 is the first phase itself; sums start from 0 as the reference does (an
            // all −0 window gives +0), and for max starting from the first tap is the same fold
            let mut acc = if MODE == 2 {
                _mm512_add_ps(_mm512_setzero_ps(), cur.0)
            } else {
                cur.0
            };
            for j in 1..k {
                let (a, b) = if S == 1 || j % 2 == 0 {
                    (cur.0, next.0)
                } else {
                    (cur.1, next.1)
                };
                let shift = j / S;
                let tap = if shift == 0 {
                    a
                } else {
                    _mm512_permutex2var_ps(a, shifts[shift], b)
                };
                acc = pad_fold::<MODE>(acc, tap);
            }
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(out.add(16 * v), acc) };
            cur = if shifted || v + 1 == vectors {
                next
            } else {
                phases(v + 1)
            };
        }
    }
    _mm512_cmpge_epu32_mask(top, _mm512_set1_epi32(0x7f80_0000)) != 0
}

/// Phase `t` of a stride-2 strip's row (`k3s2_strip`, `ks2_strip_indices`): the even and the
/// odd columns of input vectors `2 (first + t)` and `2 (first + t) + 1` of `row`, padding
/// where `masks` (`zmm::row_masks` of the row from vector `2 first`) leave lanes out, and with
/// `check` the lanes holding a NaN. Without padding before (`PL` = 0) the strip's last phase
/// (`t == V`) may lie wholly past the row (narrow rows: AlexNet's 55 columns in 4 vectors):
/// padding then, no loads, permutes or check (every other phase holds columns of the row).
///
/// # Safety
/// `row` is the start of a row whose lanes `masks` enable (masked-off lanes are not read;
/// the addresses are only formed, wrapping); the CPU supports AVX-512F (`l`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn stride2_phase<L: Zmm, const PL: usize, const V: usize>(
    l: L,
    row: *const L::E,
    masks: &[L::M],
    first: isize,
    t: usize,
    pad: L::V,
    check: bool,
) -> (L::V, L::V, L::M) {
    let i = 2 * (first + t as isize);
    if PL == 0 && t == V && masks[2 * t] | masks[2 * t + 1] == L::M::default() {
        return (pad, pad, L::M::default());
    }
    let n = L::N as isize;
    // SAFETY: the caller's: the masks enable only lanes of columns that lie in the row.
    let (a, b) = unsafe {
        (
            l.load_masked(pad, masks[2 * t], row.wrapping_offset(n * i)),
            l.load_masked(pad, masks[2 * t + 1], row.wrapping_offset(n * (i + 1))),
        )
    };
    let nan = if check {
        l.unordered(a, b)
    } else {
        L::M::default()
    };
    (l.even(a, b), l.odd(a, b), nan)
}

/// Input vectors `v0 − 1 .. v0 + V` of a stride-1 strip's row (`ks1_strip`,
/// `ks1_strip_indices`; slot `t`: vector `v0 − 1 + t`), padding where `masks`
/// (`zmm::row_masks` of the row from vector `v0 − 1`) leave lanes out, with `check` their NaN
/// lanes added to `nan`. Slots past the strip, the vector before the row without padding
/// before (`PL` = 0: no tap reads it), and the vectors before and after the strip when wholly
/// outside the row hold padding, with no load or check.
///
/// # Safety
/// As [`stride2_phase`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn stride1_row<L: Zmm, const PL: usize, const V: usize>(
    l: L,
    row: *const L::E,
    masks: &[L::M; 4 + 2],
    v0: usize,
    pad: L::V,
    check: bool,
    nan: &mut L::M,
) -> [L::V; 4 + 2] {
    let none = L::M::default();
    std::array::from_fn(|t| {
        if t >= V + 2 || (t == 0 && PL == 0) || ((t == 0 || t == V + 1) && masks[t] == none) {
            return pad;
        }
        let i = (v0 + t) as isize - 1;
        // SAFETY: the caller's: the mask enables only lanes of columns that lie in the row.
        let v = unsafe { l.load_masked(pad, masks[t], row.wrapping_offset(L::N as isize * i)) };
        if check {
            *nan |= l.unordered(v, v);
        }
        v
    })
}

/// Pooling 3×3 at stride 2 of one channels-first plane (`h × w`, padded by `pad_top` rows
/// above and `PL` ≤ 1 columns before, the rest of every window past the input being padding),
/// output columns `16 * v0 .. 16 * (v0 + V)` (clipped to `ow`) of every output row, with no
/// intermediate rows in memory: each input row is loaded once per strip of `V` output vectors,
/// split into even and odd columns, folded along W into `V` registers; output row `i` folds
/// W rows `2i, 2i + 1, 2i + 2` (top to bottom: the reference's row-major fold regrouped) and
/// W row `2i + 2` is carried over to output row `i + 1`. `MODE`: 0 = the exact max rule, 1 = the
/// plain max (with `check`, returns whether any value read is NaN; the caller then redoes the
/// plane with the exact rule), 2 = sum (each window's row sums in column order, then the rows
/// in order: the reference's sum regrouped), then divided by the windows' divisors: multiplied
/// by `reciprocals` (theirs, one per output or one for all), fused with the `+ 0` as
/// [`zmm::finish_window`] does. Average 3×3 stride 2, against the W-pass rows, the H pass and a
/// division pass it took before (`PROBE_N=8 plane_probe 64 112 112 3 2 1 avg`, 1 thread, two
/// rounds alternating, µs per plane): 4.16–4.28 → 2.41–2.68, the padding in the divisor or
/// not (`PROBE_EXCLUDE=1`); `.. 96 55 55 3 2 0 avg` 0.49–0.51 → 0.23–0.31.
///
/// Measured (`plane_probe C 112 112 3 2 1`, C = 8 and 16, 1 thread, the time per extra
/// plane): the W pass into a row buffer and the H pass from it took 1.65 µs a plane, this
/// 0.97–1.0 µs. On this machine a 512-bit max or permute issues once a cycle, so the count of
/// vector operations is the cost: here 2 permutes, 1 compare, 2 maxima and 1 lane shift per
/// 32 input columns of a row, and 2 maxima per output vector, nothing stored but the output.
/// In `nnpool bench --layout nchw` (same run): resnet_stem_max 1.75–1.81 → 1.22–1.26 ms on 1
/// thread, 0.86–0.88 → 0.57 on 2; max3d 1.81–2.01 → 1.33–1.37 and 0.95–1.46 → 0.57–0.60;
/// alexnet_max 0.34 → 0.25 and 0.18–0.23 → 0.13. Skipping a last phase wholly past the row
/// (AlexNet's 55-column rows), same run, four rounds: `plane_probe 16 55 55 3 2 0` 5.86–5.98
/// → 4.06–4.19 µs a call (32 planes: 10.6–10.7 → 7.0–7.5 µs); 112×112 unchanged.
///
/// With `PREFETCH`, the first strip prefetches the input [`PREFETCH_BYTES_AHEAD`] past the
/// rows it reads (into the next plane at the plane's end).
///
/// # Safety
/// The CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn k3s2_strip<
    L: Zmm,
    const MODE: u8,
    const PL: usize,
    const V: usize,
    const PREFETCH: bool,
>(
    x: &[L::E],
    w: usize,
    pad_top: usize,
    oh: usize,
    ow: usize,
    v0: usize,
    check: bool,
    reciprocals: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let lane_count = L::N;
    let h = x.len().checked_div(w).unwrap_or(0);
    assert!(
        MODE <= 2
            && (reciprocals.len() <= 1 || reciprocals.len() == y.len())
            && PL <= 1
            && (1..=4).contains(&V)
            && w >= 1
            && y.len() == oh * ow
            && lane_count * (v0 + V - 1) < ow
    );
    let pad = zmm::start::<L, MODE>(l);
    // (a macro, not a closure: see `wrow`)
    macro_rules! fold {
        ($acc:expr, $x:expr) => {
            zmm::fold::<L, MODE>(l, $acc, $x)
        };
    }
    // phases first .. first + V + 1 (phase p: even and odd columns of input vectors 2p and
    // 2p + 1); with PL = 1 the phase before the strip gives the first tap's last lane
    let first = (v0 + 1 - PL) as isize - 1;
    let masks = zmm::row_masks::<L, { 2 * 4 + 2 }>(w, 2 * first, 2 * V + 2);
    // W pass of padded row r for the strip's V output vectors, and the lanes holding a NaN.
    // A macro, not a closure: a closure here is compiled as a call, outside the AVX-512
    // context. Each phase is made just before the outputs that need it (few live registers).
    macro_rules! wrow {
        ($r:expr) => {{
            let r: usize = $r;
            let mut out = [pad; V];
            let mut nan = L::M::default();
            if r >= pad_top && r - pad_top < h {
                let row = x[(r - pad_top) * w..].as_ptr();
                // phase t of the strip: (even, odd) columns of input vectors 2(first + t) and
                // 2(first + t) + 1, and its NaN lanes
                macro_rules! phase {
                    ($t:expr) => {
                        // SAFETY: `row` starts row r - pad_top of x, `masks` are its lanes
                        unsafe { stride2_phase::<L, PL, V>(l, row, &masks, first, $t, pad, check) }
                    };
                }
                if PL == 1 {
                    // window columns 2c - 1, 2c, 2c + 1 of output column c: the odd column
                    // before (the last lane of the phase before), the even and the odd one; the
                    // phase before the strip is checked with the strip before it
                    let mut before = if first >= 0 { phase!(0).1 } else { pad };
                    for (u, o) in out.iter_mut().enumerate() {
                        let at = phase!(u + 1);
                        nan |= at.2;
                        let left = l.shifted(before, at.1, at.1, -1);
                        *o = fold!(fold!(left, at.0), at.1);
                        before = at.1;
                    }
                } else {
                    // window columns 2c, 2c + 1, 2c + 2: even, odd, the next even one
                    let mut at = phase!(0);
                    nan |= at.2;
                    for (u, o) in out.iter_mut().enumerate() {
                        let after = phase!(u + 1);
                        nan |= after.2;
                        let right = l.shifted(at.0, at.0, after.0, 1);
                        *o = fold!(fold!(at.0, at.1), right);
                        at = after;
                    }
                }
            }
            (out, nan)
        }};
    }
    let store_masks = zmm::row_masks::<L, 4>(ow, v0 as isize, V);
    let dst = y.as_mut_ptr().cast::<L::E>();
    // one reciprocal for all, broadcast once per strip
    let reciprocal = l.splat(match reciprocals {
        [r] => *r,
        _ => L::ONE,
    });
    let (mut carry, mut nan) = wrow!(0);
    let row_bytes = w * std::mem::size_of::<L::E>();
    for i in 0..oh {
        if PREFETCH && v0 == 0 {
            // the two input rows PREFETCH_BYTES_AHEAD past the ones this output row reads
            // (past the plane's end: the next plane's, which follows it in memory)
            let from = x
                .as_ptr()
                .cast::<u8>()
                .wrapping_add(2 * i * row_bytes + PREFETCH_BYTES_AHEAD);
            prefetch_lines_l2(from, 2 * row_bytes);
        }
        // rows 2i, 2i + 1, 2i + 2, top to bottom; row 2i + 2 is the next output row's first
        let (mid, n1) = wrow!(2 * i + 1);
        let mut acc = [pad; V];
        for u in 0..V {
            acc[u] = fold!(carry[u], mid[u]);
        }
        let (low, n2) = wrow!(2 * i + 2);
        nan |= n1 | n2;
        for u in 0..V {
            let at = i * ow + lane_count * (v0 + u);
            let mut y = fold!(acc[u], low[u]);
            if MODE == 2 {
                // SAFETY: the reciprocals cover the outputs (asserted); the mask keeps the
                // lanes below ow.
                y = unsafe { finish_sum(l, y, reciprocal, reciprocals, at, store_masks[u]) };
            }
            // SAFETY: output row i < oh, columns N (v0 + u) .. below ow (the store mask).
            unsafe { l.store_masked(dst.add(at), store_masks[u], y) };
        }
        carry = low;
    }
    nan != L::M::default()
}

/// Max `K`×`K` (2 or 3) at stride 2 with indices (PyTorch's `return_indices`) of one
/// channels-first plane, output columns `N v0 .. N (v0 + V)` of every output row:
/// [`k3s2_strip`]'s passes, each fold keeping the index of the value it keeps. The W pass of
/// an input row folds its taps in column order, remembering which tap won, and the row's
/// index is then `row · w + 2c − PL + tap`; output row `i` folds the W rows `2i .. 2i + K` in
/// order, skipping padding rows (3×3: row `2i + 2` carried over to output row `i + 1`). The
/// fold keeps the later value when it is greater or NaN, so the regrouped fold keeps what the
/// reference's row-major scan keeps: the last NaN, else the first maximum. Padding never
/// wins: padding rows are skipped, and the one padding column (column −1 with `PL` = 1) is
/// −∞ and comes first, so it is kept only when the row's values are −∞ too, where the index
/// is clamped to the row's first column, the reference's first in-bounds tap. `MODE`: 0 =
/// the exact rule, 1 = the plain `>` (returns whether any value read is NaN; the caller then
/// redoes the plane with the exact rule). Indices are `base + h · w + c` (`base`: the plane's
/// offset in its volume), stored as i64.
///
/// # Safety
/// The CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn ks2_strip_indices<
    L: Zmm,
    const MODE: u8,
    const K: usize,
    const PL: usize,
    const V: usize,
    const PREFETCH: bool,
>(
    x: &[L::E],
    w: usize,
    pad_top: usize,
    oh: usize,
    ow: usize,
    v0: usize,
    base: usize,
    y: &mut [MaybeUninit<L::E>],
    idx: &mut [i64],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let lane_count = L::N;
    let h = x.len().checked_div(w).unwrap_or(0);
    // (the last two: every output's first tap row and column lie in the plane or in the
    // padding before it, so that a window's index is one of its in-bounds taps)
    assert!(
        MODE <= 1
            && (K == 2 || K == 3)
            && PL <= 1
            && (1..=4).contains(&V)
            && w >= 1
            && base + x.len() <= i32::MAX as usize
            && y.len() == oh * ow
            && idx.len() == y.len()
            && lane_count * (v0 + V - 1) < ow
            && pad_top < K
            && (oh == 0 || 2 * (oh - 1) < h + pad_top)
            && 2 * (ow - 1) < w + PL
    );
    let pad = l.splat(L::NEG_INFINITY);
    let check = MODE == 1;
    // (macros, not closures: see `k3s2_strip`)
    macro_rules! fold {
        ($acc:expr, $acc_i:expr, $x:expr, $x_i:expr) => {{
            let take = if MODE == 0 {
                l.greater_or_nan($x, $acc)
            } else {
                l.greater($x, $acc)
            };
            ($acc, $acc_i) = (l.select($acc, take, $x), l.select_index($acc_i, take, $x_i));
        }};
    }
    let first = (v0 + 1 - PL) as isize - 1;
    let masks = zmm::row_masks::<L, { 2 * 4 + 2 }>(w, 2 * first, 2 * V + 2);
    // the column of each output lane's first tap, 2c − PL
    let mut cols = [l.splat_index(0); V];
    for (u, c) in cols.iter_mut().enumerate() {
        *c = l.index_ramp((2 * lane_count * (v0 + u)) as i32 - PL as i32, 2);
    }
    let (tap0, tap1, tap2) = (l.splat_index(0), l.splat_index(1), l.splat_index(2));
    // W pass of padded row r: values, indices, whether the row is in the plane, NaN lanes
    macro_rules! wrow {
        ($r:expr) => {{
            let r: usize = $r;
            let mut out = [pad; V];
            let mut out_i = [tap0; V];
            let mut nan = L::M::default();
            let inside = r >= pad_top && r - pad_top < h;
            if inside {
                let row = x[(r - pad_top) * w..].as_ptr();
                let row_start = l.splat_index((base + (r - pad_top) * w) as i32);
                // phase t of the strip: (even, odd) columns of input vectors 2(first + t)
                // and 2(first + t) + 1, and its NaN lanes
                macro_rules! phase {
                    ($t:expr) => {
                        // SAFETY: `row` starts row r - pad_top of x, `masks` are its lanes
                        unsafe { stride2_phase::<L, PL, V>(l, row, &masks, first, $t, pad, check) }
                    };
                }
                // taps 0, 1 (, 2) of output vector u folded in order; `which` the winning tap
                macro_rules! taps {
                    ($u:expr, $t0:expr, $t1:expr, $t2:expr) => {{
                        let (mut v, mut which) = ($t0, tap0);
                        fold!(v, which, $t1, tap1);
                        if K == 3 {
                            fold!(v, which, $t2, tap2);
                        }
                        let mut at = l.add_index(l.add_index(row_start, cols[$u]), which);
                        if PL == 1 && v0 == 0 && $u == 0 {
                            // column −1 kept: the row's values are −∞, its first column
                            at = l.max_index(at, row_start);
                        }
                        out[$u] = v;
                        out_i[$u] = at;
                    }};
                }
                if K == 2 && PL == 0 {
                    // columns 2c, 2c + 1: even, odd
                    for u in 0..V {
                        let at = phase!(u);
                        nan |= at.2;
                        taps!(u, at.0, at.1, pad);
                    }
                } else if PL == 1 {
                    // columns 2c − 1, 2c (, 2c + 1): the odd column before, the even (, the odd)
                    let mut before = if first >= 0 { phase!(0).1 } else { pad };
                    for u in 0..V {
                        let at = phase!(u + 1);
                        nan |= at.2;
                        taps!(u, l.shifted(before, at.1, at.1, -1), at.0, at.1);
                        before = at.1;
                    }
                } else {
                    // columns 2c, 2c + 1, 2c + 2: even, odd, the next even one
                    let mut at = phase!(0);
                    nan |= at.2;
                    for u in 0..V {
                        let after = phase!(u + 1);
                        nan |= after.2;
                        taps!(u, at.0, at.1, l.shifted(at.0, at.0, after.0, 1));
                        at = after;
                    }
                }
            }
            (out, out_i, inside, nan)
        }};
    }
    let store_masks = zmm::row_masks::<L, 4>(ow, v0 as isize, V);
    let (dst, dst_i) = (y.as_mut_ptr().cast::<L::E>(), idx.as_mut_ptr());
    let row_bytes = w * std::mem::size_of::<L::E>();
    // the fold of the W rows in order, those inside the plane (at least one is: asserted)
    macro_rules! fold_row {
        ($acc:ident, $acc_i:ident, $any:ident, $row:expr, $row_i:expr, $inside:expr) => {
            if $inside {
                if $any {
                    for u in 0..V {
                        fold!($acc[u], $acc_i[u], $row[u], $row_i[u]);
                    }
                } else {
                    ($acc, $acc_i, $any) = ($row, $row_i, true);
                }
            }
        };
    }
    macro_rules! store_row {
        ($i:expr, $acc:expr, $acc_i:expr) => {
            for u in 0..V {
                let at = $i * ow + lane_count * (v0 + u);
                // SAFETY: output row i < oh, columns N (v0 + u) .. below ow (the store mask);
                // idx has y's length (asserted).
                unsafe {
                    l.store_masked(dst.add(at), store_masks[u], $acc[u]);
                    l.store_indices_masked(dst_i.add(at), store_masks[u], $acc_i[u]);
                }
            }
        };
    }
    macro_rules! prefetch {
        ($i:expr) => {
            if PREFETCH && v0 == 0 {
                let from = x
                    .as_ptr()
                    .cast::<u8>()
                    .wrapping_add(2 * $i * row_bytes + PREFETCH_BYTES_AHEAD);
                prefetch_lines_l2(from, 2 * row_bytes);
            }
        };
    }
    let mut nan = L::M::default();
    if K == 2 {
        for i in 0..oh {
            prefetch!(i);
            let (mut acc, mut acc_i, mut any, n0) = wrow!(2 * i);
            let (low, low_i, low_inside, n1) = wrow!(2 * i + 1);
            fold_row!(acc, acc_i, any, low, low_i, low_inside);
            debug_assert!(any, "every window holds a row of the plane");
            nan |= n0 | n1;
            store_row!(i, acc, acc_i);
        }
        return nan != L::M::default();
    }
    let (mut carry, mut carry_i, mut carry_inside, n0) = wrow!(0);
    nan |= n0;
    for i in 0..oh {
        prefetch!(i);
        // rows 2i, 2i + 1, 2i + 2; row 2i + 2 is the next output row's first
        let (mut acc, mut acc_i, mut any) = (carry, carry_i, carry_inside);
        let (mid, mid_i, mid_inside, n1) = wrow!(2 * i + 1);
        fold_row!(acc, acc_i, any, mid, mid_i, mid_inside);
        let (low, low_i, low_inside, n2) = wrow!(2 * i + 2);
        fold_row!(acc, acc_i, any, low, low_i, low_inside);
        debug_assert!(any, "every window holds a row of the plane");
        nan |= n1 | n2;
        store_row!(i, acc, acc_i);
        (carry, carry_i, carry_inside) = (low, low_i, low_inside);
    }
    nan != L::M::default()
}

/// Max `K`×`K` (2 to 7) at stride 1 with indices of one channels-first plane (Inception's
/// 3×3, YOLO's SPPF 5×5), output columns `N v0 .. N (v0 + V)` of every output row, padded by
/// `PL` columns before (0 or `K / 2`) and `pad_top` rows above: [`ks2_strip_indices`]' folds
/// at stride 1. The W pass of each input row folds its `K` taps in column order (each a lane
/// shift of neighbouring input vectors), remembering which tap won; the last `K` W rows stay
/// in registers and output row `i` folds W rows `i .. i + K` in order, skipping padding rows.
/// Padding columns come before the row's values and are −∞: one kept means the window's values
/// in that row are −∞, and its index is clamped to the row's first column, the reference's
/// first in-bounds tap. `MODE` as in [`ks2_strip_indices`].
///
/// # Safety
/// The CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn ks1_strip_indices<
    L: Zmm,
    const MODE: u8,
    const K: usize,
    const PL: usize,
    const V: usize,
>(
    x: &[L::E],
    w: usize,
    pad_top: usize,
    oh: usize,
    ow: usize,
    v0: usize,
    base: usize,
    y: &mut [MaybeUninit<L::E>],
    idx: &mut [i64],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let lane_count = L::N;
    let none = L::M::default();
    let h = x.len().checked_div(w).unwrap_or(0);
    // (the last two: every output's first tap row and column lie in the plane or in the
    // padding before it, so that a window's index is one of its in-bounds taps)
    assert!(
        MODE <= 1
            && (2..=7).contains(&K)
            && PL < K
            && PL <= 3
            && (1..=4).contains(&V)
            && w >= 1
            && base + x.len() <= i32::MAX as usize
            && y.len() == oh * ow
            && idx.len() == y.len()
            && lane_count * (v0 + V - 1) < ow
            && pad_top < K
            && (oh == 0 || oh - 1 < h + pad_top)
            && ow - 1 < w + PL
    );
    let pad = l.splat(L::NEG_INFINITY);
    let check = MODE == 1;
    // (macros, not closures: see `k3s2_strip`)
    macro_rules! fold {
        ($acc:expr, $acc_i:expr, $x:expr, $x_i:expr) => {{
            let take = if MODE == 0 {
                l.greater_or_nan($x, $acc)
            } else {
                l.greater($x, $acc)
            };
            ($acc, $acc_i) = (l.select($acc, take, $x), l.select_index($acc_i, take, $x_i));
        }};
    }
    let masks = zmm::row_masks::<L, { 4 + 2 }>(w, v0 as isize - 1, V + 2);
    // the column of each output lane's first tap, c − PL
    let mut cols = [l.splat_index(0); V];
    for (u, c) in cols.iter_mut().enumerate() {
        *c = l.index_ramp((lane_count * (v0 + u)) as i32 - PL as i32, 1);
    }
    let taps: [__m512i; 7] = std::array::from_fn(|j| l.splat_index(j as i32));
    // W pass of input row r: values, indices, whether the row is in the plane, NaN lanes
    macro_rules! wrow {
        ($r:expr) => {{
            let r: usize = $r;
            let mut out = [pad; V];
            let mut out_i = [taps[0]; V];
            let mut nan = none;
            let inside = r >= pad_top && r - pad_top < h;
            if inside {
                let row = x[(r - pad_top) * w..].as_ptr();
                let row_start = l.splat_index((base + (r - pad_top) * w) as i32);
                // input vectors v0 − 1 .. v0 + V (slot t: vector v0 − 1 + t)
                // SAFETY: `row` starts row r - pad_top of x, `masks` are its lanes.
                let xs =
                    unsafe { stride1_row::<L, PL, V>(l, row, &masks, v0, pad, check, &mut nan) };
                for u in 0..V {
                    let (b, a, n) = (xs[u], xs[u + 1], xs[u + 2]);
                    let (mut v, mut which) = (l.shifted(b, a, n, -(PL as isize)), taps[0]);
                    // (index loops: iterator adapters were left as calls, outside the
                    // AVX-512 context, and the shifts' counts unknown)
                    #[allow(clippy::needless_range_loop)]
                    for j in 1..K {
                        fold!(
                            v,
                            which,
                            l.shifted(b, a, n, j as isize - PL as isize),
                            taps[j]
                        );
                    }
                    let mut at = l.add_index(l.add_index(row_start, cols[u]), which);
                    if PL > 0 && v0 == 0 && u == 0 {
                        // a padding column kept: the row's values are −∞, its first column
                        at = l.max_index(at, row_start);
                    }
                    out[u] = v;
                    out_i[u] = at;
                }
            }
            (out, out_i, inside, nan)
        }};
    }
    let store_masks = zmm::row_masks::<L, 4>(ow, v0 as isize, V);
    let (dst, dst_i) = (y.as_mut_ptr().cast::<L::E>(), idx.as_mut_ptr());
    // the W rows i .. i + K − 1 of output row i (slot K − 1 is filled in its turn)
    let mut ring = [([pad; V], [taps[0]; V], false); 7];
    let mut nan = none;
    #[allow(clippy::needless_range_loop)]
    for r in 0..K - 1 {
        let (v, vi, inside, n) = wrow!(r);
        nan |= n;
        ring[r] = (v, vi, inside);
    }
    for i in 0..oh {
        let (v, vi, inside, n) = wrow!(i + K - 1);
        nan |= n;
        ring[K - 1] = (v, vi, inside);
        // the rows in order, those inside the plane (at least one is: asserted)
        let (mut acc, mut acc_i, mut any) = ring[0];
        #[allow(clippy::needless_range_loop)]
        for t in 1..K {
            let (row, row_i, inside) = ring[t];
            if inside {
                if any {
                    for u in 0..V {
                        fold!(acc[u], acc_i[u], row[u], row_i[u]);
                    }
                } else {
                    (acc, acc_i, any) = (row, row_i, true);
                }
            }
        }
        debug_assert!(any, "every window holds a row of the plane");
        for u in 0..V {
            let at = i * ow + lane_count * (v0 + u);
            // SAFETY: output row i < oh, columns N (v0 + u) .. below ow (the store mask);
            // idx has y's length (asserted).
            unsafe {
                l.store_masked(dst.add(at), store_masks[u], acc[u]);
                l.store_indices_masked(dst_i.add(at), store_masks[u], acc_i[u]);
            }
        }
        for t in 0..K - 1 {
            ring[t] = ring[t + 1];
        }
    }
    nan != none
}

/// Pooling `K`×`K` (2, 3, 5 or 7) at stride 1 of one channels-first plane (Inception, YOLO's
/// SPPF, large average windows; the stride-1 sum of an average backward), fused as
/// [`k3s2_strip`] is, every fold in registers:
/// - the W pass of each input row folds `K` taps of the row's vectors, each shifted by its
///   offset `j − PL` columns (`PL` 0 or `K / 2`; one lane shift of two neighbouring vectors,
///   none for offset 0). 2×2 and 3×3 fold their taps in turn; 5×5 and 7×7 fold pairs of
///   neighbouring columns, once per input vector, then taps (0, 1), (2, 3), (4, 5) as shifted
///   pairs and the last tap alone: 3 or 4 folds and shifts per output instead of 4 or 6;
/// - the H pass likewise: row pairs `P_r = W_r ∘ W_(r+1)`, each formed once, and output row
///   `i` folds `P_i`, `P_(i+2)`, (`P_(i+4)`,) then `W_(i+K−1)`, the newest row, last: 2 or 3
///   folds per output instead of 4 or 6, and one fold from the newest row to the output, where
///   a fold per row in turn made a chain of `K − 1` dependent folds.
///
/// `MODE`: 0 = the exact max rule, 1 = the plain max (with `check`, returns whether any value
/// read is NaN), 2 = sum, from +0, then divided by the windows' divisors: multiplied by
/// `reciprocals`, their reciprocals (one per output, `oh × ow`; one for every output; or
/// none), fused with the `+ 0` as [`zmm::finish_window`] does, within 1 ulp of the quotient. Both max rules are order-free (the earlier group wins ties,
/// the later group's NaN wins), so the values are the reference's; sums are grouped as above
/// (3×3: the reference's row-by-row order) and differ from it only by rounding.
///
/// With `DIVIDE_INPUTS` a sum first divides its inputs, as it loads them, by `input_divisors`
/// (one per input or one for all): an average backward divides each output gradient by its
/// window's divisor before summing. Measured against a separate pass into a divided copy
/// (inception_avg_s1_bwd nchw, `nnpool bench`, builds alternating, 5 rounds, fastest / median
/// ms): 1 thread 0.324 / 0.456 → 0.225 / 0.229, 2 threads 0.214 / 0.236 → 0.183 / 0.194. A
/// run-time test for it in the forward kernel cost 8 % (inception_avg_s1 nchw, `plane_probe
/// 192 28 28 3 1 1 avg`, 194 → 211 µs), hence the constant.
///
/// Measured (`PROBE_N=8 plane_probe 64 56 56 7 1 3 avg` and `.. 256 20 20 5 1 2`, 1 thread,
/// builds alternating, the fastest runs, µs per call): a fold per tap and per row in turn
/// 526–537 → 468–477 (7×7 average), 244–260 → 216–220 (5×5 max). Sums moved half onto the
/// FMA pipes (`x·1 + acc`, the same bits), unmasked stores of whole vectors, or a product in
/// place of the division, gave nothing; `perf` puts most samples on the stores, which wait
/// for the folds.
///
/// Measured (`plane_probe 192 28 28 3 1 1 [avg]`, 1 thread, same run; per plane, against
/// the separate passes): max 198 → 154 ns, average 298 → 142 ns. `nnpool bench --layout
/// nchw` (same run, 1 / 2 threads): inception_avg_s1 0.50–0.61 → 0.25–0.35 / 0.26–0.29 →
/// 0.13–0.18 ms, inception_avg_s1_bwd (its stride-1 sum) 0.60–0.61 → 0.34 / 0.36–0.40 →
/// 0.19–0.24 ms.
///
/// 2×2 (YOLOv3-tiny's stride-1 max), against the W-pass rows and the H pass it took before
/// (`PROBE_N=8 plane_probe 64 56 56 2 1 0 [avg]`, 1 thread, two rounds alternating, ns per
/// plane): max 653–663 → 333–339, padded by 1 705–723 → 354–355, average 997–1025 → 354–356,
/// average backward (`PROBE_BWD=1`) 1565–1744 → 365–368.
///
/// Measured (`plane_probe 256 20 20 5 1 2`, 1 thread, same run; per plane): 263 → 169 ns.
/// `nnpool bench --layout nchw` (same run, two rounds, 1 / 2 threads): sppf_max5 0.42–0.61 →
/// 0.29–0.38 / 0.22–0.33 → 0.15–0.20 ms; large_avg (7×7) 0.96–1.34 → 0.69–0.96 / 0.65–0.81 →
/// 0.48–0.53 ms.
///
/// # Safety
/// The CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn ks1_strip<
    L: Zmm,
    const MODE: u8,
    const K: usize,
    const PL: usize,
    const V: usize,
    const DIVIDE_INPUTS: bool,
>(
    x: &[L::E],
    w: usize,
    pad_top: usize,
    oh: usize,
    ow: usize,
    v0: usize,
    check: bool,
    reciprocals: &[L::E],
    input_divisors: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let lane_count = L::N;
    let none = L::M::default();
    let h = x.len().checked_div(w).unwrap_or(0);
    assert!(
        (K == 2 || K == 3 || K == 5 || K == 7)
            && (PL == 0 || PL == K / 2)
            && (1..=4).contains(&V)
            && w >= 1
            && y.len() == oh * ow
            && (reciprocals.len() <= 1 || reciprocals.len() == y.len())
            && (input_divisors.len() == 1 || input_divisors.len() == x.len() || !DIVIDE_INPUTS)
            && (MODE == 2 || !DIVIDE_INPUTS)
            && lane_count * (v0 + V - 1) < ow
    );
    let pad = zmm::start::<L, MODE>(l);
    let masks = zmm::row_masks::<L, { 4 + 2 }>(w, v0 as isize - 1, V + 2);
    // (macros, not closures: see `wrow`)
    macro_rules! fold {
        ($acc:expr, $x:expr) => {
            zmm::fold::<L, MODE>(l, $acc, $x)
        };
    }
    // lanes l + s of (before, at, after) for −N < s < N
    macro_rules! shifted {
        ($before:expr, $at:expr, $after:expr, $s:expr) => {
            l.shifted($before, $at, $after, $s)
        };
    }
    // The W pass of input row r (padding rows: `pad`) for the strip's V output vectors
    macro_rules! wrow {
        ($r:expr) => {{
            let r: usize = $r;
            let mut out = [pad; V];
            let mut nan = none;
            if r >= pad_top && r - pad_top < h {
                let row = x[(r - pad_top) * w..].as_ptr();
                // input vectors v0 − 1 .. v0 + V (slot t: vector v0 − 1 + t)
                // SAFETY: `row` starts row r - pad_top of x, `masks` are its lanes.
                let xs =
                    unsafe { stride1_row::<L, PL, V>(l, row, &masks, v0, pad, check, &mut nan) };
                let xs = if DIVIDE_INPUTS {
                    divide_row(l, &xs, input_divisors, (r - pad_top) * w, v0, &masks)
                } else {
                    xs
                };
                let pl = PL as isize;
                if K == 2 {
                    // taps 0 and 1
                    for (u, o) in out.iter_mut().enumerate() {
                        let (b, a, n) = (xs[u], xs[u + 1], xs[u + 2]);
                        *o = fold!(shifted!(b, a, n, -pl), shifted!(b, a, n, 1 - pl));
                    }
                } else if K == 3 {
                    // taps 0, 1, 2 in turn: pairs would cost more shifts than they save
                    for (u, o) in out.iter_mut().enumerate() {
                        let (b, a, n) = (xs[u], xs[u + 1], xs[u + 2]);
                        let acc = fold!(shifted!(b, a, n, -pl), shifted!(b, a, n, 1 - pl));
                        *o = fold!(acc, shifted!(b, a, n, 2 - pl));
                    }
                } else {
                    // pair folds: lane l of slot t folds columns l and l + 1 of vector
                    // v0 − 1 + t (the last slot's last lane folds padding: no shift reaches it)
                    let pairs: [L::V; 4 + 2] = std::array::from_fn(|t| {
                        let next = if t + 1 < V + 2 { xs[t + 1] } else { pad };
                        fold!(xs[t], shifted!(xs[t], xs[t], next, 1))
                    });
                    for (u, o) in out.iter_mut().enumerate() {
                        let (b, a, n) = (pairs[u], pairs[u + 1], pairs[u + 2]);
                        // taps 0, 1 | 2, 3 | (4, 5 |) as pairs, then the last tap on its own
                        let mut acc = fold!(shifted!(b, a, n, -pl), shifted!(b, a, n, 2 - pl));
                        if K == 7 {
                            acc = fold!(acc, shifted!(b, a, n, 4 - pl));
                        }
                        let last = shifted!(xs[u], xs[u + 1], xs[u + 2], (K - 1) as isize - pl);
                        *o = fold!(acc, last);
                    }
                }
            }
            (out, nan)
        }};
    }
    let store_masks = zmm::row_masks::<L, 4>(ow, v0 as isize, V);
    let dst = y.as_mut_ptr().cast::<L::E>();
    // one reciprocal for all, broadcast once per strip
    let reciprocal = l.splat(match reciprocals {
        [r] => *r,
        _ => L::ONE,
    });
    // Row pairs P_r = W_r ∘ W_(r+1) for r = i .. i + K − 3 (slots from K − 2 on unused), and
    // the last W row, W_(i + K − 2): output row i folds P_i, P_(i+2), .., W_(i + K − 1)
    let mut row_pairs = [[pad; V]; 5];
    let (mut last, mut nan) = wrow!(0);
    for (r, slot) in row_pairs.iter_mut().enumerate().take(K - 2) {
        let (next, n) = wrow!(r + 1);
        nan |= n;
        for u in 0..V {
            slot[u] = fold!(last[u], next[u]);
        }
        last = next;
    }
    for i in 0..oh {
        let (low, n) = wrow!(i + K - 1);
        nan |= n;
        for u in 0..V {
            // 2×2: the last W row and the new one
            let mut v = if K == 2 { last[u] } else { row_pairs[0][u] };
            if K >= 5 {
                v = fold!(v, row_pairs[2][u]);
            }
            if K == 7 {
                v = fold!(v, row_pairs[4][u]);
            }
            v = fold!(v, low[u]);
            let at = i * ow + lane_count * (v0 + u);
            if MODE == 2 {
                // SAFETY: the reciprocals cover the outputs (asserted); the mask keeps the
                // lanes below ow.
                v = unsafe { finish_sum(l, v, reciprocal, reciprocals, at, store_masks[u]) };
            }
            // SAFETY: output row i < oh, columns N (v0 + u) .. below ow (the store mask).
            unsafe { l.store_masked(dst.add(at), store_masks[u], v) };
        }
        if K >= 3 {
            let newest: [L::V; V] = std::array::from_fn(|u| fold!(last[u], low[u]));
            for t in 0..K - 3 {
                row_pairs[t] = row_pairs[t + 1];
            }
            row_pairs[K - 3] = newest;
        }
        last = low;
    }
    nan != none
}

/// Pooling a stride-1 window of `kh × kw` (one of them at least 8: YOLO's SPP 9×9 and 13×13,
/// large averages) over one channels-first plane, output columns `N v0 .. N (v0 + V)`
/// (clipped to `ow`) of every output row, at a cost per output that grows with the logarithm
/// of `kw` and not at all with `kh`, where a fold per tap cost `kh + kw` folds:
/// - **W pass**, per input row: the `V + E` vectors of the padded row the strip reads (`E`
///   past its outputs, `E = ⌈(kw − 1) / N⌉`, at most 2) are masked loads straight from the
///   input, padding lanes masked off. Level `t` holds, per lane, the fold of `2^t`
///   consecutive columns: level `t + 1` folds level `t` with itself shifted by `2^t` lanes (a
///   two-vector permute). Max then folds the top level `2^j ≤ kw` with itself shifted by
///   `kw − 2^j`: two overlapping runs that together cover the window, which max may fold
///   (the exact rule keeps a run's first maximum or last NaN, and the earlier run goes
///   first). Sums add, as the levels are formed, the level of each of `kw`'s set binary
///   digits at its offset (disjoint runs end to end, from the shortest): `log2 kw` folds,
///   and one per set digit.
/// - **H pass**, van Herk / Gil-Werman over blocks of `kh` W-pass rows: a running prefix of
///   the block (in registers), and the suffixes of the block before (on the stack, formed
///   when a block completes); output row `i` is the suffix from row `i` folded with the
///   prefix to row `i + kh − 1`, or the whole block's prefix when `i` starts one. Three folds
///   per output whatever `kh`, in the rows' order.
///
/// `MODE`, `check`, `reciprocals` and `DIVIDE_INPUTS` / `input_divisors` as for
/// [`ks1_strip`] (each input value is loaded once here, so dividing it as it is loaded divides
/// it once, as the reference does). Max values are the reference's bits; sums are grouped by
/// the runs above, within the averages' tolerance. With `prefetch`, the first strip prefetches
/// each input row [`PREFETCH_BYTES_AHEAD`] on, into L2.
///
/// Measured (`PROBE_N=8 RAYON_NUM_THREADS=1 plane_probe`, two rounds alternating with the
/// per-tap path it replaces, ms per call): `256 20 20 9 1 4` (YOLO's SPP) 0.45–0.46 → 0.25,
/// `.. 13 1 6 avg` 0.61 → 0.30 (f64 3.26 → 0.46), `64 56 56 15 1 7` 0.83 → 0.34, `.. 31 1 15`
/// 2.71 → 0.38–0.41. Prefetching helped where input and output outgrow the cache (f64 `64
/// 56 56 9 1 4`, 12.8 MB in: 2.0–3.5 → 1.0) and cost 10 % where they do not (f32 SPP 0.25 →
/// 0.28).
///
/// # Safety
/// The CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn wide_s1_strip<
    L: Zmm,
    const MODE: u8,
    const V: usize,
    const E: usize,
    const DIVIDE_INPUTS: bool,
>(
    x: &[L::E],
    w: usize,
    (kh, kw): (usize, usize),
    (pad_top, pad_left): (usize, usize),
    (oh, ow): (usize, usize),
    v0: usize,
    (check, prefetch): (bool, bool),
    reciprocals: &[L::E],
    input_divisors: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let n = L::N;
    let none = L::M::default();
    let h = x.len().checked_div(w).unwrap_or(0);
    assert!(
        (1..=4).contains(&V)
            && E <= 2
            && (1..=super::padded::WIDE_MAX_KH).contains(&kh)
            && kw >= 1
            && (kw - 1).div_ceil(n) <= E
            && w >= 1
            && oh >= 1
            && y.len() == oh * ow
            && n * (v0 + V - 1) < ow
            && (reciprocals.len() <= 1 || reciprocals.len() == y.len())
            && (!DIVIDE_INPUTS
                || MODE == 2 && (input_divisors.len() == 1 || input_divisors.len() == x.len()))
    );
    let pad = zmm::start::<L, MODE>(l);
    let one = l.splat(L::ONE);
    let row_bytes = w * std::mem::size_of::<L::E>();
    // lanes of padded vector v0 + t holding input columns (padded column c is input column
    // c − pad_left)
    let masks: [L::M; 4 + 2] = std::array::from_fn(|t| {
        let first = n * (v0 + t);
        L::lanes_between(
            pad_left.saturating_sub(first),
            (pad_left + w).saturating_sub(first),
        )
    });
    // A shift by `s` lanes across the row's vectors: (whole vectors, lanes, lane indices)
    let plan = |s: usize| (s / n, s % n, l.index_ramp((s % n) as i32, 1));
    // the shift from level t to level t + 1
    let span = |t: usize| plan(1 << t);
    // the top level: 2^top <= kw < 2^(top + 1)
    let top = (usize::BITS - 1 - kw.leading_zeros()) as usize;
    // max: the top level shifted by kw − 2^top
    let overlap = plan(kw - (1 << top));
    // sums: level t at the offset of kw's digit t, when it is set (the runs of the set digits
    // from the lowest, end to end)
    let digits: [(usize, usize, __m512i); 6] = std::array::from_fn(|t| plan(kw & ((1 << t) - 1)));
    assert!(top < 6);
    macro_rules! slot {
        ($arr:expr, $i:expr) => {{
            let i: usize = $i;
            if i < V + E {
                $arr[i]
            } else {
                pad
            }
        }};
    }
    // lanes l + s of slots m, m + 1, .. laid end to end (macros, not closures: see `ks1_strip`)
    macro_rules! shift {
        ($arr:expr, $m:expr, $plan:expr) => {{
            let (q, r, idx): (usize, usize, __m512i) = $plan;
            let m: usize = $m;
            let (a, b) = match q {
                0 => (slot!($arr, m), slot!($arr, m + 1)),
                1 => (slot!($arr, m + 1), slot!($arr, m + 2)),
                _ => (slot!($arr, m + 2), slot!($arr, m + 3)),
            };
            if r == 0 {
                a
            } else {
                l.permute2(a, idx, b)
            }
        }};
    }
    macro_rules! fold {
        ($acc:expr, $x:expr) => {
            zmm::fold::<L, MODE>(l, $acc, $x)
        };
    }
    // The W pass of padded row r for the strip's V output vectors, and its NaN lanes
    macro_rules! wrow {
        ($r:expr) => {{
            let r: usize = $r;
            let mut nan = none;
            let mut out = [pad; V];
            if r >= pad_top && r - pad_top < h {
                let start = (r - pad_top) * w;
                let row = x.as_ptr().wrapping_add(start).wrapping_sub(pad_left);
                let mut level: [L::V; 4 + 2] = [pad; 4 + 2];
                for t in 0..V + E {
                    let at = n * (v0 + t);
                    // SAFETY: the mask enables only lanes of input columns 0..w of input row
                    // r − pad_top < h, inside x (the address is only formed, wrapping).
                    let mut v = unsafe { l.load_masked(pad, masks[t], row.wrapping_add(at)) };
                    if check {
                        nan |= l.unordered(v, v);
                    }
                    if DIVIDE_INPUTS {
                        let d = match input_divisors {
                            [d] => l.splat(*d),
                            // SAFETY: the divisors lie as the input does (asserted): the
                            // same lanes of the same offset lie in them.
                            _ => unsafe {
                                let p = input_divisors.as_ptr().wrapping_add(start);
                                l.load_masked(
                                    one,
                                    masks[t],
                                    p.wrapping_add(at).wrapping_sub(pad_left),
                                )
                            },
                        };
                        v = l.div(v, d);
                    }
                    level[t] = v;
                }
                // (levels up to 2^5: kw <= 2 N + 1 <= 33; the loops over t unroll, so that
                // each level's shift is a constant)
                if MODE == 2 {
                    out = [l.zero(); V];
                    for t in 0..6 {
                        if t > top {
                            break;
                        }
                        if kw & (1 << t) != 0 {
                            for (u, o) in out.iter_mut().enumerate() {
                                *o = l.add(*o, shift!(level, u, digits[t]));
                            }
                        }
                        if t < top {
                            let below = level;
                            for m in 0..V + E {
                                level[m] = l.add(below[m], shift!(below, m, span(t)));
                            }
                        }
                    }
                } else {
                    for t in 0..5 {
                        if t >= top {
                            break;
                        }
                        let below = level;
                        for m in 0..V + E {
                            level[m] = fold!(below[m], shift!(below, m, span(t)));
                        }
                    }
                    for (u, o) in out.iter_mut().enumerate() {
                        *o = if overlap.0 == 0 && overlap.1 == 0 {
                            level[u]
                        } else {
                            fold!(level[u], shift!(level, u, overlap))
                        };
                    }
                }
            }
            (out, nan)
        }};
    }
    let store_masks = zmm::row_masks::<L, 4>(ow, v0 as isize, V);
    let dst = y.as_mut_ptr().cast::<L::E>();
    let reciprocal = l.splat(match reciprocals {
        [r] => *r,
        _ => L::ONE,
    });
    // the W-pass rows of the current block, and the suffixes of the one before
    let mut block = MaybeUninit::<[[L::V; V]; super::padded::WIDE_MAX_KH]>::uninit();
    let mut suffix = MaybeUninit::<[[L::V; V]; super::padded::WIDE_MAX_KH]>::uninit();
    let (block, suffix) = (
        block.as_mut_ptr().cast::<[L::V; V]>(),
        suffix.as_mut_ptr().cast::<[L::V; V]>(),
    );
    let mut nan = none;
    let mut prefix = [pad; V];
    // position of row r in its block
    let mut p = 0;
    let prefetch = prefetch && v0 == 0;
    for r in 0..oh + kh - 1 {
        if prefetch && r >= pad_top && r - pad_top < h {
            // the row PREFETCH_BYTES_AHEAD on (past the plane's end: the next plane's, which
            // follows it in memory)
            let from = x.as_ptr().wrapping_add((r - pad_top) * w).cast::<u8>();
            prefetch_lines_l2(from.wrapping_add(PREFETCH_BYTES_AHEAD), row_bytes);
        }
        let (row, row_nan) = wrow!(r);
        nan |= row_nan;
        prefix = if p == 0 {
            row
        } else {
            std::array::from_fn(|u| fold!(prefix[u], row[u]))
        };
        // SAFETY: p < kh <= WIDE_MAX_KH (asserted), inside the buffer.
        unsafe { block.add(p).write(row) };
        if r + 1 >= kh {
            // output row i = r + 1 − kh: rows i ..= r, from position p + 1 of the block before
            let i = r + 1 - kh;
            let from = if p + 1 == kh { 0 } else { p + 1 };
            // SAFETY: the suffixes from `from` >= 1 on were formed when the block before
            // completed (an output row starts in it, so it has); from < kh.
            let earlier = (from > 0).then(|| unsafe { suffix.add(from).read() });
            for u in 0..V {
                let mut v = match earlier {
                    Some(s) => fold!(s[u], prefix[u]),
                    None => prefix[u],
                };
                let at = i * ow + n * (v0 + u);
                if MODE == 2 {
                    // SAFETY: the reciprocals cover the outputs (asserted); the mask keeps
                    // the lanes below ow.
                    v = unsafe { finish_sum(l, v, reciprocal, reciprocals, at, store_masks[u]) };
                }
                // SAFETY: output row i < oh, columns N (v0 + u) .. below ow (the store mask).
                unsafe { l.store_masked(dst.add(at), store_masks[u], v) };
            }
        }
        if p + 1 == kh {
            // the block is complete: its suffixes, the last row back to position 1
            let mut s = row;
            // SAFETY: kh − 1 < WIDE_MAX_KH; every position of the block was written above.
            unsafe {
                suffix.add(kh - 1).write(s);
                for q in (1..kh - 1).rev() {
                    let b = block.add(q).read();
                    s = std::array::from_fn(|u| fold!(b[u], s[u]));
                    suffix.add(q).write(s);
                }
            }
            p = 0;
        } else {
            p += 1;
        }
    }
    nan != none
}

/// `out[f] = fold_i planes[i * n + f]` over the `planes.len() / n` planes in order, a vector
/// at a time, the tail masked (the depth passes of `padded.rs` and of channels-last 3×3
/// stride-2 rows). The fold starts from the first plane, so that under the plain max a NaN
/// there survives (`vmaxps` returns the accumulator's NaN, not a new value's); sums start
/// from 0 + the first plane (an all −0 column gives +0, as the reference's sum from 0).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn fold_planes<L: Zmm, const MODE: u8>(
    planes: &[L::E],
    n: usize,
    out: &mut [MaybeUninit<L::E>],
) {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let count = planes.len().checked_div(n).unwrap_or(0);
    assert!(count >= 1 && out.len() >= n);
    let (src, dst) = (planes.as_ptr(), out.as_mut_ptr().cast::<L::E>());
    let mut f = 0;
    while f < n {
        let m = L::lanes_below(n - f);
        // SAFETY: the mask enables lanes f + l < n of plane 0, inside planes.
        let first = unsafe { l.load_masked_zero(m, src.add(f)) };
        let mut acc = if MODE == 2 {
            l.add(l.zero(), first)
        } else {
            first
        };
        for i in 1..count {
            // SAFETY: the mask enables lanes f + l < n of plane i < count, inside planes.
            let v = unsafe { l.load_masked_zero(m, src.add(i * n + f)) };
            acc = zmm::fold::<L, MODE>(l, acc, v);
        }
        // SAFETY: lanes below n <= out.len().
        unsafe { l.store_masked(dst.add(f), m, acc) };
        f += L::N;
    }
}

/// `dst[f] = fold_t srcs[t][f]` for `f < n`, the taps in order, by `MODE` (1: the plain max,
/// 2: the sum), 64 values at a time, then 16, the last values through a mask. The H pass of
/// a channels-last separable row short of a block (the taps: the W-pass rows of its window),
/// and the depth fold of 3-D max rows. With `div`, sums are divided by it
/// ([`zmm::finish_ring_window`]): their taps must be W-pass rows of [`fold_row_w`], never −0. The
/// plain max keeps the earlier of equal values, so with the W pass then the H pass max values
/// are the reference's bits when no NaN is involved; sums differ from its sequential sum by
/// rounding only.
///
/// # Safety
/// The CPU must support AVX-512F; every `srcs[t]` is valid for `n` reads and `dst` for `n`
/// writes, not overlapping any of them.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn fold_rows<L: Zmm, const MODE: u8>(
    srcs: &[*const L::E],
    n: usize,
    div: Option<L::E>,
    dst: *mut L::E,
) {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    debug_assert!(!srcs.is_empty());
    let reciprocal = div.map(|d| L::ONE / d);
    // macros, not closures: a closure here would be compiled outside the ISA context
    macro_rules! finish {
        ($a:expr) => {
            match reciprocal {
                Some(r) if MODE == 2 => zmm::finish_ring_window::<L, MODE>(l, $a, r),
                _ => $a,
            }
        };
    }
    let (first, rest) = srcs.split_first().expect("at least one tap");
    let v = L::N;
    let mut f = 0;
    while f + 4 * v <= n {
        // SAFETY: f + 4 N <= n: inside every source and the destination (the caller's).
        unsafe {
            let mut acc = [l.zero(); 4];
            for (q, a) in acc.iter_mut().enumerate() {
                *a = l.load(first.add(f + v * q));
            }
            for &s in rest {
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = zmm::fold::<L, MODE>(l, *a, l.load(s.add(f + v * q)));
                }
            }
            for (q, a) in acc.iter().enumerate() {
                l.store(dst.add(f + v * q), finish!(*a));
            }
        }
        f += 4 * v;
    }
    while f + v <= n {
        // SAFETY: f + N <= n, as above.
        unsafe {
            let mut a = l.load(first.add(f));
            for &s in rest {
                a = zmm::fold::<L, MODE>(l, a, l.load(s.add(f)));
            }
            l.store(dst.add(f), finish!(a));
        }
        f += v;
    }
    if f < n {
        let m = L::lanes_below(n - f);
        // SAFETY: the mask enables the values f .. n only, inside every source and the
        // destination; the lanes it leaves out are neither read nor stored.
        unsafe {
            let mut a = l.load_masked_zero(m, first.add(f));
            for &s in rest {
                a = zmm::fold::<L, MODE>(l, a, l.load_masked_zero(m, s.add(f)));
            }
            l.store_masked(dst.add(f), m, finish!(a));
        }
    }
}

/// W pass of one channels-last stride-1 row of `w` pixels of `c` channels (`src`, pixel 0)
/// into an output row (`dst`, pixel 0), by `MODE` (1: the plain max, 2: the sum,
/// unfinished). The interior outputs `lo .. lo + cols`, output `lo + o` folding pixels
/// `first + o .. first + o + K`, go by van Herk / Gil-Werman blocks (`block_windows!`): each
/// block of `K` outputs loads its `2 K − 1` pixels (all channels, in turn) once, so a window
/// costs about 2 loads and 3 folds whatever `K`; the last `cols % K` outputs fold their taps
/// one by one. The border outputs are one running fold from each end of the row, storing as
/// it passes each window's end: output `o < lo` folds pixels `0 .. left[o]` (counts
/// increasing), output `lo + cols + i` pixels `right[i] .. w` (starts increasing), the right
/// ones from the row's end back (the earlier value always the accumulator, so the plain max
/// keeps the earliest of equal values).
///
/// Sums are never −0: each takes `+ 0` into one of its values (a block's value `K − 1`, which
/// all its windows hold; a single window's or a border run's first value), as the reference's
/// sum starts from +0, so that the H pass need not add it to every output
/// ([`zmm::finish_ring_window`]): one addition per block of `K` outputs instead of one per
/// output. large_avg nhwc (`PROBE_NHWC=1 PROBE_N=8 plane_probe 64 56 56 7 1 3 avg`, 1 thread,
/// builds alternating, the faster half of 10 runs on a busy machine) 584–609 → 571–595 µs.
/// The sums are otherwise the same bits (`v + 0` is `v` but for −0); the test
/// `averages_of_signed_zeros_are_the_references_bits` holds them to the reference's sign.
///
/// The plain max also checks every value the interior blocks load (one unordered compare per
/// two values, each value once: a block checks the pixels it does not share with the next
/// block, the last block all of its own) and returns whether one was NaN: its result is then
/// not the reference's. That covers the row: at stride 1 every pixel lies in an interior
/// window (the first starts at pixel 0 when a left border exists, the last ends at `w` when a
/// right one does). Checking the shared pixels once instead of twice took sppf_max5 nhwc
/// (`PROBE_NHWC=1 PROBE_N=8 plane_probe 256 20 20 5 1 2`, 1 thread, builds alternating, the
/// faster half of 12 runs) from 230–234 to 228–229 µs: the W pass is bound by its vector
/// operations (one 512-bit operation a cycle here), and the compares were 5 of its 16 per
/// block of 16 channels.
///
/// # Safety
/// The CPU must support AVX-512F; `2 ≤ K ≤ 7`; `src` is valid for `w c` reads and `dst` for
/// `(lo + cols + right.len()) c` writes, not overlapping them; `first + cols + K − 1 ≤ w`,
/// `left.len() == lo`, every count is in `1..=w` and every start below `w`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn fold_row_w<L: Zmm, const MODE: u8, const K: usize>(
    src: *const L::E,
    c: usize,
    w: usize,
    (lo, first, cols): (usize, usize, usize),
    left: &[usize],
    right: &[usize],
    dst: *mut L::E,
) -> bool {
    const { assert!(K >= 2 && 2 * K - 1 <= super::MAX_BLOCK_RUN) };
    debug_assert!(
        first + cols + K - 1 <= w
            && left.len() == lo
            && left.iter().all(|&n| (1..=w).contains(&n))
            && right.iter().all(|&f| f < w)
    );
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let mut nan = L::M::default();
    // SAFETY (both): the caller's bounds: pixels below w (loads) and outputs below lo + cols
    // + right.len() (stores), lanes `ch + l < c` only.
    macro_rules! load {
        ($col:expr, $ch:expr, $m:expr) => {
            unsafe { l.load_masked_zero($m, src.add(($col) * c + $ch)) }
        };
    }
    macro_rules! store {
        ($col:expr, $ch:expr, $m:expr, $v:expr) => {
            unsafe { l.store_masked(dst.add(($col) * c + $ch), $m, $v) }
        };
    }
    macro_rules! fold {
        ($acc:expr, $v:expr) => {
            zmm::fold::<L, MODE>(l, $acc, $v)
        };
    }
    // block by block, all the channels of a block's pixels (a contiguous run) in turn
    let mut o = 0;
    while o + K <= cols {
        // the pixels a block shares with the next one are checked there
        let checked = if o + 2 * K <= cols { K } else { 2 * K - 1 };
        let mut ch = 0;
        while ch < c {
            let m = L::lanes_below(c - ch);
            let mut x = [l.zero(); super::MAX_BLOCK_RUN];
            for (i, v) in x.iter_mut().enumerate().take(2 * K - 1) {
                *v = load!(first + o + i, ch, m);
            }
            if MODE == 1 {
                for i in (0..checked).step_by(2) {
                    let pair = x[(i + 1).min(2 * K - 2)];
                    nan |= l.unordered(x[i], pair);
                }
            }
            if MODE == 2 {
                // in every window of the block: the sums cannot be −0
                x[K - 1] = l.add(x[K - 1], l.zero());
            }
            block_windows!(K, x, l.zero(), |acc, v| fold!(acc, v), |r, w| store!(
                lo + o + r,
                ch,
                m,
                w
            ));
            ch += L::N;
        }
        o += K;
    }
    while o < cols {
        let mut ch = 0;
        while ch < c {
            let m = L::lanes_below(c - ch);
            let mut acc = zmm::plus_zero::<L, MODE>(l, load!(first + o, ch, m));
            for t in 1..K {
                let v = load!(first + o + t, ch, m);
                if MODE == 1 {
                    nan |= l.unordered(acc, v);
                }
                acc = fold!(acc, v);
            }
            store!(lo + o, ch, m, acc);
            ch += L::N;
        }
        o += 1;
    }
    let mut ch = 0;
    while ch < c {
        let m = L::lanes_below(c - ch);
        if !left.is_empty() {
            let mut acc = zmm::plus_zero::<L, MODE>(l, load!(0, ch, m));
            let mut t = 1;
            for (o, &count) in left.iter().enumerate() {
                while t < count {
                    acc = fold!(acc, load!(t, ch, m));
                    t += 1;
                }
                store!(o, ch, m, acc);
            }
        }
        if !right.is_empty() {
            let mut acc = zmm::plus_zero::<L, MODE>(l, load!(w - 1, ch, m));
            let mut t = w - 1;
            for (i, &start) in right.iter().enumerate().rev() {
                while t > start {
                    t -= 1;
                    acc = fold!(load!(t, ch, m), acc);
                }
                store!(lo + cols + i, ch, m, acc);
            }
        }
        ch += L::N;
    }
    nan != L::M::default()
}

/// H pass of the border rows of a channels-last stride-1 problem (windows cut by the top or
/// the bottom of the sample), by `MODE` (1: the plain max, 2: the sum, divided by `divs[i]`
/// when `divs` is not empty: [`zmm::finish_ring_window`]): `srcs` are the W-pass rows the border
/// rows read, in order; with `ends`, output row `i` folds `srcs[0 .. ends[i]]` (counts
/// increasing: the top border); with `starts`, `srcs[starts[i] ..]` (starts increasing: the
/// bottom border). One running fold per side, storing as it passes each window's end, the
/// earlier rows always the accumulator (so the plain max keeps the earliest of equal values).
///
/// # Safety
/// The CPU must support AVX-512F; every source and destination is valid for `n` values, no
/// destination overlapping a source or another destination; counts lie in `1..=srcs.len()`,
/// starts below it; `dsts` (and `divs`, unless empty) hold one per output row.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn fold_rows_edges<L: Zmm, const MODE: u8>(
    srcs: &[*const L::E],
    n: usize,
    bounds: Result<&[usize], &[usize]>,
    divs: &[L::E],
    dsts: &[*mut L::E],
) {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let outputs = match bounds {
        Ok(ends) => ends.len(),
        Err(starts) => starts.len(),
    };
    assert!(dsts.len() == outputs && (divs.is_empty() || divs.len() == outputs));
    let mut f = 0;
    while f < n {
        let m = L::lanes_below(n - f);
        // SAFETY (both): lanes f + l < n of a source or destination row (the caller's bound).
        macro_rules! load {
            ($t:expr) => {
                unsafe { l.load_masked_zero(m, srcs[$t].add(f)) }
            };
        }
        macro_rules! store {
            ($i:expr, $v:expr) => {{
                let v = match divs.get($i) {
                    Some(&d) if MODE == 2 => zmm::finish_ring_window::<L, MODE>(l, $v, L::ONE / d),
                    _ => $v,
                };
                unsafe { l.store_masked(dsts[$i].add(f), m, v) }
            }};
        }
        match bounds {
            Ok(ends) => {
                let mut acc = load!(0);
                let mut t = 1;
                for (i, &end) in ends.iter().enumerate() {
                    while t < end {
                        acc = zmm::fold::<L, MODE>(l, acc, load!(t));
                        t += 1;
                    }
                    store!(i, acc);
                }
            }
            Err(starts) => {
                let mut t = srcs.len() - 1;
                let mut acc = load!(t);
                for (i, &start) in starts.iter().enumerate().rev() {
                    while t > start {
                        t -= 1;
                        acc = zmm::fold::<L, MODE>(l, load!(t), acc);
                    }
                    store!(i, acc);
                }
            }
        }
        f += L::N;
    }
}

/// H pass of `K` consecutive output rows by van Herk / Gil-Werman blocks (`block_windows!`):
/// `dsts[r][f] = fold_{t < K} srcs[r + t][f]` for `f < n` and `r < K`, by `MODE` (1: the
/// plain max, 2: the sum; with `div` divided by it, [`zmm::finish_ring_window`]). The `2 K − 1`
/// rows are loaded once for the `K` outputs: about 2 loads and 3 folds per output vector
/// instead of `K` and `K − 1`.
///
/// # Safety
/// The CPU must support AVX-512F; `2 ≤ K ≤ 7`; `srcs` holds `2 K − 1` rows and `dsts` `K`,
/// each valid for `n` values, no destination overlapping a source or another destination.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn fold_rows_blocked<L: Zmm, const MODE: u8, const K: usize>(
    srcs: &[*const L::E],
    n: usize,
    div: Option<L::E>,
    dsts: &[*mut L::E],
) {
    const { assert!(K >= 2 && 2 * K - 1 <= super::MAX_BLOCK_RUN) };
    assert!(srcs.len() == 2 * K - 1 && dsts.len() == K);
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let reciprocal = div.map(|d| L::ONE / d);
    let mut f = 0;
    while f < n {
        let m = L::lanes_below(n - f);
        let mut x = [l.zero(); super::MAX_BLOCK_RUN];
        for (v, &s) in x.iter_mut().zip(srcs) {
            // SAFETY: lanes f + l < n of a source row (the caller's bound).
            *v = unsafe { l.load_masked_zero(m, s.add(f)) };
        }
        block_windows!(
            K,
            x,
            l.zero(),
            |acc, v| zmm::fold::<L, MODE>(l, acc, v),
            |r, w| {
                let w = match reciprocal {
                    Some(r) if MODE == 2 => zmm::finish_ring_window::<L, MODE>(l, w, r),
                    _ => w,
                };
                // SAFETY: lanes f + l < n of destination row r (the caller's bound).
                unsafe { l.store_masked(dsts[r].add(f), m, w) }
            }
        );
        f += L::N;
    }
}

/// Averages of short planes, 16 planes at a time: `y[p] = Σ x[p*plane .. (p+1)*plane]` (plus
/// +0, so an all −0 plane gives the reference's +0), then divided by each of `divisors` in
/// turn (the adaptive rule divides once per axis). Each plane folds into one vector of lane
/// partials (its last vector masked), and the 16 vectors of a group are reduced together by
/// a transposing tree (halves of 256, 128, 64 and 32 bits; 15 shuffle-pairs and adds for 16
/// planes) instead of one horizontal reduction per plane, whose latency chain was the whole
/// cost on 7×7 planes. Planes past the last full group are reduced one at a time. The order
/// of the additions differs from the reference's, within the averages' tolerance.
///
/// # Safety
/// The CPU must support AVX-512F. `plane > 0` and `x.len() >= y.len() * plane`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn plane_averages_avx512(
    x: &[f32],
    plane: usize,
    divisors: &[f32],
    y: &mut [f32],
) {
    let p = x.as_ptr();
    let full = plane / 16;
    let tail = lanes_below(plane - 16 * full);
    macro_rules! partials {
        ($q:expr, $full:expr) => {{
            // SAFETY: plane $q lies inside x ($q < y.len()); the masked load enables only
            // the plane's own lanes of its last vector.
            let base = unsafe { p.add($q * plane) };
            let mut a = unsafe { _mm512_maskz_loadu_ps(tail, base.add(16 * $full)) };
            for v in 0..$full {
                // SAFETY: vector v of the plane lies inside it (16v + 16 <= plane).
                a = _mm512_add_ps(a, unsafe { _mm512_loadu_ps(base.add(16 * v)) });
            }
            a
        }};
    }
    // pairs of vectors → one vector with half of each one's partials, their lanes kept
    macro_rules! halve_f32x4 {
        ($a:expr, $b:expr, $even:expr, $odd:expr) => {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<$even>($a, $b),
                _mm512_shuffle_f32x4::<$odd>($a, $b),
            )
        };
    }
    macro_rules! halve_ps {
        ($a:expr, $b:expr) => {
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b10_00_10_00>($a, $b),
                _mm512_shuffle_ps::<0b11_01_11_01>($a, $b),
            )
        };
    }
    // after the tree, lane 4q + r holds plane q + 4r
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let groups = y.len() / 16;
    // the group loop once per plane length of 1 to 3 whole vectors (7×7 planes: 3 and a
    // tail), so that the fold of each plane is straight-line code
    macro_rules! group_loop {
        ($full:expr) => {
            for g in 0..groups {
                let mut a = [_mm512_setzero_ps(); 16];
                for (q, v) in a.iter_mut().enumerate() {
                    *v = partials!(16 * g + q, $full);
                }
                // 256-bit halves: b[i] = [plane 2i: 8 partials | plane 2i+1: 8 partials]
                let mut b = [_mm512_setzero_ps(); 8];
                for (i, v) in b.iter_mut().enumerate() {
                    *v = halve_f32x4!(a[2 * i], a[2 * i + 1], 0b01_00_01_00, 0b11_10_11_10);
                }
                // 128-bit quarters: c[i] = planes 4i .. 4i+4, 4 partials each, in 128-bit lane order
                let mut c = [_mm512_setzero_ps(); 4];
                for (i, v) in c.iter_mut().enumerate() {
                    *v = halve_f32x4!(b[2 * i], b[2 * i + 1], 0b10_00_10_00, 0b11_01_11_01);
                }
                // within each 128-bit lane q: d[0] = [plane q, q, q+4, q+4] (2 partials each),
                // d[1] the same for planes q+8 and q+12; then e = [q, q+4, q+8, q+12]
                let d0 = halve_ps!(c[0], c[1]);
                let d1 = halve_ps!(c[2], c[3]);
                let e = halve_ps!(d0, d1);
                let mut sums = _mm512_add_ps(_mm512_permutexvar_ps(order, e), _mm512_setzero_ps());
                for &d in divisors {
                    sums = _mm512_div_ps(sums, _mm512_set1_ps(d));
                }
                // SAFETY: y holds planes 16g .. 16g + 16 (g < y.len() / 16).
                unsafe { _mm512_storeu_ps(y.as_mut_ptr().add(16 * g), sums) };
            }
        };
    }
    match full {
        1 => group_loop!(1),
        2 => group_loop!(2),
        3 => group_loop!(3),
        _ => group_loop!(full),
    }
    for (q, v) in y.iter_mut().enumerate().skip(16 * groups) {
        *v = divisors
            .iter()
            .fold(_mm512_reduce_add_ps(partials!(q, full)) + 0.0, |s, d| s / d);
    }
}
