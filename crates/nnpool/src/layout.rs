//! Memory layouts and the interpretation of a tensor shape as `[N, C, spatial..]`.

use crate::error::{PoolError, Result};

/// Where the channel axis lives.
///
/// Channels-first is PyTorch's default (`NCL`, `NCHW`, `NCDHW`); channels-last is
/// `[N, spatial.., C]` for any rank (`NLC`, `NHWC`, `NDHWC`). Both give the same numbers, and
/// indices are plane-local flat spatial indices in both.
///
/// ```
/// use nnpool::Layout;
/// assert_eq!(Layout::default(), Layout::ChannelsFirst);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Layout {
    /// `[N, C, spatial..]`.
    #[default]
    ChannelsFirst,
    /// `[N, spatial.., C]`.
    ChannelsLast,
}

/// The most spatial dimensions an op takes (PyTorch has 1d, 2d and 3d pooling).
pub const MAX_SPATIAL_RANK: usize = 3;

/// A tensor shape read as batch, channels and spatial sizes.
///
/// ```
/// use nnpool::{Layout, TensorDims};
/// let d = TensorDims::new(&[2, 8, 8, 3], 2, Layout::ChannelsLast).unwrap();
/// assert_eq!((d.batch, d.channels, d.spatial.as_slice()), (2, 3, &[8, 8][..]));
/// assert_eq!(d.shape_with_spatial(&[4, 4]), vec![2, 4, 4, 3]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorDims {
    /// N (1 for an unbatched tensor).
    pub batch: usize,
    /// C.
    pub channels: usize,
    /// The spatial sizes, outermost first.
    pub spatial: Vec<usize>,
    /// Whether the tensor has a batch axis (`ndim == rank + 2`) or not (`ndim == rank + 1`).
    pub batched: bool,
    /// The layout.
    pub layout: Layout,
}

impl TensorDims {
    /// Reads `shape` as a tensor with `rank` spatial dims: `ndim == rank + 2` is batched,
    /// `ndim == rank + 1` is unbatched `[C, ..]` (or `[.., C]`).
    ///
    /// # Errors
    /// `InvalidShape` if the rank does not fit, a non-batch dimension is zero, or the element
    /// count overflows.
    pub fn new(shape: &[usize], rank: usize, layout: Layout) -> Result<Self> {
        let bad = |message: String| PoolError::InvalidShape {
            what: "input",
            shape: shape.to_vec(),
            message,
        };
        if rank == 0 || rank > MAX_SPATIAL_RANK {
            return Err(bad(format!(
                "a pooling op has 1 to {MAX_SPATIAL_RANK} spatial dimensions, not {rank}"
            )));
        }
        let batched = if shape.len() == rank + 2 {
            true
        } else if shape.len() == rank + 1 {
            false
        } else {
            return Err(bad(format!(
                "a {rank}-d pooling op expects a {}-d (unbatched) or {}-d (batched) tensor, but the input is {}-d",
                rank + 1,
                rank + 2,
                shape.len()
            )));
        };
        let rest = if batched { &shape[1..] } else { shape };
        let (channels, spatial) = match layout {
            Layout::ChannelsFirst => (rest[0], rest[1..].to_vec()),
            Layout::ChannelsLast => (rest[rank], rest[..rank].to_vec()),
        };
        if let Some(axis) = (usize::from(batched)..shape.len()).find(|&i| shape[i] == 0) {
            return Err(bad(format!(
                "every non-batch dimension must be non-empty, but dimension {axis} has size 0"
            )));
        }
        checked_product(shape, "the input's element count")?;
        Ok(TensorDims {
            batch: if batched { shape[0] } else { 1 },
            channels,
            spatial,
            batched,
            layout,
        })
    }

    /// The full shape of a tensor with these batch, channel and layout conventions and the given
    /// spatial sizes.
    pub fn shape_with_spatial(&self, spatial: &[usize]) -> Vec<usize> {
        let mut s = Vec::with_capacity(spatial.len() + 2);
        if self.batched {
            s.push(self.batch);
        }
        match self.layout {
            Layout::ChannelsFirst => {
                s.push(self.channels);
                s.extend_from_slice(spatial);
            }
            Layout::ChannelsLast => {
                s.extend_from_slice(spatial);
                s.push(self.channels);
            }
        }
        s
    }

    /// The input's own shape.
    pub fn shape(&self) -> Vec<usize> {
        self.shape_with_spatial(&self.spatial)
    }

    /// The spatial rank.
    pub fn rank(&self) -> usize {
        self.spatial.len()
    }
}

/// The product of `dims`, or an `Overflow` error naming `what`.
pub(crate) fn checked_product(dims: &[usize], what: &str) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| PoolError::Overflow {
            what: format!("{what} ({dims:?})"),
        })
}

/// Spatial sizes embedded in 3-D by prepending unit dims, so that N-d loops are written once.
pub(crate) fn embed3(spatial: &[usize]) -> [usize; 3] {
    let mut e = [1; 3];
    e[3 - spatial.len()..].copy_from_slice(spatial);
    e
}

/// Offsets of planes and spatial positions in a contiguous tensor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Strides {
    pub batch: usize,
    pub channel: usize,
    pub spatial: usize,
}

impl Strides {
    pub fn new(layout: Layout, channels: usize, plane: usize) -> Self {
        match layout {
            Layout::ChannelsFirst => Strides {
                batch: channels * plane,
                channel: plane,
                spatial: 1,
            },
            Layout::ChannelsLast => Strides {
                batch: plane * channels,
                channel: 1,
                spatial: channels,
            },
        }
    }

    /// The offset of element 0 of plane (n, c).
    #[inline]
    pub fn base(&self, n: usize, c: usize) -> usize {
        n * self.batch + c * self.channel
    }
}
