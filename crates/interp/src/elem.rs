//! Element-type traits shared by the kernels, so each op is written once for every dtype.

use std::fmt::Debug;

/// The numeric element types: f32, f64, i64, i32.
///
/// Integer arithmetic wraps on overflow (as ONNX Runtime's does on the usual targets);
/// division is only called with a non-zero divisor (kernels check first).
pub(crate) trait Numeric:
    Copy + Send + Sync + PartialOrd + Debug + Default + 'static
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// True for floating-point types.
    const IS_FLOAT: bool;
    /// `self + o`.
    fn plus(self, o: Self) -> Self;
    /// `self - o`.
    fn minus(self, o: Self) -> Self;
    /// `self * o`.
    fn times(self, o: Self) -> Self;
    /// `self / o` (integers: truncated toward zero; `o` must not be zero).
    fn divided_by(self, o: Self) -> Self;
    /// `-self`.
    fn negated(self) -> Self;
    /// `|self|`.
    fn absolute(self) -> Self;
    /// Conversion from `f64` (integers: truncation toward zero, saturating; NaN becomes 0).
    fn of_f64(x: f64) -> Self;
    /// Conversion to `f64`.
    fn as_f64(self) -> f64;
    /// Conversion from `i64` (wrapping for narrower integers).
    fn of_i64(x: i64) -> Self;
    /// The smallest finite value (negative infinity is not used so reductions stay finite
    /// on empty inputs the way ONNX specifies).
    fn lowest() -> Self;
    /// The largest finite value.
    fn highest() -> Self;
    /// True for NaN.
    fn is_nan_value(self) -> bool;
    /// `self` to the power `e` (integers: exact with wrapping for `e >= 0`, truncated
    /// toward zero for `e < 0`).
    fn power(self, e: Self) -> Self;
    /// Maximum, propagating NaN.
    fn max_nan(self, o: Self) -> Self {
        if self.is_nan_value() || o.is_nan_value() {
            if self.is_nan_value() { self } else { o }
        } else if o > self {
            o
        } else {
            self
        }
    }
    /// Minimum, propagating NaN.
    fn min_nan(self, o: Self) -> Self {
        if self.is_nan_value() || o.is_nan_value() {
            if self.is_nan_value() { self } else { o }
        } else if o < self {
            o
        } else {
            self
        }
    }
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Numeric for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const IS_FLOAT: bool = true;
            fn plus(self, o: Self) -> Self {
                self + o
            }
            fn minus(self, o: Self) -> Self {
                self - o
            }
            fn times(self, o: Self) -> Self {
                self * o
            }
            fn divided_by(self, o: Self) -> Self {
                self / o
            }
            fn negated(self) -> Self {
                -self
            }
            fn absolute(self) -> Self {
                <$t>::abs(self)
            }
            fn of_f64(x: f64) -> Self {
                x as $t
            }
            fn as_f64(self) -> f64 {
                self as f64
            }
            fn of_i64(x: i64) -> Self {
                x as $t
            }
            fn lowest() -> Self {
                <$t>::MIN
            }
            fn highest() -> Self {
                <$t>::MAX
            }
            fn is_nan_value(self) -> bool {
                <$t>::is_nan(self)
            }
            fn power(self, e: Self) -> Self {
                self.powf(e)
            }
        }
    };
}
impl_float!(f32);
impl_float!(f64);

macro_rules! impl_int {
    ($t:ty) => {
        impl Numeric for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const IS_FLOAT: bool = false;
            fn plus(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn minus(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn times(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn divided_by(self, o: Self) -> Self {
                // Callers check for zero; wrapping_div only panics on zero.
                if o == 0 { 0 } else { self.wrapping_div(o) }
            }
            fn negated(self) -> Self {
                self.wrapping_neg()
            }
            fn absolute(self) -> Self {
                self.wrapping_abs()
            }
            fn of_f64(x: f64) -> Self {
                x as $t
            }
            fn as_f64(self) -> f64 {
                self as f64
            }
            fn of_i64(x: i64) -> Self {
                x as $t
            }
            fn lowest() -> Self {
                <$t>::MIN
            }
            fn highest() -> Self {
                <$t>::MAX
            }
            fn is_nan_value(self) -> bool {
                false
            }
            fn power(self, e: Self) -> Self {
                if e >= 0 {
                    self.wrapping_pow(u32::try_from(e).unwrap_or(u32::MAX))
                } else {
                    // |x^e| < 1 unless |x| == 1.
                    match self {
                        1 => 1,
                        -1 => {
                            if e % 2 == 0 {
                                1
                            } else {
                                -1
                            }
                        }
                        _ => 0,
                    }
                }
            }
        }
    };
}
impl_int!(i64);
impl_int!(i32);

/// The floating-point element types: f32 and f64, with the math functions kernels need.
pub(crate) trait Float: Numeric + num_traits::Float {
    /// The error function.
    fn erf(self) -> Self;
    /// Conversion from an `f32` attribute value.
    fn of_f32(x: f32) -> Self;
}

impl Float for f32 {
    fn erf(self) -> Self {
        libm::erff(self)
    }
    fn of_f32(x: f32) -> Self {
        x
    }
}

impl Float for f64 {
    fn erf(self) -> Self {
        libm::erf(self)
    }
    fn of_f32(x: f32) -> Self {
        f64::from(x)
    }
}
