//! Fast kernels against the reference oracle: every dispatched kernel is swept over shapes
//! around its interior/border split and its task split (sizes 1, 2, tile-1, tile, tile+1),
//! both layouts, ranks 1–3, f32/f64/f16/bf16, with NaN, ±inf, ±0 and ties in the data.
//! Max values and indices must be identical (bit for bit); averages within the documented
//! tolerance. Thread counts 1, 2 and 3 must give bit-identical results.

use nnpool::{bf16, f16, Element, Layout, PoolPlan, Pooling, Window};

fn data<T: Element>(len: usize, seed: u64, specials: bool) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let r = s % 41;
            let v = match r {
                37 if specials => f64::NAN,
                38 if specials => f64::INFINITY,
                39 if specials => f64::NEG_INFINITY,
                40 => -0.0,
                _ => ((r % 13) as f64 - 6.0) * 0.5,
            };
            T::from_f64(v)
        })
        .collect()
}

/// The same bits (any NaN matches any NaN).
fn same_bits<T: Element>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.to_f64().to_bits() == b.to_f64().to_bits() || (a.is_nan_value() && b.is_nan_value())
        })
}

fn problem_desc(op: &Pooling, shape: &[usize], layout: Layout) -> String {
    format!("{op:?} shape {shape:?} {layout:?}")
}

/// The reference's forward of `x`: values, and indices when `with_idx` (else none).
fn reference_forward<T: Element>(plan: &PoolPlan, x: &[T], with_idx: bool) -> (Vec<T>, Vec<i64>) {
    let mut yr = vec![T::default(); plan.output_len()];
    let mut ir = vec![0i64; if with_idx { plan.output_len() } else { 0 }];
    plan.forward_reference(x, &mut yr, with_idx.then_some(&mut ir[..]))
        .unwrap();
    (yr, ir)
}

/// How many times the averages' tolerance a window of this op is allowed: the rounding error
/// of a sum grows with its length, and the fast kernels group a window's terms differently
/// from the reference. 1 up to 7×7 windows (the tolerance the README states); wider windows
/// in proportion to their taps (a 31×31 average backward sums up to 961 terms).
fn sum_length_factor(op: &Pooling) -> f64 {
    let taps: usize = match op {
        Pooling::Avg { window, .. } => window.kernel.iter().product(),
        _ => 1,
    };
    (taps as f64 / 49.0).max(1.0)
}

fn check<T: Element>(op: &Pooling, shape: &[usize], layout: Layout, seed: u64) {
    let Ok(plan) = PoolPlan::new(op, shape, layout) else {
        return;
    };
    let terms = sum_length_factor(op);
    let desc = problem_desc(op, shape, layout);
    let x: Vec<T> = data(plan.input_len(), seed, true);
    let with_idx = op.has_indices();
    let (yr, ir) = reference_forward(&plan, &x, with_idx);
    let mut first: Option<(Vec<T>, Vec<i64>)> = None;
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut y = vec![T::default(); plan.output_len()];
        let mut i = vec![0i64; ir.len()];
        pool.install(|| plan.forward(&x, &mut y, with_idx.then_some(&mut i[..])))
            .unwrap();
        if op.has_indices() {
            for (k, (a, b)) in y.iter().zip(&yr).enumerate() {
                let same = (a.is_nan_value() && b.is_nan_value())
                    || a.to_f64().to_bits() == b.to_f64().to_bits();
                assert!(same, "{desc}: value {k}: fast {a:?} vs reference {b:?}");
            }
            assert_eq!(i, ir, "{desc}: indices");
        } else {
            // averages: summed row by row instead of in one sequence
            let eps = terms
                * match T::DTYPE {
                    nnpool::DType::F64 => 1e-13,
                    nnpool::DType::F32 => 1e-5,
                    _ => 1e-2,
                };
            for (k, (a, b)) in y.iter().zip(&yr).enumerate() {
                let (a, b) = (a.to_f64(), b.to_f64());
                let ok =
                    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= eps * (1.0 + b.abs());
                assert!(ok, "{desc}: value {k}: fast {a} vs reference {b}");
            }
        }
        if op.has_indices() {
            // without indices the values take their own fast paths (one for planes without NaN
            // or infinities): the same bits as the reference, with and without special values
            for specials in [true, false] {
                let xs: Vec<T> = if specials {
                    x.clone()
                } else {
                    data(plan.input_len(), seed ^ 0x55, false)
                };
                let mut want = vec![T::default(); plan.output_len()];
                plan.forward_reference(&xs, &mut want, None).unwrap();
                let mut got = vec![T::default(); plan.output_len()];
                pool.install(|| plan.forward(&xs, &mut got, None)).unwrap();
                // the allocating call writes into fresh memory (poisoned in debug builds):
                // every element must be written, with the same bits
                let fresh = pool.install(|| plan.forward_to_vec(&xs)).unwrap();
                assert!(same_bits(&fresh, &got), "{desc}: forward_to_vec differs");
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    let same = (a.is_nan_value() && b.is_nan_value())
                        || a.to_f64().to_bits() == b.to_f64().to_bits();
                    assert!(
                        same,
                        "{desc}: no indices, value {k}: fast {a:?} vs reference {b:?}"
                    );
                }
            }
        }
        if op.has_indices() {
            let (fy, fi) = pool
                .install(|| plan.forward_with_indices_to_vec(&x))
                .unwrap();
            assert!(
                same_bits(&fy, &y) && fi == i,
                "{desc}: forward_with_indices_to_vec differs"
            );
        } else {
            let fresh = pool.install(|| plan.forward_to_vec(&x)).unwrap();
            assert!(same_bits(&fresh, &y), "{desc}: forward_to_vec differs");
        }
        // backward: max-type exact (same order), average within rounding
        let gy: Vec<T> = data(plan.output_len(), seed ^ 0xabc, false);
        let mut gr = vec![T::default(); plan.input_len()];
        plan.backward_reference(&x, &gy, &mut gr).unwrap();
        let mut gf = vec![T::default(); plan.input_len()];
        pool.install(|| plan.backward(&x, &gy, &mut gf)).unwrap();
        for (k, (a, b)) in gf.iter().zip(&gr).enumerate() {
            let (a, b) = (a.to_f64(), b.to_f64());
            let tol = if op.has_indices() {
                0.0
            } else {
                terms * 1e-5 * (1.0 + b.abs())
            };
            assert!(
                (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol,
                "{desc}: backward {k}: fast {a} vs reference {b}"
            );
        }
        let fresh = pool.install(|| plan.backward_to_vec(&x, &gy)).unwrap();
        assert!(same_bits(&fresh, &gf), "{desc}: backward_to_vec differs");
        if op.has_indices() {
            let fresh = pool
                .install(|| plan.backward_with_indices_to_vec(&i, &gy))
                .unwrap();
            assert!(
                same_bits(&fresh, &gf),
                "{desc}: backward_with_indices_to_vec differs"
            );
        }
        // a repeated run on the same pool gives the same bits
        let mut y2 = vec![T::default(); plan.output_len()];
        let mut i2 = vec![0i64; ir.len()];
        pool.install(|| plan.forward(&x, &mut y2, with_idx.then_some(&mut i2[..])))
            .unwrap();
        assert!(
            y.iter()
                .zip(&y2)
                .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()
                    || (a.is_nan_value() && b.is_nan_value()))
                && i == i2,
            "{desc}: repeated run differs"
        );
        let mut gf2 = vec![T::default(); plan.input_len()];
        pool.install(|| plan.backward(&x, &gy, &mut gf2)).unwrap();
        assert!(
            gf.iter()
                .zip(&gf2)
                .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()),
            "{desc}: repeated backward differs"
        );
        match &first {
            None => first = Some((y, i)),
            Some((y0, i0)) => {
                let same = y.iter().zip(y0).all(|(a, b)| {
                    a.to_f64().to_bits() == b.to_f64().to_bits()
                        || (a.is_nan_value() && b.is_nan_value())
                });
                assert!(
                    same && &i == i0,
                    "{desc}: {threads} threads differ from 1 thread"
                );
            }
        }
    }
}

/// A window of side `k`, stride `s`, padding `pad` and dilation `d` on every one of `rank`
/// axes, in ceil mode or not.
fn cube_window(rank: usize, (k, s, pad, d, ceil): (usize, usize, usize, usize, bool)) -> Window {
    Window::new(&vec![k; rank])
        .stride(&vec![s; rank])
        .padding(&vec![pad; rank])
        .dilation(&vec![d; rank])
        .ceil_mode(ceil)
}

/// Max over the dilated window, then average (no dilation: PyTorch's has none) by the three
/// divisor rules.
fn ops_for(rank: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Vec<Pooling> {
    let w = cube_window(rank, (k, s, p, d, ceil));
    let wa = cube_window(rank, (k, s, p, 1, ceil));
    ops_of(w, wa, -3)
}

/// Max over `w`, then average over `wa` by the three divisor rules (padding counted, not
/// counted, `divisor_override`).
fn ops_of(w: Window, wa: Window, divisor_override: i64) -> Vec<Pooling> {
    vec![
        Pooling::max(w),
        Pooling::avg(wa.clone()),
        Pooling::Avg {
            window: wa.clone(),
            count_include_pad: false,
            divisor_override: None,
        },
        Pooling::Avg {
            window: wa,
            count_include_pad: true,
            divisor_override: Some(divisor_override),
        },
    ]
}

/// Whether the fast forward gives the reference's bits on data (of `seed`, no specials) with
/// `special` at flat input position `at`.
fn same_with_special_at<T: Element>(plan: &PoolPlan, seed: u64, at: usize, special: f64) -> bool {
    let mut x: Vec<T> = data(plan.input_len(), seed, false);
    x[at] = T::from_f64(special);
    let mut fast = vec![T::default(); plan.output_len()];
    let mut reference = vec![T::default(); plan.output_len()];
    plan.forward(&x, &mut fast, None).unwrap();
    plan.forward_reference(&x, &mut reference, None).unwrap();
    same_bits(&fast, &reference)
}

/// Puts a NaN, then +inf, at each of the `w` columns of rows 1 and 2 in turn (`at(row, col)`:
/// its flat position in the input) and checks the fast forward against the reference, bit
/// for bit: every kernel that checks its own loads for NaN must see each column.
fn special_in_every_column<T: Element>(
    plan: &PoolPlan,
    w: usize,
    seed: u64,
    at: impl Fn(usize, usize) -> usize,
    what: &str,
) {
    for special in [f64::NAN, f64::INFINITY] {
        for row in [1, 2] {
            for col in 0..w {
                assert!(
                    same_with_special_at::<T>(plan, seed, at(row, col), special),
                    "{what}: {special} at row {row} column {col}"
                );
            }
        }
    }
}

/// The shape of a batch of 2 samples of `c` channels and `n` values along each of `rank`
/// axes, in `layout`.
fn batch_shape(layout: Layout, rank: usize, n: usize, c: usize) -> Vec<usize> {
    let mut shape = vec![2];
    if layout == Layout::ChannelsFirst {
        shape.push(c);
    }
    shape.extend(std::iter::repeat_n(n, rank));
    if layout == Layout::ChannelsLast {
        shape.push(c);
    }
    shape
}

fn sweep<T: Element>(rank: usize, sizes: &[usize], channels: &[usize]) {
    let mut seed = 1;
    for &n in sizes {
        for &c in channels {
            for (k, s, p, d) in [
                (1, 1, 0, 1),
                (2, 2, 0, 1),
                (3, 2, 1, 1),
                (3, 1, 1, 1),
                (5, 1, 2, 1),
                (2, 1, 1, 2),
                (3, 3, 1, 2),
                (4, 3, 2, 1),
                (4, 1, 2, 1),
                (7, 2, 3, 1),
            ] {
                for ceil in [false, true] {
                    for op in ops_for(rank, k, s, p, d, ceil) {
                        for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
                            seed += 1;
                            check::<T>(&op, &batch_shape(layout, rank, n, c), layout, seed);
                        }
                    }
                }
            }
            for out in [1, 2, 3, n.saturating_sub(1).max(1), n + 2] {
                let outs = vec![out; rank];
                for op in [
                    Pooling::adaptive_max(&outs),
                    Pooling::adaptive_avg(&outs),
                    Pooling::GlobalMax { rank },
                    Pooling::GlobalAvg { rank },
                ] {
                    for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
                        seed += 1;
                        check::<T>(&op, &batch_shape(layout, rank, n, c), layout, seed);
                    }
                }
            }
        }
    }
}

/// Windows wider than the fused kernels' (8 to 33 taps: YOLO's SPP 9 and 13, large stride-1
/// windows), 2-D planes around the 16-lane vector widths, both layouts: every path must take
/// them or leave them to another, never fail (a wide window once tripped an assertion of the
/// direct W pass, which takes at most 16 taps).
fn wide_windows<T: Element>(rank: usize, sizes: &[usize], channels: &[usize]) {
    let mut seed = 7;
    for &n in sizes {
        for &c in channels {
            for (k, s, p, d) in [
                (8, 1, 4, 1),
                (9, 1, 4, 1),
                (13, 1, 6, 1),
                (16, 2, 8, 1),
                (17, 1, 8, 1),
                (17, 3, 0, 1),
                (31, 1, 15, 1),
                (33, 2, 16, 1),
                (9, 1, 8, 2),
            ] {
                for op in ops_for(rank, k, s, p, d, false) {
                    for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
                        seed += 1;
                        check::<T>(&op, &batch_shape(layout, rank, n, c), layout, seed);
                    }
                }
            }
        }
    }
}

// (the reference takes every tap of every window: a debug build sweeps fewer shapes)
#[test]
fn f32_wide_windows() {
    if cfg!(debug_assertions) {
        wide_windows::<f32>(2, &[20], &[3]);
        return;
    }
    wide_windows::<f32>(2, &[1, 20, 40], &[1, 17]);
    wide_windows::<f32>(2, &[33], &[3]);
    wide_windows::<f32>(1, &[20, 70, 200], &[3, 17]);
    wide_windows::<f32>(3, &[11], &[3]);
}

/// Channels-first stride-1 windows of 8 taps and more along H or W (with AVX-512,
/// `x86::wide_s1_strip`: doubling runs along W, van Herk blocks along H), in f32 and f64
/// (`lanes` per vector): widths around the runs' reach past a strip (one and two vectors),
/// heights around its block limit (64 rows), rectangular windows, symmetric and asymmetric
/// pads, rows of several strips; NaN and +inf in every column of a plane.
fn wide_stride_1_channels_first<T: Element>(lanes: usize) {
    let mut seed = 300;
    let widths = [
        1,
        3,
        8,
        9,
        lanes,
        lanes + 1,
        lanes + 2,
        2 * lanes + 1,
        2 * lanes + 2,
    ];
    let heights: &[usize] = if cfg!(debug_assertions) {
        &[1, 9]
    } else {
        &[1, 2, 9, 17]
    };
    let mut cases = Vec::new();
    for &kw in &widths {
        for &kh in heights {
            if kh.max(kw) >= 8 {
                cases.push(([kh, kw], [kh / 2, kw / 2], [kh / 2, kw / 2], [23, 75]));
                cases.push(([kh, kw], [kh - 1, kw / 3], [0, kw - 1], [11, 40]));
            }
        }
    }
    if !cfg!(debug_assertions) {
        for kh in [63, 64, 65] {
            cases.push(([kh, 9], [kh / 2, 4], [kh / 2, 4], [70, 20]));
            cases.push(([kh, 1], [0, 0], [0, 0], [130, 9]));
        }
    }
    for (k, begin, end, [h, w]) in cases {
        let win = Window::new(&k).stride(&[1, 1]).pads(&begin, &end);
        let shape = [2, 3, h, w];
        assert!(PoolPlan::new(&Pooling::max(win.clone()), &shape, Layout::ChannelsFirst).is_ok());
        let avg = |count_include_pad, divisor_override| Pooling::Avg {
            window: win.clone(),
            count_include_pad,
            divisor_override,
        };
        for op in [
            Pooling::max(win.clone()),
            avg(true, None),
            avg(false, None),
            avg(true, Some(-3)),
        ] {
            seed += 1;
            check::<T>(&op, &shape, Layout::ChannelsFirst, seed);
        }
    }
    for (k, begin, end, w) in [
        ([9, 9], [4, 4], [4, 4], 40),
        ([9, 17], [4, 8], [4, 8], 21),
        ([12, 3], [11, 0], [0, 2], 2 * lanes + 5),
    ] {
        let win = Window::new(&k).stride(&[1, 1]).pads(&begin, &end);
        let plan =
            PoolPlan::new(&Pooling::max(win), &[1, 2, 12, w], Layout::ChannelsFirst).unwrap();
        // channel 1
        let at = |row, col| 12 * w + row * w + col;
        special_in_every_column::<T>(&plan, w, 98, at, &format!("{k:?} w {w}"));
    }
}

/// A single channels-last image with a wide stride-1 window (`running.rs`): its rows' W
/// passes and its lanes' H passes split over the threads, then gathered; the same bits as
/// one thread (`check` compares 1, 2 and 3 threads), and as the reference.
#[test]
fn wide_windows_single_image_channels_last() {
    let mut seed = 500;
    for (k, begin, end, [h, w, c]) in [
        ([9, 9], [4, 4], [4, 4], [20, 20, 96]),
        ([13, 13], [6, 6], [6, 6], [19, 21, 100]),
        ([8, 8], [0, 0], [0, 0], [40, 40, 24]),
        ([3, 17], [1, 0], [2, 16], [33, 30, 40]),
    ] {
        let win = Window::new(&k).stride(&[1, 1]).pads(&begin, &end);
        for op in ops_of(win.clone(), win, -3) {
            seed += 1;
            assert!(h * w * c >= 1 << 15, "large enough to split");
            check::<f32>(&op, &[1, h, w, c], Layout::ChannelsLast, seed);
            check::<f64>(&op, &[1, h, w, c], Layout::ChannelsLast, seed);
        }
    }
}

#[test]
fn f32_wide_stride_1_channels_first() {
    wide_stride_1_channels_first::<f32>(16);
}

#[test]
fn f64_wide_stride_1_channels_first() {
    wide_stride_1_channels_first::<f64>(8);
}

#[test]
fn f64_f16_wide_windows() {
    let sizes: &[usize] = if cfg!(debug_assertions) {
        &[20]
    } else {
        &[20, 33]
    };
    wide_windows::<f64>(2, sizes, &[3, 17]);
    wide_windows::<f16>(2, sizes, &[17]);
}

#[test]
fn f32_1d_around_tiles() {
    sweep::<f32>(1, &[1, 2, 7, 15, 16, 17, 33, 64, 65], &[1, 3, 16, 17]);
}

#[test]
fn f32_2d_around_tiles() {
    // 8 channels: the AVX2 channels-last kernels (multiples of 8) with one vector per pixel
    sweep::<f32>(2, &[1, 2, 5, 16, 17, 31, 40], &[1, 5, 8, 16]);
}

#[test]
fn f32_3d() {
    sweep::<f32>(3, &[1, 3, 6, 9], &[2, 7, 8]);
}

#[test]
fn f64_f16_bf16() {
    sweep::<f64>(2, &[3, 17], &[1, 9]);
    // (3-D: channels-first volumes whose planes take the fused 3×3 stride-2 kernel)
    sweep::<f64>(3, &[6, 9], &[2]);
    sweep::<f16>(2, &[3, 17], &[1, 9]);
    sweep::<bf16>(2, &[5, 16], &[2, 16]);
}

#[test]
fn channels_last_f64_windows_from_their_taps() {
    // f64 with AVX-512 folds each channels-last window from its taps, 8 channels a vector
    // (16 channels and more; a masked tail), each input row checked for NaN and ±inf once;
    // a stride-1 average backward is a sum pool of the output gradient there. Channel
    // counts around the vectors, windows with padding, dilation, ceil mode, 2-D and 3-D.
    let mut seed = 15000;
    for c in [8, 16, 17, 24, 35, 64] {
        for (rank, n) in [(2, 9), (2, 14), (3, 6)] {
            for (k, s, p, d, ceil) in [
                (3, 2, 1, 1, false),
                (3, 1, 1, 1, false),
                (2, 2, 0, 1, true),
                (3, 2, 0, 1, true),
                (2, 1, 1, 2, false),
                (2, 1, 0, 1, false),
            ] {
                let mut shape = vec![2];
                shape.extend(std::iter::repeat_n(n, rank));
                shape.push(c);
                for op in ops_for(rank, k, s, p, d, ceil) {
                    seed += 1;
                    check::<f64>(&op, &shape, Layout::ChannelsLast, seed);
                }
            }
        }
    }
    // a NaN or an infinity in any input row: the rows that read it fold by the exact rule
    let plan = PoolPlan::new(
        &Pooling::max(cube_window(2, (3, 2, 1, 1, false))),
        &[1, 7, 9, 17],
        Layout::ChannelsLast,
    )
    .unwrap();
    for special in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for pixel in 0..7 * 9 {
            assert!(
                same_with_special_at::<f64>(&plan, 41, pixel * 17 + 16, special),
                "{special} at pixel {pixel}"
            );
        }
    }
}

#[test]
fn large_problems_split_over_threads() {
    // big enough for the parallel split (rows of one plane/sample spread over tasks)
    for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
        let shape = match layout {
            Layout::ChannelsFirst => vec![2, 24, 57, 61],
            Layout::ChannelsLast => vec![2, 57, 61, 24],
        };
        for op in ops_for(2, 3, 2, 1, 1, true)
            .into_iter()
            .chain(ops_for(2, 5, 1, 2, 1, false))
        {
            check::<f32>(&op, &shape, layout, 7);
        }
        let shape3 = match layout {
            Layout::ChannelsFirst => vec![1, 8, 9, 30, 30],
            Layout::ChannelsLast => vec![1, 9, 30, 30, 8],
        };
        for op in ops_for(3, 3, 2, 1, 1, false) {
            check::<f32>(&op, &shape3, layout, 9);
            // (channels-first f64 folds its pooled planes along the depth in 8-lane vectors)
            check::<f64>(&op, &shape3, layout, 9);
        }
        // channels-last with 16 or more channels: the 3×3 stride-2 kernel's output slices
        // (each task pools its first window's slices again), strides 1–3 in depth
        let shape3 = match layout {
            Layout::ChannelsFirst => vec![2, 17, 11, 30, 27],
            Layout::ChannelsLast => vec![2, 11, 30, 27, 17],
        };
        for (sd, pd) in [(2, 1), (1, 1), (3, 0)] {
            let win = Window::new(&[3, 3, 3])
                .stride(&[sd, 2, 2])
                .padding(&[pd, 1, 1]);
            check::<f32>(&Pooling::max(win.clone()), &shape3, layout, 10);
            check::<f64>(&Pooling::max(win), &shape3, layout, 10);
        }
        // one output slice per sample from a depth window of two slices
        let shape3 = match layout {
            Layout::ChannelsFirst => vec![2, 20, 2, 64, 70],
            Layout::ChannelsLast => vec![2, 2, 64, 70, 20],
        };
        let win = Window::new(&[2, 3, 3])
            .stride(&[2, 2, 2])
            .padding(&[0, 1, 1]);
        check::<f32>(&Pooling::max(win), &shape3, layout, 11);
    }
}

#[test]
fn inputs_large_enough_to_prefetch() {
    // the streaming 3×3 stride-2 kernels prefetch inputs of 16 MiB and more: the same bits as
    // the reference on one, 2-D and 3-D, both layouts, one and two threads
    let win2 = Window::new(&[3, 3]).stride(&[2, 2]).padding(&[1, 1]);
    let win3 = Window::new(&[3, 3, 3])
        .stride(&[2, 2, 2])
        .padding(&[1, 1, 1]);
    let problems = [
        (win2.clone(), vec![1, 64, 256, 257], Layout::ChannelsFirst),
        (win2, vec![1, 256, 257, 64], Layout::ChannelsLast),
        (
            win3.clone(),
            vec![1, 16, 17, 128, 127],
            Layout::ChannelsFirst,
        ),
        (win3, vec![1, 17, 128, 127, 16], Layout::ChannelsLast),
    ];
    for (win, shape, layout) in problems {
        let plan = PoolPlan::new(&Pooling::max(win), &shape, layout).unwrap();
        assert!(plan.input_len() * 4 >= 16 << 20);
        let x: Vec<f32> = data(plan.input_len(), 5, true);
        let mut reference = vec![0f32; plan.output_len()];
        plan.forward_reference(&x, &mut reference, None).unwrap();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let fast = pool.install(|| plan.forward_to_vec(&x)).unwrap();
            assert!(
                same_bits(&fast, &reference),
                "{shape:?} {layout:?}, {threads} threads"
            );
        }
    }
}

/// 2×2 stride-2 windows on inputs of 16 MiB and more, which the kernels prefetch
/// (channels-first's W pass, channels-last's rows) and, with whole vectors per pixel
/// (channels-last) or per output row (channels-first, in one pass), stream to the output
/// along its cache lines (the part lines at a run's ends stored as usual): the reference's
/// bits, max (NaN and ±inf in the data) and average,
/// allocating and into a caller's buffer at every offset from a cache line, f32 and f64, one
/// and two threads, rows of one output pixel (one vector, and many) and channel counts that
/// are not whole vectors, channels-first rows of one vector at most.
#[test]
fn two_by_two_windows_large_enough_to_prefetch_and_stream() {
    fn run<T: Element>(shape: &[usize], layout: Layout) {
        let win = Window::new(&[2, 2]).stride(&[2, 2]);
        for op in [Pooling::max(win.clone()), Pooling::avg(win.clone())] {
            let plan = PoolPlan::new(&op, shape, layout).unwrap();
            assert!(plan.input_len() * size_of::<T>() >= 16 << 20);
            let x: Vec<T> = data(plan.input_len(), 31, true);
            let mut want = vec![T::default(); plan.output_len()];
            plan.forward_reference(&x, &mut want, None).unwrap();
            let per_line = 64 / size_of::<T>();
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let desc = format!("{op:?} {shape:?} {layout:?} {:?} {threads}", T::DTYPE);
                let fresh = pool.install(|| plan.forward_to_vec(&x)).unwrap();
                assert!(same_bits(&fresh, &want), "{desc} allocating");
                let mut buf = vec![T::from_f64(f64::NAN); plan.output_len() + 2 * per_line];
                let line = buf.as_ptr().align_offset(64);
                for offset in [0, 1, per_line / 2, per_line - 1] {
                    let at = line + offset;
                    let out = &mut buf[at..at + plan.output_len()];
                    pool.install(|| plan.forward(&x, out, None)).unwrap();
                    assert!(same_bits(out, &want), "{desc} offset {offset}");
                }
            }
        }
    }
    run::<f32>(&[1, 130, 132, 256], Layout::ChannelsLast);
    run::<f32>(&[1, 300, 356, 40], Layout::ChannelsLast);
    run::<f32>(&[1, 8200, 3, 256], Layout::ChannelsLast);
    run::<f32>(&[1, 140000, 2, 16], Layout::ChannelsLast);
    run::<f64>(&[1, 200, 220, 48], Layout::ChannelsLast);
    run::<f32>(&[1, 64, 256, 258], Layout::ChannelsFirst);
    run::<f32>(&[1, 64, 256, 256], Layout::ChannelsFirst);
    run::<f64>(&[1, 32, 256, 256], Layout::ChannelsFirst);
    // rows of one vector at most (one pass, two row pairs at a time), an odd count of them
    run::<f32>(&[1, 21401, 14, 14], Layout::ChannelsFirst);
    run::<f64>(&[1, 131073, 2, 8], Layout::ChannelsFirst);
    // rows of less than two vectors, row pair by row pair, prefetched
    run::<f32>(&[1, 87382, 2, 24], Layout::ChannelsFirst);
}

/// Found by the `pool_problem` fuzzer: windows that hold only padding (ONNX pads larger than
/// the kernel) report PyTorch's out-of-window index; backward must agree with the reference.
#[test]
fn padding_only_windows_backward_matches_the_reference() {
    let op = Pooling::max(Window::new(&[1]).stride(&[3]).pads(&[1], &[3]));
    let plan = PoolPlan::new(&op, &[3, 9], Layout::ChannelsFirst).unwrap();
    let x: Vec<f32> = (0..27).map(|i| (i % 9) as f32 - 4.0).collect();
    let gy: Vec<f32> = (0..plan.output_len()).map(|k| (k % 5) as f32).collect();
    let mut g = vec![0f32; plan.input_len()];
    let mut gr = vec![0f32; plan.input_len()];
    plan.backward(&x, &gy, &mut g).unwrap();
    plan.backward_reference(&x, &gy, &mut gr).unwrap();
    assert_eq!(g, gr);
}

#[test]
fn one_two_and_three_planes_through_the_plane_pipeline() {
    // the channels-first small-plane path runs its planes as a three-stage pipeline: check
    // the counts where its prologue and epilogue overlap
    let mut seed = 900;
    for planes in [1, 2, 3, 5] {
        for (k, s, p) in [(3, 1, 1), (2, 2, 0), (3, 2, 1)] {
            for op in ops_for(2, k, s, p, 1, false) {
                seed += 1;
                check::<f32>(&op, &[1, planes, 9, 11], Layout::ChannelsFirst, seed);
                check::<f64>(&op, &[planes, 1, 9, 11], Layout::ChannelsFirst, seed);
            }
        }
    }
}

/// Channels-first planes whose last rows' loads read past the plane into the next one (the
/// 3×3 stride-2 kernels read past a row's end, their padding blended in): +inf, −inf and NaN
/// in the next plane's first values must not reach the plane's outputs, in 2-D planes and in
/// the slices of 3-D volumes.
#[test]
fn loads_past_a_plane_into_the_next_leave_its_values_out() {
    for (k, s, p, ceil) in [
        (3, 2, 0, false),
        (3, 2, 1, false),
        (3, 2, 0, true),
        (3, 2, 1, true),
    ] {
        for (h, w) in [(9, 9), (11, 17), (13, 55), (10, 56), (7, 33)] {
            for special in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
                for depth in [None, Some(4)] {
                    let win = |rank: usize| {
                        Window::new(&vec![k; rank])
                            .stride(&vec![s; rank])
                            .padding(&vec![p; rank])
                            .ceil_mode(ceil)
                    };
                    let (op, shape) = match depth {
                        None => (Pooling::max(win(2)), vec![2, 3, h, w]),
                        Some(d) => (Pooling::max(win(3)), vec![2, 2, d, h, w]),
                    };
                    let Ok(plan) = PoolPlan::new(&op, &shape, Layout::ChannelsFirst) else {
                        continue;
                    };
                    let mut x = data::<f32>(plan.input_len(), (h * w) as u64, false);
                    // every plane after the first starts with a row and a bit of `special`
                    for start in (h * w..x.len()).step_by(h * w) {
                        x[start..start + w + 8].fill(special);
                    }
                    let (want, _) = reference_forward(&plan, &x, false);
                    let mut got = vec![0f32; plan.output_len()];
                    plan.forward(&x, &mut got, None).unwrap();
                    assert!(
                        same_bits(&got, &want),
                        "{} special {special}",
                        problem_desc(&op, &shape, Layout::ChannelsFirst)
                    );
                }
            }
        }
    }
}

/// A NaN read only by the border windows of a channels-last row (padding or a ceil-mode
/// overhang leaves border columns that the interior row kernels never load): the border
/// windows must still fold it by the exact rule.
#[test]
fn nan_only_in_border_columns_channels_last() {
    for (k, s, p, ceil) in [
        (2, 2, 1, false),
        (2, 2, 0, true),
        (3, 2, 1, false),
        (3, 1, 1, false),
    ] {
        let c = 16;
        for (h, w) in [(6, 7), (8, 8), (9, 9)] {
            for col in [0, w - 1] {
                let win = Window::new(&[k, k])
                    .stride(&[s, s])
                    .padding(&[p, p])
                    .ceil_mode(ceil);
                let op = Pooling::max(win);
                let Ok(plan) = PoolPlan::new(&op, &[1, h, w, c], Layout::ChannelsLast) else {
                    continue;
                };
                let mut x = vec![1f32; plan.input_len()];
                for row in 0..h {
                    x[(row * w + col) * c + 3] = f32::NAN;
                }
                let mut fast = vec![0f32; plan.output_len()];
                let mut reference = vec![0f32; plan.output_len()];
                plan.forward(&x, &mut fast, None).unwrap();
                plan.forward_reference(&x, &mut reference, None).unwrap();
                let same = fast
                    .iter()
                    .zip(&reference)
                    .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
                assert!(
                    same,
                    "k {k} s {s} p {p} ceil {ceil} {h}x{w} NaN in column {col}"
                );
            }
        }
    }
}

#[test]
fn channels_last_separable_stride_1() {
    separable_stride_1::<f32>();
}

#[test]
fn channels_last_separable_stride_1_f64() {
    // f64 takes the same passes with AVX-512, 8 channels a vector: the channel counts below
    // are 2–10 of those vectors, and between
    separable_stride_1::<f64>();
}

fn separable_stride_1<T: Element>() {
    // windows of more than 9 taps at stride 1 take the separable passes (a W pass per input
    // row into a ring, then the H fold; border columns from their in-bounds taps): square and
    // oblong windows, no padding up to half the window, ceil mode, channel counts of 1–5
    // vectors and between (a row's last vector masked), 2 samples (the ring's rows are per sample); `check` also runs the average
    // backward, a transposed sum pool at stride 1 in channels-last (one divisor for all
    // windows: the sum pool divides; several: the output gradient is divided first)
    let mut seed = 9000;
    for (kh, kw) in [(5, 5), (7, 7), (4, 4), (2, 7), (7, 2), (3, 5), (6, 3)] {
        for c in [16, 17, 24, 48, 80] {
            for (h, w) in [(7, 7), (9, 12), (13, 10)] {
                for (ph, pw) in [(0, 0), (kh / 2, kw / 2), (kh / 2, 0)] {
                    for ceil in [false, true] {
                        let win = Window::new(&[kh, kw])
                            .stride(&[1, 1])
                            .padding(&[ph, pw])
                            .ceil_mode(ceil);
                        for op in ops_of(win.clone(), win, 7) {
                            seed += 1;
                            check::<T>(&op, &[2, h, w, c], Layout::ChannelsLast, seed);
                        }
                    }
                }
            }
        }
    }
    // ONNX's asymmetric pads (forward, and the average backward as a transposed sum pool)
    for (k, begin, end) in [
        ([3, 3], [0, 2], [2, 1]),
        ([5, 4], [4, 0], [1, 3]),
        ([2, 6], [1, 5], [0, 0]),
    ] {
        let win = Window::new(&k).stride(&[1, 1]).pads(&begin, &end);
        for count_include_pad in [true, false] {
            let op = Pooling::Avg {
                window: win.clone(),
                count_include_pad,
                divisor_override: None,
            };
            seed += 1;
            check::<T>(&op, &[2, 8, 11, 32], Layout::ChannelsLast, seed);
        }
        seed += 1;
        check::<T>(
            &Pooling::max(win),
            &[2, 8, 11, 32],
            Layout::ChannelsLast,
            seed,
        );
    }
    // one NaN (or infinity) anywhere: the rows holding it take the exact rule
    let (h, w) = (9, 12);
    for (k, p, c) in [(5, 0, 32), (5, 2, 32), (7, 3, 32), (5, 2, 24)] {
        let win = Window::new(&[k, k]).stride(&[1, 1]).padding(&[p, p]);
        let plan = PoolPlan::new(&Pooling::max(win), &[1, h, w, c], Layout::ChannelsLast).unwrap();
        let at = |row, col| (row * w + col) * c + 17;
        special_in_every_column::<T>(&plan, w, 97, at, &format!("k {k} p {p} c {c}"));
    }
    // blocks of k output rows (the ring's 2k − 1 rows folded together) and blocks of k output
    // columns (their 2k − 1 pixels), the border columns' running folds: a NaN or −inf at
    // every pixel, in a middle channel and in the masked last vector
    // (widths: the last block ending at the row's end, or followed by single columns)
    let h = 17;
    for (k, p, c, w) in [
        (5, 2, 32, 20),
        (7, 3, 24, 20),
        (5, 0, 16, 19),
        (6, 2, 17, 16),
    ] {
        let win = Window::new(&[k, k]).stride(&[1, 1]).padding(&[p, p]);
        let plan = PoolPlan::new(&Pooling::max(win), &[1, h, w, c], Layout::ChannelsLast).unwrap();
        for special in [f64::NAN, f64::NEG_INFINITY] {
            for (row, col) in (0..h).flat_map(|row| (0..w).map(move |col| (row, col))) {
                let at = (row * w + col) * c + (row + col) % c;
                assert!(
                    same_with_special_at::<T>(&plan, 98, at, special),
                    "k {k} p {p} c {c}: {special} at row {row} column {col}"
                );
            }
        }
    }
}

#[test]
fn channels_last_3x3_column_tiles() {
    // many channels: the 3×3 kernel runs the columns in tiles of a few (3 for 96 channels at
    // stride 2), every tile checking its own loads for NaN
    let mut seed = 7000;
    for c in [40, 96, 130] {
        for (h, w) in [(5, 9), (6, 20), (7, 33)] {
            for (s, p) in [(1, 0), (1, 1), (2, 0), (2, 1)] {
                let win = Window::new(&[3, 3]).stride(&[s, s]).padding(&[p, p]);
                for op in [Pooling::max(win.clone()), Pooling::avg(win)] {
                    seed += 1;
                    check::<f32>(&op, &[1, h, w, c], Layout::ChannelsLast, seed);
                }
            }
        }
    }
    // one NaN (or infinity) anywhere: each tile's check must see it
    let (h, w, c) = (6, 20, 96);
    for (s, p) in [(1, 0), (1, 1), (2, 0), (2, 1)] {
        let win = Window::new(&[3, 3]).stride(&[s, s]).padding(&[p, p]);
        let plan = PoolPlan::new(&Pooling::max(win), &[1, h, w, c], Layout::ChannelsLast).unwrap();
        let at = |row, col| (row * w + col) * c + 50;
        special_in_every_column::<f32>(&plan, w, 99, at, &format!("s {s} p {p}"));
    }
}

#[test]
fn channels_last_3x3_stride_2_shared_rows() {
    stride_2_shared_rows::<f32>();
}

#[test]
fn channels_last_3x3_stride_2_shared_rows_f64() {
    // f64 takes the same kernel with AVX-512 (from 16 channels on), 8 channels a vector
    stride_2_shared_rows::<f64>();
}

fn stride_2_shared_rows<T: Element>() {
    // 3×3 at stride 2 runs one output row at a time, each input row folded along W once: the
    // last input row of one output row is the first of the next, its fold carried over (not
    // across samples or thread tasks). Heights odd and even (the last window 2 or 3 rows
    // deep), padding, ceil mode, channel counts of whole vectors and between (one to five
    // vectors), 2 samples.
    let mut seed = 11000;
    for c in [8, 16, 24, 40, 64, 80] {
        for (h, w) in [(3, 3), (5, 9), (8, 8), (9, 7), (12, 5)] {
            for p in [0, 1] {
                for ceil in [false, true] {
                    let win = Window::new(&[3, 3])
                        .stride(&[2, 2])
                        .padding(&[p, p])
                        .ceil_mode(ceil);
                    for op in ops_of(win.clone(), win, 5) {
                        seed += 1;
                        check::<T>(&op, &[2, h, w, c], Layout::ChannelsLast, seed);
                    }
                }
            }
        }
    }
    // one NaN (or infinity) in any row and column: in the row shared by two output rows, the
    // fold carried over must hold it
    for (h, w, c, p) in [(9, 7, 24, 1), (8, 8, 16, 0), (7, 9, 64, 1), (7, 8, 80, 0)] {
        let win = Window::new(&[3, 3]).stride(&[2, 2]).padding(&[p, p]);
        let plan = PoolPlan::new(&Pooling::max(win), &[2, h, w, c], Layout::ChannelsLast).unwrap();
        for special in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for sample in 0..2 {
                for row in 0..h {
                    for col in 0..w {
                        let at = ((sample * h + row) * w + col) * c + c - 3;
                        assert!(
                            same_with_special_at::<T>(&plan, 77, at, special),
                            "{h}x{w}x{c} p {p}: {special} at sample {sample} row {row} column {col}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn channels_last_3x3_stride_2_depth_windows() {
    stride_2_depth_windows::<f32>();
}

#[test]
fn channels_last_3x3_stride_2_depth_windows_f64() {
    // f64 takes the same kernel with AVX-512, 8 channels a vector
    stride_2_depth_windows::<f64>();
}

/// Depth windows (size, stride, padding) for the 3-D max tests: 1–3 slices, strides 1–3.
const DEPTH_WINDOWS: [(usize, usize, usize); 6] = [
    (3, 2, 1),
    (3, 2, 0),
    (2, 2, 0),
    (3, 1, 1),
    (1, 1, 0),
    (3, 3, 1),
];

/// A 3-D window of `depth` (size, stride, padding) and 3×3 at stride 2, padded by 1, on H and W.
fn depth_window((kd, sd, pd): (usize, usize, usize), ceil: bool) -> Window {
    Window::new(&[kd, 3, 3])
        .stride(&[sd, 2, 2])
        .padding(&[pd, 1, 1])
        .ceil_mode(ceil)
}

/// Only +0, −0 and −1: max windows whose maxima are zeros of either sign, so that the order a
/// kernel folds in shows (the earliest of equal values wins).
fn signed_zeros<T: Element>(len: usize, seed: u64) -> Vec<T> {
    data::<f32>(len, seed, false)
        .into_iter()
        .map(|v| T::from_f64([0.0, -0.0, -1.0][(v.to_bits() % 3) as usize]))
        .collect()
}

fn stride_2_depth_windows<T: Element>() {
    // 3-D max with 3×3 stride 2 on H and W: each slice of the depth window pooled in 2-D,
    // then the slices folded; the last slice's pooled rows carried to the next output slice
    // (depth windows of 1–3 slices, strides 1–3, padding, ceil mode, odd and even depths,
    // 2 samples, thread tasks of several output slices)
    let mut seed = 12000;
    for (kd, sd, pd) in DEPTH_WINDOWS {
        for (d, h, w) in [(5, 7, 9), (6, 8, 5), (1, 3, 3)] {
            for c in [16, 24] {
                for ceil in [false, true] {
                    let win = depth_window((kd, sd, pd), ceil);
                    seed += 1;
                    check::<T>(
                        &Pooling::max(win),
                        &[2, d, h, w, c],
                        Layout::ChannelsLast,
                        seed,
                    );
                }
            }
        }
    }
    // only +0, -0 and -1: the window maxima are zeros of either sign, so the order the slices
    // are folded in shows (the earliest of equal values wins)
    for (kd, sd, pd) in [(3, 2, 1), (3, 3, 1), (2, 2, 0), (3, 1, 1)] {
        let win = depth_window((kd, sd, pd), false);
        let plan =
            PoolPlan::new(&Pooling::max(win), &[2, 7, 9, 8, 16], Layout::ChannelsLast).unwrap();
        let x: Vec<T> = signed_zeros(plan.input_len(), 91);
        let mut fast = vec![T::default(); plan.output_len()];
        let mut reference = vec![T::default(); plan.output_len()];
        plan.forward(&x, &mut fast, None).unwrap();
        plan.forward_reference(&x, &mut reference, None).unwrap();
        assert!(
            same_bits(&fast, &reference),
            "±0 ties, depth {kd}/{sd}/{pd}"
        );
    }
    // one NaN (or infinity) at any position: in a slice or row whose folds are carried over,
    // the carried folds must hold it
    let (d, h, w, c) = (5, 5, 5, 16);
    let win = Window::new(&[3, 3, 3])
        .stride(&[2, 2, 2])
        .padding(&[1, 1, 1]);
    let plan = PoolPlan::new(&Pooling::max(win), &[1, d, h, w, c], Layout::ChannelsLast).unwrap();
    for special in [f64::NAN, f64::NEG_INFINITY] {
        for at in 0..d * h * w {
            assert!(
                same_with_special_at::<T>(&plan, 78, at * c + 5, special),
                "{special} at pixel {at}"
            );
        }
    }
}

#[test]
fn channels_first_3x3_strips() {
    strips::<f32>();
}

#[test]
fn channels_first_3x3_strips_f64() {
    // f64 takes the same kernels with AVX-512, in vectors of 8 (strips of 32 columns, 7×7
    // 16): the widths below lie around those too
    strips::<f64>();
}

fn strips<T: Element>() {
    // the fused 2×2, 3×3, 5×5 and 7×7 kernels (3×3 stride 2: max and averages; stride 1: max,
    // averages and their backward; max with indices: 2×2 and 3×3 at stride 2 too) run strips of up to 4 output vectors (64 columns; 7×7: 2; AVX2:
    // 8-column vectors, strips of 32 columns): widths around 1–4 vectors and
    // several strips, no padding and half the window, ceil mode
    let mut seed = 8000;
    for w in [
        1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 34, 40, 41, 63, 64, 65, 66, 95,
        96, 97, 127, 128, 129, 130, 131, 160, 191, 192, 193, 255, 256, 257,
    ] {
        for h in [1, 2, 3, 6, 7] {
            for p in [0, 1] {
                for ceil in [false, true] {
                    for (k, stride, p) in [
                        (2, 1, p),
                        (2, 2, p),
                        (3, 1, p),
                        (3, 2, p),
                        (5, 1, 2 * p),
                        (7, 1, 3 * p),
                    ] {
                        let win = Window::new(&[k, k])
                            .stride(&[stride, stride])
                            .padding(&[p, p])
                            .ceil_mode(ceil);
                        // max, and averages by the three divisor rules (stride 1: their
                        // backward is a stride-1 sum)
                        let mut ops = vec![Pooling::max(win)];
                        ops.extend(ops_for(2, k, stride, p, 1, ceil).into_iter().skip(1));
                        for op in ops {
                            seed += 1;
                            check::<T>(&op, &[1, 2, h, w], Layout::ChannelsFirst, seed);
                        }
                    }
                }
            }
        }
    }
    // ONNX's asymmetric pads on the 3×3 stride-2 kernel: the windows past the row's end or
    // below the plane read padding (zeros in a sum) beyond what the padding before implies
    // and on the 2×2 stride-1 kernel (YOLOv3-tiny's SAME_UPPER pooling: one column and row of
    // padding after), and on the stride-1 3×3 and 5×5 ones
    let asymmetric = [
        (3, 2, [0, 1], [2, 2]),
        (3, 2, [1, 0], [0, 2]),
        (3, 2, [2, 1], [1, 0]),
        (3, 2, [0, 0], [1, 1]),
        (2, 1, [0, 0], [1, 1]),
        (2, 1, [1, 1], [0, 0]),
        (2, 1, [0, 1], [1, 0]),
        // stride-1 3×3 and 5×5 with padding after only, or more after than before: the last
        // vector's taps cross the row's end where no left padding implies it (the AVX2
        // kernel then reads every row through its padded line)
        (3, 1, [0, 0], [1, 1]),
        (3, 1, [1, 1], [0, 0]),
        (3, 1, [1, 0], [1, 2]),
        (5, 1, [0, 0], [2, 2]),
        (5, 1, [2, 2], [0, 1]),
        (5, 1, [1, 0], [1, 3]),
    ];
    for (k, stride, begin, end) in asymmetric {
        let win = Window::new(&[k, k])
            .stride(&[stride, stride])
            .pads(&begin, &end);
        for w in [17, 33, 66, 129] {
            let mut ops = vec![Pooling::max(win.clone())];
            for count_include_pad in [true, false] {
                ops.push(Pooling::Avg {
                    window: win.clone(),
                    count_include_pad,
                    divisor_override: None,
                });
            }
            for op in ops {
                seed += 1;
                check::<T>(&op, &[2, 3, 9, w], Layout::ChannelsFirst, seed);
            }
        }
    }
    // one NaN (or infinity) in any column: the strip that reads it must see it, including the
    // last column, read only by the last strip's phase after it (width 33 and 129, padding 0);
    // 3×3 stride 2 on 23 and 56 columns: the edge vectors of the inner rows read past the
    // row's ends and blend the padding in, before their NaN check
    for (h, w, k, stride) in [
        (5, 33, 3, 2),
        (5, 129, 3, 2),
        (4, 130, 3, 2),
        (7, 23, 3, 2),
        (8, 56, 3, 2),
        (4, 18, 3, 1),
        (3, 66, 3, 1),
        (6, 20, 5, 1),
        (5, 68, 5, 1),
        (8, 35, 7, 1),
        (4, 9, 3, 1),
        (6, 17, 5, 1),
        (8, 19, 7, 1),
        (4, 18, 2, 1),
        (3, 33, 2, 1),
    ] {
        for p in [0, k / 2] {
            let win = Window::new(&[k, k])
                .stride(&[stride, stride])
                .padding(&[p, p]);
            let plan =
                PoolPlan::new(&Pooling::max(win), &[1, 2, h, w], Layout::ChannelsFirst).unwrap();
            let at = |row, col| h * w + row * w + col; // in the second plane
            let what = format!("{h}x{w} k {k} s {stride} p {p}");
            special_in_every_column::<T>(&plan, w, 98, at, &what);
        }
    }
}

#[test]
fn channels_last_global_pooling_many_channels() {
    // the channels-last global path folds 128 channels at a time, the rest one by one
    let mut seed = 9000;
    for c in [127, 128, 130, 300] {
        for spatial in [vec![1, 1], vec![3, 3], vec![7, 7], vec![2, 3, 4]] {
            let rank = spatial.len();
            let mut shape = vec![2];
            shape.extend(&spatial);
            shape.push(c);
            for op in [
                Pooling::GlobalMax { rank },
                Pooling::GlobalAvg { rank },
                Pooling::adaptive_avg(&vec![1; rank]),
                Pooling::adaptive_max(&vec![1; rank]),
            ] {
                seed += 1;
                check::<f32>(&op, &shape, Layout::ChannelsLast, seed);
                check::<f64>(&op, &shape, Layout::ChannelsLast, seed);
            }
        }
    }
}

#[test]
fn channels_first_global_average_short_planes() {
    // planes up to 16 vectors are reduced 16 (AVX2: 8) at a time by a transposing tree, the
    // planes past the last group one by one; 1-D to 3-D (the adaptive rule divides once per
    // axis); plane lengths of 0 to 16 whole vectors of 8 or 16 and past them
    let mut seed = 9500;
    let spatials: Vec<Vec<usize>> = vec![
        vec![1],
        vec![8],
        vec![9],
        vec![40],
        vec![128],
        vec![129],
        vec![15],
        vec![16],
        vec![17],
        vec![33],
        vec![48],
        vec![65],
        vec![1, 1],
        vec![7, 7],
        vec![8, 8],
        vec![16, 16],
        vec![16, 17],
        vec![2, 3, 4],
        vec![3, 5, 7],
    ];
    for spatial in &spatials {
        let rank = spatial.len();
        for c in [1, 15, 16, 17, 33] {
            for n in [1, 2] {
                let mut shape = vec![n, c];
                shape.extend(spatial);
                for op in [
                    Pooling::GlobalAvg { rank },
                    Pooling::adaptive_avg(&vec![1; rank]),
                ] {
                    seed += 1;
                    check::<f32>(&op, &shape, Layout::ChannelsFirst, seed);
                }
            }
        }
    }
    // large enough to be split over threads, in chunks that are not whole groups of 16
    check::<f32>(
        &Pooling::GlobalAvg { rank: 2 },
        &[8, 512, 7, 7],
        Layout::ChannelsFirst,
        9999,
    );
}

/// Max backward by its definition: per plane, `grad_input[idx] += grad_output` in output
/// order, from zeros, each sum rounded to `T` (f16 and bf16 add in f32, as PyTorch does).
fn scatter_by_definition<T: Element>(
    plan: &PoolPlan,
    shape: &[usize],
    layout: Layout,
    idx: &[i64],
    gy: &[T],
) -> Vec<T> {
    let (rank, n, cl) = (shape.len() - 2, shape[0], layout == Layout::ChannelsLast);
    let c = if cl { shape[rank + 1] } else { shape[1] };
    let (plane_in, plane_out) = (plan.input_len() / (n * c), plan.output_len() / (n * c));
    let mut want = vec![T::default().to_acc(); plan.input_len()];
    for b in 0..n {
        for ch in 0..c {
            for o in 0..plane_out {
                let k = match cl {
                    true => (b * plane_out + o) * c + ch,
                    false => (b * c + ch) * plane_out + o,
                };
                let i = idx[k] as usize;
                let at = match cl {
                    true => (b * plane_in + i) * c + ch,
                    false => (b * c + ch) * plane_in + i,
                };
                want[at] = T::round_acc(want[at] + gy[k].to_acc());
            }
        }
    }
    want.into_iter().map(T::from_acc).collect()
}

/// Max backward from indices a caller made up, not the forward pass's: any position in the
/// plane, repeated, behind and far ahead of the last, must sum in output order into exactly
/// the elements named (the scatter's prefetch and plane split must not care where they point).
/// f16 and bf16 round every sum, from gradients with fine fractions.
#[test]
fn max_backward_from_any_indices_in_the_plane() {
    for (shape, layout) in [
        (vec![2, 3, 9, 11], Layout::ChannelsFirst),
        (vec![2, 17, 9, 11], Layout::ChannelsLast),
        (vec![3, 64, 40, 40], Layout::ChannelsFirst), // large enough to split over threads
        (vec![3, 40, 40, 64], Layout::ChannelsLast),
        (vec![2, 5, 6, 7, 8], Layout::ChannelsLast),
        // gradients of 16 MiB and more go through the streaming ring: indices behind it,
        // far ahead of it and between
        (vec![1, 257, 258, 64], Layout::ChannelsLast),
        (vec![2, 64, 200, 170], Layout::ChannelsFirst),
        // planes of 16 KiB, through the ring in groups of 8 (the last group of 2); the
        // stray index lies in a group's sixth plane
        (vec![3, 350, 64, 64], Layout::ChannelsFirst),
    ] {
        scatter_any_indices::<f32>(&shape, layout, data(shape.iter().product(), 77, false));
    }
    for (shape, layout) in [
        (vec![2, 3, 9, 11], Layout::ChannelsFirst),
        (vec![3, 40, 40, 64], Layout::ChannelsLast),
        (vec![2, 5, 6, 7, 8], Layout::ChannelsLast),
        // 16 MiB of f16 gradient: the ring
        (vec![1, 363, 364, 64], Layout::ChannelsLast),
        (vec![2, 64, 300, 220], Layout::ChannelsFirst),
    ] {
        let len = shape.iter().product();
        scatter_any_indices::<f16>(&shape, layout, fine_data(len, 78, true));
        scatter_any_indices::<bf16>(&shape, layout, fine_data(len, 79, false));
    }
}

/// [`max_backward_from_any_indices_in_the_plane`] for one problem, with the output
/// gradients taken from the front of `values`.
fn scatter_any_indices<T: Element>(shape: &[usize], layout: Layout, values: Vec<T>) {
    let rank = shape.len() - 2;
    let op = Pooling::max(Window::new(&vec![3; rank]).stride(&vec![2; rank]));
    let plan = PoolPlan::new(&op, shape, layout).unwrap();
    let (n, cl) = (shape[0], layout == Layout::ChannelsLast);
    let c = if cl { shape[rank + 1] } else { shape[1] };
    let plane_in = plan.input_len() / (n * c);
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    // a few positions many times (ties), or anywhere
    let idx: Vec<i64> = (0..plan.output_len())
        .map(|_| match next() % 4 {
            0 => (next() % 3) as i64,
            _ => (next() % plane_in as u64) as i64,
        })
        .collect();
    let gy = &values[..plan.output_len()];
    let want = scatter_by_definition(&plan, shape, layout, &idx, gy);
    let desc = format!("{shape:?} {layout:?} {:?}", T::DTYPE);
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut got = vec![T::from_f64(f64::NAN); plan.input_len()];
        pool.install(|| plan.backward_with_indices(&idx, gy, &mut got))
            .unwrap();
        assert!(same_bits(&got, &want), "{desc} {threads}");
        let fresh = pool
            .install(|| plan.backward_with_indices_to_vec(&idx, gy))
            .unwrap();
        assert!(same_bits(&fresh, &want), "{desc} fresh");
        // one index past the plane: an error naming it, whatever the threads
        let mut stray = idx.clone();
        stray[idx.len() / 2] = plane_in as i64;
        let err = pool
            .install(|| plan.backward_with_indices(&stray, gy, &mut got))
            .unwrap_err();
        assert!(err.to_string().contains(&plane_in.to_string()), "{err}");
    }
}

/// Max backward on gradients of 16 MiB and more (the streaming ring of `scatter.rs`), from
/// the forward pass's indices (the ring's steady state: it streams out behind the windows)
/// with NaN, ±inf and ties in the data: the reference's bits, into fresh memory, into a
/// caller's buffer off the cache-line grid, with one index moved far behind or ahead, and
/// with every index in the first third of its plane.
#[test]
fn max_backward_streams_large_gradients() {
    let win = |k: usize, s: usize, p: usize| Window::new(&[k, k]).stride(&[s, s]).padding(&[p, p]);
    let problems = [
        (win(3, 2, 1), vec![1, 257, 258, 64], Layout::ChannelsLast),
        (win(2, 2, 0), vec![1, 258, 257, 64], Layout::ChannelsLast),
        (win(3, 2, 1), vec![2, 64, 201, 170], Layout::ChannelsFirst),
        (win(2, 2, 0), vec![3, 24, 256, 250], Layout::ChannelsFirst),
        // small planes go through the ring in groups (ResNet's stem: 3 planes a group)
        (win(3, 2, 1), vec![8, 64, 112, 112], Layout::ChannelsFirst),
        (win(3, 2, 1), vec![3, 350, 64, 64], Layout::ChannelsFirst),
    ];
    for (w, shape, layout) in problems {
        let plan = PoolPlan::new(&Pooling::max(w), &shape, layout).unwrap();
        assert!(plan.input_len() * 4 >= 16 << 20);
        let x: Vec<f32> = data(plan.input_len(), 9, true);
        let mut idx = vec![0i64; plan.output_len()];
        let mut y = vec![0f32; plan.output_len()];
        plan.forward(&x, &mut y, Some(&mut idx)).unwrap();
        let gy: Vec<f32> = data(plan.output_len(), 10, true);
        let mut moved = idx.clone();
        let at = moved.len() / 3;
        moved[at] = 0;
        moved[at + 1] = idx[moved.len() - 1];
        // every index in the first third of its plane: the rest of the plane gets only zeros
        let front: Vec<i64> = idx.iter().map(|&i| i / 3).collect();
        for idx in [&idx, &moved, &front] {
            let want = scatter_by_definition(&plan, &shape, layout, idx, &gy);
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let fresh = pool
                    .install(|| plan.backward_with_indices_to_vec(idx, &gy))
                    .unwrap();
                assert!(same_bits(&fresh, &want), "{shape:?} {layout:?} {threads}");
                let mut buf = vec![f32::NAN; plan.input_len() + 1];
                pool.install(|| plan.backward_with_indices(idx, &gy, &mut buf[1..]))
                    .unwrap();
                assert!(same_bits(&buf[1..], &want), "{shape:?} {layout:?} off grid");
            }
        }
    }
}

/// Max backward of 3×3 stride-2 channels-first windows (the gather of `kernels/gather.rs`,
/// planes of 2048 values and more): both paddings, ceil mode (a clipped last window), odd
/// sides and row tails, the forward's indices with NaN, ±inf and ties in the data, and the
/// same with one index moved out of its window (that plane falls back to the scatter): the
/// reference's bits, into a caller's buffer (off the cache-line grid too) and into fresh
/// memory, at 1, 2 and 3 threads.
#[test]
fn max_backward_gathers_3x3_stride_2_planes() {
    for (pad, ceil, shape) in [
        (1, false, vec![2, 5, 64, 64]),
        (0, false, vec![2, 5, 61, 67]),
        (0, true, vec![2, 5, 61, 67]),
        (1, true, vec![1, 7, 50, 83]),
        (1, false, vec![1, 3, 33, 100]),
    ] {
        let w = Window::new(&[3, 3])
            .stride(&[2, 2])
            .padding(&[pad, pad])
            .ceil_mode(ceil);
        let plan = PoolPlan::new(&Pooling::max(w), &shape, Layout::ChannelsFirst).unwrap();
        let x: Vec<f32> = data(plan.input_len(), 21, true);
        let (_, idx) = plan.forward_with_indices_to_vec(&x).unwrap();
        let gy: Vec<f32> = data(plan.output_len(), 22, true);
        let mut moved = idx.clone();
        let at = moved.len() / 2;
        moved[at] = (moved[at] + 7) % (shape[2] * shape[3]) as i64;
        for idx in [&idx, &moved] {
            let want = scatter_by_definition(&plan, &shape, Layout::ChannelsFirst, idx, &gy);
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let desc = format!("{shape:?} pad {pad} ceil {ceil} {threads}");
                let mut buf = vec![f32::NAN; plan.input_len() + 1];
                pool.install(|| plan.backward_with_indices(idx, &gy, &mut buf[1..]))
                    .unwrap();
                assert!(same_bits(&buf[1..], &want), "{desc} off grid");
                pool.install(|| plan.backward_with_indices(idx, &gy, &mut buf[..plan.input_len()]))
                    .unwrap();
                assert!(same_bits(&buf[..plan.input_len()], &want), "{desc}");
                let fresh = pool
                    .install(|| plan.backward_with_indices_to_vec(idx, &gy))
                    .unwrap();
                assert!(same_bits(&fresh, &want), "{desc} fresh");
            }
        }
    }
}

/// Max backward of windows that tile the input (kernel = stride: `kernels/disjoint.rs`), f32
/// in both layouts: 2×2 (VGG), 3×3 and 5×5 tiles, 1×1, 1-D, a padded first tile, ceil mode (a
/// clipped last tile) and odd sides (rows and columns no tile covers), channel counts with and
/// without a tail past 8, from the forward's indices with NaN, ±inf and ties in the data; the
/// same with one index moved out of its window (that unit falls back to the scatter) and one
/// past its plane (an error naming it): the reference's bits, into a caller's buffer (off the
/// cache-line grid too) and into fresh memory, at 1, 2 and 3 threads.
#[test]
fn max_backward_of_tiling_windows() {
    let tiles = |k: &[usize], pad: &[usize], ceil: bool| {
        Window::new(k).stride(k).padding(pad).ceil_mode(ceil)
    };
    let problems = [
        (tiles(&[2, 2], &[0, 0], false), vec![2, 64, 40, 36]),
        (tiles(&[2, 2], &[0, 0], false), vec![1, 3, 9, 11]),
        (tiles(&[2, 2], &[0, 0], true), vec![2, 5, 9, 11]),
        (tiles(&[2, 2], &[1, 1], false), vec![2, 5, 10, 13]),
        (tiles(&[2, 2], &[1, 0], true), vec![1, 16, 7, 9]),
        (tiles(&[3, 3], &[0, 0], false), vec![2, 24, 31, 20]),
        (tiles(&[3, 3], &[1, 1], true), vec![1, 13, 17, 19]),
        (tiles(&[5, 5], &[0, 2], false), vec![1, 8, 23, 27]),
        (tiles(&[1, 1], &[0, 0], false), vec![2, 9, 5, 6]),
        (tiles(&[2, 3], &[0, 0], false), vec![1, 8, 12, 12]),
        (tiles(&[2], &[0], false), vec![3, 16, 45]),
        (tiles(&[4], &[1], true), vec![2, 13, 30]),
        // large enough to split units into bands of rows over the threads
        (tiles(&[2, 2], &[0, 0], false), vec![1, 8, 300, 90]),
    ];
    for (w, nchw) in problems {
        for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
            let shape = match layout {
                Layout::ChannelsFirst => nchw.clone(),
                Layout::ChannelsLast => [&nchw[..1], &nchw[2..], &nchw[1..2]].concat(),
            };
            let plan = PoolPlan::new(&Pooling::max(w.clone()), &shape, layout).unwrap();
            let x: Vec<f32> = data(plan.input_len(), 31, true);
            let (_, idx) = plan.forward_with_indices_to_vec(&x).unwrap();
            let gy: Vec<f32> = data(plan.output_len(), 32, true);
            let plane = plan.input_len() / (nchw[0] * nchw[1]);
            let mut moved = idx.clone();
            let at = moved.len() / 2;
            moved[at] = (moved[at] + plane as i64 / 2) % plane as i64;
            let mut stray = idx.clone();
            stray[moved.len() / 3] = plane as i64;
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let desc = format!("{w:?} {shape:?} {layout:?} {threads}");
                for idx in [&idx, &moved] {
                    let want = scatter_by_definition(&plan, &shape, layout, idx, &gy);
                    let mut buf = vec![f32::NAN; plan.input_len() + 1];
                    pool.install(|| plan.backward_with_indices(idx, &gy, &mut buf[1..]))
                        .unwrap();
                    assert!(same_bits(&buf[1..], &want), "{desc} off grid");
                    let end = plan.input_len();
                    pool.install(|| plan.backward_with_indices(idx, &gy, &mut buf[..end]))
                        .unwrap();
                    assert!(same_bits(&buf[..end], &want), "{desc}");
                    let fresh = pool
                        .install(|| plan.backward_with_indices_to_vec(idx, &gy))
                        .unwrap();
                    assert!(same_bits(&fresh, &want), "{desc} fresh");
                }
                let mut buf = vec![0f32; plan.input_len()];
                let err = pool
                    .install(|| plan.backward_with_indices(&stray, &gy, &mut buf))
                    .unwrap_err();
                assert!(
                    err.to_string().contains(&plane.to_string()),
                    "{desc}: {err}"
                );
            }
        }
    }
}

/// Max backward on large gradients in f64 (half the elements to a line and to the ring) and
/// in f16 and bf16 (twice as many, every sum rounded): the reference's bits from the forward
/// pass's indices, into fresh memory and through the streaming ring (a caller's buffer, or
/// fresh memory the allocator reused), channels-last and channels-first, 1 and 2 threads.
#[test]
fn max_backward_streams_large_gradients_f64_f16_bf16() {
    fn run<T: Element>(shape: &[usize], layout: Layout) {
        let w = Window::new(&[3, 3]).stride(&[2, 2]).padding(&[1, 1]);
        let plan = PoolPlan::new(&Pooling::max(w), shape, layout).unwrap();
        assert!(plan.input_len() * size_of::<T>() >= 16 << 20);
        let x: Vec<T> = fine_data(plan.input_len(), 12, true);
        let (_, idx) = plan.forward_with_indices_to_vec(&x).unwrap();
        let gy: Vec<T> = fine_data(plan.output_len(), 13, true);
        let mut want = vec![T::default(); plan.input_len()];
        plan.backward_reference(&x, &gy, &mut want).unwrap();
        // (gradients under 32 MiB take the ring on one thread only)
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let got = pool
                .install(|| plan.backward_with_indices_to_vec(&idx, &gy))
                .unwrap();
            let desc = format!("{shape:?} {layout:?} {:?} {threads}", T::DTYPE);
            assert!(same_bits(&got, &want), "{desc}");
            // a caller's buffer: the ring
            let mut got = vec![T::from_f64(f64::NAN); plan.input_len()];
            pool.install(|| plan.backward_with_indices(&idx, &gy, &mut got))
                .unwrap();
            assert!(same_bits(&got, &want), "{desc} ring");
        }
    }
    run::<f64>(&[1, 257, 258, 32], Layout::ChannelsLast);
    run::<f64>(&[1, 64, 181, 182], Layout::ChannelsFirst);
    for (shape, layout) in [
        (vec![1, 363, 364, 64], Layout::ChannelsLast),
        (vec![1, 64, 363, 364], Layout::ChannelsFirst),
    ] {
        run::<f16>(&shape, layout);
        run::<bf16>(&shape, layout);
    }
}

#[test]
fn averages_of_signed_zeros_are_the_references_bits() {
    // The reference sums from +0, so a window of −0 values averages to +0, and a window with
    // any +0 in it too. The fast sums start from a window's own values (and in another
    // order), and must come to the same sign: the tolerance of the other average tests does
    // not see it (−0 == +0). Inputs of +0 and −0 only, mostly −0, on every path an average
    // takes: the 2×2, 3×3 (stride 1 and 2) and separable 5×5 / 7×7 kernels in both layouts,
    // the flat-plane and padded channels-first kernels, global and adaptive pooling, 1-D and
    // 3-D, with and without padding, the three divisor rules.
    // about one value in 60 is +0: most windows hold −0 only
    let zeros = |len: usize, seed: u64| -> Vec<f32> {
        (0..len as u64)
            .map(|i| {
                let h = (i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                if h.is_multiple_of(61) {
                    0.0
                } else {
                    -0.0
                }
            })
            .collect()
    };
    // (op, [N, C, spatial..]): the shapes are laid out for each layout below
    let mut cases: Vec<(Pooling, Vec<usize>)> = Vec::new();
    for (k, s, p) in [
        (2, 2, 0),
        (3, 1, 1),
        (3, 2, 1),
        (3, 2, 0),
        (5, 1, 2),
        (7, 1, 3),
        (4, 3, 1),
    ] {
        let win = Window::new(&[k, k]).stride(&[s, s]).padding(&[p, p]);
        for op in ops_of(win.clone(), win, 5).into_iter().skip(1) {
            for shape in [
                [2, 16, 14, 14],
                [1, 40, 23, 9],
                [2, 3, 70, 70],
                [2, 32, 12, 20],
            ] {
                cases.push((op.clone(), shape.to_vec()));
            }
        }
    }
    let win1 = Window::new(&[3]).stride(&[1]).padding(&[1]);
    let win3 = Window::new(&[3, 3, 3])
        .stride(&[2, 2, 2])
        .padding(&[1, 1, 1]);
    cases.push((Pooling::avg(win1), vec![2, 32, 50]));
    cases.push((Pooling::avg(win3), vec![1, 16, 6, 9, 9]));
    cases.push((Pooling::GlobalAvg { rank: 2 }, vec![2, 64, 7, 7]));
    cases.push((Pooling::adaptive_avg(&[3, 5]), vec![2, 48, 13, 11]));
    let mut seed = 500;
    for (op, nc_shape) in cases {
        for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
            let shape = match layout {
                Layout::ChannelsFirst => nc_shape.clone(),
                Layout::ChannelsLast => {
                    let mut s = vec![nc_shape[0]];
                    s.extend(&nc_shape[2..]);
                    s.push(nc_shape[1]);
                    s
                }
            };
            let plan = PoolPlan::new(&op, &shape, layout).unwrap();
            seed += 1;
            let x = zeros(plan.input_len(), seed);
            let mut reference = vec![0f32; plan.output_len()];
            plan.forward_reference(&x, &mut reference, None).unwrap();
            let fast = plan.forward_to_vec(&x).unwrap();
            let desc = problem_desc(&op, &shape, layout);
            assert!(same_bits(&fast, &reference), "{desc}: forward");
            // the backward of an output gradient of signed zeros
            let gy = zeros(plan.output_len(), seed ^ 0xABC);
            let mut want = vec![0f32; plan.input_len()];
            plan.backward_reference(&x, &gy, &mut want).unwrap();
            let got = plan.backward_to_vec(&x, &gy).unwrap();
            assert!(same_bits(&got, &want), "{desc}: backward");
        }
    }
}

#[test]
fn channels_first_2x2_row_pairs() {
    row_pairs::<f32>();
}

#[test]
fn channels_first_2x2_row_pairs_f64() {
    // f64 takes the same passes with AVX-512, 8 values per vector (the widths above lie
    // around 8 and 16 too)
    row_pairs::<f64>();
}

fn row_pairs<T: Element>() {
    // 2×2 stride-2 windows on channels-first planes of even sides go as one tall image of row
    // pairs (AVX-512: one pass, two row pairs at a time for rows of one vector at most, else
    // row pair by row pair, whole steps then the row's end; AVX2: both passes at once, rows of fewer than 8
    // outputs storing 8 from their start, the lanes past their end stored again by the next
    // row, the last rows of each chunk value by value); narrow and wide planes, a few planes
    // or many (chunks of whole row pairs, split over threads)
    let mut seed = 13000;
    for (h, w) in [
        (2, 2),
        (4, 6),
        (14, 14),
        (6, 16),
        (8, 30),
        (2, 34),
        (28, 28),
        (4, 18),
        (2, 66),
        (4, 32),
        (2, 64),
        (6, 40),
    ] {
        for c in [1, 3, 40] {
            let win = Window::new(&[2, 2]).stride(&[2, 2]);
            for op in ops_of(win.clone(), win, 3) {
                seed += 1;
                check::<T>(&op, &[2, c, h, w], Layout::ChannelsFirst, seed);
            }
        }
    }
    // rows of one vector at most (AVX-512: two row pairs at a time, one pass), an odd count of
    // row pairs (the last one alone)
    for (c, h, w) in [
        (3, 2, 8),
        (5, 6, 10),
        (1, 2, 12),
        (3, 14, 14),
        (7, 14, 4),
        (1, 2, 16),
    ] {
        let win = Window::new(&[2, 2]).stride(&[2, 2]);
        for op in ops_of(win.clone(), win, 3) {
            seed += 1;
            check::<T>(&op, &[1, c, h, w], Layout::ChannelsFirst, seed);
        }
    }
    // volumes, 2×2×2 at stride 2 (AVX-512: each slice pooled so, the slice pair folded):
    // one or several output slices, slices of one chunk or several
    for (d, h, w) in [(2, 2, 2), (4, 6, 8), (2, 14, 14), (6, 8, 30), (4, 48, 64)] {
        for c in [1, 3] {
            let win = Window::new(&[2, 2, 2]).stride(&[2, 2, 2]);
            for op in ops_of(win.clone(), win, -5) {
                seed += 1;
                check::<T>(&op, &[2, c, d, h, w], Layout::ChannelsFirst, seed);
            }
        }
    }
    // a NaN or an infinity anywhere in a volume: the slice pair's fold takes the exact rule
    let shape = [1, 2, 4, 6, 10];
    let win = Window::new(&[2, 2, 2]).stride(&[2, 2, 2]);
    let plan = PoolPlan::new(&Pooling::max(win), &shape, Layout::ChannelsFirst).unwrap();
    for special in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for at in 0..plan.input_len() {
            assert!(
                same_with_special_at::<T>(&plan, 37, at, special),
                "{special} at {at} of {shape:?}"
            );
        }
    }
    // a NaN or an infinity anywhere in the first and the last planes: every row (the first,
    // the last of a chunk, the one past a short row's end) must see it
    // (rows of 8 and 14: one pass two row pairs at a time in f32, and in f64 for 8; the odd
    // count of row pairs of 5 × 6 × 8 leaves the last one alone; rows of 40: whole steps and
    // the row's last columns)
    for (c, h, w) in [(12, 14, 14), (5, 6, 8), (3, 4, 40)] {
        let win = Window::new(&[2, 2]).stride(&[2, 2]);
        let plan = PoolPlan::new(&Pooling::max(win), &[1, c, h, w], Layout::ChannelsFirst).unwrap();
        for special in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for plane in [0, c / 2, c - 1] {
                for at in plane * h * w..(plane + 1) * h * w {
                    assert!(
                        same_with_special_at::<T>(&plan, 31, at, special),
                        "{special} at {at} of {c}x{h}x{w}"
                    );
                }
            }
        }
    }
}

/// Values with fine fractions (f16 and bf16 sums of them round), and, with `specials`, NaN,
/// ±inf and ±0.
fn fine_data<T: Element>(len: usize, seed: u64, specials: bool) -> Vec<T> {
    let coarse: Vec<f64> = data::<f64>(len, seed, specials);
    let mut s = seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
    coarse
        .into_iter()
        .map(|c| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let f = (s >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0;
            T::from_f64(if c.is_finite() && c != 0.0 { f } else { c })
        })
        .collect()
}

/// Forward and backward (from the input, and from indices for max-type ops) give the
/// reference's bits at 1, 2 and 3 threads: the ops `kernels/planewise.rs` takes (Lp pooling,
/// the f16/bf16 backward passes) compute the reference's sums in its order; the f16/bf16
/// forward averages sum in f32 and divide as the reference does, also at quotient ties.
fn check_exact<T: Element>(op: &Pooling, shape: &[usize], layout: Layout, seed: u64) -> bool {
    let Ok(plan) = PoolPlan::new(op, shape, layout) else {
        return false;
    };
    let desc = problem_desc(op, shape, layout);
    let x: Vec<T> = fine_data(plan.input_len(), seed, true);
    let gy: Vec<T> = fine_data(plan.output_len(), seed ^ 0xabc, seed.is_multiple_of(3));
    let mut yr = vec![T::default(); plan.output_len()];
    plan.forward_reference(&x, &mut yr, None).unwrap();
    let mut gr = vec![T::default(); plan.input_len()];
    plan.backward_reference(&x, &gy, &mut gr).unwrap();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let y = pool.install(|| plan.forward_to_vec(&x)).unwrap();
        assert!(same_bits(&y, &yr), "{desc}: forward at {threads} threads");
        let gx = pool.install(|| plan.backward_to_vec(&x, &gy)).unwrap();
        for (k, (a, b)) in gx.iter().zip(&gr).enumerate() {
            let same = a.to_f64().to_bits() == b.to_f64().to_bits()
                || (a.is_nan_value() && b.is_nan_value());
            assert!(
                same,
                "{desc}: backward {k} at {threads} threads: {a:?} vs {b:?}"
            );
        }
        if op.has_indices() {
            let (_, idx) = pool
                .install(|| plan.forward_with_indices_to_vec(&x))
                .unwrap();
            let mut gi = vec![T::default(); plan.input_len()];
            pool.install(|| plan.backward_with_indices(&idx, &gy, &mut gi))
                .unwrap();
            assert!(same_bits(&gi, &gr), "{desc}: backward from indices");
        }
    }
    true
}

/// Shapes of ranks 1–3 in both layouts, batch 2 (and 0: an empty batch).
fn exact_shapes(rank: usize) -> Vec<(Vec<usize>, Layout)> {
    let mut v = Vec::new();
    for &n in &[1usize, 4, 7] {
        for &c in &[1usize, 3] {
            for batch in [2, 0] {
                let sp = std::iter::repeat_n(n + rank, rank);
                let mut cf = vec![batch, c];
                cf.extend(sp.clone());
                let mut cl = vec![batch];
                cl.extend(sp);
                cl.push(c);
                v.push((cf, Layout::ChannelsFirst));
                v.push((cl, Layout::ChannelsLast));
            }
        }
    }
    v
}

#[test]
fn lp_pooling_gives_the_reference_bits() {
    let mut seed = 7;
    let mut checked = 0;
    for rank in 1..=3 {
        for (k, s, pad, d, ceil) in [
            (2, 2, 0, 1, false),
            (3, 1, 0, 1, false),
            (3, 2, 0, 1, true),
            (2, 1, 0, 1, true),
            (3, 2, 1, 1, true),
            (2, 1, 0, 2, false),
        ] {
            // padding and dilation: ONNX's LpPool takes them, PyTorch's refuses them
            let w = cube_window(rank, (k, s, pad, d, ceil));
            for p in [1.0, 2.0, 3.0, 0.5, 1.5, -1.0] {
                for variant in [nnpool::LpVariant::Torch, nnpool::LpVariant::Onnx] {
                    let op = Pooling::Lp {
                        norm_type: p,
                        variant,
                        window: w.clone(),
                    };
                    for (shape, layout) in exact_shapes(rank) {
                        seed += 1;
                        let ok = match seed % 3 {
                            0 => check_exact::<f32>(&op, &shape, layout, seed),
                            1 => check_exact::<f16>(&op, &shape, layout, seed),
                            _ => check_exact::<f64>(&op, &shape, layout, seed),
                        };
                        checked += ok as usize;
                        if rank == 2 && p == 3.0 {
                            checked += check_exact::<bf16>(&op, &shape, layout, seed) as usize;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} problems were valid");
}

#[test]
fn half_precision_backward_gives_the_reference_bits() {
    let mut seed = 11;
    let mut checked = 0;
    for rank in 1..=3 {
        let mut ops = Vec::new();
        for (k, s, p, d, ceil) in [(3, 1, 1, 1, false), (3, 2, 1, 1, true), (2, 1, 0, 2, false)] {
            ops.extend(ops_for(rank, k, s, p, d, ceil));
        }
        for out in [1, 3] {
            ops.push(Pooling::adaptive_max(&vec![out; rank]));
            ops.push(Pooling::adaptive_avg(&vec![out; rank]));
        }
        ops.push(Pooling::GlobalMax { rank });
        ops.push(Pooling::GlobalAvg { rank });
        for op in &ops {
            for (shape, layout) in exact_shapes(rank) {
                seed += 1;
                checked += check_exact::<f16>(op, &shape, layout, seed) as usize;
                checked += check_exact::<bf16>(op, &shape, layout, seed) as usize;
            }
        }
    }
    assert!(checked > 1000, "only {checked} problems were valid");
}

/// The f16/bf16 average backward of channels-last samples adds a pixel's channels side by
/// side (a vector's worth and a masked tail): channel counts around the vector width, ranks
/// 1–3, padding, ceil mode, dilation, the divisor rules and adaptive windows, batches of 0, 1
/// and 3 (large enough to split over threads), give the reference's bits.
#[test]
fn half_precision_average_backward_channels_last() {
    let mut seed = 501;
    let mut checked = 0;
    for rank in 1..=3 {
        let mut ops = Vec::new();
        for params in [(3, 1, 1, 1, false), (3, 2, 1, 1, true), (2, 2, 0, 2, false)] {
            let w = cube_window(rank, params);
            ops.extend(ops_of(w.clone(), w, 5).into_iter().skip(1));
        }
        ops.push(Pooling::adaptive_avg(&vec![3; rank]));
        for c in [2, 16, 17, 35] {
            for (batch, side) in [(0, 5), (1, 6), (3, 9 - rank)] {
                let mut shape = vec![batch];
                shape.extend(std::iter::repeat_n(side + rank, rank));
                shape.push(c);
                for op in &ops {
                    seed += 1;
                    let layout = Layout::ChannelsLast;
                    checked += check_exact::<f16>(op, &shape, layout, seed) as usize;
                    checked += check_exact::<bf16>(op, &shape, layout, seed) as usize;
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} problems were valid");
}

/// The f16/bf16 forward runs the f32 kernels on parts of whole planes (channels-first) or
/// images (channels-last) of about 32 Ki values: inputs of several parts, the last one
/// short, give the reference's bits (values and indices) at 1 and 2 threads, with NaN, ±inf
/// and ties in the data.
#[test]
fn half_precision_forward_in_parts() {
    fn run<T: Element>(op: &Pooling, shape: &[usize], layout: Layout, seed: u64) {
        let plan = PoolPlan::new(op, shape, layout).unwrap();
        let desc = problem_desc(op, shape, layout);
        let x: Vec<T> = fine_data(plan.input_len(), seed, true);
        let with_idx = op.has_indices();
        let (yr, ir) = reference_forward(&plan, &x, with_idx);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let y = pool.install(|| plan.forward_to_vec(&x)).unwrap();
            assert!(same_bits(&y, &yr), "{desc}: {threads} threads");
            if with_idx {
                let (y, i) = pool
                    .install(|| plan.forward_with_indices_to_vec(&x))
                    .unwrap();
                assert!(same_bits(&y, &yr) && i == ir, "{desc}: indices");
            }
        }
    }
    let w = Window::new(&[3, 3]).stride(&[2, 2]).padding(&[1, 1]);
    let s1 = Window::new(&[3, 3]).padding(&[1, 1]);
    let mut ops = ops_of(w.clone(), w, 7);
    ops.extend(ops_of(s1.clone(), s1, -3));
    // 3600 values a plane: 9 planes a part, 30 planes in 4 parts; 28 800 an image: 1 a part
    let shapes = [
        (vec![3, 10, 60, 60], Layout::ChannelsFirst),
        (vec![1, 2, 190, 190], Layout::ChannelsFirst),
        (vec![3, 30, 30, 32], Layout::ChannelsLast),
        (vec![5, 12, 12, 230], Layout::ChannelsLast),
    ];
    for (k, op) in ops.iter().enumerate() {
        for (shape, layout) in &shapes {
            run::<f16>(op, shape, *layout, k as u64);
            run::<bf16>(op, shape, *layout, k as u64 + 100);
        }
    }
}

#[test]
fn channels_last_few_channels_as_planes() {
    // Fewer than 16 channels channels-last: each image transposed into planes, pooled by the
    // channels-first kernels and transposed back, images grouped into parts of about 32 Ki
    // values. Every channel count of that path (1–15) and the first past it; images small
    // enough to share a part, and large enough to fill one each (several parts, a short last).
    let window = |k: usize, s: usize, p: usize, d: usize| {
        Window::new(&[k, k])
            .stride(&[s, s])
            .padding(&[p, p])
            .dilation(&[d, d])
    };
    let ops = |ceil: bool| {
        let mut ops = ops_of(window(3, 2, 1, 1).ceil_mode(ceil), window(3, 2, 1, 1), 4);
        ops.extend(ops_of(window(2, 2, 0, 1), window(3, 1, 1, 1), 7));
        ops.push(Pooling::max(window(2, 1, 1, 2)));
        ops.push(Pooling::avg(window(2, 2, 1, 2).ceil_mode(ceil)));
        ops.push(Pooling::adaptive_avg(&[3, 4]));
        ops
    };
    let dilated_avg = Pooling::avg(window(2, 2, 1, 2));
    assert!(PoolPlan::new(&dilated_avg, &[1, 7, 9, 3], Layout::ChannelsLast).is_ok());
    let mut seed = 9000;
    for c in 1..=16 {
        for op in ops(c % 2 == 0) {
            for shape in [[0, 5, 6, c], [2, 7, 9, c], [1, 1, 1, c]] {
                if let Ok(plan) = PoolPlan::new(&op, &shape, Layout::ChannelsLast) {
                    assert_eq!(plan.output_shape()[3], c);
                }
                seed += 1;
                check::<f32>(&op, &shape, Layout::ChannelsLast, seed);
            }
        }
    }
    // parts: 40×40×5 images share parts of four (the last of one); 60×60×15 fill one each
    for op in ops(true) {
        for shape in [[9, 40, 40, 5], [3, 60, 60, 15], [1, 70, 50, 3]] {
            seed += 1;
            check::<f32>(&op, &shape, Layout::ChannelsLast, seed);
        }
    }
    for op in ops(false) {
        seed += 1;
        check::<f64>(&op, &[3, 9, 8, 3], Layout::ChannelsLast, seed);
        check::<f16>(&op, &[3, 9, 8, 3], Layout::ChannelsLast, seed);
    }
    // 1-D and 3-D
    let win1 = Window::new(&[3]).stride(&[2]).padding(&[1]);
    let win3 = Window::new(&[3, 3, 3])
        .stride(&[2, 2, 2])
        .padding(&[1, 1, 1]);
    for op in ops_of(win1.clone(), win1, 2) {
        seed += 1;
        check::<f32>(&op, &[2, 33, 4], Layout::ChannelsLast, seed);
    }
    for op in ops_of(win3.clone(), win3, 2) {
        seed += 1;
        check::<f32>(&op, &[2, 5, 7, 6, 3], Layout::ChannelsLast, seed);
    }
}

/// Mostly −∞: each value −∞ with probability 3/4, else NaN (rarely), −0 or a small value, so
/// that many windows hold only −∞ (and padding), or −∞ before their first finite value.
fn mostly_negative_infinity<T: Element>(len: usize, seed: u64) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = match s % 64 {
                0..=47 => f64::NEG_INFINITY,
                48 => f64::NAN,
                49 => -0.0,
                r => (r % 5) as f64 - 2.0,
            };
            T::from_f64(v)
        })
        .collect()
}

/// Max with indices where windows hold only −∞, or padding before −∞: the reference keeps the
/// first in-bounds tap's index (padding never wins), and every kernel must too.
fn negative_infinity_windows<T: Element>() {
    let mut seed = 9100;
    for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
        for (k, stride, p, ceil) in [
            (3, 2, 1, false),
            (3, 2, 0, true),
            (3, 2, 1, true),
            (3, 1, 1, false),
            (2, 2, 0, true),
            (5, 1, 2, false),
            (7, 1, 3, false),
            (2, 1, 1, false),
            (4, 1, 2, true),
            (6, 1, 3, false),
        ] {
            let win = Window::new(&[k, k])
                .stride(&[stride, stride])
                .padding(&[p, p])
                .ceil_mode(ceil);
            let op = Pooling::max(win);
            let planes = [
                (2, 7, 9),
                (3, 9, 33),
                (16, 5, 55),
                (2, 6, 112),
                (17, 3, 130),
                // more than 256 × 256 values, rows of more than 8 vectors
                (1, 260, 300),
            ];
            // and volumes (the window and stride along the depth too)
            let win3 = Window::new(&[k, k, k])
                .stride(&[stride, stride, stride])
                .padding(&[p, p, p])
                .ceil_mode(ceil);
            let op3 = Pooling::max(win3);
            let problems = planes
                .iter()
                .map(|&(c, h, w)| (&op, vec![2, c, h, w]))
                .chain([(&op3, vec![1, 2, 5, 6, 33]), (&op3, vec![2, 16, 4, 7, 9])]);
            for (op, shape) in problems {
                let Ok(plan) = PoolPlan::new(op, &shape, layout) else {
                    continue;
                };
                for all in [true, false] {
                    seed += 1;
                    let x: Vec<T> = if all {
                        vec![T::from_f64(f64::NEG_INFINITY); plan.input_len()]
                    } else {
                        mostly_negative_infinity(plan.input_len(), seed)
                    };
                    let (yr, ir) = reference_forward(&plan, &x, true);
                    for threads in [1, 2] {
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(threads)
                            .build()
                            .unwrap();
                        let (y, i) = pool
                            .install(|| plan.forward_with_indices_to_vec(&x))
                            .unwrap();
                        let desc = problem_desc(op, &shape, layout);
                        assert!(same_bits(&y, &yr), "{desc} (all −∞: {all}): values");
                        assert_eq!(i, ir, "{desc} (all −∞: {all}): indices");
                    }
                }
            }
        }
    }
}

#[test]
fn max_indices_of_negative_infinity_windows() {
    negative_infinity_windows::<f32>();
}

#[test]
fn max_indices_of_negative_infinity_windows_f64_f16() {
    negative_infinity_windows::<f64>();
    negative_infinity_windows::<f16>();
}

#[test]
fn channels_first_max_volumes() {
    // 3-D max, channels-first: every depth slice's plane pooled, then the pooled planes
    // folded in order (the reference's depth-major order regrouped: a fold in another order,
    // e.g. the depth first, can differ only on a NaN or a tie of −0 with +0, both of which
    // the data below holds). Data with ties (+0 included) and ±inf but neither NaN nor −0,
    // then only +0, −0 and −1, then one NaN or −0 at each position; depth windows of 1–3
    // slices, strides 1–3, padding, ceil mode, planes narrower than a vector and wider, 1–3
    // threads.
    let same_on_threads = |plan: &PoolPlan, x: &[f32], what: &str| {
        let mut reference = vec![0f32; plan.output_len()];
        plan.forward_reference(x, &mut reference, None).unwrap();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut fast = vec![0f32; plan.output_len()];
            pool.install(|| plan.forward(x, &mut fast, None)).unwrap();
            assert!(same_bits(&fast, &reference), "{what}, {threads} threads");
        }
    };
    let mut seed = 16000;
    for depth in DEPTH_WINDOWS {
        for (d, h, w) in [(5, 7, 9), (6, 8, 5), (1, 3, 3), (16, 12, 18), (4, 2, 3)] {
            for ceil in [false, true] {
                let Ok(plan) = PoolPlan::new(
                    &Pooling::max(depth_window(depth, ceil)),
                    &[2, 3, d, h, w],
                    Layout::ChannelsFirst,
                ) else {
                    continue;
                };
                let what = format!("depth {depth:?}, {d}×{h}×{w}, ceil {ceil}");
                seed += 1;
                let mut x: Vec<f32> = data(plan.input_len(), seed, false)
                    .into_iter()
                    .map(|v: f32| if v == 0.0 { 0.0 } else { v })
                    .collect();
                for (i, v) in x.iter_mut().enumerate() {
                    match i % 37 {
                        5 => *v = f32::INFINITY,
                        11 => *v = f32::NEG_INFINITY,
                        _ => {}
                    }
                }
                same_on_threads(&plan, &x, &format!("{what}, no NaN or −0"));
                let zeros = signed_zeros(plan.input_len(), seed);
                same_on_threads(&plan, &zeros, &format!("{what}, ±0 ties"));
            }
        }
    }
    let plan = PoolPlan::new(
        &Pooling::max(depth_window((3, 2, 1), false)),
        &[1, 2, 5, 6, 9],
        Layout::ChannelsFirst,
    )
    .unwrap();
    for special in [f64::NAN, -0.0] {
        for at in 0..plan.input_len() {
            assert!(
                same_with_special_at::<f32>(&plan, 79, at, special),
                "{special} at {at}"
            );
        }
    }
}
