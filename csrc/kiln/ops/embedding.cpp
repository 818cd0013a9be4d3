#include "kiln/ops/embedding.h"

#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

// padding_idx wrapped into [0, num_weights) as PyTorch does; -1 for none.
int64_t wrap_padding(std::optional<int64_t> padding_idx, int64_t num_weights) {
  if (!padding_idx) return -1;
  const int64_t p = *padding_idx < 0 ? *padding_idx + num_weights : *padding_idx;
  KILN_CHECK(p >= 0 && p < num_weights, ValueError, "[embedding] padding_idx ", *padding_idx,
             " is out of range for ", num_weights, " embeddings");
  return p;
}

}  // namespace

Tensor embedding(const Tensor& input, const Tensor& weight, std::optional<int64_t> padding_idx) {
  KILN_CHECK(weight.dim() == 2, ValueError,
             "[embedding] expected weight of shape "
             "(num_embeddings, embedding_dim), got ",
             weight.sizes());
  KILN_CHECK(input.dtype() == ScalarType::Int64 || input.dtype() == ScalarType::Int32, TypeError,
             "[embedding] expected input of dtype int64 or int32, got ", dtype_name(input.dtype()));
  KILN_CHECK(input.device() == weight.device(), ValueError, "[embedding] expected input on ",
             weight.device(), ", got ", input.device());
  const int64_t rows = weight.sizes()[0], d = weight.sizes()[1];
  const int64_t pad = wrap_padding(padding_idx, rows);
  const Tensor idx = contiguous(to_dtype(detach(input), ScalarType::Int64));
  Shape out_shape = input.sizes();
  out_shape.push_back(d);
  Tensor out = empty(out_shape, weight.dtype(), weight.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, const Tensor&)> k("embedding");
  k(weight.device(), out, contiguous(detach(weight)), idx);
  if (autograd::needs_grad({weight})) {
    autograd::record(
        "EmbeddingBackward0", {weight}, {out}, {}, [idx, rows, pad](const BackwardArgs& a) {
          return TensorList{embedding_backward(
              a.grad(), idx, rows, pad < 0 ? std::nullopt : std::optional<int64_t>(pad))};
        });
  }
  return out;
}

Tensor embedding_backward(const Tensor& grad, const Tensor& indices, int64_t num_weights,
                          std::optional<int64_t> padding_idx) {
  const int64_t d = grad.dim() > 0 ? grad.sizes().back() : 0;
  Shape expected = indices.sizes();
  expected.push_back(d);
  KILN_CHECK(grad.sizes() == expected, ValueError, "[embedding_backward] expected grad of shape ",
             expected, " for indices of shape ", indices.sizes(), ", got ", grad.sizes());
  const int64_t pad = wrap_padding(padding_idx, num_weights);
  const Tensor idx = contiguous(to_dtype(detach(indices), ScalarType::Int64));
  Tensor gw = zeros({num_weights, d}, grad.dtype(), grad.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, const Tensor&, int64_t)> k(
      "embedding_backward");
  k(grad.device(), gw, contiguous(detach(grad)), idx, pad);
  if (autograd::needs_grad({grad})) {
    // Linear in grad: its gradient gathers the incoming rows back, padding row zeroed.
    autograd::record("EmbeddingDenseBackward0", {grad}, {gw}, {},
                     [idx, pad, num_weights](const BackwardArgs& a) {
                       Tensor gg = a.grad();
                       if (pad >= 0) {
                         Tensor keep = ones({num_weights, 1}, gg.dtype(), gg.device());
                         Tensor row = select(keep, 0, pad);
                         fill_(row, 0);
                         gg = gg * keep;
                       }
                       return TensorList{embedding(idx, gg)};
                     });
  }
  return gw;
}

}  // namespace kiln
