//! The oracle: plain, safe, single-threaded loops, written once for every rank (spatial dims
//! are embedded in 3-D) and both layouts. Every fast kernel is tested against these functions.
//!
//! Conventions, the same as PyTorch's CPU kernels:
//! - windows are scanned in row-major (d, h, w) order over their in-bounds taps;
//! - max: `if v > best || isnan(v) { best = v; idx = i }`, starting from `LOWEST` and the first
//!   in-bounds tap, so ties keep the first maximum and NaN keeps the last NaN;
//! - sums accumulate in `T::Acc` in scan order and are divided once;
//! - backward passes visit outputs in order and add into the gradient (deterministic).

use crate::element::{Accumulator, Element};
use crate::geometry::Span;
use crate::plan::{Divisor, Geom, WindowTable};
use crate::LpVariant;
use num_traits::{Float, One, Zero};

/// Calls `f(plane, n, c)` for every (batch, channel) plane.
fn for_each_plane(g: &Geom, mut f: impl FnMut(usize, usize, usize)) {
    for n in 0..g.batch {
        for c in 0..g.channels {
            f(n * g.channels + c, n, c);
        }
    }
}

/// Calls `f(out_flat, in_flat_taps)` for every output position of one plane; `taps` yields the
/// plane-local flat indices of the window's in-bounds elements in row-major order.
fn for_each_window(
    g: &Geom,
    w: &[crate::geometry::AxisSpans; 3],
    mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>, [usize; 3]),
) {
    let [_, ih, iw] = g.in3;
    let [od, oh, ow] = g.out3;
    for zd in 0..od {
        for zh in 0..oh {
            for zw in 0..ow {
                let (sd, sh, sw) = (w[0].get(zd), w[1].get(zh), w[2].get(zw));
                let mut taps = sd.taps().flat_map(move |d| {
                    sh.taps()
                        .flat_map(move |h| sw.taps().map(move |x| (d * ih + h) * iw + x))
                });
                f((zd * oh + zh) * ow + zw, &mut taps, [zd, zh, zw]);
            }
        }
    }
}

/// The index a max window reports before any tap beats `LOWEST`: the flat position of its first
/// tap past the left padding in every axis (PyTorch's `maxindex` initialisation). For a window
/// that holds no input element (possible with dilation), this position lies outside the
/// window and possibly outside the plane, exactly as in PyTorch.
pub(crate) fn first_tap_index(
    g: &Geom,
    w: &[crate::geometry::AxisSpans; 3],
    o: [usize; 3],
) -> usize {
    let [_, ih, iw] = g.in3;
    (w[0].get(o[0]).first * ih + w[1].get(o[1]).first) * iw + w[2].get(o[2]).first
}

/// Max pooling forward with PyTorch's NaN and tie rules.
pub(crate) fn max_forward<T: Element>(
    g: &Geom,
    table: &WindowTable,
    x: &[T],
    y: &mut [T],
    mut idx: Option<&mut [i64]>,
) {
    let (si, so) = (g.in_strides(), g.out_strides());
    for_each_plane(g, |p, n, c| {
        let (bi, bo) = (si.base(n, c), so.base(n, c));
        let w = table.plane(p);
        for_each_window(g, w, |o, taps, oz| {
            let mut best = T::LOWEST;
            let mut best_i = first_tap_index(g, w, oz);
            for i in taps {
                let v = x[bi + i * si.spatial];
                if v > best || v.is_nan_value() {
                    best = v;
                    best_i = i;
                }
            }
            y[bo + o * so.spatial] = best;
            if let Some(idx) = idx.as_deref_mut() {
                idx[bo + o * so.spatial] = best_i as i64;
            }
        });
    });
}

fn divisor_of(div: Divisor, real: usize, padded: usize) -> i64 {
    match div {
        Divisor::Padded => padded as i64,
        Divisor::Real => real as i64,
        Divisor::Override(d) => d,
        Divisor::PerAxis => unreachable!("per-axis divisors are applied axis by axis"),
    }
}

/// Divides `sum` as the op does: once by the window's divisor, or by each axis's length in turn.
fn divide<A: Accumulator>(
    sum: A,
    div: Divisor,
    w: &[crate::geometry::AxisSpans; 3],
    o: [usize; 3],
) -> A {
    divide_spans(sum, div, spans_of(w, o))
}

/// The window of output `o`: its span on each axis.
fn spans_of(w: &[crate::geometry::AxisSpans; 3], o: [usize; 3]) -> [Span; 3] {
    [w[0].get(o[0]), w[1].get(o[1]), w[2].get(o[2])]
}

/// [`divide`] for the window whose spans are `s`.
pub(crate) fn divide_spans<A: Accumulator>(sum: A, div: Divisor, s: [Span; 3]) -> A {
    match div {
        Divisor::PerAxis => s.iter().fold(sum, |v, a| v / A::from_i64(a.count as i64)),
        _ => {
            let (real, padded) = s
                .iter()
                .fold((1, 1), |(r, p), a| (r * a.count, p * a.padded_count));
            let d = divisor_of(div, real, padded);
            if real == 0 && d == 0 {
                A::zero()
            } else {
                sum / A::from_i64(d)
            }
        }
    }
}

/// Average pooling forward.
pub(crate) fn avg_forward<T: Element>(
    g: &Geom,
    table: &WindowTable,
    div: Divisor,
    x: &[T],
    y: &mut [T],
) {
    let (si, so) = (g.in_strides(), g.out_strides());
    for_each_plane(g, |p, n, c| {
        let (bi, bo) = (si.base(n, c), so.base(n, c));
        let w = table.plane(p);
        for_each_window(g, w, |o, taps, oz| {
            let mut sum = T::Acc::zero();
            for i in taps {
                sum += x[bi + i * si.spatial].to_acc();
            }
            y[bo + o * so.spatial] = T::from_acc(divide(sum, div, w, oz));
        });
    });
}

/// Average pooling backward: each output's gradient, divided as in forward, goes to every
/// in-bounds element of its window.
pub(crate) fn avg_backward<T: Element>(
    g: &Geom,
    table: &WindowTable,
    div: Divisor,
    gy: &[T],
    gx: &mut [T],
) {
    let (si, so) = (g.in_strides(), g.out_strides());
    let mut acc = vec![T::Acc::zero(); gx.len()];
    for_each_plane(g, |p, n, c| {
        let (bi, bo) = (si.base(n, c), so.base(n, c));
        let w = table.plane(p);
        for_each_window(g, w, |o, taps, oz| {
            // PyTorch computes the delta in T, then adds it in T.
            let delta = T::from_acc(divide(gy[bo + o * so.spatial].to_acc(), div, w, oz)).to_acc();
            for i in taps {
                add_in::<T>(&mut acc[bi + i * si.spatial], delta);
            }
        });
    });
    for (d, a) in gx.iter_mut().zip(acc) {
        *d = T::from_acc(a);
    }
}

/// `*acc += v` rounded to `T`, as PyTorch's backward kernels add gradients in the tensor's own
/// type: f16 and bf16 round after every add (an f32 sum rounded once differs in the last
/// bits); for f32 and f64 the rounding is the identity.
#[inline(always)]
pub(crate) fn add_in<T: Element>(acc: &mut T::Acc, v: T::Acc) {
    *acc = T::round_acc(*acc + v);
}

/// Adds `gy[o]` into `gx[idx[o]]` plane by plane (max-type backward).
pub(crate) fn scatter_by_index<T: Element>(g: &Geom, idx: &[i64], gy: &[T], gx: &mut [T]) {
    let (si, so) = (g.in_strides(), g.out_strides());
    let mut acc = vec![T::Acc::zero(); gx.len()];
    for_each_plane(g, |_, n, c| {
        let (bi, bo) = (si.base(n, c), so.base(n, c));
        for o in 0..g.out_plane() {
            let k = bo + o * so.spatial;
            // Indices of windows without input elements may point outside the plane; PyTorch
            // would write out of bounds there, nnpool drops them.
            if (0..g.in_plane() as i64).contains(&idx[k]) {
                add_in::<T>(&mut acc[bi + idx[k] as usize * si.spatial], gy[k].to_acc());
            }
        }
    });
    for (d, a) in gx.iter_mut().zip(acc) {
        *d = T::from_acc(a);
    }
}

/// `x^p` as PyTorch's `pow(Tensor, Scalar)` computes it on the CPU: exponents 0.5, -0.5 and
/// -1 go to sqrt, 1/sqrt and 1/x, exponents 2, 3 and -2 to products (`x*x*x` can differ from a
/// correctly rounded power in the last bit, which a signed sum of cubes magnifies), 1 copies,
/// 0 fills with 1 (NaN included).
fn torch_pow<A: Accumulator>(x: A, p: A) -> A {
    let one = A::one();
    let two = one + one;
    let half = one / two;
    if p == A::zero() {
        one
    } else if p == one {
        x
    } else if p == half {
        x.sqrt()
    } else if p == -half {
        one / x.sqrt()
    } else if p == -one {
        one / x
    } else if p == two {
        x * x
    } else if p == two + one {
        x * x * x
    } else if p == -two {
        one / (x * x)
    } else {
        x.powf(p)
    }
}

/// [`torch_pow`] rounded to `T`.
pub(crate) fn pow_t<T: Element>(x: T::Acc, p: T::Acc) -> T::Acc {
    T::round_acc(torch_pow(x, p))
}

/// `torch.sign` (and `sgn`, which `abs`'s derivative multiplies by): ±1, and +0 for ±0 and
/// for NaN.
pub(crate) fn sign<A: Accumulator>(a: A) -> A {
    if a > A::zero() {
        A::one()
    } else if a < A::zero() {
        -A::one()
    } else {
        A::zero()
    }
}

/// `s·|x|` elementwise, rounded to `T` (`s` = ±1: the operand of Lp's max at p = ±inf).
fn signed_abs<T: Element>(x: &[T], s: T::Acc) -> Vec<T> {
    x.iter()
        .map(|v| T::from_acc(s * v.to_acc().abs()))
        .collect()
}

/// PyTorch's Lp output from a window's power sum `sum` (spans `s`, kernel area `k`):
/// `(sign(A)·relu(|A|)·K)^(1/p)` with `A = avg_pool(x^p)` (padding counted).
pub(crate) fn lp_torch_output<T: Element>(
    sum: T::Acc,
    s: [Span; 3],
    k: T::Acc,
    inv: T::Acc,
) -> T::Acc {
    torch_pow(lp_torch_base::<T>(sum, s, k).1, inv)
}

/// `(A, U)` of PyTorch's Lp composite for a window's power sum: `A = avg_pool(x^p)` (padding
/// counted) and `U = sign(A)·relu(|A|)·K`, each rounded to `T`.
fn lp_torch_base<T: Element>(sum: T::Acc, s: [Span; 3], k: T::Acc) -> (T::Acc, T::Acc) {
    let r = T::round_acc;
    let a = r(divide_spans(sum, Divisor::Padded, s));
    // relu(|A|) is |A|, NaN included (`max` would drop a NaN).
    (a, r(r(sign(a) * a.abs()) * k))
}

/// The delta PyTorch's Lp backward spreads over a window (output gradient `gout`, power sum
/// `sum`): the chain rule back through pow, mul, sign·relu and avg_pool; [`lp_torch_input_factor`]
/// multiplies the summed deltas. Autograd's conventions: relu passes no gradient at 0, so a
/// window whose power sum is 0 gets gradient 0; `sign` and `sgn` are 0 at NaN, so with p = 1
/// a window whose power sum is NaN passes gradient 0 (with other p, `u^(1/p - 1)` is NaN and
/// so is the gradient).
pub(crate) fn lp_torch_delta<T: Element>(
    gout: T::Acc,
    sum: T::Acc,
    s: [Span; 3],
    k: T::Acc,
    inv: T::Acc,
) -> T::Acc {
    let r = T::round_acc;
    let zero = T::Acc::zero();
    let (a, u) = lp_torch_base::<T>(sum, s, k);
    // pow backward: g * (1/p) * u^(1/p - 1)
    let g_u = r(gout * r(inv * r(torch_pow(u, inv - T::Acc::one()))));
    // mul by K, then by sign(A) (0 for a NaN A); relu's backward zeroes the gradient where its
    // result |A| is <= 0 (not where it is NaN); abs's multiplies by sgn(A) (0 again for NaN).
    let g_r = r(r(g_u * k) * sign(a));
    let g_abs = if a.abs() <= zero { zero } else { g_r };
    let g_a = r(g_abs * sign(a));
    // avg_pool backward (padding counted), as PyTorch computes the delta in T
    r(divide_spans(g_a, Divisor::Padded, s))
}

/// Lp backward's last step on an element `x` whose summed deltas are `acc`: pow's backward,
/// `acc · (p · x^(p-1))`, on every element (one outside every window still gets
/// `0 · x^(p-1)`, which is NaN where `x^(p-1)` is NaN or infinite, as in PyTorch).
pub(crate) fn lp_torch_input_factor<T: Element>(acc: T::Acc, x: T::Acc, pa: T::Acc) -> T::Acc {
    let r = T::round_acc;
    r(acc) * r(pa * r(torch_pow(x, pa - T::Acc::one())))
}

/// ONNX's Lp backward term for element `x` of a window: `scale · |x|^(p-1) · sign(x)`, where
/// `scale = gout · y / S` for the window's output `y` and power sum `S > 0`.
pub(crate) fn lp_onnx_term<A: Accumulator>(scale: A, x: A, pa: A) -> A {
    scale * x.abs().powf(pa - A::one()) * sign(x)
}

/// Lp pooling forward.
pub(crate) fn lp_forward<T: Element>(
    g: &Geom,
    table: &WindowTable,
    p: f64,
    variant: LpVariant,
    area: usize,
    x: &[T],
    y: &mut [T],
) {
    if p.is_infinite() {
        // PyTorch: max_pool(|x|) for +inf, -max_pool(-|x|) for -inf.
        let s = T::Acc::from_f64(p.signum());
        max_forward(g, table, &signed_abs(x, s), y, None);
        for v in y.iter_mut() {
            *v = T::from_acc(s * v.to_acc());
        }
        return;
    }
    let (si, so) = (g.in_strides(), g.out_strides());
    let pa = T::Acc::from_f64(p);
    let inv = T::Acc::from_f64(1.0 / p);
    let k = T::Acc::from_i64(area as i64);
    for_each_plane(g, |pl, n, c| {
        let (bi, bo) = (si.base(n, c), so.base(n, c));
        let w = table.plane(pl);
        for_each_window(g, w, |o, taps, oz| {
            let mut sum = T::Acc::zero();
            let out = match variant {
                LpVariant::Torch => {
                    for i in taps {
                        sum += pow_t::<T>(x[bi + i * si.spatial].to_acc(), pa);
                    }
                    lp_torch_output::<T>(sum, spans_of(w, oz), k, inv)
                }
                LpVariant::Onnx => {
                    for i in taps {
                        sum += x[bi + i * si.spatial].to_acc().abs().powf(pa);
                    }
                    sum.powf(inv)
                }
            };
            y[bo + o * so.spatial] = T::from_acc(out);
        });
    });
}

/// Lp pooling backward: the chain rule through PyTorch's composite (pow, avg_pool, sign·relu,
/// mul, pow), with autograd's conventions: relu passes no gradient at 0, so a window whose
/// power sum is 0 gets gradient 0; `sign` and `sgn` are 0 at NaN, so with p = 1 a window whose
/// power sum is NaN passes gradient 0 (with other p, `u^(1/p - 1)` is NaN and so is the
/// gradient).
#[allow(clippy::too_many_arguments)]
pub(crate) fn lp_backward<T: Element>(
    g: &Geom,
    table: &WindowTable,
    p: f64,
    variant: LpVariant,
    area: usize,
    x: &[T],
    gy: &[T],
    gx: &mut [T],
) {
    let (si, so) = (g.in_strides(), g.out_strides());
    if p.is_infinite() {
        // y = s·max(s·|x|), s = ±1: the gradient s·gy goes to the arg-max of s·|x|, is
        // multiplied by s again and then by sgn(x), as autograd takes PyTorch's composite
        // apart (so the other elements get s·(+0)·sgn(x): -0 where s = -1 and x > 0).
        let s = T::Acc::from_f64(p.signum());
        let mut y = vec![T::default(); gy.len()];
        let mut idx = vec![0i64; gy.len()];
        max_forward(g, table, &signed_abs(x, s), &mut y, Some(&mut idx));
        let sgy: Vec<T> = gy.iter().map(|v| T::from_acc(s * v.to_acc())).collect();
        scatter_by_index(g, &idx, &sgy, gx);
        for (d, v) in gx.iter_mut().zip(x) {
            *d = T::from_acc(s * d.to_acc() * sign(v.to_acc()));
        }
        return;
    }
    let pa = T::Acc::from_f64(p);
    let inv = T::Acc::from_f64(1.0 / p);
    let k = T::Acc::from_i64(area as i64);
    let zero = T::Acc::zero();
    let mut acc = vec![zero; gx.len()];
    for_each_plane(g, |pl, n, c| {
        let (bi, bo) = (si.base(n, c), so.base(n, c));
        let w = table.plane(pl);
        for_each_window(g, w, |o, taps, oz| {
            let gout = gy[bo + o * so.spatial].to_acc();
            let taps: Vec<usize> = taps.collect();
            match variant {
                LpVariant::Torch => {
                    let mut sum = zero;
                    for &i in &taps {
                        sum += pow_t::<T>(x[bi + i * si.spatial].to_acc(), pa);
                    }
                    // x^p's derivative multiplies the summed deltas below
                    let delta = lp_torch_delta::<T>(gout, sum, spans_of(w, oz), k, inv);
                    for &i in &taps {
                        add_in::<T>(&mut acc[bi + i * si.spatial], delta);
                    }
                }
                LpVariant::Onnx => {
                    let mut sum = zero;
                    for &i in &taps {
                        sum += x[bi + i * si.spatial].to_acc().abs().powf(pa);
                    }
                    if sum > zero {
                        let y = sum.powf(inv);
                        let scale = gout * y / sum;
                        for &i in &taps {
                            let xi = x[bi + i * si.spatial].to_acc();
                            acc[bi + i * si.spatial] += lp_onnx_term(scale, xi, pa);
                        }
                    }
                }
            }
        });
    });
    if variant == LpVariant::Torch {
        for (a, xi) in acc.iter_mut().zip(x) {
            *a = lp_torch_input_factor::<T>(*a, xi.to_acc(), pa);
        }
    }
    for (d, a) in gx.iter_mut().zip(acc) {
        *d = T::from_acc(a);
    }
}

/// Max unpooling: `y[plane][idx] = x` in input order (the last write wins), zeros elsewhere.
/// Returns the first out-of-range index, if any (nothing after it is written).
pub(crate) fn unpool_forward<T: Element>(
    g: &Geom,
    x: &[T],
    idx: &[i64],
    y: &mut [T],
) -> Result<(), i64> {
    let (si, so) = (g.in_strides(), g.out_strides());
    let plane = g.out_plane() as i64;
    y.iter_mut().for_each(|v| *v = T::default());
    for n in 0..g.batch {
        for c in 0..g.channels {
            let (bi, bo) = (si.base(n, c), so.base(n, c));
            for i in 0..g.in_plane() {
                let k = bi + i * si.spatial;
                let t = idx[k];
                if t < 0 || t >= plane {
                    return Err(t);
                }
                y[bo + t as usize * so.spatial] = x[k];
            }
        }
    }
    Ok(())
}

/// Max unpooling backward: `gx = gy[plane][idx]`.
pub(crate) fn unpool_backward<T: Element>(
    g: &Geom,
    gy: &[T],
    idx: &[i64],
    gx: &mut [T],
) -> Result<(), i64> {
    let (si, so) = (g.in_strides(), g.out_strides());
    let plane = g.out_plane() as i64;
    for n in 0..g.batch {
        for c in 0..g.channels {
            let (bi, bo) = (si.base(n, c), so.base(n, c));
            for i in 0..g.in_plane() {
                let k = bi + i * si.spatial;
                let t = idx[k];
                if t < 0 || t >= plane {
                    return Err(t);
                }
                gx[k] = gy[bo + t as usize * so.spatial];
            }
        }
    }
    Ok(())
}
