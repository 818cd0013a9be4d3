#pragma once
#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln {

// dst[...] = src, broadcasting src and converting dtype; differentiable. Between
// devices, non_blocking lets the copy run asynchronously where pinned host memory
// allows it (PyTorch's semantics: the caller synchronizes before using the data).
KILN_API Tensor& copy_(Tensor& dst, const Tensor& src, bool non_blocking = false);
KILN_API Tensor& fill_(Tensor& t, Scalar value);
KILN_API Tensor& zero_(Tensor& t);
// A copy with its own contiguous memory; differentiable.
KILN_API Tensor clone(const Tensor& t);
// `t` itself when already contiguous, else a contiguous copy.
KILN_API Tensor contiguous(const Tensor& t);
// Shares memory, drops autograd history.
KILN_API Tensor detach(const Tensor& t);
// Conversions; return `t` itself when nothing changes and !copy.
KILN_API Tensor to_dtype(const Tensor& t, ScalarType dtype, bool copy = false);
KILN_API Tensor to_device(const Tensor& t, Device device, bool copy = false,
                          bool non_blocking = false);
// The value of a one-element tensor (bool, int64 or double).
KILN_API Scalar item(const Tensor& t);

// Note [In-place and autograd]: an in-place op on a tensor that needs grad is
// computed out of place by `compute` (so saved tensors stay intact), written
// back into `self`'s memory, and `self` takes over the new history. Views of
// tensors that require grad are refused (not supported yet); so are leaves
// that require grad, as in PyTorch.
KILN_API void check_inplace(const Tensor& self, const char* op);
// Note [Overlapping memory]: as in PyTorch, writing `out` from `in` is refused
// when several elements of `out` share memory (expanded outputs) or when `in`
// and `out` partly overlap (x[1:].copy_(x[:-1])): kernels would read values
// they already overwrote. Layouts too complex to decide (non-contiguous views of
// one storage) are let through, as PyTorch does.
KILN_API void check_no_overlap(const Tensor& out, const Tensor& in, const char* op);
KILN_API void rebase_history(Tensor& self, const Tensor& result);

}  // namespace kiln
