#include "kiln/tensor.h"

#include "kiln/autograd/meta.h"
#include "kiln/error.h"

namespace kiln {

TensorImpl::TensorImpl(std::shared_ptr<Storage> storage_, Shape sizes_, Shape strides_,
                       int64_t offset_, ScalarType dtype_)
    : storage(std::move(storage_)),
      sizes(std::move(sizes_)),
      strides(std::move(strides_)),
      offset(offset_),
      dtype(dtype_) {
  refresh_metadata();
}

TensorImpl::~TensorImpl() = default;

void TensorImpl::refresh_metadata() {
  int64_t n = 1;
  bool contiguous = true;
  int64_t expected = 1;
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
    n *= sizes[d];
    if (sizes[d] != 1) {
      if (strides[d] != expected) contiguous = false;
      expected *= sizes[d];
    }
  }
  numel = n;
  is_contiguous = contiguous || n == 0;
}

int64_t Tensor::size(int64_t d) const {
  KILN_CHECK(dim() > 0, IndexError, "[size] dimension specified as ", d,
             " but tensor has no dimensions");
  return impl_->sizes[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  KILN_CHECK(dim() > 0, IndexError, "[stride] dimension specified as ", d,
             " but tensor has no dimensions");
  return impl_->strides[wrap_dim(d, dim(), "stride")];
}

Shape contiguous_strides(const Shape& sizes) {
  Shape strides(sizes.size());
  int64_t s = 1;
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
    strides[d] = s;
    s *= sizes[d] > 1 ? sizes[d] : 1;
  }
  return strides;
}

int64_t shape_numel(const Shape& sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = ndim > 0 ? -ndim : -1, hi = ndim > 0 ? ndim - 1 : 0;
  KILN_CHECK(dim >= lo && dim <= hi, IndexError, "[", op,
             "] dimension out of range (expected to be in range of [", lo, ", ", hi,
             "], but got ", dim, ")");
  return dim < 0 ? dim + (ndim > 0 ? ndim : 1) : dim;
}

Tensor make_tensor(std::shared_ptr<Storage> storage, Shape sizes, Shape strides, int64_t offset,
                   ScalarType dtype) {
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), std::move(sizes),
                                             std::move(strides), offset, dtype));
}

Tensor make_view(const Tensor& base, Shape sizes, Shape strides, int64_t offset) {
  Tensor v = make_tensor(base.storage(), std::move(sizes), std::move(strides), offset,
                         base.dtype());
  v.impl()->view_base = base.impl()->view_base ? base.impl()->view_base : base.impl_ptr();
  return v;
}

// ---- autograd accessors -------------------------------------------------------------

bool Tensor::requires_grad() const {
  const auto& m = impl_->autograd;
  return m && (m->requires_grad || m->grad_fn);
}

void Tensor::set_requires_grad(bool requires_grad) {
  auto& m = autograd_meta();
  KILN_CHECK(!m.grad_fn, Error,
             "[requires_grad_] you can only change requires_grad flags of leaf variables. If you "
             "want to use a computed variable in a subgraph that doesn't require differentiation "
             "use var_no_grad = var.detach().");
  KILN_CHECK(!requires_grad || is_floating(dtype()), Error,
             "[requires_grad_] only tensors of floating point dtype can require gradients, got ",
             dtype());
  m.requires_grad = requires_grad;
}

bool Tensor::is_leaf() const { return !impl_->autograd || !impl_->autograd->grad_fn; }

Tensor Tensor::grad() const { return impl_->autograd ? impl_->autograd->grad : Tensor(); }

void Tensor::set_grad(const Tensor& grad) {
  if (grad.defined()) {
    KILN_CHECK(grad.sizes() == sizes(), ValueError,
               "[grad] assigned grad has shape ", grad.sizes(), " but the tensor has shape ",
               sizes());
    KILN_CHECK(grad.dtype() == dtype(), TypeError, "[grad] assigned grad has dtype ",
               grad.dtype(), " but the tensor has dtype ", dtype());
    KILN_CHECK(grad.device() == device(), ValueError, "[grad] assigned grad is on ",
               grad.device(), " but the tensor is on ", device());
  }
  autograd_meta().grad = grad;
}

const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<autograd::Node> none;
  return impl_->autograd ? impl_->autograd->grad_fn : none;
}

uint32_t Tensor::output_nr() const { return impl_->autograd ? impl_->autograd->output_nr : 0; }

autograd::AutogradMeta& Tensor::autograd_meta() const {
  if (!impl_->autograd) impl_->autograd = std::make_unique<autograd::AutogradMeta>();
  return *impl_->autograd;
}

}  // namespace kiln
