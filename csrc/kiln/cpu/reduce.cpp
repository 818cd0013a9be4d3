// Reduction kernels: (out with reduced dims of size 1, in), on reduce_loop.
#include <cmath>
#include <limits>

#include "kiln/cpu/reduce_loops.h"
#include "kiln/cpu/vec_math.h"
#include "kiln/dispatch.h"

namespace kiln::cpu {
namespace {

template <class T>
using SumAcc = std::conditional_t<std::is_same_v<T, bool>, int64_t, AccType<T>>;

template <class T>
inline SumAcc<T> widen(T v) {
  return static_cast<SumAcc<T>>(static_cast<OpMath<T>>(v));
}

// Sum of a contiguous float32 row in double lanes (vectorized, cloned for AVX2/AVX-512).
KILN_TARGET_CLONES double row_sum_f32(const float* x, int64_t n) {
  constexpr int kLanes = 16;
  double lanes[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += static_cast<double>(x[k + l]);
  double s = 0;
  for (; k < n; ++k) s += static_cast<double>(x[k]);
  for (double l : lanes) s += l;
  return s;
}

// acc[j] += sum over k < n of x[k * stride + j], for j < m: rows added into a vector.
KILN_TARGET_CLONES void column_sum_f32(const float* x, int64_t n, int64_t stride, int64_t m,
                                       double* acc) {
  for (int64_t k = 0; k < n; ++k) {
    const float* p = x + k * stride;
    for (int64_t j = 0; j < m; ++j) acc[j] += static_cast<double>(p[j]);
  }
}

// float32 sum/mean of a contiguous [outer, n, inner] block; false if there are too few
// rows to share among threads (the generic loop splits single rows instead).
template <bool kMean>
bool sum_block_f32(const ContiguousBlock& b, const float* x, float* o) {
  const double scale = kMean ? 1.0 / static_cast<double>(b.n) : 1.0;
  if (b.inner == 1) {
    if (b.outer < get_num_threads()) return false;
    parallel_for(0, b.outer, std::max<int64_t>(1, kParallelGrain / b.n), [&](int64_t s, int64_t e) {
      for (int64_t r = s; r < e; ++r) o[r] = static_cast<float>(row_sum_f32(x + r * b.n, b.n) * scale);
    });
    return true;
  }
  constexpr int64_t kBlock = 256;
  const int64_t nblocks = (b.inner + kBlock - 1) / kBlock;
  parallel_for(0, b.outer * nblocks, std::max<int64_t>(1, kParallelGrain / (b.n * kBlock)),
               [&](int64_t s, int64_t e) {
    double acc[kBlock];
    for (int64_t task = s; task < e; ++task) {
      const int64_t r = task / nblocks, j0 = (task % nblocks) * kBlock;
      const int64_t m = std::min(kBlock, b.inner - j0);
      std::fill(acc, acc + m, 0.0);
      column_sum_f32(x + r * b.n * b.inner + j0, b.n, b.inner, m, acc);
      for (int64_t j = 0; j < m; ++j) o[r * b.inner + j0 + j] = static_cast<float>(acc[j] * scale);
    }
  });
  return true;
}

// out = in summed (sum) or summed and divided by the count (mean); out has in's dtype.
template <bool kMean>
void sum_kernel(const Tensor& out, const Tensor& in) {
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    using Acc = SumAcc<T>;
    T* o = out.data<T>();
    if constexpr (std::is_same_v<T, float>) {
      const ContiguousBlock b = contiguous_block(out, in);
      if (b.valid && sum_block_f32<kMean>(b, in.data<float>(), o)) return;
    }
    auto add = [](Acc a, Acc b) { return a + b; };
    reduce_loop<T>(
        out, in, Acc(0), [](Acc a, T v, int64_t) { return a + widen(v); }, add,
        [o](int64_t i, Acc a, int64_t n) {
          if constexpr (kMean) o[i] = static_cast<T>(static_cast<double>(a) / static_cast<double>(n));
          else o[i] = static_cast<T>(a);
        });
  });
}

// NaNs count as zero.
void nansum_kernel(const Tensor& out, const Tensor& in) {
  visit_floating(in.dtype(), "nansum", [&]<class T>(TypeTag<T>) {
    using Acc = AccType<T>;
    T* o = out.data<T>();
    reduce_loop<T>(
        out, in, Acc(0),
        [](Acc a, T v, int64_t) { return std::isnan(widen(v)) ? a : a + widen(v); },
        [](Acc a, Acc b) { return a + b; },
        [o](int64_t i, Acc a, int64_t) { o[i] = static_cast<T>(a); });
  });
}

void prod_kernel(const Tensor& out, const Tensor& in) {
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    using Acc = SumAcc<T>;
    T* o = out.data<T>();
    auto mul = [](Acc a, Acc b) { return a * b; };
    reduce_loop<T>(
        out, in, Acc(1), [](Acc a, T v, int64_t) { return a * widen(v); }, mul,
        [o](int64_t i, Acc a, int64_t) { o[i] = static_cast<T>(a); });
  });
}

template <bool kAll>
void bool_kernel(const Tensor& out, const Tensor& in) {
  bool* o = out.data<bool>();
  auto op = [](bool a, bool b) { return kAll ? (a && b) : (a || b); };
  reduce_loop<bool>(
      out, in, kAll, [op](bool a, bool v, int64_t) { return op(a, v); }, op,
      [o](int64_t i, bool a, int64_t) { o[i] = a; });
}

// Welford's running mean and sum of squared deviations; Chan's formula merges two.
struct Moments {
  double mean = 0, m2 = 0;
  int64_t n = 0;
};

inline Moments merge(const Moments& a, const Moments& b) {
  if (a.n == 0) return b;
  if (b.n == 0) return a;
  const double n = static_cast<double>(a.n + b.n), d = b.mean - a.mean;
  return {a.mean + d * static_cast<double>(b.n) / n,
          a.m2 + b.m2 + d * d * static_cast<double>(a.n) * static_cast<double>(b.n) / n,
          a.n + b.n};
}

// var (or std when take_sqrt) with divisor max(0, n - correction); `mean` may be undefined.
void var_kernel(const Tensor& var, const Tensor& mean, const Tensor& in, double correction,
                bool take_sqrt) {
  visit_floating(in.dtype(), "var", [&]<class T>(TypeTag<T>) {
    T* v = var.data<T>();
    T* m = mean.defined() ? mean.data<T>() : nullptr;
    reduce_loop<T>(
        var, in, Moments{},
        [](Moments a, T x, int64_t) {
          const double y = static_cast<double>(static_cast<OpMath<T>>(x));
          a.n += 1;
          const double d = y - a.mean;
          a.mean += d / static_cast<double>(a.n);
          a.m2 += d * (y - a.mean);
          return a;
        },
        merge,
        [=](int64_t i, const Moments& a, int64_t n) {
          const double divisor = std::max(0.0, static_cast<double>(n) - correction);
          const double r = a.m2 / divisor;
          v[i] = static_cast<T>(take_sqrt ? std::sqrt(r) : r);
          if (m) m[i] = static_cast<T>(n == 0 ? std::numeric_limits<double>::quiet_NaN() : a.mean);
        });
  });
}

// Running (max, sum of exp(x - max)) pairs; NaN is sticky.
template <class C>
struct LseAcc {
  C m = -std::numeric_limits<C>::infinity();
  double s = 0;
};

void logsumexp_kernel(const Tensor& out, const Tensor& in) {
  visit_floating(in.dtype(), "logsumexp", [&]<class T>(TypeTag<T>) {
    using C = OpMath<T>;
    using Acc = LseAcc<C>;
    T* o = out.data<T>();
    auto add_one = [](Acc a, C v) {
      if (std::isnan(a.m) || v == -std::numeric_limits<C>::infinity()) return a;
      if (std::isnan(v)) return Acc{v, 1};
      if (v > a.m) {
        a.s = a.s * std::exp(a.m - v) + 1;
        a.m = v;
      } else if (v == a.m) {
        a.s += 1;
      } else {
        a.s += std::exp(v - a.m);
      }
      return a;
    };
    auto combine = [](Acc a, Acc b) {
      if (std::isnan(a.m) || b.s == 0) return a;
      if (std::isnan(b.m) || a.s == 0) return b;
      if (a.m < b.m) std::swap(a, b);
      a.s += a.m == b.m ? b.s : b.s * std::exp(static_cast<double>(b.m - a.m));
      return a;
    };
    reduce_loop<T>(
        out, in, Acc{}, [add_one](Acc a, T v, int64_t) { return add_one(a, static_cast<C>(v)); },
        combine, [o](int64_t i, const Acc& a, int64_t) {
          o[i] = static_cast<T>(a.s == 0 ? static_cast<double>(a.m)
                                         : static_cast<double>(a.m) + std::log(a.s));
        });
  });
}

}  // namespace

KILN_REGISTER_KERNEL(sum, CPU, sum_kernel<false>);
KILN_REGISTER_KERNEL(mean, CPU, sum_kernel<true>);
KILN_REGISTER_KERNEL(nansum, CPU, nansum_kernel);
KILN_REGISTER_KERNEL(prod, CPU, prod_kernel);
KILN_REGISTER_KERNEL(all, CPU, bool_kernel<true>);
KILN_REGISTER_KERNEL(any, CPU, bool_kernel<false>);
KILN_REGISTER_KERNEL(var, CPU, var_kernel);
KILN_REGISTER_KERNEL(logsumexp, CPU, logsumexp_kernel);

}  // namespace kiln::cpu
