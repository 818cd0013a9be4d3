#pragma once
// Activation functions (elementwise).
#include <string>

#include "kiln/tensor.h"

namespace kiln {

KILN_API Tensor sigmoid(const Tensor& a);
KILN_API Tensor& sigmoid_(Tensor& self);
KILN_API Tensor relu(const Tensor& a);
KILN_API Tensor& relu_(Tensor& self);
// approximate: "none" (exact, with erf) or "tanh".
KILN_API Tensor gelu(const Tensor& a, const std::string& approximate = "none");
KILN_API Tensor silu(const Tensor& a);
KILN_API Tensor& silu_(Tensor& self);
// log(1 + exp(beta x)) / beta, and x itself where beta x > threshold.
KILN_API Tensor softplus(const Tensor& a, double beta = 1.0, double threshold = 20.0);

}  // namespace kiln
