//! Functions over `ndarray` arrays. Inputs may have any strides (they are read through a
//! standard-layout copy only when not already contiguous); outputs are owned, standard-layout
//! arrays with the input's dimensionality.

use crate::element::Element;
use crate::error::Result;
use crate::layout::Layout;
use crate::plan::{PoolPlan, Pooling};
use crate::unpool::{Unpool, UnpoolPlan};
use ndarray::{Array, ArrayView, Dimension, IxDyn};

fn to_array<T, D: Dimension>(shape: &[usize], data: Vec<T>) -> Array<T, D> {
    Array::from_shape_vec(IxDyn(shape), data)
        .expect("the plan computed the element count of this shape")
        .into_dimensionality::<D>()
        .expect("pooling keeps the number of dimensions")
}

/// Runs `op` forward on `input`, returning the output and, for max-type ops, the int64
/// plane-local argmax indices.
///
/// ```
/// use ndarray::array;
/// use nnpool::{array::forward, Layout, Pooling, Window};
/// let x = array![[[[1.0f32, 2.0], [3.0, 4.0]]]];
/// let (y, idx) = forward(&Pooling::max(Window::new(&[2, 2])), x.view(), Layout::ChannelsFirst)?;
/// assert_eq!(y, array![[[[4.0f32]]]]);
/// assert_eq!(idx.unwrap(), array![[[[3i64]]]]);
/// # Ok::<(), nnpool::PoolError>(())
/// ```
///
/// # Errors
/// Any validation error of [`PoolPlan::new`] or [`PoolPlan::forward`].
#[allow(clippy::type_complexity)]
pub fn forward<T: Element, D: Dimension>(
    op: &Pooling,
    input: ArrayView<T, D>,
    layout: Layout,
) -> Result<(Array<T, D>, Option<Array<i64, D>>)> {
    let plan = PoolPlan::new(op, input.shape(), layout)?;
    let x = input.as_standard_layout();
    let x = x.as_slice().expect("standard layout is contiguous");
    let (y, idx) = if op.has_indices() {
        let (y, idx) = plan.forward_with_indices_to_vec(x)?;
        (y, Some(idx))
    } else {
        (plan.forward_to_vec(x)?, None)
    };
    let shape = plan.output_shape();
    Ok((to_array(shape, y), idx.map(|i| to_array(shape, i))))
}

/// Runs `op` forward on `input`, returning the output only (no indices are computed, which
/// lets max pooling take its fastest kernels).
///
/// ```
/// use ndarray::array;
/// use nnpool::{array::forward_values, Layout, Pooling, Window};
/// let x = array![[[[1.0f32, 2.0], [3.0, 4.0]]]];
/// let y = forward_values(&Pooling::max(Window::new(&[2, 2])), x.view(), Layout::ChannelsFirst)?;
/// assert_eq!(y, array![[[[4.0f32]]]]);
/// # Ok::<(), nnpool::PoolError>(())
/// ```
///
/// # Errors
/// Any validation error of [`PoolPlan::new`] or [`PoolPlan::forward`].
pub fn forward_values<T: Element, D: Dimension>(
    op: &Pooling,
    input: ArrayView<T, D>,
    layout: Layout,
) -> Result<Array<T, D>> {
    let plan = PoolPlan::new(op, input.shape(), layout)?;
    let x = input.as_standard_layout();
    let y = plan.forward_to_vec(x.as_slice().expect("standard layout is contiguous"))?;
    Ok(to_array(plan.output_shape(), y))
}

/// The gradient of `op` with respect to its input.
///
/// ```
/// use ndarray::array;
/// use nnpool::{array::backward, Layout, Pooling, Window};
/// let x = array![[[1.0f64, 5.0, 2.0, 5.0, 0.0]]];
/// let gy = array![[[1.0f64, 1.0, 1.0]]];
/// let op = Pooling::max(Window::new(&[3]).stride(&[1]));
/// let gx = backward(&op, x.view(), gy.view(), Layout::ChannelsFirst)?;
/// assert_eq!(gx, array![[[0.0, 2.0, 0.0, 1.0, 0.0]]]);
/// # Ok::<(), nnpool::PoolError>(())
/// ```
///
/// # Errors
/// Validation errors, a `grad_output` of the wrong shape, or an integer dtype.
pub fn backward<T: Element, D: Dimension>(
    op: &Pooling,
    input: ArrayView<T, D>,
    grad_output: ArrayView<T, D>,
    layout: Layout,
) -> Result<Array<T, D>> {
    let plan = PoolPlan::new(op, input.shape(), layout)?;
    if grad_output.shape() != plan.output_shape() {
        return Err(crate::PoolError::ShapeMismatch {
            what: "grad_output",
            expected: plan.output_shape().to_vec(),
            actual: grad_output.shape().to_vec(),
        });
    }
    let x = input.as_standard_layout();
    let gy = grad_output.as_standard_layout();
    let gx = plan.backward_to_vec(
        x.as_slice().expect("contiguous"),
        gy.as_slice().expect("contiguous"),
    )?;
    Ok(to_array(input.shape(), gx))
}

/// Max unpooling of `input` with the argmax `indices` of a max pooling.
///
/// ```
/// use ndarray::array;
/// use nnpool::{array::max_unpool, Layout, Unpool};
/// let y = max_unpool(&Unpool::new(&[2]), array![[[5.0f32]]].view(), array![[[1i64]]].view(), Layout::ChannelsFirst)?;
/// assert_eq!(y, array![[[0.0, 5.0]]]);
/// # Ok::<(), nnpool::PoolError>(())
/// ```
///
/// # Errors
/// Validation errors, indices of another shape, or an index outside the output plane.
pub fn max_unpool<T: Element, D: Dimension>(
    opts: &Unpool,
    input: ArrayView<T, D>,
    indices: ArrayView<i64, D>,
    layout: Layout,
) -> Result<Array<T, D>> {
    let plan = UnpoolPlan::new(opts, input.shape(), layout)?;
    if indices.shape() != input.shape() {
        return Err(crate::PoolError::ShapeMismatch {
            what: "indices",
            expected: input.shape().to_vec(),
            actual: indices.shape().to_vec(),
        });
    }
    let x = input.as_standard_layout();
    let idx = indices.as_standard_layout();
    let mut y = vec![T::default(); plan.output_shape().iter().product()];
    plan.forward(
        x.as_slice().expect("contiguous"),
        idx.as_slice().expect("contiguous"),
        &mut y,
    )?;
    Ok(to_array(plan.output_shape(), y))
}

/// The gradient of max unpooling with respect to its input.
///
/// ```
/// use ndarray::array;
/// use nnpool::{array::max_unpool_backward, Layout, Unpool};
/// let gx = max_unpool_backward(&Unpool::new(&[2]), array![[[3.0f32, 4.0]]].view(), array![[[1i64]]].view(), Layout::ChannelsFirst)?;
/// assert_eq!(gx, array![[[4.0]]]);
/// # Ok::<(), nnpool::PoolError>(())
/// ```
///
/// # Errors
/// As [`max_unpool`].
pub fn max_unpool_backward<T: Element, D: Dimension>(
    opts: &Unpool,
    grad_output: ArrayView<T, D>,
    indices: ArrayView<i64, D>,
    layout: Layout,
) -> Result<Array<T, D>> {
    let plan = UnpoolPlan::new(opts, indices.shape(), layout)?;
    if grad_output.shape() != plan.output_shape() {
        return Err(crate::PoolError::ShapeMismatch {
            what: "grad_output",
            expected: plan.output_shape().to_vec(),
            actual: grad_output.shape().to_vec(),
        });
    }
    let gy = grad_output.as_standard_layout();
    let idx = indices.as_standard_layout();
    let mut gx = vec![T::default(); idx.len()];
    plan.backward(
        gy.as_slice().expect("contiguous"),
        idx.as_slice().expect("contiguous"),
        &mut gx,
    )?;
    Ok(to_array(indices.shape(), gx))
}
