// softmax / log_softmax over one dim of a contiguous tensor viewed as [outer, n, inner].
// Rows (inner == 1) take three short passes that stay in cache: max, exp and sum, scale.
// Other dims process blocks of columns at once so memory is read in order.
#include <cmath>
#include <limits>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/parallel.h"
#include "kiln/tensor.h"

namespace kiln::cpu {
namespace {

template <class T, bool kLog>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n) {
  using C = OpMath<T>;
  parallel_for(0, rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, n)),
               [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * n;
      T* yr = y + r * n;
      C m = -std::numeric_limits<C>::infinity();
      for (int64_t k = 0; k < n; ++k) {
        const C v = static_cast<C>(xr[k]);
        m = v > m || std::isnan(v) ? v : m;
      }
      double s = 0;
      if constexpr (kLog) {
        for (int64_t k = 0; k < n; ++k) s += std::exp(static_cast<C>(xr[k]) - m);
        // (x - max) - log(sum) keeps the precision that x - (max + log(sum)) would round away.
        const C log_s = static_cast<C>(std::log(s));
        for (int64_t k = 0; k < n; ++k) yr[k] = static_cast<T>((static_cast<C>(xr[k]) - m) - log_s);
      } else {
        for (int64_t k = 0; k < n; ++k) {
          const C ex = std::exp(static_cast<C>(xr[k]) - m);
          yr[k] = static_cast<T>(ex);
          s += ex;
        }
        const C inv = static_cast<C>(1.0 / s);
        for (int64_t k = 0; k < n; ++k) yr[k] = static_cast<T>(static_cast<C>(yr[k]) * inv);
      }
    }
  });
}

template <class T, bool kLog>
void softmax_columns(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  using C = OpMath<T>;
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (inner + kBlock - 1) / kBlock;
  parallel_for(0, outer * nblocks,
               std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, n * kBlock)),
               [&](int64_t b, int64_t e) {
    C m[kBlock];
    double s[kBlock];
    for (int64_t task = b; task < e; ++task) {
      const int64_t r = task / nblocks, j0 = (task % nblocks) * kBlock;
      const int64_t bn = std::min(kBlock, inner - j0);
      const T* xr = x + r * n * inner + j0;
      T* yr = y + r * n * inner + j0;
      for (int64_t j = 0; j < bn; ++j) {
        m[j] = -std::numeric_limits<C>::infinity();
        s[j] = 0;
      }
      for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < bn; ++j) {
          const C v = static_cast<C>(xr[k * inner + j]);
          m[j] = v > m[j] || std::isnan(v) ? v : m[j];
        }
      for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < bn; ++j) {
          const C ex = std::exp(static_cast<C>(xr[k * inner + j]) - m[j]);
          if constexpr (!kLog) yr[k * inner + j] = static_cast<T>(ex);
          s[j] += ex;
        }
      for (int64_t j = 0; j < bn; ++j)
        s[j] = kLog ? std::log(s[j]) : 1.0 / s[j];
      for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < bn; ++j) {
          T& o = yr[k * inner + j];
          if constexpr (kLog) o = static_cast<T>((static_cast<C>(xr[k * inner + j]) - m[j]) - static_cast<C>(s[j]));
          else o = static_cast<T>(static_cast<C>(o) * static_cast<C>(s[j]));
        }
    }
  });
}

// out and in contiguous, same floating dtype.
template <bool kLog>
void softmax_kernel(const Tensor& out, const Tensor& in, int64_t dim) {
  visit_floating(in.dtype(), kLog ? "log_softmax" : "softmax", [&]<class T>(TypeTag<T>) {
    const Shape& s = in.sizes();
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < dim; ++d) outer *= s[d];
    for (int64_t d = dim + 1; d < in.dim(); ++d) inner *= s[d];
    const int64_t n = in.dim() == 0 ? 1 : s[dim];
    if (in.numel() == 0) return;
    if (inner == 1) softmax_rows<T, kLog>(in.data<T>(), out.data<T>(), outer, n);
    else softmax_columns<T, kLog>(in.data<T>(), out.data<T>(), outer, n, inner);
  });
}

}  // namespace

KILN_REGISTER_KERNEL(softmax, CPU, softmax_kernel<false>);
KILN_REGISTER_KERNEL(log_softmax, CPU, softmax_kernel<true>);

}  // namespace kiln::cpu
