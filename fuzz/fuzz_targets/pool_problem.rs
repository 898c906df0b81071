//! Arbitrary pooling problems (op, shape, options, layout, data): an invalid problem must give
//! an error; a valid one must give the reference's result from the fast path (max values and
//! indices exactly, averages within rounding), forward and backward — never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nnpool::{AutoPad, Layout, Padding, PoolPlan, Pooling, Window};

fn take(data: &mut &[u8]) -> u8 {
    match data.split_first() {
        Some((&b, rest)) => {
            *data = rest;
            b
        }
        None => 0,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut d = bytes;
    let rank = (take(&mut d) % 4) as usize; // 0..3 (0 is invalid)
    let layout = if take(&mut d) % 2 == 0 { Layout::ChannelsFirst } else { Layout::ChannelsLast };
    let batched = take(&mut d) % 2 == 0;
    let n = (take(&mut d) % 3) as usize;
    let c = (take(&mut d) % 4) as usize;
    let spatial: Vec<usize> = (0..rank).map(|_| (take(&mut d) % 12) as usize).collect();
    let list = |d: &mut &[u8], m: u8| -> Vec<usize> { (0..rank).map(|_| (take(d) % m) as usize).collect() };
    let kernel = list(&mut d, 6);
    let stride = list(&mut d, 4);
    let pad = list(&mut d, 4);
    let dil = list(&mut d, 3);
    let ceil = take(&mut d) % 2 == 0;
    let padding = match take(&mut d) % 4 {
        0 => Padding::Symmetric(pad.clone()),
        1 => Padding::Explicit { begin: pad.clone(), end: list(&mut d, 4) },
        2 => Padding::Auto(AutoPad::SameUpper),
        _ => Padding::Auto(AutoPad::Valid),
    };
    let window = Window { kernel: kernel.clone(), stride, padding, dilation: dil, ceil_mode: ceil };
    let op = match take(&mut d) % 6 {
        0 => Pooling::max(window),
        1 => Pooling::avg(window),
        2 => Pooling::Avg { window, count_include_pad: false, divisor_override: Some(3) },
        3 => Pooling::adaptive_max(&kernel),
        4 => Pooling::adaptive_avg(&kernel),
        _ => Pooling::GlobalMax { rank },
    };
    let mut shape = Vec::new();
    if batched {
        shape.push(n);
    }
    match layout {
        Layout::ChannelsFirst => {
            shape.push(c);
            shape.extend(&spatial);
        }
        Layout::ChannelsLast => {
            shape.extend(&spatial);
            shape.push(c);
        }
    }
    let Ok(plan) = PoolPlan::new(&op, &shape, layout) else { return };
    let x: Vec<f32> = (0..plan.input_len())
        .map(|_| match take(&mut d) {
            250 => f32::NAN,
            251 => f32::INFINITY,
            252 => f32::NEG_INFINITY,
            b => (b % 9) as f32 - 4.0,
        })
        .collect();
    let with_idx = op.has_indices();
    let mut y = vec![0f32; plan.output_len()];
    let mut yr = vec![0f32; plan.output_len()];
    let mut i = vec![0i64; if with_idx { plan.output_len() } else { 0 }];
    let mut ir = i.clone();
    plan.forward(&x, &mut y, with_idx.then_some(&mut i[..])).unwrap();
    plan.forward_reference(&x, &mut yr, with_idx.then_some(&mut ir[..])).unwrap();
    for (a, b) in y.iter().zip(&yr) {
        if with_idx {
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{a} vs {b}");
        } else {
            assert!((a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
    assert_eq!(i, ir);
    let gy: Vec<f32> = (0..plan.output_len()).map(|k| (k % 5) as f32).collect();
    let mut g = vec![0f32; plan.input_len()];
    let mut gr = vec![0f32; plan.input_len()];
    plan.backward(&x, &gy, &mut g).unwrap();
    plan.backward_reference(&x, &gy, &mut gr).unwrap();
    for (a, b) in g.iter().zip(&gr) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "backward {a} vs {b}");
    }
});
