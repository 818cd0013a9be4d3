#pragma once
// Elementwise math, one functor per op, shared by the CPU and CUDA kernels.
// Functors receive values in OpMath<T> (float for 16-bit floats).
#include <cmath>
#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define KILN_HD __host__ __device__
#else
#define KILN_HD
#endif

namespace kiln::fn {

struct Add {
  template <class T>
  KILN_HD T operator()(T a, T b) const {
    if constexpr (std::is_same_v<T, bool>) return a || b;
    else return a + b;
  }
};
struct Sub {
  template <class T>
  KILN_HD T operator()(T a, T b) const { return a - b; }
};
struct Mul {
  template <class T>
  KILN_HD T operator()(T a, T b) const {
    if constexpr (std::is_same_v<T, bool>) return a && b;
    else return a * b;
  }
};
struct Div {  // true division; the front end casts integral inputs to float first
  template <class T>
  KILN_HD T operator()(T a, T b) const { return a / b; }
};
struct Neg {
  template <class T>
  KILN_HD T operator()(T a) const { return -a; }
};
struct Exp {
  template <class T>
  KILN_HD T operator()(T a) const { return std::exp(a); }
};
// Comparisons return bool from OpMath<T> operands.
struct Eq {
  template <class T>
  KILN_HD bool operator()(T a, T b) const { return a == b; }
};
struct Ne {
  template <class T>
  KILN_HD bool operator()(T a, T b) const { return a != b; }
};
struct Lt {
  template <class T>
  KILN_HD bool operator()(T a, T b) const { return a < b; }
};
struct Le {
  template <class T>
  KILN_HD bool operator()(T a, T b) const { return a <= b; }
};
struct Gt {
  template <class T>
  KILN_HD bool operator()(T a, T b) const { return a > b; }
};
struct Ge {
  template <class T>
  KILN_HD bool operator()(T a, T b) const { return a >= b; }
};
struct IsFinite {
  template <class T>
  KILN_HD bool operator()(T a) const {
    if constexpr (std::is_floating_point_v<T>) return std::isfinite(a);
    else return true;
  }
};

// ---- unary math on all dtypes ----
struct Abs {
  template <class T>
  KILN_HD T operator()(T a) const {
    if constexpr (std::is_floating_point_v<T>) return std::fabs(a);
    else if constexpr (std::is_unsigned_v<T>) return a;
    else return a < T(0) ? T(-a) : a;
  }
};
struct Sign {  // sign(nan) is 0, as in PyTorch
  template <class T>
  KILN_HD T operator()(T a) const {
    if constexpr (std::is_same_v<T, bool>) return a;
    else return static_cast<T>((T(0) < a) - (a < T(0)));
  }
};
struct Square {
  template <class T>
  KILN_HD T operator()(T a) const {
    if constexpr (std::is_same_v<T, bool>) return a;
    else return a * a;
  }
};
struct Relu {  // relu(nan) is nan
  template <class T>
  KILN_HD T operator()(T a) const { return a < T(0) ? T(0) : a; }
};
// relu's backward (PyTorch's threshold_backward at 0): y is relu's output.
struct ReluBackward {
  template <class T>
  KILN_HD T operator()(T g, T y) const { return y <= T(0) ? T(0) : g; }
};
struct LogicalNot {
  template <class T>
  KILN_HD bool operator()(T a) const { return !static_cast<bool>(a); }
};
struct BitwiseNot {
  template <class T>
  KILN_HD T operator()(T a) const {
    if constexpr (std::is_same_v<T, bool>) return !a;
    else return static_cast<T>(~a);
  }
};
struct IsNan {
  template <class T>
  KILN_HD bool operator()(T a) const { return a != a; }
};
struct IsInf {
  template <class T>
  KILN_HD bool operator()(T a) const {
    if constexpr (std::is_floating_point_v<T>) return std::isinf(a);
    else return false;
  }
};
struct IsPosInf {
  template <class T>
  KILN_HD bool operator()(T a) const {
    if constexpr (std::is_floating_point_v<T>) return std::isinf(a) && a > 0;
    else return false;
  }
};
struct IsNegInf {
  template <class T>
  KILN_HD bool operator()(T a) const {
    if constexpr (std::is_floating_point_v<T>) return std::isinf(a) && a < 0;
    else return false;
  }
};

// ---- unary math on floating types only (T is float or double) ----
#define KILN_FLOAT_FUNCTOR(Name, expr)            \
  struct Name {                                   \
    template <class T>                            \
    KILN_HD T operator()(T a) const { return expr; } \
  };
KILN_FLOAT_FUNCTOR(Exp2, std::exp2(a))
KILN_FLOAT_FUNCTOR(Log, std::log(a))
KILN_FLOAT_FUNCTOR(Log2, std::log2(a))
KILN_FLOAT_FUNCTOR(Log10, std::log10(a))
KILN_FLOAT_FUNCTOR(Log1p, std::log1p(a))
KILN_FLOAT_FUNCTOR(Expm1, std::expm1(a))
KILN_FLOAT_FUNCTOR(Sqrt, std::sqrt(a))
KILN_FLOAT_FUNCTOR(Rsqrt, T(1) / std::sqrt(a))
KILN_FLOAT_FUNCTOR(Reciprocal, T(1) / a)
KILN_FLOAT_FUNCTOR(Sin, std::sin(a))
KILN_FLOAT_FUNCTOR(Cos, std::cos(a))
KILN_FLOAT_FUNCTOR(Tan, std::tan(a))
KILN_FLOAT_FUNCTOR(Asin, std::asin(a))
KILN_FLOAT_FUNCTOR(Acos, std::acos(a))
KILN_FLOAT_FUNCTOR(Atan, std::atan(a))
KILN_FLOAT_FUNCTOR(Sinh, std::sinh(a))
KILN_FLOAT_FUNCTOR(Cosh, std::cosh(a))
KILN_FLOAT_FUNCTOR(Tanh, std::tanh(a))
KILN_FLOAT_FUNCTOR(Sigmoid, T(1) / (T(1) + std::exp(-a)))
KILN_FLOAT_FUNCTOR(Silu, a / (T(1) + std::exp(-a)))
KILN_FLOAT_FUNCTOR(Erf, std::erf(a))
KILN_FLOAT_FUNCTOR(Erfc, std::erfc(a))
KILN_FLOAT_FUNCTOR(Floor, std::floor(a))
KILN_FLOAT_FUNCTOR(Ceil, std::ceil(a))
KILN_FLOAT_FUNCTOR(Round, std::nearbyint(a))  // half to even under the default rounding mode
KILN_FLOAT_FUNCTOR(Trunc, std::trunc(a))
KILN_FLOAT_FUNCTOR(Frac, a - std::trunc(a))
KILN_FLOAT_FUNCTOR(Gelu, a * T(0.5) * (T(1) + std::erf(a * T(0.70710678118654752440))))
KILN_FLOAT_FUNCTOR(GeluTanh, T(0.5) * a *
                                 (T(1) + std::tanh(T(0.79788456080286535588) *
                                                   (a + T(0.044715) * a * a * a))))
#undef KILN_FLOAT_FUNCTOR

// softplus(x) = log(1 + exp(beta x)) / beta, linear above the threshold.
struct Softplus {
  double beta, threshold;
  template <class T>
  KILN_HD T operator()(T a) const {
    const T bx = a * T(beta);
    return bx > T(threshold) ? a : std::log1p(std::exp(bx)) / T(beta);
  }
};

// ---- binary ----
// Integer division and remainder: the front end rejects zero divisors; -1 is
// special-cased because INT_MIN / -1 traps.
template <class T>
KILN_HD T int_negate(T a) {
  return static_cast<T>(-static_cast<std::make_unsigned_t<T>>(a));
}
struct FloorDivide {
  template <class T>
  KILN_HD T operator()(T a, T b) const {
    if constexpr (std::is_same_v<T, bool>) {
      return a;
    } else if constexpr (std::is_integral_v<T>) {
      if constexpr (std::is_signed_v<T>) {
        if (b == T(-1)) return int_negate(a);
      }
      T q = a / b;
      if (a % b != 0 && ((a < 0) != (b < 0))) --q;
      return q;
    } else {
      if (b == T(0)) return a / b;
      const T mod = std::fmod(a, b);
      T div = (a - mod) / b;
      if (mod != T(0) && ((b < T(0)) != (mod < T(0)))) div -= T(1);
      if (div == T(0)) return std::copysign(T(0), a / b);
      T fl = std::floor(div);
      if (div - fl > T(0.5)) fl += T(1);
      return fl;
    }
  }
};
struct Remainder {  // sign of the divisor, as Python's %
  template <class T>
  KILN_HD T operator()(T a, T b) const {
    if constexpr (std::is_same_v<T, bool>) {
      return false;
    } else if constexpr (std::is_integral_v<T>) {
      if constexpr (std::is_signed_v<T>) {
        if (b == T(-1)) return T(0);
      }
      T r = a % b;
      if (r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    } else {
      T r = std::fmod(a, b);
      if (r != T(0) && ((r < T(0)) != (b < T(0)))) r += b;
      return r;
    }
  }
};
struct Fmod {  // sign of the dividend, as C's fmod
  template <class T>
  KILN_HD T operator()(T a, T b) const {
    if constexpr (std::is_same_v<T, bool>) {
      return false;
    } else if constexpr (std::is_integral_v<T>) {
      if constexpr (std::is_signed_v<T>) {
        if (b == T(-1)) return T(0);
      }
      return a % b;
    } else {
      return std::fmod(a, b);
    }
  }
};
struct Pow {
  template <class T>
  KILN_HD T operator()(T a, T b) const {
    if constexpr (std::is_same_v<T, bool>) {
      return a || !b;
    } else if constexpr (std::is_integral_v<T>) {
      if constexpr (std::is_signed_v<T>) {
        // Negative exponents: only +-1 bases survive truncation.
        if (b < 0) return a == 1 ? T(1) : a == T(-1) ? T((b & 1) ? -1 : 1) : T(0);
      }
      T r = 1;
      while (b) {  // square and multiply, wrapping like PyTorch
        if (b & 1) r = static_cast<T>(r * a);
        a = static_cast<T>(a * a);
        b = static_cast<T>(b >> 1);
      }
      return r;
    } else {
      return std::pow(a, b);
    }
  }
};
struct Maximum {  // nan propagates
  template <class T>
  KILN_HD T operator()(T a, T b) const {
    return ((a > b) | (a != a)) ? a : b;  // a select with no arithmetic: vectorizes
  }
};
struct Minimum {
  template <class T>
  KILN_HD T operator()(T a, T b) const {
    return ((a < b) | (a != a)) ? a : b;  // a select with no arithmetic: vectorizes
  }
};
struct Fmax {  // nan is ignored unless both are nan
  template <class T>
  KILN_HD T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) return std::fmax(a, b);
    else return a > b ? a : b;
  }
};
struct Fmin {
  template <class T>
  KILN_HD T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) return std::fmin(a, b);
    else return a < b ? a : b;
  }
};
struct Atan2 {
  template <class T>
  KILN_HD T operator()(T a, T b) const { return std::atan2(a, b); }
};
struct Hypot {
  template <class T>
  KILN_HD T operator()(T a, T b) const { return std::hypot(a, b); }
};
struct LogicalAnd {
  template <class T>
  KILN_HD bool operator()(T a, T b) const { return static_cast<bool>(a) && static_cast<bool>(b); }
};
struct LogicalOr {
  template <class T>
  KILN_HD bool operator()(T a, T b) const { return static_cast<bool>(a) || static_cast<bool>(b); }
};
struct LogicalXor {
  template <class T>
  KILN_HD bool operator()(T a, T b) const { return static_cast<bool>(a) != static_cast<bool>(b); }
};
// Bitwise ops on integral/bool types only.
struct BitwiseAnd {
  template <class T>
  KILN_HD T operator()(T a, T b) const { return static_cast<T>(a & b); }
};
struct BitwiseOr {
  template <class T>
  KILN_HD T operator()(T a, T b) const { return static_cast<T>(a | b); }
};
struct BitwiseXor {
  template <class T>
  KILN_HD T operator()(T a, T b) const { return static_cast<T>(a ^ b); }
};

// ---- ternary ----
struct Clamp {  // nan in the input or a bound propagates
  template <class T>
  KILN_HD T operator()(T x, T lo, T hi) const {
    // Selects with no arithmetic, so the loop vectorizes.
    const T y = ((x < lo) | (lo != lo)) ? lo : x;
    return ((y > hi) | (hi != hi)) ? hi : y;
  }
};
struct Lerp {  // accurate at both ends: weight 0 gives start, 1 gives end
  template <class T>
  KILN_HD T operator()(T start, T end, T w) const {
    const T d = end - start;
    const T from_start = start + w * d, from_end = end - d * (T(1) - w);
    return std::abs(w) < T(0.5) ? from_start : from_end;
  }
};
// input + value * t1 * t2 and input + value * t1 / t2 (optimizer updates).
struct Addcmul {
  double value;
  template <class T>
  KILN_HD T operator()(T a, T b, T c) const {
    if constexpr (std::is_same_v<T, bool>) return a || (value != 0 && b && c);
    else return static_cast<T>(a + static_cast<T>(value) * b * c);
  }
};
struct Addcdiv {
  double value;
  template <class T>
  KILN_HD T operator()(T a, T b, T c) const { return a + static_cast<T>(value) * b / c; }
};

}  // namespace kiln::fn
