#include "kiln/ops/view.h"

#include <algorithm>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {
// Strides for viewing a tensor of (sizes, strides) as `shape` without a copy, if possible.
std::optional<Shape> view_strides(const Shape& sizes_in, const Shape& strides_in,
                                 const Shape& shape) {
  if (shape_numel(sizes_in) == 0) return contiguous_strides(shape);
  // A 0-dim tensor views like a one-element 1-d tensor.
  const Shape sizes = sizes_in.empty() ? Shape{1} : sizes_in;
  const Shape strides = strides_in.empty() ? Shape{1} : strides_in;
  Shape out(shape.size());
  // Walk chunks of old dims that are contiguous among themselves.
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
    tensor_numel *= sizes[d];
    if (d == 0 || (sizes[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}
}  // namespace

Shape infer_size(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      KILN_CHECK(infer < 0, ValueError, "[", op, "] only one dimension can be inferred, got ",
                 shape);
      infer = static_cast<int>(i);
    } else {
      KILN_CHECK(shape[i] >= 0, ValueError, "[", op, "] invalid shape dimension ", shape[i],
                 " in ", shape);
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    KILN_CHECK(known != 0 && numel % known == 0, ValueError, "[", op, "] shape ", shape,
               " is invalid for input of size ", numel);
    out[infer] = numel / known;
  } else {
    KILN_CHECK(known == numel, ValueError, "[", op, "] shape ", shape,
               " is invalid for input of size ", numel);
  }
  return out;
}

Tensor as_strided(const Tensor& t, const Shape& sizes, const Shape& strides,
                  std::optional<int64_t> storage_offset) {
  KILN_CHECK(sizes.size() == strides.size(), ValueError, "[as_strided] sizes ", sizes,
             " and strides ", strides, " must have the same length");
  const int64_t offset = storage_offset.value_or(t.storage_offset());
  KILN_CHECK(offset >= 0, ValueError, "[as_strided] negative storage offset ", offset);
  int64_t last = offset;
  bool empty_view = false;
  for (size_t i = 0; i < sizes.size(); ++i) {
    KILN_CHECK(sizes[i] >= 0 && strides[i] >= 0, ValueError,
               "[as_strided] negative size or stride in ", sizes, " / ", strides);
    if (sizes[i] == 0) empty_view = true;
    else last += (sizes[i] - 1) * strides[i];
  }
  KILN_CHECK(empty_view || static_cast<size_t>(last + 1) * t.itemsize() <= t.storage()->nbytes(),
             ValueError, "[as_strided] view of sizes ", sizes, " strides ", strides,
             " offset ", offset, " is out of bounds of storage of ", t.storage()->nbytes(),
             " bytes");
  KILN_CHECK(!autograd::needs_grad({t}), NotImplementedError,
             "[as_strided] is not differentiable yet; detach() the input first");
  return make_view(t, sizes, strides, offset);
}

Tensor view(const Tensor& t, const Shape& shape) {
  const Shape sizes = infer_size(shape, t.numel(), "view");
  auto strides = view_strides(t.sizes(), t.strides(), sizes);
  KILN_CHECK(strides.has_value(), Error, "[view] size ", sizes,
             " is not compatible with input tensor's size ", t.sizes(), " and stride ",
             t.strides(), " (at least one dimension spans across two contiguous subspaces). "
             "Use .reshape(...) instead.");
  Tensor out = make_view(t, sizes, *strides, t.storage_offset());
  if (autograd::needs_grad({t})) {
    const Shape in = t.sizes();
    autograd::record("ViewBackward0", {t}, {out}, {},
                     [in](const BackwardArgs& a) { return TensorList{reshape(a.grad(), in)}; });
  }
  return out;
}

Tensor reshape(const Tensor& t, const Shape& shape) {
  const Shape sizes = infer_size(shape, t.numel(), "reshape");
  if (view_strides(t.sizes(), t.strides(), sizes)) return view(t, sizes);
  return view(clone(t), sizes);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  const int64_t nd = static_cast<int64_t>(shape.size()), td = t.dim();
  KILN_CHECK(nd >= td, ValueError, "[expand] the number of sizes provided (", nd,
             ") must be greater or equal to the number of dimensions in the tensor (", td, ")");
  Shape sizes(nd), strides(nd);
  for (int64_t i = nd - 1; i >= 0; --i) {
    const int64_t j = i - (nd - td);
    if (j >= 0) {
      const int64_t s = t.sizes()[j];
      const int64_t want = shape[i] == -1 ? s : shape[i];
      KILN_CHECK(s == want || s == 1, ValueError, "[expand] the expanded size of the tensor (",
                 want, ") must match the existing size (", s, ") at non-singleton dimension ", i,
                 ". Target sizes: ", shape, ". Tensor sizes: ", t.sizes());
      KILN_CHECK(want >= 0, ValueError, "[expand] invalid size ", want, " in ", shape);
      sizes[i] = want;
      strides[i] = s == want ? t.strides()[j] : 0;
    } else {
      KILN_CHECK(shape[i] >= 0, ValueError, "[expand] the expanded size ", shape[i],
                 " is not allowed in a leading, non-existing dimension ", i);
      sizes[i] = shape[i];
      strides[i] = 0;
    }
  }
  Tensor out = make_view(t, sizes, strides, t.storage_offset());
  if (autograd::needs_grad({t})) {
    const Shape in = t.sizes();
    autograd::record("ExpandBackward0", {t}, {out}, {},
                     [in](const BackwardArgs& a) { return TensorList{sum_to(a.grad(), in)}; });
  }
  return out;
}

Tensor permute(const Tensor& t, const Shape& dims) {
  const int64_t nd = t.dim();
  KILN_CHECK(static_cast<int64_t>(dims.size()) == nd, ValueError,
             "[permute] number of dims don't match: input has ", nd, " dims but got ", dims);
  Shape sizes(nd), strides(nd), inverse(nd);
  std::vector<bool> seen(nd, false);
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t d = wrap_dim(dims[i], nd, "permute");
    KILN_CHECK(!seen[d], ValueError, "[permute] repeated dim in ", dims);
    seen[d] = true;
    sizes[i] = t.sizes()[d];
    strides[i] = t.strides()[d];
    inverse[d] = i;
  }
  Tensor out = make_view(t, sizes, strides, t.storage_offset());
  if (autograd::needs_grad({t}))
    autograd::record("PermuteBackward0", {t}, {out}, {}, [inverse](const BackwardArgs& a) {
      return TensorList{permute(a.grad(), inverse)};
    });
  return out;
}

Tensor transpose(const Tensor& t, int64_t dim0, int64_t dim1) {
  const int64_t nd = t.dim();
  const int64_t a = wrap_dim(dim0, nd, "transpose"), b = wrap_dim(dim1, nd, "transpose");
  if (nd == 0) return view(t, {});
  Shape dims(nd);
  for (int64_t i = 0; i < nd; ++i) dims[i] = i;
  std::swap(dims[a], dims[b]);
  return permute(t, dims);
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  const int64_t d = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape sizes = t.sizes(), strides = t.strides();
  const int64_t st = d < t.dim() ? sizes[d] * strides[d] : 1;
  sizes.insert(sizes.begin() + d, 1);
  strides.insert(strides.begin() + d, st);
  Tensor out = make_view(t, sizes, strides, t.storage_offset());
  if (autograd::needs_grad({t}))
    autograd::record("UnsqueezeBackward0", {t}, {out}, {}, [d](const BackwardArgs& a) {
      return TensorList{squeeze(a.grad(), {d})};
    });
  return out;
}

Tensor squeeze(const Tensor& t, const Shape& dims) {
  const int64_t nd = t.dim();
  std::vector<bool> drop(nd, false);
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, nd, "squeeze");
    if (nd > 0 && t.sizes()[w] == 1) drop[w] = true;
  }
  Shape sizes, strides;
  for (int64_t i = 0; i < nd; ++i) {
    if (drop[i]) continue;
    sizes.push_back(t.sizes()[i]);
    strides.push_back(t.strides()[i]);
  }
  Tensor out = make_view(t, sizes, strides, t.storage_offset());
  if (autograd::needs_grad({t})) {
    const Shape in = t.sizes();
    autograd::record("SqueezeBackward0", {t}, {out}, {},
                     [in](const BackwardArgs& a) { return TensorList{reshape(a.grad(), in)}; });
  }
  return out;
}

Tensor squeeze(const Tensor& t) {
  Shape dims;
  for (int64_t i = 0; i < t.dim(); ++i) dims.push_back(i);
  return squeeze(t, dims);
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  KILN_CHECK(t.dim() > 0, IndexError, "[select] cannot index a 0-dim tensor");
  const int64_t d = wrap_dim(dim, t.dim(), "select");
  const int64_t size = t.sizes()[d];
  KILN_CHECK(index >= -size && index < size, IndexError, "[select] index ", index,
             " is out of bounds for dimension ", d, " with size ", size);
  if (index < 0) index += size;
  Shape sizes = t.sizes(), strides = t.strides();
  const int64_t offset = t.storage_offset() + index * strides[d];
  sizes.erase(sizes.begin() + d);
  strides.erase(strides.begin() + d);
  Tensor out = make_view(t, sizes, strides, offset);
  if (autograd::needs_grad({t})) {
    const Shape in = t.sizes();
    autograd::record("SelectBackward0", {t}, {out}, {}, [=](const BackwardArgs& a) {
      return TensorList{select_backward(a.grad(), in, d, index)};
    });
  }
  return out;
}

Tensor slice(const Tensor& t, int64_t dim, std::optional<int64_t> start_opt,
             std::optional<int64_t> end_opt, int64_t step) {
  KILN_CHECK(t.dim() > 0, IndexError, "[slice] cannot slice a 0-dim tensor");
  KILN_CHECK(step > 0, ValueError, "[slice] step must be greater than zero, got ", step);
  const int64_t d = wrap_dim(dim, t.dim(), "slice");
  const int64_t size = t.sizes()[d];
  auto clamp_index = [size](int64_t i) {
    if (i < 0) i += size;
    return std::clamp<int64_t>(i, 0, size);
  };
  const int64_t start = start_opt ? clamp_index(*start_opt) : 0;
  const int64_t end = std::max(start, end_opt ? clamp_index(*end_opt) : size);
  Shape sizes = t.sizes(), strides = t.strides();
  sizes[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  Tensor out = make_view(t, sizes, strides, t.storage_offset() + start * t.strides()[d]);
  if (autograd::needs_grad({t})) {
    const Shape in = t.sizes();
    autograd::record("SliceBackward0", {t}, {out}, {}, [=](const BackwardArgs& a) {
      return TensorList{slice_backward(a.grad(), in, d, start, end, step)};
    });
  }
  return out;
}

namespace {
// Zeros of `input_sizes` with `grad` written into the region `region` selects; the
// region's own view op is the backward of this one (so double backward works).
template <class Region>
Tensor scatter_into_zeros(const char* name, const Tensor& grad, const Shape& input_sizes,
                          const Region& region) {
  Tensor out = zeros(input_sizes, grad.dtype(), grad.device());
  {
    autograd::NoGradGuard no_grad;
    Tensor dst = region(out);
    copy_(dst, grad);
  }
  if (autograd::needs_grad({grad}))
    autograd::record(name, {grad}, {out}, {}, [region](const BackwardArgs& a) {
      return TensorList{region(a.grad())};
    });
  return out;
}
}  // namespace

Tensor select_backward(const Tensor& grad, const Shape& input_sizes, int64_t dim, int64_t index) {
  return scatter_into_zeros("SelectBackwardBackward0", grad, input_sizes,
                            [dim, index](const Tensor& t) { return select(t, dim, index); });
}

Tensor slice_backward(const Tensor& grad, const Shape& input_sizes, int64_t dim, int64_t start,
                      int64_t end, int64_t step) {
  return scatter_into_zeros("SliceBackwardBackward0", grad, input_sizes,
                            [=](const Tensor& t) { return slice(t, dim, start, end, step); });
}

}  // namespace kiln
