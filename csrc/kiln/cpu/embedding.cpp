// Embedding lookup and its weight gradient.
#include <algorithm>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/parallel.h"
#include "kiln/tensor.h"

namespace kiln::cpu {
namespace {

// out[i, :] = weight[indices[i], :]; everything contiguous.
void embedding_kernel(const Tensor& out, const Tensor& weight, const Tensor& indices) {
  const int64_t n = indices.numel(), rows = weight.sizes()[0], d = weight.sizes()[1];
  const int64_t* idx = indices.data<int64_t>();
  visit_dtype(weight.dtype(), [&]<class T>(TypeTag<T>) {
    const T* w = weight.data<T>();
    T* o = out.data<T>();
    parallel_for(0, n, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(d, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t i = b; i < e; ++i) {
                     const int64_t r = idx[i];
                     KILN_CHECK(r >= 0 && r < rows, IndexError, "[embedding] index ", r,
                                " is out of range for weight with ", rows, " rows");
                     std::copy(w + r * d, w + (r + 1) * d, o + i * d);
                   }
                 });
  });
}

// grad_weight (zeroed) += grad rows at indices, skipping `padding_idx` (-1: none).
// Threads split the columns, so repeated indices never race and sums keep index order.
void embedding_backward_kernel(const Tensor& grad_weight, const Tensor& grad, const Tensor& indices,
                               int64_t padding_idx) {
  const int64_t n = indices.numel(), d = grad_weight.sizes()[1];
  const int64_t* idx = indices.data<int64_t>();
  visit_floating(grad.dtype(), "embedding_backward", [&]<class T>(TypeTag<T>) {
    const T* g = grad.data<T>();
    T* gw = grad_weight.data<T>();
    parallel_for(0, d, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1)),
                 [&](int64_t c0, int64_t c1) {
                   for (int64_t i = 0; i < n; ++i) {
                     if (idx[i] == padding_idx) continue;
                     T* dst = gw + idx[i] * d;
                     const T* src = g + i * d;
                     for (int64_t c = c0; c < c1; ++c)
                       dst[c] = static_cast<T>(static_cast<OpMath<T>>(dst[c]) +
                                               static_cast<OpMath<T>>(src[c]));
                   }
                 });
  });
}

}  // namespace

KILN_REGISTER_KERNEL(embedding, CPU, embedding_kernel);
KILN_REGISTER_KERNEL(embedding_backward, CPU, embedding_backward_kernel);

}  // namespace kiln::cpu
