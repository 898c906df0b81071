//! # nnpool — the pooling layers of convolutional networks
//!
//! Max, average and Lp pooling; adaptive and global pooling; fractional max pooling and
//! max-unpooling; 1-d, 2-d and 3-d; forward and backward; channels-first and channels-last;
//! f32, f64, f16 and bf16 (max-type ops and unpooling also take integers). Every op gives
//! PyTorch 2.x's results: shapes, values, NaN handling, argmax indices and gradients; ONNX's
//! asymmetric pads, `auto_pad` and dilations are available too.
//!
//! ## Conventions (stated once; every function relies on them)
//! - **Shapes.** A `d`-dimensional op (1 ≤ d ≤ 3) takes a batched `[N, C, spatial..]` or
//!   unbatched `[C, spatial..]` tensor; with [`Layout::ChannelsLast`] the channel axis is last
//!   (`[N, spatial.., C]`). The batch may be empty (N = 0); every other dim must be non-empty.
//! - **Output size** (per spatial dim, PyTorch's `pooling_output_shape`):
//!   `out = floor((in + pad_begin + pad_end - dilation*(k-1) - 1 [+ stride-1 if ceil_mode]) / stride) + 1`;
//!   with `ceil_mode`, a last window that would start at or past `in + pad_begin` is dropped
//!   (windows must start inside the input or its left padding). An output < 1 is an error.
//!   PyTorch's symmetric padding must be at most half the undilated kernel; ONNX pads need not.
//! - **Max.** Padding never wins. Windows are scanned in row-major order with
//!   `if v > best || isnan(v)`: NaN propagates and its index is the *last* NaN in the window;
//!   otherwise the *first* maximum wins ties; a window of only `-inf` gives its first tap.
//! - **Indices** are int64 flat indices within one channel's spatial plane
//!   (`h*W + w`, `d*H*W + h*W + w`), the same in both layouts, stored in the output's layout.
//! - **Average.** Sums accumulate in the element type for f32/f64 and in f32 for f16/bf16,
//!   in row-major window order, then are divided once (true division). The divisor counts
//!   padding (`count_include_pad`, the default) but never the `ceil_mode` overhang past the
//!   right padding; `divisor_override` replaces it.
//! - **Lp** follows PyTorch's `lp_pool`: `(sign(A)·relu(|A|)·K)^(1/p)`, `A = avg_pool(x^p)`.
//! - **Backward** passes are deterministic: contributions are added in output order, in the
//!   element's own type (f16 and bf16 round after every add, as PyTorch's kernels do).
//! - **Errors.** Nothing panics on user input: every invalid shape or option returns a
//!   [`PoolError`] naming the parameter, the values and the rule.
//!
//! ## Three ways in
//! - [`nn`]: layers like `torch.nn` (`MaxPool2d::new([3, 3]).stride([2, 2])`).
//! - [`array`]: functions over `ndarray` views.
//! - [`PoolPlan`] / [`UnpoolPlan`]: validate once, run on plain slices into caller-provided
//!   buffers (no allocation for max and average forward passes), or into new vectors
//!   ([`PoolPlan::forward_to_vec`] and friends: the fast kernels write the fresh memory once,
//!   without zeroing it first).
//!
//! ```
//! use ndarray::array;
//! use nnpool::nn::{AvgPool2d, MaxPool2d};
//! let x = array![[[[1.0f32, 1.0], [5.0, 6.0]]]];
//! assert_eq!(MaxPool2d::new([2, 2]).forward(x.view())?[[0, 0, 0, 0]], 6.0);
//! assert_eq!(AvgPool2d::new([2, 2]).forward(x.view())?[[0, 0, 0, 0]], 3.25);
//! # Ok::<(), nnpool::PoolError>(())
//! ```

#![warn(missing_docs)]
// Numeric kernels index several arrays with one axis counter; ranges read better there.
#![allow(clippy::needless_range_loop)]

mod alloc;
pub mod array;
mod element;
mod error;
pub mod geometry;
mod kernels;
mod layout;
pub mod nn;
mod plan;
mod reference;
mod unpool;

pub use alloc::zeroed;
pub use element::{Accumulator, DType, Element};
pub use error::{PoolError, Result};
pub use geometry::{AutoPad, AxisGeometry, Padding, Span, Window};
pub use half::{bf16, f16};
pub use layout::{Layout, TensorDims, MAX_SPATIAL_RANK};
pub use plan::{draw_samples, FractionalOutput, LpVariant, PoolPlan, Pooling, Samples};
pub use unpool::{Unpool, UnpoolPlan};

/// The kernel set this process runs: `avx512`, `avx2`, `portable` or `reference` (set
/// `NNPOOL_KERNEL` to one of these to pin it).
///
/// ```
/// assert!(["avx512", "avx2", "portable", "reference"].contains(&nnpool::active_kernels()));
/// ```
pub fn active_kernels() -> &'static str {
    kernels::isa::describe()
}
