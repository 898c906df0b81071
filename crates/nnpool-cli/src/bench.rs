//! `nnpool bench`: the layers of real networks, timed against a plain copy of the same bytes.
//!
//! For every case, layout and thread count: warm up, then time repeated calls until the median
//! is stable (at least 10 calls and 0.3 s); check the result against the reference once; and in
//! the same run time a plain memory copy that moves as many bytes as the op must (input +
//! output for forward passes; grad_output + indices + grad_input for max backward;
//! grad_output + grad_input for average backward). The headline time is the allocating call
//! (a fresh output buffer each time, as users of the peers pay it); the into-a-buffer time is
//! reported beside it.

use crate::Failure;
use indicatif::{ProgressBar, ProgressStyle};
use nnpool::{Layout, PoolPlan, Pooling, Window};
use rayon::prelude::*;
use serde::Serialize;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Cases to run (comma-separated names; default: all). `--case list` prints them.
    #[arg(long, value_name = "NAME,..")]
    pub case: Option<String>,
    /// Layouts: nchw, nhwc or both.
    #[arg(long, default_value = "both", value_name = "nchw|nhwc|both")]
    pub layout: String,
    /// Thread counts (comma-separated; default: 1 and all cores).
    #[arg(long, value_name = "N[,N..]")]
    pub threads: Option<String>,
    /// Write the results as a JSON array to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Minimum measuring time per run, in seconds.
    #[arg(long, default_value_t = 0.3, value_name = "S")]
    pub min_time: f64,
}

/// What a case times.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pass {
    Forward,
    /// Max backward from the forward pass's indices.
    BackwardFromIndices,
    Backward,
}

/// A benchmark case: a layer of a real network (f32).
pub struct Case {
    pub name: &'static str,
    pub describe: &'static str,
    op: fn() -> Pooling,
    /// Channels-first shape.
    pub shape: &'static [usize],
    pass: Pass,
}

fn max2(k: usize, s: usize, p: usize) -> Pooling {
    Pooling::max(Window::new(&[k, k]).stride(&[s, s]).padding(&[p, p]))
}

fn avg2(k: usize, s: usize, p: usize) -> Pooling {
    Pooling::avg(Window::new(&[k, k]).stride(&[s, s]).padding(&[p, p]))
}

pub const CASES: &[Case] = &[
    Case {
        name: "resnet_stem_max",
        describe: "max 3x3/2 pad 1",
        op: || max2(3, 2, 1),
        shape: &[8, 64, 112, 112],
        pass: Pass::Forward,
    },
    Case {
        name: "resnet_gap",
        describe: "global average",
        op: || Pooling::GlobalAvg { rank: 2 },
        shape: &[8, 512, 7, 7],
        pass: Pass::Forward,
    },
    Case {
        name: "vgg_max_224",
        describe: "max 2x2/2",
        op: || max2(2, 2, 0),
        shape: &[8, 64, 224, 224],
        pass: Pass::Forward,
    },
    Case {
        name: "vgg_max_14",
        describe: "max 2x2/2",
        op: || max2(2, 2, 0),
        shape: &[8, 512, 14, 14],
        pass: Pass::Forward,
    },
    Case {
        name: "inception_max_s1",
        describe: "max 3x3/1 pad 1",
        op: || max2(3, 1, 1),
        shape: &[8, 192, 28, 28],
        pass: Pass::Forward,
    },
    Case {
        name: "inception_avg_s1",
        describe: "avg 3x3/1 pad 1",
        op: || avg2(3, 1, 1),
        shape: &[8, 192, 28, 28],
        pass: Pass::Forward,
    },
    Case {
        name: "alexnet_max",
        describe: "max 3x3/2",
        op: || max2(3, 2, 0),
        shape: &[8, 96, 55, 55],
        pass: Pass::Forward,
    },
    Case {
        name: "large_avg",
        describe: "avg 7x7/1 pad 3",
        op: || avg2(7, 1, 3),
        shape: &[8, 64, 56, 56],
        pass: Pass::Forward,
    },
    Case {
        name: "sppf_max5",
        describe: "max 5x5/1 pad 2",
        op: || max2(5, 1, 2),
        shape: &[8, 256, 20, 20],
        pass: Pass::Forward,
    },
    Case {
        name: "max3d",
        describe: "max 3x3x3/2 pad 1",
        op: || {
            Pooling::max(
                Window::new(&[3, 3, 3])
                    .stride(&[2, 2, 2])
                    .padding(&[1, 1, 1]),
            )
        },
        shape: &[2, 64, 16, 56, 56],
        pass: Pass::Forward,
    },
    Case {
        name: "resnet_stem_max_bwd",
        describe: "max 3x3/2 pad 1, backward",
        op: || max2(3, 2, 1),
        shape: &[8, 64, 112, 112],
        pass: Pass::BackwardFromIndices,
    },
    Case {
        name: "vgg_max_224_bwd",
        describe: "max 2x2/2, backward",
        op: || max2(2, 2, 0),
        shape: &[8, 64, 224, 224],
        pass: Pass::BackwardFromIndices,
    },
    Case {
        name: "inception_avg_s1_bwd",
        describe: "avg 3x3/1 pad 1, backward",
        op: || avg2(3, 1, 1),
        shape: &[8, 192, 28, 28],
        pass: Pass::Backward,
    },
];

/// One result row (the JSON keys are part of the interface).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub case: String,
    pub layout: String,
    pub threads: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub gbps: f64,
    pub copy_ms: f64,
    pub into_buffer_median_ms: f64,
    pub ratio_to_copy: f64,
    pub bytes: u64,
    pub kernels: String,
}

fn times(min_time: f64, mut f: impl FnMut()) -> Vec<f64> {
    // warm-up
    let t0 = Instant::now();
    for _ in 0..3 {
        f();
    }
    let per = t0.elapsed().as_secs_f64() / 3.0;
    let n = ((min_time / per.max(1e-7)) as usize).clamp(10, 2000);
    let mut v = Vec::with_capacity(n);
    let budget = Duration::from_secs_f64(min_time.max(per * 10.0) * 3.0);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64() * 1e3);
        if start.elapsed() > budget && v.len() >= 10 {
            break;
        }
    }
    v
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

fn minimum(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn nhwc_shape(s: &[usize]) -> Vec<usize> {
    let mut v = vec![s[0]];
    v.extend_from_slice(&s[2..]);
    v.push(s[1]);
    v
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// Copies `bytes` (as f32 words; half read, half written) with `threads` threads.
fn copy_time(bytes: usize, min_time: f64) -> f64 {
    let n = bytes / 8; // read n*4 bytes, write n*4 bytes
    let src = random(n, 3);
    let mut dst = vec![0f32; n];
    let parts = rayon::current_num_threads();
    let chunk = n.div_ceil(parts).max(1);
    let t = times(min_time, || {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
        black_box(&dst);
    });
    median(&t)
}

/// Checks the fast result against the reference once; returns a description of a mismatch.
fn check(case: &Case, plan: &PoolPlan, x: &[f32], gy: &[f32], idx: &[i64]) -> Result<(), String> {
    let is_max = plan.pooling().has_indices();
    let (fast, reference) = match case.pass {
        Pass::Forward => {
            let mut a = vec![0f32; plan.output_len()];
            let mut b = vec![0f32; plan.output_len()];
            plan.forward(x, &mut a, None).map_err(|e| e.to_string())?;
            plan.forward_reference(x, &mut b, None)
                .map_err(|e| e.to_string())?;
            (a, b)
        }
        Pass::BackwardFromIndices | Pass::Backward => {
            let mut a = vec![0f32; plan.input_len()];
            let mut b = vec![0f32; plan.input_len()];
            if case.pass == Pass::BackwardFromIndices {
                plan.backward_with_indices(idx, gy, &mut a)
                    .map_err(|e| e.to_string())?;
            } else {
                plan.backward(x, gy, &mut a).map_err(|e| e.to_string())?;
            }
            plan.backward_reference(x, gy, &mut b)
                .map_err(|e| e.to_string())?;
            (a, b)
        }
    };
    for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
        let tol = if is_max { 0.0 } else { 1e-5 * (1.0 + b.abs()) };
        if (a - b).abs() > tol && !(a.is_nan() && b.is_nan()) {
            return Err(format!(
                "{}: element {i}: fast {a} vs reference {b}",
                case.name
            ));
        }
    }
    Ok(())
}

pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    let selected: Vec<&Case> = match args.case.as_deref() {
        Some("list") => {
            for c in CASES {
                println!("{:22} {:28} {:?}", c.name, c.describe, c.shape);
            }
            return Ok(());
        }
        None => CASES.iter().collect(),
        Some(list) => list
            .split(',')
            .map(|n| {
                CASES.iter().find(|c| c.name == n.trim()).ok_or_else(|| {
                    Failure::invalid(format!(
                        "--case: unknown case '{n}'; known: {}",
                        CASES.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let layouts: Vec<Layout> = match args.layout.as_str() {
        "nchw" => vec![Layout::ChannelsFirst],
        "nhwc" => vec![Layout::ChannelsLast],
        "both" => vec![Layout::ChannelsFirst, Layout::ChannelsLast],
        other => {
            return Err(Failure::invalid(format!(
                "--layout: expected nchw, nhwc or both, but got '{other}'"
            )))
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<usize> = match &args.threads {
        None if cores > 1 => vec![1, cores],
        None => vec![1],
        Some(t) => crate::options::usize_list("threads", t, 1, "must be at least 1")?,
    };
    let runs = selected.len() * layouts.len() * threads.len();
    let bar = ProgressBar::new(runs as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows = Vec::new();
    for case in &selected {
        for &layout in &layouts {
            let shape = match layout {
                Layout::ChannelsFirst => case.shape.to_vec(),
                Layout::ChannelsLast => nhwc_shape(case.shape),
            };
            let lname = if layout == Layout::ChannelsFirst {
                "nchw"
            } else {
                "nhwc"
            };
            let plan = PoolPlan::new(&(case.op)(), &shape, layout)?;
            let x = random(plan.input_len(), 1);
            let gy = random(plan.output_len(), 2);
            let mut idx = Vec::new();
            if case.pass == Pass::BackwardFromIndices {
                idx = vec![0i64; plan.output_len()];
                let mut y = vec![0f32; plan.output_len()];
                plan.forward(&x, &mut y, Some(&mut idx))?;
            }
            bar.set_message(format!("checking {} {lname}", case.name));
            check(case, &plan, &x, &gy, &idx).map_err(Failure::Invalid)?;
            let (inn, out) = (plan.input_len() * 4, plan.output_len() * 4);
            let bytes = match case.pass {
                Pass::Forward => inn + out,
                Pass::BackwardFromIndices => out + plan.output_len() * 8 + inn,
                Pass::Backward => out + inn,
            };
            for &t in &threads {
                bar.set_message(format!("{} {lname} {t} thread(s)", case.name));
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .map_err(|e| Failure::invalid(format!("--threads: {e}")))?;
                let row = pool.install(|| {
                    let fresh = |plan: &PoolPlan| match case.pass {
                        Pass::Forward => {
                            black_box(plan.forward_to_vec(&x).expect("validated"));
                        }
                        Pass::BackwardFromIndices => {
                            let gx = plan.backward_with_indices_to_vec(&idx, &gy);
                            black_box(gx.expect("validated"));
                        }
                        Pass::Backward => {
                            black_box(plan.backward_to_vec(&x, &gy).expect("validated"));
                        }
                    };
                    let alloc = times(args.min_time, || fresh(&plan));
                    let mut buf = vec![0f32; plan.input_len().max(plan.output_len())];
                    let into = times(args.min_time, || {
                        match case.pass {
                            Pass::Forward => plan.forward(&x, &mut buf[..plan.output_len()], None),
                            Pass::BackwardFromIndices => {
                                plan.backward_with_indices(&idx, &gy, &mut buf[..plan.input_len()])
                            }
                            Pass::Backward => plan.backward(&x, &gy, &mut buf[..plan.input_len()]),
                        }
                        .expect("validated");
                        black_box(&buf);
                    });
                    let copy_ms = copy_time(bytes, args.min_time);
                    let median_ms = median(&alloc);
                    Row {
                        case: case.name.to_string(),
                        layout: lname.to_string(),
                        threads: t,
                        median_ms,
                        min_ms: minimum(&alloc),
                        gbps: bytes as f64 / (median_ms * 1e-3) / 1e9,
                        copy_ms,
                        into_buffer_median_ms: median(&into),
                        ratio_to_copy: median_ms / copy_ms,
                        bytes: bytes as u64,
                        kernels: nnpool::active_kernels().to_string(),
                    }
                });
                rows.push(row);
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    println!(
        "{:22} {:6} {:>3} {:>10} {:>10} {:>8} {:>10} {:>9} {:>10}",
        "case", "layout", "thr", "median ms", "min ms", "GB/s", "copy ms", "x copy", "buffer ms"
    );
    for r in &rows {
        println!(
            "{:22} {:6} {:>3} {:>10.3} {:>10.3} {:>8.1} {:>10.3} {:>9.2} {:>10.3}",
            r.case,
            r.layout,
            r.threads,
            r.median_ms,
            r.min_ms,
            r.gbps,
            r.copy_ms,
            r.ratio_to_copy,
            r.into_buffer_median_ms
        );
    }
    println!(
        "kernels: {}; f32; every result checked against the reference",
        nnpool::active_kernels()
    );
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| Failure::Io(e.to_string()))?;
        let tmp = path.with_extension("json.nnpool-tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Failure::Io(format!("{}: cannot write: {e}", path.display()))
            })?;
    }
    Ok(())
}
