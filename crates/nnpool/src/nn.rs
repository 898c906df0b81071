//! Layers built like `torch.nn`'s: a value holding the options, with `forward` and `backward`
//! over `ndarray` arrays (batched `[N, C, ..]` or unbatched `[C, ..]`, either layout).
//!
//! ```
//! use ndarray::Array4;
//! use nnpool::nn::MaxPool2d;
//! let pool = MaxPool2d::new([3, 3]).stride([2, 2]).padding([1, 1]);
//! let x = Array4::<f32>::zeros((1, 64, 112, 112));
//! let y = pool.forward(x.view())?;
//! assert_eq!(y.shape(), &[1, 64, 56, 56]);
//! # Ok::<(), nnpool::PoolError>(())
//! ```

use crate::array;
use crate::element::Element;
use crate::error::Result;
use crate::geometry::Window;
use crate::layout::Layout;
use crate::plan::{FractionalOutput, LpVariant, Pooling, Samples};
use crate::unpool::Unpool;
use ndarray::{Array, ArrayView, Dimension};

macro_rules! common_methods {
    () => {
        /// Uses channels-last layout (`[N, spatial.., C]`).
        pub fn channels_last(mut self) -> Self {
            self.layout = Layout::ChannelsLast;
            self
        }
        /// The op this layer runs.
        pub fn pooling(&self) -> &Pooling {
            &self.op
        }
        /// Forward pass.
        ///
        /// # Errors
        /// Any validation error (see [`crate::PoolError`]).
        pub fn forward<T: Element, D: Dimension>(&self, x: ArrayView<T, D>) -> Result<Array<T, D>> {
            array::forward_values(&self.op, x, self.layout)
        }
        /// Gradient with respect to the input.
        ///
        /// # Errors
        /// Validation errors, a mis-shaped `grad_output`, or an integer dtype.
        pub fn backward<T: Element, D: Dimension>(
            &self,
            x: ArrayView<T, D>,
            grad_output: ArrayView<T, D>,
        ) -> Result<Array<T, D>> {
            array::backward(&self.op, x, grad_output, self.layout)
        }
    };
}

macro_rules! indices_method {
    () => {
        /// Forward pass that also returns the int64 plane-local argmax indices.
        ///
        /// # Errors
        /// Any validation error.
        pub fn forward_with_indices<T: Element, D: Dimension>(
            &self,
            x: ArrayView<T, D>,
        ) -> Result<(Array<T, D>, Array<i64, D>)> {
            let (y, idx) = array::forward(&self.op, x, self.layout)?;
            Ok((y, idx.expect("max-type ops produce indices")))
        }
    };
}

macro_rules! window_methods {
    ($r:literal) => {
        fn window_mut(&mut self) -> &mut Window {
            match &mut self.op {
                Pooling::Max { window }
                | Pooling::Avg { window, .. }
                | Pooling::Lp { window, .. } => window,
                _ => unreachable!("window layers hold a window op"),
            }
        }
        /// Sets the stride (default: the kernel size).
        pub fn stride(mut self, s: [usize; $r]) -> Self {
            self.window_mut().stride = s.to_vec();
            self
        }
        /// Sets symmetric padding (at most half the kernel).
        pub fn padding(mut self, p: [usize; $r]) -> Self {
            self.window_mut().padding = crate::Padding::Symmetric(p.to_vec());
            self
        }
        /// Sets ONNX-style asymmetric padding.
        pub fn pads(mut self, begin: [usize; $r], end: [usize; $r]) -> Self {
            self.window_mut().padding = crate::Padding::Explicit {
                begin: begin.to_vec(),
                end: end.to_vec(),
            };
            self
        }
        /// Sets the dilation.
        pub fn dilation(mut self, d: [usize; $r]) -> Self {
            self.window_mut().dilation = d.to_vec();
            self
        }
        /// Sets `ceil_mode`.
        pub fn ceil_mode(mut self, c: bool) -> Self {
            self.window_mut().ceil_mode = c;
            self
        }
    };
}

macro_rules! max_layer {
    ($name:ident, $r:literal) => {
        #[doc = concat!("`torch.nn.", stringify!($name), "`: max pooling over ", stringify!($r), " spatial dims.")]
        #[derive(Debug, Clone)]
        pub struct $name {
            op: Pooling,
            layout: Layout,
        }
        impl $name {
            /// Max pooling with this kernel, stride = kernel, no padding.
            pub fn new(kernel: [usize; $r]) -> Self {
                $name { op: Pooling::max(Window::new(&kernel)), layout: Layout::ChannelsFirst }
            }
            window_methods!($r);
            common_methods!();
            indices_method!();
        }
    };
}

macro_rules! avg_layer {
    ($name:ident, $r:literal) => {
        #[doc = concat!("`torch.nn.", stringify!($name), "`: average pooling over ", stringify!($r), " spatial dims.")]
        #[derive(Debug, Clone)]
        pub struct $name {
            op: Pooling,
            layout: Layout,
        }
        impl $name {
            /// Average pooling with this kernel (count_include_pad = true, as PyTorch).
            pub fn new(kernel: [usize; $r]) -> Self {
                $name { op: Pooling::avg(Window::new(&kernel)), layout: Layout::ChannelsFirst }
            }
            /// Whether padding counts in the divisor.
            pub fn count_include_pad(mut self, include: bool) -> Self {
                if let Pooling::Avg { count_include_pad, .. } = &mut self.op {
                    *count_include_pad = include;
                }
                self
            }
            /// A fixed, non-zero divisor for every window.
            pub fn divisor_override(mut self, d: i64) -> Self {
                if let Pooling::Avg { divisor_override, .. } = &mut self.op {
                    *divisor_override = Some(d);
                }
                self
            }
            window_methods!($r);
            common_methods!();
        }
    };
}

macro_rules! lp_layer {
    ($name:ident, $r:literal) => {
        #[doc = concat!("`torch.nn.", stringify!($name), "`: power-average pooling over ", stringify!($r), " spatial dims.")]
        #[derive(Debug, Clone)]
        pub struct $name {
            op: Pooling,
            layout: Layout,
        }
        impl $name {
            /// Lp pooling with `norm_type` p and this kernel (PyTorch's formula).
            pub fn new(norm_type: f64, kernel: [usize; $r]) -> Self {
                $name { op: Pooling::lp(Window::new(&kernel), norm_type), layout: Layout::ChannelsFirst }
            }
            /// Uses ONNX's `(Σ|x|^p)^(1/p)` instead of PyTorch's signed formula.
            pub fn onnx_variant(mut self) -> Self {
                if let Pooling::Lp { variant, .. } = &mut self.op {
                    *variant = LpVariant::Onnx;
                }
                self
            }
            window_methods!($r);
            common_methods!();
        }
    };
}

macro_rules! adaptive_layer {
    ($name:ident, $r:literal, $ctor:ident, $($ind:ident)?) => {
        #[doc = concat!("`torch.nn.", stringify!($name), "`: adaptive pooling to a fixed output size.")]
        #[derive(Debug, Clone)]
        pub struct $name {
            op: Pooling,
            layout: Layout,
        }
        impl $name {
            /// Pools to `output_size` (`None` keeps that dim's input size).
            pub fn new(output_size: [Option<usize>; $r]) -> Self {
                $name { op: Pooling::$ctor { output_size: output_size.to_vec() }, layout: Layout::ChannelsFirst }
            }
            common_methods!();
            $($ind!();)?
        }
    };
}

macro_rules! fractional_layer {
    ($name:ident, $r:literal) => {
        #[doc = concat!("`torch.nn.", stringify!($name), "`: fractional max pooling.")]
        #[derive(Debug, Clone)]
        pub struct $name {
            op: Pooling,
            layout: Layout,
        }
        impl $name {
            /// Fractional max pooling to `output_size`, samples drawn from `seed`.
            pub fn new(kernel: [usize; $r], output_size: [usize; $r], seed: u64) -> Self {
                $name {
                    op: Pooling::FractionalMax {
                        kernel: kernel.to_vec(),
                        output: FractionalOutput::Size(output_size.to_vec()),
                        samples: Samples::Seed(seed),
                    },
                    layout: Layout::ChannelsFirst,
                }
            }
            /// Uses PyTorch's `_random_samples` (`[N, C, r]` row-major, PyTorch's axis order).
            pub fn samples(mut self, s: Vec<f64>) -> Self {
                if let Pooling::FractionalMax { samples, .. } = &mut self.op {
                    *samples = Samples::Given(s);
                }
                self
            }
            common_methods!();
            indices_method!();
        }
    };
}

max_layer!(MaxPool1d, 1);
max_layer!(MaxPool2d, 2);
max_layer!(MaxPool3d, 3);
avg_layer!(AvgPool1d, 1);
avg_layer!(AvgPool2d, 2);
avg_layer!(AvgPool3d, 3);
lp_layer!(LPPool1d, 1);
lp_layer!(LPPool2d, 2);
lp_layer!(LPPool3d, 3);
adaptive_layer!(AdaptiveMaxPool1d, 1, AdaptiveMax, indices_method);
adaptive_layer!(AdaptiveMaxPool2d, 2, AdaptiveMax, indices_method);
adaptive_layer!(AdaptiveMaxPool3d, 3, AdaptiveMax, indices_method);
adaptive_layer!(AdaptiveAvgPool1d, 1, AdaptiveAvg,);
adaptive_layer!(AdaptiveAvgPool2d, 2, AdaptiveAvg,);
adaptive_layer!(AdaptiveAvgPool3d, 3, AdaptiveAvg,);
fractional_layer!(FractionalMaxPool2d, 2);
fractional_layer!(FractionalMaxPool3d, 3);

/// `torch.nn.MaxUnpool{1,2,3}d`: scatters values back to their argmax positions.
///
/// ```
/// use ndarray::array;
/// use nnpool::nn::{MaxPool1d, MaxUnpool};
/// let x = array![[[1.0f32, 3.0, 2.0, 0.0]]];
/// let (y, idx) = MaxPool1d::new([2]).forward_with_indices(x.view())?;
/// let back = MaxUnpool::new(&[2]).forward(y.view(), idx.view())?;
/// assert_eq!(back, array![[[0.0, 3.0, 2.0, 0.0]]]);
/// # Ok::<(), nnpool::PoolError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MaxUnpool {
    opts: Unpool,
    layout: Layout,
}

impl MaxUnpool {
    /// Unpooling for this kernel (stride = kernel, padding 0).
    pub fn new(kernel: &[usize]) -> Self {
        MaxUnpool {
            opts: Unpool::new(kernel),
            layout: Layout::ChannelsFirst,
        }
    }
    /// Sets the stride.
    pub fn stride(mut self, s: &[usize]) -> Self {
        self.opts.stride = s.to_vec();
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, p: &[usize]) -> Self {
        self.opts.padding = p.to_vec();
        self
    }
    /// Sets an explicit output size.
    pub fn output_size(mut self, o: &[usize]) -> Self {
        self.opts.output_size = Some(o.to_vec());
        self
    }
    /// Uses channels-last layout.
    pub fn channels_last(mut self) -> Self {
        self.layout = Layout::ChannelsLast;
        self
    }
    /// Forward pass.
    ///
    /// # Errors
    /// See [`array::max_unpool`].
    pub fn forward<T: Element, D: Dimension>(
        &self,
        x: ArrayView<T, D>,
        indices: ArrayView<i64, D>,
    ) -> Result<Array<T, D>> {
        array::max_unpool(&self.opts, x, indices, self.layout)
    }
    /// Gradient with respect to the input.
    ///
    /// # Errors
    /// See [`array::max_unpool_backward`].
    pub fn backward<T: Element, D: Dimension>(
        &self,
        grad_output: ArrayView<T, D>,
        indices: ArrayView<i64, D>,
    ) -> Result<Array<T, D>> {
        array::max_unpool_backward(&self.opts, grad_output, indices, self.layout)
    }
}
