#include "kiln/ops/shape.h"

#include <algorithm>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/error.h"
#include "kiln/ops/join.h"
#include "kiln/ops/view.h"

namespace kiln {

Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim) {
  const int64_t nd = t.dim();
  const int64_t start = wrap_dim(start_dim, nd, "flatten"), end = wrap_dim(end_dim, nd, "flatten");
  KILN_CHECK(start <= end, ValueError, "[flatten] start_dim (", start_dim,
             ") cannot come after end_dim (", end_dim, ")");
  if (nd == 0) return reshape(t, {1});
  if (start == end) return t;
  Shape shape(t.sizes().begin(), t.sizes().begin() + start);
  int64_t merged = 1;
  for (int64_t d = start; d <= end; ++d) merged *= t.sizes()[d];
  shape.push_back(merged);
  shape.insert(shape.end(), t.sizes().begin() + end + 1, t.sizes().end());
  return reshape(t, shape);
}

Tensor unflatten(const Tensor& t, int64_t dim, const Shape& sizes) {
  KILN_CHECK(t.dim() > 0, IndexError, "[unflatten] dimension specified as ", dim,
             " but tensor has no dimensions");
  const int64_t d = wrap_dim(dim, t.dim(), "unflatten");
  KILN_CHECK(!sizes.empty(), ValueError, "[unflatten] sizes must be non-empty");
  const Shape inner = infer_size(sizes, t.sizes()[d], "unflatten");
  Shape shape(t.sizes().begin(), t.sizes().begin() + d);
  shape.insert(shape.end(), inner.begin(), inner.end());
  shape.insert(shape.end(), t.sizes().begin() + d + 1, t.sizes().end());
  return view(t, shape);
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  KILN_CHECK(t.dim() > 0, IndexError, "[narrow] cannot be applied to a 0-dim tensor");
  const int64_t d = wrap_dim(dim, t.dim(), "narrow");
  const int64_t size = t.sizes()[d];
  KILN_CHECK(start >= -size && start <= size, IndexError, "[narrow] start (", start,
             ") is out of range for dimension ", d, " of size ", size);
  if (start < 0) start += size;
  KILN_CHECK(length >= 0 && start <= size - length, ValueError, "[narrow] start (", start,
             ") + length (", length, ") exceeds dimension size (", size, ")");
  return slice(t, d, start, start + length, 1);
}

TensorList split_with_sizes(const Tensor& t, const Shape& split_sizes, int64_t dim) {
  KILN_CHECK(t.dim() > 0, ValueError, "[split] cannot split a 0-dim tensor");
  const int64_t d = wrap_dim(dim, t.dim(), "split");
  int64_t total = 0;
  for (int64_t s : split_sizes) {
    KILN_CHECK(s >= 0, ValueError, "[split] split sizes must be non-negative, got ",
               split_sizes);
    total += s;
  }
  KILN_CHECK(total == t.sizes()[d], ValueError, "[split] split_with_sizes expects split_sizes ",
             split_sizes, " to sum exactly to ", t.sizes()[d],
             " (input tensor's size at dimension ", d, ")");
  TensorList out;
  {
    // One node for all pieces, whose backward concatenates their gradients: per-piece
    // slice backwards would each fill a zero tensor of t's full size and add them up.
    autograd::NoGradGuard no_grad;
    int64_t start = 0;
    for (int64_t s : split_sizes) {
      out.push_back(slice(t, d, start, start + s, 1));
      start += s;
    }
  }
  if (autograd::needs_grad({t}) && !out.empty())
    autograd::record("SplitWithSizesBackward0", {t}, out, {},
                     [d](const autograd::BackwardArgs& a) { return TensorList{cat(a.grads, d)}; });
  return out;
}

TensorList split(const Tensor& t, int64_t split_size, int64_t dim) {
  KILN_CHECK(t.dim() > 0, ValueError, "[split] cannot split a 0-dim tensor");
  const int64_t d = wrap_dim(dim, t.dim(), "split");
  const int64_t size = t.sizes()[d];
  KILN_CHECK(split_size > 0 || (split_size == 0 && size == 0), ValueError,
             "[split] split_size can only be 0 if dimension size is 0, but got split_size ",
             split_size, " for dimension ", d, " of size ", size);
  // An empty dim still gives one (empty) piece, as in PyTorch.
  const int64_t pieces = size <= split_size ? 1 : (size - 1) / split_size + 1;
  Shape sizes(pieces, split_size);
  sizes.back() = size - split_size * (pieces - 1);
  return split_with_sizes(t, sizes, d);
}

TensorList chunk(const Tensor& t, int64_t chunks, int64_t dim) {
  KILN_CHECK(t.dim() > 0, ValueError, "[chunk] expects at least a 1-dimensional tensor");
  KILN_CHECK(chunks > 0, ValueError, "[chunk] expects `chunks` to be greater than 0, got: ",
             chunks);
  const int64_t d = wrap_dim(dim, t.dim(), "chunk");
  const int64_t size = t.sizes()[d];
  const int64_t split_size = size == 0 ? 0 : (size - 1) / chunks + 1;
  // PyTorch: an empty dim with several chunks gives `chunks` empty pieces.
  if (split_size == 0 && size == 0) return split_with_sizes(t, Shape(chunks, 0), d);
  return split(t, split_size, d);
}

TensorList unbind(const Tensor& t, int64_t dim) {
  KILN_CHECK(t.dim() > 0, IndexError, "[unbind] dimension specified as ", dim,
             " but tensor has no dimensions");
  const int64_t d = wrap_dim(dim, t.dim(), "unbind");
  TensorList out;
  out.reserve(t.sizes()[d]);
  {
    // One node for all slices: per-slice select backwards would each build a zero tensor of
    // t's full size, making backward quadratic in the number of slices (RNN time steps).
    autograd::NoGradGuard no_grad;
    for (int64_t i = 0; i < t.sizes()[d]; ++i) out.push_back(select(t, d, i));
  }
  if (autograd::needs_grad({t}) && !out.empty())
    autograd::record("UnbindBackward0", {t}, out, {},
                     [d](const autograd::BackwardArgs& a) { return TensorList{stack(a.grads, d)}; });
  return out;
}

Tensor t(const Tensor& x) {
  KILN_CHECK(x.dim() <= 2, ValueError, "[t] expects a tensor with <= 2 dimensions, but self is ",
             x.dim(), "D");
  return x.dim() < 2 ? transpose(x, 0, 0) : transpose(x, 0, 1);
}

Tensor reverse_dims(const Tensor& x) {
  Shape dims(x.dim());
  for (int64_t i = 0; i < x.dim(); ++i) dims[i] = x.dim() - 1 - i;
  return permute(x, dims);
}

Tensor matrix_transpose(const Tensor& x) {
  KILN_CHECK(x.dim() >= 2, ValueError,
             "[mT] tensor.mT is only supported on matrices or batches of matrices. Got ", x.dim(),
             "-D tensor.");
  return transpose(x, -2, -1);
}

Tensor movedim(const Tensor& x, const Shape& source, const Shape& destination) {
  KILN_CHECK(source.size() == destination.size(), ValueError,
             "[movedim] Invalid source or destination dims: source (", source,
             " dims) should contain the same number of dims as destination (", destination,
             " dims)");
  const int64_t nd = x.dim();
  Shape order(nd, -1);
  std::vector<bool> src_used(std::max<int64_t>(nd, 1), false);
  for (size_t i = 0; i < source.size(); ++i) {
    const int64_t s = wrap_dim(source[i], nd, "movedim");
    const int64_t d = wrap_dim(destination[i], nd, "movedim");
    KILN_CHECK(!src_used[s], ValueError, "[movedim] repeated dim in `source` (", source, ")");
    KILN_CHECK(nd == 0 || order[d] == -1, ValueError, "[movedim] repeated dim in `destination` (",
               destination, ")");
    src_used[s] = true;
    if (nd > 0) order[d] = s;
  }
  // The other dims keep their relative order in the free slots.
  int64_t next = 0;
  for (int64_t d = 0; d < nd; ++d) {
    if (order[d] != -1) continue;
    while (src_used[next]) ++next;
    order[d] = next++;
  }
  return nd == 0 ? transpose(x, 0, 0) : permute(x, order);
}

}  // namespace kiln
