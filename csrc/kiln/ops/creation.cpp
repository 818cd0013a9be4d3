#include "kiln/ops/creation.h"

#include "kiln/error.h"
#include "kiln/ops/copy.h"

namespace kiln {

Tensor empty(const Shape& shape, ScalarType dtype, Device device) {
  // The byte count, not just numel, must fit: 2^62 float32 elements would wrap to 0 bytes.
  const int64_t max_numel = (int64_t(1) << 62) / static_cast<int64_t>(itemsize(dtype));
  int64_t n = 1;
  for (int64_t s : shape) {
    KILN_CHECK(s >= 0, ValueError, "[empty] negative dimension ", s, " in shape ", shape);
    KILN_CHECK(s == 0 || n <= max_numel / s, ValueError, "[empty] shape ", shape,
               " is too large");
    n *= s;
  }
  auto storage = Storage::allocate(static_cast<size_t>(n) * itemsize(dtype), device);
  return make_tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor full(const Shape& shape, Scalar value, ScalarType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  fill_(t, value);
  return t;
}
Tensor zeros(const Shape& shape, ScalarType dtype, Device device) {
  return full(shape, 0, dtype, device);
}
Tensor ones(const Shape& shape, ScalarType dtype, Device device) {
  return full(shape, 1, dtype, device);
}
Tensor empty_like(const Tensor& t) { return empty(t.sizes(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.sizes(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.sizes(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, Scalar value) {
  return full(t.sizes(), value, t.dtype(), t.device());
}

Tensor scalar_tensor(Scalar value, ScalarType dtype, Device device) {
  return full({}, value, dtype, device);
}

Tensor wrapped_scalar(Scalar value, Device device) {
  const ScalarType dtype = value.is_floating() ? ScalarType::Float64
                           : value.is_bool()   ? ScalarType::Bool
                                               : ScalarType::Int64;
  Tensor t = scalar_tensor(value, dtype, device);
  t.impl()->is_wrapped_number = true;
  return t;
}

}  // namespace kiln
