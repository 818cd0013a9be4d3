// Joining and rearranging kernels: cat, flip, roll, tril/triu. flip and roll
// are the device-generic strided copies of the CPU (kiln::detail in ops/join.h).
#include <climits>

#include "index_common.cuh"
#include "kiln/dispatch.h"
#include "kiln/ops/join.h"
#include "kiln/ops/view.h"

namespace kiln::cuda {
namespace {

// Row i of each matrix keeps columns [lo, hi) and zeroes the rest. One thread per
// element; in place (out == in) each thread reads and writes only its own element.
template <class E, bool kLower>
__global__ void triangle_kernel(int64_t total, int64_t m, int64_t n, int64_t diagonal,
                                Strided out_s, Strided in_s, E* out, const E* in) {
  const int64_t e = thread_index();
  if (e >= total) return;
  const int64_t j = e % n, i = (e / n) % m;
  const bool keep = kLower ? j <= i + diagonal : j >= i + diagonal;
  out[out_s.offset(e)] = keep ? in[in_s.offset(e)] : E{};
}

template <bool kLower>
void triangle(const Tensor& out, const Tensor& in, int64_t diagonal, const char* op) {
  const int64_t total = in.numel(), nd = in.dim();
  if (total == 0) return;
  const Strided out_s = make_strided(out, op), in_s = make_strided(in, op);
  DeviceGuard guard(out.device());
  visit_itemsize(in.itemsize(), op, [&]<class E>(TypeTag<E>) {
    triangle_kernel<E, kLower><<<blocks_for(total, op), kBlock, 0, current_stream(out.device())>>>(
        total, in.sizes()[nd - 2], in.sizes()[nd - 1], diagonal, out_s, in_s,
        static_cast<E*>(out.data_ptr()), static_cast<const E*>(in.data_ptr()));
  });
  check_launch(op);
}

}  // namespace

// `out` is freshly allocated (contiguous), viewed as [outer, out.size(dim) * inner]:
// each dense input of out's dtype is one pitched 2-D copy into its column block;
// any other input goes through the copy kernel.
void cat_cuda(const Tensor& out, const TensorList& inputs, int64_t dim) {
  const int64_t item = static_cast<int64_t>(out.itemsize());
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < dim; ++k) outer *= out.sizes()[k];
  for (int64_t k = dim + 1; k < out.dim(); ++k) inner *= out.sizes()[k];
  const int64_t out_row = out.sizes()[dim] * inner * item;
  char* base = static_cast<char*>(out.data_ptr());
  DeviceGuard guard(out.device());
  const cudaStream_t stream = current_stream(out.device());
  static const dispatch::Op<void(const Tensor&, const Tensor&)> copy("copy");
  int64_t offset = 0;
  for (const Tensor& t : inputs) {
    const int64_t len = t.sizes()[dim];
    if (t.numel() > 0 && t.is_contiguous() && t.dtype() == out.dtype() && out_row <= INT_MAX) {
      const size_t row = static_cast<size_t>(len * inner * item);
      check(cudaMemcpy2DAsync(base + offset * inner * item, static_cast<size_t>(out_row),
                              t.data_ptr(), row, row, static_cast<size_t>(outer),
                              cudaMemcpyDeviceToDevice, stream),
            "cat");
    } else if (t.numel() > 0) {
      copy(out.device(), slice(out, dim, offset, offset + len, 1), t);
    }
    offset += len;
  }
}

void tril_cuda(const Tensor& out, const Tensor& in, int64_t diagonal) {
  triangle<true>(out, in, diagonal, "tril");
}
void triu_cuda(const Tensor& out, const Tensor& in, int64_t diagonal) {
  triangle<false>(out, in, diagonal, "triu");
}

KILN_REGISTER_KERNEL(cat, CUDA, cat_cuda);
KILN_REGISTER_KERNEL(flip, CUDA, detail::flip_by_copy);
KILN_REGISTER_KERNEL(roll, CUDA, detail::roll_by_copy);
KILN_REGISTER_KERNEL(tril, CUDA, tril_cuda);
KILN_REGISTER_KERNEL(triu, CUDA, triu_cuda);

}  // namespace kiln::cuda
