#pragma once
#include "kiln/tensor.h"

namespace kiln {

// Joining and rearranging ops that copy data into a new tensor; all differentiable.

// Concatenates along `dim`, promoting dtypes across inputs. As in PyTorch,
// 1-d empty tensors are skipped (legacy code builds results starting from them).
KILN_API Tensor cat(const TensorList& tensors, int64_t dim = 0);
// Joins equal-shape tensors along a new dim.
KILN_API Tensor stack(const TensorList& tensors, int64_t dim = 0);
KILN_API Tensor hstack(const TensorList& tensors);
KILN_API Tensor vstack(const TensorList& tensors);

// Repeats the tensor `repeats[i]` times along each dim (repeats may add leading dims).
KILN_API Tensor repeat(const Tensor& t, const Shape& repeats);
// repeat(), with `dims` padded with leading 1s when shorter than t.dim().
KILN_API Tensor tile(const Tensor& t, const Shape& dims);
// Reverses the order of elements along each of `dims`.
KILN_API Tensor flip(const Tensor& t, const Shape& dims);
// Shifts elements by shifts[i] along dims[i], wrapping around; `dims` empty rolls the
// flattened tensor (shifts must then hold one value).
KILN_API Tensor roll(const Tensor& t, const Shape& shifts, const Shape& dims = {});

// Lower/upper triangle of the last two dims; `diagonal` moves the boundary up (+) or down (-).
KILN_API Tensor tril(const Tensor& t, int64_t diagonal = 0);
KILN_API Tensor triu(const Tensor& t, int64_t diagonal = 0);
KILN_API Tensor& tril_(Tensor& t, int64_t diagonal = 0);
KILN_API Tensor& triu_(Tensor& t, int64_t diagonal = 0);

namespace detail {
// The flip and roll kernels of every device: strided copies through the device's
// "copy" kernel (`shifts` holds one shift in [0, size) per dim).
KILN_API void flip_by_copy(const Tensor& out, const Tensor& in, const Shape& dims);
KILN_API void roll_by_copy(const Tensor& out, const Tensor& in, const Shape& shifts);
}  // namespace detail

}  // namespace kiln
