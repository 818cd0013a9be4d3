#pragma once
// Helpers of the index, sort, join and random kernels: strided addressing,
// device-side index checks, atomics for every dtype, CUB scratch memory and
// small device-to-host reads.
#include <cstring>
#include <type_traits>

#include "kiln/ops/creation.h"
#include "kiln/rounding.h"
#include "loops.cuh"

namespace kiln::cuda {

constexpr int kMaxDims = TensorIter::kMaxDims;

// Element offset of a row-major linear index in a (sizes, strides) layout.
struct Strided {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  __device__ __forceinline__ int64_t offset(int64_t linear) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      off += (linear % sizes[d]) * strides[d];
      linear /= sizes[d];
    }
    return off;
  }
};

inline Strided make_strided(const Shape& sizes, const Shape& strides, const char* op) {
  KILN_CHECK(sizes.size() <= static_cast<size_t>(kMaxDims), ValueError, "[", op,
             "] the CUDA kernel supports at most ", kMaxDims, " dims, got ", sizes.size());
  Strided s;
  s.ndim = static_cast<int>(sizes.size());
  for (int d = 0; d < s.ndim; ++d) {
    s.sizes[d] = sizes[d];
    s.strides[d] = strides[d];
  }
  return s;
}
inline Strided make_strided(const Tensor& t, const char* op) {
  return make_strided(t.sizes(), t.strides(), op);
}

// Bits that hold every value in [0, count): radix sorts of such keys skip the rest.
inline int bits_for(int64_t count) {
  int bits = 1;
  while (bits < 63 && (int64_t(1) << bits) < count) ++bits;
  return bits;
}

__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// Copies `count` values of T from the device to the host and waits for them.
template <class T>
void read_back(T* host, const void* device_ptr, size_t count, Device d, const char* op) {
  DeviceGuard guard(d);  // the legacy default stream is per device
  const cudaStream_t stream = current_stream(d);
  check(cudaMemcpyAsync(host, device_ptr, count * sizeof(T), cudaMemcpyDeviceToHost, stream), op);
  check(cudaStreamSynchronize(stream), op);
}

// Note [Device-side index checks]: a kernel that reads indices (or other values
// the host cannot see) reports the first bad one through a small zeroed device
// buffer {flag, value, where}; after the kernel the host reads it back (a
// synchronizing copy of 24 bytes) and throws a kiln error naming the op, as the
// CPU kernel would. A device-side assert instead would poison the CUDA context.
class DeviceCheck {
 public:
  explicit DeviceCheck(Device d) : device_(d), buf_(zeros({3}, ScalarType::Int64, d)) {}
  int64_t* ptr() const { return buf_.data<int64_t>(); }
  // Calls fail(value, where) when a kernel reported; fail throws.
  template <class F>
  void raise_if_reported(const char* op, const F& fail) const {
    int64_t h[3];
    read_back(h, buf_.data_ptr(), 3, device_, op);
    if (h[0] != 0) fail(h[1], h[2]);
  }

 private:
  Device device_;
  Tensor buf_;
};

__device__ __forceinline__ void report(int64_t* check, int64_t value, int64_t where) {
  if (atomicCAS(reinterpret_cast<unsigned long long*>(check), 0ull, 1ull) == 0ull) {
    check[1] = value;
    check[2] = where;
  }
}

// *addr = f(*addr) atomically for a 1, 2, 4 or 8-byte T, by compare-and-swap
// on the aligned word that holds it.
template <class T, class F>
__device__ void atomic_update(T* addr, const F& f) {
  if constexpr (sizeof(T) == 8 || sizeof(T) == 4) {
    using W = std::conditional_t<sizeof(T) == 8, unsigned long long, unsigned int>;
    W* word = reinterpret_cast<W*>(addr);
    W old = *word, assumed;
    do {
      assumed = old;
      T cur;
      memcpy(&cur, &assumed, sizeof(T));
      const T next = f(cur);
      W bits;
      memcpy(&bits, &next, sizeof(T));
      old = atomicCAS(word, assumed, bits);
    } while (assumed != old);
  } else {
    static_assert(sizeof(T) == 1 || sizeof(T) == 2, "unsupported element size");
    using U = std::conditional_t<sizeof(T) == 2, unsigned short, unsigned char>;
    const uintptr_t p = reinterpret_cast<uintptr_t>(addr);
    unsigned int* word = reinterpret_cast<unsigned int*>(p & ~uintptr_t(3));
    const unsigned shift = static_cast<unsigned>(p & 3) * 8;  // little-endian
    const unsigned mask = ((1u << (8 * sizeof(T))) - 1) << shift;
    unsigned int old = *word, assumed;
    do {
      assumed = old;
      const U cur_bits = static_cast<U>((assumed & mask) >> shift);
      T cur;
      memcpy(&cur, &cur_bits, sizeof(T));
      const T next = f(cur);
      U next_bits;
      memcpy(&next_bits, &next, sizeof(T));
      const unsigned next_word = (assumed & ~mask) | (static_cast<unsigned>(next_bits) << shift);
      old = atomicCAS(word, assumed, next_word);
    } while (assumed != old);
  }
}

// *addr += v atomically (|| for bool), in MathT like the CPU's OpMath; native
// atomics where the hardware has them.
template <class T>
__device__ __forceinline__ void atomic_add(T* addr, T v) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> ||
                std::is_same_v<T, int> || std::is_same_v<T, __half> ||
                std::is_same_v<T, __nv_bfloat16>) {
    atomicAdd(addr, v);
  } else if constexpr (std::is_same_v<T, int64_t>) {  // two's complement wraps the same
    atomicAdd(reinterpret_cast<unsigned long long*>(addr), static_cast<unsigned long long>(v));
  } else if constexpr (std::is_same_v<T, bool>) {
    atomic_update(addr, [v](bool a) { return a || v; });
  } else {
    atomic_update(addr, [v](T a) { return static_cast<T>(a + v); });
  }
}
template <class T>
__device__ __forceinline__ void atomic_mul(T* addr, T v) {
  atomic_update(addr, [v](T a) {
    if constexpr (std::is_same_v<T, bool>) return a && v;
    else return static_cast<T>(static_cast<MathT<T>>(a) * static_cast<MathT<T>>(v));
  });
}

// Runs a CUB device algorithm: call(temp, bytes) once to size its scratch
// space, then with scratch from kiln's stream-ordered allocator.
template <class F>
void cub_run(Device d, const char* op, const F& call) {
  size_t bytes = 0;
  check(call(nullptr, bytes), op);
  const Tensor scratch = empty({static_cast<int64_t>(bytes > 0 ? bytes : 1)}, ScalarType::UInt8, d);
  check(call(scratch.data_ptr(), bytes), op);
}

// Moves whole elements by size: indexing and sorting never convert dtypes.
template <size_t N>
struct alignas(N) Bytes {
  unsigned char b[N];
};
template <class F>
void visit_itemsize(size_t itemsize, const char* op, F&& f) {
  switch (itemsize) {
    case 1: return f(TypeTag<Bytes<1>>{});
    case 2: return f(TypeTag<Bytes<2>>{});
    case 4: return f(TypeTag<Bytes<4>>{});
    case 8: return f(TypeTag<Bytes<8>>{});
  }
  throw Error(detail::concat("[", op, "] unsupported element size ", itemsize));
}

}  // namespace kiln::cuda

namespace kiln::cuda {

// sums = the inclusive prefix sum of n >= 1 int64 flags (CUB); returns the
// total, read back to the host (callers size a result with it).
int64_t inclusive_sum(const Tensor& flags, const Tensor& sums, const char* op);

// Coordinates of the nonzero elements of a contiguous tensor, in row-major
// order: int64 [count, dim] (nonzero), or [dim, count] with dims_first
// (mask_indices). The count is read back to the host to size the result.
Tensor nonzero_positions(const Tensor& in, bool dims_first, const char* op);

}  // namespace kiln::cuda

namespace kiln::cuda {

// The CUDA sort kernel (sort.cu): the first k of each row of `input` along its
// last dim in sorted order, stable, NaN largest, with their positions.
void sort_cuda(const Tensor& values, const Tensor& indices, const Tensor& input, int64_t k,
               bool descending);

}  // namespace kiln::cuda
