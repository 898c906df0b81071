//! Channels-first planes reduced as flat arrays.
//!
//! Channels-first rows are short (7 to 224 elements), and per-row loops spend their time in
//! set-up and remainders. When the W axis maps input rows onto output rows exactly
//! (`W == stride_w * OW`, true for the odd "same" windows with stride 1 and for the usual
//! stride-2 layers on even sizes), output `(h, o)` reads its taps at flat positions
//! `stride_w * (h*OW + o) + j*d - pad`: the W pass of the *whole plane* is one flat loop over
//! `h*OW + o`, taps contiguous (within one stride phase). Border columns, whose taps wrap into
//! the neighbouring row, are recomputed afterwards from their spans. With stride 1 along H the
//! H pass is flat as well (`f + (i*d - pad)*OW`); other strides run it row by row. Depth slices
//! are reduced one by one and combined in order, so max values and indices equal the
//! reference's sequential scan exactly.

use super::window::{divide_row, init, take, AxisPlan, FastFloat, Lanes, Reduce};
use crate::geometry::Span;

/// Sixteen consecutive flat outputs starting at `f`, accumulated in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn flat_block<F: FastFloat, const IDX: bool, const SUM: bool, const Q: usize>(
    src: &Phased<F>,
    src_i: Option<&[i32]>,
    taps: &[(usize, isize, i32)],
    idx_mul: i32,
    f: usize,
    out: &mut [F],
    out_i: &mut [i32],
) {
    let tap_idx = |at: usize, f: usize, add: i32| -> [i32; 16] {
        match src_i {
            Some(si) => si[at..at + 16].try_into().expect("16 values"),
            None => {
                let mut a = [0i32; 16];
                for (l, v) in a.iter_mut().enumerate() {
                    *v = idx_mul * (f + l) as i32 + add;
                }
                a
            }
        }
    };
    // Q independent 16-lane accumulators hide the compare-select latency. Each starts from
    // LOWEST with the first tap's index: folding the taps in order then equals the reference's
    // scan (a window of -inf keeps its first tap's index).
    let mut acc = [Lanes::<F>::new::<SUM>([0; 16]); Q];
    for (q, a) in acc.iter_mut().enumerate() {
        let at0 = ((taps[0].0 * src.plen) as isize + (f + 16 * q) as isize + taps[0].1) as usize;
        if IDX {
            a.i = tap_idx(at0, f + 16 * q, taps[0].2);
        }
    }
    for &(p, off, add) in taps {
        for (q, a) in acc.iter_mut().enumerate() {
            let at = ((p * src.plen) as isize + (f + 16 * q) as isize + off) as usize;
            let x: &[F; 16] = src.src[at..at + 16].try_into().expect("16 values");
            let xi = if IDX {
                tap_idx(at, f + 16 * q, add)
            } else {
                [0; 16]
            };
            a.fold::<IDX, SUM>(x, &xi);
        }
    }
    for (q, a) in acc.iter().enumerate() {
        a.store::<IDX>(out, out_i, f + 16 * q);
    }
}

/// Whether a plane with these axes can take the flat path.
pub(crate) fn applies(axes: &[AxisPlan; 3], w_in: usize) -> bool {
    let aw = &axes[2];
    aw.spans.len() * aw.s == w_in && aw.s <= 4 && aw.lo < aw.hi
}

/// A flat source: element `f` of "phase" `p` is `src[p*plen + f]`.
struct Phased<'a, F> {
    src: &'a [F],
    plen: usize,
}

/// Reduces `n` flat outputs `out[f] = fold_j src(f*1 + c_j)` where tap `j` reads phase
/// `ph[j]` at offset `f + off[j]` (all in bounds for `f` in `f0..f1`), with indices
/// `idx_mul*f + idx_add[j]` or from `src_i`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn flat_pass<F: FastFloat, const IDX: bool, const SUM: bool>(
    src: &Phased<F>,
    src_i: Option<&[i32]>,
    taps: &[(usize, isize, i32)], // (phase, offset, index addend)
    idx_mul: i32,
    f0: usize,
    f1: usize,
    out: &mut [F],
    out_i: &mut [i32],
) {
    if f0 >= f1 {
        return;
    }
    for &(p, off, _) in taps {
        let lo = p as isize * src.plen as isize + f0 as isize + off;
        let hi = p as isize * src.plen as isize + f1 as isize - 1 + off;
        assert!(lo >= 0 && (hi as usize) < src.src.len());
    }
    #[cfg(target_arch = "x86_64")]
    if IDX && !SUM && super::isa::has_avx512() {
        if let (Some(xs), Some(out)) = (super::cast::<F, f32>(src.src), super::cast_mut(out)) {
            // SAFETY: AVX-512F was detected.
            unsafe {
                super::x86::flat_max_indices(
                    xs,
                    src.plen,
                    src_i,
                    taps,
                    idx_mul,
                    (f0, f1),
                    out,
                    out_i,
                )
            };
            return;
        }
    }
    let n = f1 - f0;
    if n >= 16 {
        let mut f = f0;
        while f + 64 <= f1 {
            flat_block::<F, IDX, SUM, 4>(src, src_i, taps, idx_mul, f, out, out_i);
            f += 64;
        }
        while f + 16 <= f1 {
            flat_block::<F, IDX, SUM, 1>(src, src_i, taps, idx_mul, f, out, out_i);
            f += 16;
        }
        if f < f1 {
            flat_block::<F, IDX, SUM, 1>(src, src_i, taps, idx_mul, f1 - 16, out, out_i);
        }
    } else {
        for f in f0..f1 {
            let mut v = init::<F, SUM>();
            let mut vi = 0;
            for (t, &(p, off, add)) in taps.iter().enumerate() {
                let at = ((p * src.plen) as isize + f as isize + off) as usize;
                let x = src.src[at];
                let xi = match src_i {
                    Some(si) => si[at],
                    None => idx_mul * f as i32 + add,
                };
                if SUM {
                    v += x;
                } else if t == 0 || take(v, x) {
                    v = x;
                    vi = xi;
                }
            }
            out[f] = v;
            if IDX {
                out_i[f] = vi;
            }
        }
    }
}

/// `phases[p*plen + i] = x[i*s + p]`.
#[inline(always)]
fn split_phases<F: FastFloat>(x: &[F], s: usize, plen: usize, phases: &mut [F]) {
    if s == 2 {
        let full = x.len() / 2;
        let (p0, p1) = phases.split_at_mut(plen);
        #[cfg(target_arch = "x86_64")]
        if let (Some(src), Some(e), Some(o)) = (
            super::cast::<F, f32>(&x[..2 * full]),
            super::cast_mut::<F, f32>(&mut p0[..full]),
            super::cast_mut::<F, f32>(&mut p1[..full]),
        ) {
            if super::isa::has_avx512() {
                // SAFETY: AVX-512F was detected; lengths are 2*full, full, full.
                unsafe { super::x86::deinterleave2_avx512(src, e, o) };
                if x.len() % 2 == 1 {
                    p0[full] = x[2 * full];
                }
                return;
            }
        }
        // (iterators, not indexing: the compiler turns this loop into permutes; f64's time
        // on `64 112 112 3 2 1` stayed the same, 16.7–16.9 µs per plane, its loads waiting)
        let pairs = x.chunks_exact(2).zip(p0.iter_mut().zip(p1.iter_mut()));
        for (pair, (e, o)) in pairs {
            *e = pair[0];
            *o = pair[1];
        }
        if x.len() % 2 == 1 {
            p0[full] = x[2 * full];
        }
        return;
    }
    for p in 0..s {
        for (i, v) in phases[p * plen..(p + 1) * plen].iter_mut().enumerate() {
            if let Some(&e) = x.get(i * s + p) {
                *v = e;
            }
        }
    }
}

/// Scratch of one task.
pub(crate) struct PlaneScratch<F> {
    phases: Vec<F>,
    t: Vec<F>,
    t_i: Vec<i32>,
    u: Vec<F>,
    u_i: Vec<i32>,
    taps: Vec<(usize, isize, i32)>,
}

impl<F: FastFloat> PlaneScratch<F> {
    pub fn new() -> Self {
        PlaneScratch {
            phases: Vec::new(),
            t: Vec::new(),
            t_i: Vec::new(),
            u: Vec::new(),
            u_i: Vec::new(),
            taps: Vec::new(),
        }
    }
}

/// W and H passes of one depth slice `x` (`H x W`) into `u`/`u_i` (`OH x OW`, plane-local
/// indices offset by `idx_base`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn slice2d<F: FastFloat, const IDX: bool, const SUM: bool>(
    ah: &AxisPlan,
    aw: &AxisPlan,
    x: &[F],
    h_in: usize,
    w_in: usize,
    idx_base: i32,
    sc: &mut PlaneScratch<F>,
    u: &mut [F],
    u_i: &mut [i32],
) {
    let ow_n = aw.spans.len();
    let s = aw.s;
    #[cfg(target_arch = "x86_64")]
    if s == 2 && super::isa::has_avx512() {
        if let Some(xf) = super::cast::<F, f32>(x) {
            if fused_s2::<F>(ah, aw, xf, h_in, w_in, idx_base, IDX, SUM, sc, u, u_i) {
                return;
            }
        }
    }
    // phases of the whole slice: phase p holds x[s*f + p]
    let plen = (h_in * w_in).div_ceil(s);
    let phased: &[F] = if s == 1 {
        x
    } else {
        sc.phases.clear();
        sc.phases.resize(s * plen, F::zero());
        split_phases(x, s, plen, &mut sc.phases);
        &sc.phases
    };
    let src = Phased {
        src: phased,
        plen: if s == 1 { x.len() } else { plen },
    };
    // W pass over the whole slice: T[h*OW + o]
    let n_t = h_in * ow_n;
    sc.t.resize(n_t, F::zero());
    if IDX {
        sc.t_i.resize(n_t, 0);
    }
    let taps: Vec<(usize, isize, i32)> = (0..aw.k)
        .map(|j| {
            let rel = (j * aw.d) as isize - aw.pad as isize;
            let p = rel.rem_euclid(s as isize) as usize;
            (p, rel.div_euclid(s as isize), idx_base + rel as i32)
        })
        .collect();
    let min_off = taps.iter().map(|t| t.1).min().unwrap_or(0);
    let f0 = (-min_off).max(0) as usize;
    let limit = |p: usize| {
        if s == 1 {
            x.len()
        } else {
            plen.min(((h_in * w_in) as isize - p as isize + s as isize - 1) as usize / s)
        }
    };
    let f1 = taps
        .iter()
        .map(|&(p, off, _)| (limit(p) as isize - off).max(0) as usize)
        .min()
        .unwrap_or(0)
        .min(n_t);
    {
        let t_i: &mut [i32] = if IDX { &mut sc.t_i } else { &mut [] };
        flat_pass::<F, IDX, SUM>(&src, None, &taps, s as i32, f0, f1, &mut sc.t, t_i);
    }
    finish_slice::<F, IDX, SUM>(ah, aw, x, h_in, w_in, idx_base, f0, f1, sc, u, u_i);
}

/// Border columns and flat positions outside `[f0, f1)` of the W pass, then the H pass.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn finish_slice<F: FastFloat, const IDX: bool, const SUM: bool>(
    ah: &AxisPlan,
    aw: &AxisPlan,
    x: &[F],
    h_in: usize,
    w_in: usize,
    idx_base: i32,
    f0: usize,
    f1: usize,
    sc: &mut PlaneScratch<F>,
    u: &mut [F],
    u_i: &mut [i32],
) {
    let ow_n = aw.spans.len();
    let oh_n = ah.spans.len();
    let n_t = h_in * ow_n;
    // border columns, and the flat positions outside [f0, f1), from their spans
    let mut fix = |f: usize| {
        let (h, o) = (f / ow_n, f % ow_n);
        let row = &x[h * w_in..(h + 1) * w_in];
        let sp = aw.spans[o];
        let mut v = init::<F, SUM>();
        let mut vi = idx_base + (h * w_in + sp.first) as i32;
        for c in sp.taps() {
            let xv = row[c];
            if SUM {
                v += xv;
            } else if take(v, xv) {
                v = xv;
                vi = idx_base + (h * w_in + c) as i32;
            }
        }
        sc.t[f] = v;
        if IDX {
            sc.t_i[f] = vi;
        }
    };
    for h in 0..h_in {
        for o in (0..aw.lo).chain(aw.hi..ow_n) {
            fix(h * ow_n + o);
        }
    }
    for f in (0..f0.min(n_t)).chain(f1.max(f0)..n_t) {
        fix(f);
    }
    // H pass: U[oh*OW + o]
    if ah.s == 1 && ah.lo < ah.hi {
        let taps_h: Vec<(usize, isize, i32)> = (0..ah.k)
            .map(|i| {
                (
                    0,
                    ((i * ah.d) as isize - ah.pad as isize) * ow_n as isize,
                    0,
                )
            })
            .collect();
        let src_t = Phased {
            src: &sc.t,
            plen: n_t,
        };
        flat_pass::<F, IDX, SUM>(
            &src_t,
            if IDX { Some(&sc.t_i) } else { None },
            &taps_h,
            0,
            ah.lo * ow_n,
            ah.hi * ow_n,
            u,
            u_i,
        );
        for oh in (0..ah.lo).chain(ah.hi..oh_n) {
            h_row::<F, IDX, SUM>(
                &sc.t,
                &sc.t_i,
                ah.spans[oh],
                ow_n,
                &mut sc.taps,
                &mut u[oh * ow_n..(oh + 1) * ow_n],
                if IDX {
                    &mut u_i[oh * ow_n..(oh + 1) * ow_n]
                } else {
                    &mut []
                },
            );
        }
    } else {
        for oh in 0..oh_n {
            h_row::<F, IDX, SUM>(
                &sc.t,
                &sc.t_i,
                ah.spans[oh],
                ow_n,
                &mut sc.taps,
                &mut u[oh * ow_n..(oh + 1) * ow_n],
                if IDX {
                    &mut u_i[oh * ow_n..(oh + 1) * ow_n]
                } else {
                    &mut []
                },
            );
        }
    }
}

/// The stride-2 W pass with fused de-interleaving (AVX-512, f32), then [`finish_slice`].
/// Returns `false` when the taps would read outside the slice (small slices).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fused_s2<F: FastFloat>(
    ah: &AxisPlan,
    aw: &AxisPlan,
    xf: &[f32],
    h_in: usize,
    w_in: usize,
    idx_base: i32,
    idx: bool,
    sum: bool,
    sc: &mut PlaneScratch<F>,
    u: &mut [F],
    u_i: &mut [i32],
) -> bool {
    let ow_n = aw.spans.len();
    let n_t = h_in * ow_n;
    let rels: Vec<isize> = (0..aw.k)
        .map(|j| (j * aw.d) as isize - aw.pad as isize)
        .collect();
    let (rmin, rmax) = (
        *rels.iter().min().expect("k >= 1"),
        *rels.iter().max().expect("k >= 1"),
    );
    // f0: first output whose taps start at or after 0; f1: past the last whose widest load fits
    let f0 = ((-rmin).max(0) as usize).div_ceil(2);
    let f1 = (((xf.len() as isize - rmax - 2) / 2 + 1).max(0) as usize).min(n_t);
    if f1 < f0 + 16 {
        return false;
    }
    sc.t.resize(n_t, F::zero());
    if idx {
        sc.t_i.resize(n_t, 0);
    }
    let t = super::cast_mut::<F, f32>(&mut sc.t).expect("F is f32 here");
    // SAFETY: AVX-512F was detected; f0/f1 were chosen so every load stays inside xf
    // (2*f0 + rmin >= 0 and 2*(f1-1) + rmax + 2 <= len), and t, t_i hold n_t >= f1 values.
    unsafe {
        match (idx, sum) {
            (true, _) => {
                super::x86::wpass_s2_avx512::<1>(xf, &rels, idx_base, f0, f1, t, &mut sc.t_i)
            }
            (false, false) => {
                super::x86::wpass_s2_avx512::<0>(xf, &rels, idx_base, f0, f1, t, &mut [])
            }
            (false, true) => {
                super::x86::wpass_s2_avx512::<2>(xf, &rels, idx_base, f0, f1, t, &mut [])
            }
        }
    }
    let x = super::cast::<f32, F>(xf).expect("F is f32 here");
    if idx {
        finish_slice::<F, true, false>(ah, aw, x, h_in, w_in, idx_base, f0, f1, sc, u, u_i);
    } else if sum {
        finish_slice::<F, false, true>(ah, aw, x, h_in, w_in, idx_base, f0, f1, sc, u, u_i);
    } else {
        finish_slice::<F, false, false>(ah, aw, x, h_in, w_in, idx_base, f0, f1, sc, u, u_i);
    }
    true
}

/// One output row of the H pass from the rows of `t` in span `sh`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn h_row<F: FastFloat, const IDX: bool, const SUM: bool>(
    t: &[F],
    t_i: &[i32],
    sh: Span,
    ow_n: usize,
    taps: &mut Vec<(usize, isize, i32)>,
    out: &mut [F],
    out_i: &mut [i32],
) {
    taps.clear();
    taps.extend(sh.taps().map(|h| (0, (h * ow_n) as isize, 0)));
    let src = Phased {
        src: t,
        plen: t.len(),
    };
    flat_pass::<F, IDX, SUM>(
        &src,
        if IDX { Some(t_i) } else { None },
        taps,
        0,
        0,
        ow_n,
        out,
        out_i,
    );
}

/// Reduces one channels-first plane `x` (`D x H x W`) into `y` (`OD x OH x OW`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn plane<F: FastFloat, const IDX: bool, const SUM: bool>(
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    in3: [usize; 3],
    x: &[F],
    y: &mut [F],
    y_i: &mut [i32],
    sc: &mut PlaneScratch<F>,
) {
    let [ad, ah, aw] = axes;
    let [d_in, h_in, w_in] = in3;
    let (od_n, oh_n, ow_n) = (ad.spans.len(), ah.spans.len(), aw.spans.len());
    let (slice_in, slice_out) = (h_in * w_in, oh_n * ow_n);
    if d_in == 1 && od_n == 1 {
        slice2d::<F, IDX, SUM>(ah, aw, x, h_in, w_in, 0, sc, y, y_i);
    } else {
        // every depth slice once, then the D pass in order
        let mut u = std::mem::take(&mut sc.u);
        let mut u_i = std::mem::take(&mut sc.u_i);
        u.resize(d_in * slice_out, F::zero());
        if IDX {
            u_i.resize(d_in * slice_out, 0);
        }
        for d in 0..d_in {
            let (us, usi) = (
                &mut u[d * slice_out..(d + 1) * slice_out],
                if IDX {
                    &mut u_i[d * slice_out..(d + 1) * slice_out]
                } else {
                    &mut [][..]
                },
            );
            slice2d::<F, IDX, SUM>(
                ah,
                aw,
                &x[d * slice_in..(d + 1) * slice_in],
                h_in,
                w_in,
                (d * slice_in) as i32,
                sc,
                us,
                usi,
            );
        }
        for od in 0..od_n {
            let taps: Vec<(usize, isize, i32)> = ad.spans[od]
                .taps()
                .map(|d| (0, (d * slice_out) as isize, 0))
                .collect();
            let src = Phased {
                src: &u,
                plen: u.len(),
            };
            let (yo, yio) = (
                &mut y[od * slice_out..(od + 1) * slice_out],
                if IDX {
                    &mut y_i[od * slice_out..(od + 1) * slice_out]
                } else {
                    &mut [][..]
                },
            );
            flat_pass::<F, IDX, SUM>(
                &src,
                if IDX { Some(&u_i) } else { None },
                &taps,
                0,
                0,
                slice_out,
                yo,
                yio,
            );
        }
        sc.u = u;
        sc.u_i = u_i;
    }
    if let Reduce::Sum(div) = reduce {
        for od in 0..od_n {
            for oh in 0..oh_n {
                let row = &mut y[(od * oh_n + oh) * ow_n..(od * oh_n + oh + 1) * ow_n];
                divide_row(row, 1, div, ad.spans[od], ah.spans[oh], aw);
            }
        }
    }
}
