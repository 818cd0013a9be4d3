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

// out = Op(in) computed in OpMath<T>; out has in's dtype (or bool for predicates).
template <class Op, bool kPredicate = false>
void unary_kernel(const Tensor& out, const Tensor& in) {
  TensorIter iter({out, in});
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    using C = OpMath<T>;
    using Out = std::conditional_t<kPredicate, bool, T>;
    const Op op{};
    iter.for_each([&](char** p, const int64_t* s, int64_t n) {
      unary_loop<Out, T>(p, s, n, [&](T a) { return static_cast<Out>(op(static_cast<C>(a))); });
    });
  });
}

// Same for unary ops defined on floating types only (the front end promotes ints).
template <class Op>
void unary_float_kernel(const Tensor& out, const Tensor& in) {
  TensorIter iter({out, in});
  visit_floating(in.dtype(), "unary", [&]<class T>(TypeTag<T>) {
    using C = OpMath<T>;
    const Op op{};
    iter.for_each([&](char** p, const int64_t* s, int64_t n) {
      unary_loop<T, T>(p, s, n, [&](T a) { return static_cast<T>(op(static_cast<C>(a))); });
    });
  });
}

template <class Op, bool kPredicate = false>
void binary_kernel(const Tensor& out, const Tensor& a, const Tensor& b) {
  TensorIter iter({out, a, b});
  visit_dtype(a.dtype(), [&]<class T>(TypeTag<T>) {
    using C = OpMath<T>;
    using Out = std::conditional_t<kPredicate, bool, T>;
    const Op op{};
    iter.for_each([&](char** p, const int64_t* s, int64_t n) {
      binary_loop<Out, T>(p, s, n, [&](T x, T y) {
        return static_cast<Out>(op(static_cast<C>(x), static_cast<C>(y)));
      });
    });
  });
}

template <class Op>
void binary_float_kernel(const Tensor& out, const Tensor& a, const Tensor& b) {
  TensorIter iter({out, a, b});
  visit_floating(a.dtype(), "binary", [&]<class T>(TypeTag<T>) {
    using C = OpMath<T>;
    const Op op{};
    iter.for_each([&](char** p, const int64_t* s, int64_t n) {
      binary_loop<T, T>(p, s, n, [&](T x, T y) {
        return static_cast<T>(op(static_cast<C>(x), static_cast<C>(y)));
      });
    });
  });
}

}  // namespace kiln::cpu
