#pragma once
#include <optional>

#include "kiln/generator.h"
#include "kiln/tensor.h"

namespace kiln {

// Random sampling. `gen` null means the device's default generator. Values
// depend only on the generator's state and the element's index (see Note
// [Random stream layout]), so they are the same for any thread count.
KILN_API Tensor rand(const Shape& shape, ScalarType dtype, Device device = Device(),
                     const GeneratorPtr& gen = nullptr);
KILN_API Tensor randn(const Shape& shape, ScalarType dtype, Device device = Device(),
                      const GeneratorPtr& gen = nullptr);
// Integers uniform in [low, high).
KILN_API Tensor randint(int64_t low, int64_t high, const Shape& shape,
                        ScalarType dtype = ScalarType::Int64, Device device = Device(),
                        const GeneratorPtr& gen = nullptr);
KILN_API Tensor randperm(int64_t n, ScalarType dtype = ScalarType::Int64,
                         Device device = Device(), const GeneratorPtr& gen = nullptr);

// In place; floating tensors only.
KILN_API Tensor& uniform_(Tensor& self, double from = 0, double to = 1,
                          const GeneratorPtr& gen = nullptr);
KILN_API Tensor& normal_(Tensor& self, double mean = 0, double std = 1,
                         const GeneratorPtr& gen = nullptr);
// Integers uniform in [from, to); `to` defaults to the largest value the dtype
// holds exactly plus one (2^mantissa bits for floats), as in PyTorch.
KILN_API Tensor& random_(Tensor& self, int64_t from = 0, std::optional<int64_t> to = std::nullopt,
                         const GeneratorPtr& gen = nullptr);
// 1 with probability p (a number, or a tensor broadcast to self's shape), else 0.
KILN_API Tensor& bernoulli_(Tensor& self, double p, const GeneratorPtr& gen = nullptr);
KILN_API Tensor& bernoulli_(Tensor& self, const Tensor& p, const GeneratorPtr& gen = nullptr);
// Samples with probabilities `p` (floating), returning p's dtype.
KILN_API Tensor bernoulli(const Tensor& p, const GeneratorPtr& gen = nullptr);
// Draws `num_samples` category indices per row of `probs` (1-D or 2-D, non-negative weights).
KILN_API Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement = false,
                            const GeneratorPtr& gen = nullptr);

}  // namespace kiln
