//! Fast kernels. Each entry point returns `false` when it does not handle a problem, and the
//! caller falls back to the reference, so every problem has an implementation.
//!
//! - [`window`]: separable max/average/adaptive/global pooling, both layouts, f32 and f64
//!   (f16 and bf16 through f32);
//! - [`padded`]: small channels-first planes through a padded copy (forward max without
//!   indices, average forward, stride-1 average backward);
//! - [`plane`]: channels-first planes reduced as flat arrays;
//! - [`direct`]: channels-last windows folded straight from the input (f32 and f64 with
//!   AVX-512, f32 with AVX2 for channel counts that are multiples of 8);
//! - [`few_channels`]: channels-last tensors with fewer than 16 channels, transposed into
//!   channels-first planes and pooled by those kernels;
//! - [`pairs`]: 2×2 stride-2 windows on channels-first planes of even sides as two flat
//!   passes (f32 and f64, AVX-512; f32 with AVX2 in one pass);
//! - [`scatter`]: backward passes; [`gather`]: the max backward of 3×3 stride-2
//!   channels-first gradients, each input value gathered from its windows; [`disjoint`]: the
//!   max backward of windows that tile the input (kernel = stride), each input row written
//!   once;
//! - [`planewise`]: the reference's loops, plane by plane over the threads, for Lp pooling and
//!   the f16/bf16 backward passes;
//! - [`isa`]: runtime CPU-feature dispatch;
//! - `x86`, `avx2`: explicit AVX-512 and AVX2 kernels those paths call (`zmm`: the vector
//!   type, f32 or f64, that most of `x86`'s kernels are written over once for both).

/// Longest run of values the van Herk / Gil-Werman block kernels (`fold_row_w`,
/// `fold_rows_blocked` of `x86` and `avx2`) load per block: `2 K − 1` for the largest window
/// side `K` they take (7).
#[cfg(target_arch = "x86_64")]
const MAX_BLOCK_RUN: usize = 13;

/// The `K` windows of one van Herk / Gil-Werman block, from its run `$x` of `2 K − 1` vectors
/// in order (`[$zero; MAX_BLOCK_RUN]`-shaped): window `r` folds `x[r .. r + K]` as the suffix
/// `x[r .. K]` folded with the prefix `x[K .. r + K]`, suffixes and prefixes shared by the
/// block's windows: `3 K − 4` folds for `K` windows instead of `K (K − 1)`. Every fold (by
/// `$fold`) takes the earlier values as its accumulator, so that the plain max keeps the
/// earliest of equal values, as the sequential fold does; sums are regrouped, within rounding
/// of the sequential sum. `$emit` runs for `r` in order with `$w` the window. A macro, not a
/// function: it is compiled in the caller's ISA context, for either vector width.
#[cfg(target_arch = "x86_64")]
macro_rules! block_windows {
    ($k:expr, $x:expr, $zero:expr, $fold:expr, |$r:ident, $w:ident| $emit:expr) => {{
        let k: usize = $k;
        let x = &$x;
        let mut s = [$zero; super::MAX_BLOCK_RUN];
        s[k - 1] = x[k - 1];
        for i in (0..k - 1).rev() {
            s[i] = $fold(x[i], s[i + 1]);
        }
        let mut p = x[k];
        for $r in 0..k {
            let $w = if $r == 0 { s[0] } else { $fold(s[$r], p) };
            $emit;
            if $r >= 1 && $r + 1 < k {
                p = $fold(p, x[k + $r]);
            }
        }
    }};
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
mod convert;
#[cfg(target_arch = "x86_64")]
pub(crate) mod direct;
mod disjoint;
pub(crate) mod few_channels;
pub(crate) mod gather;
pub(crate) mod isa;
pub(crate) mod out;
pub(crate) mod padded;
#[cfg(target_arch = "x86_64")]
pub(crate) mod pairs;
pub(crate) mod plane;
pub(crate) mod planewise;
pub(crate) mod running;
pub(crate) mod scatter;
pub(crate) mod window;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;
#[cfg(target_arch = "x86_64")]
mod zmm;

use crate::element::{DType, Element};
use crate::layout::Layout;
use crate::plan::Geom;
use half::{bf16, f16};
use out::Out;
use rayon::prelude::*;
use std::any::TypeId;
use std::cell::Cell;
use window::{AxisPlan, Reduce};

thread_local! {
    static FORCE_REFERENCE: Cell<bool> = const { Cell::new(false) };
}

/// While alive, the current thread runs the reference instead of fast kernels.
pub(crate) struct ForceReference(bool);

impl ForceReference {
    pub fn new() -> Self {
        ForceReference(FORCE_REFERENCE.with(|f| f.replace(true)))
    }
}

impl Drop for ForceReference {
    fn drop(&mut self) {
        FORCE_REFERENCE.with(|f| f.set(self.0));
    }
}

/// The ISA to run fast kernels at, or `None` when the reference is forced.
pub(crate) fn fast_isa() -> Option<isa::Isa> {
    if FORCE_REFERENCE.with(|f| f.get()) {
        return None;
    }
    match isa::choice() {
        isa::Choice::Reference => None,
        isa::Choice::Fast(i) => Some(i),
    }
}

/// [`prefetch_from_bytes`] where the size of the last-level cache is not known: half of the
/// 32 MiB of the Zen 5 cores it was measured on. On those, cache-resident inputs only paid for
/// the prefetches: alexnet_max nchw (9.3 MB) ran 0.17–0.24 → 0.21–0.32 ms with them
/// (`PROBE_N=8 plane_probe 96 55 55 3 2 0`, 1 thread, builds run alternately).
pub(crate) const PREFETCH_FROM_BYTES: usize = 16 << 20;

/// Inputs at least this large (bytes) are taken to come from memory rather than from the
/// last-level cache, and the streaming kernels prefetch them ahead of their loads
/// (`x86::k3s2_strip`, `avx2::max_k3s2_plane_avx2`, `x86::cl_row_k3s2`, ...): half the
/// last-level cache this machine reports, [`PREFETCH_FROM_BYTES`] where it reports none. On a
/// Zen 1 core (8 MiB L3) alexnet_max's 9.3 MB input streamed from memory without them
/// (`PROBE_N=8 plane_probe 96 55 55 3 2 0`, threshold 16 MiB against 4, three rounds
/// alternating, µs per call): 1 thread 1345–1388 → 1058–1119, 2 threads 716–781 → 566–627;
/// inception_max_s1 (4.8 MB) and large_avg (6.4 MB), whose AVX2 kernels do not prefetch,
/// even. 2×2 stride 2 on 6.4 MB inputs (`PROBE_N=2|4|8 plane_probe 64 112 112|128 56 56|256
/// 28 28 2 2 0`, 1 thread, three rounds, µs; channels-first now leaves `pairs.rs` for the
/// prefetching plane kernel): channels-first 566–696 → 487–542, 550–660 → 484–532, 569–622
/// → 527–620; channels-last 425–497 → 413–456, 497–649 → 440–469, 624–743 → 440–557.
pub(crate) fn prefetch_from_bytes() -> usize {
    static FROM: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *FROM.get_or_init(|| match last_level_cache_bytes() {
        Some(bytes) => (bytes / 2).clamp(1 << 20, 256 << 20),
        None => PREFETCH_FROM_BYTES,
    })
}

/// The size of the largest data cache of the first CPU, as Linux reports it
/// (`/sys/devices/system/cpu/cpu0/cache/index*/size`, e.g. `8192K`); `None` elsewhere or when
/// it reports none.
fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|entry| {
        let path = entry.ok()?.path();
        let kind = std::fs::read_to_string(path.join("type")).ok()?;
        if kind.trim() == "Instruction" {
            return None;
        }
        cache_size_bytes(&std::fs::read_to_string(path.join("size")).ok()?)
    })
    .max()
}

/// A cache size as sysfs writes it (`32K`, `8192K`, `32M`, or bytes) in bytes.
fn cache_size_bytes(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, ch)| !ch.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let scale: usize = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(scale)
}

/// Whether work of `len` elements is split into tasks over threads: at least `min` of them,
/// and more than one thread in the current pool. With one thread a split only hands the work
/// to the pool's thread (when called from outside the pool) and waits for it: resnet_gap
/// nchw on one thread took 27.6 µs that way against 9.7 µs done in place.
pub(crate) fn split_over_threads(len: usize, min: usize) -> bool {
    len >= min && rayon::current_num_threads() > 1
}

thread_local! {
    static SCRATCH_POOL: std::cell::RefCell<Vec<Vec<f32>>> =
        const { std::cell::RefCell::new(Vec::new()) };
    static SCRATCH_POOL_F64: std::cell::RefCell<Vec<Vec<f64>>> =
        const { std::cell::RefCell::new(Vec::new()) };
    static SCRATCH_POOL_I32: std::cell::RefCell<Vec<Vec<i32>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// An element type [`Scratch`] buffers hold: each has a per-thread pool of its own.
pub(crate) trait ScratchValue: Copy + Default + 'static {
    /// The current thread's pool of buffers of this type.
    fn pool() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Vec<Self>>>>;
}

impl ScratchValue for f32 {
    fn pool() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Vec<f32>>>> {
        &SCRATCH_POOL
    }
}

impl ScratchValue for f64 {
    fn pool() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Vec<f64>>>> {
        &SCRATCH_POOL_F64
    }
}

impl ScratchValue for i32 {
    fn pool() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Vec<i32>>>> {
        &SCRATCH_POOL_I32
    }
}

/// Buffers a thread keeps for [`Scratch`] at most (per element type), and the largest it
/// keeps (bytes).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // (its users are x86 kernels)
const SCRATCH_KEPT: usize = 4;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // (its users are x86 kernels)
const SCRATCH_KEPT_BYTES: usize = 16 << 20;

/// A kernel's working buffer of at least `len` values (the W-pass rows of a separable
/// problem, the pooled slices of a 3-D one), taken from the current thread's pool and given
/// back to it when dropped, so that a task does not allocate and zero its buffers afresh:
/// sppf_max5 nhwc at 2 threads spent 5 % of its time in `memset`, zeroing a 184 KB ring per
/// task. The values are whatever the buffer's last user left (zeros when new): its users
/// track which values they have written and read no others.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // (its users are x86 kernels)
pub(crate) struct Scratch<E: ScratchValue = f32>(Vec<E>);

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // (its users are x86 kernels)
impl<E: ScratchValue> Scratch<E> {
    pub(crate) fn new(len: usize) -> Self {
        let reused = E::pool().with(|pool| {
            let mut pool = pool.borrow_mut();
            // the smallest kept buffer that is long enough, else the longest (grown below)
            let fits = (0..pool.len())
                .filter(|&i| pool[i].len() >= len)
                .min_by_key(|&i| pool[i].len());
            let pick = fits.or_else(|| (0..pool.len()).max_by_key(|&i| pool[i].len()));
            pick.map(|i| pool.swap_remove(i))
        });
        let mut buf = reused.unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, E::default());
        }
        Scratch(buf)
    }
}

impl<E: ScratchValue> std::ops::Deref for Scratch<E> {
    type Target = [E];
    fn deref(&self) -> &[E] {
        &self.0
    }
}

impl<E: ScratchValue> std::ops::DerefMut for Scratch<E> {
    fn deref_mut(&mut self) -> &mut [E] {
        &mut self.0
    }
}

impl<E: ScratchValue> Drop for Scratch<E> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if std::mem::size_of_val(&buf[..]) > SCRATCH_KEPT_BYTES {
            return;
        }
        // `try_with`: during the thread's teardown the pool may be gone already
        let _ = E::pool().try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < SCRATCH_KEPT {
                pool.push(buf);
            }
        });
    }
}

/// Whether `T` and `U` are the same type.
pub(crate) fn same_type<T: 'static, U: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<U>()
}

/// Reinterprets a slice of `T` as a slice of `U` when they are the same type.
pub(crate) fn cast<T: 'static, U: 'static>(x: &[T]) -> Option<&[U]> {
    if TypeId::of::<T>() == TypeId::of::<U>() {
        // SAFETY: T and U are the same type (equal TypeIds), so layout and validity agree.
        Some(unsafe { &*(x as *const [T] as *const [U]) })
    } else {
        None
    }
}

/// Mutable version of [`cast`].
pub(crate) fn cast_mut<T: 'static, U: 'static>(x: &mut [T]) -> Option<&mut [U]> {
    if TypeId::of::<T>() == TypeId::of::<U>() {
        // SAFETY: T and U are the same type (equal TypeIds), so layout and validity agree.
        Some(unsafe { &mut *(x as *mut [T] as *mut [U]) })
    } else {
        None
    }
}

/// Window pooling (max with optional indices, sums with a divisor) on the fast path.
pub(crate) fn window_forward<T: Element>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[T],
    y: &mut Out<T>,
    idx: Option<&mut [i64]>,
) -> bool {
    let Some(isa) = fast_isa() else { return false };
    match T::DTYPE {
        DType::F32 => window::forward::<f32>(
            isa,
            g,
            axes,
            reduce,
            cast(x).unwrap(),
            &mut y.cast().unwrap(),
            idx,
        ),
        DType::F64 => window::forward::<f64>(
            isa,
            g,
            axes,
            reduce,
            cast(x).unwrap(),
            &mut y.cast().unwrap(),
            idx,
        ),
        DType::F16 | DType::BF16 => half_forward(isa, g, axes, reduce, x, y, idx),
        _ => false,
    }
}

/// Values per part of the paths that work on copies of parts of the problem (whole planes or
/// whole images): the f16/bf16 forward (a part's input and output, widened to f32) and
/// channels-last images with few channels (`few_channels`: a part's input, its planes and
/// their outputs). A part and its copies stay in the core's L2 cache between the steps.
pub(crate) const PART_VALUES: usize = 1 << 15;

/// The f16/bf16 forward: the f32 kernel (f32 is also PyTorch's accumulator for these types)
/// on parts of whole planes (channels-first) or images (channels-last), each widened (exact)
/// into a reused scratch buffer and rounded once at the end, the parts over the threads.
/// Whole-tensor f32 copies of the input and output cost two fresh buffers each call, their
/// time mostly page faults and zeroing (12.8× slower on inception_avg_s1's shape, in f16).
///
/// Averages: the f32 kernels multiply by the divisor's reciprocal, within 1 ulp of the
/// quotient; where the quotient is exactly a tie of the rounding to f16/bf16 that ulp picks
/// the other neighbour. So they sum only (divisor 1, exact) and the quotient is taken here,
/// as the reference takes it.
fn half_forward<T: Element>(
    isa: isa::Isa,
    g: &Geom,
    axes: &[AxisPlan; 3],
    reduce: Reduce,
    x: &[T],
    y: &mut Out<T>,
    idx: Option<&mut [i64]>,
) -> bool {
    // the divisor of every output of one plane (channels-first), of every pixel
    // (channels-last), or of every output of one image (channels-last with fewer than 16
    // channels: each pixel's repeated over the channels, one call per image rather than a
    // call per few values). `PROBE_NHWC=1 PROBE_DTYPE=f16 PROBE_N=8 RAYON_NUM_THREADS=1
    // plane_probe C H W 3 s 1 avg`, ns per plane, against a call per pixel: C = 3 (112²,
    // stride 2) 19 463–19 880 → 16 449–16 843; C = 192 (28², stride 1) per pixel as before,
    // 332–360 → 332–336 (repeated over its 192 channels it took 390–405).
    let repeat = match g.layout {
        Layout::ChannelsLast if g.channels < 16 => g.channels,
        _ => 1,
    };
    let divisors: Option<Vec<f32>> = match reduce {
        Reduce::Sum(div) if div != crate::plan::Divisor::PerAxis => {
            window::window_divisors(axes, div).map(|d| {
                d.iter()
                    .flat_map(|&d| std::iter::repeat_n(d as f32, repeat))
                    .collect()
            })
        }
        _ => None,
    };
    let kernel_reduce = match divisors {
        Some(_) => Reduce::Sum(crate::plan::Divisor::Override(1)),
        None => reduce,
    };
    let (units, in_unit, out_unit) = match g.layout {
        Layout::ChannelsFirst => (g.planes(), g.in_plane(), g.out_plane()),
        Layout::ChannelsLast => (
            g.batch,
            g.in_plane() * g.channels,
            g.out_plane() * g.channels,
        ),
    };
    if units == 0 || in_unit == 0 || out_unit == 0 {
        return false;
    }
    let per_part = (PART_VALUES / in_unit).clamp(1, units);
    let (in_part, out_part) = (per_part * in_unit, per_part * out_unit);
    let ys = y.par_chunks_init(out_part);
    for_each_part(x, in_part, ys, idx, out_part, |xs, ys, idx| {
        let n = xs.len() / in_unit;
        let part = match g.layout {
            Layout::ChannelsFirst => Geom {
                batch: 1,
                channels: n,
                ..*g
            },
            Layout::ChannelsLast => Geom { batch: n, ..*g },
        };
        let mut xf = Scratch::new(xs.len());
        let xf = &mut xf[..xs.len()];
        widen(xs, xf);
        let mut yf = Scratch::new(ys.len());
        let yf = &mut yf[..ys.len()];
        let mut out = Out::from_init(&mut *yf);
        if !window::forward::<f32>(isa, &part, axes, kernel_reduce, xf, &mut out, idx) {
            return false;
        }
        if let Some(d) = &divisors {
            // as the reference divides (a divisor of 0, only that of a window without
            // input elements, gives 0)
            if g.layout == Layout::ChannelsFirst || repeat > 1 {
                for unit in yf.chunks_mut(out_unit) {
                    convert::divide(isa, unit, d);
                }
            } else {
                for (pixel, d) in yf.chunks_mut(g.channels).zip(d.iter().cycle()) {
                    convert::divide(isa, pixel, &[*d]);
                }
            }
        }
        narrow(yf, ys);
        true
    })
}

/// Runs `f(x_part, y_part, idx_part)` over the parts of a problem in parallel: `x` in chunks
/// of `in_part` values; `ys` the output's chunks in step with them, `out_part` values each;
/// the indices, when asked for, in the same chunks as the output. Returns whether `f` handled
/// every part (a part it declines may be left unwritten: the caller then takes another path).
fn for_each_part<X: Sync, Y: Send>(
    x: &[X],
    in_part: usize,
    ys: impl IndexedParallelIterator<Item = Y>,
    idx: Option<&mut [i64]>,
    out_part: usize,
    f: impl Fn(&[X], Y, Option<&mut [i64]>) -> bool + Sync + Send,
) -> bool {
    let idx_parts: Vec<Option<&mut [i64]>> = match idx {
        Some(i) => i.chunks_mut(out_part).map(Some).collect(),
        None => (0..x.len().div_ceil(in_part)).map(|_| None).collect(),
    };
    let handled = std::sync::atomic::AtomicBool::new(true);
    ys.zip(x.par_chunks(in_part))
        .zip(idx_parts)
        .for_each(|((ys, xs), idx)| {
            if !f(xs, ys, idx) {
                handled.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        });
    handled.into_inner()
}

/// `dst = src` as f32 for f16/bf16 `T` (exact).
fn widen<T: Element>(src: &[T], dst: &mut [f32]) {
    let isa = fast_isa().unwrap_or(isa::Isa::Portable);
    if let Some(h) = cast::<T, f16>(src) {
        convert::widen_f16(isa, h, dst);
    } else if let Some(b) = cast::<T, bf16>(src) {
        convert::widen_bf16(isa, b, dst);
    } else {
        dst.iter_mut()
            .zip(src)
            .for_each(|(d, s)| *d = s.to_f64() as f32);
    }
}

/// `dst = src` rounded to nearest, for f16/bf16 `T`.
fn narrow<T: Element>(src: &[f32], dst: &mut [T]) {
    let isa = fast_isa().unwrap_or(isa::Isa::Portable);
    if let Some(h) = cast_mut::<T, f16>(dst) {
        convert::narrow_f16(isa, src, h);
    } else if let Some(b) = cast_mut::<T, bf16>(dst) {
        convert::narrow_bf16(isa, src, b);
    } else {
        dst.iter_mut()
            .zip(src)
            .for_each(|(d, s)| *d = T::from_f64(*s as f64));
    }
}

/// Evaluates `$body` with the type alias `$F` for the float type `$T` is, among those listed
/// (`DType` variant => type), or `$other` for any other type.
macro_rules! by_float {
    ($T:ty, [$($dt:ident => $ty:ty),*], |$F:ident| $body:expr, _ => $other:expr) => {
        match <$T as Element>::DTYPE {
            $(DType::$dt => {
                type $F = $ty;
                $body
            })*
            _ => $other,
        }
    };
}

/// Max-type backward from indices on the fast path. `Some(Err(i))`: index `i` lies outside the
/// plane; `None`: not handled here.
///
/// `axes`: the windows, when they are tabulated; f32 channels-first 3×3 windows at stride 2
/// take the gather where it measured faster ([`gather`]), the rest the scatter. `reach`
/// bounds the input pixels the windows of one output row span (see `scatter::max_backward`);
/// it is asked for only when the gradient is large.
pub(crate) fn max_backward<T: Element>(
    g: &Geom,
    axes: Option<&[AxisPlan; 3]>,
    reach: impl FnOnce() -> Option<usize>,
    idx: &[i64],
    gy: &[T],
    gx: &mut Out<T>,
) -> Option<Result<(), i64>> {
    let isa = fast_isa()?;
    // f32 windows that tile the input write each input row once ([`disjoint`]): with AVX2
    // in both layouts, with the portable code channels-last (where they measured faster
    // than the scatter); AVX-512 cores keep the scatter and its ring, measured there. So do
    // large channels-first gradients into a caller's buffer on more than one thread, where
    // the ring's streaming stores measured faster (vgg_max_224_bwd at 2 threads 9.6 ms
    // against 10.5–11.2: the rows' plain stores read each line of the buffer first)
    let bytes = gx.len() * std::mem::size_of::<T>();
    if let (Some(s), Some(gy)) = (axes.and_then(|a| disjoint::applies(g, a)), cast(gy)) {
        let streams = rayon::current_num_threads() > 1
            && scatter::takes_ring((isa, g.layout), bytes, || gx.resident());
        let taken = match isa {
            isa::Isa::Avx2 => g.layout == Layout::ChannelsLast || !streams,
            isa::Isa::Portable => g.layout == Layout::ChannelsLast,
            isa::Isa::Avx512 => false,
        };
        if taken {
            let bad = disjoint::max_backward::<f32>(isa, &s, idx, gy, &mut gx.cast().unwrap());
            return Some(bad.map_or(Ok(()), Err));
        }
    }
    // (fresh pages keep the scatter, which zeroes each just ahead of its adds:
    // vgg_max_224_bwd into fresh pages took 9.5–9.7 ms, the gather 11.7–12.0)
    if isa == isa::Isa::Avx512 {
        let shape = axes.and_then(|a| gather::applies(g, a, bytes));
        if let (Some(s), Some(gy)) = (shape, cast(gy)) {
            if gx.resident() {
                let bad = gather::max_backward(&s, idx, gy, &mut gx.cast().unwrap());
                return Some(bad.map_or(Ok(()), Err));
            }
        }
    }
    let bad = by_float!(T, [F32 => f32, F64 => f64, F16 => f16, BF16 => bf16], |F| {
        let gy = cast(gy).unwrap();
        scatter::max_backward::<F>(isa, g, reach, idx, gy, &mut gx.cast().unwrap())
    }, _ => return None);
    Some(bad.map_or(Ok(()), Err))
}

/// Average backward on the fast path; `false` when not handled.
pub(crate) fn avg_backward<T: Element>(
    g: &Geom,
    axes: &[AxisPlan; 3],
    div: crate::plan::Divisor,
    gy: &[T],
    gx: &mut Out<T>,
) -> bool {
    let Some(isa) = fast_isa() else { return false };
    by_float!(T, [F32 => f32, F64 => f64], |F| {
        let gy = cast(gy).unwrap();
        scatter::avg_backward::<F>(isa, g, axes, div, gy, &mut gx.cast().unwrap())
    }, _ => return false);
    true
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    #[test]
    fn scratch_buffers_are_reused_and_grown() {
        let first = {
            let mut a = Scratch::<f32>::new(100);
            assert_eq!(a.len(), 100);
            assert!(a.iter().all(|&v| v == 0.0), "a new buffer holds zeros");
            a[7] = 3.0;
            a.as_ptr()
        };
        // the buffer given back is handed out again, its values as left
        let b = Scratch::<f32>::new(50);
        assert_eq!(b.as_ptr(), first);
        assert!(b.len() >= 50 && b[7] == 3.0);
        // two at once are distinct; a longer request grows one
        let c = Scratch::<f32>::new(1000);
        assert!(c.len() >= 1000);
        assert_ne!(b.as_ptr(), c.as_ptr());
        drop((b, c));
        // more than a thread keeps: the extra ones are freed, not kept
        let many: Vec<Scratch> = (0..super::SCRATCH_KEPT + 3)
            .map(|_| Scratch::new(8))
            .collect();
        drop(many);
        super::SCRATCH_POOL.with(|pool| assert!(pool.borrow().len() <= super::SCRATCH_KEPT));
        // f64 buffers come from a pool of their own
        let d = Scratch::<f64>::new(40);
        assert!(d.len() >= 40);
        let d_at = d.as_ptr();
        drop(d);
        assert_eq!(Scratch::<f64>::new(10).as_ptr(), d_at);
    }

    /// sysfs's cache sizes, and what the prefetch threshold makes of this machine's.
    #[test]
    fn cache_sizes_and_the_prefetch_threshold() {
        assert_eq!(super::cache_size_bytes("8192K\n"), Some(8 << 20));
        assert_eq!(super::cache_size_bytes("32M"), Some(32 << 20));
        assert_eq!(super::cache_size_bytes("512"), Some(512));
        assert_eq!(super::cache_size_bytes("12X"), None);
        assert_eq!(super::cache_size_bytes(""), None);
        let from = super::prefetch_from_bytes();
        assert!((1 << 20..=256 << 20).contains(&from));
        if let Some(llc) = super::last_level_cache_bytes() {
            assert_eq!(from, (llc / 2).clamp(1 << 20, 256 << 20));
        }
    }
}
