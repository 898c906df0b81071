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
//!
//! The channels-last kernels of `direct.rs` (`cl_*`, the separable passes `fold_row_w`,
//! `fold_rows_blocked`, `fold_rows_edges`, and `fold_rows`) are here too, with the names and
//! arguments of their `x86.rs` versions, for channel counts that are multiples of 8: a
//! pixel's channels fill whole vectors, so no vector has a tail. Generic code had run
//! inception_max_s1 nhwc at 5–6× the copy and large_avg at 10–14×; these take 1.8–2.9× less
//! time (see `direct.rs`).

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
/// L2) on large problems, as `x86::k3s2_strip` does: in the flat input, so that past a
/// plane's end it is the next plane's start.
const PREFETCH_BYTES_AHEAD: usize = 16384;

/// W rows [`ks1_strip_avx2`] keeps, more than a window's (a power of two, so that a row's
/// slot is a mask of its index).
const RING_ROWS: usize = 8;

/// Values in [`ks1_strip_avx2`]'s row copy: the columns a strip of 4 vectors of a 7×7 window
/// reads (`8 · 3 + 7 + 7`), rounded up to whole vectors.
const LINE: usize = 40;

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

/// Prefetches (into L2) the two rows of `w` values [`PREFETCH_BYTES_AHEAD`] past input row
/// `row` of `x`: what a stride-2 kernel's output row reads, that far ahead.
#[inline]
fn prefetch_rows_ahead(x: &[f32], row: usize, w: usize) {
    prefetch_l2(
        x.as_ptr()
            .wrapping_add(row * w)
            .wrapping_byte_add(PREFETCH_BYTES_AHEAD),
        8 * w,
    );
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

/// Output vector `$v` (first column `$at` of `$y`, rows of `$ow`) of a 3×3 stride-2 output
/// row from its W rows: the top one from the carry at `$kept`, which keeps the low one for
/// the next output row; folded top to bottom (`fold::<$mode>`) and stored.
macro_rules! k3s2_finish {
    (
        $mode:ident, $kept:expr, ($dst:expr, $y:expr, $at:expr, $ow:expr),
        $v:expr, $middle:expr, $low:expr
    ) => {{
        let (kept, v, middle, low): (*mut f32, usize, __m256, __m256) = ($kept, $v, $middle, $low);
        // SAFETY: the carry holds 8 values per output vector (the callers assert or require
        // 8 v + 8 <= its length).
        let top = unsafe { _mm256_loadu_ps(kept.add(8 * v)) };
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(kept.add(8 * v), low) };
        let folded = fold::<$mode>(fold::<$mode>(top, middle), low);
        store_out!($dst, $y, $at, $ow, in_output_order!(folded));
    }};
}

/// A stride-2 kernel's vector, its lanes in the order `vshufps` leaves (outputs 0 1 4 5 2 3 6
/// 7), put back in output order: one `vpermpd` (a macro, as `store_out!`).
macro_rules! in_output_order {
    ($v:expr) => {
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd($v)))
    };
}

/// All bits set in the lanes `l` whose column `c + l` lies in a row of `w < 2^31` columns.
#[inline]
#[target_feature(enable = "avx2")]
fn lanes_in_row(c: isize, w: usize) -> __m256i {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let cols = _mm256_add_epi32(_mm256_set1_epi32(c.clamp(-8, w as isize) as i32), lanes);
    _mm256_and_si256(
        _mm256_cmpgt_epi32(cols, _mm256_set1_epi32(-1)),
        _mm256_cmpgt_epi32(_mm256_set1_epi32(w as i32), cols),
    )
}

/// Columns `c .. c + 8` of the row at `row` (`w` values), those outside it holding `pad`.
///
/// Rows of 8 columns or more load the 8 nearest columns whole, move them into place with one
/// `vpermps` and blend the padding in: about 3.8 cycles a load on a Zen 1 core, against about
/// 10 for a masked load (`vmaskmovps`) and its blend (independent loads in a loop). In
/// `max_k3s2_plane_avx2` when it clipped two loads per row this way: 1.63–1.68 → 1.54 µs per
/// 56×56 plane (`PROBE_N=1 plane_probe 16 56 56 3 2 1`, in cache).
///
/// # Safety
/// The CPU must support AVX2; `row` is valid for `w` reads and `w < 2^31`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_clipped(row: *const f32, w: usize, c: isize, pad: __m256) -> __m256 {
    let inside = lanes_in_row(c, w);
    if w < 8 {
        // SAFETY: the mask enables the lanes of columns 0 .. w only, inside the row (the
        // caller's); masked-off lanes are not read and cannot fault; the address is only
        // formed, wrapping.
        let v = unsafe { _mm256_maskload_ps(row.wrapping_offset(c), inside) };
        return _mm256_blendv_ps(pad, v, _mm256_castsi256_ps(inside));
    }
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // lane l takes column c + l from the 8 loaded from `start`, the nearest that lie in the
    // row (lanes outside it take any of them, then the padding)
    let start = c.clamp(0, w as isize - 8);
    let from = _mm256_add_epi32(lanes, _mm256_set1_epi32((c - start).clamp(-8, 8) as i32));
    let from = _mm256_min_epi32(
        _mm256_max_epi32(from, _mm256_setzero_si256()),
        _mm256_set1_epi32(7),
    );
    // SAFETY: 0 <= start <= w − 8: columns start .. start + 8 lie in the row.
    let near = unsafe { _mm256_loadu_ps(row.offset(start)) };
    let v = _mm256_permutevar8x32_ps(near, from);
    _mm256_blendv_ps(pad, v, _mm256_castsi256_ps(inside))
}

/// Output vectors `v0 .. v0 + V` (8 columns each) of every row of a `K`×`K` stride-1 window
/// on one channels-first plane `x` of rows `w` long, both passes in one kernel, the AVX2
/// version of `x86::ks1_strip` (8-lane vectors; no NaN check flag, no input divisors): output
/// `(i, j)` folds the padded rows `i .. i + K` (input row `r - pad_top`; rows outside the
/// input are padding) at columns `j - PL .. j - PL + K` (outside the row: padding), by `MODE`
/// (0: the exact max rule, 1: the plain max, 2: the sum). Each input row is folded along W
/// once, taps in order, into a ring of the last [`RING_ROWS`] W rows; output row `i` then
/// folds its window's W rows top to bottom: the reference's row-major order regrouped, so max
/// values and NaNs are its bits, and sums differ from its sequential sum by rounding only
/// (then `+ 0`, so that an all −0 window gives +0, and divided by the windows' divisors:
/// multiplied by `reciprocals`, theirs, one for all, or one per output; within 1 ulp of the
/// quotient).
///
/// No branch per load, and no padding logic between the loads: where the strip's vectors
/// cross the row's ends only at the taps the left padding implies (`PL` taps of the first
/// vector, the last `PL` of the last one, as in every plane of 8 output columns or more),
/// the rows whose reads stay in the plane (all but the first and the last) load every tap
/// whole, reading into the rows beside, and blend the padding into those taps by masks made
/// once per strip. The other rows (and every row of other strips) are copied into a line
/// whose columns past the row hold the padding, then folded alike. The padding rows above
/// and below are folded too, as W rows of padding. The ring is memory (stack): one store
/// and `K` loads per output vector, where the ring kept in registers and shifted every row
/// (as pairs of rows, `W_r ⊕ W_(r+1)`) spilled them, and rows were read from the line
/// wherever a vector crossed an end. On a Zen 1 core (`RAYON_NUM_THREADS=1 PROBE_N=8
/// plane_probe`, ns per plane, two rounds alternating, with the two-row turns below):
/// sppf_max5 (`256 20 20 5 1 2`) 609–623 → 398–409, large_avg (`64 56 56 7 1 3 avg`)
/// 5237–5398 → 4031–4102, inception_max_s1 (`192 28 28 3 1 1`) 708–778 → 573–577,
/// inception_avg_s1 (`.. avg`) 693–704 → 639–657.
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
    reciprocals: &[f32],
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
            && (reciprocals.len() <= 1 || reciprocals.len() == y.len())
            && 8 * (v0 + V - 1) < ow
            && pad_top < 1 << 30
    );
    const { assert!(K < RING_ROWS) };
    let pad = pad_value::<MODE>();
    // one reciprocal for all, broadcast once
    let reciprocal = _mm256_set1_ps(match reciprocals {
        [r] => *r,
        _ => 1.0,
    });
    // the first output column of each vector: the last vector of a row ends at its end,
    // overlapping the one before (it stores the same values there), so that every store is a
    // whole vector (`vmaskmovps` stores cost tens of cycles on AMD's cores: 44 % of the
    // samples of inception_max_s1 went to the one in each row); below 8 columns, lanes below
    // `ow` are stored one by one
    let cols: [usize; V] = std::array::from_fn(|u| (8 * (v0 + u)).min(ow.saturating_sub(8)));
    // each vector's first tap column
    let starts: [isize; V] = std::array::from_fn(|u| cols[u] as isize - PL as isize);
    // the taps blended with the padding: the first `PL` of the first vector, the last `PL` of
    // the last one
    let blended = |u: usize, t: usize| (u == 0 && t < PL) || (u == V - 1 && t >= K - PL);
    // Rows are read whole (past their ends, into the rows beside) where the other taps lie in
    // the row: as in every plane of 8 output columns or more, with the padding's `PL` columns
    // on both sides
    let reads_whole = ow >= 8
        && (0..V).all(|u| {
            (0..K).all(|t| {
                let c = starts[u] + t as isize;
                blended(u, t) || (c >= 0 && c + 8 <= w as isize)
            })
        });
    // the columns the strip reads, `span`, and the rows read whole in place: those whose
    // reads lie in x (all but the first and the last where the strip reads past the row)
    let span = starts[0]..starts[V - 1] + K as isize + 7;
    let whole_rows = if reads_whole {
        let from = (-span.start).max(0) as usize;
        // the last whole row r has r·w + span.end <= h·w
        let to = (h * w) as isize - span.end;
        let end = if to < 0 {
            0
        } else {
            (to as usize / w + 1).min(h)
        };
        from.div_ceil(w)..end
    } else {
        0..0
    };
    // The other rows are copied into `line` first, its other columns holding the padding:
    // column c of the row at line[c − span.start] (a span holds at most 8 (V − 1) + K + 7
    // columns: V <= 4 and K <= 7, as asserted)
    const { assert!(8 * 3 + 7 + 7 <= LINE) };
    let mut line = [0f32; LINE];
    for v in line.chunks_exact_mut(8) {
        // SAFETY: `v` holds 8 values.
        unsafe { _mm256_storeu_ps(v.as_mut_ptr(), pad) };
    }
    let copied = (span.start.max(0) as usize)..(span.end.min(w as isize) as usize);
    let line_row = line.as_mut_ptr().wrapping_offset(-span.start);
    // lanes of a blended tap that lie in the row (on a copied row, the line's padding lies
    // there too)
    let in_row = |c: isize| _mm256_castsi256_ps(lanes_in_row(c, w));
    let first_masks: [__m256; K] = std::array::from_fn(|t| in_row(starts[0] + t as isize));
    let last_masks: [__m256; K] = std::array::from_fn(|t| in_row(starts[V - 1] + t as isize));
    // W rows, padded row p (input row p − pad_top; outside the input, the padding) at
    // ring[p % RING_ROWS] (not filled first: each slot is written before it is read)
    let mut ring = [[MaybeUninit::<__m256>::uninit(); V]; RING_ROWS];
    let mut row_nan = _mm256_setzero_ps();
    // folds padded row p along W into the ring (a macro, not a closure, so that the code is
    // compiled in this function's ISA context)
    macro_rules! wrow {
        ($p:expr) => {{
            let p: usize = $p;
            let slot = &mut ring[p % RING_ROWS];
            if p < pad_top || p - pad_top >= h {
                *slot = [MaybeUninit::new(pad); V];
            } else {
                let r = p - pad_top;
                let mut row = x.as_ptr().wrapping_add(r * w);
                if !whole_rows.contains(&r) {
                    let n = copied.len();
                    let (from, to) = (
                        row.wrapping_add(copied.start),
                        line_row.wrapping_add(copied.start),
                    );
                    // SAFETY: columns copied.start .. copied.end lie in the row and in the
                    // span, whose columns the line holds; whole vectors where n >= 8, the
                    // last overlapping the one before.
                    unsafe {
                        if n >= 8 {
                            let mut j = 0;
                            while j + 8 < n {
                                _mm256_storeu_ps(to.add(j), _mm256_loadu_ps(from.add(j)));
                                j += 8;
                            }
                            _mm256_storeu_ps(to.add(n - 8), _mm256_loadu_ps(from.add(n - 8)));
                        } else {
                            std::ptr::copy_nonoverlapping(from, to, n);
                        }
                    }
                    row = line_row.cast_const();
                }
                for u in 0..V {
                    let (mut acc, mut first) = (pad, pad);
                    for t in 0..K {
                        // SAFETY: a row read whole: columns c .. c + 8 lie in x
                        // (whole_rows); a copied one: in the span, which the line holds.
                        let mut v =
                            unsafe { _mm256_loadu_ps(row.wrapping_offset(starts[u] + t as isize)) };
                        if blended(u, t) {
                            if u == 0 {
                                v = _mm256_blendv_ps(pad, v, first_masks[t]);
                            }
                            if u == V - 1 {
                                v = _mm256_blendv_ps(pad, v, last_masks[t]);
                            }
                        }
                        if t == 0 {
                            (acc, first) = (v, v);
                        } else {
                            acc = fold::<MODE>(acc, v);
                        }
                        if MODE == PLAIN_MAX && t == K - 1 {
                            let either = _mm256_cmp_ps::<_CMP_UNORD_Q>(first, v);
                            row_nan = _mm256_or_ps(row_nan, either);
                        }
                    }
                    slot[u].write(acc);
                }
            }
        }};
    }
    let dst = y.as_mut_ptr().cast::<f32>();
    for p in 0..K - 1 {
        wrow!(p);
    }
    // output vector u of row i, folded, stored
    macro_rules! finish_store {
        ($i:expr, $u:expr, $v:expr) => {{
            let (at, mut v): (usize, __m256) = ($i * ow + cols[$u], $v);
            if MODE == SUM {
                // from +0, as the reference's sums (an all −0 window gives +0)
                v = _mm256_add_ps(v, _mm256_setzero_ps());
                // by the reciprocal, as `finish_window!`
                if let [_] = reciprocals {
                    v = _mm256_mul_ps(v, reciprocal);
                } else if !reciprocals.is_empty() {
                    // SAFETY: the reciprocals lie as the outputs (asserted): lanes below
                    // ow; with fewer than 8 columns, masked-off lanes are not read (zero,
                    // and go to no store).
                    let r = unsafe {
                        if ow >= 8 {
                            _mm256_loadu_ps(reciprocals.as_ptr().add(at))
                        } else {
                            _mm256_maskload_ps(reciprocals.as_ptr().add(at), lanes_below(ow))
                        }
                    };
                    v = _mm256_mul_ps(v, r);
                }
            }
            store_out!(dst, y, at, ow, v);
        }};
    }
    // Two output rows a turn from 5×5 on: rows i and i + 1 share the W rows i + 1 .. i + K,
    // folded once (`K + 1` loads and `K` folds for both, against `2 K` and `2 K − 2`). On a
    // Zen 1 core (`PROBE_N=8 plane_probe`, ns per plane, alternating): sppf_max5 460–470 →
    // 406–414, large_avg 4162–4191 → 4010–4040; 3×3 lost (inception_max_s1 567–590 →
    // 600–609), and takes a row a turn. Padding rows are folded too: −∞ is never taken by a
    // max, and +0 changes no sum (bar an all −0 one, made +0 anyway).
    let mut i = 0;
    while K > 3 && i + 1 < oh {
        wrow!(i + K - 1);
        wrow!(i + K);
        for u in 0..V {
            // SAFETY: padded rows 0 .. i + K + 1 have been folded into their slots, and the
            // rows read, i .. i + K + 1, are the last K + 1 < RING_ROWS of them.
            let ring_row = |k: usize| unsafe { ring[(i + k) % RING_ROWS][u].assume_init() };
            let mut shared = ring_row(1);
            for k in 2..K {
                shared = fold::<MODE>(shared, ring_row(k));
            }
            finish_store!(i, u, fold::<MODE>(ring_row(0), shared));
            finish_store!(i + 1, u, fold::<MODE>(shared, ring_row(K)));
        }
        i += 2;
    }
    while i < oh {
        wrow!(i + K - 1);
        for u in 0..V {
            // SAFETY: as above, rows i .. i + K.
            let ring_row = |k: usize| unsafe { ring[(i + k) % RING_ROWS][u].assume_init() };
            let mut v = ring_row(0);
            for k in 1..K {
                v = fold::<MODE>(v, ring_row(k));
            }
            finish_store!(i, u, v);
        }
        i += 1;
    }
    _mm256_movemask_ps(row_nan) != 0
}

/// Max pooling 3×3 at stride 2 of one channels-first plane (`h × w`, padded by `pad_top` rows
/// above and `PL` ≤ 1 columns before, the rest of every window past the input being padding),
/// the AVX2 version of `x86::k3s2_strip` (no NaN check flag: the plain max always checks).
/// `MODE`: 0 = the exact max rule, 1 = the plain max, which also returns whether any value
/// read is NaN (the caller then redoes the plane by the exact rule). `x` holds the plane in
/// its first `h × w` values; values after it (the next planes) let the last rows' loads read
/// past the plane's end as other rows' read past their row's (the values masked out).
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
/// Rows are folded without a branch per load: the vectors whose loads lie in the row by plain
/// loads, and the few at the row's ends by loads that read past them (into the rows beside,
/// inside the plane) with the padding blended in by masks made once per plane. Only the rows
/// where such reads would leave the plane, padding rows, and rows under 8 columns decide
/// each load apart (clipped loads). Measured against deciding every load apart on a Zen 1
/// core (`nnpool bench --layout nchw`, two rounds alternating, medians at 1 / 2 threads,
/// ms): max3d 4.55–4.63 / 2.64–2.65 → 3.90–4.20 / 2.18–2.23, resnet_stem_max 3.63 /
/// 2.15–2.17 → 3.38–3.42 / 2.12–2.19, alexnet_max 1.62–1.73 / 0.85 → 1.38–1.43 / 0.78–0.82.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn max_k3s2_plane_avx2<const MODE: u8, const PL: usize>(
    x: &[f32],
    (h, w): (usize, usize),
    pad_top: usize,
    (oh, ow): (usize, usize),
    carry: &mut [f32],
    prefetch: bool,
    y: &mut [MaybeUninit<f32>],
) -> bool {
    let vectors = ow.div_ceil(8);
    assert!(
        MODE < SUM
            && PL <= 1
            && (1..1 << 30).contains(&w)
            && x.len() >= h * w
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
            // SAFETY: inside: columns c .. c + 8 lie in the row (checked below); else the
            // clipped load reads the row's columns only.
            unsafe {
                if $inside {
                    _mm256_loadu_ps($row.offset(c))
                } else {
                    load_clipped($row, w, c, pad)
                }
            }
        }};
    }
    // vector v's first tap column, and whether the columns of each of its loads (from base,
    // base + 8, base + 2, base + 10) lie in the row (plain loads). Decided per load, not per
    // vector: a row's first vector, padded on the left, clips only its load from base, and
    // its last one only the load from base + 10; clipping all four of both (`vmaskmovps` and
    // a blend each) made resnet_stem_max nchw 1.6× its copy on a Zen 1 core.
    let span = |v: usize| {
        let base = (2 * col(v)) as isize - PL as isize;
        let inside = |c: isize| c >= 0 && c as usize + 8 <= w;
        (base, [0, 8, 2, 10].map(|o| inside(base + o)))
    };
    // the W pass of padded row r at vector v (from `span(v)`; outputs in the order 0 1 4 5 2 3
    // 6 7), and the lanes that saw a NaN
    let mut nan = _mm256_setzero_ps();
    macro_rules! wvec {
        ($r:expr, $v:expr, $base:expr, $inside:expr) => {{
            let (r, v, base, inside): (usize, usize, isize, [bool; 4]) = ($r, $v, $base, $inside);
            if r >= pad_top && r - pad_top < h {
                let row = x[(r - pad_top) * w..].as_ptr();
                let (a, b) = (load!(row, base, inside[0]), load!(row, base + 8, inside[1]));
                let (a2, b2) = (
                    load!(row, base + 2, inside[2]),
                    load!(row, base + 10, inside[3]),
                );
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
    // The vectors whose four loads all lie in the row, before the last one (whose NaN check
    // reads one more column): a contiguous range, as `base` grows with `v`. Rows whose middle
    // and low rows are both input rows fold these without a branch per load or per row.
    let plain = |v: usize| v + 1 < vectors && span(v).1 == [true; 4];
    let first_plain = (0..vectors).find(|&v| plain(v)).unwrap_or(vectors);
    let end_plain = (first_plain..vectors)
        .find(|&v| !plain(v))
        .unwrap_or(vectors);
    let input_row = |r: usize| r >= pad_top && r - pad_top < h;
    // The vectors outside that range (`edges`, at most 4) load their columns as they lie in
    // the plane: columns before 0 or past w − 1 read the row's neighbours, and a blend with a
    // mask made once here puts the padding in their place, without a branch. Rows where those
    // reads stay in `x` take this path: all but the first and the last. Deciding per load and
    // row (a branch each, and a masked load per clipped one: ~10 cycles each on a Zen 1 core,
    // against ~1.8 for a load and a blend, ~3.8 with a `vpermps` too) took 1.54–1.62 µs per
    // 56×56 plane on a Zen 1 core (`PROBE_N=1 plane_probe 16 56 56 3 2 1`, in cache), where
    // half the vectors are edge vectors; this way 1.28–1.36. One loop over all the vectors,
    // the plain ones blended with full masks, was slower (1.44–1.50; 56×256 planes 4.8–5.0
    // against 3.9–4.1 µs).
    let edge_count = first_plain + (vectors - end_plain);
    let mut edges = [(0usize, [_mm256_setzero_ps(); 4]); 4];
    // the masks as `lanes_in_row` makes them, written out: called from the closure below it
    // is not inlined (the closure has no AVX2 context), and a 56 × 56 plane took 1.31–1.32
    // µs against 1.24–1.25 (`PROBE_N=8 plane_probe 16 56 56 3 2 1`, 1 thread)
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let (mut lowest, mut highest) = (0isize, w as isize);
    let over_read = edge_count <= 4 && w >= 8;
    if over_read {
        for (slot, v) in edges
            .iter_mut()
            .zip((0..first_plain).chain(end_plain..vectors))
        {
            let (base, _) = span(v);
            *slot = (
                v,
                [0, 8, 2, 10].map(|o| {
                    let c = base + o;
                    (lowest, highest) = (lowest.min(c), highest.max(c + 8));
                    let cols = _mm256_add_epi32(_mm256_set1_epi32(c as i32), lanes);
                    _mm256_castsi256_ps(_mm256_and_si256(
                        _mm256_cmpgt_epi32(cols, _mm256_set1_epi32(-1)),
                        _mm256_cmpgt_epi32(_mm256_set1_epi32(w as i32), cols),
                    ))
                }),
            );
        }
    }
    let edges = &edges[..edge_count.min(4)];
    // input row q's columns lowest .. highest lie in x
    let readable = |q: usize| {
        let at = (q * w) as isize;
        at + lowest >= 0 && at + highest <= x.len() as isize
    };
    let kept = carry.as_mut_ptr();
    for v in 0..vectors {
        let (base, inside) = span(v);
        let first = wvec!(0, v, base, inside);
        // SAFETY: 8 v + 8 <= carry.len() (asserted).
        unsafe { _mm256_storeu_ps(kept.add(8 * v), first) };
    }
    // rows whose loads need no decision: both W rows input rows whose over-reads stay in x
    // (each condition holds on a range of rows, so all of them on one)
    let fast = |i: usize| {
        over_read
            && input_row(2 * i + 1)
            && input_row(2 * i + 2)
            && readable(2 * i + 1 - pad_top)
            && readable(2 * i + 2 - pad_top)
    };
    let plane = K3s2Plane {
        x,
        w,
        pad_top,
        ow,
        vectors,
        plain: first_plain..end_plain,
        edges,
        prefetch,
    };
    // found from both ends: testing every row took ~4 % of a 55 × 55 plane
    let first_fast = (0..oh).find(|&i| fast(i)).unwrap_or(oh);
    let end_fast = (first_fast..oh)
        .rev()
        .find(|&i| fast(i))
        .map_or(first_fast, |i| i + 1);
    debug_assert!((first_fast..end_fast).all(fast));
    let mut i = 0;
    while i < oh {
        if i == first_fast && first_fast < end_fast {
            // SAFETY: AVX2 (this function's contract); rows first_fast .. end_fast are
            // `fast`, the edges and the plain range as `K3s2Plane` asks, carry and y as
            // asserted.
            nan = unsafe {
                max_k3s2_fast_rows::<MODE, PL>(&plane, first_fast..end_fast, carry, y, nan)
            };
            i = end_fast;
            continue;
        }
        if prefetch && 2 * i + 1 >= pad_top {
            prefetch_rows_ahead(x, 2 * i + 1 - pad_top, w);
        }
        // a padding row, the plane's first or last row, or rows under 8 columns or with many
        // edge vectors: the loads decided one by one (the pointers taken after the fast rows'
        // call, which borrowed carry and y)
        let (dst, kept) = (y.as_mut_ptr().cast::<f32>(), carry.as_mut_ptr());
        for v in 0..vectors {
            let (base, inside) = span(v);
            let middle = wvec!(2 * i + 1, v, base, inside);
            let low = wvec!(2 * i + 2, v, base, inside);
            k3s2_finish!(MODE, kept, (dst, y, i * ow + col(v), ow), v, middle, low);
        }
        i += 1;
    }
    _mm256_movemask_ps(nan) != 0
}

/// What [`max_k3s2_fast_rows`] needs of a plane, from [`max_k3s2_plane_avx2`].
struct K3s2Plane<'a> {
    x: &'a [f32],
    w: usize,
    pad_top: usize,
    ow: usize,
    vectors: usize,
    /// the vectors whose four loads lie in the row (not the last vector)
    plain: core::ops::Range<usize>,
    /// the other vectors and the masks of their four loads' columns in the row
    edges: &'a [(usize, [__m256; 4])],
    prefetch: bool,
}

/// Output rows `rows` of [`max_k3s2_plane_avx2`] whose W rows are both input rows that the
/// edge vectors' loads may read past (into the rows beside, inside the plane): no decision
/// per load. `nan` in and out, as there.
///
/// A function of its own so that its pointers stay in registers: inside the plane function
/// (the slow rows, the masks, the closures) they were reloaded from the stack at every vector,
/// and a 55 × 551 plane took 8.3 ns per output vector against 5.0 for a C loop of the same
/// operations (Zen 1 core, in cache); a C loop reloading its pointers likewise took 6.7.
///
/// # Safety
/// The CPU must support AVX2; for every row in `rows`, padded rows `2 i + 1` and `2 i + 2`
/// are input rows whose columns from the lowest to the highest an edge load reads lie in
/// `x`; `plain` and `edges` as `max_k3s2_plane_avx2` makes them; `carry` holds at least
/// `8 vectors` values and `y` `oh × ow` with every row in `rows` below `oh`.
#[inline(never)]
#[target_feature(enable = "avx2")]
unsafe fn max_k3s2_fast_rows<const MODE: u8, const PL: usize>(
    plane: &K3s2Plane<'_>,
    rows: core::ops::Range<usize>,
    carry: &mut [f32],
    y: &mut [MaybeUninit<f32>],
    mut nan: __m256,
) -> __m256 {
    let K3s2Plane {
        x,
        w,
        pad_top,
        ow,
        vectors,
        ref plain,
        edges,
        prefetch,
    } = *plane;
    let pad = pad_value::<MODE>();
    let col = |v: usize| (8 * v).min(ow.saturating_sub(8));
    let (dst, kept) = (y.as_mut_ptr().cast::<f32>(), carry.as_mut_ptr());
    for i in rows {
        if prefetch && 2 * i + 1 >= pad_top {
            prefetch_rows_ahead(x, 2 * i + 1 - pad_top, w);
        }
        // output vector v of row i from its middle and low W rows
        macro_rules! finish {
            ($v:expr, $middle:expr, $low:expr) => {{
                let v: usize = $v;
                k3s2_finish!(MODE, kept, (dst, y, i * ow + col(v), ow), v, $middle, $low);
            }};
        }
        // the W fold of the row at `row` from its columns a, b (base, base + 8) and a2, b2
        // (base + 2, base + 10), folded into `nan`'s lanes: a and b's NaNs; the last vector's
        // b2's too (it holds the last column its windows read)
        macro_rules! row_fold {
            ($a:expr, $b:expr, $a2:expr, $b2:expr, $last:expr) => {{
                let (a, b, a2, b2): (__m256, __m256, __m256, __m256) = ($a, $b, $a2, $b2);
                let even = _mm256_shuffle_ps::<0x88>(a, b);
                let odd = _mm256_shuffle_ps::<0xdd>(a, b);
                let next = _mm256_shuffle_ps::<0x88>(a2, b2);
                if MODE == PLAIN_MAX {
                    nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b));
                    if $last {
                        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(b2, b2));
                    }
                }
                fold::<MODE>(fold::<MODE>(even, odd), next)
            }};
        }
        let middle_row = x[(2 * i + 1 - pad_top) * w..].as_ptr();
        let low_row = x[(2 * i + 2 - pad_top) * w..].as_ptr();
        // an edge vector's loads, the padding blended in (macros, not closures: a closure is
        // not always inlined, and then its vector arguments pass through memory, outside
        // this function's ISA context)
        macro_rules! edge_fold {
            ($row:expr, $base:expr, $keep:expr) => {{
                let (row, base, keep): (*const f32, isize, &[__m256; 4]) = ($row, $base, $keep);
                // SAFETY: the caller's contract: the columns of every edge load of the row lie
                // in x.
                let [a, b, a2, b2] =
                    unsafe { [0, 8, 2, 10].map(|o| _mm256_loadu_ps(row.offset(base + o))) };
                [
                    _mm256_blendv_ps(pad, a, keep[0]),
                    _mm256_blendv_ps(pad, b, keep[1]),
                    _mm256_blendv_ps(pad, a2, keep[2]),
                    _mm256_blendv_ps(pad, b2, keep[3]),
                ]
            }};
        }
        macro_rules! edge_vector {
            ($v:expr, $keep:expr) => {{
                let (v, keep): (usize, &[__m256; 4]) = ($v, $keep);
                let base = (2 * col(v)) as isize - PL as isize;
                let [a, b, a2, b2] = edge_fold!(middle_row, base, keep);
                let middle = row_fold!(a, b, a2, b2, v + 1 == vectors);
                let [a, b, a2, b2] = edge_fold!(low_row, base, keep);
                let low = row_fold!(a, b, a2, b2, v + 1 == vectors);
                finish!(v, middle, low);
            }};
        }
        for (v, keep) in edges.iter().filter(|e| e.0 < plain.start) {
            edge_vector!(*v, keep);
        }
        for v in plain.clone() {
            let base = (16 * v) as isize - PL as isize;
            macro_rules! plain {
                ($row:expr) => {{
                    let row: *const f32 = $row;
                    // SAFETY: `plain` (the caller's contract): columns base .. base + 18 lie
                    // in the row.
                    unsafe {
                        [
                            _mm256_loadu_ps(row.offset(base)),
                            _mm256_loadu_ps(row.offset(base + 8)),
                            _mm256_loadu_ps(row.offset(base + 2)),
                            _mm256_loadu_ps(row.offset(base + 10)),
                        ]
                    }
                }};
            }
            let [a, b, a2, b2] = plain!(middle_row);
            let middle = row_fold!(a, b, a2, b2, false);
            let [a, b, a2, b2] = plain!(low_row);
            let low = row_fold!(a, b, a2, b2, false);
            finish!(v, middle, low);
        }
        for (v, keep) in edges.iter().filter(|e| e.0 >= plain.end) {
            edge_vector!(*v, keep);
        }
    }
    nan
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
            prefetch_rows_ahead(x, 2 * i - pad_top, w);
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
            let first = if MODE == SUM {
                planes[f] + 0.0
            } else {
                planes[f]
            };
            let acc = (1..count).fold(first, |a, i| fold_scalar::<MODE>(a, planes[i * n + f]));
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

// Channels-last kernels (`direct.rs`): the AVX2 versions of `x86::cl_*`. A pixel's channels
// are contiguous, so one vector holds 8 channels of one tap. These take channel counts that
// are multiples of 8 only (`direct::applies`): no vector has a tail to mask (AVX2 has no
// masked load into a chosen value, and its masked stores are slow on AMD's cores).

/// `acc` combined with the later value `x`, one value at a time, as [`fold`] does.
#[inline]
fn fold_scalar<const MODE: u8>(acc: f32, x: f32) -> f32 {
    match MODE {
        SUM => acc + x,
        _ if x > acc || (MODE == EXACT_MAX && x.is_nan()) => x,
        _ => acc,
    }
}

/// Whether any value of `x` is NaN or ±inf (an integer max of the magnitudes): the AVX2
/// version of `x86::any_nan_or_inf_avx512`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn any_nan_or_inf_avx2(x: &[f32]) -> bool {
    let n = x.len();
    let p = x.as_ptr();
    let magnitude = _mm256_set1_epi32(0x7fff_ffff);
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut f = 0;
    while f + 32 <= n {
        for (q, a) in acc.iter_mut().enumerate() {
            // SAFETY: f + 8q + 8 <= f + 32 <= n.
            let v = unsafe { _mm256_loadu_si256(p.add(f + 8 * q).cast()) };
            *a = _mm256_max_epu32(*a, _mm256_and_si256(v, magnitude));
        }
        f += 32;
    }
    while f < n {
        // SAFETY: f < n; the mask enables the lanes below n only, and masked-off lanes are
        // not read (they load as 0).
        let v = unsafe { _mm256_maskload_ps(p.add(f), lanes_below(n - f)) };
        acc[0] = _mm256_max_epu32(acc[0], _mm256_and_si256(_mm256_castps_si256(v), magnitude));
        f += 8;
    }
    let top = _mm256_max_epu32(
        _mm256_max_epu32(acc[0], acc[1]),
        _mm256_max_epu32(acc[2], acc[3]),
    );
    // magnitudes fit in 31 bits, so the signed compare is the unsigned one
    let special = _mm256_cmpgt_epi32(top, _mm256_set1_epi32(0x7f7f_ffff));
    _mm256_movemask_ps(_mm256_castsi256_ps(special)) != 0
}

/// A window's result from its fold: max as it is; a sum (folded in an order that may not
/// start from the reference's +0) plus +0, so that an all −0 window gives +0 as the
/// reference's does, then divided by the divisor: multiplied by its `$reciprocal` (a vector),
/// within 1 ulp of the quotient, as `zmm::finish_window` (the same bits: both round `a ·
/// reciprocal` once). A macro, so that it is compiled in the caller's ISA context.
macro_rules! finish_window {
    ($mode:expr, $a:expr, $reciprocal:expr) => {
        if $mode == SUM {
            _mm256_mul_ps(_mm256_add_ps($a, _mm256_setzero_ps()), $reciprocal)
        } else {
            $a
        }
    };
}

/// One channels-last output pixel of the max with indices: the AVX2 version of
/// `x86::cl_pixel_indices` (see there), for channel counts that are multiples of 8: channel
/// `ch` of `out` is the max of `x[o · c + ch]` over the taps `o` of `offs` in order (a later
/// value wins when greater or NaN), `idx[ch]` that tap's `o`. Four vectors of 8 channels at a
/// time, then one; the indices in 32-bit lanes, widened on the store.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn cl_pixel_indices(
    x: &[f32],
    offs: &[usize],
    c: usize,
    out: &mut [MaybeUninit<f32>],
    idx: &mut [i64],
) {
    assert!(
        !offs.is_empty()
            && c.is_multiple_of(8)
            && out.len() >= c
            && idx.len() >= c
            && offs
                .iter()
                .all(|&o| o * c + c <= x.len() && o <= i32::MAX as usize)
    );
    let (src, dst, dst_i) = (x.as_ptr(), out.as_mut_ptr().cast::<f32>(), idx.as_mut_ptr());
    // Q vectors of channels from ch
    macro_rules! channels {
        ($q:literal, $ch:expr) => {{
            let ch: usize = $ch;
            let mut acc = [(_mm256_setzero_ps(), _mm256_setzero_si256()); $q];
            for (q, a) in acc.iter_mut().enumerate() {
                // SAFETY: channels ch + 8 q .. + 8 <= c of pixel offs[0], inside x (asserted).
                let v = unsafe { _mm256_loadu_ps(src.add(offs[0] * c + ch + 8 * q)) };
                *a = (v, _mm256_set1_epi32(offs[0] as i32));
            }
            for &o in &offs[1..] {
                let at = _mm256_castsi256_ps(_mm256_set1_epi32(o as i32));
                for (q, (v, vi)) in acc.iter_mut().enumerate() {
                    // SAFETY: as above, for pixel o.
                    let x = unsafe { _mm256_loadu_ps(src.add(o * c + ch + 8 * q)) };
                    let take = _mm256_or_ps(
                        _mm256_cmp_ps::<_CMP_GT_OQ>(x, *v),
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x),
                    );
                    *v = _mm256_blendv_ps(*v, x, take);
                    *vi = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(*vi), at, take));
                }
            }
            for (q, &(v, vi)) in acc.iter().enumerate() {
                let at = ch + 8 * q;
                let low = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(vi));
                let high = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(vi));
                // SAFETY: channels at .. at + 8 <= c <= out.len(), idx.len().
                unsafe {
                    _mm256_storeu_ps(dst.add(at), v);
                    _mm256_storeu_si256(dst_i.add(at).cast(), low);
                    _mm256_storeu_si256(dst_i.add(at + 4).cast(), high);
                }
            }
        }};
    }
    let mut ch = 0;
    while ch + 32 <= c {
        channels!(4, ch);
        ch += 32;
    }
    while ch < c {
        channels!(1, ch);
        ch += 8;
    }
}

/// One output pixel of a channels-last window problem, folded straight from the input: for
/// every channel, `out[ch] = fold over the taps (in the reference's row-major order) of
/// x[off * c + ch]`, then (sums) divided by `div`; 4 channel vectors at a time, then single
/// ones. The AVX2 version of `x86::cl_pixel`: sums come out in the reference's order, the
/// same bits.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn cl_pixel<const MODE: u8>(
    x: &[f32],
    offs: &[usize],
    c: usize,
    div: f32,
    out: &mut [MaybeUninit<f32>],
) {
    assert!(c.is_multiple_of(8) && out.len() >= c && offs.iter().all(|&o| o * c + c <= x.len()));
    let (src, dst) = (x.as_ptr(), out.as_mut_ptr().cast::<f32>());
    let div = _mm256_set1_ps(div);
    macro_rules! finish {
        ($a:expr) => {
            if MODE == SUM {
                _mm256_div_ps($a, div)
            } else {
                $a
            }
        };
    }
    let mut ch = 0;
    while ch + 32 <= c {
        let mut acc = [pad_value::<MODE>(); 4];
        for &o in offs {
            let p = o * c + ch;
            for (q, a) in acc.iter_mut().enumerate() {
                // SAFETY: p + 8q + 8 <= o * c + c <= x.len() (asserted).
                *a = fold::<MODE>(*a, unsafe { _mm256_loadu_ps(src.add(p + 8 * q)) });
            }
        }
        for (q, a) in acc.iter().enumerate() {
            // SAFETY: ch + 8q + 8 <= c <= out.len().
            unsafe { _mm256_storeu_ps(dst.add(ch + 8 * q), finish!(*a)) };
        }
        ch += 32;
    }
    while ch < c {
        let mut a = pad_value::<MODE>();
        for &o in offs {
            // SAFETY: ch + 8 <= c (8 divides c), so inside pixel o, inside x (asserted).
            a = fold::<MODE>(a, unsafe { _mm256_loadu_ps(src.add(o * c + ch)) });
        }
        // SAFETY: ch + 8 <= c <= out.len().
        unsafe { _mm256_storeu_ps(dst.add(ch), finish!(a)) };
        ch += 8;
    }
}

/// One output row of a channels-last 2×2 stride-2 window, interior columns, the AVX2 version
/// of `x86::cl_row_k2s2`: output column `j` (of `cols`) folds input rows `rows[0]`,
/// `rows[1]` (element offsets of column 0 in `x`) at columns `col0 + 2j`, `col0 + 2j + 1`, in
/// the reference's row-major order (then, sums, `+ 0` and divided by `div`). With `check`,
/// also returns whether any value read may be NaN (whether `(a + b) + (e + f) − itself` is
/// NaN for some window: for a NaN, an infinity or a sum past the largest float; the caller
/// redoes the row by the exact rule then, right in every case). With `prefetch`, the next
/// output row's pixels are asked into L2 as `x86::cl_row_k2s2` asks them.
///
/// # Safety
/// The CPU must support AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn cl_row_k2s2<const MODE: u8>(
    x: &[f32],
    rows: [usize; 2],
    c: usize,
    col0: usize,
    cols: usize,
    div: f32,
    (check, prefetch): (bool, bool),
    out: &mut [MaybeUninit<f32>],
) -> bool {
    assert!(
        c.is_multiple_of(8)
            && cols >= 1
            && out.len() >= cols * c
            && rows.iter().all(|&r| r + (col0 + 2 * cols) * c <= x.len())
    );
    let (src, dst) = (x.as_ptr(), out.as_mut_ptr().cast::<f32>());
    let reciprocal = _mm256_set1_ps(1.0 / div);
    let mut special = _mm256_setzero_ps();
    for j in 0..cols {
        let (p0, p1) = (rows[0] + (col0 + 2 * j) * c, rows[1] + (col0 + 2 * j) * c);
        if prefetch {
            super::x86::k2s2_prefetch(src, [p0, p1], rows[1] - rows[0], 2 * c);
        }
        let mut ch = 0;
        while ch < c {
            // SAFETY: pixels col0 + 2j and col0 + 2j + 1 of both rows lie in x (asserted),
            // channels ch .. ch + 8 <= c; the store writes output pixel j < cols, inside out.
            unsafe {
                let a = _mm256_loadu_ps(src.add(p0 + ch));
                let b = _mm256_loadu_ps(src.add(p0 + c + ch));
                let e = _mm256_loadu_ps(src.add(p1 + ch));
                let f = _mm256_loadu_ps(src.add(p1 + c + ch));
                if check {
                    let sum = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(e, f));
                    special = _mm256_add_ps(special, _mm256_sub_ps(sum, sum));
                }
                let y = fold::<MODE>(fold::<MODE>(fold::<MODE>(a, b), e), f);
                _mm256_storeu_ps(dst.add(j * c + ch), finish_window!(MODE, y, reciprocal));
            }
            ch += 8;
        }
    }
    let unordered = _mm256_cmp_ps::<_CMP_UNORD_Q>(special, special);
    _mm256_movemask_ps(unordered) != 0
}

/// How many output rows ahead [`cl_row_k3s2`] prefetches (into L2) the input pixels of the
/// column it is at, as `x86::cl_row_k3s2` does.
const CL_PREFETCH_ROWS_AHEAD: usize = 2;

/// One output row of a channels-last 3×3 window at stride 2 on both axes, interior columns
/// only, the AVX2 version of `x86::cl_row_k3s2` (see there): output column `j` (of `cols`)
/// folds input rows `rows[0 .. R]` at columns `col0 + 2j .. col0 + 2j + 2`, each row along W
/// first, then the `R` W folds top to bottom; `top` carries the W fold of the row two output
/// rows share (`top_ready`: it holds that of `rows[0]`; on return, that of `rows[R − 1]`);
/// with `PRE` (`POST`), `around[0]` (`around[1]`) is folded in before (after) the window.
/// The max modes return whether any value they loaded is NaN; sums return `false`.
///
/// # Safety
/// The CPU must support AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn cl_row_k3s2<
    const MODE: u8,
    const R: usize,
    const PRE: bool,
    const POST: bool,
>(
    x: &[f32],
    rows: [usize; R],
    c: usize,
    col0: usize,
    cols: usize,
    div: f32,
    (top_ready, around, prefetch): (bool, [&[f32]; 2], bool),
    top: &mut [f32],
    out: &mut [MaybeUninit<f32>],
) -> bool {
    assert!(
        (1..=3).contains(&R)
            && c.is_multiple_of(8)
            && cols >= 1
            && top.len() >= cols * c
            && out.len() >= cols * c
            && (!PRE || around[0].len() >= cols * c)
            && (!POST || around[1].len() >= cols * c)
            && rows
                .iter()
                .all(|&r| r + (col0 + 2 * cols + 1) * c <= x.len())
    );
    let (src, t, dst) = (x.as_ptr(), top.as_mut_ptr(), out.as_mut_ptr().cast::<f32>());
    let (pre, post) = (around[0].as_ptr(), around[1].as_ptr());
    let reciprocal = _mm256_set1_ps(1.0 / div);
    let mut nan = _mm256_setzero_ps();
    macro_rules! load {
        ($row:expr, $col:expr, $ch:expr) => {
            // SAFETY: row + (col + 1) * c <= x.len() for col <= col0 + 2 cols (asserted), and
            // ch + 8 <= c.
            unsafe { _mm256_loadu_ps(src.add($row + $col * c + $ch)) }
        };
    }
    // the first column of each row is checked here, the others by the loop's compares
    if MODE != SUM {
        let first = usize::from(top_ready);
        for ch in (0..c).step_by(8) {
            for &row in &rows[first..] {
                let a = load!(row, col0, ch);
                nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a));
            }
        }
    }
    macro_rules! wfold {
        ($row:expr, $col:expr, $ch:expr) => {{
            let (a0, a1, a2) = (
                load!($row, $col, $ch),
                load!($row, $col + 1, $ch),
                load!($row, $col + 2, $ch),
            );
            if MODE != SUM {
                nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(a1, a2));
            }
            fold::<MODE>(fold::<MODE>(a0, a1), a2)
        }};
    }
    // `$ready`: a literal, so that the choice between the carried fold and a fresh one is
    // made once per call, outside the loops
    macro_rules! column {
        ($j:expr, $ch:expr, $ready:literal) => {{
            let (j, ch): (usize, usize) = ($j, $ch);
            let col = col0 + 2 * j;
            let at = j * c + ch;
            let w0 = if $ready {
                // SAFETY: at + 8 <= cols * c <= top.len().
                unsafe { _mm256_loadu_ps(t.add(at)) }
            } else {
                wfold!(rows[0], col, ch)
            };
            let (mut acc, mut last) = (w0, w0);
            for &row in &rows[1..] {
                last = wfold!(row, col, ch);
                acc = fold::<MODE>(acc, last);
            }
            if PRE {
                // SAFETY: at + 8 <= cols * c <= around[0].len().
                acc = fold::<MODE>(unsafe { _mm256_loadu_ps(pre.add(at)) }, acc);
            }
            if POST {
                // SAFETY: at + 8 <= cols * c <= around[1].len().
                acc = fold::<MODE>(acc, unsafe { _mm256_loadu_ps(post.add(at)) });
            }
            // SAFETY: as above, for top and out (both hold cols * c values).
            unsafe {
                _mm256_storeu_ps(t.add(at), last);
                _mm256_storeu_ps(dst.add(at), finish_window!(MODE, acc, reciprocal));
            }
        }};
    }
    // prefetch: the two new input pixels of column j in the two input rows that output row
    // CL_PREFETCH_ROWS_AHEAD below reads first (interior rows: rows evenly spaced)
    let pf_bytes = 2 * c * std::mem::size_of::<f32>();
    let row_step = if R == 3 && prefetch {
        rows[1] - rows[0]
    } else {
        0
    };
    let pf_rows = [1, 2].map(|k| rows[0] + (2 * CL_PREFETCH_ROWS_AHEAD + k) * row_step);
    macro_rules! columns {
        ($ready:literal) => {
            for j in 0..cols {
                if row_step > 0 {
                    let at = (col0 + 2 * j + 1) * c;
                    for row in pf_rows {
                        prefetch_l2(src.wrapping_add(row + at), pf_bytes);
                    }
                }
                let mut ch = 0;
                while ch + 32 <= c {
                    column!(j, ch, $ready);
                    column!(j, ch + 8, $ready);
                    column!(j, ch + 16, $ready);
                    column!(j, ch + 24, $ready);
                    ch += 32;
                }
                while ch < c {
                    column!(j, ch, $ready);
                    ch += 8;
                }
            }
        };
    }
    if top_ready {
        columns!(true);
    } else {
        columns!(false);
    }
    _mm256_movemask_ps(nan) != 0
}

/// Two adjacent output rows of a channels-last 3×3 window at stride 1 on both axes, interior
/// columns only, the AVX2 version of `x86::cl_rows2_k3` (see there for `rows`, `EDGE` and the
/// order of the folds): each input row is folded along W once for both output rows, and
/// neighbouring columns share a pair. The plain max (`MODE` 1) also returns whether any value
/// it loaded is NaN or ±inf; other modes return `false`. One channel vector at a time (its 4
/// rows' last column and pair take 8 of the 16 registers), over column tiles whose input fits
/// in a third of L1.
///
/// # Safety
/// The CPU must support AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn cl_rows2_k3<const MODE: u8, const EDGE: u8>(
    x: &[f32],
    rows: [usize; 4],
    c: usize,
    col0: usize,
    cols: usize,
    divs: [f32; 2],
    out0: &mut [MaybeUninit<f32>],
    out1: &mut [MaybeUninit<f32>],
) -> bool {
    use super::x86::{row_read, ROWS_NO_BOTTOM, ROWS_NO_TOP};
    let read = row_read::<EDGE>;
    assert!(
        c.is_multiple_of(8)
            && cols >= 1
            && out0.len() >= cols * c
            && out1.len() >= cols * c
            && (0..4).all(|b| !read(b) || rows[b] + (col0 + cols + 2) * c <= x.len())
    );
    const TILE_BYTES: usize = 16 << 10;
    let tile = (TILE_BYTES / (c * 16)).saturating_sub(2).max(1);
    let src = x.as_ptr();
    let (d0, d1) = (
        out0.as_mut_ptr().cast::<f32>(),
        out1.as_mut_ptr().cast::<f32>(),
    );
    let (reciprocal0, reciprocal1) = (_mm256_set1_ps(1.0 / divs[0]), _mm256_set1_ps(1.0 / divs[1]));
    let magnitude = _mm256_set1_epi32(0x7fff_ffff);
    let mut top = _mm256_setzero_si256();
    macro_rules! load {
        ($row:expr, $col:expr, $ch:expr) => {{
            // SAFETY: row + (col + 1) * c <= x.len() for col <= col0 + cols + 1 (asserted),
            // and ch + 8 <= c.
            let a = unsafe { _mm256_loadu_ps(src.add($row + $col * c + $ch)) };
            if MODE == PLAIN_MAX {
                let bits = _mm256_and_si256(_mm256_castps_si256(a), magnitude);
                top = _mm256_max_epu32(top, bits);
            }
            a
        }};
    }
    let mut j0 = 0;
    while j0 < cols {
        let n_cols = tile.min(cols - j0);
        for ch in (0..c).step_by(8) {
            // per input row: the last column loaded and the fold of the last two
            let mut last = [_mm256_setzero_ps(); 4];
            let mut pair = [_mm256_setzero_ps(); 4];
            for b in (0..4).filter(|&b| read(b)) {
                let (a, z) = (
                    load!(rows[b], col0 + j0, ch),
                    load!(rows[b], col0 + j0 + 1, ch),
                );
                pair[b] = fold::<MODE>(a, z);
                last[b] = z;
            }
            for j in j0..j0 + n_cols {
                let mut row = [_mm256_setzero_ps(); 4];
                for b in (0..4).filter(|&b| read(b)) {
                    let z = load!(rows[b], col0 + j + 2, ch);
                    row[b] = fold::<MODE>(pair[b], z);
                    pair[b] = fold::<MODE>(last[b], z);
                    last[b] = z;
                }
                let middle = fold::<MODE>(row[1], row[2]);
                let y0 = if EDGE == ROWS_NO_TOP {
                    middle
                } else {
                    fold::<MODE>(row[0], middle)
                };
                let y1 = if EDGE == ROWS_NO_BOTTOM {
                    middle
                } else {
                    fold::<MODE>(middle, row[3])
                };
                let at = j * c + ch;
                // SAFETY: at + 8 <= cols * c <= out0.len(), out1.len().
                unsafe {
                    _mm256_storeu_ps(d0.add(at), finish_window!(MODE, y0, reciprocal0));
                    _mm256_storeu_ps(d1.add(at), finish_window!(MODE, y1, reciprocal1));
                }
            }
        }
        j0 += n_cols;
    }
    let special = _mm256_cmpgt_epi32(top, _mm256_set1_epi32(0x7f7f_ffff));
    _mm256_movemask_ps(_mm256_castsi256_ps(special)) != 0
}

/// `dst[f] = fold_t srcs[t][f]` for `f < n`, the taps in order, by `MODE`, 32 values at a
/// time, then 8, the last 8 overlapping the vector before (below 8 values, one at a time): the
/// AVX2 version of `x86::fold_rows` (see there; with `div`, sums are divided by it, their taps
/// never −0).
///
/// # Safety
/// The CPU must support AVX2; every `srcs[t]` is valid for `n` reads and `dst` for `n`
/// writes, not overlapping any of them.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn fold_rows<const MODE: u8>(
    srcs: &[*const f32],
    n: usize,
    div: Option<f32>,
    dst: *mut f32,
) {
    let (first, rest) = srcs.split_first().expect("at least one tap");
    let by = _mm256_set1_ps(1.0 / div.unwrap_or(1.0));
    let divide = MODE == SUM && div.is_some();
    macro_rules! finish {
        ($a:expr) => {
            if divide {
                _mm256_mul_ps($a, by)
            } else {
                $a
            }
        };
    }
    if n < 8 {
        for f in 0..n {
            // SAFETY: f < n: inside every source and the destination (the caller's).
            unsafe {
                let mut a = *first.add(f);
                for &s in rest {
                    a = fold_scalar::<MODE>(a, *s.add(f));
                }
                *dst.add(f) = match div {
                    Some(d) if divide => a / d,
                    _ => a,
                };
            }
        }
        return;
    }
    let mut f = 0;
    while f + 32 <= n {
        // SAFETY: f + 32 <= n: inside every source and the destination (the caller's).
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 4];
            for (q, a) in acc.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(first.add(f + 8 * q));
            }
            for &s in rest {
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = fold::<MODE>(*a, _mm256_loadu_ps(s.add(f + 8 * q)));
                }
            }
            for (q, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(dst.add(f + 8 * q), finish!(*a));
            }
        }
        f += 32;
    }
    while f < n {
        // the last vector ends at n, overlapping the one before: the same values again
        let at = f.min(n - 8);
        // SAFETY: at + 8 <= n, as above.
        unsafe {
            let mut a = _mm256_loadu_ps(first.add(at));
            for &s in rest {
                a = fold::<MODE>(a, _mm256_loadu_ps(s.add(at)));
            }
            _mm256_storeu_ps(dst.add(at), finish!(a));
        }
        f = at + 8;
    }
}

/// `v + 0` for sums (−0 becomes +0, every other value stays), `v` for max (a macro, as
/// [`finish_window!`]).
macro_rules! plus_zero {
    ($mode:expr, $v:expr) => {
        if $mode == SUM {
            _mm256_add_ps($v, _mm256_setzero_ps())
        } else {
            $v
        }
    };
}

/// W pass of one channels-last stride-1 row of `w` pixels of `c` channels (`src`, pixel 0)
/// into an output row (`dst`, pixel 0), by `MODE` (1: the plain max, 2: the sum,
/// unfinished): the AVX2 version of `x86::fold_row_w` (see there for the outputs, the
/// blocks, the border runs, the sums' `+ 0` and the NaN check, which this one makes on every
/// value an interior window loads).
///
/// # Safety
/// The CPU must support AVX2; `2 ≤ K ≤ 7`; 8 divides `c`; `src` is valid for `w c` reads and
/// `dst` for `(lo + cols + right.len()) c` writes, not overlapping them; `first + cols + K − 1
/// ≤ w`, `left.len() == lo`, every count is in `1..=w` and every start below `w`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn fold_row_w<const MODE: u8, const K: usize>(
    src: *const f32,
    c: usize,
    w: usize,
    (lo, first, cols): (usize, usize, usize),
    left: &[usize],
    right: &[usize],
    dst: *mut f32,
) -> bool {
    const { assert!(K >= 2 && 2 * K - 1 <= super::MAX_BLOCK_RUN) };
    debug_assert!(
        c.is_multiple_of(8)
            && first + cols + K - 1 <= w
            && left.len() == lo
            && left.iter().all(|&n| (1..=w).contains(&n))
            && right.iter().all(|&f| f < w)
    );
    let mut nan = _mm256_setzero_ps();
    // SAFETY (both): the caller's bounds: pixels below w (loads) and outputs below lo + cols
    // + right.len() (stores), channels ch .. ch + 8 <= c.
    macro_rules! load {
        ($col:expr, $ch:expr) => {
            unsafe { _mm256_loadu_ps(src.add(($col) * c + $ch)) }
        };
    }
    macro_rules! store {
        ($col:expr, $ch:expr, $v:expr) => {
            unsafe { _mm256_storeu_ps(dst.add(($col) * c + $ch), $v) }
        };
    }
    let mut o = 0;
    while o + K <= cols {
        // the pixels a block shares with the next one are checked there
        let checked = if o + 2 * K <= cols { K } else { 2 * K - 1 };
        for ch in (0..c).step_by(8) {
            let mut x = [_mm256_setzero_ps(); super::MAX_BLOCK_RUN];
            for (i, v) in x.iter_mut().enumerate().take(2 * K - 1) {
                *v = load!(first + o + i, ch);
            }
            if MODE == PLAIN_MAX {
                for i in (0..checked).step_by(2) {
                    let pair = x[(i + 1).min(2 * K - 2)];
                    nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(x[i], pair));
                }
            }
            if MODE == SUM {
                // in every window of the block: the sums cannot be −0
                x[K - 1] = _mm256_add_ps(x[K - 1], _mm256_setzero_ps());
            }
            block_windows!(K, x, _mm256_setzero_ps(), fold::<MODE>, |r, w| store!(
                lo + o + r,
                ch,
                w
            ));
        }
        o += K;
    }
    while o < cols {
        for ch in (0..c).step_by(8) {
            let mut acc = plus_zero!(MODE, load!(first + o, ch));
            for t in 1..K {
                let v = load!(first + o + t, ch);
                if MODE == PLAIN_MAX {
                    nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(acc, v));
                }
                acc = fold::<MODE>(acc, v);
            }
            store!(lo + o, ch, acc);
        }
        o += 1;
    }
    for ch in (0..c).step_by(8) {
        if !left.is_empty() {
            let mut acc = plus_zero!(MODE, load!(0, ch));
            let mut t = 1;
            for (o, &count) in left.iter().enumerate() {
                while t < count {
                    acc = fold::<MODE>(acc, load!(t, ch));
                    t += 1;
                }
                store!(o, ch, acc);
            }
        }
        if !right.is_empty() {
            let mut acc = plus_zero!(MODE, load!(w - 1, ch));
            let mut t = w - 1;
            for (i, &start) in right.iter().enumerate().rev() {
                while t > start {
                    t -= 1;
                    acc = fold::<MODE>(load!(t, ch), acc);
                }
                store!(lo + cols + i, ch, acc);
            }
        }
    }
    _mm256_movemask_ps(nan) != 0
}

/// H pass of the border rows of a channels-last stride-1 problem: the AVX2 version of
/// `x86::fold_rows_edges` (see there; `n` a multiple of 8 here).
///
/// # Safety
/// The CPU must support AVX2; 8 divides `n`; every source and destination is valid for `n`
/// values, no destination overlapping a source or another destination; counts lie in
/// `1..=srcs.len()`, starts below it; `dsts` (and `divs`, unless empty) hold one per output
/// row.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn fold_rows_edges<const MODE: u8>(
    srcs: &[*const f32],
    n: usize,
    bounds: Result<&[usize], &[usize]>,
    divs: &[f32],
    dsts: &[*mut f32],
) {
    let outputs = match bounds {
        Ok(ends) => ends.len(),
        Err(starts) => starts.len(),
    };
    assert!(
        n.is_multiple_of(8) && dsts.len() == outputs && (divs.is_empty() || divs.len() == outputs)
    );
    for f in (0..n).step_by(8) {
        // SAFETY (both): values f .. f + 8 <= n of a source or destination row (the
        // caller's bound).
        macro_rules! load {
            ($t:expr) => {
                unsafe { _mm256_loadu_ps(srcs[$t].add(f)) }
            };
        }
        macro_rules! store {
            ($i:expr, $v:expr) => {{
                let v = match divs.get($i) {
                    Some(&d) if MODE == SUM => _mm256_mul_ps($v, _mm256_set1_ps(1.0 / d)),
                    _ => $v,
                };
                unsafe { _mm256_storeu_ps(dsts[$i].add(f), v) }
            }};
        }
        match bounds {
            Ok(ends) => {
                let mut acc = load!(0);
                let mut t = 1;
                for (i, &end) in ends.iter().enumerate() {
                    while t < end {
                        acc = fold::<MODE>(acc, load!(t));
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
                        acc = fold::<MODE>(load!(t), acc);
                    }
                    store!(i, acc);
                }
            }
        }
    }
}

/// H pass of `K` consecutive output rows by van Herk / Gil-Werman blocks: the AVX2 version of
/// `x86::fold_rows_blocked` (see there; `n` a multiple of 8 here).
///
/// # Safety
/// The CPU must support AVX2; `2 ≤ K ≤ 7`; 8 divides `n`; `srcs` holds `2 K − 1` rows and
/// `dsts` `K`, each valid for `n` values, no destination overlapping a source or another
/// destination.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn fold_rows_blocked<const MODE: u8, const K: usize>(
    srcs: &[*const f32],
    n: usize,
    div: Option<f32>,
    dsts: &[*mut f32],
) {
    const { assert!(K >= 2 && 2 * K - 1 <= super::MAX_BLOCK_RUN) };
    assert!(n.is_multiple_of(8) && srcs.len() == 2 * K - 1 && dsts.len() == K);
    let by = _mm256_set1_ps(1.0 / div.unwrap_or(1.0));
    let divide = MODE == SUM && div.is_some();
    for f in (0..n).step_by(8) {
        let mut x = [_mm256_setzero_ps(); super::MAX_BLOCK_RUN];
        for (v, &s) in x.iter_mut().zip(srcs) {
            // SAFETY: values f .. f + 8 <= n of a source row (the caller's bound).
            *v = unsafe { _mm256_loadu_ps(s.add(f)) };
        }
        block_windows!(K, x, _mm256_setzero_ps(), fold::<MODE>, |r, w| {
            let w = if divide { _mm256_mul_ps(w, by) } else { w };
            // SAFETY: values f .. f + 8 <= n of destination row r (the caller's bound).
            unsafe { _mm256_storeu_ps(dsts[r].add(f), w) }
        });
    }
}

/// Averages of short channels-first planes, 8 planes at a time: the AVX2 version of
/// `x86::plane_averages_avx512` (see there): `y[p] = Σ x[p*plane .. (p+1)*plane]` plus +0,
/// then divided by each of `divisors` in turn. Each plane folds into one vector of lane
/// partials (its last vector cleared past the plane: below), and the 8 vectors of a group are
/// reduced together by a transposing tree (halves of 128, 64 and 32 bits: 7 shuffle-pairs and
/// adds for 8 planes) instead of one horizontal reduction per plane. Planes past the last
/// full group are reduced one at a time. The order of the additions differs from the
/// reference's, within the averages' tolerance. resnet_gap nchw at AVX2 (`NNPOOL_KERNEL=avx2
/// RAYON_NUM_THREADS=1 PROBE_N=8 plane_probe 512 7 7 7 1 0 gap`, builds alternating, µs):
/// 30–43 with the generic code, 9–13 with this.
///
/// A plane's last vector is a plain load, its lanes past the plane (the next plane's values)
/// cleared by `and` (the same +0 that the masked load gives them), where those lanes lie in
/// `x`; only the last plane's is a masked load. On a Zen 1 core, where a `vmaskmovps` load
/// costs far more than a load and an `and`, that took the same probe (1 thread, three rounds
/// alternating) from 45.9–46.2 to 27.7–28.1 µs.
///
/// # Safety
/// The CPU must support AVX2. `plane > 0` and `x.len() >= y.len() * plane`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn plane_averages_avx2(x: &[f32], plane: usize, divisors: &[f32], y: &mut [f32]) {
    assert!(plane > 0 && x.len() >= y.len() * plane);
    let p = x.as_ptr();
    let full = plane / 8;
    let tail_len = plane - 8 * full;
    let tail = lanes_below(tail_len);
    let has_tail = tail_len > 0;
    macro_rules! partials {
        ($q:expr, $full:expr) => {{
            // SAFETY: plane $q lies inside x ($q < y.len(), asserted).
            let base = unsafe { p.add($q * plane) };
            let mut a = if has_tail && ($q + 1) * plane + 8 - tail_len <= x.len() {
                // SAFETY: the 8 values from the plane's last vector lie in x (checked): the
                // plane's own lanes, then the next plane's, which the mask clears.
                let v = unsafe { _mm256_loadu_ps(base.add(8 * $full)) };
                _mm256_and_ps(v, _mm256_castsi256_ps(tail))
            } else if has_tail {
                // SAFETY: the mask enables only the plane's own lanes of its last vector.
                unsafe { _mm256_maskload_ps(base.add(8 * $full), tail) }
            } else {
                _mm256_setzero_ps()
            };
            for v in 0..$full {
                // SAFETY: vector v of the plane lies inside it (8v + 8 <= plane).
                a = _mm256_add_ps(a, unsafe { _mm256_loadu_ps(base.add(8 * v)) });
            }
            a
        }};
    }
    // pairs of vectors → one vector with half of each one's partials, their lanes kept
    macro_rules! halve_ps {
        ($a:expr, $b:expr) => {
            _mm256_add_ps(
                _mm256_shuffle_ps::<0b10_00_10_00>($a, $b),
                _mm256_shuffle_ps::<0b11_01_11_01>($a, $b),
            )
        };
    }
    // after the tree, lane 4h + r holds plane 2r + h
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let groups = y.len() / 8;
    macro_rules! group_loop {
        ($full:expr) => {
            for g in 0..groups {
                let a: [__m256; 8] = std::array::from_fn(|q| partials!(8 * g + q, $full));
                // 128-bit halves: b[i] = [plane 2i: 4 partials | plane 2i+1: 4 partials]
                let b: [__m256; 4] = std::array::from_fn(|i| {
                    _mm256_add_ps(
                        _mm256_permute2f128_ps::<0x20>(a[2 * i], a[2 * i + 1]),
                        _mm256_permute2f128_ps::<0x31>(a[2 * i], a[2 * i + 1]),
                    )
                });
                // within each 128-bit half h: c[0] = [plane h, h, h+2, h+2] (2 partials
                // each), c[1] the same for planes h+4 and h+6; then e = [h, h+2, h+4, h+6]
                let (c0, c1) = (halve_ps!(b[0], b[1]), halve_ps!(b[2], b[3]));
                let e = halve_ps!(c0, c1);
                let mut sums = _mm256_permutevar8x32_ps(e, order);
                sums = _mm256_add_ps(sums, _mm256_setzero_ps());
                for &d in divisors {
                    sums = _mm256_div_ps(sums, _mm256_set1_ps(d));
                }
                // SAFETY: y holds planes 8g .. 8g + 8 (g < y.len() / 8).
                unsafe { _mm256_storeu_ps(y.as_mut_ptr().add(8 * g), sums) };
            }
        };
    }
    match full {
        1 => group_loop!(1),
        2 => group_loop!(2),
        3 => group_loop!(3),
        4 => group_loop!(4),
        5 => group_loop!(5),
        6 => group_loop!(6),
        _ => group_loop!(full),
    }
    for (q, v) in y.iter_mut().enumerate().skip(8 * groups) {
        let a = partials!(q, full);
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), a) };
        let sum = lanes.iter().fold(0.0f32, |s, &l| s + l) + 0.0;
        *v = divisors.iter().fold(sum, |s, d| s / d);
    }
}

/// 2×2 stride-2 windows over consecutive row pairs of channels-first planes of even sides
/// stacked as one tall image (`pairs.rs`) in one pass, the AVX2 counterpart of
/// `x86::pairs_rows`: `x` holds `2 k` rows of `w` values, `y` `k` rows of
/// `w / 2`, output `(r, j)` folding `x[2r][2j]`, `x[2r][2j + 1]`, `x[2r + 1][2j]`, `x[2r +
/// 1][2j + 1]` in that order (the reference's row-major order: max values, NaNs and sums
/// are its bits; sums then `+ 0` and divided by `div`). Eight outputs take four loads, and
/// `vshufps` splits even and odd columns.
///
/// Rows of 8 outputs or more store whole vectors, the last one ending at the row's end. Rows
/// of fewer (14-wide planes: 7) store 8 outputs from the row's start, the lanes past its end
/// holding windows of the next row pair that that row's store then overwrites: rows are
/// stored in order, and a row whose 8 lanes would pass the end of `y` or whose loads would
/// pass the end of `x` (the last ones) goes value by value. The generic 2×2 plane kernel
/// stored such rows value by value, clipping every load. Measured against the 2×2 plane
/// kernel (`max_k2s2_plane_avx2`; `NNPOOL_KERNEL=avx2 RAYON_NUM_THREADS=1 PROBE_N=8
/// plane_probe C H W 2 2 0`, builds alternating, µs): 512×8×8 154–155 → 25–35, vgg_max_14
/// (512×14×14) 266–454 → 53–66, 256×16×16 82–136 → 31–43, 256×28×28 384–386 → 98–144,
/// 128×56×56 349–577 → 231–283, 64×112×112 even; on vgg_max_224 (64×224×224, larger than
/// the last-level cache) 6.5–6.7 ms against 12.8–13.2, and with a prefetch 16 KiB ahead even
/// at one thread and slower at two, so `pairs::applies` leaves inputs that large to the
/// plane kernel, which prefetches.
///
/// With `check`, also returns whether any value loaded is NaN (the lanes past a short row's
/// end too: a false alarm costs a second pass by the exact rule, never a wrong result).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn pairs_rows_avx2<const MODE: u8>(
    x: &[f32],
    w: usize,
    div: f32,
    check: bool,
    y: &mut [MaybeUninit<f32>],
) -> bool {
    let half = w / 2;
    let rows = x.len().checked_div(2 * w).unwrap_or(0);
    assert!(w >= 2 && w.is_multiple_of(2) && x.len() == rows * 2 * w && y.len() == rows * half);
    let (src, dst) = (x.as_ptr(), y.as_mut_ptr().cast::<f32>());
    let reciprocal = _mm256_set1_ps(1.0 / div);
    let mut nan = _mm256_setzero_ps();
    // outputs from inputs `$i .. $i + 16` of a row and of the row below (`$i + w`)
    macro_rules! window8 {
        ($i:expr) => {{
            let i: usize = $i;
            // SAFETY: the callers keep i + w + 16 <= x.len().
            let (a, b, e, f) = unsafe {
                (
                    _mm256_loadu_ps(src.add(i)),
                    _mm256_loadu_ps(src.add(i + 8)),
                    _mm256_loadu_ps(src.add(i + w)),
                    _mm256_loadu_ps(src.add(i + w + 8)),
                )
            };
            if check {
                nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b));
                nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(e, f));
            }
            let top = fold::<MODE>(
                _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
                _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
            );
            let acc = fold::<MODE>(top, _mm256_shuffle_ps::<0b10_00_10_00>(e, f));
            let acc = fold::<MODE>(acc, _mm256_shuffle_ps::<0b11_01_11_01>(e, f));
            in_output_order!(finish_window!(MODE, acc, reciprocal))
        }};
    }
    let mut special = false;
    for r in 0..rows {
        let (i0, o0) = (2 * r * w, r * half);
        if half >= 8 {
            let mut j = 0;
            while j < half {
                let at = j.min(half - 8);
                let v = window8!(i0 + 2 * at);
                // SAFETY: at + 8 <= half: inside output row r.
                unsafe { _mm256_storeu_ps(dst.add(o0 + at), v) };
                j = at + 8;
            }
        } else if i0 + w + 16 <= x.len() && o0 + 8 <= y.len() {
            let v = window8!(i0);
            // SAFETY: o0 + 8 <= y.len() (checked); the lanes past row r are stored again by
            // row r + 1.
            unsafe { _mm256_storeu_ps(dst.add(o0), v) };
        } else {
            for j in 0..half {
                let taps = [
                    x[i0 + 2 * j],
                    x[i0 + 2 * j + 1],
                    x[i0 + w + 2 * j],
                    x[i0 + w + 2 * j + 1],
                ];
                special |= check && taps.iter().any(|t| t.is_nan());
                let acc = taps[1..]
                    .iter()
                    .fold(taps[0], |a, &t| fold_scalar::<MODE>(a, t));
                y[o0 + j].write(if MODE == SUM { (acc + 0.0) / div } else { acc });
            }
        }
    }
    special || _mm256_movemask_ps(nan) != 0
}

/// Values ahead of the one being read that the disjoint max backward prefetches, of the
/// indices (4 KiB) and of the gradients (2 KiB), as the scatter does (its
/// `INDEX_PREFETCH_AHEAD`): with the gradient being written and two streams read, the
/// hardware prefetcher alone left the loads waiting on memory.
const DISJOINT_PREFETCH_AHEAD: usize = 512;

/// Prefetches the index and gradient [`DISJOINT_PREFETCH_AHEAD`] values past `idx` and `gy`.
#[inline(always)]
fn prefetch_ahead(idx: *const i64, gy: *const f32) {
    // SAFETY: a prefetch is only a hint: it does not fault, and `wrapping_add` forms the
    // address without claiming it lies in the allocation.
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(idx.wrapping_add(DISJOINT_PREFETCH_AHEAD).cast());
        _mm_prefetch::<_MM_HINT_T0>(gy.wrapping_add(DISJOINT_PREFETCH_AHEAD).cast());
    }
}

/// The max backward of one channels-last input pixel whose windows tile the input
/// (`disjoint.rs`): channel `ch` is `+0 + gy[ch]` where `idx[ch] == pixel`, else +0. Returns how
/// many channels the indices named. Eight channels at a time: the two 4-lane 64-bit compares
/// are joined into one 8-lane mask (`vshufps`, then `vpermpd` to restore the channel order),
/// where LLVM's loop had loaded the gradients by `vmaskmovps` on 4-lane vectors. Whole
/// vectors only: returns how many channels the indices named and how many channels it wrote
/// (the caller writes the tail).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2,popcnt")]
pub(crate) unsafe fn disjoint_pixel(
    idx: &[i64],
    gy: &[f32],
    pixel: i64,
    out: &mut [MaybeUninit<f32>],
) -> (usize, usize) {
    let n = idx.len().min(gy.len()).min(out.len());
    let (pi, pg, po) = (idx.as_ptr(), gy.as_ptr(), out.as_mut_ptr().cast::<f32>());
    let (at, zero) = (_mm256_set1_epi64x(pixel), _mm256_setzero_ps());
    let mut named = 0usize;
    let mut ch = 0;
    while ch + 8 <= n {
        prefetch_ahead(pi.wrapping_add(ch), pg.wrapping_add(ch));
        // SAFETY: channels ch .. ch + 8 lie below n, within idx, gy and out.
        unsafe {
            let low = _mm256_cmpeq_epi64(_mm256_loadu_si256(pi.add(ch).cast()), at);
            let high = _mm256_cmpeq_epi64(_mm256_loadu_si256(pi.add(ch + 4).cast()), at);
            // lanes in the order 0 1 4 5 | 2 3 6 7, then 0 1 2 3 | 4 5 6 7
            let mixed = _mm256_shuffle_ps::<0b10_00_10_00>(
                _mm256_castsi256_ps(low),
                _mm256_castsi256_ps(high),
            );
            let mask = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                mixed,
            )));
            let g = _mm256_add_ps(zero, _mm256_loadu_ps(pg.add(ch)));
            _mm256_storeu_ps(po.add(ch), _mm256_and_ps(mask, g));
            named += _mm256_movemask_ps(mask).count_ones() as usize;
        }
        ch += 8;
    }
    (named, ch)
}

/// The max backward of channels-first input columns that whole 2-wide windows cover
/// (`disjoint.rs`): window `j`'s columns `2j` and `2j + 1` (pixels `first_pixel + 2j ..`) get
/// `+0 + gy[j]` where `idx[j]` names them, else +0. Returns how many windows' indices named a
/// column here. Four windows (eight columns) at a time: the index less each window's first
/// pixel is compared with 0 and 1 in 64-bit lanes, and one `vpblendd` interleaves the two
/// masks into column order (each 64-bit mask's low half for column 0, high half for column
/// 1). Whole vectors only: returns how many windows' indices named a column here and how
/// many windows it wrote (the caller writes the tail).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2,popcnt")]
pub(crate) unsafe fn disjoint_pairs(
    idx: &[i64],
    gy: &[f32],
    first_pixel: i64,
    out: &mut [MaybeUninit<f32>],
) -> (usize, usize) {
    let n = idx.len().min(gy.len()).min(out.len() / 2);
    let (pi, pg, po) = (idx.as_ptr(), gy.as_ptr(), out.as_mut_ptr().cast::<f32>());
    let zero = _mm256_setzero_ps();
    let one = _mm256_set1_epi64x(1);
    let spread = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    // each lane's window's first pixel, four windows on at every step
    let mut first = _mm256_add_epi64(
        _mm256_set1_epi64x(first_pixel),
        _mm256_setr_epi64x(0, 2, 4, 6),
    );
    let step = _mm256_set1_epi64x(8);
    let mut named = 0usize;
    let mut j = 0;
    while j + 4 <= n {
        prefetch_ahead(pi.wrapping_add(j), pg.wrapping_add(j));
        // SAFETY: windows j .. j + 4 lie below n: their indices and gradients are in idx and
        // gy, their columns 2j .. 2j + 8 in out.
        unsafe {
            let tap = _mm256_sub_epi64(_mm256_loadu_si256(pi.add(j).cast()), first);
            let left = _mm256_cmpeq_epi64(tap, _mm256_setzero_si256());
            let right = _mm256_cmpeq_epi64(tap, one);
            let mask = _mm256_castsi256_ps(_mm256_blend_epi32::<0b1010_1010>(left, right));
            let g4 = _mm256_castps128_ps256(_mm_loadu_ps(pg.add(j)));
            let g = _mm256_add_ps(zero, _mm256_permutevar8x32_ps(g4, spread));
            _mm256_storeu_ps(po.add(2 * j), _mm256_and_ps(mask, g));
            named += _mm256_movemask_ps(mask).count_ones() as usize;
        }
        first = _mm256_add_epi64(first, step);
        j += 4;
    }
    (named, j)
}
