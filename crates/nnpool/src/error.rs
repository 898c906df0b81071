//! Typed errors. Every variant names the parameter (or tensor) at fault, the offending values and
//! the rule that was broken, so that a message alone tells a user what to change.

use thiserror::Error;

/// Everything that can go wrong when validating or running a pooling problem.
///
/// ```
/// use nnpool::{Pooling, PoolPlan, Layout, Window};
/// let err = PoolPlan::new(&Pooling::max(Window::new(&[7, 7])), &[1, 2, 6, 6], Layout::ChannelsFirst)
///     .unwrap_err();
/// assert!(err.to_string().contains("output size"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolError {
    /// An option has an invalid value (zero kernel, negative padding, wrong number of values, ...).
    #[error("{param}: {message}")]
    InvalidParameter {
        /// The option, with PyTorch's name (`kernel_size`, `stride`, `padding`, ...).
        param: &'static str,
        /// The values and the rule broken.
        message: String,
    },
    /// The input (or another tensor) has a shape the operation cannot take.
    #[error("{what} shape {shape:?}: {message}")]
    InvalidShape {
        /// Which tensor: `input`, `grad_output`, `indices`, `samples`.
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// The rule broken.
        message: String,
    },
    /// A tensor's shape does not equal the shape the problem requires.
    #[error("{what} shape {actual:?} does not match the required shape {expected:?}")]
    ShapeMismatch {
        /// Which tensor.
        what: &'static str,
        /// The shape the problem requires.
        expected: Vec<usize>,
        /// The shape given.
        actual: Vec<usize>,
    },
    /// The geometry gives an empty or negative output.
    #[error("output size is too small: {message}")]
    OutputTooSmall {
        /// The per-axis computation that gave the bad size.
        message: String,
    },
    /// The operation is not defined for this element type.
    #[error("{op} does not support dtype {dtype}: {message}")]
    UnsupportedDtype {
        /// The operation.
        op: &'static str,
        /// The element type.
        dtype: &'static str,
        /// What is supported instead.
        message: String,
    },
    /// An index tensor holds a value outside its valid range.
    #[error("indices: found an invalid max index {index} (each plane holds {plane} elements)")]
    InvalidIndex {
        /// The offending index.
        index: i64,
        /// The number of elements in one plane the indices address.
        plane: usize,
    },
    /// Shape arithmetic would overflow `usize`.
    #[error("shape arithmetic overflows: {what}")]
    Overflow {
        /// The quantity that overflowed.
        what: String,
    },
    /// A caller-provided buffer has the wrong length.
    #[error("{what} buffer holds {actual} elements, but the problem needs {expected}")]
    BufferSize {
        /// Which buffer.
        what: &'static str,
        /// Elements required.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// The problem (output or workspace) would exceed the configured memory limit.
    #[error("{what} needs {bytes} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// What would be allocated.
        what: &'static str,
        /// Bytes needed.
        bytes: u128,
        /// The limit.
        limit: u128,
    },
}

/// `Result` with [`PoolError`].
pub type Result<T> = std::result::Result<T, PoolError>;

pub(crate) fn invalid(param: &'static str, message: impl Into<String>) -> PoolError {
    PoolError::InvalidParameter {
        param,
        message: message.into(),
    }
}
