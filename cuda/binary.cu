// Binary arithmetic, comparison, logical and bitwise kernels: the CPU
// functors (kiln/functors.h) run through the generic launcher.
#include "kiln/dispatch.h"
#include "kiln/functors.h"
#include "loops.cuh"

namespace kiln::cuda {
namespace {

enum class Types { All, Floating, Integral };

template <class F, bool kPredicate, Types kTypes>
void binary_apply(const Tensor& out, const Tensor& a, const Tensor& b, const char* op) {
  TensorIter iter({out, a, b});
  visit_dtype(a.dtype(), [&]<class T>(TypeTag<T>) {
    constexpr bool floating = !std::is_integral_v<T>;  // Half and BFloat16 are not integral
    if constexpr ((kTypes == Types::Floating && !floating) ||
                  (kTypes == Types::Integral && floating)) {
      throw TypeError(detail::concat("[", op, "] unsupported dtype ", dtype_name(a.dtype())));
    } else {
      launch_elementwise<std::conditional_t<kPredicate, bool, T>, T, 2>(iter, out.device(), F{},
                                                                         op);
    }
  });
}

}  // namespace

#define KILN_CUDA_BINARY(op, F, predicate, types)                                   \
  void op##_cuda(const Tensor& out, const Tensor& a, const Tensor& b) {               \
    binary_apply<F, predicate, Types::types>(out, a, b, #op);                        \
  }                                                                                  \
  KILN_REGISTER_KERNEL(op, CUDA, op##_cuda);

KILN_CUDA_BINARY(add, fn::Add, false, All)
KILN_CUDA_BINARY(sub, fn::Sub, false, All)
KILN_CUDA_BINARY(mul, fn::Mul, false, All)
KILN_CUDA_BINARY(div, fn::Div, false, Floating)
KILN_CUDA_BINARY(floor_divide, fn::FloorDivide, false, All)
KILN_CUDA_BINARY(remainder, fn::Remainder, false, All)
KILN_CUDA_BINARY(fmod, fn::Fmod, false, All)
KILN_CUDA_BINARY(pow, fn::Pow, false, All)
KILN_CUDA_BINARY(maximum, fn::Maximum, false, All)
KILN_CUDA_BINARY(minimum, fn::Minimum, false, All)
KILN_CUDA_BINARY(fmax, fn::Fmax, false, All)
KILN_CUDA_BINARY(fmin, fn::Fmin, false, All)
KILN_CUDA_BINARY(atan2, fn::Atan2, false, Floating)
KILN_CUDA_BINARY(hypot, fn::Hypot, false, Floating)
KILN_CUDA_BINARY(eq, fn::Eq, true, All)
KILN_CUDA_BINARY(ne, fn::Ne, true, All)
KILN_CUDA_BINARY(lt, fn::Lt, true, All)
KILN_CUDA_BINARY(le, fn::Le, true, All)
KILN_CUDA_BINARY(gt, fn::Gt, true, All)
KILN_CUDA_BINARY(ge, fn::Ge, true, All)
KILN_CUDA_BINARY(logical_and, fn::LogicalAnd, true, All)
KILN_CUDA_BINARY(logical_or, fn::LogicalOr, true, All)
KILN_CUDA_BINARY(logical_xor, fn::LogicalXor, true, All)
KILN_CUDA_BINARY(bitwise_and, fn::BitwiseAnd, false, Integral)
KILN_CUDA_BINARY(bitwise_or, fn::BitwiseOr, false, Integral)
KILN_CUDA_BINARY(bitwise_xor, fn::BitwiseXor, false, Integral)
KILN_CUDA_BINARY(relu_backward, fn::ReluBackward, false, All)

}  // namespace kiln::cuda
