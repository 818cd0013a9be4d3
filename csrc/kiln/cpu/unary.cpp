// Unary math kernels. Float-only ops use unary_float_kernel so they are not
// instantiated for integer dtypes (the front end promotes those to float).
#include "kiln/cpu/loops.h"
#include "kiln/dispatch.h"
#include "kiln/functors.h"

namespace kiln::cpu {
namespace {
void softplus_kernel(const Tensor& out, const Tensor& in, double beta, double threshold) {
  unary_float_apply(out, in, fn::Softplus{beta, threshold});
}
}  // namespace

// All dtypes.
KILN_REGISTER_KERNEL(neg, CPU, (unary_kernel<fn::Neg>));
KILN_REGISTER_KERNEL(abs, CPU, (unary_kernel<fn::Abs>));
KILN_REGISTER_KERNEL(sign, CPU, (unary_kernel<fn::Sign>));
KILN_REGISTER_KERNEL(square, CPU, (unary_kernel<fn::Square>));
KILN_REGISTER_KERNEL(relu, CPU, (unary_kernel<fn::Relu>));
KILN_REGISTER_KERNEL(bitwise_not, CPU, (unary_int_kernel<fn::BitwiseNot>));
KILN_REGISTER_KERNEL(logical_not, CPU, (unary_kernel<fn::LogicalNot, true>));
KILN_REGISTER_KERNEL(isfinite, CPU, (unary_kernel<fn::IsFinite, true>));
KILN_REGISTER_KERNEL(isnan, CPU, (unary_kernel<fn::IsNan, true>));
KILN_REGISTER_KERNEL(isinf, CPU, (unary_kernel<fn::IsInf, true>));
KILN_REGISTER_KERNEL(isposinf, CPU, (unary_kernel<fn::IsPosInf, true>));
KILN_REGISTER_KERNEL(isneginf, CPU, (unary_kernel<fn::IsNegInf, true>));

// Floating types only.
KILN_REGISTER_KERNEL(exp, CPU, (unary_float_kernel<fn::Exp>));
KILN_REGISTER_KERNEL(exp2, CPU, (unary_float_kernel<fn::Exp2>));
KILN_REGISTER_KERNEL(log, CPU, (unary_float_kernel<fn::Log>));
KILN_REGISTER_KERNEL(log2, CPU, (unary_float_kernel<fn::Log2>));
KILN_REGISTER_KERNEL(log10, CPU, (unary_float_kernel<fn::Log10>));
KILN_REGISTER_KERNEL(log1p, CPU, (unary_float_kernel<fn::Log1p>));
KILN_REGISTER_KERNEL(expm1, CPU, (unary_float_kernel<fn::Expm1>));
KILN_REGISTER_KERNEL(sqrt, CPU, (unary_float_kernel<fn::Sqrt>));
KILN_REGISTER_KERNEL(rsqrt, CPU, (unary_float_kernel<fn::Rsqrt>));
KILN_REGISTER_KERNEL(reciprocal, CPU, (unary_float_kernel<fn::Reciprocal>));
KILN_REGISTER_KERNEL(sin, CPU, (unary_float_kernel<fn::Sin>));
KILN_REGISTER_KERNEL(cos, CPU, (unary_float_kernel<fn::Cos>));
KILN_REGISTER_KERNEL(tan, CPU, (unary_float_kernel<fn::Tan>));
KILN_REGISTER_KERNEL(asin, CPU, (unary_float_kernel<fn::Asin>));
KILN_REGISTER_KERNEL(acos, CPU, (unary_float_kernel<fn::Acos>));
KILN_REGISTER_KERNEL(atan, CPU, (unary_float_kernel<fn::Atan>));
KILN_REGISTER_KERNEL(sinh, CPU, (unary_float_kernel<fn::Sinh>));
KILN_REGISTER_KERNEL(cosh, CPU, (unary_float_kernel<fn::Cosh>));
KILN_REGISTER_KERNEL(tanh, CPU, (unary_float_kernel<fn::Tanh>));
KILN_REGISTER_KERNEL(sigmoid, CPU, (unary_float_kernel<fn::Sigmoid>));
KILN_REGISTER_KERNEL(silu, CPU, (unary_float_kernel<fn::Silu>));
KILN_REGISTER_KERNEL(gelu, CPU, (unary_float_kernel<fn::Gelu>));
KILN_REGISTER_KERNEL(gelu_tanh, CPU, (unary_float_kernel<fn::GeluTanh>));
KILN_REGISTER_KERNEL(erf, CPU, (unary_float_kernel<fn::Erf>));
KILN_REGISTER_KERNEL(erfc, CPU, (unary_float_kernel<fn::Erfc>));
KILN_REGISTER_KERNEL(floor, CPU, (unary_float_kernel<fn::Floor>));
KILN_REGISTER_KERNEL(ceil, CPU, (unary_float_kernel<fn::Ceil>));
KILN_REGISTER_KERNEL(round, CPU, (unary_float_kernel<fn::Round>));
KILN_REGISTER_KERNEL(trunc, CPU, (unary_float_kernel<fn::Trunc>));
KILN_REGISTER_KERNEL(frac, CPU, (unary_float_kernel<fn::Frac>));
KILN_REGISTER_KERNEL(softplus, CPU, softplus_kernel);

}  // namespace kiln::cpu
