#include "kiln/ops/copy.h"

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/reduce.h"

namespace kiln {

using autograd::BackwardArgs;

// dst = src without autograd: the device's "copy" kernel when both sides share a
// device, else the "transfer" kernel of the non-CPU side (which alone knows both
// memories). non_blocking lets a transfer return before it has finished, as in
// PyTorch (it matters only for pinned host memory).
static void copy_data(const Tensor& dst, const Tensor& src, bool non_blocking) {
  if (dst.device() == src.device()) {
    static const dispatch::Op<void(const Tensor&, const Tensor&)> copy_kernel("copy");
    copy_kernel(dst.device(), dst, src);
    return;
  }
  static const dispatch::Op<void(const Tensor&, const Tensor&, bool)> transfer("transfer");
  transfer.across_devices(dst.device().is_cpu() ? src.device() : dst.device(), dst, src,
                          non_blocking);
}

void check_inplace(const Tensor& self, const char* op) {
  if (!autograd::is_grad_enabled()) return;
  KILN_CHECK(!(self.is_leaf() && self.requires_grad()), Error, "[", op,
             "] a leaf Variable that requires grad is being used in an in-place operation.");
  const auto& base = self.impl()->view_base;
  KILN_CHECK(!(base && (self.requires_grad() || (base->autograd && Tensor(base).requires_grad()))),
             NotImplementedError, "[", op,
             "] in-place modification of a view of a tensor that requires grad is not supported "
             "yet; clone() the tensor first or use an out-of-place op");
}

void check_no_overlap(const Tensor& out, const Tensor& in, const char* op) {
  if (out.numel() <= 1) return;
  for (int64_t d = 0; d < out.dim(); ++d)
    KILN_CHECK(out.strides()[d] != 0 || out.sizes()[d] == 1, Error, "[", op,
               "] unsupported operation: more than one element of the written-to tensor refers "
               "to a single memory location. Please clone() the tensor before performing the "
               "operation.");
  if (!in.defined() || in.numel() == 0 || in.storage() != out.storage() || !out.is_contiguous() ||
      !in.is_contiguous())
    return;
  const int64_t a0 = out.storage_offset() * out.itemsize(), a1 = a0 + out.numel() * out.itemsize();
  const int64_t b0 = in.storage_offset() * in.itemsize(), b1 = b0 + in.numel() * in.itemsize();
  KILN_CHECK(a1 <= b0 || b1 <= a0 || (a0 == b0 && a1 == b1), Error, "[", op,
             "] unsupported operation: some elements of the input tensor and the written-to "
             "tensor refer to a single memory location. Please clone() the tensor before "
             "performing the operation.");
}

void rebase_history(Tensor& self, const Tensor& result) {
  {
    autograd::NoGradGuard no_grad;
    copy_data(self, result, false);
  }
  self.bump_version();
  if (result.requires_grad()) {
    autograd::set_history(self, result.grad_fn(), result.output_nr());
  }
}


Tensor& copy_(Tensor& dst, const Tensor& src, bool non_blocking) {
  KILN_CHECK(is_expandable_to(src.sizes(), dst.sizes()), ValueError, "[copy_] source shape ",
             src.sizes(), " cannot be broadcast to destination shape ", dst.sizes());
  check_no_overlap(dst, src, "copy_");
  if (autograd::needs_grad({dst, src})) {
    check_inplace(dst, "copy_");
    // The result is src broadcast and converted; the old dst value gets no gradient.
    Tensor result = empty(dst.sizes(), dst.dtype(), dst.device());
    {
      autograd::NoGradGuard no_grad;
      copy_data(result, src, non_blocking);
    }
    const Device src_device = src.device();
    if (src.requires_grad())
      autograd::record("CopyBackwards", {dst, src}, {result}, {}, [src_device](const BackwardArgs& a) {
        return TensorList{zeros_like(a.grad()), to_device(a.grad(), src_device)};
      });
    rebase_history(dst, result);
    return dst;
  }
  copy_data(dst, src, non_blocking);
  dst.bump_version();
  return dst;
}

Tensor& fill_(Tensor& t, Scalar value) {
  check_inplace(t, "fill_");
  static const dispatch::Op<void(const Tensor&, Scalar)> fill_kernel("fill");
  fill_kernel(t.device(), t, value);
  t.bump_version();
  if (t.requires_grad() && autograd::is_grad_enabled()) {
    // The new value is a constant: no gradient flows to the old one.
    autograd::record("FillBackward0", {t}, {t}, {},
                     [](const BackwardArgs& a) { return TensorList{zeros_like(a.grad())}; });
  }
  return t;
}

Tensor& zero_(Tensor& t) { return fill_(t, 0); }

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.sizes(), t.dtype(), t.device());
  copy_data(out, t, false);
  if (autograd::needs_grad({t}))
    autograd::record("CloneBackward0", {t}, {out}, {},
                     [](const BackwardArgs& a) { return TensorList{a.grad()}; });
  return out;
}

Tensor contiguous(const Tensor& t) { return t.is_contiguous() ? t : clone(t); }

Tensor detach(const Tensor& t) {
  Tensor out = make_tensor(t.storage(), t.sizes(), t.strides(), t.storage_offset(), t.dtype());
  out.impl()->view_base = t.impl()->view_base;
  return out;
}

Tensor to_dtype(const Tensor& t, ScalarType dtype, bool copy) {
  if (t.dtype() == dtype && !copy) return t;
  Tensor out = empty(t.sizes(), dtype, t.device());
  copy_data(out, t, false);
  if (autograd::needs_grad({t}) && is_floating(dtype)) {
    const ScalarType from = t.dtype();
    autograd::record("ToCopyBackward0", {t}, {out}, {}, [from](const BackwardArgs& a) {
      return TensorList{to_dtype(a.grad(), from)};
    });
  }
  return out;
}

Tensor to_device(const Tensor& t, Device device, bool copy, bool non_blocking) {
  device = resolve_device(device);
  if (t.device() == device && !copy) return t;
  Tensor out = empty(t.sizes(), t.dtype(), device);
  copy_data(out, t, non_blocking);
  if (autograd::needs_grad({t})) {
    const Device from = t.device();
    autograd::record("ToCopyBackward0", {t}, {out}, {}, [from](const BackwardArgs& a) {
      return TensorList{to_device(a.grad(), from)};
    });
  }
  return out;
}

Scalar item(const Tensor& t) {
  KILN_CHECK(t.numel() == 1, ValueError, "[item] a Tensor with ", t.numel(),
             " elements cannot be converted to Scalar");
  Tensor c = to_device(detach(t), Device());
  return visit_dtype(c.dtype(), [&]<class T>(TypeTag<T>) -> Scalar {
    const T v = *c.data<T>();
    if constexpr (std::is_same_v<T, bool>) return Scalar(v);
    else if constexpr (std::is_integral_v<T>) return Scalar(static_cast<int64_t>(v));
    else return Scalar(static_cast<double>(static_cast<OpMath<T>>(v)));
  });
}

}  // namespace kiln
