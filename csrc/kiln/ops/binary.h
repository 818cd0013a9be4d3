#pragma once
// Two-input elementwise ops beyond + - * / (see elementwise.h), with
// broadcasting and PyTorch type promotion. Python numbers come in as wrapped
// scalars (wrapped_scalar). `op_` forms write into self.
#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln {

// Integer forms raise "[op] ZeroDivisionError" for a zero divisor.
KILN_API Tensor floor_divide(const Tensor& a, const Tensor& b);  // rounds toward -inf
KILN_API Tensor& floor_divide_(Tensor& self, const Tensor& other);
KILN_API Tensor trunc_divide(const Tensor& a, const Tensor& b);  // div(rounding_mode="trunc")
KILN_API Tensor remainder(const Tensor& a, const Tensor& b);     // sign of b (Python %)
KILN_API Tensor& remainder_(Tensor& self, const Tensor& other);
KILN_API Tensor fmod(const Tensor& a, const Tensor& b);  // sign of a (C fmod)
KILN_API Tensor& fmod_(Tensor& self, const Tensor& other);
// Integral pow integral stays integral; a negative integral number exponent
// on an integral base is an error, as in PyTorch.
KILN_API Tensor pow(const Tensor& a, const Tensor& b);
KILN_API Tensor& pow_(Tensor& self, const Tensor& other);
KILN_API Tensor rsub(const Tensor& a, const Tensor& b, Scalar alpha = 1);  // b - alpha * a

// maximum/minimum propagate nan; fmax/fmin ignore it.
KILN_API Tensor maximum(const Tensor& a, const Tensor& b);
KILN_API Tensor minimum(const Tensor& a, const Tensor& b);
KILN_API Tensor fmax(const Tensor& a, const Tensor& b);
KILN_API Tensor fmin(const Tensor& a, const Tensor& b);
KILN_API Tensor atan2(const Tensor& a, const Tensor& b);
KILN_API Tensor& atan2_(Tensor& self, const Tensor& other);
KILN_API Tensor hypot(const Tensor& a, const Tensor& b);
KILN_API Tensor& hypot_(Tensor& self, const Tensor& other);

// Logical ops return bool; bitwise ops take bool and integers only.
KILN_API Tensor logical_and(const Tensor& a, const Tensor& b);
KILN_API Tensor logical_or(const Tensor& a, const Tensor& b);
KILN_API Tensor logical_xor(const Tensor& a, const Tensor& b);
KILN_API Tensor& logical_and_(Tensor& self, const Tensor& other);
KILN_API Tensor& logical_or_(Tensor& self, const Tensor& other);
KILN_API Tensor& logical_xor_(Tensor& self, const Tensor& other);
KILN_API Tensor bitwise_and(const Tensor& a, const Tensor& b);
KILN_API Tensor bitwise_or(const Tensor& a, const Tensor& b);
KILN_API Tensor bitwise_xor(const Tensor& a, const Tensor& b);
KILN_API Tensor& bitwise_and_(Tensor& self, const Tensor& other);
KILN_API Tensor& bitwise_or_(Tensor& self, const Tensor& other);
KILN_API Tensor& bitwise_xor_(Tensor& self, const Tensor& other);

}  // namespace kiln
