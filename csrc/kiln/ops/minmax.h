#pragma once
#include <optional>
#include <utility>

#include "kiln/tensor.h"

namespace kiln {

// NaN wins every comparison; among equal values the first index wins.
// Full reductions: the value; reducing nothing raises.
KILN_API Tensor max(const Tensor& t);
KILN_API Tensor min(const Tensor& t);
// (values, indices) along one dim.
KILN_API std::pair<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim = false);
KILN_API std::pair<Tensor, Tensor> min(const Tensor& t, int64_t dim, bool keepdim = false);
// Values over several dims (empty = all); the gradient is split evenly among ties.
KILN_API Tensor amax(const Tensor& t, const Shape& dims = {}, bool keepdim = false);
KILN_API Tensor amin(const Tensor& t, const Shape& dims = {}, bool keepdim = false);
// (min, max) over one dim or all.
KILN_API std::pair<Tensor, Tensor> aminmax(const Tensor& t, std::optional<int64_t> dim = std::nullopt,
                                           bool keepdim = false);
// int64 indices; no dim means the index into the flattened tensor.
KILN_API Tensor argmax(const Tensor& t, std::optional<int64_t> dim = std::nullopt,
                       bool keepdim = false);
KILN_API Tensor argmin(const Tensor& t, std::optional<int64_t> dim = std::nullopt,
                       bool keepdim = false);

}  // namespace kiln
