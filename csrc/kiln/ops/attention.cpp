#include "kiln/ops/attention.h"

#include <cmath>
#include <limits>
#include <tuple>

#include "kiln/autocast.h"
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

// The fused kernels see q (batch..., L, E), k (batch..., S, E) and v (batch...,
// S, Ev) with their batch dims broadcast to one shape (views of any strides),
// and the mask undefined or as a (batch..., L, S) view (bool, or q's dtype).
// They return false when they do not handle these sizes or this dtype (the
// front end then composes). The forward sets out (batch..., L, Ev), laid out
// as it likes, and lse (B, L) float32, each query's logsumexp of scores, with B
// the batch's element count; the backward sets gq, gk and gv of q's, k's and
// v's broadcast shapes from those and grad_out (batch..., L, Ev).
using AttentionKernel = bool(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& mask, bool causal, double scale);
using AttentionBackwardKernel = bool(Tensor& gq, Tensor& gk, Tensor& gv, const Tensor& q,
                                     const Tensor& k, const Tensor& v, const Tensor& out,
                                     const Tensor& grad_out, const Tensor& lse,
                                     const Tensor& mask, bool causal, double scale);

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr const char* kOp = "scaled_dot_product_attention";

// q @ k^T * scale with the mask applied: (..., L, S) scores.
Tensor masked_scores(const Tensor& q, const Tensor& k, const Tensor& mask, bool causal,
                     double scale) {
  const Device d = q.device();
  // Without autograd the GEMM scales; with it (create_graph), q rather than the
  // scores: E values per query instead of S.
  Tensor s = autograd::is_grad_enabled()
                 ? matmul(mul(q, wrapped_scalar(scale, d)), matrix_transpose(k))
                 : matmul_scaled(q, matrix_transpose(k), scale);
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

Shape with_last2(Shape batch, int64_t a, int64_t b) {
  batch.push_back(a);
  batch.push_back(b);
  return batch;
}

Shape batch_of(const Tensor& t) { return Shape(t.sizes().begin(), t.sizes().end() - 2); }

// The batch dims of q, k and v broadcast to one shape, as the fused kernels see them.
struct Broadcast {
  Shape batch;
  Broadcast(const Tensor& q, const Tensor& k, const Tensor& v)
      : batch(broadcast_shapes(broadcast_shapes(batch_of(q), batch_of(k), kOp), batch_of(v), kOp)) {}
  Tensor operator()(const Tensor& t) const {
    return expand(t, with_last2(batch, t.size(-2), t.size(-1)));
  }
  // The mask as (batch..., L, S) for q (..., L, E), k (..., S, E).
  Tensor mask(const Tensor& m, const Tensor& q, const Tensor& k) const {
    return m.defined() ? expand(m, with_last2(batch, q.size(-2), k.size(-2))) : Tensor();
  }
};

// The fused forward's output and logsumexp, or undefined where the device has
// no such kernel or it declines.
std::pair<Tensor, Tensor> fused_forward(const Broadcast& b, const Tensor& q, const Tensor& k,
                                        const Tensor& v, const Tensor& mask, bool causal,
                                        double scale) {
  if (!dispatch::has_kernel("attention", q.device().type)) return {};
  static const dispatch::Op<AttentionKernel> kernel("attention");
  Tensor out, lse;
  if (!kernel(q.device(), out, lse, b(q), b(k), b(v), b.mask(mask, q, k), causal, scale))
    return {};
  return {out, lse};
}

// The fused backward's gradients of q, k and v, or an empty list where the
// device has no such kernel or it declines.
TensorList fused_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                          const Tensor& out, const Tensor& lse, const Tensor& grad,
                          bool causal, double scale) {
  if (!dispatch::has_kernel("attention_backward", q.device().type)) return {};
  static const dispatch::Op<AttentionBackwardKernel> kernel("attention_backward");
  const Broadcast b(q, k, v);
  Tensor gq, gk, gv;
  if (!kernel(q.device(), gq, gk, gv, b(q), b(k), b(v), out, grad, lse, b.mask(mask, q, k), causal,
              scale))
    return {};
  return {sum_to(gq, q.sizes()), sum_to(gk, k.sizes()), sum_to(gv, v.sizes()), Tensor()};
}

// Note [Attention backward]: with P = softmax(S), S = q k^T * scale + mask and
// out = P v, the gradients are dv = P^T g, dS = P * (dP - rowsum(dP * P)) (softmax's
// backward) for dP = g v^T, dq = dS k * scale, dk = dS^T q * scale and dmask = dS, each
// summed back over the dims its input was broadcast along. After a fused
// forward, the fused backward computes them tile by tile from the saved
// output and logsumexp, unless the mask needs its gradient or the backward
// must be differentiable (create_graph). Otherwise they are composed here,
// with P the one the composed forward saved, else recomputed (P must depend
// on q and k for create_graph). `saved` holds q, k, v, the mask if any, then
// P (composed forward) or out and lse (fused forward).
TensorList attention_backward(const BackwardArgs& a, bool has_mask, bool fused, bool causal,
                              double scale) {
  const Tensor &q = a.saved[0], &k = a.saved[1], &v = a.saved[2];
  const Tensor mask = has_mask ? a.saved[3] : Tensor();
  const size_t rest = has_mask ? 4 : 3;
  const Tensor& g = a.grad();
  const bool graph = autograd::is_grad_enabled();
  if (fused && !graph && !a.needs(3)) {
    TensorList grads =
        fused_backward(q, k, v, mask, a.saved[rest], a.saved[rest + 1], g, causal, scale);
    if (!grads.empty()) return grads;
  }
  const Tensor p =
      fused || graph ? attention_weights(q, k, mask, causal, scale) : a.saved[rest];
  // scale * (x @ y), on the GEMM unless the backward must be differentiable.
  const auto scaled_product = [&](const Tensor& x, const Tensor& y) {
    return graph ? mul(matmul(x, y), wrapped_scalar(scale, q.device()))
                 : matmul_scaled(x, y, scale);
  };
  Tensor gq, gk, gv, gm;
  if (a.needs(2)) gv = sum_to(matmul(matrix_transpose(p), g), v.sizes());
  if (a.needs(0) || a.needs(1) || a.needs(3)) {
    const Tensor gp = matmul(g, matrix_transpose(v));
    const Tensor gs = softmax_backward(gp, p, -1);  // one fused pass over the scores
    if (a.needs(0)) gq = sum_to(scaled_product(gs, k), q.sizes());
    if (a.needs(1)) gk = sum_to(scaled_product(matrix_transpose(gs), q), k.sizes());
    if (a.needs(3)) gm = sum_to(gs, mask.sizes());
  }
  return {gq, gk, gv, gm};
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& attn_mask, bool is_causal,
                                    std::optional<double> scale_opt) {
  // Under autocast the composed path's softmax would otherwise run (and be saved)
  // in float32 beside 16-bit values: one policy for the whole op, as PyTorch's.
  KILN_AUTOCAST(kLowerPrecision, scaled_dot_product_attention, query, key, value, attn_mask,
                is_causal, scale_opt);
  const char* op = kOp;
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
  const Broadcast broadcast(query, key, value);
  const Shape& batch = broadcast.batch;
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
  Tensor out, lse, p;
  {
    autograd::NoGradGuard no_grad;
    std::tie(out, lse) = fused_forward(broadcast, query, key, value, mask, is_causal, scale);
    if (!out.defined()) {
      p = attention_weights(query, key, mask, is_causal, scale);
      out = matmul(p, value);
    }
  }
  if (autograd::needs_grad({query, key, value, mask})) {
    TensorList saved = {query, key, value};
    if (mask.defined()) saved.push_back(mask);
    const bool fused = lse.defined();
    if (fused) {
      saved.push_back(out);
      saved.push_back(lse);
    } else {
      saved.push_back(p);
    }
    autograd::record("ScaledDotProductAttentionBackward0", {query, key, value, mask}, {out}, saved,
                     [has_mask = mask.defined(), fused, is_causal, scale](const BackwardArgs& a) {
                       return attention_backward(a, has_mask, fused, is_causal, scale);
                     });
  }
  return out;
}

}  // namespace kiln
