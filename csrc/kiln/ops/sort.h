#pragma once
#include <tuple>

#include "kiln/tensor.h"

namespace kiln {

// Sorts along `dim`; returns (values, indices). NaN sorts as the largest value.
// Equal elements keep their input order (the sort is always stable).
KILN_API std::tuple<Tensor, Tensor> sort(const Tensor& input, int64_t dim = -1,
                                         bool descending = false, bool stable = false);
KILN_API Tensor argsort(const Tensor& input, int64_t dim = -1, bool descending = false,
                        bool stable = false);
// The k largest (or smallest) elements along `dim` and their indices, in
// sorted order (also when sorted=false, which only promises no particular order).
KILN_API std::tuple<Tensor, Tensor> topk(const Tensor& input, int64_t k, int64_t dim = -1,
                                         bool largest = true, bool sorted = true);
// The distinct elements of the flattened input in ascending order, the index of
// each input element in them (input's shape) and how often each occurs. The
// second and third tensors are undefined unless asked for.
KILN_API std::tuple<Tensor, Tensor, Tensor> unique(const Tensor& input, bool sorted = true,
                                                   bool return_inverse = false,
                                                   bool return_counts = false);

}  // namespace kiln
