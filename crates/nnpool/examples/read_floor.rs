//! How fast this machine reads memory, against the copy `nnpool bench` compares with: a
//! pooling's forward must read its whole input, while the copy of "the same bytes" (input +
//! output) reads only half of them. On cases larger than the cache the read alone can take
//! longer than that copy, and then no kernel gets within 1× of it.
//!
//! `cargo run --release -p nnpool --example read_floor [INPUT_MB OUTPUT_MB]` (default: the
//! cases larger than the cache, vgg_max_224, resnet_stem_max and max3d). For each case and
//! thread count (1 and all of the pool's) it prints the median of 15 runs of: reading the
//! input's bytes once (a max over them, 32 independent lanes, so that only memory bounds it;
//! the faster of reading with and without software prefetches), and `nnpool bench`'s copy of
//! the input's and output's bytes (half of them read, half written, into an existing buffer).
//! Their ratio is the least `× copy` a forward kernel that reads its input once can show.
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Instant;

/// A max over `x` that the compiler vectorises: 32 independent lanes (a few vectors).
fn max_of(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 32];
    for chunk in x.chunks_exact(32) {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = a.max(v);
        }
    }
    acc.iter().fold(f32::NEG_INFINITY, |m, &a| m.max(a))
}

/// [`max_of`] asking for the line 16 KiB ahead of each one it reads (into L2), as the
/// kernels for inputs larger than the cache do: one core's hardware prefetcher alone leaves
/// the memory idle part of the time.
fn max_of_prefetching(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 32];
    for (i, chunk) in x.chunks_exact(32).enumerate() {
        #[cfg(target_arch = "x86_64")]
        for line in [0, 16] {
            let ahead = x.as_ptr().wrapping_add(32 * i + line + 4096).cast::<i8>();
            // SAFETY: SSE is part of every x86-64 CPU, and a prefetch is only a hint: it reads
            // nothing and cannot fault, whatever the address (`wrapping_add`: no UB past x).
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(ahead) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i; // (no prefetch instruction: the plain read twice)
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = a.max(v);
        }
    }
    acc.iter().fold(f32::NEG_INFINITY, |m, &a| m.max(a))
}

fn median_ms(mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    // (case, input MB, output MB): f32, N = 8 (max3d N = 2)
    let cases: Vec<(&str, f64, f64)> = match args[..] {
        [input, output] => vec![("given", input, output)],
        _ => vec![
            ("vgg_max_224", 102.76, 25.69),
            ("resnet_stem_max", 25.69, 6.42),
            ("max3d", 25.69, 3.21),
        ],
    };
    let all = rayon::current_num_threads();
    let mut threads = vec![1];
    if all > 1 {
        threads.push(all);
    }
    println!("case             threads  read input ms   GB/s  copy ms   read / copy");
    for (case, input_mb, output_mb) in cases {
        let n = (input_mb * 1e6 / 4.0) as usize / 32 * 32;
        let x: Vec<f32> = (0..n).map(|i| (i % 977) as f32).collect();
        // the copy of input + output bytes: half of them read, half written
        let half = ((input_mb + output_mb) * 1e6 / 8.0) as usize;
        let src: Vec<f32> = (0..half).map(|i| (i % 977) as f32).collect();
        let mut dst = vec![0f32; half];
        for &t in &threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("a thread pool");
            let (read, copy) = pool.install(|| {
                let part = n.div_ceil(t).div_ceil(32) * 32;
                let read_by = |reduce: fn(&[f32]) -> f32| {
                    median_ms(|| {
                        let m = x
                            .par_chunks(part.max(32))
                            .map(reduce)
                            .reduce(|| f32::NEG_INFINITY, f32::max);
                        black_box(m);
                    })
                };
                let read = read_by(max_of).min(read_by(max_of_prefetching));
                let part = half.div_ceil(t).max(1);
                let copy = median_ms(|| {
                    dst.par_chunks_mut(part)
                        .zip(src.par_chunks(part))
                        .for_each(|(d, s)| d.copy_from_slice(s));
                    black_box(&dst);
                });
                (read, copy)
            });
            println!(
                "{case:<16} {t:>7}  {read:>13.3}  {:>5.1}  {copy:>7.3}  {:>11.2}",
                input_mb / read,
                read / copy
            );
        }
    }
}
