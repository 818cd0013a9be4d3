#pragma once
// Inner loops for elementwise CPU kernels, with MLX-style layout fast paths:
// all contiguous, scalar-vector, vector-scalar, general strided. The
// contiguous paths are plain indexed loops that the compiler vectorizes.
#include <type_traits>

#include "kiln/dtype_dispatch.h"
#include "kiln/tensor_iter.h"

namespace kiln::cpu {

template <class Out, class T, class F>
inline void unary_loop(char** p, const int64_t* s, int64_t n, const F& f) {
  Out* o = reinterpret_cast<Out*>(p[0]);
  const T* a = reinterpret_cast<const T*>(p[1]);
  if (s[0] == sizeof(Out) && s[1] == sizeof(T)) {
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
  } else {
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<Out*>(p[0] + i * s[0]) = f(*reinterpret_cast<const T*>(p[1] + i * s[1]));
  }
}

template <class Out, class T, class F>
inline void binary_loop(char** p, const int64_t* s, int64_t n, const F& f) {
  Out* o = reinterpret_cast<Out*>(p[0]);
  const T* a = reinterpret_cast<const T*>(p[1]);
  const T* b = reinterpret_cast<const T*>(p[2]);
  if (s[0] == sizeof(Out)) {
    if (s[1] == sizeof(T) && s[2] == sizeof(T)) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
      return;
    }
    if (s[1] == 0 && s[2] == sizeof(T)) {
      const T x = *a;
      for (int64_t i = 0; i < n; ++i) o[i] = f(x, b[i]);
      return;
    }
    if (s[1] == sizeof(T) && s[2] == 0) {
      const T y = *b;
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], y);
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i)
    *reinterpret_cast<Out*>(p[0] + i * s[0]) = f(*reinterpret_cast<const T*>(p[1] + i * s[1]),
                                                 *reinterpret_cast<const T*>(p[2] + i * s[2]));
}

// Fast paths: everything contiguous, and a contiguous first input with scalar
// second and third inputs (clamp with number bounds, lerp with a number weight).
template <class T, class F>
inline void ternary_loop(char** p, const int64_t* s, int64_t n, const F& f) {
  T* o = reinterpret_cast<T*>(p[0]);
  const T* a = reinterpret_cast<const T*>(p[1]);
  const T* b = reinterpret_cast<const T*>(p[2]);
  const T* c = reinterpret_cast<const T*>(p[3]);
  constexpr int64_t k = sizeof(T);
  if (s[0] == k && s[1] == k) {
    if (s[2] == k && s[3] == k) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i], c[i]);
      return;
    }
    if (s[2] == 0 && s[3] == 0) {
      const T y = *b, z = *c;
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], y, z);
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i)
    *reinterpret_cast<T*>(p[0] + i * s[0]) = f(*reinterpret_cast<const T*>(p[1] + i * s[1]),
                                               *reinterpret_cast<const T*>(p[2] + i * s[2]),
                                               *reinterpret_cast<const T*>(p[3] + i * s[3]));
}

// The loops over a TensorIter for one dtype T; `op` gets OpMath<T> values.
template <class Out, class T, class Op>
void apply_unary(const TensorIter& iter, const Op& op) {
  using C = OpMath<T>;
  iter.for_each([&](char** p, const int64_t* s, int64_t n) {
    unary_loop<Out, T>(p, s, n, [&](T a) { return static_cast<Out>(op(static_cast<C>(a))); });
  });
}
template <class Out, class T, class Op>
void apply_binary(const TensorIter& iter, const Op& op) {
  using C = OpMath<T>;
  iter.for_each([&](char** p, const int64_t* s, int64_t n) {
    binary_loop<Out, T>(p, s, n, [&](T x, T y) {
      return static_cast<Out>(op(static_cast<C>(x), static_cast<C>(y)));
    });
  });
}
template <class T, class Op>
void apply_ternary(const TensorIter& iter, const Op& op) {
  using C = OpMath<T>;
  iter.for_each([&](char** p, const int64_t* s, int64_t n) {
    ternary_loop<T>(p, s, n, [&](T x, T y, T z) {
      return static_cast<T>(op(static_cast<C>(x), static_cast<C>(y), static_cast<C>(z)));
    });
  });
}

// out = Op(in) computed in OpMath<T>; out has in's dtype (or bool for predicates).
template <class Op, bool kPredicate = false>
void unary_kernel(const Tensor& out, const Tensor& in) {
  TensorIter iter({out, in});
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    apply_unary<std::conditional_t<kPredicate, bool, T>, T>(iter, Op{});
  });
}

// Same for unary ops defined on floating types only (the front end promotes ints).
template <class Op>
void unary_float_apply(const Tensor& out, const Tensor& in, const Op& op) {
  TensorIter iter({out, in});
  visit_floating(in.dtype(), "unary", [&]<class T>(TypeTag<T>) { apply_unary<T, T>(iter, op); });
}
template <class Op>
void unary_float_kernel(const Tensor& out, const Tensor& in) {
  unary_float_apply(out, in, Op{});
}

template <class Op, bool kPredicate = false>
void binary_kernel(const Tensor& out, const Tensor& a, const Tensor& b) {
  TensorIter iter({out, a, b});
  visit_dtype(a.dtype(), [&]<class T>(TypeTag<T>) {
    apply_binary<std::conditional_t<kPredicate, bool, T>, T>(iter, Op{});
  });
}

template <class Op>
void binary_float_kernel(const Tensor& out, const Tensor& a, const Tensor& b) {
  TensorIter iter({out, a, b});
  visit_floating(a.dtype(), "binary", [&]<class T>(TypeTag<T>) { apply_binary<T, T>(iter, Op{}); });
}

// Ops on bool and integers only (bitwise); the front end rejects floats.
template <class Op>
void unary_int_kernel(const Tensor& out, const Tensor& in) {
  TensorIter iter({out, in});
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    if constexpr (std::is_integral_v<T>)
      apply_unary<T, T>(iter, Op{});
    else
      throw TypeError("[bitwise] expected an integral or bool tensor");
  });
}
template <class Op>
void binary_int_kernel(const Tensor& out, const Tensor& a, const Tensor& b) {
  TensorIter iter({out, a, b});
  visit_dtype(a.dtype(), [&]<class T>(TypeTag<T>) {
    if constexpr (std::is_integral_v<T>)
      apply_binary<T, T>(iter, Op{});
    else
      throw TypeError("[bitwise] expected an integral or bool tensor");
  });
}

// Three inputs of one dtype, output of the same dtype.
template <class Op>
void ternary_apply(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c,
                   const Op& op) {
  TensorIter iter({out, a, b, c});
  visit_dtype(a.dtype(), [&]<class T>(TypeTag<T>) { apply_ternary<T>(iter, op); });
}
template <class Op>
void ternary_float_apply(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c,
                         const Op& op) {
  TensorIter iter({out, a, b, c});
  visit_floating(a.dtype(), "ternary", [&]<class T>(TypeTag<T>) { apply_ternary<T>(iter, op); });
}

}  // namespace kiln::cpu
