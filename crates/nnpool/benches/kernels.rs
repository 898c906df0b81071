//! Kernel benchmarks (divan): the fast path, the reference oracle and a plain copy of the same
//! bytes, on layers of real networks (smaller batches than `nnpool bench`, which is the
//! end-to-end benchmark with GB/s and ratios). Run with `cargo bench -p nnpool`.

use divan::{black_box, Bencher};
use nnpool::{Layout, PoolPlan, Pooling, Window};

fn main() {
    divan::main();
}

fn plan(op: Pooling, shape: &[usize], layout: Layout) -> (PoolPlan, Vec<f32>) {
    let plan = PoolPlan::new(&op, shape, layout).unwrap();
    let x = (0..plan.input_len())
        .map(|i| ((i * 7919) % 1000) as f32 * 1e-3)
        .collect();
    (plan, x)
}

fn cases() -> Vec<(&'static str, Pooling, Vec<usize>, Layout)> {
    let max = |k: usize, s: usize, p: usize| {
        Pooling::max(Window::new(&[k, k]).stride(&[s, s]).padding(&[p, p]))
    };
    let avg = |k: usize, s: usize, p: usize| {
        Pooling::avg(Window::new(&[k, k]).stride(&[s, s]).padding(&[p, p]))
    };
    vec![
        (
            "resnet_stem_max/nchw",
            max(3, 2, 1),
            vec![1, 64, 112, 112],
            Layout::ChannelsFirst,
        ),
        (
            "resnet_stem_max/nhwc",
            max(3, 2, 1),
            vec![1, 112, 112, 64],
            Layout::ChannelsLast,
        ),
        (
            "inception_avg_s1/nchw",
            avg(3, 1, 1),
            vec![1, 192, 28, 28],
            Layout::ChannelsFirst,
        ),
        (
            "inception_avg_s1/nhwc",
            avg(3, 1, 1),
            vec![1, 28, 28, 192],
            Layout::ChannelsLast,
        ),
        (
            "sppf_max5/nchw",
            max(5, 1, 2),
            vec![1, 256, 20, 20],
            Layout::ChannelsFirst,
        ),
        (
            "resnet_gap/nchw",
            Pooling::GlobalAvg { rank: 2 },
            vec![8, 512, 7, 7],
            Layout::ChannelsFirst,
        ),
        // YOLO's SPP: stride-1 windows wider than the fused kernels' (doubling runs and van
        // Herk blocks channels-first, van Herk folds channels-last)
        (
            "spp_max9/nchw",
            max(9, 1, 4),
            vec![1, 256, 20, 20],
            Layout::ChannelsFirst,
        ),
        (
            "spp_max13/nchw",
            max(13, 1, 6),
            vec![1, 256, 20, 20],
            Layout::ChannelsFirst,
        ),
        (
            "spp_max13/nhwc",
            max(13, 1, 6),
            vec![1, 20, 20, 256],
            Layout::ChannelsLast,
        ),
        // the separable channels-last passes with a channel count that is not a multiple of
        // 16 (each run's last vector masked)
        (
            "large_avg_24ch/nhwc",
            avg(7, 1, 3),
            vec![1, 56, 56, 24],
            Layout::ChannelsLast,
        ),
    ]
}

const NAMES: [&str; 10] = [
    "resnet_stem_max/nchw",
    "resnet_stem_max/nhwc",
    "inception_avg_s1/nchw",
    "inception_avg_s1/nhwc",
    "sppf_max5/nchw",
    "spp_max9/nchw",
    "spp_max13/nchw",
    "spp_max13/nhwc",
    "resnet_gap/nchw",
    "large_avg_24ch/nhwc",
];

fn find(name: &str) -> (PoolPlan, Vec<f32>) {
    let (_, op, shape, layout) = cases().into_iter().find(|c| c.0 == name).unwrap();
    plan(op, &shape, layout)
}

#[divan::bench(args = NAMES)]
fn fast(b: Bencher, name: &str) {
    let (p, x) = find(name);
    let mut y = vec![0f32; p.output_len()];
    b.counter(divan::counter::BytesCount::new(
        (p.input_len() + p.output_len()) * 4,
    ))
    .bench_local(|| p.forward(black_box(&x), &mut y, None).unwrap());
}

#[divan::bench(args = NAMES, sample_count = 10)]
fn reference(b: Bencher, name: &str) {
    let (p, x) = find(name);
    let mut y = vec![0f32; p.output_len()];
    b.counter(divan::counter::BytesCount::new(
        (p.input_len() + p.output_len()) * 4,
    ))
    .bench_local(|| p.forward_reference(black_box(&x), &mut y, None).unwrap());
}

#[divan::bench(args = NAMES)]
fn copy_same_bytes(b: Bencher, name: &str) {
    let (p, _) = find(name);
    let n = (p.input_len() + p.output_len()) / 2;
    let src = vec![1f32; n];
    let mut dst = vec![0f32; n];
    b.counter(divan::counter::BytesCount::new(n * 8))
        .bench_local(|| dst.copy_from_slice(black_box(&src)));
}

/// The f16 and bf16 forward (the f32 kernels on widened parts, rounded once at the end).
#[divan::bench(
    args = ["resnet_stem_max/nchw", "inception_avg_s1/nchw", "inception_avg_s1/nhwc"],
    types = [half::f16, half::bf16],
)]
fn fast_half<T: nnpool::Element>(b: Bencher, name: &str) {
    let (p, x) = find(name);
    let x: Vec<T> = x.iter().map(|&v| T::from_f64(v as f64)).collect();
    let mut y = vec![T::default(); p.output_len()];
    b.counter(divan::counter::BytesCount::new(
        (p.input_len() + p.output_len()) * std::mem::size_of::<T>(),
    ))
    .bench_local(|| p.forward(black_box(&x), &mut y, None).unwrap());
}
