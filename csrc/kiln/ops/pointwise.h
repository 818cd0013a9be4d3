#pragma once
// Elementwise ops with several operands or parameters: clamp, lerp,
// masked_fill, addcmul/addcdiv.
#include <optional>

#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln {

// An undefined bound means "no bound"; at least one must be given. Number
// bounds come in as wrapped scalars. The gradient passes at the boundary.
KILN_API Tensor clamp(const Tensor& a, const Tensor& min, const Tensor& max);
KILN_API Tensor& clamp_(Tensor& self, const Tensor& min, const Tensor& max);
// start + weight * (end - start); weight a tensor or a wrapped number.
KILN_API Tensor lerp(const Tensor& start, const Tensor& end, const Tensor& weight);
KILN_API Tensor& lerp_(Tensor& self, const Tensor& end, const Tensor& weight);
// `value` is 0-dim (a wrapped number or a tensor); the result keeps a's dtype.
KILN_API Tensor masked_fill(const Tensor& a, const Tensor& mask, const Tensor& value);
KILN_API Tensor& masked_fill_(Tensor& self, const Tensor& mask, const Tensor& value);
// input + value * t1 * t2 and input + value * t1 / t2.
KILN_API Tensor addcmul(const Tensor& input, const Tensor& t1, const Tensor& t2, Scalar value = 1);
KILN_API Tensor& addcmul_(Tensor& self, const Tensor& t1, const Tensor& t2, Scalar value = 1);
KILN_API Tensor addcdiv(const Tensor& input, const Tensor& t1, const Tensor& t2, Scalar value = 1);
KILN_API Tensor& addcdiv_(Tensor& self, const Tensor& t1, const Tensor& t2, Scalar value = 1);
// nan -> nan, +inf -> posinf, -inf -> neginf (defaults: 0 and the dtype's extremes).
KILN_API Tensor nan_to_num(const Tensor& a, double nan = 0.0,
                           std::optional<double> posinf = std::nullopt,
                           std::optional<double> neginf = std::nullopt);

}  // namespace kiln
