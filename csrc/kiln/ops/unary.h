#pragma once
// One-input math ops. Float-only ops promote integral/bool inputs to the
// default float dtype, as PyTorch does. `op_` forms work in place.
#include "kiln/tensor.h"

namespace kiln {

KILN_API Tensor abs(const Tensor& a);
KILN_API Tensor& abs_(Tensor& self);
KILN_API Tensor sign(const Tensor& a);
KILN_API Tensor& sign_(Tensor& self);
KILN_API Tensor square(const Tensor& a);
KILN_API Tensor& square_(Tensor& self);
KILN_API Tensor& neg_(Tensor& self);
KILN_API Tensor exp(const Tensor& a);
KILN_API Tensor& exp_(Tensor& self);
KILN_API Tensor exp2(const Tensor& a);
KILN_API Tensor& exp2_(Tensor& self);
KILN_API Tensor log(const Tensor& a);
KILN_API Tensor& log_(Tensor& self);
KILN_API Tensor log2(const Tensor& a);
KILN_API Tensor& log2_(Tensor& self);
KILN_API Tensor log10(const Tensor& a);
KILN_API Tensor& log10_(Tensor& self);
KILN_API Tensor log1p(const Tensor& a);
KILN_API Tensor& log1p_(Tensor& self);
KILN_API Tensor expm1(const Tensor& a);
KILN_API Tensor& expm1_(Tensor& self);
KILN_API Tensor sqrt(const Tensor& a);
KILN_API Tensor& sqrt_(Tensor& self);
KILN_API Tensor rsqrt(const Tensor& a);
KILN_API Tensor& rsqrt_(Tensor& self);
KILN_API Tensor reciprocal(const Tensor& a);
KILN_API Tensor& reciprocal_(Tensor& self);
KILN_API Tensor sin(const Tensor& a);
KILN_API Tensor& sin_(Tensor& self);
KILN_API Tensor cos(const Tensor& a);
KILN_API Tensor& cos_(Tensor& self);
KILN_API Tensor tan(const Tensor& a);
KILN_API Tensor& tan_(Tensor& self);
KILN_API Tensor asin(const Tensor& a);
KILN_API Tensor& asin_(Tensor& self);
KILN_API Tensor acos(const Tensor& a);
KILN_API Tensor& acos_(Tensor& self);
KILN_API Tensor atan(const Tensor& a);
KILN_API Tensor& atan_(Tensor& self);
KILN_API Tensor sinh(const Tensor& a);
KILN_API Tensor& sinh_(Tensor& self);
KILN_API Tensor cosh(const Tensor& a);
KILN_API Tensor& cosh_(Tensor& self);
KILN_API Tensor tanh(const Tensor& a);
KILN_API Tensor& tanh_(Tensor& self);
KILN_API Tensor erf(const Tensor& a);
KILN_API Tensor& erf_(Tensor& self);
KILN_API Tensor erfc(const Tensor& a);
KILN_API Tensor& erfc_(Tensor& self);

// Rounding: integral inputs come back unchanged (as a copy). round() rounds
// half to even; with decimals != 0 it rounds x * 10^decimals.
KILN_API Tensor floor(const Tensor& a);
KILN_API Tensor& floor_(Tensor& self);
KILN_API Tensor ceil(const Tensor& a);
KILN_API Tensor& ceil_(Tensor& self);
KILN_API Tensor round(const Tensor& a, int64_t decimals = 0);
KILN_API Tensor& round_(Tensor& self, int64_t decimals = 0);
KILN_API Tensor trunc(const Tensor& a);
KILN_API Tensor& trunc_(Tensor& self);
KILN_API Tensor frac(const Tensor& a);  // floating inputs only
KILN_API Tensor& frac_(Tensor& self);

// Predicates (bool results).
KILN_API Tensor isfinite(const Tensor& a);
KILN_API Tensor isnan(const Tensor& a);
KILN_API Tensor isinf(const Tensor& a);
KILN_API Tensor isposinf(const Tensor& a);
KILN_API Tensor isneginf(const Tensor& a);
KILN_API Tensor logical_not(const Tensor& a);
KILN_API Tensor& logical_not_(Tensor& self);
KILN_API Tensor bitwise_not(const Tensor& a);  // bool and integers; ~ on bool is logical not
KILN_API Tensor& bitwise_not_(Tensor& self);

}  // namespace kiln
