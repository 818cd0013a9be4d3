// Unary math kernels: the CPU functors (kiln/functors.h) through the generic
// launcher. Float-only ops are instantiated for floating dtypes only (the
// front end promotes integers to float first), as on the CPU.
#include "kiln/dispatch.h"
#include "kiln/functors.h"
#include "loops.cuh"

namespace kiln::cuda {
namespace {

template <bool kPredicate, class F>
void unary_any_dtype(const Tensor& out, const Tensor& in, const F& f, const char* op) {
  TensorIter iter({out, in});
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    launch_elementwise<std::conditional_t<kPredicate, bool, T>, T, 1>(iter, out.device(), f, op);
  });
}
template <class F>
void unary_all(const Tensor& out, const Tensor& in, const F& f, const char* op) {
  unary_any_dtype<false>(out, in, f, op);
}
template <class F>  // bool results
void unary_predicate(const Tensor& out, const Tensor& in, const F& f, const char* op) {
  unary_any_dtype<true>(out, in, f, op);
}

template <class F>
void unary_floating(const Tensor& out, const Tensor& in, const F& f, const char* op) {
  TensorIter iter({out, in});
  visit_floating(in.dtype(), op, [&]<class T>(TypeTag<T>) {
    launch_elementwise<T, T, 1>(iter, out.device(), f, op);
  });
}

template <class F>
void unary_integral(const Tensor& out, const Tensor& in, const F& f, const char* op) {
  TensorIter iter({out, in});
  visit_dtype(in.dtype(), [&]<class T>(TypeTag<T>) {
    if constexpr (std::is_integral_v<T>)
      launch_elementwise<T, T, 1>(iter, out.device(), f, op);
    else
      throw TypeError(detail::concat("[", op, "] expected an integral or bool tensor"));
  });
}

}  // namespace

void softplus_cuda(const Tensor& out, const Tensor& in, double beta, double threshold) {
  unary_floating(out, in, fn::Softplus{beta, threshold}, "softplus");
}

#define KILN_CUDA_UNARY(op, F, how)                                        \
  void op##_cuda(const Tensor& out, const Tensor& in) { how(out, in, F{}, #op); } \
  KILN_REGISTER_KERNEL(op, CUDA, op##_cuda);

// All dtypes.
KILN_CUDA_UNARY(neg, fn::Neg, unary_all)
KILN_CUDA_UNARY(abs, fn::Abs, unary_all)
KILN_CUDA_UNARY(sign, fn::Sign, unary_all)
KILN_CUDA_UNARY(square, fn::Square, unary_all)
KILN_CUDA_UNARY(relu, fn::Relu, unary_all)
KILN_CUDA_UNARY(bitwise_not, fn::BitwiseNot, unary_integral)
KILN_CUDA_UNARY(logical_not, fn::LogicalNot, unary_predicate)
KILN_CUDA_UNARY(isfinite, fn::IsFinite, unary_predicate)
KILN_CUDA_UNARY(isnan, fn::IsNan, unary_predicate)
KILN_CUDA_UNARY(isinf, fn::IsInf, unary_predicate)
KILN_CUDA_UNARY(isposinf, fn::IsPosInf, unary_predicate)
KILN_CUDA_UNARY(isneginf, fn::IsNegInf, unary_predicate)

// Floating dtypes only.
KILN_CUDA_UNARY(exp, fn::Exp, unary_floating)
KILN_CUDA_UNARY(exp2, fn::Exp2, unary_floating)
KILN_CUDA_UNARY(log, fn::Log, unary_floating)
KILN_CUDA_UNARY(log2, fn::Log2, unary_floating)
KILN_CUDA_UNARY(log10, fn::Log10, unary_floating)
KILN_CUDA_UNARY(log1p, fn::Log1p, unary_floating)
KILN_CUDA_UNARY(expm1, fn::Expm1, unary_floating)
KILN_CUDA_UNARY(sqrt, fn::Sqrt, unary_floating)
KILN_CUDA_UNARY(rsqrt, fn::Rsqrt, unary_floating)
KILN_CUDA_UNARY(reciprocal, fn::Reciprocal, unary_floating)
KILN_CUDA_UNARY(sin, fn::Sin, unary_floating)
KILN_CUDA_UNARY(cos, fn::Cos, unary_floating)
KILN_CUDA_UNARY(tan, fn::Tan, unary_floating)
KILN_CUDA_UNARY(asin, fn::Asin, unary_floating)
KILN_CUDA_UNARY(acos, fn::Acos, unary_floating)
KILN_CUDA_UNARY(atan, fn::Atan, unary_floating)
KILN_CUDA_UNARY(sinh, fn::Sinh, unary_floating)
KILN_CUDA_UNARY(cosh, fn::Cosh, unary_floating)
KILN_CUDA_UNARY(tanh, fn::Tanh, unary_floating)
KILN_CUDA_UNARY(sigmoid, fn::Sigmoid, unary_floating)
KILN_CUDA_UNARY(silu, fn::Silu, unary_floating)
KILN_CUDA_UNARY(gelu, fn::Gelu, unary_floating)
KILN_CUDA_UNARY(gelu_tanh, fn::GeluTanh, unary_floating)
KILN_CUDA_UNARY(erf, fn::Erf, unary_floating)
KILN_CUDA_UNARY(erfc, fn::Erfc, unary_floating)
KILN_CUDA_UNARY(floor, fn::Floor, unary_floating)
KILN_CUDA_UNARY(ceil, fn::Ceil, unary_floating)
KILN_CUDA_UNARY(round, fn::Round, unary_floating)
KILN_CUDA_UNARY(trunc, fn::Trunc, unary_floating)
KILN_CUDA_UNARY(frac, fn::Frac, unary_floating)
KILN_REGISTER_KERNEL(softplus, CUDA, softplus_cuda);

}  // namespace kiln::cuda
