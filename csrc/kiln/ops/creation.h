#pragma once
#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln {

KILN_API Tensor empty(const Shape& shape, ScalarType dtype, Device device = Device());
KILN_API Tensor zeros(const Shape& shape, ScalarType dtype, Device device = Device());
KILN_API Tensor ones(const Shape& shape, ScalarType dtype, Device device = Device());
KILN_API Tensor full(const Shape& shape, Scalar value, ScalarType dtype, Device device = Device());
// *_like: same shape, dtype and device (contiguous).
KILN_API Tensor empty_like(const Tensor& t);
KILN_API Tensor zeros_like(const Tensor& t);
KILN_API Tensor ones_like(const Tensor& t);
KILN_API Tensor full_like(const Tensor& t, Scalar value);
// A 0-dim tensor holding a Python number for type promotion (see result_type):
// float64/int64/bool, flagged as a wrapped number.
KILN_API Tensor wrapped_scalar(Scalar value, Device device = Device());
KILN_API Tensor scalar_tensor(Scalar value, ScalarType dtype, Device device = Device());

}  // namespace kiln
