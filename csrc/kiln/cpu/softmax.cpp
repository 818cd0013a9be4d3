// softmax, log_softmax and single-dim logsumexp over one dim of a contiguous
// tensor viewed as [outer, n, inner].
// Rows (inner == 1) take short passes that stay in cache: max, exp and sum, then
// scale; each pass is written over kLanes independent lanes so it vectorizes.
// Other dims process blocks of columns at once so memory is read in order.
// Lets GCC if-convert (and so vectorize) the selects in vexp; kiln never enables FP traps.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <cmath>
#include <limits>

#include "kiln/cpu/vec_math.h"
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/parallel.h"
#include "kiln/tensor.h"

namespace kiln::cpu {
namespace {

enum class Mode { Softmax, LogSoftmax, LogSumExp };
constexpr int64_t kLanes = 8;

template <class T, class C = OpMath<T>>
[[gnu::always_inline]] inline C row_max_impl(const T* x, int64_t n) {
  C lanes[kLanes];
  for (auto& l : lanes) l = -std::numeric_limits<C>::infinity();
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) {
      const C v = static_cast<C>(x[k + l]);
      lanes[l] = v > lanes[l] ? v : lanes[l];
    }
  C m = -std::numeric_limits<C>::infinity();
  for (; k < n; ++k) m = static_cast<C>(x[k]) > m ? static_cast<C>(x[k]) : m;
  for (C l : lanes) m = l > m ? l : m;
  // NaNs are skipped here; they still reach every output through the sum of exps.
  return m;
}

// sum(exp(x - m)); also stores exp(x - m) into y when y is given. The exps go
// through a small buffer in a plain loop (which vectorizes), then lane sums.
template <class T, class C = OpMath<T>>
[[gnu::always_inline]] inline C row_sum_exp_impl(const T* x, T* y, int64_t n, C m) {
  constexpr int64_t kChunk = 256;
  C buf[kChunk];
  C lanes[kLanes] = {};
  for (int64_t k0 = 0; k0 < n; k0 += kChunk) {
    const int64_t nb = std::min(kChunk, n - k0);
    for (int64_t i = 0; i < nb; ++i) buf[i] = vexp(static_cast<C>(x[k0 + i]) - m);
    if (y)
      for (int64_t i = 0; i < nb; ++i) y[k0 + i] = static_cast<T>(buf[i]);
    int64_t i = 0;
    for (; i + kLanes <= nb; i += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) lanes[l] += buf[i + l];
    for (; i < nb; ++i) lanes[0] += buf[i];
  }
  C s = 0;
  for (C l : lanes) s += l;
  return s;
}

// y = (x - a) * b + c; covers softmax's scale (a = c = 0) and log_softmax's shift (b = 1).
template <class T, class C = OpMath<T>>
[[gnu::always_inline]] inline void row_affine_impl(const T* x, T* y, int64_t n, C a, C b, C c) {
  for (int64_t k = 0; k < n; ++k) y[k] = static_cast<T>((static_cast<C>(x[k]) - a) * b + c);
}

// float32, the hot case, gets clones for wider vector units.
// A NaN max only makes every output NaN, which the sum of exps does anyway.
inline float row_max_f32(const float* x, int64_t n) { return row_extreme<true>(x, n); }
KILN_TARGET_CLONES float row_sum_exp_f32(const float* x, float* y, int64_t n, float m) {
  return row_sum_exp_impl(x, y, n, m);
}
KILN_TARGET_CLONES void row_affine_f32(const float* x, float* y, int64_t n, float a, float b,
                                       float c) {
  row_affine_impl(x, y, n, a, b, c);
}

template <class T, class C = OpMath<T>>
C row_max(const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) return row_max_f32(x, n);
  else return row_max_impl(x, n);
}
template <class T, class C = OpMath<T>>
C row_sum_exp(const T* x, T* y, int64_t n, C m) {
  if constexpr (std::is_same_v<T, float>) return row_sum_exp_f32(x, y, n, m);
  else return row_sum_exp_impl(x, y, n, m);
}
template <class T, class C = OpMath<T>>
void row_affine(const T* x, T* y, int64_t n, C a, C b, C c) {
  if constexpr (std::is_same_v<T, float>) row_affine_f32(x, y, n, a, b, c);
  else row_affine_impl(x, y, n, a, b, c);
}

template <class T, Mode kMode>
void rows(const T* x, T* y, int64_t rows, int64_t n) {
  using C = OpMath<T>;
  parallel_for(0, rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, n)),
               [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * n;
      C m = row_max(xr, n);
      // logsumexp shifts infinite maxes by 0 instead: all -inf gives -inf, +inf gives +inf.
      if (kMode == Mode::LogSumExp && std::isinf(m)) m = 0;
      if constexpr (kMode == Mode::Softmax) {
        T* yr = y + r * n;
        const C inv = C(1) / row_sum_exp<T>(xr, yr, n, m);
        row_affine<T>(yr, yr, n, C(0), inv, C(0));
      } else {
        const C log_s = std::log(row_sum_exp<T>(xr, nullptr, n, m));
        if constexpr (kMode == Mode::LogSumExp) {
          y[r] = static_cast<T>(m + log_s);
        } else {
          // (x - max) - log(sum) keeps the precision that x - (max + log(sum)) rounds away.
          row_affine<T>(xr, y + r * n, n, m, C(1), -log_s);
        }
      }
    }
  });
}

constexpr int64_t kColumnBlock = 64;

// One block of bn <= kColumnBlock adjacent columns, each reduced over n rows of `inner`
// elements; y is the block's output (logsumexp: one value per column).
template <class T, Mode kMode, class C = OpMath<T>>
[[gnu::always_inline]] inline void column_block_impl(const T* x, T* y, int64_t n, int64_t inner,
                                                     int64_t bn) {
  C m[kColumnBlock], s[kColumnBlock];
  for (int64_t j = 0; j < bn; ++j) {
    m[j] = -std::numeric_limits<C>::infinity();
    s[j] = 0;
  }
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < bn; ++j) {
      const C v = static_cast<C>(x[k * inner + j]);
      m[j] = v > m[j] ? v : m[j];
    }
  if constexpr (kMode == Mode::LogSumExp) {
    for (int64_t j = 0; j < bn; ++j) m[j] = std::isinf(m[j]) ? C(0) : m[j];
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < bn; ++j) s[j] += vexp(static_cast<C>(x[k * inner + j]) - m[j]);
    for (int64_t j = 0; j < bn; ++j) y[j] = static_cast<T>(m[j] + std::log(s[j]));
    return;
  }
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < bn; ++j) {
      const C ex = vexp(static_cast<C>(x[k * inner + j]) - m[j]);
      if constexpr (kMode == Mode::Softmax) y[k * inner + j] = static_cast<T>(ex);
      s[j] += ex;
    }
  for (int64_t j = 0; j < bn; ++j) s[j] = kMode == Mode::LogSoftmax ? std::log(s[j]) : C(1) / s[j];
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < bn; ++j) {
      T& o = y[k * inner + j];
      if constexpr (kMode == Mode::LogSoftmax)
        o = static_cast<T>((static_cast<C>(x[k * inner + j]) - m[j]) - s[j]);
      else
        o = static_cast<T>(static_cast<C>(o) * s[j]);
    }
}

KILN_TARGET_CLONES void column_block_f32(const float* x, float* y, int64_t n, int64_t inner,
                                         int64_t bn, Mode mode) {
  switch (mode) {
    case Mode::Softmax: return column_block_impl<float, Mode::Softmax>(x, y, n, inner, bn);
    case Mode::LogSoftmax: return column_block_impl<float, Mode::LogSoftmax>(x, y, n, inner, bn);
    case Mode::LogSumExp: return column_block_impl<float, Mode::LogSumExp>(x, y, n, inner, bn);
  }
}

template <class T, Mode kMode>
void columns(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  const int64_t nblocks = (inner + kColumnBlock - 1) / kColumnBlock;
  parallel_for(0, outer * nblocks,
               std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, n * kColumnBlock)),
               [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t r = task / nblocks, j0 = (task % nblocks) * kColumnBlock;
      const int64_t bn = std::min(kColumnBlock, inner - j0);
      const T* xr = x + r * n * inner + j0;
      T* yr = y + (kMode == Mode::LogSumExp ? r * inner : r * n * inner) + j0;
      if constexpr (std::is_same_v<T, float>) column_block_f32(xr, yr, n, inner, bn, kMode);
      else column_block_impl<T, kMode>(xr, yr, n, inner, bn);
    }
  });
}

// `in` contiguous; `out` contiguous with in's shape (softmax) or without `dim` (logsumexp).
template <Mode kMode>
void softmax_kernel(const Tensor& out, const Tensor& in, int64_t dim) {
  visit_floating(in.dtype(), "softmax", [&]<class T>(TypeTag<T>) {
    const Shape& s = in.sizes();
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < dim; ++d) outer *= s[d];
    for (int64_t d = dim + 1; d < in.dim(); ++d) inner *= s[d];
    const int64_t n = in.dim() == 0 ? 1 : s[dim];
    if (outer * inner == 0) return;
    if (n == 0) {  // softmax outputs are empty; logsumexp's are the log of an empty sum
      T* o = out.data<T>();
      if (kMode == Mode::LogSumExp)
        for (int64_t i = 0; i < outer * inner; ++i) o[i] = static_cast<T>(-INFINITY);
      return;
    }
    if (inner == 1) rows<T, kMode>(in.data<T>(), out.data<T>(), outer, n);
    else columns<T, kMode>(in.data<T>(), out.data<T>(), outer, n, inner);
  });
}

// Fused backward of one row of length n:
//   softmax:     gx = y * (g - sum(g * y))
//   log_softmax: gx = g - exp(y) * sum(g)
template <bool kLog, class T, class C = OpMath<T>>
[[gnu::always_inline]] inline void row_backward_impl(const T* g, const T* y, T* o, int64_t n) {
  C lanes[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int64_t l = 0; l < kLanes; ++l)
      lanes[l] += kLog ? static_cast<C>(g[k + l]) : static_cast<C>(g[k + l]) * static_cast<C>(y[k + l]);
  C s = 0;
  for (; k < n; ++k) s += kLog ? static_cast<C>(g[k]) : static_cast<C>(g[k]) * static_cast<C>(y[k]);
  for (C l : lanes) s += l;
  for (k = 0; k < n; ++k) {
    const C gv = static_cast<C>(g[k]), yv = static_cast<C>(y[k]);
    if constexpr (kLog) o[k] = static_cast<T>(gv - vexp(yv) * s);
    else o[k] = static_cast<T>(yv * (gv - s));
  }
}

KILN_TARGET_CLONES void row_backward_f32(const float* g, const float* y, float* o, int64_t n,
                                         bool log) {
  if (log) row_backward_impl<true>(g, y, o, n);
  else row_backward_impl<false>(g, y, o, n);
}

// Rows of the last dim of contiguous g and y.
template <bool kLog>
void softmax_backward_kernel(const Tensor& gx, const Tensor& g, const Tensor& y) {
  visit_floating(y.dtype(), "softmax_backward", [&]<class T>(TypeTag<T>) {
    const int64_t n = y.dim() == 0 ? 1 : y.sizes().back();
    if (y.numel() == 0) return;
    const T* gp = g.data<T>();
    const T* yp = y.data<T>();
    T* op = gx.data<T>();
    parallel_for(0, y.numel() / n, std::max<int64_t>(1, kParallelGrain / n), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        if constexpr (std::is_same_v<T, float>) row_backward_f32(gp + r * n, yp + r * n, op + r * n, n, kLog);
        else row_backward_impl<kLog>(gp + r * n, yp + r * n, op + r * n, n);
      }
    });
  });
}

}  // namespace

KILN_REGISTER_KERNEL(softmax_backward, CPU, softmax_backward_kernel<false>);
KILN_REGISTER_KERNEL(log_softmax_backward, CPU, softmax_backward_kernel<true>);
KILN_REGISTER_KERNEL(softmax, CPU, softmax_kernel<Mode::Softmax>);
KILN_REGISTER_KERNEL(log_softmax, CPU, softmax_kernel<Mode::LogSoftmax>);
KILN_REGISTER_KERNEL(logsumexp_dim, CPU, softmax_kernel<Mode::LogSumExp>);

}  // namespace kiln::cpu
