#pragma once
#include <string>

#include "kiln/tensor.h"

namespace kiln {

enum class Reduction { None, Mean, Sum };
// "none" / "mean" / "sum"; ValueError naming `op` otherwise.
KILN_API Reduction parse_reduction(const std::string& reduction, const char* op);

// torch.nn.functional.cross_entropy: `input` holds logits of shape (C), (N, C) or
// (N, C, d1, ...); `target` class indices (int64, shape (), (N) or (N, d1, ...)) or
// class probabilities (floating, input's shape). A fused, numerically stable
// log-softmax per row and a fused backward; higher orders go through kiln ops
// (see Note [Cross-entropy double backward]).
KILN_API Tensor cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight = {},
                              int64_t ignore_index = -100, Reduction reduction = Reduction::Mean,
                              double label_smoothing = 0.0);
// torch.nn.functional.nll_loss: `input` holds log-probabilities, `target` class indices.
KILN_API Tensor nll_loss(const Tensor& input, const Tensor& target, const Tensor& weight = {},
                         int64_t ignore_index = -100, Reduction reduction = Reduction::Mean);

namespace loss {

// Note [Loss layout]: the (contiguous) input is seen as [N, C, D]; row r = n * D + d
// holds the C class scores at offsets n*C*D + d + c*D. Probability targets share it.
struct Layout {
  int64_t N, C, D;
  int64_t ignore_index;
  double label_smoothing;
  bool log_probs;    // nll_loss: the input already holds log-probabilities
  bool prob_target;  // target holds class probabilities, not indices
  const char* op;
};

}  // namespace loss

}  // namespace kiln
