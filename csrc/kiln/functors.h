#pragma once
// Elementwise math, one functor per op, shared by the CPU and CUDA kernels.
// Functors receive values in OpMath<T> (float for 16-bit floats).
#include <cmath>
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

}  // namespace kiln::fn
