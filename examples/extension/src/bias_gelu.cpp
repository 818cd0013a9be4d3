// The CPU kernel, the backward formula and the op's registration.
#include "bias_gelu.h"

using kiln::Tensor;

void check_bias_gelu(const Tensor& x, const Tensor& bias) {
  KILN_CHECK(x.dim() >= 1 && bias.dim() == 1 && bias.size(0) == x.size(-1), ValueError,
             "[kiln_fused::bias_gelu] expected a 1-d bias matching the last dim of x, got x of "
             "shape ", x.sizes(), " and bias of shape ", bias.sizes());
  KILN_CHECK(x.dtype() == bias.dtype() && (x.dtype() == kiln::ScalarType::Float32 ||
                                           x.dtype() == kiln::ScalarType::Float64),
             TypeError, "[kiln_fused::bias_gelu] expected float32 or float64 tensors of "
             "one dtype, got ", x.dtype(), " and ", bias.dtype());
}

Tensor bias_gelu_cpu(const Tensor& x, const Tensor& bias) {
  check_bias_gelu(x, bias);
  Tensor xc = kiln::contiguous(x), bc = kiln::contiguous(bias);
  Tensor out = kiln::empty(x.sizes(), x.dtype());
  const int64_t n = bias.numel();
  kiln::visit_dtype(x.dtype(), [&]<class T>(kiln::TypeTag<T>) {
    if constexpr (std::is_floating_point_v<T>) {
      const T *px = xc.data<T>(), *pb = bc.data<T>();
      T* po = out.data<T>();
      kiln::parallel_for(0, xc.numel(), kiln::kParallelGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const T u = px[i] + pb[i % n];
          po[i] = T(0.5) * u * (1 + std::tanh(T(kSqrt2OverPi) * (u + T(kGeluCoeff) * u * u * u)));
        }
      });
    }
  });
  return out;
}

// d gelu(u) / du, written with kiln ops: runs on any device and is itself differentiable.
Tensor gelu_grad(const Tensor& u) {
  Tensor t = kiln::tanh((u + u * u * u * kGeluCoeff) * kSqrt2OverPi);
  return (t + 1) * 0.5 + u * (1 - t * t) * (0.5 * kSqrt2OverPi) * (u * u * (3 * kGeluCoeff) + 1);
}

KILN_LIBRARY(kiln_fused, m) {
  auto op = m.def("bias_gelu", bias_gelu_cpu);
#ifdef KILN_WITH_CUDA
  op.cuda(bias_gelu_cuda);
#endif
  op.backward([](const kiln::BackwardContext& c) -> kiln::TensorList {
    Tensor g = c.grad() * gelu_grad(c.input(0) + c.input(1));
    return {g, g};  // bias's gradient is summed over the broadcast dims by the engine
  });
}
