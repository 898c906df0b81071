//! The reference oracle against a second, independent formulation: windows enumerated tap by
//! tap from the formula `o*stride - pad + j*dilation` (no spans, no 3-D embedding), output sizes
//! counted window by window. Sweeps every small combination of kernel, stride, padding,
//! dilation and ceil_mode for 1-d and 2-d, data with ties, NaN and ±inf.

use nnpool::{Layout, PoolPlan, Pooling, Window};

/// Output size by counting windows. Floor mode: windows that end inside the padded input.
/// Ceil mode: windows that overhang the padded end by less than one stride and start inside
/// the input or its left padding.
fn naive_out(inn: i64, k: i64, s: i64, p: i64, d: i64, ceil: bool) -> i64 {
    let eff = d * (k - 1) + 1;
    let keep = |o: i64| {
        if ceil {
            o * s + eff < inn + 2 * p + s && o * s < inn + p
        } else {
            o * s + eff <= inn + 2 * p
        }
    };
    (0..).take_while(|&o| keep(o)).count() as i64
}

struct Problem {
    shape: Vec<usize>, // [N, C, spatial..]
    k: Vec<usize>,
    s: Vec<usize>,
    p: Vec<usize>,
    d: Vec<usize>,
    ceil: bool,
}

/// Taps of output `o` along one axis as (position or None for padding/overhang, counts-in-divisor).
fn taps(o: i64, inn: i64, k: i64, s: i64, p: i64, d: i64) -> Vec<(Option<i64>, bool)> {
    (0..k)
        .map(|j| {
            let pos = o * s - p + j * d;
            let real = (0..inn).contains(&pos);
            let padded = pos < inn + p; // inside the padded extent (left side always is)
            (real.then_some(pos), padded)
        })
        .collect()
}

fn naive(problem: &Problem, x: &[f32], op: &str) -> (Vec<usize>, Vec<f32>, Vec<i64>) {
    let r = problem.k.len();
    let spatial = &problem.shape[2..];
    let outs: Vec<i64> = (0..r)
        .map(|i| {
            naive_out(
                spatial[i] as i64,
                problem.k[i] as i64,
                problem.s[i] as i64,
                problem.p[i] as i64,
                problem.d[i] as i64,
                problem.ceil,
            )
        })
        .collect();
    let (n, c) = (problem.shape[0], problem.shape[1]);
    let plane: usize = spatial.iter().product();
    let oplane: i64 = outs.iter().product();
    let mut y = Vec::new();
    let mut idx = Vec::new();
    for b in 0..n {
        for ch in 0..c {
            let base = (b * c + ch) * plane;
            for of in 0..oplane {
                // unravel the output index
                let mut o = vec![0i64; r];
                let mut rem = of;
                for i in (0..r).rev() {
                    o[i] = rem % outs[i];
                    rem /= outs[i];
                }
                let per_axis: Vec<_> = (0..r)
                    .map(|i| {
                        taps(
                            o[i],
                            spatial[i] as i64,
                            problem.k[i] as i64,
                            problem.s[i] as i64,
                            problem.p[i] as i64,
                            problem.d[i] as i64,
                        )
                    })
                    .collect();
                // walk the taps in row-major order
                let total: usize = per_axis.iter().map(|t| t.len()).product();
                let mut best = f32::NEG_INFINITY;
                // PyTorch starts from the first tap at or past 0 in each axis (stepping by the
                // dilation, even beyond the kernel), flattened.
                let mut best_i = (0..r).fold(0i64, |acc, i| {
                    let (s_, p_, d_) = (
                        problem.s[i] as i64,
                        problem.p[i] as i64,
                        problem.d[i] as i64,
                    );
                    let mut pos = o[i] * s_ - p_;
                    while pos < 0 {
                        pos += d_;
                    }
                    acc * spatial[i] as i64 + pos
                });
                let mut sum = 0f32;
                let (mut real, mut padded) = (0, 0);
                for t in 0..total {
                    let mut rem = t;
                    let mut flat = 0i64;
                    let mut is_real = true;
                    let mut is_padded = true;
                    let mut jj = vec![0; r];
                    for i in (0..r).rev() {
                        jj[i] = rem % per_axis[i].len();
                        rem /= per_axis[i].len();
                    }
                    for i in 0..r {
                        let (pos, pad) = per_axis[i][jj[i]];
                        is_padded &= pad;
                        match pos {
                            Some(pos) => flat = flat * spatial[i] as i64 + pos,
                            None => is_real = false,
                        }
                    }
                    if is_padded {
                        padded += 1;
                    }
                    if !is_real {
                        continue;
                    }
                    real += 1;
                    let v = x[base + flat as usize];
                    if v > best || v.is_nan() {
                        best = v;
                        best_i = flat;
                    }
                    sum += v;
                }
                match op {
                    "max" => {
                        y.push(best);
                        idx.push(best_i);
                    }
                    "avg-include" => y.push(sum / padded as f32),
                    "avg-exclude" => y.push(sum / real as f32),
                    _ => unreachable!(),
                }
            }
        }
    }
    let mut shape = vec![n, c];
    shape.extend(outs.iter().map(|&o| o as usize));
    (shape, y, idx)
}

/// Deterministic data with many ties (small integers) and some NaN / ±inf.
fn data(len: usize, seed: u64, specials: bool) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (s >> 33) % 23;
            match r {
                20 if specials => f32::NAN,
                21 if specials => f32::INFINITY,
                22 if specials => f32::NEG_INFINITY,
                _ => (r % 7) as f32 - 3.0,
            }
        })
        .collect()
}

fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// Within 2 ulp, or the same bits: the averages of `data` (small integers) have exact sums
/// in any order, so the fast kernels differ from the reference only where they multiply by
/// the divisor's reciprocal instead of dividing (within 1 ulp).
fn within_division_rounding(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.to_bits() == y.to_bits()
                || (x.is_nan() && y.is_nan())
                || (x - y).abs() <= 2.0 * f32::EPSILON * y.abs()
        })
}

fn sweep(rank: usize, sizes: &[usize]) -> usize {
    let mut checked = 0;
    for &inn in sizes {
        for k in 1..=4usize {
            for s in 1..=3usize {
                for p in 0..=k / 2 {
                    for d in 1..=3usize {
                        for ceil in [false, true] {
                            let mut shape = vec![2, 2];
                            shape.extend(std::iter::repeat_n(inn, rank));
                            let pr = Problem {
                                shape: shape.clone(),
                                k: vec![k; rank],
                                s: vec![s; rank],
                                p: vec![p; rank],
                                d: vec![d; rank],
                                ceil,
                            };
                            let w = Window::new(&pr.k)
                                .stride(&pr.s)
                                .padding(&pr.p)
                                .dilation(&pr.d)
                                .ceil_mode(ceil);
                            let expect_out =
                                naive_out(inn as i64, k as i64, s as i64, p as i64, d as i64, ceil);
                            let desc = format!("rank{rank} in{inn} k{k} s{s} p{p} d{d} ceil{ceil}");
                            let plan = PoolPlan::new(
                                &Pooling::max(w.clone()),
                                &shape,
                                Layout::ChannelsFirst,
                            );
                            if expect_out < 1 {
                                assert!(plan.is_err(), "{desc}: expected an error");
                                continue;
                            }
                            let plan = plan.unwrap_or_else(|e| panic!("{desc}: {e}"));
                            let len: usize = shape.iter().product();
                            for (seed, specials) in [(1, false), (2, true), (3, true)] {
                                let x = data(len, seed + (inn * 100 + k * 10 + s) as u64, specials);
                                let (oshape, ny, nidx) = naive(&pr, &x, "max");
                                assert_eq!(plan.output_shape(), oshape.as_slice(), "{desc}");
                                let mut y = vec![0.0; plan.output_len()];
                                let mut idx = vec![0; plan.output_len()];
                                plan.forward_reference(&x, &mut y, Some(&mut idx)).unwrap();
                                assert!(
                                    same(&y, &ny),
                                    "{desc} seed {seed}: max values {y:?} != {ny:?}"
                                );
                                assert_eq!(idx, nidx, "{desc} seed {seed}: indices");
                                // and whatever the fast path chooses agrees bit for bit
                                let mut y2 = vec![0.0; plan.output_len()];
                                let mut idx2 = vec![0; plan.output_len()];
                                plan.forward(&x, &mut y2, Some(&mut idx2)).unwrap();
                                assert!(same(&y2, &y) && idx2 == idx, "{desc}: fast path differs");
                                if d == 1 {
                                    for (include, name) in
                                        [(true, "avg-include"), (false, "avg-exclude")]
                                    {
                                        let op = Pooling::Avg {
                                            window: w.clone(),
                                            count_include_pad: include,
                                            divisor_override: None,
                                        };
                                        let plan =
                                            PoolPlan::new(&op, &shape, Layout::ChannelsFirst);
                                        if rank == 3 && inn < k {
                                            // PyTorch's avg_pool3d rejects inputs smaller than the kernel, padding or not
                                            assert!(
                                                plan.is_err(),
                                                "{desc}: avg3d input < kernel must be rejected"
                                            );
                                            continue;
                                        }
                                        let plan = plan.unwrap();
                                        let x = data(len, seed, false);
                                        let (_, ny, _) = naive(&pr, &x, name);
                                        let mut y = vec![0.0; plan.output_len()];
                                        plan.forward_reference(&x, &mut y, None).unwrap();
                                        assert!(same(&y, &ny), "{desc} {name}: {y:?} != {ny:?}");
                                        plan.forward(&x, &mut y, None).unwrap();
                                        assert!(
                                            within_division_rounding(&y, &ny),
                                            "{desc} {name} (fast path): {y:?} != {ny:?}"
                                        );
                                    }
                                }
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    checked
}

#[test]
fn sweep_1d_every_small_window() {
    assert!(sweep(1, &[1, 2, 3, 4, 5, 6, 7, 9, 16, 17]) > 1000);
}

#[test]
fn sweep_2d_every_small_window() {
    assert!(sweep(2, &[1, 3, 5, 8]) > 500);
}

#[test]
fn sweep_3d_small_windows() {
    assert!(sweep(3, &[2, 5]) > 100);
}
