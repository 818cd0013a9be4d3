#pragma once
#include <functional>

#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln {

// Binary arithmetic with broadcasting and PyTorch type promotion.
KILN_API Tensor add(const Tensor& a, const Tensor& b, Scalar alpha = 1);
KILN_API Tensor sub(const Tensor& a, const Tensor& b, Scalar alpha = 1);
KILN_API Tensor mul(const Tensor& a, const Tensor& b);
KILN_API Tensor div(const Tensor& a, const Tensor& b);  // true division
KILN_API Tensor& add_(Tensor& self, const Tensor& other, Scalar alpha = 1);
KILN_API Tensor& sub_(Tensor& self, const Tensor& other, Scalar alpha = 1);
KILN_API Tensor& mul_(Tensor& self, const Tensor& other);
KILN_API Tensor& div_(Tensor& self, const Tensor& other);

// Comparisons (bool results, not differentiable).
KILN_API Tensor eq(const Tensor& a, const Tensor& b);
KILN_API Tensor ne(const Tensor& a, const Tensor& b);
KILN_API Tensor lt(const Tensor& a, const Tensor& b);
KILN_API Tensor le(const Tensor& a, const Tensor& b);
KILN_API Tensor gt(const Tensor& a, const Tensor& b);
KILN_API Tensor ge(const Tensor& a, const Tensor& b);
// cond ? a : b with broadcasting of all three; a and b promote together.
KILN_API Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

KILN_API Tensor neg(const Tensor& a);

// Operators for C++ code (backward formulas read like the math).
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
KILN_API Tensor operator+(const Tensor& a, Scalar b);
KILN_API Tensor operator-(const Tensor& a, Scalar b);
KILN_API Tensor operator*(const Tensor& a, Scalar b);
KILN_API Tensor operator/(const Tensor& a, Scalar b);
KILN_API Tensor operator*(Scalar a, const Tensor& b);
KILN_API Tensor operator-(Scalar a, const Tensor& b);

namespace elementwise {

// How an elementwise op treats dtypes.
enum class Kind {
  Arithmetic,  // compute and return in the promoted dtype
  FloatMath,   // integral/bool inputs promote to the default float dtype (exp, /)
  Predicate,   // compute in the promoted dtype, return bool (==, <, isnan)
};

// The shared front end: checks devices, promotes, broadcasts, allocates the
// output and calls kernel `op` as kernel(out, in...) with every input already
// in the compute dtype. No autograd; callers record their own node.
KILN_API Tensor unary(const char* op, const Tensor& a, Kind kind);
KILN_API Tensor binary(const char* op, const Tensor& a, const Tensor& b, Kind kind);
// In-place form: writes into `self` (whose dtype must hold the result).
KILN_API Tensor& binary_(const char* op, Tensor& self, const Tensor& other, Kind kind);
KILN_API Tensor& unary_(const char* op, Tensor& self, Kind kind);
// Note [In-place and autograd] for elementwise ops: `in_place` runs when no
// input needs grad; otherwise `out_of_place(self or a clone of it)` computes
// the result, which is written back into self, and self takes its history.
KILN_API Tensor& inplace(const char* op, Tensor& self, std::initializer_list<Tensor> others,
                         bool needs_old_self,
                         const std::function<Tensor(const Tensor&)>& out_of_place,
                         const std::function<Tensor&()>& in_place);
// In-place form of an op without its own in-place kernel: computes `fn(self)`
// and writes it back (the result dtype must be castable to self's).
KILN_API Tensor& inplace_from(const char* op, Tensor& self, std::initializer_list<Tensor> others,
                              const std::function<Tensor(const Tensor&)>& fn);
// Records a one-input node whose gradient is formula(grad, input, output).
// Only the tensor the formula `uses` is saved (the other comes in undefined), so
// later in-place changes to the other one don't invalidate the backward.
enum class Uses { Input, Output, Neither };
using UnaryFormula = Tensor (*)(const Tensor& grad, const Tensor& x, const Tensor& out);
KILN_API Tensor with_grad(const char* node, const Tensor& x, Tensor out, UnaryFormula formula,
                          Uses uses = Uses::Input);
// The dtype the kernel computes in for these inputs.
KILN_API ScalarType compute_dtype(const char* op, std::initializer_list<Tensor> inputs, Kind kind);

}  // namespace elementwise

}  // namespace kiln
