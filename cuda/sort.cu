// Sorting kernels: sort (and topk, which the front end runs as sort's first k)
// and unique. Stable LSD radix sorts from CUB on keys that order as the CPU
// compares (NaN largest, -0.0 equal to 0.0): all rows are sorted together by
// value, then stably by row, so ties keep their input order in every row.
#include <cub/device/device_radix_sort.cuh>

#include <tuple>

#include "index_common.cuh"
#include "kiln/dispatch.h"

namespace kiln::cuda {
namespace {

// Radix key of a value: unsigned, ordered as the values (NaN above +inf).
template <class T>
using KeyOf = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;

template <class T>
__device__ __forceinline__ KeyOf<T> radix_key(T v) {
  using U = KeyOf<T>;
  if constexpr (std::is_same_v<T, bool> || std::is_unsigned_v<T>) {
    return static_cast<U>(v);
  } else if constexpr (std::is_integral_v<T>) {  // flip the sign bit of the widened value
    using S = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;
    return static_cast<U>(static_cast<S>(v)) ^ (U(1) << (8 * sizeof(U) - 1));
  } else {
    using F = std::conditional_t<sizeof(T) == 8, double, float>;
    F f = static_cast<F>(static_cast<MathT<T>>(v));
    if (f != f) return ~U(0);
    if (f == F(0)) f = F(0);  // -0.0 sorts as 0.0 (equal, so input order decides)
    U bits;
    memcpy(&bits, &f, sizeof(F));
    constexpr U kSign = U(1) << (8 * sizeof(U) - 1);
    return (bits & kSign) ? ~bits : (bits | kSign);
  }
}

// keys[e] (complemented for descending) and the element's own linear index e.
template <class T>
__global__ void make_keys_kernel(int64_t total, Strided in_s, const T* in, bool descending,
                                 KeyOf<T>* keys, int64_t* order) {
  const int64_t e = thread_index();
  if (e >= total) return;
  const KeyOf<T> k = radix_key(in[in_s.offset(e)]);
  keys[e] = descending ? ~k : k;
  order[e] = e;
}

__global__ void row_keys_kernel(int64_t total, int64_t n, const int64_t* order, uint64_t* rows) {
  const int64_t e = thread_index();
  if (e < total) rows[e] = static_cast<uint64_t>(order[e] / n);
}

// Slot j < k of row r: the element at order[r * n + j] (a linear index of input).
template <class E>
__global__ void write_sorted_kernel(int64_t rows, int64_t n, int64_t k, const int64_t* order,
                                    Strided in_s, const E* in, Strided values_s, E* values,
                                    Strided indices_s, int64_t* indices) {
  const int64_t e = thread_index();
  if (e >= rows * k) return;
  const int64_t r = e / k, j = e % k;
  const int64_t src = order[r * n + j];
  values[values_s.offset(e)] = in[in_s.offset(src)];
  indices[indices_s.offset(e)] = src - r * n;
}

// A tensor seen with at least one dim (a 0-d tensor is one row of one element).
Strided strided_1d(const Tensor& t, const char* op) {
  return t.dim() == 0 ? make_strided(Shape{1}, Shape{1}, op) : make_strided(t, op);
}

// unique: sorted values and their input positions in, distinct values out.
// gid: inclusive scan of "starts a new group" flags (1-based group ids).
template <class T>
__global__ void group_flags_kernel(int64_t n, const T* sorted, int64_t* flags) {
  const int64_t j = thread_index();
  if (j >= n) return;
  using M = MathT<T>;
  flags[j] = j == 0 || !(static_cast<M>(sorted[j - 1]) == static_cast<M>(sorted[j]));
}

template <class T>
__global__ void unique_write_kernel(int64_t n, const T* sorted, const int64_t* order,
                                    const int64_t* gid, T* values, int64_t* starts,
                                    int64_t* inverse) {
  const int64_t j = thread_index();
  if (j >= n) return;
  const int64_t g = gid[j] - 1;
  if (j == 0 || gid[j - 1] != gid[j]) {
    values[g] = sorted[j];
    starts[g] = j;
  }
  if (inverse) inverse[order[j]] = g;
}

__global__ void counts_kernel(int64_t u, int64_t n, const int64_t* starts, int64_t* counts) {
  const int64_t g = thread_index();
  if (g < u) counts[g] = (g + 1 < u ? starts[g + 1] : n) - starts[g];
}

}  // namespace

void sort_cuda(const Tensor& values, const Tensor& indices, const Tensor& input, int64_t k,
               bool descending) {
  const char* op = "sort";
  const int64_t n = input.dim() == 0 ? 1 : input.size(-1);
  const int64_t total = input.numel();
  if (total == 0 || k == 0) return;
  const int64_t rows = total / n;
  const Device device = input.device();
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  const Strided in_s = strided_1d(input, op);
  Tensor order_in = empty({total}, ScalarType::Int64, device);
  Tensor order = empty({total}, ScalarType::Int64, device);
  visit_dtype(input.dtype(), [&]<class K>(TypeTag<K>) {
    using T = DeviceT<K>;
    using U = KeyOf<T>;
    const ScalarType key_dtype = sizeof(U) == 8 ? ScalarType::Int64 : ScalarType::Int32;
    Tensor keys_in = empty({total}, key_dtype, device), keys = empty({total}, key_dtype, device);
    make_keys_kernel<T><<<blocks_for(total, op), kBlock, 0, stream>>>(
        total, in_s, static_cast<const T*>(input.data_ptr()), descending,
        static_cast<U*>(keys_in.data_ptr()), order_in.data<int64_t>());
    check_launch(op);
    cub_run(device, op, [&](void* temp, size_t& bytes) {
      return cub::DeviceRadixSort::SortPairs(
          temp, bytes, static_cast<const U*>(keys_in.data_ptr()), static_cast<U*>(keys.data_ptr()),
          order_in.data<int64_t>(), order.data<int64_t>(), total, 0, int(8 * sizeof(U)), stream);
    });
  });
  if (rows > 1) {  // stably regroup by row: the value order within each row stays
    Tensor row_in = empty({total}, ScalarType::Int64, device);
    Tensor row_out = empty({total}, ScalarType::Int64, device);
    auto* r_in = static_cast<uint64_t*>(row_in.data_ptr());
    row_keys_kernel<<<blocks_for(total, op), kBlock, 0, stream>>>(total, n, order.data<int64_t>(),
                                                                 r_in);
    check_launch(op);
    cub_run(device, op, [&](void* temp, size_t& bytes) {
      return cub::DeviceRadixSort::SortPairs(temp, bytes, r_in,
                                             static_cast<uint64_t*>(row_out.data_ptr()),
                                             order.data<int64_t>(), order_in.data<int64_t>(), total,
                                             0, bits_for(rows), stream);
    });
    std::swap(order, order_in);
  }
  visit_itemsize(input.itemsize(), op, [&]<class E>(TypeTag<E>) {
    write_sorted_kernel<E><<<blocks_for(rows * k, op), kBlock, 0, stream>>>(
        rows, n, k, order.data<int64_t>(), in_s, static_cast<const E*>(input.data_ptr()),
        strided_1d(values, op), static_cast<E*>(values.data_ptr()), strided_1d(indices, op),
        indices.data<int64_t>());
  });
  check_launch(op);
}

// input: contiguous and 1-D. Equal values merge; NaNs don't (NaN != NaN), as on the CPU.
std::tuple<Tensor, Tensor, Tensor> unique_cuda(const Tensor& input, bool return_inverse,
                                               bool return_counts) {
  const char* op = "unique";
  const int64_t n = input.numel();
  const Device device = input.device();
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  Tensor sorted = empty({n}, input.dtype(), device);
  Tensor order = empty({n}, ScalarType::Int64, device);
  sort_cuda(sorted, order, input, n, false);
  Tensor flags = empty({n}, ScalarType::Int64, device), gid = empty({n}, ScalarType::Int64, device);
  int64_t u = 0;
  if (n > 0) {
    visit_dtype(input.dtype(), [&]<class K>(TypeTag<K>) {
      group_flags_kernel<<<blocks_for(n, op), kBlock, 0, stream>>>(
          n, static_cast<const DeviceT<K>*>(sorted.data_ptr()), flags.data<int64_t>());
    });
    check_launch(op);
    u = inclusive_sum(flags, gid, op);  // the number of distinct values
  }
  Tensor values = empty({u}, input.dtype(), device);
  Tensor starts = empty({u}, ScalarType::Int64, device);
  Tensor inverse = return_inverse ? empty({n}, ScalarType::Int64, device) : Tensor();
  Tensor counts = return_counts ? empty({u}, ScalarType::Int64, device) : Tensor();
  if (n > 0) {
    visit_itemsize(input.itemsize(), op, [&]<class E>(TypeTag<E>) {
      unique_write_kernel<E><<<blocks_for(n, op), kBlock, 0, stream>>>(
          n, static_cast<const E*>(sorted.data_ptr()), order.data<int64_t>(),
          gid.data<int64_t>(), static_cast<E*>(values.data_ptr()), starts.data<int64_t>(),
          return_inverse ? inverse.data<int64_t>() : nullptr);
    });
    check_launch(op);
    if (return_counts) {
      counts_kernel<<<blocks_for(u, op), kBlock, 0, stream>>>(u, n, starts.data<int64_t>(),
                                                             counts.data<int64_t>());
      check_launch(op);
    }
  }
  return {values, inverse, counts};
}

KILN_REGISTER_KERNEL(sort, CUDA, sort_cuda);
KILN_REGISTER_KERNEL(unique, CUDA, unique_cuda);

}  // namespace kiln::cuda
