// Advanced indexing kernels: index (gather), index_put (scatter, atomic adds
// with accumulate) and mask_indices. Out-of-range indices are reported through
// a device flag and become IndexError (Note [Device-side index checks]).
#include "index_common.cuh"
#include "kiln/dispatch.h"
#include "kiln/ops/index.h"

namespace kiln::cuda {
namespace {

// Note [Advanced index layout] (cpu/index.cpp): the output (or values) is
// [pre, B, post]; element (p, b, q) is at self offset pre(p) + gathered(b) + post(q).
struct Layout {
  Strided pre, post;
  int64_t nb = 0, nq = 0;
  int nidx = 0;
  const int64_t* idx[kMaxDims] = {};
  int64_t size[kMaxDims] = {}, stride[kMaxDims] = {};  // self's, along each indexed dim

  // Self's offset of output element e; false (after reporting) for a bad index.
  __device__ __forceinline__ bool locate(int64_t e, int64_t* check, int64_t& off) const {
    const int64_t q = e % nq, r = e / nq, b = r % nb, p = r / nb;
    off = pre.offset(p) + post.offset(q);
    for (int k = 0; k < nidx; ++k) {
      const int64_t i = idx[k][b];
      if (i < -size[k] || i >= size[k]) {
        report(check, i, k);
        return false;
      }
      off += (i < 0 ? i + size[k] : i) * stride[k];
    }
    return true;
  }
};

Layout make_layout(const char* op, const Tensor& self, const TensorList& indices,
                   const Shape& dims) {
  const detail::UnindexedDims u = detail::unindexed_dims(self, dims);
  Layout l;
  l.pre = make_strided(u.pre_sizes, u.pre_strides, op);
  l.post = make_strided(u.post_sizes, u.post_strides, op);
  l.nq = shape_numel(u.post_sizes);
  l.nb = indices[0].numel();
  l.nidx = static_cast<int>(dims.size());
  KILN_CHECK(l.nidx <= kMaxDims, ValueError, "[", op, "] too many index tensors for CUDA");
  for (int k = 0; k < l.nidx; ++k) {
    l.idx[k] = indices[k].data<int64_t>();
    l.size[k] = self.sizes()[dims[k]];
    l.stride[k] = self.strides()[dims[k]];
  }
  return l;
}

template <class E>
__global__ void index_kernel(int64_t n, Layout l, E* out, const E* self, int64_t* check) {
  const int64_t e = thread_index();
  int64_t off;
  if (e < n && l.locate(e, check, off)) out[e] = self[off];
}

// values: the index result's shape with any strides (broadcast values have zeros).
// Without accumulate duplicate indices leave one of their values (which is undefined,
// as in PyTorch on CUDA).
template <bool kAccumulate, class E>
__global__ void index_put_kernel(int64_t n, Layout l, Strided values_s, E* self, const E* values,
                                 int64_t* check) {
  const int64_t e = thread_index();
  int64_t off;
  if (e >= n || !l.locate(e, check, off)) return;
  const E v = values[values_s.offset(e)];
  if constexpr (kAccumulate) atomic_add(self + off, v);
  else self[off] = v;
}

// Runs launch(layout, check) and turns a reported bad index into IndexError.
template <class F>
void run_indexed(const char* op, const Tensor& self, const TensorList& indices, const Shape& dims,
                 int64_t n, const F& launch) {
  const Layout l = make_layout(op, self, indices, dims);
  DeviceGuard guard(self.device());
  DeviceCheck bad(self.device());
  launch(l, bad.ptr(), blocks_for(n, op), current_stream(self.device()));
  check_launch(op);
  bad.raise_if_reported(op, [&](int64_t i, int64_t k) {
    throw IndexError(detail::concat("[", op, "] index ", i, " is out of bounds for dimension ",
                                    dims[k], " with size ", l.size[k]));
  });
}

}  // namespace

void index_cuda(const Tensor& out, const Tensor& self, const TensorList& indices,
                const Shape& dims) {
  const int64_t n = out.numel();
  if (n == 0) return;
  visit_itemsize(self.itemsize(), "index", [&]<class E>(TypeTag<E>) {
    run_indexed("index", self, indices, dims, n,
                [&](const Layout& l, int64_t* check, unsigned grid, cudaStream_t stream) {
                  index_kernel<E><<<grid, kBlock, 0, stream>>>(
                      n, l, static_cast<E*>(out.data_ptr()),
                      static_cast<const E*>(self.data_ptr()), check);
                });
  });
}

void index_put_cuda(const Tensor& self, const Tensor& values, const TensorList& indices,
                    const Shape& dims, bool accumulate) {
  const int64_t n = values.numel();
  if (n == 0) return;
  const Strided values_s = make_strided(values, "index_put_");
  auto put = [&]<bool kAccumulate, class E>() {
    run_indexed("index_put_", self, indices, dims, n,
                [&](const Layout& l, int64_t* check, unsigned grid, cudaStream_t stream) {
                  index_put_kernel<kAccumulate, E><<<grid, kBlock, 0, stream>>>(
                      n, l, values_s, static_cast<E*>(self.data_ptr()),
                      static_cast<const E*>(values.data_ptr()), check);
                });
  };
  if (accumulate) {
    visit_dtype(self.dtype(), [&]<class K>(TypeTag<K>) {
      put.template operator()<true, DeviceT<K>>();
    });
  } else {
    visit_itemsize(self.itemsize(), "index_put_", [&]<class E>(TypeTag<E>) {
      put.template operator()<false, E>();
    });
  }
}

Tensor mask_indices_cuda(const Tensor& mask) {
  return nonzero_positions(mask, /*dims_first=*/true, "mask_indices");
}

KILN_REGISTER_KERNEL(index, CUDA, index_cuda);
KILN_REGISTER_KERNEL(index_put, CUDA, index_put_cuda);
KILN_REGISTER_KERNEL(mask_indices, CUDA, mask_indices_cuda);

}  // namespace kiln::cuda
