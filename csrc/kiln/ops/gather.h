#pragma once
#include <optional>
#include <string>

#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln {

// Ops that read or write along a dim at positions given by an index tensor.
// Index tensors are int64 (int32 where PyTorch accepts it too); every index is
// bounds-checked, and an out-of-range one raises IndexError naming the op.

// out[i][j][k] = input[i][index[i][j][k]][k] (for dim 1); out has index's shape.
KILN_API Tensor gather(const Tensor& input, int64_t dim, const Tensor& index);

// How scatter combines src with what is already there ("" replaces; "add", "multiply").
enum class ScatterReduce : int8_t { None, Add, Multiply };
KILN_API ScatterReduce parse_scatter_reduce(const std::string& reduce);

// out = input with out[i][index[i][j][k]][k] = src[i][j][k] (for dim 1).
KILN_API Tensor scatter(const Tensor& input, int64_t dim, const Tensor& index, const Tensor& src,
                        ScatterReduce reduce = ScatterReduce::None);
KILN_API Tensor scatter(const Tensor& input, int64_t dim, const Tensor& index, Scalar value,
                        ScatterReduce reduce = ScatterReduce::None);
KILN_API Tensor& scatter_(Tensor& self, int64_t dim, const Tensor& index, const Tensor& src,
                          ScatterReduce reduce = ScatterReduce::None);
KILN_API Tensor& scatter_(Tensor& self, int64_t dim, const Tensor& index, Scalar value,
                          ScatterReduce reduce = ScatterReduce::None);
// scatter that sums src into the indexed positions (repeated indices accumulate).
KILN_API Tensor scatter_add(const Tensor& input, int64_t dim, const Tensor& index,
                            const Tensor& src);
KILN_API Tensor& scatter_add_(Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);

// The slices input.select(dim, i) for i in the 1-d `index`, stacked along dim.
KILN_API Tensor index_select(const Tensor& input, int64_t dim, const Tensor& index);
// input with alpha * source.select(dim, k) added to input.select(dim, index[k]).
KILN_API Tensor index_add(const Tensor& input, int64_t dim, const Tensor& index,
                          const Tensor& source, Scalar alpha = 1);
KILN_API Tensor& index_add_(Tensor& self, int64_t dim, const Tensor& index, const Tensor& source,
                            Scalar alpha = 1);

// gather() after broadcasting input and indices against each other (except along
// dim); without dim, indexes the flattened input with the flattened indices.
KILN_API Tensor take_along_dim(const Tensor& input, const Tensor& indices,
                               std::optional<int64_t> dim = std::nullopt);

// int64 one-hot encoding: shape t.shape + [num_classes]; -1 infers max(t) + 1.
KILN_API Tensor one_hot(const Tensor& t, int64_t num_classes = -1);

// Coordinates of the nonzero elements, one row each: int64 [count, t.dim()].
KILN_API Tensor nonzero(const Tensor& t);
// The columns of nonzero() (a 0-d input counts as 1-d).
KILN_API TensorList nonzero_tuple(const Tensor& t);
KILN_API Tensor argwhere(const Tensor& t);
// The elements of input where the (broadcast) bool mask is true, as a 1-d tensor.
KILN_API Tensor masked_select(const Tensor& input, const Tensor& mask);

}  // namespace kiln
