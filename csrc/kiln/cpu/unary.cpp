// Unary math kernels. Float-only ops use unary_float_kernel so they are not
// instantiated for integer dtypes (the front end promotes those to float).
#include "kiln/cpu/loops.h"
#include "kiln/cpu/vec_math.h"
#include "kiln/dispatch.h"
#include "kiln/functors.h"
#include "kiln/parallel.h"

namespace kiln::cpu {
namespace {
void softplus_kernel(const Tensor& out, const Tensor& in, double beta, double threshold) {
  unary_float_apply(out, in, fn::Softplus{beta, threshold});
}

// Transcendentals with vec_math.h's branch-free float versions (libm for double),
// which vectorize where glibc's scalar calls do not.
#define KILN_VEC_FUNCTOR(Name, expr)            \
  struct Name {                                 \
    template <class T>                          \
    T operator()(T a) const { return expr; }    \
  };
KILN_VEC_FUNCTOR(VecExp, vexp(a))
KILN_VEC_FUNCTOR(VecLog, vlog(a))
KILN_VEC_FUNCTOR(VecTanh, vtanh(a))
KILN_VEC_FUNCTOR(VecSigmoid, vsigmoid(a))
KILN_VEC_FUNCTOR(VecErf, verf(a))
KILN_VEC_FUNCTOR(VecGelu, vgelu(a))
#undef KILN_VEC_FUNCTOR
struct VecSilu {
  template <class T>
  T operator()(T a) const {
    if constexpr (std::is_same_v<T, float>) return a * vsigmoid(a);
    else return a / (T(1) + std::exp(-a));
  }
};
// float: 1 + tanh(u) = 2 sigmoid(2u), which keeps precision where tanh(u) ~ -1.
struct VecGeluTanh {
  template <class T>
  T operator()(T a) const {
    const T u = T(0.79788456080286535588) * (a + T(0.044715) * a * a * a);
    if constexpr (std::is_same_v<T, float>) return a * vsigmoid(u + u);
    else return T(0.5) * a * (T(1) + std::tanh(u));
  }
};

template <class Op>
KILN_TARGET_CLONES void map_f32(const float* in, float* out, int64_t n) {
  const Op op;
  for (int64_t i = 0; i < n; ++i) out[i] = op(in[i]);
}

// Contiguous float32 runs the cloned loop in parallel chunks; the rest takes the
// generic strided path.
template <class Op>
void vec_unary_kernel(const Tensor& out, const Tensor& in) {
  if (in.dtype() == ScalarType::Float32 && in.is_contiguous() && out.is_contiguous() &&
      out.sizes() == in.sizes()) {
    const float* a = in.data<float>();
    float* o = out.data<float>();
    parallel_for(0, in.numel(), kParallelGrain,
                 [&](int64_t b, int64_t e) { map_f32<Op>(a + b, o + b, e - b); });
    return;
  }
  unary_float_kernel<Op>(out, in);
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
KILN_REGISTER_KERNEL(exp, CPU, vec_unary_kernel<VecExp>);
KILN_REGISTER_KERNEL(exp2, CPU, (unary_float_kernel<fn::Exp2>));
KILN_REGISTER_KERNEL(log, CPU, vec_unary_kernel<VecLog>);
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
KILN_REGISTER_KERNEL(tanh, CPU, vec_unary_kernel<VecTanh>);
KILN_REGISTER_KERNEL(sigmoid, CPU, vec_unary_kernel<VecSigmoid>);
KILN_REGISTER_KERNEL(silu, CPU, vec_unary_kernel<VecSilu>);
KILN_REGISTER_KERNEL(gelu, CPU, vec_unary_kernel<VecGelu>);
KILN_REGISTER_KERNEL(gelu_tanh, CPU, vec_unary_kernel<VecGeluTanh>);
KILN_REGISTER_KERNEL(erf, CPU, vec_unary_kernel<VecErf>);
KILN_REGISTER_KERNEL(erfc, CPU, (unary_float_kernel<fn::Erfc>));
KILN_REGISTER_KERNEL(floor, CPU, (unary_float_kernel<fn::Floor>));
KILN_REGISTER_KERNEL(ceil, CPU, (unary_float_kernel<fn::Ceil>));
KILN_REGISTER_KERNEL(round, CPU, (unary_float_kernel<fn::Round>));
KILN_REGISTER_KERNEL(trunc, CPU, (unary_float_kernel<fn::Trunc>));
KILN_REGISTER_KERNEL(frac, CPU, (unary_float_kernel<fn::Frac>));
KILN_REGISTER_KERNEL(softplus, CPU, softplus_kernel);

}  // namespace kiln::cpu
