//! Times the Rust peers (burn 0.22 with its Flex and NdArray backends, candle 0.11, tract
//! 0.23) on the cases of `nnpool bench` (burn in both layouts: channels-last as a permuted
//! view; candle channels-first, the only layout its pooling takes; tract in both, forward
//! only: it is an inference engine), after
//! checking each result against nnpool's scalar reference. Prints one line per timing and
//! writes the rows in `scripts/peers.py`'s JSON form, so its `--compare` can read them.
//!
//! `rust-peers THREADS JSON_FILE [CASE,..]`: run it once per thread count (`run.sh` does),
//! with `RAYON_NUM_THREADS` set to the same count, since burn and candle size their pools
//! once per process.

use burn::tensor::module::{
    adaptive_avg_pool2d, avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_with_indices,
    max_pool2d_with_indices_backward,
};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Int, Tensor, TensorData};
use nnpool::{Layout, PoolPlan, Pooling, Window};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Max,
    Avg,
    GlobalAvg,
}

struct Case {
    name: &'static str,
    kind: Kind,
    /// (k, s, p) on both axes
    geo: (usize, usize, usize),
    shape: [usize; 4],
    backward: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "resnet_stem_max",
        kind: Kind::Max,
        geo: (3, 2, 1),
        shape: [8, 64, 112, 112],
        backward: false,
    },
    Case {
        name: "resnet_gap",
        kind: Kind::GlobalAvg,
        geo: (7, 7, 0),
        shape: [8, 512, 7, 7],
        backward: false,
    },
    Case {
        name: "vgg_max_224",
        kind: Kind::Max,
        geo: (2, 2, 0),
        shape: [8, 64, 224, 224],
        backward: false,
    },
    Case {
        name: "vgg_max_14",
        kind: Kind::Max,
        geo: (2, 2, 0),
        shape: [8, 512, 14, 14],
        backward: false,
    },
    Case {
        name: "inception_max_s1",
        kind: Kind::Max,
        geo: (3, 1, 1),
        shape: [8, 192, 28, 28],
        backward: false,
    },
    Case {
        name: "inception_avg_s1",
        kind: Kind::Avg,
        geo: (3, 1, 1),
        shape: [8, 192, 28, 28],
        backward: false,
    },
    Case {
        name: "alexnet_max",
        kind: Kind::Max,
        geo: (3, 2, 0),
        shape: [8, 96, 55, 55],
        backward: false,
    },
    Case {
        name: "large_avg",
        kind: Kind::Avg,
        geo: (7, 1, 3),
        shape: [8, 64, 56, 56],
        backward: false,
    },
    Case {
        name: "sppf_max5",
        kind: Kind::Max,
        geo: (5, 1, 2),
        shape: [8, 256, 20, 20],
        backward: false,
    },
    Case {
        name: "resnet_stem_max_bwd",
        kind: Kind::Max,
        geo: (3, 2, 1),
        shape: [8, 64, 112, 112],
        backward: true,
    },
    Case {
        name: "vgg_max_224_bwd",
        kind: Kind::Max,
        geo: (2, 2, 0),
        shape: [8, 64, 224, 224],
        backward: true,
    },
    Case {
        name: "inception_avg_s1_bwd",
        kind: Kind::Avg,
        geo: (3, 1, 1),
        shape: [8, 192, 28, 28],
        backward: true,
    },
];

/// Median and minimum ms of `f`, timed for at least `min_time` seconds after a warm-up.
fn timed(mut f: impl FnMut(), min_time: f64) -> (f64, f64) {
    for _ in 0..3 {
        f();
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 10 || start.elapsed().as_secs_f64() < min_time {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

/// Deterministic values in [-1, 1) (no ties to speak of, so max indices agree).
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn nnpool_plan(case: &Case) -> PoolPlan {
    let (k, s, p) = case.geo;
    let op = match case.kind {
        Kind::Max => Pooling::max(Window::new(&[k, k]).stride(&[s, s]).padding(&[p, p])),
        Kind::Avg => Pooling::avg(Window::new(&[k, k]).stride(&[s, s]).padding(&[p, p])),
        Kind::GlobalAvg => Pooling::GlobalAvg { rank: 2 },
    };
    PoolPlan::new(&op, &case.shape, Layout::ChannelsFirst).expect("a valid case")
}

/// The reference result: the forward output, or the input gradient for `gy`.
fn reference(case: &Case, x: &[f32], gy: &[f32]) -> Vec<f32> {
    let plan = nnpool_plan(case);
    if case.backward {
        let mut gx = vec![0f32; plan.input_len()];
        plan.backward_reference(x, gy, &mut gx)
            .expect("reference backward");
        gx
    } else {
        let mut y = vec![0f32; plan.output_len()];
        plan.forward_reference(x, &mut y, None)
            .expect("reference forward");
        y
    }
}

fn agree(got: &[f32], want: &[f32], kind: Kind) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} values, want {}", got.len(), want.len()));
    }
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let tol = if kind == Kind::Max {
            0.0
        } else {
            1e-4 * (1.0 + b.abs())
        };
        if (a - b).abs() > tol {
            return Err(format!("value {i}: {a} vs reference {b}"));
        }
    }
    Ok(())
}

/// A timed call and the values it gives (for the check), or why the peer cannot run the case.
type Made = (Box<dyn FnMut()>, Vec<f32>);

/// `x` (channels-first) rearranged channels-last.
fn to_nhwc(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for ni in 0..n {
        for ci in 0..c {
            for p in 0..h * w {
                out[(ni * h * w + p) * c + ci] = x[(ni * c + ci) * h * w + p];
            }
        }
    }
    out
}

/// burn on `x` (channels-first values); `nhwc`: stored channels-last, the tensor a permuted
/// view of it (burn's pooling takes NCHW dims, and runs on channels-last strides as they are).
fn burn_case(
    device: &Device,
    case: &Case,
    x: &[f32],
    gy: &[f32],
    nhwc: bool,
) -> Result<Made, String> {
    let (k, s, p) = case.geo;
    let [n, c, h, w] = case.shape;
    let xt = if nhwc {
        Tensor::<4>::from_data(
            TensorData::new(to_nhwc(x, case.shape), [n, h, w, c]),
            device,
        )
        .permute([0, 3, 1, 2])
    } else {
        Tensor::<4>::from_data(TensorData::new(x.to_vec(), case.shape), device)
    };
    let max_opts = MaxPoolOptions::new([k, k])
        .with_stride([s, s])
        .with_padding([p, p]);
    let avg_opts = AvgPoolOptions::new([k, k])
        .with_stride([s, s])
        .with_padding([p, p])
        .with_count_include_pad(true);
    let values =
        |t: Tensor<4>| -> Vec<f32> { t.into_data().try_to_vec::<f32>().expect("f32 values") };
    match (case.kind, case.backward) {
        (Kind::Max, false) => {
            let out = values(max_pool2d(xt.clone(), max_opts.clone()));
            Ok((
                Box::new(move || drop(max_pool2d(xt.clone(), max_opts.clone()))),
                out,
            ))
        }
        (Kind::Avg, false) => {
            let out = values(avg_pool2d(xt.clone(), avg_opts.clone()));
            Ok((
                Box::new(move || drop(avg_pool2d(xt.clone(), avg_opts.clone()))),
                out,
            ))
        }
        (Kind::GlobalAvg, _) => {
            let out = values(adaptive_avg_pool2d(xt.clone(), [1, 1]));
            Ok((
                Box::new(move || drop(adaptive_avg_pool2d(xt.clone(), [1, 1]))),
                out,
            ))
        }
        (Kind::Max, true) => {
            let (y, idx): (Tensor<4>, Tensor<4, Int>) =
                max_pool2d_with_indices(xt.clone(), max_opts.clone());
            let gyt = Tensor::<4>::from_data(TensorData::new(gy.to_vec(), y.dims()), device);
            let run = move || {
                max_pool2d_with_indices_backward(
                    xt.clone(),
                    [k, k],
                    [s, s],
                    [p, p],
                    [1, 1],
                    false,
                    gyt.clone(),
                    idx.clone(),
                )
            };
            let out = values(run());
            Ok((Box::new(move || drop(run())), out))
        }
        (Kind::Avg, true) => {
            let dims = avg_pool2d(xt.clone(), avg_opts).dims();
            let gyt = Tensor::<4>::from_data(TensorData::new(gy.to_vec(), dims), device);
            let run = move || {
                avg_pool2d_backward(xt.clone(), gyt.clone(), [k, k], [s, s], [p, p], true, false)
            };
            let out = values(run());
            Ok((Box::new(move || drop(run())), out))
        }
    }
}

fn candle_case(case: &Case, x: &[f32]) -> Result<Made, String> {
    use candle_core::{Device, Tensor};
    let (k, s, p) = case.geo;
    if case.backward {
        return Err("no pooling backward outside its autograd".into());
    }
    if p != 0 {
        return Err("no padding in its pooling".into());
    }
    let err = |e: candle_core::Error| e.to_string();
    let xt = Tensor::from_vec(x.to_vec(), &case.shape, &Device::Cpu).map_err(err)?;
    let op: Box<dyn Fn(&Tensor) -> candle_core::Result<Tensor>> = match case.kind {
        Kind::Max => Box::new(move |t| t.max_pool2d_with_stride((k, k), (s, s))),
        Kind::Avg => Box::new(move |t| t.avg_pool2d_with_stride((k, k), (s, s))),
        Kind::GlobalAvg => Box::new(|t| t.flatten_from(2)?.mean_keepdim(2)),
    };
    let out = op(&xt)
        .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
        .map_err(err)?;
    Ok((
        Box::new(move || drop(op(&xt).expect("candle pooling"))),
        out,
    ))
}

/// `y` (channels-last, `[n, h, w, c]`) rearranged channels-first.
fn from_nhwc(y: &[f32], [n, h, w, c]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0f32; y.len()];
    for ni in 0..n {
        for p in 0..h * w {
            for ci in 0..c {
                out[(ni * c + ci) * h * w + p] = y[(ni * h * w + p) * c + ci];
            }
        }
    }
    out
}

/// tract on `x` (channels-first values; `nhwc`: stored and pooled channels-last): a model of
/// one pooling node (`MaxPool`, or `SumPool` normalised, counting the padding, for averages
/// and the global average), optimised and made runnable once, then run per call. The input
/// is shared with each run, not copied.
fn tract_case(case: &Case, x: &[f32], nhwc: bool) -> Result<Made, String> {
    use tract_core::internal::*;
    use tract_core::ops::cnn::{MaxPool, PaddingSpec, PoolSpec, SumPool};
    use tract_core::ops::nn::DataFormat;
    if case.backward {
        return Err("no backward: an inference engine".into());
    }
    let (k, s, p) = case.geo;
    let [n, c, h, w] = case.shape;
    let (shape, values, format) = if nhwc {
        ([n, h, w, c], to_nhwc(x, case.shape), DataFormat::NHWC)
    } else {
        (case.shape, x.to_vec(), DataFormat::NCHW)
    };
    let spec = PoolSpec::new(
        format,
        tvec![k, k],
        PaddingSpec::Explicit(tvec![p, p], tvec![p, p]),
        None,
        Some(tvec![s, s]),
        c,
        c,
    );
    let op: Box<dyn TypedOp> = match case.kind {
        Kind::Max => Box::new(MaxPool::new(spec, None)),
        Kind::Avg | Kind::GlobalAvg => Box::new(SumPool::new(spec, true, true)),
    };
    let err = |e: TractError| format!("{e:#}");
    let mut model = TypedModel::default();
    let source = model.add_source("x", f32::fact(shape)).map_err(err)?;
    let pooled = model.wire_node("pool", op, &[source]).map_err(err)?;
    model.select_output_outlets(&pooled).map_err(err)?;
    let plan = model
        .into_optimized()
        .map_err(err)?
        .into_runnable()
        .map_err(err)?;
    let input = Tensor::from_shape(&shape, &values)
        .map_err(err)?
        .into_tvalue();
    let result = plan.run(tvec![input.clone()]).map_err(err)?;
    let got = result[0]
        .to_plain_array_view::<f32>()
        .map_err(err)?
        .iter()
        .copied()
        .collect::<Vec<_>>();
    let got = if nhwc {
        let out = result[0].shape();
        from_nhwc(&got, [out[0], out[1], out[2], out[3]])
    } else {
        got
    };
    Ok((
        Box::new(move || drop(plan.run(tvec![input.clone()]).expect("tract pooling"))),
        got,
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = args.first().and_then(|t| t.parse().ok()).expect("THREADS");
    let json = args.get(1).expect("JSON_FILE");
    let wanted: Option<Vec<&str>> = args.get(2).map(|l| l.split(',').collect());
    let min_time = 0.3;
    let mut rows = Vec::new();
    for (n, case) in CASES.iter().enumerate() {
        if wanted.as_ref().is_some_and(|w| !w.contains(&case.name)) {
            continue;
        }
        let x = data(case.shape.iter().product(), 7 + n as u64);
        let out_len = nnpool_plan(case).output_len();
        let gy = data(out_len, 1000 + n as u64);
        let want = reference(case, &x, &gy);
        // burn marks NdArray deprecated (Flex replaces it); it is still the backend many use
        #[allow(deprecated)]
        let peers: Vec<(&str, &str, Result<Made, String>)> = vec![
            (
                "burn-flex",
                "nchw",
                burn_case(&Device::flex(), case, &x, &gy, false),
            ),
            (
                "burn-flex",
                "nhwc",
                burn_case(&Device::flex(), case, &x, &gy, true),
            ),
            (
                "burn-ndarray",
                "nchw",
                burn_case(&Device::ndarray(), case, &x, &gy, false),
            ),
            (
                "burn-ndarray",
                "nhwc",
                burn_case(&Device::ndarray(), case, &x, &gy, true),
            ),
            ("candle", "nchw", candle_case(case, &x)),
            ("tract", "nchw", tract_case(case, &x, false)),
            ("tract", "nhwc", tract_case(case, &x, true)),
        ];
        for (peer, layout, made) in peers {
            let (mut run, got) = match made {
                Ok(m) => m,
                Err(why) => {
                    eprintln!("# {peer} {} {layout}: not run ({why})", case.name);
                    continue;
                }
            };
            let kind = if case.kind == Kind::GlobalAvg {
                Kind::Avg
            } else {
                case.kind
            };
            if let Err(why) = agree(&got, &want, kind) {
                eprintln!(
                    "# {peer} {} {layout}: wrong result, not timed ({why})",
                    case.name
                );
                continue;
            }
            let (med, low) = timed(&mut run, min_time);
            println!(
                "{peer:12} {:22} {layout:5} {threads:2}  {med:9.3} ms  (min {low:.3})",
                case.name
            );
            rows.push(serde_json::json!({
                "peer": peer, "case": case.name, "layout": layout, "threads": threads,
                "median_ms": med, "min_ms": low,
            }));
        }
    }
    let text = serde_json::to_string_pretty(&rows).expect("JSON");
    std::fs::write(json, text).expect("writing the JSON file");
}
