#pragma once
#include "kiln/tensor.h"

namespace kiln {

// Advanced indexing, as PyTorch's aten::index / aten::index_put_. `indices`
// has one entry per leading dim of `self`; an undefined Tensor keeps that dim
// whole. Integer index tensors are broadcast together; a k-dim bool (or
// uint8) mask stands for the k index tensors of its nonzero positions. The
// broadcast index shape replaces the indexed dims in the result where they are
// adjacent, and goes first when they are separated by a whole dim (NumPy's rule).
KILN_API Tensor index(const Tensor& self, const TensorList& indices);
// self[indices] = values (broadcast to the result shape of index(self, indices)),
// or += when `accumulate` (duplicate indices then add up). values must have self's dtype.
KILN_API Tensor& index_put_(Tensor& self, const TensorList& indices, const Tensor& values,
                            bool accumulate = false);
KILN_API Tensor index_put(const Tensor& self, const TensorList& indices, const Tensor& values,
                          bool accumulate = false);

namespace detail {
// For the index kernels of every device (Note [Advanced index layout] in
// cpu/index.cpp): self's dims that are not in `dims`, split into those before
// the index result (`pre`) and after it (`post`).
struct UnindexedDims {
  Shape pre_sizes, pre_strides, post_sizes, post_strides;
};
KILN_API UnindexedDims unindexed_dims(const Tensor& self, const Shape& dims);
}  // namespace detail

}  // namespace kiln
