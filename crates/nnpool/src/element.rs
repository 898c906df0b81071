//! Element types. Every op is generic over [`Element`]; average and Lp pooling need a floating
//! type ([`Element::IS_FLOAT`]) and accumulate in [`Element::Acc`]: the type itself for f32 and
//! f64 (as PyTorch does), f32 for f16 and bf16 (PyTorch's `opmath_t`).

use half::{bf16, f16};
use num_traits::Float;
use std::fmt::Debug;
use std::ops::AddAssign;

/// The element types nnpool knows, as named in `.npy` files and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
    /// Signed 8-bit integer.
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 8-bit integer.
    U8,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 64-bit integer.
    U64,
}

impl DType {
    /// The NumPy-style name (`float32`, `int64`, ...).
    ///
    /// ```
    /// assert_eq!(nnpool::DType::BF16.name(), "bfloat16");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
        }
    }

    /// Bytes per element.
    ///
    /// ```
    /// assert_eq!(nnpool::DType::F16.size(), 2);
    /// ```
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// Whether the type is a floating-point type.
    ///
    /// ```
    /// assert!(!nnpool::DType::U8.is_float());
    /// ```
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }
}

/// The accumulator of a reduction: `f32` or `f64`.
pub trait Accumulator: Float + AddAssign + Send + Sync + Debug + Default + 'static {
    /// Converts an integer count (a divisor) the way C++ converts `int64_t` to the float type.
    fn from_i64(n: i64) -> Self;
    /// Converts from f64 (used for exponents such as `1/p`).
    fn from_f64(x: f64) -> Self;
}

impl Accumulator for f32 {
    fn from_i64(n: i64) -> Self {
        n as f32
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}

impl Accumulator for f64 {
    fn from_i64(n: i64) -> Self {
        n as f64
    }
    fn from_f64(x: f64) -> Self {
        x
    }
}

/// A tensor element. Implemented for f16, bf16, f32, f64 and the integer types.
///
/// Max-type ops and unpooling accept every element type; average and Lp pooling and all backward
/// passes need `IS_FLOAT`.
///
/// ```
/// use nnpool::Element;
/// assert!(f32::NAN.is_nan_value());
/// assert_eq!(<i32 as Element>::LOWEST, i32::MIN);
/// ```
pub trait Element: Copy + Send + Sync + PartialOrd + Debug + Default + 'static {
    /// The dtype tag.
    const DTYPE: DType;
    /// Whether average/Lp pooling and gradients are defined.
    const IS_FLOAT: bool;
    /// The initial value of a max reduction: `-inf` for floats, the minimum for integers.
    const LOWEST: Self;
    /// The accumulator type.
    type Acc: Accumulator;
    /// NaN test (always false for integers).
    fn is_nan_value(self) -> bool;
    /// Widens to the accumulator.
    fn to_acc(self) -> Self::Acc;
    /// Narrows from the accumulator (round to nearest for floats, saturating for integers).
    fn from_acc(a: Self::Acc) -> Self;
    /// Widens to f64 exactly (integers beyond 2^53 round).
    fn to_f64(self) -> f64;
    /// Narrows from f64, rounding to nearest.
    fn from_f64(x: f64) -> Self;
}

macro_rules! impl_float {
    ($t:ty, $dt:expr, $acc:ty, $to:expr, $from:expr, $to64:expr, $from64:expr) => {
        impl Element for $t {
            const DTYPE: DType = $dt;
            const IS_FLOAT: bool = true;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            type Acc = $acc;
            #[inline(always)]
            fn is_nan_value(self) -> bool {
                self.is_nan()
            }
            #[inline(always)]
            fn to_acc(self) -> $acc {
                $to(self)
            }
            #[inline(always)]
            fn from_acc(a: $acc) -> Self {
                $from(a)
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                $to64(self)
            }
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                $from64(x)
            }
        }
    };
}

impl_float!(
    f32,
    DType::F32,
    f32,
    |x| x,
    |a| a,
    |x: f32| x as f64,
    |x: f64| x as f32
);
impl_float!(f64, DType::F64, f64, |x| x, |a| a, |x| x, |x| x);
impl_float!(
    f16,
    DType::F16,
    f32,
    f16::to_f32,
    f16::from_f32,
    f16::to_f64,
    f16::from_f64
);
impl_float!(
    bf16,
    DType::BF16,
    f32,
    bf16::to_f32,
    bf16::from_f32,
    bf16::to_f64,
    bf16::from_f64
);

macro_rules! impl_int {
    ($t:ty, $dt:expr) => {
        impl Element for $t {
            const DTYPE: DType = $dt;
            const IS_FLOAT: bool = false;
            const LOWEST: Self = <$t>::MIN;
            type Acc = f64;
            #[inline(always)]
            fn is_nan_value(self) -> bool {
                false
            }
            #[inline(always)]
            fn to_acc(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_acc(a: f64) -> Self {
                a as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
        }
    };
}

impl_int!(i8, DType::I8);
impl_int!(i16, DType::I16);
impl_int!(i32, DType::I32);
impl_int!(i64, DType::I64);
impl_int!(u8, DType::U8);
impl_int!(u16, DType::U16);
impl_int!(u32, DType::U32);
impl_int!(u64, DType::U64);

/// Rounds an f64 value to `T`'s precision and back, so that arithmetic done in f64 reproduces
/// arithmetic done in `T` one operation at a time (exact for +, -, *, / of f32/f16/bf16 values,
/// because f64 carries more than twice their precision).
#[inline]
pub(crate) fn round_to<T: Element>(x: f64) -> f64 {
    T::from_f64(x).to_f64()
}
