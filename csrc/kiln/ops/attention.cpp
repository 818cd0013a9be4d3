#include "kiln/ops/attention.h"

#include <cmath>
#include <limits>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/binary.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/join.h"
#include "kiln/ops/linalg.h"
#include "kiln/ops/pointwise.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/shape.h"
#include "kiln/ops/softmax.h"
#include "kiln/ops/unary.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

// The fused forward: out (B, L, Ev) contiguous from contiguous q (B, L, E),
// k (B, S, E), v (B, S, Ev); mask undefined or (batch..., L, S) of any strides
// whose batch dims multiply to B (bool, or q's dtype). Returns false when it
// does not handle these sizes or this dtype (the front end then composes).
using AttentionKernel = bool(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                             const Tensor&, bool, double);

constexpr double kInf = std::numeric_limits<double>::infinity();

// q @ k^T * scale with the mask applied: (..., L, S) scores.
Tensor masked_scores(const Tensor& q, const Tensor& k, const Tensor& mask, bool causal,
                     double scale) {
  const Device d = q.device();
  Tensor s = mul(matmul(q, matrix_transpose(k)), wrapped_scalar(scale, d));
  Tensor allowed = mask;
  if (causal) allowed = tril(ones({q.size(-2), k.size(-2)}, ScalarType::Bool, d));
  if (!allowed.defined()) return s;
  if (allowed.dtype() == ScalarType::Bool)
    return masked_fill(s, logical_not(allowed), wrapped_scalar(-kInf, d));
  return add(s, allowed);
}

// The softmax over keys. As in PyTorch, a query whose every key the mask
// removes (all scores -inf) attends to nothing: zeros, not NaNs. (A causal
// mask always leaves key 0.)
Tensor attention_weights(const Tensor& q, const Tensor& k, const Tensor& mask, bool causal,
                         double scale) {
  const Tensor s = masked_scores(q, k, mask, causal, scale);
  const Tensor p = softmax(s, -1);
  if (!mask.defined()) return p;
  return masked_fill(p, all(isneginf(s), {-1}, true), wrapped_scalar(0, q.device()));
}

// Note [Attention backward]: with P = softmax(S), S = q k^T * scale + mask and
// out = P v, the gradients are dv = P^T g, dS = P * (dP - rowsum(dP * P)) for
// dP = g v^T, dq = dS k * scale, dk = dS^T q * scale and dmask = dS, each
// summed back over the dims its input was broadcast along. P is the one
// the composed forward saved, else (fused forward, or create_graph, where P
// must depend on q and k) recomputed.
TensorList attention_backward(const BackwardArgs& a, bool has_mask, bool causal, double scale) {
  const Tensor &q = a.saved[0], &k = a.saved[1], &v = a.saved[2];
  const Tensor mask = has_mask ? a.saved[3] : Tensor();
  const size_t p_at = has_mask ? 4 : 3;
  Tensor p = a.saved.size() > p_at ? a.saved[p_at] : Tensor();
  if (!p.defined() || autograd::is_grad_enabled()) p = attention_weights(q, k, mask, causal, scale);
  const Tensor& g = a.grad();
  const Tensor sc = wrapped_scalar(scale, q.device());
  Tensor gq, gk, gv, gm;
  if (a.needs(2)) gv = sum_to(matmul(matrix_transpose(p), g), v.sizes());
  if (a.needs(0) || a.needs(1) || a.needs(3)) {
    const Tensor gp = matmul(g, matrix_transpose(v));
    const Tensor gs = mul(p, sub(gp, sum(mul(gp, p), {-1}, true)));
    if (a.needs(0)) gq = sum_to(mul(matmul(gs, k), sc), q.sizes());
    if (a.needs(1)) gk = sum_to(mul(matmul(matrix_transpose(gs), q), sc), k.sizes());
    if (a.needs(3)) gm = sum_to(gs, mask.sizes());
  }
  return {gq, gk, gv, gm};
}

Shape with_last2(Shape batch, int64_t a, int64_t b) {
  batch.push_back(a);
  batch.push_back(b);
  return batch;
}

// The fused kernel's output, or undefined where the device has no such kernel or it declines.
Tensor fused_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                     bool causal, double scale, const Shape& batch) {
  if (!dispatch::has_kernel("attention", q.device().type)) return Tensor();
  static const dispatch::Op<AttentionKernel> kernel("attention");
  const int64_t L = q.size(-2), S = k.size(-2), E = q.size(-1), Ev = v.size(-1);
  int64_t B = 1;
  for (int64_t n : batch) B *= n;
  const auto flat = [&](const Tensor& t, int64_t rows, int64_t cols) {
    return reshape(contiguous(expand(t, with_last2(batch, rows, cols))), {B, rows, cols});
  };
  const Tensor m = mask.defined() ? expand(mask, with_last2(batch, L, S)) : Tensor();
  Tensor out = empty({B, L, Ev}, q.dtype(), q.device());
  if (!kernel(q.device(), out, flat(q, L, E), flat(k, S, E), flat(v, S, Ev), m, causal, scale))
    return Tensor();
  return reshape(out, with_last2(batch, L, Ev));
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& attn_mask, bool is_causal,
                                    std::optional<double> scale_opt) {
  constexpr const char* op = "scaled_dot_product_attention";
  check_same_device({query, key, value}, op);
  KILN_CHECK(query.dim() >= 2 && key.dim() >= 2 && value.dim() >= 2, ValueError, "[", op,
             "] expected query, key and value of at least 2 dims, got shapes ", query.sizes(),
             ", ", key.sizes(), " and ", value.sizes());
  KILN_CHECK(is_floating(query.dtype()) && key.dtype() == query.dtype() &&
                 value.dtype() == query.dtype(),
             TypeError, "[", op, "] expected query, key and value of one floating dtype, got ",
             query.dtype(), ", ", key.dtype(), " and ", value.dtype());
  const int64_t L = query.size(-2), S = key.size(-2), E = query.size(-1);
  KILN_CHECK(key.size(-1) == E && value.size(-2) == S, ValueError, "[", op,
             "] expected key (..., S, E) and value (..., S, Ev) for query (..., L, E), got "
             "shapes ",
             query.sizes(), ", ", key.sizes(), " and ", value.sizes());
  KILN_CHECK(!(is_causal && attn_mask.defined()), ValueError, "[", op,
             "] give attn_mask or is_causal, not both");
  const auto batch_of = [](const Tensor& t) {
    return Shape(t.sizes().begin(), t.sizes().end() - 2);
  };
  const Shape batch = broadcast_shapes(broadcast_shapes(batch_of(query), batch_of(key), op),
                                       batch_of(value), op);
  Tensor mask = attn_mask;
  if (mask.defined()) {
    check_same_device({query, mask}, op);
    KILN_CHECK(mask.dtype() == ScalarType::Bool || is_floating(mask.dtype()), TypeError, "[", op,
               "] expected a bool or floating attn_mask, got ", mask.dtype());
    KILN_CHECK(is_expandable_to(mask.sizes(), with_last2(batch, L, S)), ValueError, "[", op,
               "] attn_mask of shape ", mask.sizes(), " does not broadcast to ",
               with_last2(batch, L, S));
    if (mask.dtype() != ScalarType::Bool) mask = to_dtype(mask, query.dtype());
  }
  const double scale = scale_opt ? *scale_opt : 1.0 / std::sqrt(static_cast<double>(E));
  Tensor out, p;
  {
    autograd::NoGradGuard no_grad;
    out = fused_forward(query, key, value, mask, is_causal, scale, batch);
    if (!out.defined()) {
      p = attention_weights(query, key, mask, is_causal, scale);
      out = matmul(p, value);
    }
  }
  if (autograd::needs_grad({query, key, value, mask})) {
    TensorList saved = {query, key, value};
    if (mask.defined()) saved.push_back(mask);
    if (p.defined()) saved.push_back(p);
    const bool has_mask = mask.defined();
    autograd::record("ScaledDotProductAttentionBackward0", {query, key, value, mask}, {out}, saved,
                     [has_mask, is_causal, scale](const BackwardArgs& a) {
                       return attention_backward(a, has_mask, is_causal, scale);
                     });
  }
  return out;
}

}  // namespace kiln
