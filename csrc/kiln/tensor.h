#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/macros.h"
#include "kiln/storage.h"

namespace kiln {

using Shape = std::vector<int64_t>;

namespace autograd {
struct AutogradMeta;
class Node;
}  // namespace autograd

// What every tensor pays for: keep it small (see DESIGN.md, "Habits").
struct KILN_API TensorImpl {
  TensorImpl(std::shared_ptr<Storage> storage, Shape sizes, Shape strides, int64_t offset,
             ScalarType dtype);
  ~TensorImpl();
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;

  // Recomputes numel and contiguity after sizes/strides change.
  void refresh_metadata();

  std::shared_ptr<Storage> storage;
  Shape sizes;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  int64_t numel = 1;
  ScalarType dtype;
  bool is_contiguous = true;
  // A Python number turned into a 0-dim tensor; it only weakly affects type promotion.
  bool is_wrapped_number = false;
  std::unique_ptr<autograd::AutogradMeta> autograd;
  // Set on views: the tensor whose memory this one looks at (see Note [In-place on views]).
  std::shared_ptr<TensorImpl> view_base;
};

// A cheap handle to a TensorImpl; copies share the tensor (like torch.Tensor in Python).
class KILN_API Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

  const Shape& sizes() const { return impl_->sizes; }
  const Shape& shape() const { return impl_->sizes; }
  const Shape& strides() const { return impl_->strides; }
  int64_t size(int64_t dim) const;    // dim may be negative
  int64_t stride(int64_t dim) const;  // dim may be negative
  int64_t dim() const { return static_cast<int64_t>(impl_->sizes.size()); }
  int64_t numel() const { return impl_->numel; }
  int64_t storage_offset() const { return impl_->offset; }
  ScalarType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device(); }
  size_t itemsize() const { return kiln::itemsize(impl_->dtype); }
  bool is_contiguous() const { return impl_->is_contiguous; }
  bool is_floating_point() const { return is_floating(impl_->dtype); }
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }

  void* data_ptr() const {
    return static_cast<char*>(impl_->storage->data()) + impl_->offset * itemsize();
  }
  template <class T>
  T* data() const {
    return static_cast<T*>(data_ptr());
  }

  // Autograd state (see autograd/meta.h).
  bool requires_grad() const;
  void set_requires_grad(bool requires_grad);  // leaves only; throws otherwise
  bool is_leaf() const;
  Tensor grad() const;
  void set_grad(const Tensor& grad);
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  uint32_t output_nr() const;
  autograd::AutogradMeta& autograd_meta() const;  // creates it on first use
  uint32_t version() const { return impl_->storage->version(); }
  void bump_version() const { impl_->storage->bump_version(); }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

using TensorList = std::vector<Tensor>;

// Strides of a row-major contiguous tensor of this shape.
KILN_API Shape contiguous_strides(const Shape& sizes);
KILN_API int64_t shape_numel(const Shape& sizes);
// Turns a possibly negative dim into [0, ndim); IndexError naming `op` otherwise.
KILN_API int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
// A tensor over `storage` with the given geometry (no copy).
KILN_API Tensor make_tensor(std::shared_ptr<Storage> storage, Shape sizes, Shape strides,
                            int64_t offset, ScalarType dtype);
// A view of `base` with new geometry; shares memory and records the base.
KILN_API Tensor make_view(const Tensor& base, Shape sizes, Shape strides, int64_t offset);

}  // namespace kiln
