//! Explicit AVX2 kernels for x86-64 CPUs without AVX-512 (most client CPUs, AMD before Zen 4).
//!
//! Elsewhere those CPUs run the generic kernels compiled for AVX2, which LLVM vectorises
//! poorly on short channels-first rows (per-row copies into padded buffers, scalar tails):
//! `NNPOOL_KERNEL=avx2 nnpool bench --layout nchw` ran the stride-1 cases at 8–16× the copy,
//! alexnet_max and vgg_max_14 at 20×, against 1.2–3× with the AVX-512 kernels. These are the
//! fused channels-first kernels of `x86.rs` redone on 8-lane vectors: AVX2 has no masked
//! loads into a chosen value and no shifts across a vector pair, so a tap's columns are
//! loaded from its own (unaligned) address, the columns outside the row masked off and
//! blended with the padding value in the vectors at the row's ends only; at stride 2,
//! `vshufps` splits even and odd columns. No masked stores: the last vector of a row ends at
//! the row's end, overlapping the one before.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// How taps combine (as in `padded.rs`): the exact max rule, the plain max, the sum.
const EXACT_MAX: u8 = 0;
const PLAIN_MAX: u8 = 1;
const SUM: u8 = 2;

/// The padding value of a mode: −∞ for max, +0 for sums.
#[inline]
#[target_feature(enable = "avx2")]
fn pad_value<const MODE: u8>() -> __m256 {
    if MODE == SUM {
        _mm256_setzero_ps()
    } else {
        _mm256_set1_ps(f32::NEG_INFINITY)
    }
}

/// `acc` combined with the later value `x`: the sum; the plain max, which keeps the earlier of
/// equal values (`vmaxps` returns its second operand unless the first is greater); or the
/// exact rule, which also takes a NaN (so the last NaN wins, as in the reference).
#[inline]
#[target_feature(enable = "avx2")]
fn fold<const MODE: u8>(acc: __m256, x: __m256) -> __m256 {
    match MODE {
        SUM => _mm256_add_ps(acc, x),
        PLAIN_MAX => _mm256_max_ps(x, acc),
        _ => {
            debug_assert_eq!(MODE, EXACT_MAX);
            let take = _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(x, acc),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x),
            );
            _mm256_blendv_ps(acc, x, take)
        }
    }
}

/// How far past the rows an output row reads the row-by-row kernels prefetch the input (into
/// L2) on large problems, as `x86::max_k3s2_strip` does: in the flat input, so that past a
/// plane's end it is the next plane's start.
const PREFETCH_BYTES_AHEAD: usize = 16384;

/// Prefetches (into L2) the cache lines of `bytes` bytes from `from`.
#[inline]
fn prefetch_l2(from: *const f32, bytes: usize) {
    let from = from.cast::<u8>();
    let mut off = 0;
    while off < bytes {
        // SAFETY: SSE is part of every x86-64 CPU; a prefetch is a hint only (no memory is
        // read or claimed, and an address past the input cannot fault).
        unsafe { _mm_prefetch::<_MM_HINT_T1>(from.wrapping_add(off).cast()) };
        off += 64;
    }
}

/// All bits set in the lanes `l < n` (all 8 from `n >= 8` on), for masked loads and stores.
#[inline]
#[target_feature(enable = "avx2")]
fn lanes_below(n: usize) -> __m256i {
    let n = n.min(8) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Stores output vector `$v` at output `$at` of `$y` (`$dst`: its start): whole where rows
/// hold 8 outputs or more (the kernels' vectors all lie inside their row, the last one ending
/// at the row's end), else the row's `$ow` lanes one by one. A macro with the pointer hoisted
/// by the caller: as a function (`#[inline]` is only a hint where target features are
/// enabled) with a bounds-checked slice, inception_max_s1 took 330 µs against 247.
macro_rules! store_out {
    ($dst:expr, $y:expr, $at:expr, $ow:expr, $v:expr) => {{
        let (at, ow, v): (usize, usize, __m256) = ($at, $ow, $v);
        if ow >= 8 {
            // SAFETY: the caller's vector lies in output row `at / ow` (columns `at % ow ..
            // at % ow + 8 <= ow`), inside y.
            unsafe { _mm256_storeu_ps($dst.add(at), v) };
        } else {
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds 8 values.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            for (o, l) in $y[at..at + ow].iter_mut().zip(lanes) {
                o.write(l);
            }
        }
    }};
}

/// A stride-2 kernel's vector, its lanes in the order `vshufps` leaves (outputs 0 1 4 5 2 3 6
/// 7), put back in output order: one `vpermpd` (a macro, as `store_out!`).
macro_rules! in_output_order {
    ($v:expr) => {
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd($v)))
    };
}

/// Columns `c .. c + 8` of the row at `row` (`w` values), those outside it holding `pad`.
///
/// # Safety
/// The CPU must support AVX2; `row` is valid for `w` reads and `w < 2^31`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_clipped(row: *const f32, w: usize, c: isize, pad: __m256) -> __m256 {
    let cols = _mm256_add_epi32(
        _mm256_set1_epi32(c as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    );
    let inside = _mm256_and_si256(
        _mm256_cmpgt_epi32(cols, _mm256_set1_epi32(-1)),
        _mm256_cmpgt_epi32(_mm256_set1_epi32(w as i32), cols),
    );
    // SAFETY: the mask enables the lanes of columns 0 .. w only, inside the row (the
    // caller's); masked-off lanes are not read and cannot fault; the address is only formed,
    // wrapping.
    let v = unsafe { _mm256_maskload_ps(row.wrapping_offset(c), inside) };
    _mm256_blendv_ps(pad, v, _mm256_castsi256_ps(inside))
}

/// Output vectors `v0 .. v0 + V` (8 columns each) of every row of a `K`×`K` stride-1 window
/// on one channels-first plane `x` of rows `w` long, both passes in one kernel, the AVX2
/// version of `x86::ks1_strip` (8-lane vectors; no NaN check flag, no input divisors): output
/// `(i, j)` folds the padded rows `i .. i + K` (input row `r - pad_top`; rows outside the
/// input are padding) at columns `j - PL .. j - PL + K` (outside the row: padding), by `MODE`
/// (0: the exact max rule, 1: the plain max, 2: the sum). Each row is folded along W first,
/// taps in order; then output row `i` folds the W rows top to bottom, as pairs
/// `W_r ⊕ W_(r+1)` shared by two output rows: the reference's row-major order regrouped, so
/// max values and NaNs are its bits, and sums differ from its sequential sum by rounding only
/// (then `+ 0`, so that an all −0 window gives +0, and divided by `divisors`: one for all, or
/// one per output).
///
/// The plain max also returns whether any input value is NaN: the caller then redoes the
/// plane by the exact rule. Each row's taps 0 and `K − 1` of every output vector are compared:
/// together they cover the columns from `−PL` on without a gap (`K − 1 ≤ 8`), up to the last
/// vector's last tap, column `ow − 1 − PL + K − 1 = w − 1 + PL`.
///
/// # Safety
/// The CPU must support AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn ks1_strip_avx2<
    const MODE: u8,
    const K: usize,
    const PL: usize,
    const V: usize,
>(
    x: &[f32],
    w: usize,
    pad_top: usize,
    oh: usize,
    ow: usize,
    v0: usize,
    divisors: &[f32],
    y: &mut [MaybeUninit<f32>],
) -> bool {
    let h = x.len().checked_div(w).unwrap_or(0);
    assert!(
        (K == 3 || K == 5 || K == 7)
            && (PL == 0 || PL == K / 2)
            && (1..=4).contains(&V)
            && (1..1 << 30).contains(&w)
            && x.len() == h * w
            && y.len() == oh * ow
            && (divisors.len() <= 1 || divisors.len() == y.len())
            && 8 * (v0 + V - 1) < ow
    );
    let pad = pad_value::<MODE>();
    // the first output column of each vector: the last vector of a row ends at its end,
    // overlapping the one before (it stores the same values there), so that every store is a
    // whole vector (`vmaskmovps` stores cost tens of cycles on AMD's cores: 44 % of the
    // samples of inception_max_s1 went to the one in each row); below 8 columns, lanes below
    // `ow` are stored one by one
    let cols: [usize; V] = std::array::from_fn(|u| (8 * (v0 + u)).min(ow.saturating_sub(8)));
    // each vector's first tap column, and whether all its taps lie in the row (then plain
    // loads, else clipped ones): the same for every row, so decided once per strip
    let starts: [isize; V] = std::array::from_fn(|u| cols[u] as isize - PL as isize);
    let inside: [bool; V] =
        std::array::from_fn(|u| starts[u] >= 0 && starts[u] as usize + K + 7 <= w);
    // tap t of output vector u of the row at `row`: an unaligned load where all the vector's
    // taps lie in the row, else a clipped one (macros, not closures, so that the code is
    // compiled in this function's ISA context)
    macro_rules! tap {
        ($row:expr, $c0:expr, $inside:expr, $t:expr) => {{
            let c = $c0 + $t as isize;
            // SAFETY: inside: columns c0 .. c0 + K - 1 + 8 lie in the row (checked by the
            // caller below); else the clipped load reads the row's columns only.
            unsafe {
                if $inside {
                    _mm256_loadu_ps($row.offset(c))
                } else {
                    load_clipped($row, w, c, pad)
                }
            }
        }};
    }
    // the W pass of padded row r for the strip's V output vectors
    macro_rules! wrow {
        ($r:expr) => {{
            let r: usize = $r;
            let mut out = [pad; V];
            let mut row_nan = _mm256_setzero_ps();
            if r >= pad_top && r - pad_top < h {
                let row = x[(r - pad_top) * w..].as_ptr();
                for (u, o) in out.iter_mut().enumerate() {
                    let (c0, inside) = (starts[u], inside[u]);
                    let first = tap!(row, c0, inside, 0);
                    let (mut acc, mut last) = (first, first);
                    for t in 1..K {
                        last = tap!(row, c0, inside, t);
                        acc = fold::<MODE>(acc, last);
                    }
                    if MODE == PLAIN_MAX {
                        let either = _mm256_cmp_ps::<_CMP_UNORD_Q>(first, last);
                        row_nan = _mm256_or_ps(row_nan, either);
                    }
                    *o = acc;
                }
            }
            (out, row_nan)
        }};
    }
    // Row pairs P_r = W_r ⊕ W_(r+1) for r = i .. i + K − 3, and the last W row, W_(i + K − 2):
    // output row i folds P_i, P_(i+2), .., W_(i + K − 1)
    let mut row_pairs = [[pad; V]; 5];
    let dst = y.as_mut_ptr().cast::<f32>();
    let (mut last, mut nan) = wrow!(0);
    for (r, slot) in row_pairs.iter_mut().enumerate().take(K - 2) {
        let (next, n) = wrow!(r + 1);
        nan = _mm256_or_ps(nan, n);
        for u in 0..V {
            slot[u] = fold::<MODE>(last[u], next[u]);
        }
        last = next;
    }
    for i in 0..oh {
        let (low, n) = wrow!(i + K - 1);
        nan = _mm256_or_ps(nan, n);
        for u in 0..V {
            let mut v = row_pairs[0][u];
            if K >= 5 {
                v = fold::<MODE>(v, row_pairs[2][u]);
            }
            if K == 7 {
                v = fold::<MODE>(v, row_pairs[4][u]);
            }
            v = fold::<MODE>(v, low[u]);
            let at = i * ow + cols[u];
            if MODE == SUM {
                // from +0, as the reference's sums (an all −0 window gives +0)
                v = _mm256_add_ps(v, _mm256_setzero_ps());
                if let [d] = divisors {
                    v = _mm256_div_ps(v, _mm256_set1_ps(*d));
                } else if !divisors.is_empty() {
                    // SAFETY: the divisors lie as the outputs (asserted): lanes below ow; with
                    // fewer than 8 columns, masked-off lanes are not read and divide by 1.
                    let d = unsafe {
                        if ow >= 8 {
                            _mm256_loadu_ps(divisors.as_ptr().add(at))
                        } else {
                            let m = lanes_below(ow);
                            let d = _mm256_maskload_ps(divisors.as_ptr().add(at), m);
                            _mm256_blendv_ps(_mm256_set1_ps(1.0), d, _mm256_castsi256_ps(m))
                        }
                    };
                    v = _mm256_div_ps(v, d);
                }
            }
            store_out!(dst, y, at, ow, v);
        }
        let newest: [__m256; V] = std::array::from_fn(|u| fold::<MODE>(last[u], low[u]));
        for t in 0..K - 3 {
            row_pairs[t] = row_pairs[t + 1];
        }
        row_pairs[K - 3] = newest;
        last = low;
    }
    _mm256_movemask_ps(nan) != 0
}

/// Max pooling 3×3 at stride 2 of one channels-first plane (`h × w`, padded by `pad_top` rows
/// above and `PL` ≤ 1 columns before, the rest of every window past the input being padding),
/// the AVX2 version of `x86::max_k3s2_strip` (no NaN check flag: the plain max always checks).
/// `MODE`: 0 = the exact max rule, 1 = the plain max, which also returns whether any value
/// read is NaN (the caller then redoes the plane by the exact rule).
///
/// Each input row is folded along W once: for output columns `c .. c + 8`, the 16 columns
/// from `2c − PL` and the 16 from two further are loaded, and `vshufps` takes their even and
/// odd columns (taps 0 and 1, and tap 2). The shuffle works within 128-bit halves, so the W
/// folds hold the outputs in the order 0 1 4 5 2 3 6 7; the H pass folds whole vectors, and
/// one `vpermpd` restores the order before the store. Output row `i` folds W rows `2i, 2i + 1,
/// 2i + 2`, top to bottom (the reference's row-major fold regrouped: its bits), and W row
/// `2i + 2` is carried over to output row `i + 1` in `carry` (at least `ow` rounded up to 8
/// values), so that the plane is read once, row after row: in strips of output columns, each
/// strip reading the rows again, resnet_stem_max nchw took 3.3–3.8 ms (1 thread, strips of 1
/// or 2 vectors), against 1.5 with 4.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn max_k3s2_plane_avx2<const MODE: u8, const PL: usize>(
    x: &[f32],
    w: usize,
    pad_top: usize,
    (oh, ow): (usize, usize),
    carry: &mut [f32],
    prefetch: bool,
    y: &mut [MaybeUninit<f32>],
) -> bool {
    let h = x.len().checked_div(w).unwrap_or(0);
    let vectors = ow.div_ceil(8);
    assert!(
        MODE < SUM
            && PL <= 1
            && (1..1 << 30).contains(&w)
            && x.len() == h * w
            && y.len() == oh * ow
            && carry.len() >= 8 * vectors
    );
    let pad = pad_value::<MODE>();
    // the first output column of vector v, the last one ending at the row's end (see
    // `ks1_strip_avx2`)
    let col = |v: usize| (8 * v).min(ow.saturating_sub(8));
    macro_rules! load {
        ($row:expr, $c:expr, $inside:expr) => {{
            let c: isize = $c;
            // SAFETY: inside: columns base .. base + 18 lie in the row (checked below); else
            // the clipped load reads the row's columns only.
            unsafe {
                if $inside {
                    _mm256_loadu_ps($row.offset(c))
                } else {
                    load_clipped($row, w, c, pad)
                }
            }
        }};
    }
    // vector v's first tap column, and whether its 18 columns lie in the row (plain loads)
    let span = |v: usize| {
        let base = (2 * col(v)) as isize - PL as isize;
        (base, base >= 0 && base as usize + 18 <= w)
    };
    // the W pass of padded row r at vector v (from `span(v)`; outputs in the order 0 1 4 5 2 3
    // 6 7), and the lanes that saw a NaN
    let mut nan = _mm256_setzero_ps();
    macro_rules! wvec {
        ($r:expr, $v:expr, $base:expr, $inside:expr) => {{
            let (r, v, base, inside): (usize, usize, isize, bool) = ($r, $v, $base, $inside);
            if r >= pad_top && r - pad_top < h {
                let row = x[(r - pad_top) * w..].as_ptr();
                let (a, b) = (load!(row, base, inside), load!(row, base + 8, inside));
                let (a2, b2) = (load!(row, base + 2, inside), load!(row, base + 10, inside));
                let even = _mm256_shuffle_ps::<0x88>(a, b);
                let odd = _mm256_shuffle_ps::<0xdd>(a, b);
                let next = _mm256_shuffle_ps::<0x88>(a2, b2);
                if MODE == PLAIN_MAX {
                    // columns base .. base + 16: with the next vector's, every column up to
                    // its base; the last vector's windows also read column base + 16
                    nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b));
                    if v + 1 == vectors {
                        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(b2, b2));
                    }
                }
                fold::<MODE>(fold::<MODE>(even, odd), next)
            } else {
                pad
            }
        }};
    }
    let (dst, kept) = (y.as_mut_ptr().cast::<f32>(), carry.as_mut_ptr());
    for v in 0..vectors {
        let (base, inside) = span(v);
        let first = wvec!(0, v, base, inside);
        // SAFETY: 8 v + 8 <= carry.len() (asserted).
        unsafe { _mm256_storeu_ps(kept.add(8 * v), first) };
    }
    for i in 0..oh {
        if prefetch && 2 * i + 1 >= pad_top {
            let first = (2 * i + 1 - pad_top) * w;
            prefetch_l2(
                x.as_ptr()
                    .wrapping_add(first)
                    .wrapping_byte_add(PREFETCH_BYTES_AHEAD),
                8 * w,
            );
        }
        for v in 0..vectors {
            let (base, inside) = span(v);
            let middle = wvec!(2 * i + 1, v, base, inside);
            let low = wvec!(2 * i + 2, v, base, inside);
            // SAFETY: 8 v + 8 <= carry.len() (asserted).
            let top = unsafe { _mm256_loadu_ps(kept.add(8 * v)) };
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(kept.add(8 * v), low) };
            let folded = fold::<MODE>(fold::<MODE>(top, middle), low);
            let out = in_output_order!(folded);
            let at = i * ow + col(v);
            store_out!(dst, y, at, ow, out);
        }
    }
    _mm256_movemask_ps(nan) != 0
}

/// Max pooling 2×2 at stride 2 of one channels-first plane (`h × w`, padded by `pad_top` rows
/// above, none before the columns; the ceil-mode overhang past the input is padding), at the
/// AVX2 level. `MODE`: 0 = the exact max rule, 1 = the plain max, which also returns whether
/// any value read is NaN (the caller then redoes the plane by the exact rule).
///
/// For output columns `c .. c + 8` of a row, input columns `2c .. 2c + 16` of both window rows
/// are loaded and `vshufps` takes their even and odd columns, in the output order 0 1 4 5 2 3
/// 6 7 (see [`max_k3s2_plane_avx2`]); each row's pair is folded, then the two rows top to
/// bottom (the reference's row-major fold regrouped: its bits), and one `vpermpd` restores
/// the order before the store.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn max_k2s2_plane_avx2<const MODE: u8>(
    x: &[f32],
    w: usize,
    pad_top: usize,
    (oh, ow): (usize, usize),
    prefetch: bool,
    y: &mut [MaybeUninit<f32>],
) -> bool {
    let h = x.len().checked_div(w).unwrap_or(0);
    let vectors = ow.div_ceil(8);
    assert!(MODE < SUM && (1..1 << 30).contains(&w) && x.len() == h * w && y.len() == oh * ow);
    let pad = pad_value::<MODE>();
    let col = |v: usize| (8 * v).min(ow.saturating_sub(8));
    let mut nan = _mm256_setzero_ps();
    // the W pass of padded row r at the vector whose first tap column is `base` (outputs in
    // the order 0 1 4 5 2 3 6 7)
    macro_rules! wvec {
        ($r:expr, $base:expr) => {{
            let (r, base): (usize, usize) = ($r, $base);
            if r >= pad_top && r - pad_top < h {
                let row = x[(r - pad_top) * w..].as_ptr();
                // SAFETY: columns base .. base + 16 lie in the row, or the clipped loads read
                // the row's columns only.
                let (a, b) = unsafe {
                    if base + 16 <= w {
                        (
                            _mm256_loadu_ps(row.add(base)),
                            _mm256_loadu_ps(row.add(base + 8)),
                        )
                    } else {
                        let c = base as isize;
                        (
                            load_clipped(row, w, c, pad),
                            load_clipped(row, w, c + 8, pad),
                        )
                    }
                };
                if MODE == PLAIN_MAX {
                    nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b));
                }
                let (even, odd) = (
                    _mm256_shuffle_ps::<0x88>(a, b),
                    _mm256_shuffle_ps::<0xdd>(a, b),
                );
                fold::<MODE>(even, odd)
            } else {
                pad
            }
        }};
    }
    let dst = y.as_mut_ptr().cast::<f32>();
    for i in 0..oh {
        if prefetch && 2 * i >= pad_top {
            let first = (2 * i - pad_top) * w;
            prefetch_l2(
                x.as_ptr()
                    .wrapping_add(first)
                    .wrapping_byte_add(PREFETCH_BYTES_AHEAD),
                8 * w,
            );
        }
        for v in 0..vectors {
            let base = 2 * col(v);
            let folded = fold::<MODE>(wvec!(2 * i, base), wvec!(2 * i + 1, base));
            let out = in_output_order!(folded);
            let at = i * ow + col(v);
            store_out!(dst, y, at, ow, out);
        }
    }
    _mm256_movemask_ps(nan) != 0
}

/// `out[f] = fold_i planes[i * n + f]` over the `planes.len() / n` planes in order, by `MODE`,
/// 8 values at a time (the last 8 overlapping the vector before; below 8 values one by one):
/// the depth fold of 3-D max pooling after each slice's planes were pooled, the AVX2 version
/// of `x86::fold_planes`. The fold starts from the first plane, so that under the plain max a
/// NaN there survives; sums start from +0 (an all −0 column gives +0, as the reference's).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn fold_planes_avx2<const MODE: u8>(
    planes: &[f32],
    n: usize,
    out: &mut [MaybeUninit<f32>],
) {
    let count = planes.len().checked_div(n).unwrap_or(0);
    assert!(count >= 1 && planes.len() == count * n && out.len() >= n);
    if n < 8 {
        for f in 0..n {
            let mut acc = planes[f];
            if MODE == SUM {
                acc += 0.0;
            }
            for i in 1..count {
                let v = planes[i * n + f];
                // as `fold` does, one value at a time
                let take = v > acc || (MODE == EXACT_MAX && v.is_nan());
                acc = match MODE {
                    SUM => acc + v,
                    _ if take => v,
                    _ => acc,
                };
            }
            out[f].write(acc);
        }
        return;
    }
    let (src, dst) = (planes.as_ptr(), out.as_mut_ptr().cast::<f32>());
    let column = |f: usize| {
        // SAFETY: f + 8 <= n: lanes of plane i < count lie inside planes (asserted), and the
        // store inside out.
        unsafe {
            let mut acc = _mm256_loadu_ps(src.add(f));
            if MODE == SUM {
                acc = _mm256_add_ps(_mm256_setzero_ps(), acc);
            }
            for i in 1..count {
                acc = fold::<MODE>(acc, _mm256_loadu_ps(src.add(i * n + f)));
            }
            _mm256_storeu_ps(dst.add(f), acc);
        }
    };
    let mut f = 0;
    while f + 8 <= n {
        column(f);
        f += 8;
    }
    if f < n {
        column(n - 8);
    }
}
