// Vector norms (p = 2, 1, +-inf, 0 and any other p) accumulated in double as on
// the CPU (cpu/vector_norm.cpp), and |x|^p, the elementwise piece of their gradients.
#include <cmath>
#include <limits>

#include "kiln/dispatch.h"
#include "reduce.cuh"

namespace kiln::cuda {
namespace {

enum class NormKind { Max, Min, Two, One, Zero, General };

template <class T, NormKind kKind>
struct NormReducer {
  T* out;
  double p;
  __device__ double init() const {
    return kKind == NormKind::Min ? std::numeric_limits<double>::infinity() : 0.0;
  }
  __device__ double pick(double a, double b) const {
    if (a != a || b != b) return std::numeric_limits<double>::quiet_NaN();
    return kKind == NormKind::Max ? fmax(a, b) : fmin(a, b);
  }
  __device__ double reduce(double a, MathT<T> v, int64_t) const {
    const double m = fabs(static_cast<double>(v));
    switch (kKind) {
      case NormKind::Max:
      case NormKind::Min:
        return pick(a, m);
      case NormKind::Two:
        return a + m * m;
      case NormKind::One:
        return a + m;
      case NormKind::Zero:
        return a + (m != 0 ? 1.0 : 0.0);
      default:
        return a + pow(m, p);
    }
  }
  __device__ double combine(double a, double b) const {
    return (kKind == NormKind::Max || kKind == NormKind::Min) ? pick(a, b) : a + b;
  }
  __device__ void store(int64_t o, double a, int64_t) const {
    if (kKind == NormKind::Two)
      a = sqrt(a);
    else if (kKind == NormKind::General)
      a = pow(a, 1.0 / p);
    out[o] = convert<T>(a);
  }
};

template <class C>
struct AbsPow {
  C e;
  __device__ C operator()(C v) const { return pow(fabs(v), e); }
};

}  // namespace

void norm_cuda(const Tensor& out, const Tensor& in, double p) {
  visit_floating(in.dtype(), "norm", [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    T* o = reinterpret_cast<T*>(out.data_ptr());
    if (std::isinf(p)) {
      if (p > 0)
        launch_reduce<T>(out, in, NormReducer<T, NormKind::Max>{o, p}, "norm");
      else
        launch_reduce<T>(out, in, NormReducer<T, NormKind::Min>{o, p}, "norm");
    } else if (p == 2) {
      launch_reduce<T>(out, in, NormReducer<T, NormKind::Two>{o, p}, "norm");
    } else if (p == 1) {
      launch_reduce<T>(out, in, NormReducer<T, NormKind::One>{o, p}, "norm");
    } else if (p == 0) {
      launch_reduce<T>(out, in, NormReducer<T, NormKind::Zero>{o, p}, "norm");
    } else {
      launch_reduce<T>(out, in, NormReducer<T, NormKind::General>{o, p}, "norm");
    }
  });
}

void abs_pow_cuda(const Tensor& out, const Tensor& in, double p) {
  TensorIter iter({out, in});
  visit_floating(in.dtype(), "abs_pow", [&]<class K>(TypeTag<K>) {
    using C = MathT<DeviceT<K>>;
    launch_elementwise<K, K, 1>(iter, out.device(), AbsPow<C>{static_cast<C>(p)}, "abs_pow");
  });
}

KILN_REGISTER_KERNEL(norm, CUDA, norm_cuda);
KILN_REGISTER_KERNEL(_abs_pow, CUDA, abs_pow_cuda);

}  // namespace kiln::cuda
