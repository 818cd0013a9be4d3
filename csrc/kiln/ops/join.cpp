#include "kiln/ops/join.h"

#include <vector>

#include "kiln/autocast.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

// PyTorch's legacy rule: a 1-d tensor with no elements joins anything.
bool skipped_in_cat(const Tensor& t) { return t.dim() == 1 && t.numel() == 0; }

void check_list(const TensorList& tensors, const char* op) {
  KILN_CHECK(!tensors.empty(), ValueError, "[", op, "] expected a non-empty list of Tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    KILN_CHECK(tensors[i].defined(), TypeError, "[", op, "] tensor ", i, " is None");
    KILN_CHECK(tensors[i].device() == tensors[0].device(), Error, "[", op,
               "] expected all tensors to be on the same device, got ", tensors[0].device(),
               " (tensor 0) and ", tensors[i].device(), " (tensor ", i, ")");
  }
}

Shape wrapped_dims(const Shape& dims, int64_t ndim, const char* op) {
  Shape out;
  std::vector<bool> seen(std::max<int64_t>(ndim, 1), false);
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, ndim, op);
    KILN_CHECK(!seen[w], ValueError, "[", op, "] dim ", w, " appears multiple times in the list "
               "of dims ", dims);
    seen[w] = true;
    out.push_back(w);
  }
  return out;
}

Tensor repeat_impl(const Tensor& t, const Shape& repeats, const char* op) {
  const int64_t n = static_cast<int64_t>(repeats.size());
  KILN_CHECK(n >= t.dim(), ValueError, "[", op, "] number of dimensions of repeat dims (", n,
             ") can not be smaller than number of dimensions of tensor (", t.dim(), ")");
  Shape padded(n - t.dim(), 1);
  padded.insert(padded.end(), t.sizes().begin(), t.sizes().end());
  // View t as [1, s0, 1, s1, ...], expand to [r0, s0, r1, s1, ...], copy, merge pairs.
  Shape ones, interleaved, result;
  for (int64_t i = 0; i < n; ++i) {
    KILN_CHECK(repeats[i] >= 0, ValueError, "[", op, "] repeats must be non-negative, got ",
               repeats);
    ones.insert(ones.end(), {1, padded[i]});
    interleaved.insert(interleaved.end(), {repeats[i], padded[i]});
    result.push_back(repeats[i] * padded[i]);
  }
  Tensor out;
  {
    autograd::NoGradGuard no_grad;
    out = reshape(contiguous(expand(reshape(detach(t), ones), interleaved)), result);
  }
  if (autograd::needs_grad({t})) {
    const Shape in = t.sizes();
    autograd::record("RepeatBackward0", {t}, {out}, {}, [=](const BackwardArgs& a) {
      Shape even;
      for (int64_t i = 0; i < n; ++i) even.push_back(2 * i);
      Tensor g = reshape(a.grad(), interleaved);
      return TensorList{reshape(even.empty() ? g : sum(g, even), in)};
    });
  }
  return out;
}

// The in-place form of a triangle op (Note [In-place and autograd]).
Tensor& triangle_(Tensor& t, int64_t diagonal, bool lower) {
  const char* op = lower ? "tril_" : "triu_";
  KILN_CHECK(t.dim() >= 2, ValueError, "[", op, "] input tensor must have at least 2 dimensions, "
             "got shape ", t.sizes());
  if (autograd::needs_grad({t})) {
    check_inplace(t, op);
    rebase_history(t, lower ? tril(t, diagonal) : triu(t, diagonal));
    return t;
  }
  using Kernel = void(const Tensor&, const Tensor&, int64_t);
  static const dispatch::Op<Kernel> tril_k("tril"), triu_k("triu");
  (lower ? tril_k : triu_k)(t.device(), t, t, diagonal);
  t.bump_version();
  return t;
}

}  // namespace

Tensor cat(const TensorList& tensors, int64_t dim) {
  KILN_AUTOCAST(kPromoteCpu, cat, tensors, dim);
  check_list(tensors, "cat");
  const Tensor* ref = nullptr;
  for (size_t i = 0; i < tensors.size(); ++i) {
    KILN_CHECK(tensors[i].dim() > 0, ValueError, "[cat] zero-dimensional tensor (at position ",
               i, ") cannot be concatenated");
    if (!ref && !skipped_in_cat(tensors[i])) ref = &tensors[i];
  }
  const ScalarType dtype = result_type(tensors);
  const Device device = tensors[0].device();
  if (!ref) ref = &tensors[0];  // all are 1-d and empty
  const int64_t d = wrap_dim(dim, ref->dim(), "cat");
  Shape shape = ref->sizes();
  shape[d] = 0;
  TensorList parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (skipped_in_cat(t) && &t != ref) continue;
    KILN_CHECK(t.dim() == ref->dim(), ValueError, "[cat] tensors must have the same number of "
               "dimensions: got ", ref->dim(), " and ", t.dim(), " (tensor ", i, " has shape ",
               t.sizes(), ")");
    for (int64_t k = 0; k < t.dim(); ++k)
      KILN_CHECK(k == d || t.sizes()[k] == shape[k], ValueError, "[cat] sizes of tensors must "
                 "match except in dimension ", d, ". Expected size ", shape[k], " but got size ",
                 t.sizes()[k], " for tensor number ", i, " in the list (shapes ", ref->sizes(),
                 " and ", t.sizes(), ")");
    shape[d] += t.sizes()[d];
    parts.push_back(t);
  }
  Tensor out = empty(shape, dtype, device);
  static const dispatch::Op<void(const Tensor&, const TensorList&, int64_t)> kernel("cat");
  kernel(device, out, parts, d);
  if (autograd::needs_grad(tensors)) {
    // Each input's gradient is its slice of the output's; skipped inputs get an empty one.
    std::vector<int64_t> starts, lengths;
    int64_t start = 0;
    for (const Tensor& t : tensors) {
      const bool skip = skipped_in_cat(t) && &t != ref;
      starts.push_back(skip ? -1 : start);
      lengths.push_back(skip ? 0 : t.sizes()[d]);
      start += lengths.back();
    }
    autograd::record("CatBackward0", tensors, {out}, {}, [=](const BackwardArgs& a) {
      TensorList grads;
      for (size_t i = 0; i < starts.size(); ++i) {
        if (!a.needs(i)) grads.emplace_back();
        else if (starts[i] < 0) grads.push_back(zeros({0}, a.grad().dtype(), a.grad().device()));
        else grads.push_back(slice(a.grad(), d, starts[i], starts[i] + lengths[i]));
      }
      return grads;
    });
  }
  return out;
}

Tensor stack(const TensorList& tensors, int64_t dim) {
  KILN_AUTOCAST(kPromoteCpu, stack, tensors, dim);
  check_list(tensors, "stack");
  for (size_t i = 1; i < tensors.size(); ++i)
    KILN_CHECK(tensors[i].sizes() == tensors[0].sizes(), ValueError,
               "[stack] expects each tensor to be equal size, but got ", tensors[0].sizes(),
               " at entry 0 and ", tensors[i].sizes(), " at entry ", i);
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  Tensor out;
  {
    autograd::NoGradGuard no_grad;
    TensorList parts;
    for (const Tensor& t : tensors) parts.push_back(unsqueeze(detach(t), d));
    out = cat(parts, d);
  }
  if (autograd::needs_grad(tensors)) {
    const size_t n = tensors.size();
    autograd::record("StackBackward0", tensors, {out}, {}, [=](const BackwardArgs& a) {
      TensorList grads(n);
      for (size_t i = 0; i < n; ++i)
        if (a.needs(i)) grads[i] = select(a.grad(), d, static_cast<int64_t>(i));
      return grads;
    });
  }
  return out;
}

Tensor hstack(const TensorList& tensors) {
  check_list(tensors, "hstack");
  TensorList parts;
  bool all_1d = true;
  for (const Tensor& t : tensors) {
    parts.push_back(t.dim() == 0 ? reshape(t, {1}) : t);
    all_1d = all_1d && parts.back().dim() == 1;
  }
  return cat(parts, all_1d ? 0 : 1);
}

Tensor vstack(const TensorList& tensors) {
  check_list(tensors, "vstack");
  TensorList parts;
  for (const Tensor& t : tensors) parts.push_back(t.dim() < 2 ? reshape(t, {1, -1}) : t);
  return cat(parts, 0);
}

Tensor repeat(const Tensor& t, const Shape& repeats) { return repeat_impl(t, repeats, "repeat"); }

Tensor tile(const Tensor& t, const Shape& dims) {
  Shape reps = dims;
  const int64_t missing = t.dim() - static_cast<int64_t>(reps.size());
  if (missing > 0) reps.insert(reps.begin(), missing, 1);
  return repeat_impl(t, reps, "tile");
}

Tensor flip(const Tensor& t, const Shape& dims) {
  const Shape ds = wrapped_dims(dims, t.dim(), "flip");
  Tensor out = empty(t.sizes(), t.dtype(), t.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, const Shape&)> kernel("flip");
  kernel(t.device(), out, t, t.dim() == 0 ? Shape{} : ds);
  if (autograd::needs_grad({t}))
    autograd::record("FlipBackward0", {t}, {out}, {},
                     [ds](const BackwardArgs& a) { return TensorList{flip(a.grad(), ds)}; });
  return out;
}

Tensor roll(const Tensor& t, const Shape& shifts, const Shape& dims) {
  KILN_CHECK(!shifts.empty(), ValueError, "[roll] `shifts` required");
  KILN_CHECK(dims.empty() ? shifts.size() == 1 : shifts.size() == dims.size(), ValueError,
             "[roll] shifts and dimensions must align. shifts: ", shifts.size(), ", dims: ",
             dims.size());
  if (dims.empty()) return reshape(roll(reshape(t, {-1}), shifts, {0}), t.sizes());
  KILN_CHECK(t.dim() > 0, IndexError, "[roll] dimension specified as ", dims[0],
             " but tensor has no dimensions");
  // One shift per dim, in [0, size): repeated dims add up, as in successive rolls.
  Shape per_dim(t.dim(), 0);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], t.dim(), "roll");
    const int64_t size = t.sizes()[d];
    if (size > 0) per_dim[d] = ((per_dim[d] + shifts[i]) % size + size) % size;
  }
  Tensor out = empty(t.sizes(), t.dtype(), t.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, const Shape&)> kernel("roll");
  kernel(t.device(), out, t, per_dim);
  if (autograd::needs_grad({t})) {
    Shape back;
    for (int64_t s : shifts) back.push_back(-s);
    autograd::record("RollBackward0", {t}, {out}, {}, [back, dims](const BackwardArgs& a) {
      return TensorList{roll(a.grad(), back, dims)};
    });
  }
  return out;
}

Tensor tril(const Tensor& t, int64_t diagonal) {
  KILN_CHECK(t.dim() >= 2, ValueError, "[tril] input tensor must have at least 2 dimensions, "
             "got shape ", t.sizes());
  Tensor out = empty(t.sizes(), t.dtype(), t.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, int64_t)> kernel("tril");
  kernel(t.device(), out, t, diagonal);
  if (autograd::needs_grad({t}))
    autograd::record("TrilBackward0", {t}, {out}, {}, [diagonal](const BackwardArgs& a) {
      return TensorList{tril(a.grad(), diagonal)};
    });
  return out;
}

Tensor triu(const Tensor& t, int64_t diagonal) {
  KILN_CHECK(t.dim() >= 2, ValueError, "[triu] input tensor must have at least 2 dimensions, "
             "got shape ", t.sizes());
  Tensor out = empty(t.sizes(), t.dtype(), t.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&, int64_t)> kernel("triu");
  kernel(t.device(), out, t, diagonal);
  if (autograd::needs_grad({t}))
    autograd::record("TriuBackward0", {t}, {out}, {}, [diagonal](const BackwardArgs& a) {
      return TensorList{triu(a.grad(), diagonal)};
    });
  return out;
}

Tensor& tril_(Tensor& t, int64_t diagonal) { return triangle_(t, diagonal, true); }
Tensor& triu_(Tensor& t, int64_t diagonal) { return triangle_(t, diagonal, false); }

}  // namespace kiln
