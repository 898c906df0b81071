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
    /// `a` rounded to this type and widened again: `from_acc(a).to_acc()`, which f16 and bf16
    /// compute inline (a gradient of those types is rounded after every add, as PyTorch adds
    /// in the tensor's own type). NaN stays NaN (its payload may differ).
    ///
    /// ```
    /// use nnpool::{f16, Element};
    /// assert_eq!(<f16 as Element>::round_acc(1.0 + 1e-4), 1.0);
    /// assert_eq!(<f32 as Element>::round_acc(1.0 + 1e-4), 1.0 + 1e-4);
    /// ```
    #[inline(always)]
    fn round_acc(a: Self::Acc) -> Self::Acc {
        Self::from_acc(a).to_acc()
    }
}

/// `x` rounded to the nearest f16 value (ties to even), as f32: f16's 11-bit significand
/// from 2^-14 up, multiples of 2^-24 below (subnormals), ±inf from 65520 on.
#[inline(always)]
fn round_f32_to_f16(x: f32) -> f32 {
    let a = x.abs();
    if x.is_nan() {
        return x;
    }
    if a >= 65520.0 {
        return f32::INFINITY.copysign(x);
    }
    if a < 6.103_515_6e-5 {
        // below 2^-14: multiples of 2^-24 (the scalings by powers of two are exact)
        return ((a * 16_777_216.0).round_ties_even() * 5.960_464_5e-8).copysign(x);
    }
    // keep 10 of f32's 23 fraction bits, rounding the 13 dropped ones to even (a carry moves
    // into the exponent, as it should)
    let b = x.to_bits();
    f32::from_bits((b + 0x0FFF + ((b >> 13) & 1)) & !0x1FFF)
}

/// `x` rounded to the nearest bf16 value (ties to even), as f32: the top 16 bits of f32.
#[inline(always)]
fn round_f32_to_bf16(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let b = x.to_bits();
    f32::from_bits((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF_0000)
}

macro_rules! impl_float {
    ($t:ty, $dt:expr, $acc:ty, $to:expr, $from:expr, $to64:expr, $from64:expr) => {
        impl_float!($t, $dt, $acc, $to, $from, $to64, $from64, |a| a);
    };
    ($t:ty, $dt:expr, $acc:ty, $to:expr, $from:expr, $to64:expr, $from64:expr, $round:expr) => {
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
            #[inline(always)]
            fn round_acc(a: $acc) -> $acc {
                $round(a)
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
    f16::from_f64,
    round_f32_to_f16
);
impl_float!(
    bf16,
    DType::BF16,
    f32,
    bf16::to_f32,
    bf16::from_f32,
    bf16::to_f64,
    bf16::from_f64,
    round_f32_to_bf16
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

#[cfg(test)]
mod tests {
    use super::{round_f32_to_bf16, round_f32_to_f16};
    use half::{bf16, f16};
    use rayon::prelude::*;

    /// Every f32 bit pattern (a stride through them in unoptimised builds): the inline
    /// roundings give `half`'s conversions' values, NaN for NaN.
    #[test]
    fn inline_roundings_match_half_on_every_f32() {
        let step: usize = if cfg!(debug_assertions) { 4099 } else { 1 };
        let bad = (0..=(u32::MAX as usize) / step)
            .into_par_iter()
            .map(|i| (i * step) as u32)
            .filter(|&b| {
                let x = f32::from_bits(b);
                let (h, hb) = (round_f32_to_f16(x), round_f32_to_bf16(x));
                let (want_h, want_b) = (f16::from_f32(x).to_f32(), bf16::from_f32(x).to_f32());
                let same =
                    |a: f32, w: f32| a.to_bits() == w.to_bits() || (a.is_nan() && w.is_nan());
                !same(h, want_h) || !same(hb, want_b)
            })
            .min();
        assert_eq!(bad, None, "first f32 bit pattern that differs");
    }
}
