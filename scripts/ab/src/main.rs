//! Same-process A/B: resnet_stem_max (`2d`: max 3×3 stride 2 pad 1, [8, 112, 112, 64]) or
//! max3d (`3d`: max 3×3×3 stride 2 pad 1, [2, 16, 56, 56, 64]), channels-last, this tree's
//! kernels against the base checkout's, alternating, with a copy of the input timed in the
//! same rounds. Both results are compared first.
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let three = args.get(1).is_some_and(|s| s == "3d");
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let (name, shape, rank) = if three {
        ("max3d", vec![2, 16, 56, 56, 64], 3)
    } else {
        ("resnet_stem_max", vec![8, 112, 112, 64], 2)
    };
    let (k, s, p) = (vec![3; rank], vec![2; rank], vec![1; rank]);
    let len: usize = shape.iter().product();
    let x: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1000) as f32).collect();
    let window = nnpool::Window::new(&k).stride(&s).padding(&p);
    let plan = nnpool::PoolPlan::new(
        &nnpool::Pooling::max(window),
        &shape,
        nnpool::Layout::ChannelsLast,
    )
    .unwrap();
    let base_window = nnpool_base::Window::new(&k).stride(&s).padding(&p);
    let base_plan = nnpool_base::PoolPlan::new(
        &nnpool_base::Pooling::max(base_window),
        &shape,
        nnpool_base::Layout::ChannelsLast,
    )
    .unwrap();
    let mut y = vec![0f32; plan.output_len()];
    let mut y_base = vec![0f32; plan.output_len()];
    let mut copy = vec![0f32; len];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let (mut t_this, mut t_base, mut t_copy) = (vec![], vec![], vec![]);
    pool.install(|| {
        plan.forward(&x, &mut y, None).unwrap();
        base_plan.forward(&x, &mut y_base, None).unwrap();
        assert!(y == y_base, "the two checkouts disagree");
        let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
        for _ in 0..10 {
            for _ in 0..5 {
                let t = Instant::now();
                base_plan.forward(&x, &mut y_base, None).unwrap();
                t_base.push(ms(t));
            }
            for _ in 0..5 {
                let t = Instant::now();
                plan.forward(&x, &mut y, None).unwrap();
                t_this.push(ms(t));
            }
            for _ in 0..5 {
                let t = Instant::now();
                copy.copy_from_slice(&x);
                t_copy.push(ms(t));
            }
        }
    });
    // read the copy, so that it is not optimised away
    let check = copy[len / 2];
    println!(
        "{name} nhwc, {threads} thread(s): base {:.3} ms, this tree {:.3} ms, copy of the input {:.3} ms (x{check})",
        median(t_base),
        median(t_this),
        median(t_copy),
    );
}
