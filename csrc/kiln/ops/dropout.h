#pragma once
#include "kiln/generator.h"
#include "kiln/tensor.h"

namespace kiln {

// Zeroes each element with probability p and scales the rest by 1/(1-p), drawing
// from kiln's generator (`gen` null: the default one). Identity (the input
// itself) when !training or p == 0.
KILN_API Tensor dropout(const Tensor& input, double p = 0.5, bool training = true,
                        const GeneratorPtr& gen = nullptr);
// Channel-wise: zeroes whole channels input[n, c] of an (N, C, *) input.
KILN_API Tensor dropout2d(const Tensor& input, double p = 0.5, bool training = true,
                          const GeneratorPtr& gen = nullptr);

}  // namespace kiln
