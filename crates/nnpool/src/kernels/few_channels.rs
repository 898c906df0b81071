//! Channels-last tensors with fewer channels than a vector holds (an RGB image has 3), pooled
//! as channels-first planes.
//!
//! The channels-last kernels vectorise across a pixel's channels, so with few of them most
//! lanes idle and the separable path falls back to one channel at a time: 3×3 stride-2 max
//! pooling of 3-channel 112² images took 18.9 µs per plane against 0.87 µs channels-first
//! (`PROBE_NHWC=1 PROBE_N=8 RAYON_NUM_THREADS=1 plane_probe 3 112 112 3 2 1`). Here each image
//! is transposed into its channel planes (in the core's cache, at about the speed of a copy:
//! the loops below have the channel count as a constant, and the compiler turns them into
//! vector shuffles), pooled by the channels-first kernels, and transposed back. The values are
//! the channels-first kernels' (bit for bit the reference's for max, and its indices: a
//! plane's index is the spatial position in both layouts). One channel is channels-first
//! memory already, and is pooled as it is.

use super::isa::{multiversion, Isa};
use super::out::{as_uninit_mut, Out};
use super::window::{AxisPlan, FastFloat, Reduce};
use super::{cast_mut, Scratch};
use crate::layout::Layout;
use crate::plan::{Divisor, Geom};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Most channels a channels-last problem may have to be pooled as planes. From 16 channels
/// (f32) a pixel fills an AVX-512 vector, and the channels-last kernels do better than the
/// transposes: 17 channels took 2.87 µs per plane on them. (Up to 8 channels the transposes
/// run at the speed of a copy; from 9 the compiler's loops store one value at a time, 3–5×
/// slower, still faster than the channels-last path: 15 channels, 3×3 stride-1 average on
/// 56², 7.7 → 3.4 µs per plane.)
pub(crate) const MAX_CHANNELS: usize = 15;

/// Whether the problem is channels-last with 1 to [`MAX_CHANNELS`] channels, and not empty.
pub(crate) fn applies(g: &Geom) -> bool {
    g.layout == Layout::ChannelsLast
        && (1..=MAX_CHANNELS).contains(&g.channels)
        && g.batch > 0
        && g.in_plane() > 0
        && g.out_plane() > 0
}

/// A working buffer of `F`: from the thread's [`Scratch`] pool for f32, else allocated.
enum Work<F> {
    Pooled(Scratch, usize),
    Owned(Vec<F>),
}

impl<F: FastFloat> Work<F> {
    fn new(len: usize) -> Self {
        if std::any::TypeId::of::<F>() == std::any::TypeId::of::<f32>() {
            Work::Pooled(Scratch::new(len), len)
        } else {
            Work::Owned(vec![F::default(); len])
        }
    }

    fn values(&mut self) -> &mut [F] {
        match self {
            Work::Pooled(s, len) => cast_mut(&mut s[..*len]).expect("pooled only for f32"),
            Work::Owned(v) => v,
        }
    }
}

/// The same problem, channels-first, for `images` images.
fn as_planes(g: &Geom, images: usize) -> Geom {
    Geom {
        batch: images,
        layout: Layout::ChannelsFirst,
        ..*g
    }
}

/// Images per part.
fn parts(g: &Geom) -> usize {
    (super::PART_VALUES / (g.in_plane() * g.channels)).clamp(1, g.batch)
}

/// Window pooling of a problem [`applies`] takes. Returns `false` (nothing written) when the
/// channels-first kernels do not take it.
pub(crate) fn forward<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[F],
    out: &mut Out<F>,
    idx: Option<&mut [i64]>,
) -> bool {
    let c = g.channels;
    if c == 1 {
        // one channel: the same memory as channels-first
        return super::window::forward::<F>(isa, &as_planes(g, g.batch), axes, reduce, x, out, idx);
    }
    let (in_image, out_image) = (g.in_plane() * c, g.out_plane() * c);
    let per_part = parts(g);
    let (in_part, out_part) = (per_part * in_image, per_part * out_image);
    // SAFETY: each part below stores every element of its chunk (`to_pixels` writes every
    // pixel of every image) with initialised values, or reports the problem not handled.
    let y = unsafe { out.uninit() };
    let ys = y.par_chunks_mut(out_part);
    super::for_each_part(x, in_part, ys, idx, out_part, |xs, ys, idx| {
        let images = xs.len() / in_image;
        let mut planes = Work::<F>::new(xs.len());
        let planes = planes.values();
        images_to_planes(isa, xs, in_image, c, planes);
        let mut pooled = Work::<F>::new(ys.len());
        let pooled = pooled.values();
        let mut pooled_idx = idx.as_ref().map(|i| vec![0i64; i.len()]);
        let done = super::window::forward::<F>(
            isa,
            &as_planes(g, images),
            axes,
            reduce,
            planes,
            &mut Out::from_init(&mut *pooled),
            pooled_idx.as_deref_mut(),
        );
        if !done {
            return false;
        }
        planes_to_images(isa, pooled, out_image, c, ys);
        if let (Some(dst), Some(src)) = (idx, pooled_idx) {
            // SAFETY: `planes_to_images` writes initialised values into every element.
            planes_to_images(isa, &src, out_image, c, unsafe { as_uninit_mut(dst) });
        }
        true
    })
}

/// The average backward of a problem [`applies`] takes (the scatter's, on planes).
pub(crate) fn avg_backward<F: FastFloat>(
    isa: Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    div: Divisor,
    gy: &[F],
    gx: &mut Out<F>,
) {
    let c = g.channels;
    if c == 1 {
        super::scatter::avg_backward::<F>(isa, &as_planes(g, g.batch), axes, div, gy, gx);
        return;
    }
    let (in_image, out_image) = (g.in_plane() * c, g.out_plane() * c);
    let per_part = parts(g);
    // SAFETY: each part below stores every element of its chunk (`to_pixels` writes every
    // pixel of every image) with initialised values.
    let gx = unsafe { gx.uninit() };
    gx.par_chunks_mut(per_part * in_image)
        .zip(gy.par_chunks(per_part * out_image))
        .for_each(|(gxs, gys)| {
            let images = gys.len() / out_image;
            let mut planes = Work::<F>::new(gys.len());
            let planes = planes.values();
            images_to_planes(isa, gys, out_image, c, planes);
            let mut grads = Work::<F>::new(gxs.len());
            let grads = grads.values();
            super::scatter::avg_backward::<F>(
                isa,
                &as_planes(g, images),
                axes,
                div,
                planes,
                &mut Out::from_init(&mut *grads),
            );
            planes_to_images(isa, grads, in_image, c, gxs);
        });
}

/// The images of `pixels` (`image` values each, `c` channels) as their channel planes, in
/// `planes`.
fn images_to_planes<T: Copy>(isa: Isa, pixels: &[T], image: usize, c: usize, planes: &mut [T]) {
    for (src, dst) in pixels.chunks(image).zip(planes.chunks_mut(image)) {
        to_planes(isa, src, c, dst);
    }
}

/// The images of `planes` (`image` values each, `c` planes) as pixels, in `pixels`: every
/// element written.
fn planes_to_images<T: Copy>(
    isa: Isa,
    planes: &[T],
    image: usize,
    c: usize,
    pixels: &mut [MaybeUninit<T>],
) {
    for (src, dst) in planes.chunks(image).zip(pixels.chunks_mut(image)) {
        to_pixels(isa, src, c, dst);
    }
}

/// Runs `$run::<T, C>($src, $dst)` with the channel count `$c` as the constant `C` (1 to
/// [`MAX_CHANNELS`]), else `$other`.
macro_rules! with_channels {
    ($c:expr, $run:ident::<$t:ty>($src:expr, $dst:expr), $other:expr) => {
        match $c {
            1 => $run::<$t, 1>($src, $dst),
            2 => $run::<$t, 2>($src, $dst),
            3 => $run::<$t, 3>($src, $dst),
            4 => $run::<$t, 4>($src, $dst),
            5 => $run::<$t, 5>($src, $dst),
            6 => $run::<$t, 6>($src, $dst),
            7 => $run::<$t, 7>($src, $dst),
            8 => $run::<$t, 8>($src, $dst),
            9 => $run::<$t, 9>($src, $dst),
            10 => $run::<$t, 10>($src, $dst),
            11 => $run::<$t, 11>($src, $dst),
            12 => $run::<$t, 12>($src, $dst),
            13 => $run::<$t, 13>($src, $dst),
            14 => $run::<$t, 14>($src, $dst),
            15 => $run::<$t, 15>($src, $dst),
            _ => $other,
        }
    };
}

/// `dst[ch * n + p] = src[p * channels + ch]` for the `n` pixels of `src`: one image's
/// channel planes from its pixels.
#[inline(always)]
fn to_planes_body<T: Copy>(src: &[T], channels: usize, dst: &mut [T]) {
    debug_assert_eq!(src.len(), dst.len());
    with_channels!(
        channels,
        planes_of::<T>(src, dst),
        for (p, pixel) in src.chunks_exact(channels).enumerate() {
            for (ch, &v) in pixel.iter().enumerate() {
                dst[ch * (src.len() / channels) + p] = v;
            }
        }
    )
}

multiversion!(fn to_planes<T: Copy>(src: &[T], channels: usize, dst: &mut [T]) -> () = to_planes_body);

/// `dst[p * channels + ch] = src[ch * n + p]`: one image's pixels from its channel planes.
#[inline(always)]
fn to_pixels_body<T: Copy>(src: &[T], channels: usize, dst: &mut [MaybeUninit<T>]) {
    debug_assert_eq!(src.len(), dst.len());
    with_channels!(
        channels,
        pixels_of::<T>(src, dst),
        for (p, pixel) in dst.chunks_exact_mut(channels).enumerate() {
            for (ch, v) in pixel.iter_mut().enumerate() {
                *v = MaybeUninit::new(src[ch * (src.len() / channels) + p]);
            }
        }
    )
}

multiversion!(fn to_pixels<T: Copy>(src: &[T], channels: usize, dst: &mut [MaybeUninit<T>]) -> () = to_pixels_body);

#[inline(always)]
fn planes_of<T: Copy, const C: usize>(src: &[T], dst: &mut [T]) {
    let n = src.len() / C;
    if n == 0 {
        return;
    }
    let mut planes = dst.chunks_exact_mut(n);
    let mut planes: [&mut [T]; C] = std::array::from_fn(|_| planes.next().unwrap_or_default());
    for (p, pixel) in src.chunks_exact(C).enumerate() {
        for (plane, &v) in planes.iter_mut().zip(pixel) {
            plane[p] = v;
        }
    }
}

#[inline(always)]
fn pixels_of<T: Copy, const C: usize>(src: &[T], dst: &mut [MaybeUninit<T>]) {
    let n = src.len() / C;
    if n == 0 {
        return;
    }
    let mut planes = src.chunks_exact(n);
    let planes: [&[T]; C] = std::array::from_fn(|_| planes.next().unwrap_or_default());
    for (p, pixel) in dst.chunks_exact_mut(C).enumerate() {
        for (v, plane) in pixel.iter_mut().zip(&planes) {
            *v = MaybeUninit::new(plane[p]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_invert_each_other_for_every_channel_count() {
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
            let isa = super::super::isa::clamp_to_available(isa);
            for c in 1..=MAX_CHANNELS + 2 {
                for pixels in [0, 1, 5, 16, 17, 33] {
                    let src: Vec<i64> = (0..(pixels * c) as i64).collect();
                    let mut planes = vec![-1i64; src.len()];
                    to_planes(isa, &src, c, &mut planes);
                    for p in 0..pixels {
                        for ch in 0..c {
                            assert_eq!(planes[ch * pixels + p], src[p * c + ch], "{c} {p} {ch}");
                        }
                    }
                    let mut back = vec![MaybeUninit::new(-1i64); src.len()];
                    to_pixels(isa, &planes, c, &mut back);
                    // SAFETY: MaybeUninit::new initialised every element
                    let back: Vec<i64> = back.iter().map(|v| unsafe { v.assume_init() }).collect();
                    assert_eq!(back, src, "{c} channels, {pixels} pixels");
                }
            }
        }
    }
}
