//! Property tests over random small problems: layouts agree, dtypes agree, batched and
//! unbatched agree, gradients are adjoints (average) or routes (max) and match finite
//! differences (Lp), adaptive pooling reduces to fixed windows when sizes divide, unpooling
//! inverts pooling, and no option, however wrong, panics.

use ndarray::{ArrayD, IxDyn};
use nnpool::array::{backward, forward, max_unpool};
use nnpool::{
    bf16, f16, FractionalOutput, Layout, LpVariant, PoolPlan, Pooling, Samples, Unpool, Window,
};
use proptest::prelude::*;

/// A random sliding window valid for PyTorch and input sizes that fit it.
fn window_and_shape() -> impl Strategy<Value = (Window, Vec<usize>)> {
    (1usize..=3, 1usize..=3, 1usize..=3)
        .prop_flat_map(|(rank, n, c)| {
            (
                proptest::collection::vec(
                    (1usize..=4, 1usize..=3, 0usize..=2, 1usize..=2, 0usize..=5),
                    rank,
                ),
                any::<bool>(),
                Just((n, c)),
            )
        })
        .prop_map(|(axes, ceil, (n, c))| {
            let k: Vec<usize> = axes.iter().map(|a| a.0).collect();
            let s: Vec<usize> = axes.iter().map(|a| a.1).collect();
            let p: Vec<usize> = axes.iter().map(|a| a.2.min(a.0 / 2)).collect();
            let d: Vec<usize> = axes.iter().map(|a| a.3).collect();
            let mut shape = vec![n, c];
            // input large enough for the dilated kernel, plus some slack
            shape.extend(axes.iter().map(|a| a.3 * (a.0 - 1) + 1 + a.4));
            (
                Window::new(&k)
                    .stride(&s)
                    .padding(&p)
                    .dilation(&d)
                    .ceil_mode(ceil),
                shape,
            )
        })
}

fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s % 9) as f64) - 4.0
        })
        .collect()
}

fn to_nhwc(a: &ArrayD<f64>) -> ArrayD<f64> {
    let nd = a.ndim();
    let mut perm: Vec<usize> = vec![0];
    perm.extend(2..nd);
    perm.push(1);
    a.view()
        .permuted_axes(IxDyn(&perm))
        .as_standard_layout()
        .into_owned()
}

/// Whether two results of `op` are the same numbers: max-type results bit for bit (NaN
/// only where NaN), sums (averages, Lp norms and their gradients) within a few ulps. The
/// layouts' fast paths group a window's sum differently (channels-first f64 planes sum each
/// row then the rows, channels-last pixels sum in the reference's row-major order), which the
/// library documents as within rounding; a value from a wrong element or window differs by far
/// more (the inputs are small integers).
fn same_numbers(op: &Pooling, a: &ArrayD<f64>, b: &ArrayD<f64>) -> bool {
    let exact = matches!(
        op,
        Pooling::Max { .. } | Pooling::AdaptiveMax { .. } | Pooling::GlobalMax { .. }
    );
    a.shape() == b.shape()
        && a.iter().zip(b).all(|(&x, &y)| {
            x.to_bits() == y.to_bits()
                || (x.is_nan() && y.is_nan())
                || !exact && (x - y).abs() <= 1e-12 * (1.0 + y.abs())
        })
}

fn ops(w: &Window) -> Vec<Pooling> {
    vec![
        Pooling::max(w.clone()),
        Pooling::avg(w.clone()),
        Pooling::Avg {
            window: w.clone(),
            count_include_pad: false,
            divisor_override: None,
        },
        Pooling::Avg {
            window: w.clone(),
            count_include_pad: true,
            divisor_override: Some(3),
        },
        Pooling::lp(w.clone(), 2.0),
        Pooling::Lp {
            window: w.clone(),
            norm_type: 3.0,
            variant: LpVariant::Onnx,
        },
        Pooling::adaptive_max(&vec![2; w.rank()]),
        Pooling::adaptive_avg(&vec![3; w.rank()]),
        Pooling::GlobalMax { rank: w.rank() },
        Pooling::GlobalAvg { rank: w.rank() },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn channels_last_gives_the_same_numbers((w, shape) in window_and_shape(), seed in any::<u64>()) {
        let len: usize = shape.iter().product();
        let x = ArrayD::from_shape_vec(IxDyn(&shape), values(len, seed)).unwrap();
        let xl = to_nhwc(&x);
        for op in ops(&w) {
            let Ok((y, idx)) = forward(&op, x.view(), Layout::ChannelsFirst) else { continue };
            let (yl, idxl) = forward(&op, xl.view(), Layout::ChannelsLast).unwrap();
            prop_assert!(same_numbers(&op, &to_nhwc(&y), &yl), "{:?}: {} vs {}", op, to_nhwc(&y), yl);
            if let (Some(i), Some(il)) = (idx, idxl) {
                prop_assert_eq!(to_nhwc(&i.mapv(|v| v as f64)), il.mapv(|v| v as f64));
            }
            let gy = ArrayD::from_shape_vec(IxDyn(y.shape()), values(y.len(), seed ^ 7)).unwrap();
            let gx = backward(&op, x.view(), gy.view(), Layout::ChannelsFirst).unwrap();
            let gxl = backward(&op, xl.view(), to_nhwc(&gy).view(), Layout::ChannelsLast).unwrap();
            prop_assert!(same_numbers(&op, &to_nhwc(&gx), &gxl), "backward {:?}: {} vs {}", op, to_nhwc(&gx), gxl);
        }
    }

    #[test]
    fn unbatched_equals_a_batch_of_one((w, shape) in window_and_shape(), seed in any::<u64>()) {
        let mut shape = shape;
        shape[0] = 1;
        let len: usize = shape.iter().product();
        let x = ArrayD::from_shape_vec(IxDyn(&shape), values(len, seed)).unwrap();
        let xu = x.clone().into_shape_with_order(IxDyn(&shape[1..])).unwrap();
        for op in ops(&w) {
            let Ok((y, _)) = forward(&op, x.view(), Layout::ChannelsFirst) else { continue };
            let (yu, _) = forward(&op, xu.view(), Layout::ChannelsFirst).unwrap();
            prop_assert_eq!(y.as_slice().unwrap(), yu.as_slice().unwrap());
        }
    }

    #[test]
    fn every_dtype_agrees_on_small_integers((w, shape) in window_and_shape(), seed in any::<u64>()) {
        let len: usize = shape.iter().product();
        let v = values(len, seed);
        let x64 = ArrayD::from_shape_vec(IxDyn(&shape), v.clone()).unwrap();
        let x32 = x64.mapv(|x| x as f32);
        let x16 = x64.mapv(f16::from_f64);
        let xb = x64.mapv(bf16::from_f64);
        let xi = x64.mapv(|x| x as i32);
        let op = Pooling::max(w.clone());
        let Ok((y64, i64_)) = forward(&op, x64.view(), Layout::ChannelsFirst) else { return Ok(()) };
        let (y32, i32_) = forward(&op, x32.view(), Layout::ChannelsFirst).unwrap();
        let (y16, i16_) = forward(&op, x16.view(), Layout::ChannelsFirst).unwrap();
        let (yb, ib) = forward(&op, xb.view(), Layout::ChannelsFirst).unwrap();
        let (yi, ii) = forward(&op, xi.view(), Layout::ChannelsFirst).unwrap();
        let expect = y64.mapv(|v| v as f32);
        prop_assert_eq!(&y32, &expect);
        prop_assert_eq!(y16.mapv(|v| v.to_f32()), expect.clone());
        prop_assert_eq!(yb.mapv(|v| v.to_f32()), expect);
        // integer max has no -inf: empty windows differ, every other value agrees
        for (a, b) in yi.iter().zip(y64.iter()) {
            if b.is_finite() { prop_assert_eq!(*a as f64, *b); }
        }
        for i in [&i32_, &i16_, &ib, &ii] {
            prop_assert_eq!(i, &i64_);
        }
        // average pooling: every float type within its rounding of the f64 result
        let op = Pooling::avg(w);
        let (a64, _) = forward(&op, x64.view(), Layout::ChannelsFirst).unwrap();
        let (a32, _) = forward(&op, x32.view(), Layout::ChannelsFirst).unwrap();
        let (a16, _) = forward(&op, x16.view(), Layout::ChannelsFirst).unwrap();
        for ((e, f), h) in a64.iter().zip(a32.iter()).zip(a16.iter()) {
            prop_assert!((e - *f as f64).abs() <= 1e-6 * (1.0 + e.abs()));
            prop_assert!((e - h.to_f64()).abs() <= 2e-3 * (1.0 + e.abs()));
        }
        prop_assert!(forward(&op, xi.view(), Layout::ChannelsFirst).is_err(), "average of integers is an error");
    }

    #[test]
    fn average_backward_is_the_adjoint_of_forward((w, shape) in window_and_shape(), seed in any::<u64>()) {
        let len: usize = shape.iter().product();
        let x = ArrayD::from_shape_vec(IxDyn(&shape), values(len, seed)).unwrap();
        for op in [
            Pooling::avg(w.clone()),
            Pooling::Avg { window: w.clone(), count_include_pad: false, divisor_override: None },
            Pooling::adaptive_avg(&vec![3; w.rank()]),
        ] {
            let Ok((y, _)) = forward(&op, x.view(), Layout::ChannelsFirst) else { continue };
            let gy = ArrayD::from_shape_vec(IxDyn(y.shape()), values(y.len(), seed ^ 99)).unwrap();
            let gx = backward(&op, x.view(), gy.view(), Layout::ChannelsFirst).unwrap();
            let lhs: f64 = y.iter().zip(gy.iter()).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(gx.iter()).map(|(a, b)| a * b).sum();
            prop_assert!((lhs - rhs).abs() <= 1e-9 * (1.0 + lhs.abs()), "{:?}: {} vs {}", op, lhs, rhs);
        }
    }

    #[test]
    fn max_backward_routes_each_gradient_to_its_argmax((w, shape) in window_and_shape(), seed in any::<u64>()) {
        let len: usize = shape.iter().product();
        let x = ArrayD::from_shape_vec(IxDyn(&shape), values(len, seed)).unwrap();
        let op = Pooling::max(w);
        let Ok((y, Some(idx))) = forward(&op, x.view(), Layout::ChannelsFirst) else { return Ok(()) };
        let gy = ArrayD::from_shape_vec(IxDyn(y.shape()), values(y.len(), seed ^ 5)).unwrap();
        let gx = backward(&op, x.view(), gy.view(), Layout::ChannelsFirst).unwrap();
        let plane: usize = shape[2..].iter().product();
        let oplane: usize = y.shape()[2..].iter().product();
        let mut expect = vec![0.0; len];
        for (o, (&g, &i)) in gy.iter().zip(idx.iter()).enumerate() {
            if (0..plane as i64).contains(&i) {
                expect[(o / oplane) * plane + i as usize] += g;
            }
        }
        prop_assert_eq!(gx.as_slice().unwrap(), expect.as_slice());
    }

    #[test]
    fn adaptive_pooling_with_dividing_sizes_is_fixed_window_pooling(
        rank in 1usize..=3, k in 1usize..=3, out in 1usize..=4, seed in any::<u64>()
    ) {
        let mut shape = vec![2, 3];
        shape.extend(std::iter::repeat_n(k * out, rank));
        let len: usize = shape.iter().product();
        let x = ArrayD::from_shape_vec(IxDyn(&shape), values(len, seed)).unwrap();
        let w = Window::new(&vec![k; rank]);
        let (a, ai) = forward(&Pooling::adaptive_max(&vec![out; rank]), x.view(), Layout::ChannelsFirst).unwrap();
        let (m, mi) = forward(&Pooling::max(w.clone()), x.view(), Layout::ChannelsFirst).unwrap();
        prop_assert_eq!(a, m);
        prop_assert_eq!(ai, mi);
        let (a, _) = forward(&Pooling::adaptive_avg(&vec![out; rank]), x.view(), Layout::ChannelsFirst).unwrap();
        let (m, _) = forward(&Pooling::avg(w), x.view(), Layout::ChannelsFirst).unwrap();
        for (p, q) in a.iter().zip(m.iter()) {
            prop_assert!((p - q).abs() < 1e-12);
        }
    }

    #[test]
    fn unpooling_puts_every_maximum_back((w, shape) in window_and_shape(), seed in any::<u64>()) {
        // non-overlapping windows without padding: unpool(pool(x)) keeps exactly the maxima
        let k = w.kernel.clone();
        let w = Window::new(&k);
        let len: usize = shape.iter().product();
        let x = ArrayD::from_shape_vec(IxDyn(&shape), values(len, seed)).unwrap();
        let Ok((y, Some(idx))) = forward(&Pooling::max(w.clone()), x.view(), Layout::ChannelsFirst) else { return Ok(()) };
        let spatial: Vec<usize> = shape[2..].to_vec();
        let u = max_unpool(&Unpool::new(&k).output_size(&spatial), y.view(), idx.view(), Layout::ChannelsFirst);
        let Ok(u) = u else { return Ok(()) }; // output size outside PyTorch's allowed range
        let (y2, _) = forward(&Pooling::max(w), u.view(), Layout::ChannelsFirst).unwrap();
        // pooling the unpooled tensor gives the maxima back (or 0 where every value was negative)
        for (a, b) in y2.iter().zip(y.iter()) {
            prop_assert!(a == b || (*a == 0.0 && *b < 0.0), "{} vs {}", a, b);
        }
    }

    #[test]
    fn no_option_panics(
        rank in 0usize..=4,
        k in proptest::collection::vec(0usize..=9, 0..=4),
        s in proptest::collection::vec(0usize..=4, 0..=4),
        p in proptest::collection::vec(0usize..=6, 0..=4),
        d in proptest::collection::vec(0usize..=4, 0..=4),
        ceil in any::<bool>(),
        dims in proptest::collection::vec(0usize..=6, 0..=6),
        big in any::<bool>(),
    ) {
        let mut dims = dims;
        if big && !dims.is_empty() { dims[0] = usize::MAX / 3; }
        let w = Window { kernel: k.clone(), stride: s, padding: nnpool::Padding::Symmetric(p.clone()), dilation: d, ceil_mode: ceil };
        let w2 = Window { padding: nnpool::Padding::Explicit { begin: p.clone(), end: p.clone() }, ..w.clone() };
        for op in [Pooling::max(w.clone()), Pooling::avg(w2), Pooling::lp(w, 2.0),
                   Pooling::adaptive_max(&k), Pooling::GlobalAvg { rank },
                   Pooling::FractionalMax { kernel: k.clone(), output: FractionalOutput::Size(p.clone()), samples: Samples::Seed(1) }] {
            for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
                if let Ok(plan) = PoolPlan::new(&op, &dims, layout) {
                    if plan.input_len() <= 4096 && plan.output_len() <= 4096 {
                        let x = vec![1.0f32; plan.input_len()];
                        let mut y = vec![0.0f32; plan.output_len()];
                        plan.forward(&x, &mut y, None).unwrap();
                        let mut gx = vec![0.0f32; plan.input_len()];
                        plan.backward(&x, &y, &mut gx).unwrap();
                    }
                }
            }
        }
    }
}

#[test]
fn empty_batch_gives_an_empty_output() {
    let x = ArrayD::<f32>::zeros(IxDyn(&[0, 3, 8, 8]));
    for op in [
        Pooling::max(Window::new(&[2, 2])),
        Pooling::avg(Window::new(&[3, 3]).stride(&[1])),
        Pooling::adaptive_avg(&[2, 2]),
    ] {
        let (y, _) = forward(&op, x.view(), Layout::ChannelsFirst).unwrap();
        assert_eq!(y.shape()[..2], [0, 3]);
        let gx = backward(&op, x.view(), y.view(), Layout::ChannelsFirst).unwrap();
        assert_eq!(gx.shape(), x.shape());
    }
}

#[test]
fn lp_backward_matches_finite_differences() {
    let shape = [1usize, 2, 7];
    let x: Vec<f64> = (0..14)
        .map(|i| 0.3 + (i as f64 * 0.37).sin().abs())
        .collect();
    let x = ArrayD::from_shape_vec(IxDyn(&shape), x).unwrap();
    for p in [1.0, 2.0, 3.0, 1.5] {
        for variant in [LpVariant::Torch, LpVariant::Onnx] {
            let op = Pooling::Lp {
                window: Window::new(&[3]).stride(&[2]).ceil_mode(true),
                norm_type: p,
                variant,
            };
            let (y, _) = forward(&op, x.view(), Layout::ChannelsFirst).unwrap();
            let gy = y.mapv(|_| 1.0);
            let gx = backward(&op, x.view(), gy.view(), Layout::ChannelsFirst).unwrap();
            for i in 0..x.len() {
                let h = 1e-6;
                let mut xp = x.clone();
                xp.as_slice_mut().unwrap()[i] += h;
                let mut xm = x.clone();
                xm.as_slice_mut().unwrap()[i] -= h;
                let fp: f64 = forward(&op, xp.view(), Layout::ChannelsFirst)
                    .unwrap()
                    .0
                    .sum();
                let fm: f64 = forward(&op, xm.view(), Layout::ChannelsFirst)
                    .unwrap()
                    .0
                    .sum();
                let fd = (fp - fm) / (2.0 * h);
                let g = gx.as_slice().unwrap()[i];
                assert!(
                    (fd - g).abs() < 1e-5 * (1.0 + fd.abs()),
                    "p={p} {variant:?} x[{i}]: analytic {g}, numeric {fd}"
                );
            }
        }
    }
}

#[test]
fn lp_gradient_is_zero_where_the_power_sum_is_zero() {
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 4]), vec![0.0f64, 0.0, 1.0, -1.0]).unwrap();
    let op = Pooling::lp(Window::new(&[2]), 2.0);
    let gx = backward(
        &op,
        x.view(),
        ArrayD::from_elem(IxDyn(&[1, 1, 2]), 1.0).view(),
        Layout::ChannelsFirst,
    )
    .unwrap();
    assert_eq!(gx.as_slice().unwrap()[..2], [0.0, 0.0]);
}

/// PyTorch's autograd through `lp_pool1d` (torch 2.15, float64, k = 2, s = 2, gy = 1):
/// `sign` and `sgn` are 0 at NaN, so with p = 1 (and p = inf) a NaN window passes gradient 0;
/// `x^p`'s derivative multiplies every element, so one outside every window gets
/// 0 · x^(p-1), NaN where that power is NaN or infinite.
#[test]
fn lp_gradient_follows_pytorch_at_nan_and_outside_the_windows() {
    let nan = f64::NAN;
    let cases: [(f64, [f64; 5], [f64; 5]); 5] = [
        (1.0, [nan, 1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0, 0.0]),
        (
            1.5,
            [1.0, 2.0, 3.0, 4.0, -1.0],
            [
                0.6392340078652324,
                0.9040134034531215,
                0.7329564758289748,
                0.846345237248276,
                nan,
            ],
        ),
        (
            2.0,
            [1.0, 2.0, 3.0, 4.0, f64::INFINITY],
            [0.4472135954999579, 0.8944271909999159, 0.6, 0.8, nan],
        ),
        (
            2.0,
            [nan, 1.0, 2.0, 3.0, 0.0],
            [nan, nan, 0.5547001962252291, 0.8320502943378437, 0.0],
        ),
        (
            f64::INFINITY,
            [nan, 1.0, -2.0, 0.0, 5.0],
            [0.0, 0.0, -1.0, 0.0, 0.0],
        ),
    ];
    for (p, x, want) in cases {
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 5]), x.to_vec()).unwrap();
        let op = Pooling::lp(Window::new(&[2]), p);
        let gy = ArrayD::from_elem(IxDyn(&[1, 1, 2]), 1.0);
        let gx = backward(&op, x.view(), gy.view(), Layout::ChannelsFirst).unwrap();
        for (i, (&g, &w)) in gx.iter().zip(&want).enumerate() {
            let ok = if w.is_nan() {
                g.is_nan()
            } else {
                (g - w).abs() <= 1e-12 * w.abs().max(1.0)
            };
            assert!(ok, "p={p} x[{i}]: {g} != PyTorch's {w}");
        }
    }
}

/// PyTorch's lp_pool3d is avg_pool3d of x^p, which refuses an input smaller than the kernel
/// even where ceil_mode would give an output; p = inf (max_pool3d) and 2-d accept it.
#[test]
fn lp_pool3d_refuses_an_input_smaller_than_the_kernel() {
    let window = Window::new(&[1, 3, 1]).stride(&[3, 2, 1]).ceil_mode(true);
    let x = ArrayD::<f32>::zeros(IxDyn(&[1, 2, 6, 2, 1]));
    let err = forward(
        &Pooling::lp(window.clone(), 3.0),
        x.view(),
        Layout::ChannelsFirst,
    )
    .unwrap_err();
    assert!(err.to_string().contains("lp_pool3d"), "{err}");
    let (y, _) = forward(
        &Pooling::lp(window, f64::INFINITY),
        x.view(),
        Layout::ChannelsFirst,
    )
    .unwrap();
    assert_eq!(y.shape(), &[1, 2, 2, 1, 1]);
    let window = Window::new(&[3, 1]).stride(&[2, 1]).ceil_mode(true);
    let x = ArrayD::<f32>::zeros(IxDyn(&[1, 2, 2, 1]));
    assert!(forward(&Pooling::lp(window, 3.0), x.view(), Layout::ChannelsFirst).is_ok());
}

/// PyTorch 2.15: fractional_max_pool2d accepts output + kernel - 1 == input, while
/// fractional_max_pool3d asks for output + kernel - 1 < input in every axis.
#[test]
fn fractional_3d_needs_room_that_2d_does_not() {
    let op = |kernel: &[usize], out: &[usize]| Pooling::FractionalMax {
        kernel: kernel.to_vec(),
        output: FractionalOutput::Size(out.to_vec()),
        samples: Samples::Seed(0),
    };
    let x2 = ArrayD::<f32>::zeros(IxDyn(&[1, 1, 6, 6]));
    assert!(forward(&op(&[2, 1], &[5, 6]), x2.view(), Layout::ChannelsFirst).is_ok());
    let x3 = ArrayD::<f32>::zeros(IxDyn(&[1, 1, 6, 6, 6]));
    assert!(forward(
        &op(&[2, 2, 2], &[4, 4, 4]),
        x3.view(),
        Layout::ChannelsFirst
    )
    .is_ok());
    for (k, o) in [
        ([2, 1, 1], [5, 1, 1]),
        ([1, 2, 1], [1, 5, 1]),
        ([1, 1, 2], [1, 1, 5]),
        ([1, 1, 1], [6, 6, 6]),
    ] {
        let err = forward(&op(&k, &o), x3.view(), Layout::ChannelsFirst).unwrap_err();
        assert!(err.to_string().contains("output_size"), "{err}");
    }
}

/// PyTorch adds f16 and bf16 gradients in their own type, rounding after every add (torch
/// 2.15, both layouts): one element that gets 1 + h + h, h half an ulp of 1, ends at 1 (each
/// add a tie to even), where an f32 sum rounded once would end one ulp above.
#[test]
fn reduced_precision_gradients_round_after_every_add_as_pytorch() {
    fn check<T: nnpool::Element + std::fmt::Debug + PartialEq>(h: f32, from: fn(f32) -> T) {
        let v = |a: &[f32]| {
            ArrayD::from_shape_vec(IxDyn(&[1, 1, 3]), a.iter().map(|&x| from(x)).collect()).unwrap()
        };
        let window = Window::new(&[3]).stride(&[1]).padding(&[1]);
        let x = v(&[0.0, 9.0, 0.0]);
        let gx = backward(
            &Pooling::max(window.clone()),
            x.view(),
            v(&[1.0, h, h]).view(),
            Layout::ChannelsFirst,
        )
        .unwrap();
        assert_eq!(
            gx.as_slice().unwrap(),
            v(&[0.0, 1.0, 0.0]).as_slice().unwrap()
        );
        let avg = Pooling::Avg {
            window,
            count_include_pad: false,
            divisor_override: None,
        };
        let gx = backward(
            &avg,
            x.view(),
            v(&[2.0, 3.0 * h, 2.0 * h]).view(),
            Layout::ChannelsFirst,
        )
        .unwrap();
        assert_eq!(
            gx.as_slice().unwrap(),
            v(&[1.0, 1.0, 2.0 * h]).as_slice().unwrap()
        );
    }
    check(2f32.powi(-11), f16::from_f32);
    check(2f32.powi(-8), bf16::from_f32);
}

/// PyTorch accepts a negative norm_type: the same formula with x^p (p = -1: 1/x), and for
/// -inf minus the max of -|x|. Values from torch 2.15 (float64, k = 2, s = 2, gy = [1, 2, 3]);
/// the last window holds a 0, whose x^p is inf.
#[test]
fn lp_with_a_negative_norm_type_follows_pytorch() {
    let nan = f64::NAN;
    let x = [1.0, 2.0, 3.0, -4.0, 0.5, 0.0];
    let cases: [(f64, [f64; 3], [f64; 6]); 4] = [
        (
            -1.0,
            [0.6666666666666666, 12.000000000000004, 0.0],
            [
                0.4444444444444444,
                0.1111111111111111,
                32.000000000000014,
                18.000000000000007,
                -0.0,
                nan,
            ],
        ),
        (
            -2.0,
            [0.8944271909999159, 2.4, 0.0],
            [
                0.7155417527999327,
                0.08944271909999159,
                1.024,
                -0.43200000000000005,
                -0.0,
                nan,
            ],
        ),
        (
            -1.5,
            [0.8172402336228962, nan, 0.0],
            [0.6037739178243224, 0.10673315789928693, nan, nan, -0.0, nan],
        ),
        (
            f64::NEG_INFINITY,
            [1.0, 3.0, 0.0],
            [1.0, -0.0, 2.0, 0.0, -0.0, 0.0],
        ),
    ];
    let close = |a: f64, b: f64| {
        if b.is_nan() {
            a.is_nan()
        } else {
            (a - b).abs() <= 1e-12 * b.abs().max(1.0)
                && a.is_sign_negative() == b.is_sign_negative()
        }
    };
    let xa = ArrayD::from_shape_vec(IxDyn(&[1, 1, 6]), x.to_vec()).unwrap();
    let gy = ArrayD::from_shape_vec(IxDyn(&[1, 1, 3]), vec![1.0, 2.0, 3.0]).unwrap();
    for (p, want_y, want_gx) in cases {
        let op = Pooling::lp(Window::new(&[2]), p);
        let (y, _) = forward(&op, xa.view(), Layout::ChannelsFirst).unwrap();
        let gx = backward(&op, xa.view(), gy.view(), Layout::ChannelsFirst).unwrap();
        for (i, (&a, &b)) in y.iter().zip(&want_y).enumerate() {
            assert!(close(a, b), "p={p} y[{i}]: {a} != PyTorch's {b}");
        }
        for (i, (&a, &b)) in gx.iter().zip(&want_gx).enumerate() {
            assert!(close(a, b), "p={p} gx[{i}]: {a} != PyTorch's {b}");
        }
    }
    let onnx = Pooling::Lp {
        window: Window::new(&[2]),
        norm_type: -2.0,
        variant: LpVariant::Onnx,
    };
    assert!(forward(&onnx, xa.view(), Layout::ChannelsFirst).is_err());
}
