//! Window geometry: kernel, stride, padding, dilation and `ceil_mode` → output sizes and the
//! input taps of every output position. This is the only place the output-size formula lives;
//! all arithmetic is done in `i128`, so no user value can overflow it.

use crate::error::{invalid, PoolError, Result};

/// ONNX's `auto_pad` modes (`NOTSET` is the absence of this option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AutoPad {
    /// No padding.
    Valid,
    /// Pad so that `out = ceil(in / stride)`; an odd extra pixel goes at the end.
    SameUpper,
    /// Like `SameUpper`, but the odd extra pixel goes at the beginning.
    SameLower,
}

/// How a window op pads its input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Padding {
    /// PyTorch's symmetric padding: one value per spatial dim (or one for all), each at most
    /// half the (undilated) kernel.
    Symmetric(Vec<usize>),
    /// ONNX's asymmetric `pads`: begin and end per spatial dim; no half-kernel limit.
    Explicit {
        /// Padding before each spatial dim.
        begin: Vec<usize>,
        /// Padding after each spatial dim.
        end: Vec<usize>,
    },
    /// ONNX's `auto_pad`.
    Auto(AutoPad),
}

impl Default for Padding {
    fn default() -> Self {
        Padding::Symmetric(vec![0])
    }
}

/// The sliding window of max, average and Lp pooling.
///
/// Lists of length one apply to every spatial dim; the spatial rank is the kernel's length.
///
/// ```
/// use nnpool::Window;
/// let w = Window::new(&[3, 3]).stride(&[2]).padding(&[1]).ceil_mode(true);
/// let axes = w.resolve(&[112, 112]).unwrap();
/// assert_eq!(axes[0].output, 57);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Window {
    /// Kernel size per spatial dim.
    pub kernel: Vec<usize>,
    /// Stride per spatial dim; empty means "equal to the kernel" (PyTorch's default).
    pub stride: Vec<usize>,
    /// Padding.
    pub padding: Padding,
    /// Dilation per spatial dim; empty means 1.
    pub dilation: Vec<usize>,
    /// PyTorch's `ceil_mode`: round the output size up, keeping only windows that start inside
    /// the input or its left padding.
    pub ceil_mode: bool,
}

impl Window {
    /// A window with the given kernel, stride = kernel, no padding, no dilation, floor mode.
    pub fn new(kernel: &[usize]) -> Self {
        Window {
            kernel: kernel.to_vec(),
            stride: Vec::new(),
            padding: Padding::default(),
            dilation: Vec::new(),
            ceil_mode: false,
        }
    }
    /// Sets the stride.
    pub fn stride(mut self, stride: &[usize]) -> Self {
        self.stride = stride.to_vec();
        self
    }
    /// Sets symmetric (PyTorch) padding.
    pub fn padding(mut self, padding: &[usize]) -> Self {
        self.padding = Padding::Symmetric(padding.to_vec());
        self
    }
    /// Sets asymmetric (ONNX) padding.
    pub fn pads(mut self, begin: &[usize], end: &[usize]) -> Self {
        self.padding = Padding::Explicit {
            begin: begin.to_vec(),
            end: end.to_vec(),
        };
        self
    }
    /// Sets ONNX `auto_pad`.
    pub fn auto_pad(mut self, mode: AutoPad) -> Self {
        self.padding = Padding::Auto(mode);
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, dilation: &[usize]) -> Self {
        self.dilation = dilation.to_vec();
        self
    }
    /// Sets `ceil_mode`.
    pub fn ceil_mode(mut self, ceil: bool) -> Self {
        self.ceil_mode = ceil;
        self
    }

    /// The spatial rank (the kernel's length).
    pub fn rank(&self) -> usize {
        self.kernel.len()
    }

    /// Validates the window against the input's spatial sizes and computes each axis.
    ///
    /// # Errors
    /// `InvalidParameter` for a zero kernel/stride/dilation, a wrong number of values, padding
    /// over half the kernel (symmetric padding), `ceil_mode` with `auto_pad` SAME, or a window
    /// that covers only padding; `OutputTooSmall` when an output size would be < 1.
    pub fn resolve(&self, input: &[usize]) -> Result<Vec<AxisGeometry>> {
        let r = self.kernel.len();
        if r == 0 || r > crate::layout::MAX_SPATIAL_RANK {
            return Err(invalid(
                "kernel_size",
                format!(
                    "needs 1 to 3 values (one per spatial dim), got {}",
                    self.kernel.len()
                ),
            ));
        }
        if input.len() != r {
            return Err(invalid(
                "kernel_size",
                format!(
                    "has {r} values but the input has {} spatial dims",
                    input.len()
                ),
            ));
        }
        if let Some(k) = self.kernel.iter().find(|&&k| k == 0) {
            return Err(invalid(
                "kernel_size",
                format!(
                    "must be greater than zero, but got {:?} (zero: {k})",
                    self.kernel
                ),
            ));
        }
        let stride = if self.stride.is_empty() {
            self.kernel.clone()
        } else {
            broadcast("stride", &self.stride, r)?
        };
        if stride.contains(&0) {
            return Err(invalid(
                "stride",
                format!("must be greater than zero, but got {stride:?}"),
            ));
        }
        let dilation = if self.dilation.is_empty() {
            vec![1; r]
        } else {
            broadcast("dilation", &self.dilation, r)?
        };
        if dilation.contains(&0) {
            return Err(invalid(
                "dilation",
                format!("must be greater than zero, but got {dilation:?}"),
            ));
        }
        let eff: Vec<i128> = (0..r)
            .map(|i| dilation[i] as i128 * (self.kernel[i] as i128 - 1) + 1)
            .collect();
        let (begin, end) = match &self.padding {
            Padding::Symmetric(p) => {
                let p = broadcast("padding", p, r)?;
                for i in 0..r {
                    if p[i] > self.kernel[i] / 2 {
                        return Err(invalid(
                            "padding",
                            format!(
                                "should be at most half of the kernel size (PyTorch's rule, on the undilated kernel), but got padding={} and kernel_size={} in spatial dim {i}; use explicit pads for ONNX padding",
                                p[i], self.kernel[i]
                            ),
                        ));
                    }
                }
                (p.clone(), p)
            }
            Padding::Explicit { begin, end } => {
                if begin.len() != r || end.len() != r {
                    return Err(invalid(
                        "pads",
                        format!(
                            "needs {} values (begin for each of the {r} spatial dims, then end), got {}",
                            2 * r,
                            begin.len() + end.len()
                        ),
                    ));
                }
                (begin.clone(), end.clone())
            }
            Padding::Auto(mode) => {
                if self.ceil_mode && *mode != AutoPad::Valid {
                    return Err(invalid(
                        "ceil_mode",
                        "cannot be combined with auto_pad SAME_UPPER / SAME_LOWER (the SAME padding already fixes the output size)",
                    ));
                }
                let mut b = vec![0; r];
                let mut e = vec![0; r];
                if *mode != AutoPad::Valid {
                    for i in 0..r {
                        let (inn, s) = (input[i] as i128, stride[i] as i128);
                        let total = (if inn % s == 0 {
                            eff[i] - s
                        } else {
                            eff[i] - inn % s
                        })
                        .max(0);
                        let small = total / 2;
                        let (pb, pe) = if *mode == AutoPad::SameUpper {
                            (small, total - small)
                        } else {
                            (total - small, small)
                        };
                        b[i] = to_usize(pb, "pads")?;
                        e[i] = to_usize(pe, "pads")?;
                    }
                }
                (b, e)
            }
        };
        let mut axes = Vec::with_capacity(r);
        for i in 0..r {
            let a = AxisGeometry::sliding(
                i,
                input[i],
                self.kernel[i],
                stride[i],
                dilation[i],
                begin[i],
                end[i],
                self.ceil_mode,
            )?;
            axes.push(a);
        }
        Ok(axes)
    }
}

/// Expands a one-value list to `rank` values, or checks it has exactly `rank`.
pub(crate) fn broadcast(param: &'static str, v: &[usize], rank: usize) -> Result<Vec<usize>> {
    match v.len() {
        1 => Ok(vec![v[0]; rank]),
        n if n == rank => Ok(v.to_vec()),
        n => Err(invalid(
            param,
            format!("needs 1 value or {rank} (one per spatial dim), but got {n}: {v:?}"),
        )),
    }
}

fn to_usize(v: i128, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| PoolError::Overflow {
        what: format!("{what} = {v}"),
    })
}

/// One spatial axis of a sliding-window problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisGeometry {
    /// Input size.
    pub input: usize,
    /// Output size.
    pub output: usize,
    /// Kernel size (taps).
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Padding before.
    pub pad_begin: usize,
    /// Padding after.
    pub pad_end: usize,
}

/// The input taps of one output position along one axis: `first, first + step, ...` (`count`
/// of them, all inside the input), and the tap count a divisor uses when padding is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First in-bounds input position.
    pub first: usize,
    /// Distance between taps.
    pub step: usize,
    /// Number of in-bounds taps.
    pub count: usize,
    /// Taps inside the padded extent `[-pad_begin, input + pad_end)` (ceil-mode overhang excluded).
    pub padded_count: usize,
}

impl Span {
    /// The in-bounds input positions, in order.
    pub fn taps(self) -> impl Iterator<Item = usize> {
        (0..self.count).map(move |j| self.first + j * self.step)
    }
}

impl AxisGeometry {
    /// PyTorch's `pooling_output_shape_pad_lr` with floor division, the `ceil_mode` start-inside
    /// rule, and checks that the output is non-empty and no window is padding only.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sliding(
        axis: usize,
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        pad_begin: usize,
        pad_end: usize,
        ceil: bool,
    ) -> Result<Self> {
        let (inn, k, s, d, pb, pe) = (
            input as i128,
            kernel as i128,
            stride as i128,
            dilation as i128,
            pad_begin as i128,
            pad_end as i128,
        );
        let eff = d * (k - 1) + 1;
        let num = inn + pb + pe - eff + if ceil { s - 1 } else { 0 };
        let mut out = num.div_euclid(s) + 1;
        if ceil && out > 0 && (out - 1) * s >= inn + pb {
            out -= 1;
        }
        if out < 1 {
            return Err(PoolError::OutputTooSmall {
                message: format!(
                    "spatial dim {axis}: input {input} with padding {pad_begin}+{pad_end}, kernel {kernel}, dilation {dilation} (extent {eff}) and stride {stride} gives {out} (the padded input must be at least as large as the dilated kernel)"
                ),
            });
        }
        let geom = AxisGeometry {
            input,
            output: to_usize(out, "output size")?,
            kernel,
            stride,
            dilation,
            pad_begin,
            pad_end,
        };
        Ok(geom)
    }

    /// The taps of output position `o`.
    pub fn span(&self, o: usize) -> Span {
        let start = (o * self.stride) as i128 - self.pad_begin as i128;
        let (k, d, inn) = (
            self.kernel as i128,
            self.dilation as i128,
            self.input as i128,
        );
        // first j with start + j*d >= 0
        let j0 = if start >= 0 { 0 } else { (-start + d - 1) / d };
        // taps j < jend have start + j*d < limit
        let below = |limit: i128| -> i128 {
            if start >= limit {
                0
            } else {
                ((limit - start + d - 1) / d).min(k)
            }
        };
        let j_in = below(inn);
        let count = (j_in - j0).max(0);
        let padded = below(inn + self.pad_end as i128);
        Span {
            // may lie past the input when no tap is inside (PyTorch's stepped window start)
            first: (start + j0 * d) as usize,
            step: self.dilation,
            count: count as usize,
            padded_count: padded as usize,
        }
    }

    /// Whether any window reaches into padding or past the input (a border window).
    pub fn has_border(&self) -> bool {
        self.pad_begin > 0 || {
            let last = (self.output - 1) * self.stride + self.dilation * (self.kernel - 1);
            last >= self.input + self.pad_begin
        }
    }
}

/// The windows of one axis, computed on demand (a table only where windows differ per plane):
/// axes can have billions of outputs, and a table of them would not fit in memory.
#[derive(Debug, Clone)]
pub(crate) enum AxisSpans {
    Sliding(AxisGeometry),
    Adaptive { input: usize, output: usize },
    Table(Vec<Span>),
}

impl AxisSpans {
    #[inline]
    pub fn get(&self, o: usize) -> Span {
        match self {
            AxisSpans::Sliding(a) => a.span(o),
            AxisSpans::Adaptive { input, output } => adaptive_span(o, *input, *output),
            AxisSpans::Table(t) => t[o],
        }
    }
}

/// PyTorch's adaptive window of output `o` of `out` over an input of `inn`:
/// `[floor(o*in/out), ceil((o+1)*in/out))`.
///
/// ```
/// let s = nnpool::geometry::adaptive_span(1, 5, 3);
/// assert_eq!((s.first, s.count), (1, 3));
/// ```
pub fn adaptive_span(o: usize, inn: usize, out: usize) -> Span {
    let (o, i, n) = (o as u128, inn as u128, out as u128);
    let start = (o * i) / n;
    let end = ((o + 1) * i).div_ceil(n);
    let count = (end - start) as usize;
    Span {
        first: start as usize,
        step: 1,
        count,
        padded_count: count,
    }
}

/// PyTorch's fractional-max-pooling interval starts for one axis (`generate_intervals`),
/// computed in the precision of the input type (`round` rounds an f64 to that type), so that
/// the same sample gives the same windows as PyTorch.
pub(crate) fn fractional_starts(
    sample: f64,
    inn: usize,
    out: usize,
    k: usize,
    round: impl Fn(f64) -> f64,
) -> Vec<usize> {
    let mut seq = vec![0usize; out];
    if out > 1 {
        let alpha = round(round((inn - k) as f64) / round((out - 1) as f64));
        let base = round(sample * alpha);
        for (i, s) in seq.iter_mut().enumerate().take(out - 1) {
            let v = round(round(round(i as f64) + sample) * alpha);
            // C++ static_cast<int64_t> truncates toward zero.
            let t = v.trunc() as i64 - base.trunc() as i64;
            *s = t.clamp(0, (inn - k) as i64) as usize;
        }
    }
    if out > 0 {
        seq[out - 1] = inn - k;
    }
    seq
}

/// PyTorch's default `max_unpool` output size per axis: `(in - 1) * stride + kernel - 2 * padding`.
/// It may be zero or negative; an explicit output size is checked against it as it is.
pub(crate) fn unpool_default_size(
    inn: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> i128 {
    (inn as i128 - 1) * stride as i128 + kernel as i128 - 2 * padding as i128
}

/// The default size as the output size when none is given. A size of 0 is an error, as every
/// other output size of 0 is in nnpool's contract (PyTorch returns an empty tensor there, as it
/// does for adaptive and fractional output sizes of 0).
pub(crate) fn unpool_default_output(
    axis: usize,
    inn: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<usize> {
    let v = unpool_default_size(inn, kernel, stride, padding);
    if v < 1 {
        return Err(PoolError::OutputTooSmall {
            message: format!(
                "max_unpool spatial dim {axis}: (input {inn} - 1) * stride {stride} + kernel {kernel} - 2 * padding {padding} = {v}"
            ),
        });
    }
    to_usize(v, "unpool output size")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out1(inn: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> usize {
        AxisGeometry::sliding(0, inn, k, s, d, p, p, ceil)
            .unwrap()
            .output
    }

    #[test]
    fn ceil_mode_examples_from_pytorch() {
        // (in,k,s,p,d) → out, checked against torch 2.15 in SEMANTICS.md §1.1
        assert_eq!(out1(5, 2, 3, 1, 1, true), 2);
        assert_eq!(out1(2, 1, 2, 0, 1, true), 1);
        assert_eq!(out1(6, 3, 2, 1, 1, true), 4);
        assert_eq!(out1(5, 4, 3, 0, 1, true), 2);
        assert_eq!(out1(7, 3, 3, 1, 1, true), 3);
        assert_eq!(out1(10, 3, 4, 1, 2, true), 3);
    }

    #[test]
    fn too_small_output_is_an_error() {
        assert!(AxisGeometry::sliding(0, 2, 3, 2, 1, 0, 0, false).is_err());
        assert!(AxisGeometry::sliding(0, 2, 3, 1, 1, 0, 0, false).is_err());
    }

    #[test]
    fn spans_clip_padding_and_overhang() {
        // ones(6), k3 s2 p1 ceil: windows [-1,2) [1,4) [3,6) [5,8)→ padded extent ends at 7
        let a = AxisGeometry::sliding(0, 6, 3, 2, 1, 1, 1, true).unwrap();
        assert_eq!(a.output, 4);
        let s: Vec<_> = (0..4)
            .map(|o| (a.span(o).count, a.span(o).padded_count))
            .collect();
        assert_eq!(s, vec![(2, 3), (3, 3), (3, 3), (1, 2)]);
    }

    #[test]
    fn same_padding_matches_onnx_shape_inference() {
        let w = Window::new(&[3]).stride(&[2]).auto_pad(AutoPad::SameUpper);
        let a = w.resolve(&[5]).unwrap();
        assert_eq!((a[0].pad_begin, a[0].pad_end, a[0].output), (1, 1, 3));
        let w = Window::new(&[2]).stride(&[1]).auto_pad(AutoPad::SameLower);
        let a = w.resolve(&[4]).unwrap();
        assert_eq!((a[0].pad_begin, a[0].pad_end, a[0].output), (1, 0, 4));
    }

    #[test]
    fn fractional_intervals_match_pytorch() {
        let f = |x: f64| x as f32 as f64;
        assert_eq!(fractional_starts(0.5, 12, 4, 2, f), vec![0, 4, 7, 10]);
        assert_eq!(fractional_starts(0.0, 12, 4, 2, f), vec![0, 3, 6, 10]);
    }

    #[test]
    fn adaptive_windows() {
        let spans: Vec<_> = (0..3)
            .map(|o| adaptive_span(o, 5, 3))
            .map(|s| (s.first, s.count))
            .collect();
        assert_eq!(spans, vec![(0, 2), (1, 3), (3, 2)]);
    }
}
