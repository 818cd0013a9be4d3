#pragma once
#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln {

// PyTorch's result_type: dimensioned tensors outrank 0-dim tensors, which
// outrank wrapped Python numbers; a lower-ranked operand only matters when its
// category (bool < integral < floating) is higher.
KILN_API ScalarType result_type(std::initializer_list<Tensor> operands);
KILN_API ScalarType result_type(const TensorList& operands);

// Broadcasting, as in NumPy/PyTorch. `op` names the caller in errors.
KILN_API Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
KILN_API bool is_expandable_to(const Shape& shape, const Shape& target);

// All tensors on one device; RuntimeError naming both devices otherwise.
KILN_API void check_same_device(std::initializer_list<Tensor> tensors, const char* op);

}  // namespace kiln
