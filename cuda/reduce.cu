// Reduction kernels (sum, mean, nansum, prod, all, any, var, logsumexp) as
// reducers for the generic launcher of reduce.cuh. Accumulators follow the CPU
// kernels (cpu/reduce.cpp): double for floating dtypes, int64 for integers and bool.
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "kiln/dispatch.h"
#include "reduce.cuh"

namespace kiln::cuda {

int sm_count(Device device) {
  static std::mutex mu;
  static std::vector<int> counts;
  std::lock_guard<std::mutex> lock(mu);
  const size_t i = static_cast<size_t>(device.index);
  if (i >= counts.size()) counts.resize(i + 1, 0);
  if (counts[i] == 0) {
    int n = 0;
    check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, static_cast<int>(i)),
          "reduce");
    counts[i] = n > 0 ? n : 1;
  }
  return counts[i];
}

namespace {

// The accumulator of sums and products of T (a device type).
template <class T>
using SumAcc = std::conditional_t<std::is_integral_v<T>, int64_t, double>;

template <class T, bool kMean>
struct SumReducer {
  using Acc = SumAcc<T>;
  T* out;
  __device__ Acc init() const { return Acc(0); }
  __device__ Acc reduce(Acc a, MathT<T> v, int64_t) const { return a + static_cast<Acc>(v); }
  __device__ Acc combine(Acc a, Acc b) const { return a + b; }
  __device__ void store(int64_t o, Acc a, int64_t n) const {
    if constexpr (kMean)
      out[o] = convert<T>(static_cast<double>(a) / static_cast<double>(n));
    else
      out[o] = convert<T>(a);
  }
};

template <class T>
struct NansumReducer {
  T* out;
  __device__ double init() const { return 0.0; }
  __device__ double reduce(double a, MathT<T> v, int64_t) const {
    return v != v ? a : a + static_cast<double>(v);
  }
  __device__ double combine(double a, double b) const { return a + b; }
  __device__ void store(int64_t o, double a, int64_t) const { out[o] = convert<T>(a); }
};

template <class T>
struct ProdReducer {
  using Acc = SumAcc<T>;
  T* out;
  __device__ Acc init() const { return Acc(1); }
  __device__ Acc reduce(Acc a, MathT<T> v, int64_t) const { return a * static_cast<Acc>(v); }
  __device__ Acc combine(Acc a, Acc b) const { return a * b; }
  __device__ void store(int64_t o, Acc a, int64_t) const { out[o] = convert<T>(a); }
};

template <bool kAll>
struct BoolReducer {
  bool* out;
  __device__ int init() const { return kAll ? 1 : 0; }
  __device__ int reduce(int a, bool v, int64_t) const { return kAll ? (a && v) : (a || v); }
  __device__ int combine(int a, int b) const { return kAll ? (a && b) : (a || b); }
  __device__ void store(int64_t o, int a, int64_t) const { out[o] = a != 0; }
};

// Welford's running mean and sum of squared deviations; Chan's formula merges two.
// (No default member initializers: accumulators live in shared memory.)
struct Moments {
  double mean, m2;
  int64_t n;
};

template <class T>
struct VarReducer {
  T* var;
  T* mean;  // may be null
  double correction;
  bool take_sqrt;
  __device__ Moments init() const { return {0.0, 0.0, 0}; }
  __device__ Moments reduce(Moments a, MathT<T> x, int64_t) const {
    const double y = static_cast<double>(x);
    a.n += 1;
    const double d = y - a.mean;
    a.mean += d / static_cast<double>(a.n);
    a.m2 += d * (y - a.mean);
    return a;
  }
  __device__ Moments combine(const Moments& a, const Moments& b) const {
    if (a.n == 0) return b;
    if (b.n == 0) return a;
    const double n = static_cast<double>(a.n + b.n), d = b.mean - a.mean;
    return {a.mean + d * static_cast<double>(b.n) / n,
            a.m2 + b.m2 + d * d * static_cast<double>(a.n) * static_cast<double>(b.n) / n,
            a.n + b.n};
  }
  __device__ void store(int64_t o, const Moments& a, int64_t n) const {
    const double divisor = fmax(0.0, static_cast<double>(n) - correction);
    const double r = a.m2 / divisor;
    var[o] = convert<T>(take_sqrt ? sqrt(r) : r);
    if (mean) mean[o] = convert<T>(n == 0 ? std::numeric_limits<double>::quiet_NaN() : a.mean);
  }
};

// Running (max, sum of exp(x - max)) pairs; NaN is sticky.
template <class C>
struct LseAcc {
  C m;
  double s;
};

template <class T>
struct LogsumexpReducer {
  using C = MathT<T>;
  using Acc = LseAcc<C>;
  T* out;
  __device__ Acc init() const { return {-std::numeric_limits<C>::infinity(), 0.0}; }
  __device__ Acc reduce(Acc a, C v, int64_t) const {
    if (a.m != a.m || v == -std::numeric_limits<C>::infinity()) return a;
    if (v != v) return {v, 1.0};
    if (v > a.m) {
      a.s = a.s * exp(static_cast<double>(a.m - v)) + 1;
      a.m = v;
    } else if (v == a.m) {
      a.s += 1;
    } else {
      a.s += exp(static_cast<double>(v - a.m));
    }
    return a;
  }
  __device__ Acc combine(Acc a, Acc b) const {
    if (a.m != a.m || b.s == 0) return a;
    if (b.m != b.m || a.s == 0) return b;
    if (a.m < b.m) {
      const Acc t = a;
      a = b;
      b = t;
    }
    a.s += a.m == b.m ? b.s : b.s * exp(static_cast<double>(b.m - a.m));
    return a;
  }
  __device__ void store(int64_t o, const Acc& a, int64_t) const {
    out[o] = convert<T>(a.s == 0 ? static_cast<double>(a.m) : static_cast<double>(a.m) + log(a.s));
  }
};

template <class K>
using Dev = DeviceT<K>;

template <class K>
Dev<K>* ptr(const Tensor& t) {
  return t.defined() ? reinterpret_cast<Dev<K>*>(t.data_ptr()) : nullptr;
}

}  // namespace

template <bool kMean>
void sum_cuda(const Tensor& out, const Tensor& in) {
  visit_dtype(in.dtype(), [&]<class K>(TypeTag<K>) {
    launch_reduce<Dev<K>>(out, in, SumReducer<Dev<K>, kMean>{ptr<K>(out)}, kMean ? "mean" : "sum");
  });
}

void nansum_cuda(const Tensor& out, const Tensor& in) {
  visit_floating(in.dtype(), "nansum", [&]<class K>(TypeTag<K>) {
    launch_reduce<Dev<K>>(out, in, NansumReducer<Dev<K>>{ptr<K>(out)}, "nansum");
  });
}

void prod_cuda(const Tensor& out, const Tensor& in) {
  visit_dtype(in.dtype(), [&]<class K>(TypeTag<K>) {
    launch_reduce<Dev<K>>(out, in, ProdReducer<Dev<K>>{ptr<K>(out)}, "prod");
  });
}

// The front end hands all/any a bool input.
template <bool kAll>
void bool_cuda(const Tensor& out, const Tensor& in) {
  KILN_CHECK(in.dtype() == ScalarType::Bool, TypeError, "[", kAll ? "all" : "any",
             "] expected a bool input, got ", dtype_name(in.dtype()));
  launch_reduce<bool>(out, in, BoolReducer<kAll>{out.data<bool>()}, kAll ? "all" : "any");
}

void var_cuda(const Tensor& var, const Tensor& mean, const Tensor& in, double correction,
              bool take_sqrt) {
  visit_floating(in.dtype(), "var", [&]<class K>(TypeTag<K>) {
    launch_reduce<Dev<K>>(
        var, in, VarReducer<Dev<K>>{ptr<K>(var), ptr<K>(mean), correction, take_sqrt}, "var");
  });
}

void logsumexp_cuda(const Tensor& out, const Tensor& in) {
  visit_floating(in.dtype(), "logsumexp", [&]<class K>(TypeTag<K>) {
    launch_reduce<Dev<K>>(out, in, LogsumexpReducer<Dev<K>>{ptr<K>(out)}, "logsumexp");
  });
}

KILN_REGISTER_KERNEL(sum, CUDA, sum_cuda<false>);
KILN_REGISTER_KERNEL(mean, CUDA, sum_cuda<true>);
KILN_REGISTER_KERNEL(nansum, CUDA, nansum_cuda);
KILN_REGISTER_KERNEL(prod, CUDA, prod_cuda);
KILN_REGISTER_KERNEL(all, CUDA, bool_cuda<true>);
KILN_REGISTER_KERNEL(any, CUDA, bool_cuda<false>);
KILN_REGISTER_KERNEL(var, CUDA, var_cuda);
KILN_REGISTER_KERNEL(logsumexp, CUDA, logsumexp_cuda);

}  // namespace kiln::cuda
