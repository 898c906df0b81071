//! Tensors over 2^31 elements: offsets are 64-bit everywhere. One u8 plane of 2^31 + 7 elements
//! (few channels, large spatial size), max pooled; spot checks against values placed in it.

use nnpool::{Layout, PoolPlan, Pooling, Window};

#[test]
fn a_plane_over_two_to_the_31_elements() {
    let n = (1usize << 31) + 7;
    let mut x = vec![0u8; n];
    // maxima at known places, including past 2^31
    let marks = [
        (5usize, 200u8),
        (1 << 30, 150),
        ((1 << 31) - 1, 99),
        ((1 << 31) + 5, 77),
    ];
    for &(i, v) in &marks {
        x[i] = v;
    }
    let plan = PoolPlan::new(
        &Pooling::max(Window::new(&[2])),
        &[1, 1, n],
        Layout::ChannelsFirst,
    )
    .unwrap();
    assert_eq!(plan.output_len(), n / 2);
    let mut y = vec![0u8; plan.output_len()];
    let mut idx = vec![0i64; plan.output_len()];
    plan.forward(&x, &mut y, Some(&mut idx)).unwrap();
    for &(i, v) in &marks {
        assert_eq!(y[i / 2], v, "output {}", i / 2);
        assert_eq!(idx[i / 2], i as i64, "index of output {}", i / 2);
    }
    // windows without a mark keep their first element's index (ties go to the first)
    assert_eq!((y[7], idx[7]), (0, 14));
    // the last window, [2^31 + 4, 2^31 + 5], holds the last mark
    assert_eq!(idx[n / 2 - 1], ((1usize << 31) + 5) as i64);
}
