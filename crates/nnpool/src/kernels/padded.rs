//! Channels-first planes pooled with no border logic in the inner loops.
//!
//! Small channels-first planes are where per-row bookkeeping costs most: each row is one or
//! two vectors long. This path removes every border case and almost every per-row step from
//! the inner loops:
//!
//! - W pass, f32 with AVX-512 (rows of up to 8 output vectors, planes up to 256×256): straight
//!   from the input. Each input row is read with masked loads whose masked-off lanes hold the
//!   padding value (−∞ for max, 0 for sums; the ceil-mode overhang is padding too), at stride 2
//!   split into even and odd columns, and tap `j` of 16 outputs is one permute of two such
//!   vectors (`x86::pad_wpass_direct`). Elsewhere (other ISAs, f64, wider rows; planes up to
//!   64×64): each input row is copied into a buffer already surrounded by the padding value,
//!   rows `q` elements apart (stride 2: even and odd columns in two buffers), and the W pass is
//!   one flat loop over it, `t[f] = fold_j row[f + j]` (lanes past a row's last output compute
//!   garbage from the next row and are never read);
//! - H pass: `y[i][o] = fold_t t[(i*sh + t)*q + o]`, 16 outputs per vector written straight
//!   into the output; on the direct path in bands of output rows, each right after the W pass
//!   of the input rows it needs, so that the input keeps streaming;
//! - max 3×3 at stride 2 (AVX-512; ResNet's stem, 3-D stems, AlexNet), 3×3, 5×5 and 7×7
//!   at stride 1 (max, sums, the 3×3 average backward's sum; Inception, YOLO's SPPF, large
//!   averages): both passes in one kernel (`x86::k3s2_strip`, `x86::ks1_strip`), the
//!   W-pass rows held in registers, not in a buffer; in f32 and in f64 (written once over
//!   `zmm::Zmm`: 16 or 8 lanes a vector; f32 also at the AVX2 level);
//! - stride-1 windows of 8 taps and more along H or W (SPP's 9×9 and 13×13, large windows;
//!   AVX-512, f32 and f64): `x86::wide_s1_strip`, doubling runs along W in registers and van
//!   Herk blocks along H, a cost per output that grows with `log2 kw` only (forward, and the
//!   average backward's stride-1 sum);
//! - 3-D: every depth slice is pooled W then H into a scratch volume, then each output slice
//!   folds its slices in order;
//! - sums: one flat division by a divisor plane computed once per task.
//!
//! Only forward max without indices and sums take it (indices come from the general kernels).
//! Max values equal the reference's exactly: the W-then-H(-then-D) fold of a window is the
//! row-major fold regrouped, and the max combine (later wins when greater or NaN) is
//! associative, so the same value — and the same NaN, the last in row-major order — comes out.
//! Planes without NaN or infinities use a plain `>` max (one instruction), identical there. Sums
//! start from 0 as the reference does (so an all −0 window gives +0) and are added row by row:
//! within rounding of the reference's order; each is divided once by the same integer divisor
//! as the reference.

use super::isa::{multiversion, Isa};
use super::out::{as_uninit_mut, fill_zero, Out};
use super::window::{init, single_value, take, window_divisors, AxisPlan, FastFloat, Reduce};
#[cfg(target_arch = "x86_64")]
use super::{cast, cast_mut};
use crate::geometry::Span;
use crate::layout::Layout;
use crate::plan::{Divisor, Geom};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Largest plane (elements) this path takes through a padded copy. Measured with `nnpool
/// bench` (Zen 5, f32, 1 thread, the general kernels A/B in the same run): 2–3× faster on the
/// 14×14 to 56×56 cases; with the copy, resnet_stem_max (112×112, 25.7 MB, memory-bound) was
/// slower than the flat channels-first path (`plane.rs`).
const MAX_PLANE: usize = 64 * 64;

/// Largest plane when the W pass reads the input directly (no padded copy). Measured with
/// `nnpool bench` (Zen 5, same-run A/B against the flat path of `plane.rs`): resnet_stem_max
/// nchw (112×112) 4.8–5.3 → 2.3–3.1 ms, vgg_max_224 nchw (224×224) 11.7–12.2 → 9.5–13.3 ms
/// (1 thread; the machine is noisy).
const MAX_DIRECT_PLANE: usize = 256 * 256;

/// The geometry of one plane, as this path needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlaneShape {
    /// Input and output depth (1 and 1 for 2-D problems): a 3-D problem is pooled plane by
    /// plane (W then H) and the pooled planes are then folded along the depth.
    d: usize,
    od: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    pad_top: usize,
    pad_left: usize,
    /// Row stride of the padded buffers and of the W-pass rows (a multiple of 16).
    q: usize,
    /// Padded rows the windows read: `(oh - 1) * sh + kh`.
    rows: usize,
    /// AVX-512 may be used for the short copies (f32 only).
    avx512: bool,
    /// The kernels run at the AVX2 level: the fused kernels have AVX2 versions (`avx2.rs`;
    /// f32 only), and 2×2 stride-2 max has one of its own there.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    avx2: bool,
    /// The input is large enough to prefetch ([`super::prefetch_from_bytes`]; set by
    /// [`forward`]; read by the x86 kernels only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    prefetch: bool,
}

/// Whether a sliding axis at stride 1 or 2 is exactly `k` taps (dilation 1) from `o*s - pad`,
/// clipped to the input — so that the padded copy reproduces its windows.
pub(crate) fn plain_sliding(a: &AxisPlan, n: usize) -> bool {
    (a.s == 1 || a.s == 2) && exact_spans(a, n)
}

/// Whether every window of an axis is exactly `k` taps at stride `s` (dilation 1) from
/// `o*s - pad`, clipped to the input and not empty.
pub(crate) fn exact_spans(a: &AxisPlan, n: usize) -> bool {
    a.d == 1
        && a.s >= 1
        && a.k >= 1
        && !a.spans.is_empty()
        && a.spans.iter().enumerate().all(|(o, sp)| {
            let start = (o * a.s) as isize - a.pad as isize;
            let first = start.max(0) as usize;
            let end = (start + a.k as isize).clamp(0, n as isize) as usize;
            sp.count > 0 && sp.first == first && sp.count == end - first && sp.step == 1
        })
}

/// The plane shape when this path takes the problem.
pub(crate) fn applies<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    with_indices: bool,
) -> Option<PlaneShape> {
    let shape = plane_shape(g, axes, reduce, with_indices)?;
    let limit = if direct_w::<F>(&shape) || fused::<F>(&shape, reduce) {
        MAX_DIRECT_PLANE
    } else if (shape.d, shape.od) == (1, 1) {
        MAX_PLANE
    } else {
        return None; // depth folding is done on the direct path and the AVX2 fused one only
    };
    (g.in_plane() <= limit).then_some(shape)
}

/// The plane shape of a problem whose windows this path reproduces (plain sliding windows,
/// consecutive depth slices), whatever its size.
fn plane_shape(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    with_indices: bool,
) -> Option<PlaneShape> {
    let [ad, ah, aw] = axes;
    let [d_in, h, w] = g.in3;
    let flat = d_in == 1 && ad.spans.len() == 1 && ad.spans[0].count == 1;
    // depth windows: consecutive input planes, each window holding at least one
    let depth = ad.d == 1
        && !ad.spans.is_empty()
        && ad
            .spans
            .iter()
            .all(|sp| sp.count > 0 && sp.first + sp.count <= d_in);
    let ok = g.layout == Layout::ChannelsFirst
        && !(with_indices && reduce == Reduce::Max)
        && !matches!(reduce, Reduce::Sum(Divisor::PerAxis))
        && (flat || depth)
        && g.in_plane() > 0
        && plain_sliding(ah, h)
        && plain_sliding(aw, w);
    if !ok {
        return None;
    }
    let (oh, ow) = (ah.spans.len(), aw.spans.len());
    // a row holds every padded column a window reads (stride 2: in each phase), plus one
    let q = if aw.s == 1 {
        ow + aw.k
    } else {
        ow + aw.k.div_ceil(2) + 1
    }
    .div_ceil(16)
        * 16;
    if aw.pad >= q {
        return None;
    }
    let shape = PlaneShape {
        d: if flat { 1 } else { d_in },
        od: if flat { 1 } else { ad.spans.len() },
        h,
        w,
        oh,
        ow,
        kh: ah.k,
        kw: aw.k,
        sh: ah.s,
        sw: aw.s,
        pad_top: ah.pad,
        pad_left: aw.pad,
        q,
        rows: (oh - 1) * ah.s + ah.k,
        avx512: super::isa::has_avx512(),
        avx2: super::isa::avx2_level(),
        prefetch: false,
    };
    Some(shape)
}

/// How taps combine: the exact max rule, the max of a plane without NaN, or a sum.
pub(crate) const EXACT_MAX: u8 = 0;
pub(crate) const PLAIN_MAX: u8 = 1;
pub(crate) const SUM: u8 = 2;

#[inline(always)]
fn fold<F: FastFloat, const M: u8>(acc: &mut [F; 16], x: &[F; 16]) {
    for l in 0..16 {
        acc[l] = match M {
            SUM => acc[l] + x[l],
            // `later > earlier ? later : earlier` is one max instruction, and the exact rule
            // whenever no NaN is involved (equal values keep the earlier one)
            PLAIN_MAX => {
                if x[l] > acc[l] {
                    x[l]
                } else {
                    acc[l]
                }
            }
            _ => {
                if take(acc[l], x[l]) {
                    x[l]
                } else {
                    acc[l]
                }
            }
        };
    }
}

#[inline(always)]
fn start<F: FastFloat, const M: u8>() -> F {
    if M == SUM {
        init::<F, true>()
    } else {
        init::<F, false>()
    }
}

fn init_of<F: FastFloat>(reduce: Reduce) -> F {
    match reduce {
        Reduce::Max => init::<F, false>(),
        Reduce::Sum(_) => init::<F, true>(),
    }
}

/// Copies a short row without a call to `memmove` (whose call overhead dominates rows of a few
/// dozen elements): whole vectors, then the last vector overlapping; below one vector, a masked
/// copy where AVX-512 is on, else elements.
#[inline(always)]
fn copy_small<F: FastFloat>(dst: &mut [F], src: &[F], avx512: bool) {
    let n = src.len().min(dst.len());
    if n >= 16 {
        let mut i = 0;
        while i + 16 <= n {
            let v: [F; 16] = *vec16(src, i);
            dst[i..i + 16].copy_from_slice(&v);
            i += 16;
        }
        if i < n {
            let v: [F; 16] = *vec16(src, n - 16);
            dst[n - 16..n].copy_from_slice(&v);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        if let (Some(d), Some(s)) = (cast_mut::<F, f32>(dst), cast::<F, f32>(&src[..n])) {
            // SAFETY: `avx512` is true only when AVX-512F was detected (isa::has_avx512).
            unsafe { super::x86::copy_short_avx512(d, s) };
            return;
        }
    }
    let _ = avx512;
    #[allow(clippy::manual_memcpy)] // a call to memmove is what this function avoids
    for i in 0..n {
        dst[i] = src[i];
    }
}

/// `a[m] = src[2m]` and `b[m] = src[2m + 1]` (`a` takes the last element of an odd `src`).
#[inline(always)]
fn split_pairs<F: FastFloat>(src: &[F], a: &mut [F], b: &mut [F], avx512: bool) {
    let pairs = src.len() / 2;
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        if let (Some(s), Some(a32), Some(b32)) = (
            cast::<F, f32>(&src[..2 * pairs]),
            cast_mut::<F, f32>(&mut a[..pairs]),
            cast_mut::<F, f32>(&mut b[..pairs]),
        ) {
            // SAFETY: `avx512` is true only when AVX-512F was detected; the slices are `2n`, `n`
            // and `n` long as the function requires.
            unsafe { super::x86::deinterleave2_avx512(s, a32, b32) };
            if src.len() % 2 == 1 {
                a[pairs] = src[2 * pairs];
            }
            return;
        }
    }
    let _ = avx512;
    for m in 0..pairs {
        a[m] = src[2 * m];
        b[m] = src[2 * m + 1];
    }
    if src.len() % 2 == 1 {
        a[pairs] = src[2 * pairs];
    }
}

#[inline(always)]
fn vec16<F: FastFloat>(s: &[F], at: usize) -> &[F; 16] {
    s[at..at + 16].try_into().expect("16 values")
}

/// The 16 values at `s[at..at + 16]` (checked: the generic path is the fallback for other
/// ISAs and f64; the AVX-512 f32 path in `x86.rs` asserts its ranges once per loop instead).
#[inline(always)]
fn load16<F: FastFloat>(s: &[F], at: usize) -> [F; 16] {
    *vec16(s, at)
}

/// Whether a plane may hold a NaN (then max takes the exact rule). `v - v` is 0 for finite
/// values and NaN for NaN and ±inf, so an infinity also takes the exact rule: slower, still
/// exact. (Written as float arithmetic on fixed lanes: a boolean "any" loop vectorises badly.)
#[inline(always)]
#[allow(clippy::eq_op)] // `v - v` is the NaN/infinity test
pub(crate) fn maybe_nan<F: FastFloat>(x: &[F], avx512: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        use super::zmm::{F32x16, F64x8};
        if let Some(x32) = cast::<F, f32>(x) {
            // SAFETY: `avx512` is true only when AVX-512F was detected.
            return unsafe { super::x86::any_nan_or_inf_avx512::<F32x16>(x32) };
        }
        if let Some(x64) = cast::<F, f64>(x) {
            // SAFETY: as above.
            return unsafe { super::x86::any_nan_or_inf_avx512::<F64x8>(x64) };
        }
    }
    let _ = avx512;
    let mut acc = [F::zero(); 16];
    let full = x.len() / 16 * 16;
    let mut i = 0;
    while i < full {
        let v = load16(x, i);
        for l in 0..16 {
            acc[l] += v[l] - v[l];
        }
        i += 16;
    }
    let mut total = F::zero();
    for a in acc {
        total += a;
    }
    for &v in &x[full..] {
        total += v - v;
    }
    total != F::zero()
}

/// Calls `$f::<F, M, K>` with the window size as a constant for the common sizes (the tap
/// loops then unroll), or with `K = 0` (a run-time count) for the others.
macro_rules! with_k {
    ($k:expr, $($f:ident)::+ ::<$($g:tt),*>($($a:expr),*)) => {
        match $k {
            1 => $($f)::+::<$($g,)* 1>($($a),*),
            2 => $($f)::+::<$($g,)* 2>($($a),*),
            3 => $($f)::+::<$($g,)* 3>($($a),*),
            5 => $($f)::+::<$($g,)* 5>($($a),*),
            7 => $($f)::+::<$($g,)* 7>($($a),*),
            _ => $($f)::+::<$($g,)* 0>($($a),*),
        }
    };
}

#[inline(always)]
fn store16<F: FastFloat>(d: &mut [F], at: usize, v: &[F; 16]) {
    d[at..at + 16].copy_from_slice(v);
}

/// W pass, stride 1: `t[f] = fold_j p[f + j]` for all `f < t.len()` (a multiple of 16).
#[inline(always)]
fn wpass_s1<F: FastFloat, const M: u8, const K: usize>(p: &[F], k: usize, t: &mut [F]) {
    let k = if K > 0 { K } else { k };
    assert!(t.len().is_multiple_of(16) && t.len() + k <= p.len() + 1);
    let mut f = 0;
    while f + 32 <= t.len() {
        let (mut a, mut b) = ([start::<F, M>(); 16], [start::<F, M>(); 16]);
        for j in 0..k {
            fold::<F, M>(&mut a, &load16(p, f + j));
            fold::<F, M>(&mut b, &load16(p, f + 16 + j));
        }
        store16(t, f, &a);
        store16(t, f + 16, &b);
        f += 32;
    }
    if f < t.len() {
        let mut a = [start::<F, M>(); 16];
        for j in 0..k {
            fold::<F, M>(&mut a, &load16(p, f + j));
        }
        store16(t, f, &a);
    }
}

/// W pass, stride 2: `t[f] = fold_j phase_(j % 2)[f + j / 2]` (the even and odd columns).
#[inline(always)]
fn wpass_s2<F: FastFloat, const M: u8, const K: usize>(
    even: &[F],
    odd: &[F],
    k: usize,
    t: &mut [F],
) {
    let k = if K > 0 { K } else { k };
    assert!(t.len().is_multiple_of(16) && t.len() + k / 2 <= even.len().min(odd.len()));
    let mut f = 0;
    while f < t.len() {
        let mut a = [start::<F, M>(); 16];
        for j in 0..k {
            let phase = if j % 2 == 0 { even } else { odd };
            fold::<F, M>(&mut a, &load16(phase, f + j / 2));
        }
        store16(t, f, &a);
        f += 16;
    }
}

/// H pass: output row `i` folds W-pass rows `i*sh .. i*sh + kh`, written straight into `y`
/// (`oh × ow`) in vectors; a vector running past its row is overwritten by the next row, and at
/// the end of the plane only the lanes inside `y` are written.
#[inline(always)]
fn hpass<F: FastFloat, const M: u8, const K: usize>(s: &PlaneShape, t: &[F], y: &mut [F]) {
    let k = if K > 0 { K } else { s.kh };
    let q = s.q;
    let vectors = s.ow.div_ceil(16);
    assert!(vectors * 16 <= q && ((s.oh - 1) * s.sh + k) * q <= t.len());
    for i in 0..s.oh {
        let base = i * s.sh * q;
        for v in 0..vectors {
            let o = 16 * v;
            let mut a = [start::<F, M>(); 16];
            for r in 0..k {
                fold::<F, M>(&mut a, &load16(t, base + r * q + o));
            }
            let at = i * s.ow + o;
            if at + 16 <= y.len() {
                store16(y, at, &a);
            } else {
                let n = y.len() - at;
                copy_small(&mut y[at..], &a[..n], s.avx512);
            }
        }
    }
}

/// Copies the input rows of plane `x` into a padded buffer (stride 2: `even` takes the even
/// padded columns, `odd` the odd ones). The padding around them is written when the buffers
/// are made and never overwritten.
#[inline(always)]
fn fill<F: FastFloat>(s: &PlaneShape, x: &[F], even: &mut [F], odd: &mut [F]) {
    let (q, pl) = (s.q, s.pad_left);
    for h in 0..s.h {
        let r = h + s.pad_top;
        if r >= s.rows {
            break; // rows below every window (floor mode)
        }
        let row = &x[h * s.w..(h + 1) * s.w];
        if s.sw == 1 {
            let n = s.w.min(q - pl);
            copy_small(&mut even[r * q + pl..r * q + pl + n], &row[..n], s.avx512);
        } else {
            // padded column c + pl takes input column c; n keeps every write inside the row
            let n = s.w.min(2 * q - pl - 1);
            let (e, o) = (&mut even[r * q..(r + 1) * q], &mut odd[r * q..(r + 1) * q]);
            if pl.is_multiple_of(2) {
                split_pairs(&row[..n], &mut e[pl / 2..], &mut o[pl / 2..], s.avx512);
            } else {
                split_pairs(
                    &row[..n],
                    &mut o[pl / 2..],
                    &mut e[pl.div_ceil(2)..],
                    s.avx512,
                );
            }
        }
    }
}

/// [`fill`], then the plane's combine mode ([`plane_mode`]).
#[inline(always)]
fn fill_with_mode<F: FastFloat>(
    s: &PlaneShape,
    reduce: Reduce,
    x: &[F],
    even: &mut [F],
    odd: &mut [F],
) -> u8 {
    fill(s, x, even, odd);
    plane_mode(reduce, x, s.avx512)
}

/// W pass of one plane: its padded copy (`even`, and `odd` for stride 2) into `t`.
#[inline(always)]
fn plane_w<F: FastFloat, const M: u8>(s: &PlaneShape, even: &[F], odd: &[F], t: &mut [F]) {
    #[cfg(target_arch = "x86_64")]
    if s.avx512 {
        if let (Some(e), Some(o), Some(t32)) = (
            cast::<F, f32>(even),
            cast::<F, f32>(odd),
            cast_mut::<F, f32>(t),
        ) {
            // SAFETY: `s.avx512` is true only when AVX-512F was detected; each function
            // asserts the lengths it relies on.
            unsafe {
                if s.sw == 1 {
                    with_k!(s.kw, super::x86::pad_wpass_s1::<M>(e, s.kw, t32));
                } else {
                    with_k!(s.kw, super::x86::pad_wpass_s2::<M>(e, o, s.kw, t32));
                }
            }
            return;
        }
    }
    if s.sw == 1 {
        with_k!(s.kw, wpass_s1::<F, M>(even, s.kw, t));
    } else {
        with_k!(s.kw, wpass_s2::<F, M>(even, odd, s.kw, t));
    }
}

/// H pass of one plane from its W-pass rows `t` into `y`, then the divisors (sums; none when
/// `divisors` is empty).
#[inline(always)]
fn plane_h<F: FastFloat, const M: u8>(s: &PlaneShape, t: &[F], divisors: &[F], y: &mut [F]) {
    #[cfg(target_arch = "x86_64")]
    if s.avx512 {
        if let (Some(t32), Some(d), Some(y32)) = (
            cast::<F, f32>(t),
            cast::<F, f32>(divisors),
            cast_mut::<F, f32>(y),
        ) {
            // SAFETY: `s.avx512` is true only when AVX-512F was detected; each function
            // asserts the lengths it relies on.
            unsafe {
                with_k!(
                    s.kh,
                    super::x86::pad_hpass::<M>(t32, s.q, s.kh, s.sh, s.oh, s.ow, y32)
                );
                if M == SUM && !d.is_empty() {
                    super::x86::divide_avx512(y32, d);
                }
            }
            return;
        }
    }
    with_k!(s.kh, hpass::<F, M>(s, t, y));
    if M == SUM && !divisors.is_empty() {
        // the divisor is never 0 here (windows hold elements; an override of 0 is rejected)
        assert!(divisors.len() == y.len());
        let full = y.len() / 16 * 16;
        let mut f = 0;
        while f < full {
            let (mut v, d) = (load16(y, f), load16(divisors, f));
            for l in 0..16 {
                v[l] = v[l] / d[l];
            }
            store16(y, f, &v);
            f += 16;
        }
        for f in full..y.len() {
            y[f] = y[f] / divisors[f];
        }
    }
}

/// The combine mode for one plane: max takes the exact rule only when the plane may hold a NaN.
#[inline(always)]
fn plane_mode<F: FastFloat>(reduce: Reduce, x: &[F], avx512: bool) -> u8 {
    match reduce {
        Reduce::Max if maybe_nan(x, avx512) => EXACT_MAX,
        Reduce::Max => PLAIN_MAX,
        Reduce::Sum(_) => SUM,
    }
}

/// Calls `$f::<F, MODE>` for a combine mode known at run time.
macro_rules! by_mode {
    ($mode:expr, $f:ident::<$F:ident>($($a:expr),*)) => {
        match $mode {
            EXACT_MAX => $f::<$F, EXACT_MAX>($($a),*),
            PLAIN_MAX => $f::<$F, PLAIN_MAX>($($a),*),
            _ => $f::<$F, SUM>($($a),*),
        }
    };
}
pub(crate) use by_mode;

/// The divisor of every output of a plane, as the reference forms it ([`window_divisors`]),
/// converted once (adaptive problems, with no single divisor, do not take this path).
fn divisor_plane<F: FastFloat>(axes: &[AxisPlan; 3], div: Divisor) -> Vec<F> {
    let n = axes.iter().map(|a| a.spans.len()).product();
    if let Divisor::Override(d) = div {
        // (the f16/bf16 forward sums with an override of 1 part by part: forming every
        // window's divisor for each part was 7 % of `192 28 28 3 1 1 avg` in f16; `PROBE_DTYPE=
        // f16 PROBE_N=8 RAYON_NUM_THREADS=1 plane_probe`, three rounds, 326–327 → 309–311 ns)
        return vec![F::from_i64(d); n];
    }
    let divisors = window_divisors(axes, div).unwrap_or_else(|| vec![1; n]);
    divisors.into_iter().map(F::from_i64).collect()
}

/// Whether the W passes of this shape read the input directly (f32 with AVX-512, stride 1 or
/// 2, windows of up to 16 columns, rows of up to 8 output vectors): no padded copy at all.
fn direct_w<F: FastFloat>(s: &PlaneShape) -> bool {
    s.avx512
        && (s.sw == 1 || s.sw == 2)
        && s.kw <= 16
        && s.ow.div_ceil(16) <= 8
        && super::same_type::<F, f32>()
}

/// Whether the fused kernels' AVX-512 versions (`x86::k3s2_strip`, `x86::ks1_strip`; f32 and
/// f64) take this shape's type and rows: as [`direct_w`], for either type. f64 took the flat
/// path of `plane.rs` or the padded copies before, 5–24× f32's time per plane where the bytes
/// are 2× (see [`fused_plane`]).
fn fused_avx512<F: FastFloat>(s: &PlaneShape) -> bool {
    s.avx512
        && (s.sw == 1 || s.sw == 2)
        && s.ow.div_ceil(16) <= 8
        && (super::same_type::<F, f32>() || super::same_type::<F, f64>())
}

/// The body of [`plane_w_direct`] for one stride.
#[cfg(target_arch = "x86_64")]
macro_rules! direct_modes {
    ($s:expr, $reduce:expr, $x32:expr, $t32:expr, $v:expr, $pt:expr, $pl:expr, $S:literal) => {{
        let (s, x32, t32, v, pt, pl) = ($s, $x32, $t32, $v, $pt, $pl);
        use super::x86::pad_wpass_direct as wpass;
        // SAFETY: `direct_w` holds (AVX-512F was detected); the function asserts the rest.
        unsafe {
            match $reduce {
                Reduce::Sum(_) => {
                    with_k!(
                        s.kw,
                        wpass::<SUM, $S>(x32, s.w, s.kw, pt, pl, s.rows, v, s.q, false, t32)
                    );
                    SUM
                }
                Reduce::Max => {
                    let special = with_k!(
                        s.kw,
                        wpass::<PLAIN_MAX, $S>(x32, s.w, s.kw, pt, pl, s.rows, v, s.q, true, t32)
                    );
                    if special {
                        with_k!(
                            s.kw,
                            wpass::<EXACT_MAX, $S>(
                                x32, s.w, s.kw, pt, pl, s.rows, v, s.q, false, t32
                            )
                        );
                        EXACT_MAX
                    } else {
                        PLAIN_MAX
                    }
                }
            }
        }
    }};
}

/// The W pass of plane `x` straight from the input (see [`direct_w`]); returns the combine
/// mode the H pass must use: a max pass runs with the plain max and the NaN/±inf check
/// together, and again with the exact rule when the plane has such a value.
#[inline(always)]
fn plane_w_direct<F: FastFloat>(s: &PlaneShape, reduce: Reduce, x: &[F], t: &mut [F]) -> u8 {
    #[cfg(target_arch = "x86_64")]
    if let (Some(x32), Some(t32)) = (cast::<F, f32>(x), cast_mut::<F, f32>(t)) {
        let v = s.ow.div_ceil(16);
        let (pt, pl) = (s.pad_top, s.pad_left);
        if s.sw == 2 {
            return direct_modes!(s, reduce, x32, t32, v, pt, pl, 2);
        }
        return direct_modes!(s, reduce, x32, t32, v, pt, pl, 1);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, reduce, x, t);
    unreachable!("direct W passes are taken for f32 on x86-64 only")
}

/// Whether the planes of this shape take the fused 3×3 stride-2 kernel (`x86::k3s2_strip`,
/// at the AVX2 level `avx2::max_k3s2_plane_avx2`: no W-pass rows in memory), on 2-D planes
/// and the planes of volumes: max, and sums (AVX-512).
fn fused_k3s2<F: FastFloat>(s: &PlaneShape, reduce: Reduce) -> bool {
    let kernel = match reduce {
        Reduce::Max => fused_avx512::<F>(s) || avx2_f32::<F>(s),
        Reduce::Sum(_) => fused_avx512::<F>(s),
    };
    kernel && (s.kh, s.kw, s.sh, s.sw) == (3, 3, 2, 2) && s.pad_left <= 1
}

/// Whether this is an f32 problem at the AVX2 level (where `avx2::ks1_strip_avx2` runs).
fn avx2_f32<F: FastFloat>(s: &PlaneShape) -> bool {
    cfg!(target_arch = "x86_64") && s.avx2 && super::same_type::<F, f32>()
}

/// Most rows a window of the wide stride-1 kernel spans (`x86::wide_s1_strip` keeps a block
/// of that many W-pass rows and their suffixes on the stack).
pub(crate) const WIDE_MAX_KH: usize = 64;

/// Fewest taps along H or W from which stride-1 windows take `x86::wide_s1_strip`. Against
/// `x86::ks1_strip` on 5×5 and 7×7 (sppf_max5 and large_avg, `plane_probe`, 1 thread, ms):
/// 0.14 → 0.26 and 0.26–0.27 → 0.48–0.50.
const WIDE_MIN_TAPS: usize = 8;

/// Inputs from which `x86::wide_s1_strip` prefetches its rows (see its measurements): below
/// [`super::prefetch_from_bytes`], as its input and output outgrow the cache sooner than
/// those of the kernels that read a row once per output row.
const WIDE_PREFETCH_FROM_BYTES: usize = 8 << 20;

/// Whether the planes of this shape take the wide stride-1 kernel (`x86::wide_s1_strip`: W
/// by doubling runs, H by van Herk / Gil-Werman blocks): AVX-512, f32 or f64, a window of at
/// least [`WIDE_MIN_TAPS`] along H or W, up to [`WIDE_MAX_KH`] rows and `2 N + 1` columns
/// (`N` lanes a vector: 33 in f32, 17 in f64), any padding; 2-D planes only.
fn wide_s1<F: FastFloat>(s: &PlaneShape) -> bool {
    let lanes = 64 / std::mem::size_of::<F>();
    fused_avx512::<F>(s)
        && (s.sh, s.sw) == (1, 1)
        && (s.d, s.od) == (1, 1)
        && s.kh.max(s.kw) >= WIDE_MIN_TAPS
        && s.kh <= WIDE_MAX_KH
        && s.kw <= 2 * lanes + 1
}

/// Whether the planes of this shape take a fused stride-1 kernel: [`wide_s1`], or
/// `x86::ks1_strip` (`avx2::ks1_strip_avx2` at the AVX2 level) for 2×2 (AVX-512), 3×3, 5×5 or
/// 7×7, no padding or half the window; 2-D planes only (3-D volumes fold their depth after the
/// planes' passes).
fn fused_s1<F: FastFloat>(s: &PlaneShape) -> bool {
    wide_s1::<F>(s)
        || (fused_avx512::<F>(s) || avx2_f32::<F>(s))
            && (s.sh, s.sw) == (1, 1)
            && (s.d, s.od) == (1, 1)
            && match (s.kh, s.kw) {
                // AVX-512 only (`ks1_strip_avx2` takes 3, 5 and 7)
                (2, 2) => fused_avx512::<F>(s) && s.pad_left <= 1,
                (3, 3) => s.pad_left <= 1,
                (5, 5) => s.pad_left == 0 || s.pad_left == 2,
                (7, 7) => s.pad_left == 0 || s.pad_left == 3,
                _ => false,
            }
}

/// Whether the planes of this shape take the fused 2×2 stride-2 max kernel
/// (`avx2::max_k2s2_plane_avx2`, 2-D planes at the AVX2 level; with AVX-512 these shapes take
/// `pairs.rs` or the direct W pass).
fn fused_k2s2<F: FastFloat>(s: &PlaneShape, reduce: Reduce) -> bool {
    avx2_f32::<F>(s)
        && (s.d, s.od) == (1, 1)
        && matches!(reduce, Reduce::Max)
        && (s.kh, s.kw, s.sh, s.sw) == (2, 2, 2, 2)
        && s.pad_left == 0
}

/// Whether this shape takes a fused kernel ([`fused_k3s2`], [`fused_s1`] or [`fused_k2s2`]).
/// Those store every output element, so a fresh output is not zeroed before they run.
fn fused<F: FastFloat>(s: &PlaneShape, reduce: Reduce) -> bool {
    fused_k3s2::<F>(s, reduce) || fused_s1::<F>(s) || fused_k2s2::<F>(s, reduce)
}

/// One plane of a [`fused`] shape into `y`, every element stored: max runs the plain max with
/// the NaN check, then, when the plane holds a NaN, again by the exact rule; sums are divided
/// by their divisors, multiplied by `reciprocals` (theirs: one per output, one for all, or
/// none; see [`reciprocals_of`]), and divide their inputs first by
/// `input_divisors` (one per input, one for all, or none; stride-1 sums only). `x` starts with
/// the plane; the values after it (the next planes) are only there for kernels that may read
/// past a row's end, their reads masked. Returns whether the plane took the exact rule.
#[inline(always)]
fn fused_plane<F: FastFloat>(
    s: &PlaneShape,
    reduce: Reduce,
    reciprocals: &[F],
    input_divisors: &[F],
    x: &[F],
    y: &mut [MaybeUninit<F>],
) -> bool {
    let plane = s.h * s.w;
    #[cfg(target_arch = "x86_64")]
    {
        use super::zmm::{F32x16, F64x8};
        if let (Some(x), Some(d), Some(din), Some(y)) = (
            cast::<F, f32>(x),
            cast::<F, f32>(reciprocals),
            cast::<F, f32>(input_divisors),
            cast_mut::<MaybeUninit<F>, MaybeUninit<f32>>(y),
        ) {
            if !s.avx512 {
                return fused_plane_avx2(s, reduce, d, din, x, y);
            }
            let x = &x[..plane];
            // SAFETY: `s.avx512`: AVX-512F was detected.
            return unsafe { fused_plane_avx512::<F32x16>(s, reduce, d, din, x, y) };
        }
        if let (Some(x), Some(d), Some(din), Some(y)) = (
            cast::<F, f64>(&x[..plane]),
            cast::<F, f64>(reciprocals),
            cast::<F, f64>(input_divisors),
            cast_mut::<MaybeUninit<F>, MaybeUninit<f64>>(y),
        ) {
            // (`fused` holds for f64 only with AVX-512: `fused_avx512`)
            assert!(s.avx512, "f64 takes the fused kernels with AVX-512 only");
            // SAFETY: `s.avx512`: AVX-512F was detected.
            return unsafe { fused_plane_avx512::<F64x8>(s, reduce, d, din, x, y) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, reduce, reciprocals, input_divisors, x, plane, y);
    unreachable!("the fused kernels are taken for f32 and f64 on x86-64 only")
}

/// [`fused_plane`] with AVX-512, in strips of output vectors (`L::N` columns each).
///
/// f64, against the paths it took before (the flat path of `plane.rs` at stride 2, the
/// padded copies at stride 1), `PROBE_DTYPE=f64 PROBE_N=8 RAYON_NUM_THREADS=1 plane_probe`,
/// ns per plane: see BENCHMARKS.md (twenty-ninth session).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn fused_plane_avx512<L: super::zmm::Zmm>(
    s: &PlaneShape,
    reduce: Reduce,
    d: &[L::E],
    din: &[L::E],
    x: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    let vectors = s.ow.div_ceil(L::N);
    // strips of up to 4 output vectors, the last one shorter. 7×7: of 2, so that the 6 W
    // rows a strip keeps stay in registers: with 4, reloads of spilled registers stalled
    // behind the stores into an existing output (large_avg nchw, `PROBE_N=8 plane_probe
    // 64 56 56 7 1 3 avg`, same run, ms: into a buffer 0.83–1.11 → 0.54–0.78 at 1 thread,
    // 0.47–0.56 → 0.37–0.53 at 2; allocating 0.56–0.80 → 0.56–0.76 and 0.45–0.55 →
    // 0.37–0.41)
    let step = if s.kw == 7 { 2 } else { 4 };
    plain_then_exact(reduce, |mode| {
        let mut nan = false;
        for v0 in (0..vectors).step_by(step) {
            // SAFETY: the caller's (AVX-512F); the kernels assert the rest.
            nan |= unsafe {
                match (vectors - v0).min(step) {
                    1 => fused_strip::<L, 1>(s, mode, v0, x, d, din, y),
                    2 => fused_strip::<L, 2>(s, mode, v0, x, d, din, y),
                    3 => fused_strip::<L, 3>(s, mode, v0, x, d, din, y),
                    _ => fused_strip::<L, 4>(s, mode, v0, x, d, din, y),
                }
            };
        }
        nan
    })
}

/// [`fused_plane`] at the AVX2 level: max 2×2 and 3×3 at stride 2 by
/// `avx2::max_k2s2_plane_avx2` and `avx2::max_k3s2_plane_avx2`, the
/// stride-1 shapes by `avx2::ks1_strip_avx2`. Sums with input divisors divide a copy of the
/// plane first, as the reference divides each value: the AVX2 kernel loads a value once per
/// tap, so dividing as it loads would divide it `K` times. `x_on` is the plane and the values
/// after it (see [`fused_plane`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fused_plane_avx2(
    s: &PlaneShape,
    reduce: Reduce,
    reciprocals: &[f32],
    input_divisors: &[f32],
    x_on: &[f32],
    y: &mut [MaybeUninit<f32>],
) -> bool {
    debug_assert!(s.avx2 && s.sh == s.sw);
    let x = &x_on[..s.h * s.w];
    let undivided = input_divisors.is_empty();
    let mut divided = (!undivided).then(|| super::Scratch::new(x.len()));
    let x = match (&mut divided, input_divisors) {
        (Some(q), [d]) => {
            for (q, v) in q.iter_mut().zip(x) {
                *q = v / d;
            }
            &q[..x.len()]
        }
        (Some(q), per_value) => {
            for ((q, v), d) in q.iter_mut().zip(x).zip(per_value) {
                *q = v / d;
            }
            &q[..x.len()]
        }
        (None, _) => x,
    };
    if s.kw == 2 {
        use super::avx2::max_k2s2_plane_avx2 as k2s2;
        let (w, pt, out) = (s.w, s.pad_top, (s.oh, s.ow));
        // SAFETY: `s.avx2` is true only when AVX2 was detected (isa::avx2_level); the kernel
        // asserts the rest.
        return plain_then_exact(reduce, |mode| unsafe {
            match mode {
                EXACT_MAX => k2s2::<EXACT_MAX>(x, w, pt, out, s.prefetch, y),
                _ => k2s2::<PLAIN_MAX>(x, w, pt, out, s.prefetch, y),
            }
        });
    }
    if s.sw == 2 {
        use super::avx2::max_k3s2_plane_avx2 as k3s2;
        // a row's carry on the stack where it fits: taken from the scratch pool per plane it
        // cost 3.4 % of alexnet_max nchw's time (`perf record`, `PROBE_N=8 plane_probe 96
        // 55 55 3 2 0`, 1 thread, Zen 3)
        let need = s.ow.div_ceil(8) * 8;
        let (mut on_stack, mut pooled) = (CarryRow([0.0; CARRY_ON_STACK]), None);
        let carry: &mut [f32] = match need <= CARRY_ON_STACK {
            true => &mut on_stack.0[..need],
            false => &mut pooled.insert(super::Scratch::new(need))[..need],
        };
        let (hw, pt, out) = ((s.h, s.w), s.pad_top, (s.oh, s.ow));
        // the plane and the values after it, where it was not divided into a copy: the
        // kernel's loads may then read past its last row's end, as past every other row's
        let x = if undivided { x_on } else { x };
        // SAFETY: `s.avx2` is true only when AVX2 was detected (isa::avx2_level); the kernel
        // asserts the rest.
        return plain_then_exact(reduce, |mode| unsafe {
            let c = &mut *carry;
            match (mode, s.pad_left > 0) {
                (EXACT_MAX, false) => k3s2::<EXACT_MAX, 0>(x, hw, pt, out, c, s.prefetch, y),
                (EXACT_MAX, true) => k3s2::<EXACT_MAX, 1>(x, hw, pt, out, c, s.prefetch, y),
                (_, false) => k3s2::<PLAIN_MAX, 0>(x, hw, pt, out, c, s.prefetch, y),
                (_, true) => k3s2::<PLAIN_MAX, 1>(x, hw, pt, out, c, s.prefetch, y),
            }
        });
    }
    let vectors = s.ow.div_ceil(8);
    // Strips of up to 4 output vectors: a row of at most 32 columns is one strip, read once.
    // Measured with the forty-first session's kernel (its W rows kept in registers) on a Zen 1 core (AVX2, no AVX-512; `PROBE_N=8 plane_probe`, 1 thread, two
    // rounds, µs per call, strips of 1 / 2 / 3 / 4 vectors): sppf_max5 1192–1328 / 1417–1448
    // / 1147–1258 / 1261–1272 (rows of 3 vectors: 3 and 4 are one strip), large_avg
    // 3949–4094 / 3053–3180 / 2807–2863 / 2887–2923, inception_max_s1 1612–1681 / 1340–1385
    // / 1368–1392 / 1116–1129. The AVX2 level forced on a Zen 5 core had measured 2 as the
    // best (inception_max_s1 247 against 323 µs with 4), but machines that run this level
    // have no AVX-512, and on those the strips' spilled registers cost less than reading
    // every row once per strip.
    let step = 4;
    plain_then_exact(reduce, |mode| {
        let mut nan = false;
        for v0 in (0..vectors).step_by(step) {
            // SAFETY: `s.avx2` is true only when AVX2 was detected (isa::avx2_level); the
            // kernel asserts the rest.
            nan |= unsafe {
                match (vectors - v0).min(step) {
                    1 => strip_avx2::<1>(s, mode, v0, x, reciprocals, y),
                    2 => strip_avx2::<2>(s, mode, v0, x, reciprocals, y),
                    3 => strip_avx2::<3>(s, mode, v0, x, reciprocals, y),
                    _ => strip_avx2::<4>(s, mode, v0, x, reciprocals, y),
                }
            };
        }
        nan
    })
}

/// The longest 3×3 stride-2 carry row (values) kept on the stack.
#[cfg(target_arch = "x86_64")]
const CARRY_ON_STACK: usize = 256;

/// A carry row on the stack, on a cache line of its own: its vectors do not straddle lines.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct CarryRow([f32; CARRY_ON_STACK]);

/// `$kernel!(MODE, LEFT_PADDING $(, SIZE)?)` instantiated for the combine `$mode` and
/// whether the rows are padded on the left (by `$pl`): the dispatch of the fused strips.
#[cfg(target_arch = "x86_64")]
macro_rules! strip_kernel {
    ($mode:expr, $padded:expr, $kernel:ident, $pl:literal $(, $k:literal)?) => {
        match ($mode, $padded) {
            (EXACT_MAX, false) => $kernel!(EXACT_MAX, 0 $(, $k)?),
            (EXACT_MAX, true) => $kernel!(EXACT_MAX, $pl $(, $k)?),
            (SUM, false) => $kernel!(SUM, 0 $(, $k)?),
            (SUM, true) => $kernel!(SUM, $pl $(, $k)?),
            (_, false) => $kernel!(PLAIN_MAX, 0 $(, $k)?),
            (_, true) => $kernel!(PLAIN_MAX, $pl $(, $k)?),
        }
    };
}

/// Runs the passes of a fused plane, `pass(mode)` returning whether it saw a NaN: sums once;
/// max by the plain max with its NaN check, then, when the plane holds a NaN, again by the
/// exact rule (over every output). Returns whether the exact rule ran.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn plain_then_exact(reduce: Reduce, mut pass: impl FnMut(u8) -> bool) -> bool {
    match reduce {
        Reduce::Sum(_) => pass(SUM),
        Reduce::Max => {
            let special = pass(PLAIN_MAX);
            if special {
                pass(EXACT_MAX);
            }
            special
        }
    }
}

/// Output vectors `v0 .. v0 + V` (8 columns each) of every row of a stride-1 [`fused`] plane
/// at the AVX2 level, by the kernel for its window and padding (see [`fused_plane_avx2`]).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn strip_avx2<const V: usize>(
    s: &PlaneShape,
    mode: u8,
    v0: usize,
    x: &[f32],
    reciprocals: &[f32],
    y: &mut [MaybeUninit<f32>],
) -> bool {
    use super::avx2::ks1_strip_avx2;
    let (w, pt, oh, ow) = (s.w, s.pad_top, s.oh, s.ow);
    macro_rules! s1 {
        ($m:ident, $pl:literal, $k:literal) => {
            ks1_strip_avx2::<$m, $k, $pl, V>(x, w, pt, oh, ow, v0, reciprocals, y)
        };
    }
    // SAFETY: the caller's (AVX2); the kernel asserts its bounds.
    unsafe {
        let padded = s.pad_left > 0;
        match s.kw {
            3 => strip_kernel!(mode, padded, s1, 1, 3),
            5 => strip_kernel!(mode, padded, s1, 2, 5),
            _ => strip_kernel!(mode, padded, s1, 3, 7),
        }
    }
}

/// Output vectors `v0 .. v0 + V` (`L::N` columns each) of every row of a [`fused`] plane, by the kernel for its
/// window and padding, combining by `mode` (the plain max also checks for NaN and returns
/// whether it saw one); sums multiplied by the reciprocals `r` and their inputs divided by
/// `din` (see [`fused_plane`]).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn fused_strip<L: super::zmm::Zmm, const V: usize>(
    s: &PlaneShape,
    mode: u8,
    v0: usize,
    x: &[L::E],
    r: &[L::E],
    din: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    use super::x86::{k3s2_strip, ks1_strip};
    let (w, pt, oh, ow, check) = (s.w, s.pad_top, s.oh, s.ow, mode == PLAIN_MAX);
    if wide_s1::<L::E>(s) {
        // SAFETY: the caller's (AVX-512F); the kernel asserts its bounds.
        return unsafe { wide_strip::<L, V>(s, mode, v0, x, r, din, y) };
    }
    macro_rules! k3s2 {
        ($m:ident, $pl:literal) => {
            if s.prefetch {
                k3s2_strip::<L, $m, $pl, V, true>(x, w, pt, oh, ow, v0, check, r, y)
            } else {
                k3s2_strip::<L, $m, $pl, V, false>(x, w, pt, oh, ow, v0, check, r, y)
            }
        };
    }
    macro_rules! s1 {
        ($m:ident, $pl:literal, $k:literal) => {
            if $m == SUM && !din.is_empty() {
                ks1_strip::<L, SUM, $k, $pl, V, true>(x, w, pt, oh, ow, v0, check, r, din, y)
            } else {
                ks1_strip::<L, $m, $k, $pl, V, false>(x, w, pt, oh, ow, v0, check, r, &[], y)
            }
        };
    }
    // SAFETY: the caller's (AVX-512F); the kernels assert their bounds.
    unsafe {
        let padded = s.pad_left > 0;
        match (s.sw, s.kw) {
            (2, _) => strip_kernel!(mode, padded, k3s2, 1),
            (_, 2) => strip_kernel!(mode, padded, s1, 1, 2),
            (_, 3) => strip_kernel!(mode, padded, s1, 1, 3),
            (_, 5) => strip_kernel!(mode, padded, s1, 2, 5),
            _ => strip_kernel!(mode, padded, s1, 3, 7),
        }
    }
}

/// [`fused_strip`] for a [`wide_s1`] shape: `x86::wide_s1_strip` instantiated for the
/// combine, the vectors its rows read past the strip, and whether its inputs are divided.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn wide_strip<L: super::zmm::Zmm, const V: usize>(
    s: &PlaneShape,
    mode: u8,
    v0: usize,
    x: &[L::E],
    r: &[L::E],
    din: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) -> bool {
    use super::x86::wide_s1_strip;
    let flags = (mode == PLAIN_MAX, s.prefetch);
    let (k, pads, out) = ((s.kh, s.kw), (s.pad_top, s.pad_left), (s.oh, s.ow));
    macro_rules! wide {
        ($m:ident, $e:literal, $div:literal) => {
            wide_s1_strip::<L, $m, V, $e, $div>(x, s.w, k, pads, out, v0, flags, r, din, y)
        };
    }
    // SAFETY: the caller's (AVX-512F); the kernel asserts its bounds.
    unsafe {
        match (mode, s.kw <= L::N + 1, !din.is_empty()) {
            (SUM, true, true) => wide!(SUM, 1, true),
            (SUM, false, true) => wide!(SUM, 2, true),
            (SUM, true, false) => wide!(SUM, 1, false),
            (SUM, false, false) => wide!(SUM, 2, false),
            (EXACT_MAX, true, _) => wide!(EXACT_MAX, 1, false),
            (EXACT_MAX, false, _) => wide!(EXACT_MAX, 2, false),
            (_, true, _) => wide!(PLAIN_MAX, 1, false),
            (_, false, _) => wide!(PLAIN_MAX, 2, false),
        }
    }
}

/// The planes of a [`fused`] shape into `y`, every element stored: 2-D plane by plane; 3-D
/// the planes of each volume into a scratch volume, then folded along the depth.
#[inline(always)]
fn fused_body<F: FastFloat>(
    s: &PlaneShape,
    reduce: Reduce,
    reciprocals: &[F],
    depth: &[Span],
    x: &[F],
    y: &mut [MaybeUninit<F>],
) {
    let (pin, pout) = (s.h * s.w, s.oh * s.ow);
    if s.d == 1 && s.od == 1 {
        for (p, yp) in y.chunks_exact_mut(pout).enumerate() {
            fused_plane(s, reduce, reciprocals, &[], &x[p * pin..], yp);
        }
        return;
    }
    // 3-D volumes (`fused_k3s2`; `fused_s1` takes 2-D planes): the planes pooled, sums not
    // divided yet, then folded along the depth, then the sums divided. Averages were on the
    // W-pass rows, the H pass and a division pass before (`PROBE_D=16 PROBE_N=2 plane_probe
    // 64 56 56 3 2 1 avg`, 1 thread, two rounds alternating, ms per call): 2.49–2.71 →
    // 1.28–1.51, where the max takes 1.27–1.32
    let (vin, vout) = (s.d * pin, s.od * pout);
    let mut pooled = vec![F::zero(); s.d * pout];
    for (v, yv) in y.chunks_exact_mut(vout).enumerate() {
        // SAFETY: the kernels store computed values only.
        let planes = unsafe { as_uninit_mut(&mut pooled) };
        let exact = planes
            .chunks_exact_mut(pout)
            .enumerate()
            .fold(false, |e, (p, yp)| {
                fused_plane(s, reduce, &[], &[], &x[v * vin + p * pin..], yp) | e
            });
        fold_depth(s, reduce, exact, depth, &pooled, &[], yv);
        if matches!(reduce, Reduce::Sum(_)) {
            // SAFETY: `fold_depth` stored every output of the volume.
            let yv = unsafe { super::out::assume_init_mut(yv) };
            match reciprocals {
                [r] => yv.iter_mut().for_each(|v| *v = *v * *r),
                _ => yv
                    .iter_mut()
                    .zip(reciprocals)
                    .for_each(|(v, r)| *v = *v * *r),
            }
        }
    }
}

multiversion!(fn run_fused<F: FastFloat>(s: &PlaneShape, reduce: Reduce, reciprocals: &[F], depth: &[Span], x: &[F], y: &mut [MaybeUninit<F>]) -> () = fused_body);

/// The reciprocals of `divisors` (one for all when they are all equal), which the fused
/// kernels' sums multiply by: within 1 ulp of the quotient, one operation on the FMA pipes
/// where a division took the divider, the slowest unit. Measured with per-output divisors
/// (`PROBE_EXCLUDE=1 PROBE_N=8 plane_probe 192 28 28 3 1 1 avg`: inception_avg_s1 without the
/// padding in the divisor, ONNX's default; 1 thread, two rounds alternating with the build
/// before, ns per plane): 132 → 112–115 (one divisor for all: 105), AVX2 208–238 → 197–217;
/// `.. 64 56 56 7 1 3 avg` 961–979 → 909–921, AVX2 about even.
fn reciprocals_of<F: FastFloat>(divisors: &[F]) -> Vec<F> {
    let one = F::from_i64(1);
    match single_value(divisors) {
        Some(d) => vec![one / d],
        None => divisors.iter().map(|&d| one / d).collect(),
    }
}

/// A scratch buffer of `len` values equal to `fill` whose start is on a 64-byte boundary (a
/// 512-bit access to a misaligned address spans two cache lines and costs two): `(storage,
/// offset)`, the buffer being `storage[offset..offset + len]`.
fn aligned_scratch<F: FastFloat>(len: usize, fill: F) -> (Vec<F>, usize) {
    let per_line = (64 / std::mem::size_of::<F>()).max(1);
    let storage = vec![fill; len + per_line];
    let misaligned = (storage.as_ptr() as usize % 64) / std::mem::size_of::<F>();
    let offset = (per_line - misaligned) % per_line;
    (storage, offset)
}

/// Input values whose W pass a band of [`direct_banded`] computes before its H pass.
/// Measured against the earlier pipeline (the W pass of a whole plane ahead of the H pass of
/// the one before; `nnpool bench --layout nchw`, same runs, 1 thread): resnet_stem_max
/// 2.57–2.61 → 2.13–2.17 ms, max3d 2.47–2.54 → 2.12–2.29, alexnet_max 0.36 → 0.34, large_avg
/// 1.06–1.31 → 0.99–1.07, inception_max_s1 even.
const BAND_INPUT: usize = 1 << 11;

/// The planes of `x` pooled into `y` on the direct path in bands of output rows: the W pass
/// of the input rows a band needs (those not done yet), then the band's H pass. Small bands
/// keep the input streaming (the loads of the next band follow on before the memory pipeline
/// drains, where a whole plane's H pass let it drain). `t` holds one plane's W-pass rows.
/// Returns whether any band took the exact max rule (it held a NaN or an infinity); from such
/// a band on, the rest of its plane folds by the exact rule too (rows before it are free of
/// those values, where both rules agree).
#[inline(always)]
fn direct_banded<F: FastFloat>(
    s: &PlaneShape,
    reduce: Reduce,
    divisors: &[F],
    x: &[F],
    y: &mut [F],
    t: &mut [F],
) -> bool {
    let (pin, pout) = (s.h * s.w, s.oh * s.ow);
    let band = (BAND_INPUT / (s.sh * s.w).max(1)).clamp(1, s.oh.max(1));
    let mut exact = false;
    for (xp, yp) in x.chunks_exact(pin).zip(y.chunks_exact_mut(pout)) {
        let (mut done, mut special) = (0, false);
        let mut o0 = 0;
        while o0 < s.oh {
            let o1 = (o0 + band).min(s.oh);
            let need = (o1 - 1) * s.sh + s.kh;
            if need > done {
                // W-pass rows done .. need: input rows from done - pad_top, padding above
                let first_in = done.saturating_sub(s.pad_top);
                let rows = PlaneShape {
                    pad_top: s.pad_top.saturating_sub(done),
                    rows: need - done,
                    ..*s
                };
                let xs = &xp[(first_in * s.w).min(pin)..];
                special |=
                    plane_w_direct(&rows, reduce, xs, &mut t[done * s.q..need * s.q]) == EXACT_MAX;
                done = need;
            }
            let mode = match reduce {
                Reduce::Sum(_) => SUM,
                Reduce::Max if special => EXACT_MAX,
                Reduce::Max => PLAIN_MAX,
            };
            let outs = PlaneShape { oh: o1 - o0, ..*s };
            let tb = &t[o0 * s.sh * s.q..];
            let d = divisors.get(o0 * s.ow..o1 * s.ow).unwrap_or(&[]);
            by_mode!(
                mode,
                plane_h::<F>(&outs, tb, d, &mut yp[o0 * s.ow..o1 * s.ow])
            );
            o0 = o1;
        }
        exact |= special;
    }
    exact
}

/// Output slice `o` of a volume = the fold of its pooled planes `depth[o].first ..` (in
/// order: with the W and H folds before it, the reference's row-major order regrouped), then
/// divided by `divisors` (sums; none given: the caller divides).
#[inline(always)]
fn fold_depth<F: FastFloat>(
    s: &PlaneShape,
    reduce: Reduce,
    exact: bool,
    depth: &[Span],
    pooled: &[F],
    divisors: &[F],
    y: &mut [MaybeUninit<F>],
) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::zmm::{F32x16, F64x8};
        if let (Some(p32), Some(y32), Some(d32)) = (
            cast::<F, f32>(pooled),
            cast_mut::<MaybeUninit<F>, MaybeUninit<f32>>(y),
            cast::<F, f32>(divisors),
        ) {
            if !s.avx512 {
                use super::avx2::fold_planes_avx2 as fold;
                depth_slices(s, depth, p32, y32, |planes, pout, out| {
                    // SAFETY: without AVX-512 the volumes come here from the AVX2 fused max
                    // kernel only (`fused_k3s2`), where `s.avx2` holds: AVX2 was detected.
                    unsafe {
                        match reduce {
                            Reduce::Max if exact => fold::<EXACT_MAX>(planes, pout, out),
                            Reduce::Max => fold::<PLAIN_MAX>(planes, pout, out),
                            Reduce::Sum(_) => unreachable!("3-D sums take the AVX-512 paths"),
                        }
                    }
                });
                return;
            }
            // SAFETY: `s.avx512`: AVX-512F was detected.
            unsafe { fold_depth_avx512::<F32x16>(s, reduce, exact, depth, p32, y32) };
            if matches!(reduce, Reduce::Sum(_)) && !d32.is_empty() {
                // SAFETY: every output slice was just stored (`depth` has one span per
                // slice); AVX-512F as above; the divisors cover the volume's outputs.
                unsafe { super::x86::divide_avx512(super::out::assume_init_mut(y32), d32) };
            }
            return;
        }
        if let (Some(p64), Some(y64)) = (
            cast::<F, f64>(pooled),
            cast_mut::<MaybeUninit<F>, MaybeUninit<f64>>(y),
        ) {
            // (f64 volumes come from the fused kernels, with AVX-512 only: `fused_avx512`)
            assert!(s.avx512, "f64 volumes are folded with AVX-512 only");
            // SAFETY: `s.avx512`: AVX-512F was detected.
            unsafe { fold_depth_avx512::<F64x8>(s, reduce, exact, depth, p64, y64) };
            if matches!(reduce, Reduce::Sum(_)) && !divisors.is_empty() {
                // SAFETY: every output slice was just stored, as above.
                let y = unsafe { super::out::assume_init_mut(y) };
                y.iter_mut().zip(divisors).for_each(|(v, d)| *v = *v / *d);
            }
            return;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, reduce, exact, depth, pooled, divisors, y);
    unreachable!("depth folding is done on the AVX-512 and AVX2 paths (x86-64) only")
}

/// [`fold_depth`]'s folds with AVX-512 (sums not divided).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn fold_depth_avx512<L: super::zmm::Zmm>(
    s: &PlaneShape,
    reduce: Reduce,
    exact: bool,
    depth: &[Span],
    pooled: &[L::E],
    y: &mut [MaybeUninit<L::E>],
) {
    use super::x86::fold_planes;
    depth_slices(s, depth, pooled, y, |planes, pout, out| {
        // SAFETY: the caller's (AVX-512F); the kernel asserts its bounds.
        unsafe {
            match reduce {
                Reduce::Sum(_) => fold_planes::<L, SUM>(planes, pout, out),
                Reduce::Max if exact => fold_planes::<L, EXACT_MAX>(planes, pout, out),
                Reduce::Max => fold_planes::<L, PLAIN_MAX>(planes, pout, out),
            }
        }
    });
}

/// `fold(planes, pout, out)` for each output slice `o` of a volume: `planes` its depth
/// window's pooled planes (`depth[o]`, `pout` values each, consecutive in `pooled`), `out`
/// its slice of `y`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn depth_slices<E>(
    s: &PlaneShape,
    depth: &[Span],
    pooled: &[E],
    y: &mut [MaybeUninit<E>],
    mut fold: impl FnMut(&[E], usize, &mut [MaybeUninit<E>]),
) {
    let pout = s.oh * s.ow;
    for (o, sp) in depth.iter().enumerate() {
        let planes = &pooled[sp.first * pout..(sp.first + sp.count) * pout];
        fold(planes, pout, &mut y[o * pout..(o + 1) * pout]);
    }
}

#[inline(always)]
fn planes_body<F: FastFloat>(
    s: &PlaneShape,
    reduce: Reduce,
    divisors: &[F],
    depth: &[Span],
    x: &[F],
    y: &mut [F],
) {
    let tlen = s.rows * s.q;
    // W-pass rows: one plane's on the direct path, two alternating on the copy path
    let (mut t_store, t_at) = aligned_scratch(2 * tlen, F::zero());
    let ts = &mut t_store[t_at..t_at + 2 * tlen];
    let (pin, pout) = (s.h * s.w, s.oh * s.ow);
    if direct_w::<F>(s) {
        if s.d == 1 && s.od == 1 {
            direct_banded(s, reduce, divisors, x, y, ts);
            return;
        }
        // 3-D: the planes of a volume pooled into `pooled`, then folded along the depth
        let (vin, vout) = (s.d * pin, s.od * pout);
        let mut pooled = vec![F::zero(); s.d * pout];
        for (xv, yv) in x.chunks_exact(vin).zip(y.chunks_exact_mut(vout)) {
            let exact = direct_banded(s, reduce, &[], xv, &mut pooled, ts);
            // SAFETY: the depth fold stores computed values only.
            let yv = unsafe { as_uninit_mut(yv) };
            fold_depth(s, reduce, exact, depth, &pooled, divisors, yv);
        }
        return;
    }
    // Through padded copies: a three-stage pipeline over the planes, so that no pass reads
    // what the previous pass has just written (such loads wait for the stores to drain): while
    // plane p's H pass runs, plane p + 1 has had its W pass and plane p + 2 its padded copy.
    // Two padded buffers (even + odd columns each) and the two W-pass buffers alternate.
    let len = (s.rows + 1) * s.q;
    let n = x.len() / pin;
    let (mut buf_store, buf_at) = aligned_scratch(4 * len, init_of::<F>(reduce));
    let bufs = &mut buf_store[buf_at..buf_at + 4 * len];
    // plain loops and direct calls: adapters here would be compiled outside the ISA context;
    // the combine mode of plane p is found with its copy and kept in `modes[p % 3]`
    let mut modes = [SUM; 3];
    for p in 0..n.min(2) {
        let (e, o) = bufs[2 * p * len..2 * (p + 1) * len].split_at_mut(len);
        modes[p] = fill_with_mode(s, reduce, &x[p * pin..(p + 1) * pin], e, o);
    }
    if n > 0 {
        let (e, o) = bufs[..2 * len].split_at(len);
        by_mode!(modes[0], plane_w::<F>(s, e, o, &mut ts[..tlen]));
    }
    for p in 0..n {
        let (b0, b1) = bufs.split_at_mut(2 * len);
        // the buffer of plane p + 1 (filled), and of plane p (free again: its W pass is done)
        let (next, free) = if p % 2 == 0 { (b1, b0) } else { (b0, b1) };
        let (t0, t1) = ts.split_at_mut(tlen);
        let (t_cur, t_next) = if p % 2 == 0 { (t0, t1) } else { (t1, t0) };
        if p + 1 < n {
            let (e, o) = next.split_at(len);
            by_mode!(modes[(p + 1) % 3], plane_w::<F>(s, e, o, t_next));
        }
        if p + 2 < n {
            let (e, o) = free.split_at_mut(len);
            let xp = &x[(p + 2) * pin..(p + 3) * pin];
            modes[(p + 2) % 3] = fill_with_mode(s, reduce, xp, e, o);
        }
        let yp = &mut y[p * pout..(p + 1) * pout];
        by_mode!(modes[p % 3], plane_h::<F>(s, t_cur, divisors, yp));
    }
}

multiversion!(fn run_planes<F: FastFloat>(s: &PlaneShape, reduce: Reduce, divisors: &[F], depth: &[Span], x: &[F], y: &mut [F]) -> () = planes_body);

/// Pools every plane; tasks take whole planes, so results do not depend on the thread count.
pub(crate) fn forward<F: FastFloat>(
    isa: Isa,
    s: &PlaneShape,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    y: &mut Out<F>,
) {
    let prefetch_from = if wide_s1::<F>(s) {
        WIDE_PREFETCH_FROM_BYTES
    } else {
        super::prefetch_from_bytes()
    };
    let s = &PlaneShape {
        prefetch: std::mem::size_of_val(x) >= prefetch_from,
        ..*s
    };
    let divisors = match reduce {
        Reduce::Sum(div) => divisor_plane::<F>(axes, div),
        Reduce::Max => Vec::new(),
    };
    // tasks take whole volumes (whole planes in 2-D)
    let depth: &[Span] = if s.d > 1 || s.od > 1 {
        &axes[0].spans
    } else {
        &[]
    };
    let (pin, pout) = (s.d * s.h * s.w, s.od * s.oh * s.ow);
    let threads = rayon::current_num_threads();
    let parallel = super::split_over_threads(x.len(), 1 << 16);
    // four tasks per thread at least (2 threads, same run: resnet_stem_max nchw 0.80–1.42
    // → 0.86–0.91 ms, inception_avg_s1 0.30–0.40 → 0.25–0.27, large_avg 0.51–0.99 →
    // 0.45–0.57; with 32 Ki input values per task resnet_stem_max's were 2 planes each);
    // each task allocates and zeroes its own scratch, so tasks are not made smaller
    let per_task = ((1 << 15) / pin)
        .max((x.len() / pin).div_ceil(threads * 4))
        .max(1);
    if fused::<F>(s, reduce) {
        // one reciprocal for every output when the divisors are all equal (count_include_pad
        // with half-window padding): no plane of them read beside the input
        let reciprocals = reciprocals_of(&divisors);
        // SAFETY: the fused kernels store computed values only, into every output element.
        let y = unsafe { y.uninit() };
        if parallel {
            x.par_chunks(pin * per_task)
                .zip(y.par_chunks_mut(pout * per_task))
                .for_each(|(xs, ys)| run_fused::<F>(isa, s, reduce, &reciprocals, depth, xs, ys));
        } else {
            run_fused::<F>(isa, s, reduce, &reciprocals, depth, x, y);
        }
    } else if parallel {
        // a fresh output is zeroed task by task, just before the task writes it
        x.par_chunks(pin * per_task)
            .zip(y.par_chunks_init(pout * per_task))
            .for_each(|(xs, ys)| run_planes::<F>(isa, s, reduce, &divisors, depth, xs, ys));
    } else {
        run_planes::<F>(isa, s, reduce, &divisors, depth, x, y.init());
    }
}

/// Channels-first max with indices (PyTorch's `return_indices`), f32 or f64 with AVX-512,
/// planes and volumes (slice by slice, then folded along the depth) of any size: 2×2 and 3×3 at stride 2 (VGG, ResNet's stem, AlexNet; `x86::ks2_strip_indices`) and
/// square windows of 2 to 7 at stride 1 (Inception, YOLO's SPPF; `x86::ks1_strip_indices`).
/// Each plane in strips of output vectors, the plain `>` first with its NaN check, again by
/// the exact rule when the plane holds a NaN; tasks take whole planes. Returns `false`
/// (nothing written) for problems it does not take. Before it these took the flat path of
/// `plane.rs` (its W-pass rows in memory, then the H pass, border columns one at a time) or
/// the generic ring code (widths the stride does not divide: AlexNet's 55 columns).
#[cfg(target_arch = "x86_64")]
pub(crate) fn forward_with_indices<F: FastFloat>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    x: &[F],
    y: &mut Out<F>,
    idx: &mut [i64],
) -> bool {
    use super::zmm::{F32x16, F64x8};
    // (any plane size and width: the strip kernels keep no rows in memory)
    let Some(s) = plane_shape(g, axes, Reduce::Max, false) else {
        return false;
    };
    let window = match (s.kh, s.kw, s.sh, s.sw) {
        (k, 2 | 3, 2, 2) => k == s.kw && s.pad_left <= 1 && s.pad_top < k,
        (k, kw, 1, 1) => k == kw && (2..=7).contains(&k) && s.pad_left < k.min(4) && s.pad_top < k,
        _ => false,
    };
    let takes = s.avx512
        && (super::same_type::<F, f32>() || super::same_type::<F, f64>())
        && window
        && idx.len() == y.len()
        && g.in_plane() <= i32::MAX as usize;
    if !takes {
        return false;
    }
    let s = &PlaneShape {
        prefetch: std::mem::size_of_val(x) >= super::prefetch_from_bytes(),
        ..s
    };
    let depth: &[Span] = if s.d > 1 || s.od > 1 {
        &axes[0].spans
    } else {
        &[]
    };
    if let (Some(x), Some(mut y)) = (cast::<F, f32>(x), y.cast::<f32>()) {
        planes_with_indices::<F32x16>(s, depth, x, &mut y, idx);
    } else if let (Some(x), Some(mut y)) = (cast::<F, f64>(x), y.cast::<f64>()) {
        planes_with_indices::<F64x8>(s, depth, x, &mut y, idx);
    } else {
        unreachable!("f32 and f64 only (checked above)");
    }
    true
}

/// The planes of [`forward_with_indices`], split over threads as [`forward`] splits them.
#[cfg(target_arch = "x86_64")]
fn planes_with_indices<L: super::zmm::Zmm>(
    s: &PlaneShape,
    depth: &[Span],
    x: &[L::E],
    y: &mut Out<L::E>,
    idx: &mut [i64],
) {
    let (pin, pout) = (s.h * s.w, s.oh * s.ow);
    let (vin, vout) = (s.d * pin, s.od * pout);
    // SAFETY: every output element is stored (every strip of every row of every plane; in
    // 3-D every output slice by the depth fold), with computed values only.
    let y = unsafe { y.uninit() };
    let run = |xs: &[L::E], ys: &mut [MaybeUninit<L::E>], is: &mut [i64]| {
        if s.d == 1 && s.od == 1 {
            let planes = xs
                .chunks_exact(pin)
                .zip(ys.chunks_exact_mut(pout).zip(is.chunks_exact_mut(pout)));
            for (xp, (yp, ip)) in planes {
                // SAFETY: `forward_with_indices` checked `s.avx512`: AVX-512F was detected.
                unsafe { plane_with_indices::<L>(s, xp, 0, yp, ip) };
            }
            return;
        }
        // 3-D: the slices of a volume pooled (indices offset by the slice's place in the
        // volume), then folded along the depth in order
        let mut pooled = vec![L::NEG_INFINITY; s.d * pout];
        let mut pooled_i = vec![0i64; s.d * pout];
        let volumes = xs
            .chunks_exact(vin)
            .zip(ys.chunks_exact_mut(vout).zip(is.chunks_exact_mut(vout)));
        for (xv, (yv, iv)) in volumes {
            for (d, xp) in xv.chunks_exact(pin).enumerate() {
                // SAFETY: as above; the kernels store computed values only.
                unsafe {
                    let yp = as_uninit_mut(&mut pooled[d * pout..(d + 1) * pout]);
                    plane_with_indices::<L>(
                        s,
                        xp,
                        d * pin,
                        yp,
                        &mut pooled_i[d * pout..(d + 1) * pout],
                    );
                }
            }
            // SAFETY: as above.
            unsafe { fold_depth_indices::<L>(depth, pout, &pooled, &pooled_i, yv, iv) };
        }
    };
    if super::split_over_threads(x.len(), 1 << 16) {
        let per_task = ((1 << 15) / vin)
            .max((x.len() / vin).div_ceil(rayon::current_num_threads() * 4))
            .max(1);
        x.par_chunks(vin * per_task)
            .zip(y.par_chunks_mut(vout * per_task))
            .zip(idx.par_chunks_mut(vout * per_task))
            .for_each(|((xs, ys), is)| run(xs, ys, is));
    } else {
        run(x, y, idx);
    }
}

/// Output slice `o` of a volume folds the pooled slices of `depth[o]` in order, values and
/// indices, by the exact max rule (the later slice's value wins when greater or NaN): the
/// reference's depth-major scan regrouped, as the slices' own folds are.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fold_depth_indices<L: super::zmm::Zmm>(
    depth: &[Span],
    pout: usize,
    pooled: &[L::E],
    pooled_i: &[i64],
    y: &mut [MaybeUninit<L::E>],
    idx: &mut [i64],
) {
    // SAFETY: the caller's: the CPU supports AVX-512F.
    let l = unsafe { L::new() };
    let (n, pad) = (L::N, l.splat(L::NEG_INFINITY));
    assert!(
        depth
            .iter()
            .all(|sp| sp.count > 0 && (sp.first + sp.count) * pout <= pooled.len())
            && pooled_i.len() == pooled.len()
            && y.len() == depth.len() * pout
            && idx.len() == y.len()
    );
    for (o, sp) in depth.iter().enumerate() {
        let (dst, dst_i) = (
            y[o * pout..].as_mut_ptr().cast::<L::E>(),
            idx[o * pout..].as_mut_ptr(),
        );
        let first = sp.first * pout;
        // SAFETY: slices of pout values at `first` and at `o * pout` (asserted); the output
        // slice and the scratch do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(pooled[first..].as_ptr(), dst, pout);
            std::ptr::copy_nonoverlapping(pooled_i[first..].as_ptr(), dst_i, pout);
        }
        for d in sp.first + 1..sp.first + sp.count {
            let (src, src_i) = (pooled[d * pout..].as_ptr(), pooled_i[d * pout..].as_ptr());
            let mut k = 0;
            while k < pout {
                // the lanes below pout (past it padding, −∞: never greater or NaN, so never
                // taken)
                let lanes = L::lanes_below(pout - k);
                // SAFETY: the value loads and stores touch lanes below pout (the mask) of
                // the output slice and of slice d of `pooled`; `take` holds only such lanes, so
                // the index copy writes only those; it reads N indices of `pooled_i` from
                // slice d's element k, inside it when they end inside it, else from a copy of
                // the slice's tail.
                unsafe {
                    let v = l.load_masked(pad, lanes, dst.add(k));
                    let x = l.load_masked(pad, lanes, src.add(k));
                    let take = l.greater_or_nan(x, v);
                    l.store_masked(dst.add(k), lanes, l.select(v, take, x));
                    if d * pout + k + n <= pooled_i.len() {
                        l.copy_indices_masked(dst_i.add(k), take, src_i.add(k));
                    } else {
                        // the tail of the last slice: through a copy of its indices
                        let mut tail = [0i64; 16];
                        tail[..pout - k].copy_from_slice(&pooled_i[d * pout + k..(d + 1) * pout]);
                        l.copy_indices_masked(dst_i.add(k), take, tail.as_ptr());
                    }
                }
                k += n;
            }
        }
    }
}

/// One plane of [`forward_with_indices`] (indices from `base` on: the plane's offset in its
/// volume), in strips of output vectors: up to 4 at stride 2, at stride 1 as many as keep the
/// last `K` W rows in registers.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn plane_with_indices<L: super::zmm::Zmm>(
    s: &PlaneShape,
    x: &[L::E],
    base: usize,
    y: &mut [MaybeUninit<L::E>],
    idx: &mut [i64],
) {
    use super::x86::{ks1_strip_indices, ks2_strip_indices};
    let (w, pt, oh, ow, pl) = (s.w, s.pad_top, s.oh, s.ow, s.pad_left);
    let vectors = ow.div_ceil(L::N);
    let step = match (s.sw, s.kw) {
        (2, _) => 4,
        (_, 6 | 7) => 1,
        _ => 2,
    };
    plain_then_exact(Reduce::Max, |mode| {
        let plain = mode == PLAIN_MAX;
        let mut nan = false;
        for v0 in (0..vectors).step_by(step) {
            macro_rules! s2 {
                ($k:literal, $v:literal) => {
                    match (plain, pl > 0, s.prefetch) {
                        (true, false, false) => ks2_strip_indices::<L, 1, $k, 0, $v, false>(
                            x, w, pt, oh, ow, v0, base, y, idx,
                        ),
                        (true, false, true) => ks2_strip_indices::<L, 1, $k, 0, $v, true>(
                            x, w, pt, oh, ow, v0, base, y, idx,
                        ),
                        (true, true, false) => ks2_strip_indices::<L, 1, $k, 1, $v, false>(
                            x, w, pt, oh, ow, v0, base, y, idx,
                        ),
                        (true, true, true) => ks2_strip_indices::<L, 1, $k, 1, $v, true>(
                            x, w, pt, oh, ow, v0, base, y, idx,
                        ),
                        (false, false, _) => ks2_strip_indices::<L, 0, $k, 0, $v, false>(
                            x, w, pt, oh, ow, v0, base, y, idx,
                        ),
                        (false, true, _) => ks2_strip_indices::<L, 0, $k, 1, $v, false>(
                            x, w, pt, oh, ow, v0, base, y, idx,
                        ),
                    }
                };
            }
            macro_rules! s2_strip {
                ($v:literal) => {
                    if s.kw == 2 {
                        s2!(2, $v)
                    } else {
                        s2!(3, $v)
                    }
                };
            }
            macro_rules! s1 {
                ($k:literal, $v:literal) => {
                    match (plain, pl) {
                        (true, 0) => {
                            ks1_strip_indices::<L, 1, $k, 0, $v>(x, w, pt, oh, ow, v0, base, y, idx)
                        }
                        (true, 1) => {
                            ks1_strip_indices::<L, 1, $k, 1, $v>(x, w, pt, oh, ow, v0, base, y, idx)
                        }
                        (true, 2) => {
                            ks1_strip_indices::<L, 1, $k, 2, $v>(x, w, pt, oh, ow, v0, base, y, idx)
                        }
                        (true, _) => {
                            ks1_strip_indices::<L, 1, $k, 3, $v>(x, w, pt, oh, ow, v0, base, y, idx)
                        }
                        (false, 0) => {
                            ks1_strip_indices::<L, 0, $k, 0, $v>(x, w, pt, oh, ow, v0, base, y, idx)
                        }
                        (false, 1) => {
                            ks1_strip_indices::<L, 0, $k, 1, $v>(x, w, pt, oh, ow, v0, base, y, idx)
                        }
                        (false, 2) => {
                            ks1_strip_indices::<L, 0, $k, 2, $v>(x, w, pt, oh, ow, v0, base, y, idx)
                        }
                        (false, _) => {
                            ks1_strip_indices::<L, 0, $k, 3, $v>(x, w, pt, oh, ow, v0, base, y, idx)
                        }
                    }
                };
            }
            macro_rules! s1_strip {
                ($v:literal) => {
                    match s.kw {
                        2 => s1!(2, $v),
                        3 => s1!(3, $v),
                        4 => s1!(4, $v),
                        5 => s1!(5, $v),
                        6 => s1!(6, $v),
                        _ => s1!(7, $v),
                    }
                };
            }
            // SAFETY: the caller's (AVX-512F); the kernels assert their bounds.
            nan |= unsafe {
                match ((vectors - v0).min(step), s.sw) {
                    (1, 2) => s2_strip!(1),
                    (2, 2) => s2_strip!(2),
                    (3, 2) => s2_strip!(3),
                    (_, 2) => s2_strip!(4),
                    (1, _) => s1_strip!(1),
                    _ => s1_strip!(2),
                }
            };
        }
        nan
    });
}

/// The average backward of a stride-1 problem as a forward sum on this path: with
/// `g = grad_output / divisor`, `grad_input[h][w]` is the sum of `g` over the `kh × kw` block
/// ending at `(h + pad_top, w + pad_left)` — a sum pool of `g`, stride 1, padded by `k - 1 - pad`
/// before (and as far as needed after). Returns `None` when the problem does not fit.
pub(crate) fn avg_backward_shape(
    g: &Geom,
    axes: &[AxisPlan; 3],
    div: Divisor,
) -> Option<PlaneShape> {
    let [ad, ah, aw] = axes;
    let [d_in, h, w] = g.in3;
    let ok = g.layout == Layout::ChannelsFirst
        && !matches!(div, Divisor::PerAxis)
        && d_in == 1
        && ad.spans.len() == 1
        && ad.spans[0].count == 1
        && g.in_plane() <= MAX_PLANE
        && g.in_plane() > 0
        && ah.s == 1
        && aw.s == 1
        && ah.pad < ah.k
        && aw.pad < aw.k
        && plain_sliding(ah, h)
        && plain_sliding(aw, w);
    if !ok {
        return None;
    }
    let (oh, ow) = (ah.spans.len(), aw.spans.len());
    let q = (w + aw.k).div_ceil(16) * 16;
    Some(PlaneShape {
        d: 1,
        od: 1,
        h: oh,
        w: ow,
        oh: h,
        ow: w,
        kh: ah.k,
        kw: aw.k,
        sh: 1,
        sw: 1,
        pad_top: ah.k - 1 - ah.pad,
        pad_left: aw.k - 1 - aw.pad,
        q,
        rows: h - 1 + ah.k,
        avx512: super::isa::has_avx512(),
        avx2: super::isa::avx2_level(),
        prefetch: false,
    })
    .filter(|s| s.pad_left < q)
}

#[inline(always)]
fn backward_body<F: FastFloat>(
    s: &PlaneShape,
    divisors: &[F],
    gy: &[F],
    gx: &mut [MaybeUninit<F>],
) {
    let (pin, pout) = (s.h * s.w, s.oh * s.ow);
    if fused_s1::<F>(s) {
        // One divisor for all (every window counted in full): the sum of the output
        // gradients, divided once, where the reference divides each gradient, then sums:
        // within rounding of it, and the backward is then the forward kernel. Measured with
        // `PROBE_BWD=1 PROBE_N=8 plane_probe 192 28 28 3 1 1 avg` (inception_avg_s1_bwd
        // nchw), 1 thread, alternating with the build before, µs: AVX-512 226 → 162, AVX2
        // 425–428 → 272–274 (it divided a copy of each plane first); `.. 64 56 56 7 1 3 avg`
        // 523–528 → 414–418 and 707–738 → 549–576. Otherwise the fused kernel divides the
        // gradient of each output as it loads it, as the reference divides it, then sums (no
        // padded copy, no W-pass rows, no scaled copy).
        let (reciprocals, input_divisors) = match single_value(divisors) {
            Some(d) => (reciprocals_of(&[d]), &[][..]),
            None => (Vec::new(), divisors),
        };
        for (src, gxp) in gy.chunks_exact(pin).zip(gx.chunks_exact_mut(pout)) {
            fused_plane(
                s,
                Reduce::Sum(Divisor::Real),
                &reciprocals,
                input_divisors,
                src,
                gxp,
            );
        }
        return;
    }
    let mut buf = vec![F::zero(); (s.rows + 1) * s.q];
    let mut t = vec![F::zero(); s.rows * s.q];
    let mut scaled = vec![F::zero(); s.h * s.w];
    let n = gy.len() / pin;
    for p in 0..n {
        // the gradient of each output, divided as the reference divides it
        let src = &gy[p * pin..(p + 1) * pin];
        for f in 0..pin {
            scaled[f] = src[f] / divisors[f];
        }
        let gxp = &mut gx[p * pout..(p + 1) * pout];
        // the separate passes take values: the plane is zeroed first (in cache)
        let gxp = fill_zero(gxp);
        fill(s, &scaled, &mut buf, &mut []);
        plane_w::<F, SUM>(s, &buf, &[], &mut t);
        plane_h::<F, SUM>(s, &t, &[], gxp);
    }
}

multiversion!(fn run_backward<F: FastFloat>(s: &PlaneShape, divisors: &[F], gy: &[F], gx: &mut [MaybeUninit<F>]) -> () = backward_body);

/// Average backward of whole planes (see [`avg_backward_shape`]); tasks take whole planes.
pub(crate) fn avg_backward<F: FastFloat>(
    isa: Isa,
    s: &PlaneShape,
    axes: &[AxisPlan; 3],
    div: Divisor,
    gy: &[F],
    gx: &mut Out<F>,
) {
    let divisors = divisor_plane::<F>(axes, div);
    let (pin, pout) = (s.h * s.w, s.oh * s.ow);
    let threads = rayon::current_num_threads();
    let planes = gx.len() / pout.max(1);
    // four tasks per thread at least, as in `forward` (inception_avg_s1_bwd nchw, 2 threads,
    // same run: 0.32–0.46 → 0.31–0.32 ms)
    let per_task = ((1 << 15) / pout).max(planes.div_ceil(threads * 4)).max(1);
    // SAFETY: every plane of the gradient is stored (computed values), by the fused kernel
    // or, zeroed first, by the separate passes.
    let gx = unsafe { gx.uninit() };
    if super::split_over_threads(gx.len(), 1 << 16) {
        gy.par_chunks(pin * per_task)
            .zip(gx.par_chunks_mut(pout * per_task))
            .for_each(|(a, b)| run_backward::<F>(isa, s, &divisors, a, b));
    } else {
        run_backward::<F>(isa, s, &divisors, gy, gx);
    }
}
