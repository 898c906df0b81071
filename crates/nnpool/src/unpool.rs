//! Max unpooling: the partial inverse of max pooling, scattering values to their argmax indices.

use crate::element::Element;
use crate::error::{invalid, PoolError, Result};
use crate::geometry::{broadcast, unpool_default_output, unpool_default_size};
use crate::layout::{checked_product, embed3, Layout, TensorDims};
use crate::plan::Geom;
use crate::reference;

/// Max unpooling options, as `torch.nn.MaxUnpoolNd`.
///
/// ```
/// let u = nnpool::Unpool::new(&[2, 2]).output_size(&[5, 5]);
/// assert_eq!(u.kernel, vec![2, 2]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpool {
    /// Kernel size of the max pooling being inverted.
    pub kernel: Vec<usize>,
    /// Stride (empty: the kernel).
    pub stride: Vec<usize>,
    /// Symmetric padding (empty: 0).
    pub padding: Vec<usize>,
    /// Explicit output spatial size; must lie strictly within one stride of the default.
    pub output_size: Option<Vec<usize>>,
}

impl Unpool {
    /// Unpooling for a kernel, with stride = kernel and no padding.
    pub fn new(kernel: &[usize]) -> Self {
        Unpool {
            kernel: kernel.to_vec(),
            stride: Vec::new(),
            padding: Vec::new(),
            output_size: None,
        }
    }
    /// Sets the stride.
    pub fn stride(mut self, s: &[usize]) -> Self {
        self.stride = s.to_vec();
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, p: &[usize]) -> Self {
        self.padding = p.to_vec();
        self
    }
    /// Sets the output size.
    pub fn output_size(mut self, o: &[usize]) -> Self {
        self.output_size = Some(o.to_vec());
        self
    }
}

/// A validated unpooling problem.
///
/// ```
/// use nnpool::{Layout, Unpool, UnpoolPlan};
/// let plan = UnpoolPlan::new(&Unpool::new(&[2]), &[1, 1, 2], Layout::ChannelsFirst)?;
/// let mut y = [0.0f32; 4];
/// plan.forward(&[5.0, 7.0], &[1, 2], &mut y)?;
/// assert_eq!(y, [0.0, 5.0, 7.0, 0.0]);
/// # Ok::<(), nnpool::PoolError>(())
/// ```
#[derive(Debug, Clone)]
pub struct UnpoolPlan {
    input: TensorDims,
    output_spatial: Vec<usize>,
    output_shape: Vec<usize>,
}

impl UnpoolPlan {
    /// Validates the options against the pooled input's shape.
    ///
    /// # Errors
    /// `InvalidParameter` for zero kernel/stride, wrong value counts, or an output size outside
    /// `(default - stride, default + stride)`; `InvalidShape` for a bad input shape.
    pub fn new(opts: &Unpool, input_shape: &[usize], layout: Layout) -> Result<Self> {
        let r = opts
            .kernel
            .len()
            .max(opts.output_size.as_ref().map_or(0, |o| o.len()));
        if r == 0 || r > 3 {
            return Err(invalid(
                "kernel_size",
                format!("needs 1 to 3 values, got {}", opts.kernel.len()),
            ));
        }
        let kernel = broadcast("kernel_size", &opts.kernel, r)?;
        if kernel.contains(&0) {
            return Err(invalid(
                "kernel_size",
                format!("must be greater than zero, but got {kernel:?}"),
            ));
        }
        let stride = if opts.stride.is_empty() {
            kernel.clone()
        } else {
            broadcast("stride", &opts.stride, r)?
        };
        if stride.contains(&0) {
            return Err(invalid(
                "stride",
                format!("must be greater than zero, but got {stride:?}"),
            ));
        }
        let padding = if opts.padding.is_empty() {
            vec![0; r]
        } else {
            broadcast("padding", &opts.padding, r)?
        };
        let input = TensorDims::new(input_shape, r, layout)?;
        let output_spatial = match &opts.output_size {
            None => (0..r)
                .map(|i| {
                    unpool_default_output(i, input.spatial[i], kernel[i], stride[i], padding[i])
                })
                .collect::<Result<_>>()?,
            Some(o) => {
                let o = broadcast("output_size", o, r)?;
                for i in 0..r {
                    // PyTorch checks an explicit size against the default even where the
                    // default itself would be 0 or negative.
                    let default =
                        unpool_default_size(input.spatial[i], kernel[i], stride[i], padding[i]);
                    let (lo, hi) = (default - stride[i] as i128, default + stride[i] as i128);
                    if o[i] == 0 {
                        return Err(PoolError::OutputTooSmall {
                            message: format!("max_unpool output size {o:?}: dim {i} is 0"),
                        });
                    }
                    if !((o[i] as i128) > lo && (o[i] as i128) < hi) {
                        return Err(invalid(
                            "output_size",
                            format!(
                                "invalid output size {o:?}: dim {i} must be between {} and {} (exclusive of {lo} and {hi}: within one stride of the default {})",
                                (lo + 1).max(1),
                                hi - 1,
                                default
                            ),
                        ));
                    }
                }
                o
            }
        };
        let output_shape = input.shape_with_spatial(&output_spatial);
        checked_product(&output_shape, "the output's element count")?;
        Ok(UnpoolPlan {
            input,
            output_spatial,
            output_shape,
        })
    }

    /// The output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
    /// The input (and indices) shape.
    pub fn input_shape(&self) -> Vec<usize> {
        self.input.shape()
    }

    fn geom(&self) -> Geom {
        Geom {
            batch: self.input.batch,
            channels: self.input.channels,
            in3: embed3(&self.input.spatial),
            out3: embed3(&self.output_spatial),
            layout: self.input.layout,
        }
    }

    fn check(&self, a: usize, idx: usize, b: usize) -> Result<()> {
        let n_in = self.input.shape().iter().product::<usize>();
        let n_out = self.output_shape.iter().product::<usize>();
        for (what, expected, actual) in [
            ("input", n_in, a),
            ("indices", n_in, idx),
            ("output", n_out, b),
        ] {
            if expected != actual {
                return Err(PoolError::BufferSize {
                    what,
                    expected,
                    actual,
                });
            }
        }
        Ok(())
    }

    /// Scatters `input` to `output[plane][indices]` (zeros elsewhere). Indices are plane-local
    /// positions in the *output* plane (PyTorch reinterprets them in the output's shape).
    /// Where two indices collide the later input element wins.
    ///
    /// # Errors
    /// `BufferSize` for wrong lengths; `InvalidIndex` for an index outside the output plane.
    pub fn forward<T: Element>(
        &self,
        input: &[T],
        indices: &[i64],
        output: &mut [T],
    ) -> Result<()> {
        self.check(input.len(), indices.len(), output.len())?;
        let g = self.geom();
        reference::unpool_forward(&g, input, indices, output).map_err(|index| {
            PoolError::InvalidIndex {
                index,
                plane: g.out_plane(),
            }
        })
    }

    /// The gradient of unpooling with respect to its input: `grad_input = grad_output[indices]`.
    ///
    /// # Errors
    /// As [`UnpoolPlan::forward`].
    pub fn backward<T: Element>(
        &self,
        grad_output: &[T],
        indices: &[i64],
        grad_input: &mut [T],
    ) -> Result<()> {
        self.check(grad_input.len(), indices.len(), grad_output.len())?;
        let g = self.geom();
        reference::unpool_backward(&g, grad_output, indices, grad_input).map_err(|index| {
            PoolError::InvalidIndex {
                index,
                plane: g.out_plane(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_size_of_zero_or_less_is_an_error() {
        // (1 - 1) * 2 + 2 - 2 * 1 = 0: PyTorch returns an empty [2, 4, 0]; the contract, as
        // for adaptive and fractional output sizes of 0, asks for an error.
        for (stride, padding) in [(2, 1), (1, 1)] {
            let opts = Unpool::new(&[2 - (stride == 1) as usize])
                .stride(&[stride])
                .padding(&[padding]);
            let err = UnpoolPlan::new(&opts, &[2, 4, 1], Layout::ChannelsFirst).unwrap_err();
            assert!(matches!(err, PoolError::OutputTooSmall { .. }), "{err}");
        }
    }

    #[test]
    fn an_explicit_size_is_checked_against_a_default_of_zero_or_less() {
        // torch 2.15: max_unpool1d(x[2, 4, 1], idx, 2, 3, 1, output_size=[2]) has a default
        // size of 0 and accepts any size in (-3, 3); 0 itself is an error by the contract.
        let opts = |o: usize| {
            Unpool::new(&[2])
                .stride(&[3])
                .padding(&[1])
                .output_size(&[o])
        };
        for o in [1, 2] {
            let plan = UnpoolPlan::new(&opts(o), &[2, 4, 1], Layout::ChannelsFirst).unwrap();
            assert_eq!(plan.output_shape(), &[2, 4, o]);
        }
        for o in [0, 3] {
            assert!(UnpoolPlan::new(&opts(o), &[2, 4, 1], Layout::ChannelsFirst).is_err());
        }
        // A negative default, -1 (kernel 1, padding 1), with stride 3: sizes 1 and 2 are in
        // (-4, 2) only for 1.
        let opts = |o: usize| {
            Unpool::new(&[1])
                .stride(&[3])
                .padding(&[1])
                .output_size(&[o])
        };
        assert!(UnpoolPlan::new(&opts(1), &[1, 1, 1], Layout::ChannelsFirst).is_ok());
        assert!(UnpoolPlan::new(&opts(2), &[1, 1, 1], Layout::ChannelsFirst).is_err());
    }
}
