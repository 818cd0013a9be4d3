// Embedding lookup and its weight gradient. The gradient is deterministic and
// sums in the CPU kernel's order: indices are stably sorted with their
// positions, then one thread per (distinct index, column) adds that index's
// gradient rows in position order, so both devices give identical sums.
#include <cub/device/device_radix_sort.cuh>

#include "index_common.cuh"
#include "kiln/dispatch.h"

namespace kiln::cuda {
namespace {

template <class E>
__global__ void embedding_kernel(int64_t total, int64_t d, int64_t rows, const E* weight,
                                 const int64_t* idx, E* out, int64_t* check) {
  const int64_t e = thread_index();
  if (e >= total) return;
  const int64_t i = e / d, r = idx[i];
  if (r < 0 || r >= rows) return report(check, r, i);
  out[e] = weight[r * d + e % d];
}

__global__ void sort_inputs_kernel(int64_t n, const int64_t* idx, uint64_t* keys,
                                   int64_t* positions) {
  const int64_t i = thread_index();
  if (i >= n) return;
  keys[i] = static_cast<uint64_t>(idx[i]);  // a bad (negative) index sorts last; it is reported
  positions[i] = i;
}

// Thread (j, c) with j the first of a run of equal sorted keys writes column c of that row.
template <class T>
__global__ void embedding_backward_kernel(int64_t n, int64_t d, int64_t rows, int64_t padding_idx,
                                          const uint64_t* keys, const int64_t* positions,
                                          const T* grad, T* grad_weight, int64_t* check) {
  const int64_t e = thread_index();
  if (e >= n * d) return;
  const int64_t j = e / d, c = e % d;
  const uint64_t key = keys[j];
  if (j > 0 && keys[j - 1] == key) return;
  const int64_t r = static_cast<int64_t>(key);
  if (r == padding_idx) return;
  if (r < 0 || r >= rows) return report(check, r, 0);
  using M = MathT<T>;
  T acc = convert<T>(M(0));
  for (int64_t k = j; k < n && keys[k] == key; ++k)
    acc = convert<T>(add_rn(static_cast<M>(acc), static_cast<M>(grad[positions[k] * d + c])));
  grad_weight[r * d + c] = acc;
}

}  // namespace

// out[i, :] = weight[indices[i], :]; everything contiguous.
void embedding_cuda(const Tensor& out, const Tensor& weight, const Tensor& indices) {
  const int64_t rows = weight.sizes()[0], d = weight.sizes()[1], total = out.numel();
  if (total == 0) return;
  const Device device = weight.device();
  DeviceGuard guard(device);
  DeviceCheck bad(device);
  visit_itemsize(weight.itemsize(), "embedding", [&]<class E>(TypeTag<E>) {
    embedding_kernel<E><<<blocks_for(total, "embedding"), kBlock, 0, current_stream(device)>>>(
        total, d, rows, static_cast<const E*>(weight.data_ptr()), indices.data<int64_t>(),
        static_cast<E*>(out.data_ptr()), bad.ptr());
  });
  check_launch("embedding");
  bad.raise_if_reported("embedding", [&](int64_t r, int64_t) {
    throw IndexError(detail::concat("[embedding] index ", r, " is out of range for weight with ",
                                    rows, " rows"));
  });
}

// grad_weight (zeroed) += grad rows at indices, skipping `padding_idx` (-1: none).
void embedding_backward_cuda(const Tensor& grad_weight, const Tensor& grad,
                             const Tensor& indices, int64_t padding_idx) {
  const int64_t n = indices.numel(), rows = grad_weight.sizes()[0], d = grad_weight.sizes()[1];
  if (n == 0 || d == 0) return;
  const char* op = "embedding_backward";
  const Device device = grad.device();
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  auto buffer = [&] { return empty({n}, ScalarType::Int64, device); };
  Tensor keys_in = buffer(), keys = buffer(), pos_in = buffer(), pos = buffer();
  auto* k_in = static_cast<uint64_t*>(keys_in.data_ptr());
  auto* k_out = static_cast<uint64_t*>(keys.data_ptr());
  sort_inputs_kernel<<<blocks_for(n, op), kBlock, 0, stream>>>(n, indices.data<int64_t>(), k_in,
                                                               pos_in.data<int64_t>());
  check_launch(op);
  // Radix sort is stable: equal indices keep their positions in increasing order.
  // Keys beyond the low bits sort wrongly only when an index is out of range, which fails.
  const int end_bit = bits_for(rows);
  cub_run(device, op, [&](void* temp, size_t& bytes) {
    return cub::DeviceRadixSort::SortPairs(temp, bytes, k_in, k_out, pos_in.data<int64_t>(),
                                           pos.data<int64_t>(), n, 0, end_bit, stream);
  });
  DeviceCheck bad(device);
  visit_floating(grad.dtype(), op, [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    embedding_backward_kernel<T><<<blocks_for(n * d, op), kBlock, 0, stream>>>(
        n, d, rows, padding_idx, k_out, pos.data<int64_t>(), static_cast<const T*>(grad.data_ptr()),
        static_cast<T*>(grad_weight.data_ptr()), bad.ptr());
  });
  check_launch(op);
  bad.raise_if_reported(op, [&](int64_t r, int64_t) {
    throw IndexError(detail::concat("[", op, "] index ", r, " is out of range for ", rows,
                                    " embeddings"));
  });
}

KILN_REGISTER_KERNEL(embedding, CUDA, embedding_cuda);
KILN_REGISTER_KERNEL(embedding_backward, CUDA, embedding_backward_cuda);

}  // namespace kiln::cuda
