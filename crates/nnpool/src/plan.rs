//! Validated problems. A [`PoolPlan`] is built once from an op, an input shape and a layout
//! (every rule is checked here), then runs forward and backward passes on plain slices any
//! number of times. The `ndarray` functions and the `nn`-style layers are thin wrappers.

use crate::element::{round_to, DType, Element};
use crate::error::{invalid, PoolError, Result};
use crate::geometry::{adaptive_span, fractional_starts, AxisGeometry, AxisSpans, Span, Window};
use crate::kernels::out::Out;
use crate::kernels::window::{single_value, window_divisors, AxisPlan, Reduce};
use crate::layout::{checked_product, embed3, Layout, TensorDims};
use crate::{kernels, reference};

/// Which Lp formula to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LpVariant {
    /// PyTorch's `lp_pool`: `(sign(A)·relu(|A|)·K)^(1/p)` with `A = avg_pool(x^p)` (padding
    /// counted), `K` the kernel area. Uses `x^p`, not `|x|^p`, so odd `p` gives signed sums.
    #[default]
    Torch,
    /// The Lp norm of the window, `(Σ |x|^p)^(1/p)` over the real elements (ONNX's `LpPool`
    /// as onnxruntime computes it).
    Onnx,
}

/// The size of a fractional max pooling output.
#[derive(Debug, Clone, PartialEq)]
pub enum FractionalOutput {
    /// Output sizes per spatial dim.
    Size(Vec<usize>),
    /// `output = floor(input * ratio)` per spatial dim.
    Ratio(Vec<f64>),
}

/// Where fractional max pooling's pseudo-random samples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// PyTorch's `_random_samples`: shape `[N, C, r]` row-major, values in `[0, 1)`, in
    /// PyTorch's axis order (2-d: sample 0 drives W, sample 1 drives H; 1-d and 3-d: natural).
    Given(Vec<f64>),
    /// Draw the samples from a generator seeded with this value.
    Seed(u64),
}

/// A pooling operation and its options.
///
/// ```
/// use nnpool::{Pooling, Window};
/// let op = Pooling::avg(Window::new(&[3, 3]).stride(&[1]).padding(&[1]));
/// assert_eq!(op.name(), "avg");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Pooling {
    /// Max pooling (with optional argmax indices).
    Max {
        /// The window.
        window: Window,
    },
    /// Average pooling.
    Avg {
        /// The window.
        window: Window,
        /// Count padding in the divisor (PyTorch's default: true; ONNX's: false).
        count_include_pad: bool,
        /// A fixed divisor for every window (non-zero; may be negative as in PyTorch).
        divisor_override: Option<i64>,
    },
    /// Power-average (Lp) pooling.
    Lp {
        /// The window.
        window: Window,
        /// `p`: non-zero, as PyTorch (`f64::INFINITY` gives the max of `|x|`, `-INFINITY` minus
        /// the max of `-|x|`; negative values only with [`LpVariant::Torch`]).
        norm_type: f64,
        /// The formula.
        variant: LpVariant,
    },
    /// Adaptive max pooling to the given output size (`None`: keep the input size).
    AdaptiveMax {
        /// Output size per spatial dim.
        output_size: Vec<Option<usize>>,
    },
    /// Adaptive average pooling.
    AdaptiveAvg {
        /// Output size per spatial dim.
        output_size: Vec<Option<usize>>,
    },
    /// Max over every spatial dim (`[N, C, 1, ..]`).
    GlobalMax {
        /// Spatial rank.
        rank: usize,
    },
    /// Average over every spatial dim.
    GlobalAvg {
        /// Spatial rank.
        rank: usize,
    },
    /// Fractional max pooling (Graham, 2014) with PyTorch's interval rule.
    FractionalMax {
        /// Window size per spatial dim.
        kernel: Vec<usize>,
        /// Output size or ratio.
        output: FractionalOutput,
        /// The samples.
        samples: Samples,
    },
}

impl Pooling {
    /// Max pooling with `window`.
    pub fn max(window: Window) -> Self {
        Pooling::Max { window }
    }
    /// Average pooling with PyTorch's defaults (`count_include_pad = true`, no override).
    pub fn avg(window: Window) -> Self {
        Pooling::Avg {
            window,
            count_include_pad: true,
            divisor_override: None,
        }
    }
    /// PyTorch's Lp pooling.
    pub fn lp(window: Window, norm_type: f64) -> Self {
        Pooling::Lp {
            window,
            norm_type,
            variant: LpVariant::Torch,
        }
    }
    /// Adaptive max pooling.
    pub fn adaptive_max(output_size: &[usize]) -> Self {
        Pooling::AdaptiveMax {
            output_size: output_size.iter().map(|&o| Some(o)).collect(),
        }
    }
    /// Adaptive average pooling.
    pub fn adaptive_avg(output_size: &[usize]) -> Self {
        Pooling::AdaptiveAvg {
            output_size: output_size.iter().map(|&o| Some(o)).collect(),
        }
    }

    /// The op's CLI name.
    pub fn name(&self) -> &'static str {
        match self {
            Pooling::Max { .. } => "max",
            Pooling::Avg { .. } => "avg",
            Pooling::Lp { .. } => "lp",
            Pooling::AdaptiveMax { .. } => "adaptive-max",
            Pooling::AdaptiveAvg { .. } => "adaptive-avg",
            Pooling::GlobalMax { .. } => "global-max",
            Pooling::GlobalAvg { .. } => "global-avg",
            Pooling::FractionalMax { .. } => "fractional-max",
        }
    }

    /// Whether the op produces argmax indices.
    pub fn has_indices(&self) -> bool {
        matches!(
            self,
            Pooling::Max { .. }
                | Pooling::AdaptiveMax { .. }
                | Pooling::GlobalMax { .. }
                | Pooling::FractionalMax { .. }
        )
    }

    /// The spatial rank the op's options imply.
    pub fn rank(&self) -> usize {
        match self {
            Pooling::Max { window } | Pooling::Avg { window, .. } | Pooling::Lp { window, .. } => {
                window.rank()
            }
            Pooling::AdaptiveMax { output_size } | Pooling::AdaptiveAvg { output_size } => {
                output_size.len()
            }
            Pooling::GlobalMax { rank } | Pooling::GlobalAvg { rank } => *rank,
            Pooling::FractionalMax { kernel, .. } => kernel.len(),
        }
    }
}

/// The problem's dimensions, with spatial sizes embedded in 3-D (leading unit dims) so that
/// kernels and the reference loop over (d, h, w) once for every rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geom {
    pub batch: usize,
    pub channels: usize,
    pub in3: [usize; 3],
    pub out3: [usize; 3],
    pub layout: Layout,
}

impl Geom {
    pub fn in_plane(&self) -> usize {
        self.in3.iter().product()
    }
    pub fn out_plane(&self) -> usize {
        self.out3.iter().product()
    }
    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }
    pub fn in_strides(&self) -> crate::layout::Strides {
        crate::layout::Strides::new(self.layout, self.channels, self.in_plane())
    }
    pub fn out_strides(&self) -> crate::layout::Strides {
        crate::layout::Strides::new(self.layout, self.channels, self.out_plane())
    }
}

/// Longest axis (in outputs) whose windows the fast kernels tabulate.
const MAX_TABULATED_OUTPUTS: usize = 1 << 22;

/// Per-axis windows (3-D embedded), shared by all planes or one set per plane (fractional).
pub(crate) enum WindowTable {
    Shared([AxisSpans; 3]),
    PerPlane(Vec<[AxisSpans; 3]>),
}

impl WindowTable {
    pub fn plane(&self, p: usize) -> &[AxisSpans; 3] {
        match self {
            WindowTable::Shared(w) => w,
            WindowTable::PerPlane(v) => &v[p],
        }
    }
}

/// How average pooling divides a window sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Divisor {
    /// Taps inside the padded extent (PyTorch `count_include_pad = true`).
    Padded,
    /// In-bounds taps only.
    Real,
    /// A fixed divisor.
    Override(i64),
    /// Adaptive pooling: `sum / len_d / len_h / len_w`, one division per axis as PyTorch does.
    PerAxis,
}

#[derive(Debug, Clone)]
enum Kind {
    Sliding(Vec<AxisGeometry>),
    Adaptive,
    Fractional {
        kernel: Vec<usize>,
        samples: Samples,
    },
}

/// A validated pooling problem: op, input shape and layout.
///
/// ```
/// use nnpool::{Layout, PoolPlan, Pooling, Window};
/// let plan = PoolPlan::new(&Pooling::max(Window::new(&[2, 2])), &[1, 1, 2, 4], Layout::ChannelsFirst)?;
/// assert_eq!(plan.output_shape(), &[1, 1, 1, 2]);
/// let x = [1.0f32, 1.0, 2.0, 4.0, 5.0, 6.0, 3.0, 1.0];
/// let mut y = [0.0f32; 2];
/// let mut idx = [0i64; 2];
/// plan.forward(&x, &mut y, Some(&mut idx))?;
/// assert_eq!((y, idx), ([6.0, 4.0], [5, 3]));
/// # Ok::<(), nnpool::PoolError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolPlan {
    pooling: Pooling,
    input: TensorDims,
    output_spatial: Vec<usize>,
    output_shape: Vec<usize>,
    kind: Kind,
    /// The fast kernels' per-axis window plans, made once here: made per call, their span
    /// arithmetic (128-bit, overflow-safe) and tables took about 1 µs, 85 % of a one-plane
    /// call (`plane_probe 1 55 55 3 2 0`).
    axes: Option<[AxisPlan; 3]>,
}

impl PoolPlan {
    /// Validates `pooling` on an input of `input_shape` in `layout`.
    ///
    /// # Errors
    /// Any rule the op enforces: see [`PoolError`]. Nothing is allocated for the data.
    pub fn new(pooling: &Pooling, input_shape: &[usize], layout: Layout) -> Result<Self> {
        let rank = pooling.rank();
        if rank == 0 || rank > crate::layout::MAX_SPATIAL_RANK {
            let param = match pooling {
                Pooling::AdaptiveMax { .. } | Pooling::AdaptiveAvg { .. } => "output_size",
                Pooling::GlobalMax { .. } | Pooling::GlobalAvg { .. } => "rank",
                _ => "kernel_size",
            };
            return Err(invalid(
                param,
                format!("needs 1 to 3 values (one per spatial dim), got {rank}"),
            ));
        }
        let input = TensorDims::new(input_shape, rank, layout)?;
        let (output_spatial, kind) = match pooling {
            Pooling::Max { window } => {
                let axes = window.resolve(&input.spatial)?;
                (axes.iter().map(|a| a.output).collect(), Kind::Sliding(axes))
            }
            Pooling::Avg {
                window,
                divisor_override,
                ..
            } => {
                if *divisor_override == Some(0) {
                    return Err(invalid("divisor_override", "must be non-zero, but got 0"));
                }
                if matches!(window.padding, crate::Padding::Symmetric(_)) {
                    avg_pool3d_input_check(&input.spatial, &window.kernel, "avg_pool3d")?;
                }
                let axes = window.resolve(&input.spatial)?;
                (axes.iter().map(|a| a.output).collect(), Kind::Sliding(axes))
            }
            Pooling::Lp {
                window,
                norm_type,
                variant,
            } => {
                if norm_type.is_nan() || *norm_type == 0.0 {
                    return Err(invalid(
                        "norm_type",
                        format!("must be a non-zero number (or ±inf), but got {norm_type}"),
                    ));
                }
                if *variant == LpVariant::Onnx && *norm_type < 0.0 {
                    return Err(invalid(
                        "norm_type",
                        format!(
                            "must be greater than zero for ONNX's Lp norm, but got {norm_type}"
                        ),
                    ));
                }
                if *variant == LpVariant::Torch && norm_type.is_finite() {
                    // PyTorch's lp_pool3d is avg_pool3d of x^p (max_pool3d for p = inf).
                    avg_pool3d_input_check(&input.spatial, &window.kernel, "lp_pool3d")?;
                }
                let axes = window.resolve(&input.spatial)?;
                (axes.iter().map(|a| a.output).collect(), Kind::Sliding(axes))
            }
            Pooling::AdaptiveMax { output_size } | Pooling::AdaptiveAvg { output_size } => {
                let out: Vec<usize> = output_size
                    .iter()
                    .zip(&input.spatial)
                    .map(|(o, &i)| o.unwrap_or(i))
                    .collect();
                if let Some(i) = out.iter().position(|&o| o == 0) {
                    return Err(invalid(
                        "output_size",
                        format!(
                            "must be at least 1 in every spatial dim, but dim {i} is 0 in {out:?}"
                        ),
                    ));
                }
                (out, Kind::Adaptive)
            }
            Pooling::GlobalMax { .. } | Pooling::GlobalAvg { .. } => {
                (vec![1; rank], Kind::Adaptive)
            }
            Pooling::FractionalMax {
                kernel,
                output,
                samples,
            } => {
                if kernel.contains(&0) {
                    return Err(invalid(
                        "kernel_size",
                        format!("must be greater than zero, but got {kernel:?}"),
                    ));
                }
                let out: Vec<usize> = match output {
                    FractionalOutput::Size(s) => {
                        crate::geometry::broadcast("output_size", s, rank)?
                    }
                    FractionalOutput::Ratio(r) => {
                        if r.len() != 1 && r.len() != rank {
                            return Err(invalid(
                                "output_ratio",
                                format!("needs 1 value or {rank}, got {}", r.len()),
                            ));
                        }
                        (0..rank)
                            .map(|i| {
                                let ratio = if r.len() == 1 { r[0] } else { r[i] };
                                if !(ratio > 0.0 && ratio < 1.0) {
                                    return Err(invalid(
                                        "output_ratio",
                                        format!("must be in (0, 1), but got {ratio}"),
                                    ));
                                }
                                Ok((input.spatial[i] as f64 * ratio) as usize)
                            })
                            .collect::<Result<_>>()?
                    }
                };
                for i in 0..rank {
                    if out[i] == 0 {
                        return Err(invalid(
                            "output_size",
                            format!("must be at least 1 in every spatial dim, but got {out:?}"),
                        ));
                    }
                    // PyTorch's 3-d op asks for `<` where its 2-d op asks for `<=`
                    // (FractionalMaxPool3d.cpp against FractionalMaxPool2d.cpp).
                    let (reach, inn) = (out[i] as u128 + kernel[i] as u128 - 1, input.spatial[i]);
                    let (fits, rule) = if rank == 3 {
                        (reach < inn as u128, "<")
                    } else {
                        (reach <= inn as u128, "<=")
                    };
                    if !fits {
                        return Err(invalid(
                            "output_size",
                            format!(
                                "{rank}-d fractional max pooling needs output + kernel - 1 {rule} input in every dim, but dim {i} has output {} + kernel {} - 1 = {reach} against input {inn}",
                                out[i], kernel[i]
                            ),
                        ));
                    }
                }
                if let Samples::Given(s) = samples {
                    let need = input.batch * input.channels * rank;
                    if s.len() != need {
                        return Err(PoolError::InvalidShape {
                            what: "samples",
                            shape: vec![s.len()],
                            message: format!(
                                "needs N*C*r = {}*{}*{} = {need} values (shape [N, C, {rank}])",
                                input.batch, input.channels, rank
                            ),
                        });
                    }
                    if let Some(v) = s.iter().find(|v| !(**v >= 0.0 && **v < 1.0)) {
                        return Err(invalid(
                            "samples",
                            format!("every sample must lie in [0, 1), but got {v}"),
                        ));
                    }
                }
                (
                    out,
                    Kind::Fractional {
                        kernel: kernel.clone(),
                        samples: samples.clone(),
                    },
                )
            }
        };
        let output_shape = input.shape_with_spatial(&output_spatial);
        checked_product(&output_shape, "the output's element count")?;
        let axes = Self::make_axis_plans(&kind, &input, &output_spatial);
        Ok(PoolPlan {
            pooling: pooling.clone(),
            input,
            output_spatial,
            output_shape,
            kind,
            axes,
        })
    }

    /// The op.
    pub fn pooling(&self) -> &Pooling {
        &self.pooling
    }
    /// The input's dims.
    pub fn input(&self) -> &TensorDims {
        &self.input
    }
    /// The input's shape.
    pub fn input_shape(&self) -> Vec<usize> {
        self.input.shape()
    }
    /// The output's shape (also the shape of the indices and of `grad_output`).
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
    /// The output's spatial sizes.
    pub fn output_spatial(&self) -> &[usize] {
        &self.output_spatial
    }
    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.input.batch * self.input.channels * self.input.spatial.iter().product::<usize>()
    }
    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.output_shape.iter().product()
    }
    /// The per-axis geometry of a sliding-window op (max, avg, lp); `None` for the others.
    pub fn axes(&self) -> Option<&[AxisGeometry]> {
        match &self.kind {
            Kind::Sliding(a) => Some(a),
            _ => None,
        }
    }

    /// The divisor of an average op.
    pub(crate) fn divisor(&self) -> Option<Divisor> {
        match &self.pooling {
            Pooling::Avg {
                count_include_pad,
                divisor_override,
                ..
            } => Some(match divisor_override {
                Some(d) => Divisor::Override(*d),
                None if *count_include_pad => Divisor::Padded,
                None => Divisor::Real,
            }),
            Pooling::AdaptiveAvg { .. } | Pooling::GlobalAvg { .. } => Some(Divisor::PerAxis),
            _ => None,
        }
    }

    /// Per-axis window plans (3-D embedded) for the fast kernels; `None` for fractional pooling,
    /// whose windows differ from plane to plane.
    fn make_axis_plans(
        kind: &Kind,
        input: &TensorDims,
        output_spatial: &[usize],
    ) -> Option<[AxisPlan; 3]> {
        // The fast kernels tabulate windows per axis; beyond a few million outputs along one
        // axis the table would cost more than it saves, and the reference computes spans on
        // the fly instead.
        if output_spatial.iter().any(|&o| o > MAX_TABULATED_OUTPUTS) {
            return None;
        }
        let unit = || {
            AxisPlan::from_spans(vec![Span {
                first: 0,
                step: 1,
                count: 1,
                padded_count: 1,
            }])
        };
        let mut plans = [unit(), unit(), unit()];
        let lead = 3 - input.rank();
        match kind {
            Kind::Sliding(axes) => {
                for (i, a) in axes.iter().enumerate() {
                    plans[lead + i] = AxisPlan::sliding(a);
                }
            }
            Kind::Adaptive => {
                for i in 0..input.rank() {
                    let (inn, out) = (input.spatial[i], output_spatial[i]);
                    plans[lead + i] = AxisPlan::from_spans(
                        (0..out).map(|o| adaptive_span(o, inn, out)).collect(),
                    );
                }
            }
            Kind::Fractional { .. } => return None,
        }
        Some(plans)
    }

    /// Per-axis window plans (3-D embedded) for the fast kernels, as [`Self::new`] made them.
    pub(crate) fn axis_plans(&self) -> Option<&[AxisPlan; 3]> {
        self.axes.as_ref()
    }

    pub(crate) fn geom(&self) -> Geom {
        Geom {
            batch: self.input.batch,
            channels: self.input.channels,
            in3: embed3(&self.input.spatial),
            out3: embed3(&self.output_spatial),
            layout: self.input.layout,
        }
    }

    /// The windows of every plane, computed in `T`'s precision (fractional pooling's intervals
    /// depend on it).
    pub(crate) fn windows<T: Element>(&self) -> WindowTable {
        let r = self.input.rank();
        let lead = 3 - r;
        let unit = || {
            AxisSpans::Table(vec![Span {
                first: 0,
                step: 1,
                count: 1,
                padded_count: 1,
            }])
        };
        match &self.kind {
            Kind::Sliding(axes) => {
                let mut w = [unit(), unit(), unit()];
                for (i, a) in axes.iter().enumerate() {
                    w[lead + i] = AxisSpans::Sliding(*a);
                }
                WindowTable::Shared(w)
            }
            Kind::Adaptive => {
                let mut w = [unit(), unit(), unit()];
                for i in 0..r {
                    w[lead + i] = AxisSpans::Adaptive {
                        input: self.input.spatial[i],
                        output: self.output_spatial[i],
                    };
                }
                WindowTable::Shared(w)
            }
            Kind::Fractional { kernel, samples } => {
                let planes = self.input.batch * self.input.channels;
                let drawn;
                let s: &[f64] = match samples {
                    Samples::Given(s) => s,
                    Samples::Seed(seed) => {
                        drawn = draw_samples(*seed, planes * r);
                        &drawn
                    }
                };
                let tables = (0..planes)
                    .map(|p| {
                        let mut w = [unit(), unit(), unit()];
                        for i in 0..r {
                            // PyTorch's 2-d kernel reads sample 0 for W and sample 1 for H.
                            let sample_axis = if r == 2 { 1 - i } else { i };
                            let u = round_to::<T>(s[p * r + sample_axis]);
                            let (inn, out, k) =
                                (self.input.spatial[i], self.output_spatial[i], kernel[i]);
                            w[lead + i] = AxisSpans::Table(
                                fractional_starts(u, inn, out, k, round_to::<T>)
                                    .into_iter()
                                    .map(|first| Span {
                                        first,
                                        step: 1,
                                        count: k,
                                        padded_count: k,
                                    })
                                    .collect(),
                            );
                        }
                        w
                    })
                    .collect();
                WindowTable::PerPlane(tables)
            }
        }
    }

    fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
        if expected != actual {
            return Err(PoolError::BufferSize {
                what,
                expected,
                actual,
            });
        }
        Ok(())
    }

    fn require_float<T: Element>(&self, what: &'static str) -> Result<()> {
        if !T::IS_FLOAT {
            return Err(PoolError::UnsupportedDtype {
                op: what,
                dtype: T::DTYPE.name(),
                message: "it needs a floating-point type (float16, bfloat16, float32, float64)"
                    .into(),
            });
        }
        Ok(())
    }

    /// Runs the forward pass into caller-provided buffers (contiguous, in the plan's layout).
    /// `indices` (max-type ops only) receives int64 plane-local argmax indices.
    ///
    /// # Errors
    /// `BufferSize` if a buffer's length is wrong; `UnsupportedDtype` for average or Lp pooling
    /// of integers; `InvalidParameter` if indices are asked of an op that has none.
    pub fn forward<T: Element>(
        &self,
        input: &[T],
        output: &mut [T],
        indices: Option<&mut [i64]>,
    ) -> Result<()> {
        Self::check_len("output", self.output_len(), output.len())?;
        self.forward_into(input, &mut Out::from_init(output), indices)
    }

    /// The forward pass into a new vector (a max-type op's indices are not computed). Faster
    /// than [`PoolPlan::forward`] into a freshly zeroed buffer: the kernels that store every
    /// output element write into the fresh memory directly, without zeroing it first.
    ///
    /// ```
    /// use nnpool::{Layout, PoolPlan, Pooling, Window};
    /// let plan = PoolPlan::new(&Pooling::max(Window::new(&[2])), &[1, 1, 4], Layout::ChannelsFirst)?;
    /// assert_eq!(plan.forward_to_vec(&[1.0f32, 3.0, 2.0, 0.5])?, vec![3.0, 2.0]);
    /// # Ok::<(), nnpool::PoolError>(())
    /// ```
    ///
    /// # Errors
    /// As [`PoolPlan::forward`].
    pub fn forward_to_vec<T: Element>(&self, input: &[T]) -> Result<Vec<T>> {
        // SAFETY: `forward_into` initialises its whole output when it returns Ok.
        unsafe { crate::alloc::write_new(self.output_len(), |y| self.forward_into(input, y, None)) }
    }

    /// The forward pass of a max-type op into new vectors: the output and its int64 argmax
    /// indices (see [`PoolPlan::forward`]).
    ///
    /// ```
    /// use nnpool::{Layout, PoolPlan, Pooling, Window};
    /// let plan = PoolPlan::new(&Pooling::max(Window::new(&[2])), &[1, 1, 4], Layout::ChannelsFirst)?;
    /// let (y, idx) = plan.forward_with_indices_to_vec(&[1.0f32, 3.0, 2.0, 0.5])?;
    /// assert_eq!((y, idx), (vec![3.0, 2.0], vec![1, 2]));
    /// # Ok::<(), nnpool::PoolError>(())
    /// ```
    ///
    /// # Errors
    /// As [`PoolPlan::forward`], and `InvalidParameter` for an op without indices.
    pub fn forward_with_indices_to_vec<T: Element>(
        &self,
        input: &[T],
    ) -> Result<(Vec<T>, Vec<i64>)> {
        let mut idx = crate::zeroed::<i64>(self.output_len());
        // SAFETY: `forward_into` initialises its whole output when it returns Ok.
        let y = unsafe {
            crate::alloc::write_new(self.output_len(), |y| {
                self.forward_into(input, y, Some(&mut idx))
            })?
        };
        Ok((y, idx))
    }

    /// [`PoolPlan::forward`] into `output` of the right length; initialises all of it when it
    /// returns Ok.
    fn forward_into<T: Element>(
        &self,
        input: &[T],
        output: &mut Out<T>,
        mut indices: Option<&mut [i64]>,
    ) -> Result<()> {
        Self::check_len("input", self.input_len(), input.len())?;
        if let Some(idx) = &indices {
            if !self.pooling.has_indices() {
                return Err(invalid(
                    "indices",
                    format!("{} pooling has no indices", self.pooling.name()),
                ));
            }
            Self::check_len("indices", self.output_len(), idx.len())?;
        }
        if self.output_len() == 0 {
            return Ok(());
        }
        let g = self.geom();
        match &self.pooling {
            Pooling::Max { .. } | Pooling::AdaptiveMax { .. } | Pooling::GlobalMax { .. } => {
                let fast = self.axis_plans().is_some_and(|axes| {
                    kernels::window_forward(
                        &g,
                        axes,
                        Reduce::Max,
                        input,
                        output,
                        indices.as_deref_mut(),
                    )
                });
                if !fast {
                    let output = output.init();
                    reference::max_forward(&g, &self.windows::<T>(), input, output, indices);
                }
            }
            Pooling::FractionalMax { .. } => {
                reference::max_forward(&g, &self.windows::<T>(), input, output.init(), indices)
            }
            Pooling::Avg { .. } | Pooling::AdaptiveAvg { .. } | Pooling::GlobalAvg { .. } => {
                self.require_float::<T>("average pooling")?;
                let div = self.divisor().expect("average ops have a divisor");
                let fast = self.axis_plans().is_some_and(|axes| {
                    kernels::window_forward(&g, axes, Reduce::Sum(div), input, output, None)
                });
                if !fast {
                    reference::avg_forward(&g, &self.windows::<T>(), div, input, output.init());
                }
            }
            Pooling::Lp {
                norm_type,
                variant,
                window,
            } => {
                self.require_float::<T>("Lp pooling")?;
                let area: usize = window.kernel.iter().product();
                let (table, output) = (self.windows::<T>(), output.init());
                let (p, v) = (*norm_type, *variant);
                if !kernels::planewise::lp_forward(&g, &table, p, v, area, input, output) {
                    reference::lp_forward(&g, &table, p, v, area, input, output);
                }
            }
        }
        Ok(())
    }

    /// Runs the backward pass: the gradient with respect to the input, given the input and the
    /// gradient with respect to the output. Deterministic: contributions are summed in output
    /// order.
    ///
    /// # Errors
    /// `BufferSize` if a buffer's length is wrong; `UnsupportedDtype` for integer types.
    pub fn backward<T: Element>(
        &self,
        input: &[T],
        grad_output: &[T],
        grad_input: &mut [T],
    ) -> Result<()> {
        Self::check_len("grad_input", self.input_len(), grad_input.len())?;
        self.backward_into(input, grad_output, &mut Out::from_init(grad_input))
    }

    /// The backward pass into a new vector (see [`PoolPlan::backward`]); the kernels that
    /// store every element write into the fresh memory without zeroing it first.
    ///
    /// ```
    /// use nnpool::{Layout, PoolPlan, Pooling, Window};
    /// let plan = PoolPlan::new(&Pooling::max(Window::new(&[2])), &[1, 1, 4], Layout::ChannelsFirst)?;
    /// let gx = plan.backward_to_vec(&[1.0f32, 3.0, 2.0, 0.5], &[10.0, 20.0])?;
    /// assert_eq!(gx, vec![0.0, 10.0, 20.0, 0.0]);
    /// # Ok::<(), nnpool::PoolError>(())
    /// ```
    ///
    /// # Errors
    /// As [`PoolPlan::backward`].
    pub fn backward_to_vec<T: Element>(&self, input: &[T], grad_output: &[T]) -> Result<Vec<T>> {
        // SAFETY: `backward_into` initialises its whole output when it returns Ok.
        unsafe {
            crate::alloc::write_new(self.input_len(), |gx| {
                self.backward_into(input, grad_output, gx)
            })
        }
    }

    /// The average backward of a channels-last f32 or f64 problem at stride 1 without dilation as a
    /// forward pool: `grad_input[x]` sums `grad_output[o] / divisor[o]` over the outputs `o`
    /// whose window holds `x` — along each axis the `k` outputs ending at `x + pad_begin`,
    /// which is a sum pool of the (scaled) output gradient, stride 1, padded by
    /// `k - 1 - pad_begin` before and `k - 1 - pad_end` after. The channels-last forward
    /// kernels then do the work (3×3: two rows at a time; larger windows: separable passes),
    /// where the scatter adds each output into its whole window. With one divisor for every
    /// window the sum pool divides once per input (`divisor_override`), otherwise the output
    /// gradient is divided first, as the reference does. Sums in another order than the
    /// reference's: within the averages' rounding tolerance. Returns whether it applied.
    /// Measured (`nnpool bench --case inception_avg_s1_bwd --layout nhwc`, same runs against
    /// the scatter, 1 / 2 threads): 0.93–0.98 / 0.49 → 0.24 / 0.135–0.19 ms.
    fn avg_backward_as_sum_pool<T: Element>(
        &self,
        div: Divisor,
        grad_output: &[T],
        grad_input: &mut Out<T>,
    ) -> Result<bool> {
        let (Kind::Sliding(axes), Layout::ChannelsLast, DType::F32 | DType::F64, Some(_)) =
            (&self.kind, self.input.layout, T::DTYPE, kernels::fast_isa())
        else {
            // (the reference backward, the oracle, scatters as the definition reads)
            return Ok(false);
        };
        let plain = |a: &AxisGeometry| {
            a.stride == 1 && a.dilation == 1 && a.pad_begin < a.kernel && a.pad_end < a.kernel
        };
        if !axes.iter().all(plain) || self.output_len() == 0 {
            return Ok(false);
        }
        let kernel: Vec<usize> = axes.iter().map(|a| a.kernel).collect();
        let ones = vec![1; axes.len()];
        let begin: Vec<usize> = axes.iter().map(|a| a.kernel - 1 - a.pad_begin).collect();
        let end: Vec<usize> = axes.iter().map(|a| a.kernel - 1 - a.pad_end).collect();
        // each output position's divisor, as the reference forms it
        let Some(divisors) = self
            .axis_plans()
            .and_then(|axes| window_divisors(axes, div))
        else {
            return Ok(false); // adaptive pooling: one division per axis
        };
        let uniform = single_value(&divisors);
        let window = Window::new(&kernel).stride(&ones).pads(&begin, &end);
        let sum_pool = Pooling::Avg {
            window,
            count_include_pad: true,
            divisor_override: Some(uniform.unwrap_or(1)),
        };
        let Ok(plan) = PoolPlan::new(&sum_pool, &self.output_shape, Layout::ChannelsLast) else {
            return Ok(false);
        };
        if plan.output_shape != self.input.shape() {
            return Ok(false);
        }
        if uniform.is_some() {
            plan.forward_into(grad_output, grad_input, None)?;
            return Ok(true);
        }
        // each output pixel's gradient divided by its window's divisor (all channels alike)
        let c = self.input.channels;
        let mut scaled = grad_output.to_vec();
        if let Some(values) = kernels::cast_mut::<T, f32>(&mut scaled) {
            for (pixel, &d) in values.chunks_exact_mut(c).zip(divisors.iter().cycle()) {
                let d = d as f32;
                for v in pixel {
                    *v /= d;
                }
            }
        } else {
            let values =
                kernels::cast_mut::<T, f64>(&mut scaled).expect("f32 or f64 checked above");
            for (pixel, &d) in values.chunks_exact_mut(c).zip(divisors.iter().cycle()) {
                let d = d as f64;
                for v in pixel {
                    *v /= d;
                }
            }
        }
        plan.forward_into(&scaled, grad_input, None)?;
        Ok(true)
    }

    /// [`PoolPlan::backward`] into `grad_input` of the right length; initialises all of it
    /// when it returns Ok.
    fn backward_into<T: Element>(
        &self,
        input: &[T],
        grad_output: &[T],
        grad_input: &mut Out<T>,
    ) -> Result<()> {
        self.require_float::<T>("backward")?;
        Self::check_len("input", self.input_len(), input.len())?;
        Self::check_len("grad_output", self.output_len(), grad_output.len())?;
        let g = self.geom();
        if self.input_len() == 0 {
            return Ok(());
        }
        match &self.pooling {
            Pooling::Max { .. }
            | Pooling::AdaptiveMax { .. }
            | Pooling::GlobalMax { .. }
            | Pooling::FractionalMax { .. } => {
                let mut out = vec![T::default(); self.output_len()];
                let mut idx = vec![0i64; self.output_len()];
                self.forward(input, &mut out, Some(&mut idx))?;
                return self.backward_with_indices_into(&idx, grad_output, grad_input);
            }
            Pooling::Avg { .. } | Pooling::AdaptiveAvg { .. } | Pooling::GlobalAvg { .. } => {
                let div = self.divisor().expect("average ops have a divisor");
                if self.avg_backward_as_sum_pool(div, grad_output, grad_input)? {
                    return Ok(());
                }
                let fast = self.axis_plans().is_some_and(|axes| {
                    kernels::avg_backward(&g, axes, div, grad_output, grad_input)
                });
                if !fast {
                    let (table, gx) = (self.windows::<T>(), grad_input.init());
                    if !kernels::planewise::avg_backward(&g, &table, div, grad_output, gx) {
                        reference::avg_backward(&g, &table, div, grad_output, gx);
                    }
                }
            }
            Pooling::Lp {
                norm_type,
                variant,
                window,
            } => {
                let area: usize = window.kernel.iter().product();
                let (table, gx) = (self.windows::<T>(), grad_input.init());
                let (p, v, gy) = (*norm_type, *variant, grad_output);
                if !kernels::planewise::lp_backward(&g, &table, p, v, area, input, gy, gx) {
                    reference::lp_backward(&g, &table, p, v, area, input, gy, gx);
                }
            }
        }
        Ok(())
    }

    /// The backward pass of a max-type op from the argmax indices of its forward pass (as
    /// [`PoolPlan::forward`] writes them): `grad_input[plane][idx] += grad_output`, zeros
    /// elsewhere. This skips recomputing the forward pass.
    ///
    /// Whatever `grad_input` holds is overwritten. A framework that reuses its gradient
    /// buffers saves the page faults of a fresh one, and for gradients of 16 MiB or more
    /// (f32, f64) the buffer is written with streaming stores and never read.
    ///
    /// ```
    /// use nnpool::{Layout, PoolPlan, Pooling, Window};
    /// let plan = PoolPlan::new(&Pooling::max(Window::new(&[2, 2])), &[1, 1, 2, 4], Layout::ChannelsFirst)?;
    /// let x = [1.0f32, 5.0, 2.0, 0.0, 3.0, 4.0, 9.0, 8.0];
    /// let (mut y, mut idx) = (vec![0.0f32; 2], vec![0i64; 2]);
    /// plan.forward(&x, &mut y, Some(&mut idx))?;
    /// assert_eq!(idx, [1, 6]);
    /// let mut gx = vec![f32::NAN; 8]; // a reused buffer: every element is written
    /// plan.backward_with_indices(&idx, &[10.0, 20.0], &mut gx)?;
    /// assert_eq!(gx, [0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 20.0, 0.0]);
    /// # Ok::<(), nnpool::PoolError>(())
    /// ```
    ///
    /// # Errors
    /// `BufferSize` for wrong lengths, `UnsupportedDtype` for integers, `InvalidParameter` for an
    /// op without indices, `InvalidIndex` for an index outside the input plane (no index the
    /// forward pass writes for a window that holds an input element is).
    pub fn backward_with_indices<T: Element>(
        &self,
        indices: &[i64],
        grad_output: &[T],
        grad_input: &mut [T],
    ) -> Result<()> {
        Self::check_len("grad_input", self.input_len(), grad_input.len())?;
        self.backward_with_indices_into(indices, grad_output, &mut Out::from_init(grad_input))
    }

    /// [`PoolPlan::backward_with_indices`] into a new vector, written without zeroing it
    /// first (each plane is zeroed just before its scatter).
    ///
    /// ```
    /// use nnpool::{Layout, PoolPlan, Pooling, Window};
    /// let plan = PoolPlan::new(&Pooling::max(Window::new(&[2])), &[1, 1, 4], Layout::ChannelsFirst)?;
    /// let gx = plan.backward_with_indices_to_vec(&[1i64, 2], &[10.0f32, 20.0])?;
    /// assert_eq!(gx, vec![0.0, 10.0, 20.0, 0.0]);
    /// # Ok::<(), nnpool::PoolError>(())
    /// ```
    ///
    /// # Errors
    /// As [`PoolPlan::backward_with_indices`].
    pub fn backward_with_indices_to_vec<T: Element>(
        &self,
        indices: &[i64],
        grad_output: &[T],
    ) -> Result<Vec<T>> {
        // SAFETY: `backward_with_indices_into` initialises its whole output when it returns Ok.
        unsafe {
            crate::alloc::write_new(self.input_len(), |gx| {
                self.backward_with_indices_into(indices, grad_output, gx)
            })
        }
    }

    /// [`PoolPlan::backward_with_indices`] into `grad_input` of the right length; initialises
    /// all of it when it returns Ok.
    fn backward_with_indices_into<T: Element>(
        &self,
        indices: &[i64],
        grad_output: &[T],
        grad_input: &mut Out<T>,
    ) -> Result<()> {
        self.require_float::<T>("backward")?;
        if !self.pooling.has_indices() {
            return Err(invalid(
                "indices",
                format!("{} pooling has no indices", self.pooling.name()),
            ));
        }
        Self::check_len("indices", self.output_len(), indices.len())?;
        Self::check_len("grad_output", self.output_len(), grad_output.len())?;
        let g = self.geom();
        let plane = g.in_plane();
        let reach = || self.output_row_reach();
        let bad = match kernels::max_backward(
            &g,
            self.axis_plans(),
            reach,
            indices,
            grad_output,
            grad_input,
        ) {
            Some(r) => r.err(),
            None => {
                let gx = grad_input.init();
                reference::scatter_by_index(&g, indices, grad_output, gx);
                indices
                    .iter()
                    .copied()
                    .find(|&i| !(0..plane as i64).contains(&i))
            }
        };
        // Windows without input elements (dilation) carry PyTorch's out-of-window index;
        // their gradient is dropped. Any other stray index is the caller's error.
        match bad {
            Some(index) if !self.has_empty_windows() => {
                Err(PoolError::InvalidIndex { index, plane })
            }
            _ => Ok(()),
        }
    }

    /// An upper bound on the input pixels (of one plane, in raster order) that the windows of
    /// one output row span, from the first pixel of their first input row to the last of their
    /// last: the backward scatter's ring must hold that many. `None` when the windows are not
    /// tabulated (fractional pooling) or the count overflows.
    fn output_row_reach(&self) -> Option<usize> {
        let [d, h, _] = self.axis_plans()?;
        let [_, in_h, in_w] = self.geom().in3;
        (d.extent - 1)
            .checked_mul(in_h)?
            .checked_add(h.extent)?
            .checked_mul(in_w)
    }

    fn has_empty_windows(&self) -> bool {
        self.axis_plans()
            .is_some_and(|a| a.iter().any(|p| p.has_empty_window()))
    }

    /// The backward pass by the scalar reference alone. Same contract as
    /// [`PoolPlan::backward`].
    ///
    /// # Errors
    /// As [`PoolPlan::backward`].
    pub fn backward_reference<T: Element>(
        &self,
        input: &[T],
        grad_output: &[T],
        grad_input: &mut [T],
    ) -> Result<()> {
        let _guard = kernels::ForceReference::new();
        self.backward(input, grad_output, grad_input)
    }

    /// The forward pass by the scalar reference alone (the oracle the fast kernels are tested
    /// against). Same contract as [`PoolPlan::forward`].
    ///
    /// # Errors
    /// As [`PoolPlan::forward`].
    pub fn forward_reference<T: Element>(
        &self,
        input: &[T],
        output: &mut [T],
        indices: Option<&mut [i64]>,
    ) -> Result<()> {
        let _guard = kernels::ForceReference::new();
        self.forward(input, output, indices)
    }
}

/// Draws `n` samples in `[0, 1)` from a SplitMix64 generator seeded with `seed`.
///
/// SplitMix64 is a few lines, has no dependencies and is fully specified, so a seed gives the
/// same samples on every platform and version; nothing here needs cryptographic quality.
pub fn draw_samples(seed: u64, n: usize) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            // 24 random bits: exactly representable in every float type nnpool supports.
            (z >> 40) as f64 / (1u64 << 24) as f64
        })
        .collect()
}

/// PyTorch's avg_pool3d (and so lp_pool3d) refuses an input smaller than the kernel in any
/// axis, even where padding or ceil_mode would give it an output; 1-d and 2-d pools and
/// max_pool3d accept it.
fn avg_pool3d_input_check(spatial: &[usize], kernel: &[usize], op: &str) -> Result<()> {
    if spatial.len() == 3 && spatial.iter().zip(kernel).any(|(i, k)| i < k) {
        return Err(PoolError::OutputTooSmall {
            message: format!(
                "{op}: input image {spatial:?} is smaller than the kernel size {kernel:?} (PyTorch checks this before padding)"
            ),
        });
    }
    Ok(())
}
