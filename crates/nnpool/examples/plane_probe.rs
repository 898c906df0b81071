//! Times one pooling problem on cache-resident data (a quick probe for kernel work):
//! `cargo run --release -p nnpool --example plane_probe -- C H W K S P [avg|gap]` (`gap`:
//! global average, K S P unused)
//! (`PROBE_N` sets the batch, default 1; `PROBE_NHWC=1` the channels-last layout; `PROBE_OFF`
//! moves the output buffer (and the backward's input gradient) by that many values, to see
//! address-dependent stalls, `PROBE_GX_OFF` the input gradient alone, `PROBE_IDX_OFF` the
//! indices; `PROBE_D` makes it 3-D with that many input slices, the window K×K×K;
//! `PROBE_BWD=1` times the max backward from the forward pass's indices instead;
//! `PROBE_ALLOC=1` the allocating call; `PROBE_IDX=1` times the max forward with indices;
//! `PROBE_RANDOM=1` fills the input with pseudo-random values (as `nnpool bench` does) where
//! it is otherwise a short repeating pattern; `PROBE_HUGE_IN=1` puts the input on huge pages;
//! `PROBE_HUGE=1` puts the output buffer on huge pages, `PROBE_HUGE_GX=1` the backward's input
//! gradient; `PROBE_DTYPE=f16|bf16|f64` another element type than f32; op `lp`: Lp pooling
//! with p = 2, whose `PROBE_BWD=1` times the backward from the input, as does `avg`'s;
//! `PROBE_EXCLUDE=1` leaves the padding out of the average's divisor, as ONNX's default does)
use nnpool::{bf16, f16, Element, Layout, PoolPlan, Pooling, Window};
use std::time::Instant;

fn main() {
    match std::env::var("PROBE_DTYPE").as_deref() {
        Ok("f16") => probe::<f16>(),
        Ok("bf16") => probe::<bf16>(),
        Ok("f64") => probe::<f64>(),
        _ => probe::<f32>(),
    }
}

fn probe<T: Element>() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, d: usize| a.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (c, h, w, k, s, p) = (n(0, 64), n(1, 28), n(2, 28), n(3, 3), n(4, 1), n(5, 1));
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let depth = env("PROBE_D");
    let win = match depth {
        Some(_) => Window::new(&[k, k, k])
            .stride(&[s, s, s])
            .padding(&[p, p, p]),
        None => Window::new(&[k, k]).stride(&[s, s]).padding(&[p, p]),
    };
    let op = if a.get(6).map(|s| s == "avg").unwrap_or(false) {
        Pooling::Avg {
            window: win,
            count_include_pad: env("PROBE_EXCLUDE") != Some(1),
            divisor_override: None,
        }
    } else if a.get(6).map(|s| s == "gap").unwrap_or(false) {
        Pooling::GlobalAvg { rank: 2 }
    } else if a.get(6).map(|s| s == "lp").unwrap_or(false) {
        Pooling::lp(win, 2.0)
    } else {
        Pooling::max(win)
    };
    let batch = env("PROBE_N").unwrap_or(1);
    let nhwc = env("PROBE_NHWC") == Some(1);
    let shape: Vec<usize> = match (depth, nhwc) {
        (Some(d), true) => vec![batch, d, h, w, c],
        (Some(d), false) => vec![batch, c, d, h, w],
        (None, true) => vec![batch, h, w, c],
        (None, false) => vec![batch, c, h, w],
    };
    let layout = if nhwc {
        Layout::ChannelsLast
    } else {
        Layout::ChannelsFirst
    };
    let plan = PoolPlan::new(&op, &shape, layout).unwrap();
    let c = c * batch * depth.unwrap_or(1);
    let mut x: Vec<T> = match env("PROBE_HUGE_IN") {
        Some(1) => nnpool::zeroed(c * h * w),
        _ => vec![T::default(); c * h * w],
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let random = env("PROBE_RANDOM") == Some(1);
    for (i, v) in x.iter_mut().enumerate() {
        *v = T::from_f64(match random {
            true => {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64
            }
            false => ((i * 7919) % 1000) as f64 / 100.0,
        });
    }
    let off = env("PROBE_OFF").unwrap_or(0);
    let mut y_store: Vec<T> = match env("PROBE_HUGE") {
        Some(1) => nnpool::zeroed(plan.output_len() + off),
        _ => vec![T::default(); plan.output_len() + off],
    };
    let y = &mut y_store[off..];
    let reps = std::env::var("PROBE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or((20_000_000 / (c * h * w)).max(10));
    let batches = if std::env::var("PROBE_REPS").is_ok() {
        1
    } else {
        15
    };
    // run inside the pool, as a framework's worker would: called from outside, every call
    // pays a wake-up of the pool's threads, which dominates small problems
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap();
    let backward = env("PROBE_BWD") == Some(1);
    let with_indices = plan.pooling().has_indices();
    let forward_indices = env("PROBE_IDX") == Some(1) && with_indices && !backward;
    let uses_indices = backward || forward_indices;
    let idx_off = if uses_indices {
        env("PROBE_IDX_OFF").unwrap_or(0)
    } else {
        0
    };
    let idx_len = if uses_indices { plan.output_len() } else { 0 };
    let mut idx_store = vec![0i64; idx_len + idx_off];
    let idx = &mut idx_store[idx_off..];
    let gx_off = if backward {
        env("PROBE_GX_OFF").unwrap_or(off)
    } else {
        0
    };
    let gx_len = if backward { x.len() } else { 0 } + gx_off;
    let mut gx_store: Vec<T> = match env("PROBE_HUGE_GX") {
        Some(1) => nnpool::zeroed(gx_len),
        _ => vec![T::default(); gx_len],
    };
    let gx = &mut gx_store[gx_off..];
    let best = pool.install(|| {
        if backward {
            match with_indices {
                true => plan.forward(&x, y, Some(&mut *idx)).unwrap(),
                false => plan.forward(&x, y, None).unwrap(),
            }
        }
        let alloc = env("PROBE_ALLOC") == Some(1);
        let mut call = || match (backward, alloc) {
            (true, _) if !with_indices => plan.backward(&x, y, gx).unwrap(),
            (true, false) => plan.backward_with_indices(idx, y, gx).unwrap(),
            (true, true) => drop(std::hint::black_box(
                plan.backward_with_indices_to_vec(idx, y).unwrap(),
            )),
            (false, false) if forward_indices => plan.forward(&x, y, Some(&mut *idx)).unwrap(),
            (false, false) => plan.forward(&x, y, None).unwrap(),
            (false, true) => drop(std::hint::black_box(plan.forward_to_vec(&x).unwrap())),
        };
        call();
        // the fastest of 15 batches: this machine's neighbours make single timings noisy
        let mut best = f64::INFINITY;
        for _ in 0..batches {
            let t = Instant::now();
            for _ in 0..reps {
                call();
            }
            best = best.min(t.elapsed().as_nanos() as f64 / reps as f64);
        }
        best
    });
    println!(
        "{:.1} ns per call, {:.1} ns per plane (best batch)",
        best,
        best / c as f64
    );
}
