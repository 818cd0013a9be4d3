// arange and linspace: out[i] is a function of i alone, computed in the same
// types and with the same roundings as the CPU kernels (cpu/range.cpp; no
// fused multiply-adds), so both devices give identical values.
#include "index_common.cuh"
#include "kiln/dispatch.h"
#include "kiln/scalar.h"

namespace kiln::cuda {
namespace {

template <class Out, class F>
__global__ void fill_indexed_kernel(Out* out, int64_t n, F f) {
  const int64_t i = thread_index();
  if (i < n) out[i] = f(i);
}

template <class T, class F>
void fill_indexed(const Tensor& out, const F& f, const char* op) {
  KILN_CHECK(out.is_contiguous(), Error, "[", op, "] the CUDA kernel expects a contiguous output");
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(out.device());
  fill_indexed_kernel<<<blocks_for(n, op), kBlock, 0, current_stream(out.device())>>>(
      reinterpret_cast<DeviceT<T>*>(out.data_ptr()), n, f);
  check_launch(op);
}

template <class T>
struct ArangeInt {
  int64_t start, step;
  __device__ T operator()(int64_t i) const { return static_cast<T>(start + step * i); }
};

// Acc: double for float32/float64, float for the 16-bit floats (PyTorch's CPU types).
template <class T, class Acc>
struct ArangeFloat {
  Acc start, step;
  __device__ T operator()(int64_t i) const {
    return convert<T>(add_rn(start, mul_rn(step, static_cast<Acc>(i))));
  }
};

}  // namespace

void arange_cuda(const Tensor& out, Scalar start, Scalar step) {
  visit_dtype(out.dtype(), [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    if constexpr (std::is_integral_v<K>) {
      fill_indexed<K>(out, ArangeInt<T>{start.to_int(), step.to_int()}, "arange");
    } else {
      using Acc = std::conditional_t<sizeof(K) == 2, float, double>;
      fill_indexed<K>(out,
                      ArangeFloat<T, Acc>{static_cast<Acc>(start.to_double()),
                                          static_cast<Acc>(step.to_double())},
                      "arange");
    }
  });
}

namespace {

// The first half counts up from start, the second down from end.
template <class T, class Step>
struct Linspace {
  Step start, end, step;
  int64_t steps;
  __device__ T operator()(int64_t i) const {
    const int64_t halfway = steps / 2;
    const Step v = steps == 1   ? start
                   : i < halfway ? add_rn(start, mul_rn(step, static_cast<Step>(i)))
                                 : sub_rn(end, mul_rn(step, static_cast<Step>(steps - i - 1)));
    if constexpr (std::is_same_v<T, bool>) return v != 0;
    else if constexpr (std::is_integral_v<T>) return static_cast<T>(v);
    else return convert<T>(v);
  }
};

}  // namespace

void linspace_cuda(const Tensor& out, Scalar start, Scalar end) {
  const int64_t steps = out.numel();
  visit_dtype(out.dtype(), [&]<class K>(TypeTag<K>) {
    using Step = std::conditional_t<std::is_integral_v<K>, double, OpMath<K>>;
    // Integral outputs convert the endpoints to K first, as on the CPU.
    auto endpoint = [](Scalar v) {
      return std::is_integral_v<K> ? static_cast<Step>(v.to<K>())
                                   : static_cast<Step>(v.to_double());
    };
    const Step s = endpoint(start), e = endpoint(end);
    const Step step = steps > 1 ? (e - s) / static_cast<Step>(steps - 1) : Step(0);
    fill_indexed<K>(out, Linspace<DeviceT<K>, Step>{s, e, step, steps}, "linspace");
  });
}

KILN_REGISTER_KERNEL(arange, CUDA, arange_cuda);
KILN_REGISTER_KERNEL(linspace, CUDA, linspace_cuda);

}  // namespace kiln::cuda
