// Index-driven kernels: gather, scatter (replace/add/multiply), index_range,
// nonzero. Out-of-range indices are reported through a device flag and become
// IndexError after the kernel (Note [Device-side index checks]).
#include <cub/device/device_scan.cuh>

#include <climits>

#include "index_common.cuh"
#include "kiln/dispatch.h"
#include "kiln/ops/gather.h"

namespace kiln::cuda {
namespace {

// Note [Index loops along dim] (cpu/gather.cpp), one thread per position p of
// `index`: `a` is addressed through the index (gather's input, scatter's self)
// with the coordinate along `dim` replaced by index[p], `b` directly (gather's
// output, scatter's src). Strides are in elements; 0-d tensors are 1-d of one.
struct DimIndex {
  int ndim = 0, dim = 0;
  int64_t a_size = 0;  // a's size along dim
  int64_t sizes[kMaxDims] = {};
  int64_t a_strides[kMaxDims] = {}, b_strides[kMaxDims] = {}, i_strides[kMaxDims] = {};

  // Offsets of position p in a (before adding the index) and b, and index's value.
  __device__ __forceinline__ void locate(int64_t p, const int64_t* index, int64_t& a_off,
                                         int64_t& b_off, int64_t& v) const {
    int64_t i_off = 0;
    a_off = b_off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t c = p % sizes[d];
      p /= sizes[d];
      i_off += c * i_strides[d];
      b_off += c * b_strides[d];
      if (d != dim) a_off += c * a_strides[d];
    }
    v = index[i_off];
  }
};

Shape sizes_1d(const Tensor& t) { return t.dim() == 0 ? Shape{1} : t.sizes(); }
Shape strides_1d(const Tensor& t) { return t.dim() == 0 ? Shape{1} : t.strides(); }

DimIndex make_dim_index(const Tensor& a, const Tensor& b, const Tensor& index, int64_t dim,
                        const char* op) {
  const Shape sizes = sizes_1d(index);
  KILN_CHECK(sizes.size() <= static_cast<size_t>(kMaxDims), ValueError, "[", op,
             "] the CUDA kernel supports at most ", kMaxDims, " dims, got ", sizes.size());
  DimIndex s;
  s.ndim = static_cast<int>(sizes.size());
  s.dim = static_cast<int>(dim);
  s.a_size = sizes_1d(a)[dim];
  const Shape as = strides_1d(a), bs = strides_1d(b), is = strides_1d(index);
  for (int d = 0; d < s.ndim; ++d) {
    s.sizes[d] = sizes[d];
    s.a_strides[d] = as[d];
    s.b_strides[d] = bs[d];
    s.i_strides[d] = is[d];
  }
  return s;
}

enum class Mode { Gather, Scatter, ScatterAdd, ScatterMultiply };

template <Mode kMode, class E>
__global__ void dim_index_kernel(int64_t n, DimIndex s, E* a, E* b, const int64_t* index,
                                 int64_t* check) {
  const int64_t p = thread_index();
  if (p >= n) return;
  int64_t a_off, b_off, v;
  s.locate(p, index, a_off, b_off, v);
  if (v < 0 || v >= s.a_size) {
    report(check, v, 0);
    return;
  }
  E* x = a + a_off + v * s.a_strides[s.dim];
  if constexpr (kMode == Mode::Gather) b[b_off] = *x;
  else if constexpr (kMode == Mode::Scatter) *x = b[b_off];  // duplicates: one write wins
  else if constexpr (kMode == Mode::ScatterAdd) atomic_add(x, b[b_off]);
  else atomic_mul(x, b[b_off]);
}

template <Mode kMode, class E>
void run_dim_index(const Tensor& a, const Tensor& b, const Tensor& index, int64_t dim,
                   const char* op) {
  const int64_t n = index.numel();
  if (n == 0) return;
  const DimIndex s = make_dim_index(a, b, index, dim, op);
  const Device device = a.device();
  DeviceGuard guard(device);
  DeviceCheck bad(device);
  dim_index_kernel<kMode, E><<<blocks_for(n, op), kBlock, 0, current_stream(device)>>>(
      n, s, static_cast<E*>(a.data_ptr()), static_cast<E*>(b.data_ptr()),
      index.data<int64_t>(), bad.ptr());
  check_launch(op);
  bad.raise_if_reported(op, [&](int64_t v, int64_t) {
    throw IndexError(detail::concat("[", op, "] index ", v, " is out of bounds for dimension ",
                                    dim, " with size ", s.a_size));
  });
}

__global__ void index_range_kernel(int64_t n, Strided s, const int64_t* t, long long* lo_hi) {
  long long lo = LLONG_MAX, hi = LLONG_MIN;
  for (int64_t i = thread_index(); i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const long long v = t[s.offset(i)];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  atomicMin(lo_hi, lo);
  atomicMax(lo_hi + 1, hi);
}

template <class T>
__global__ void nonzero_flags_kernel(int64_t n, const T* x, int64_t* flags) {
  const int64_t i = thread_index();
  if (i < n) flags[i] = convert<bool>(x[i]) ? 1 : 0;
}

// pos: inclusive prefix sum of the flags; element i is nonzero when its count rises.
__global__ void nonzero_write_kernel(int64_t n, Strided shape, const int64_t* pos, int64_t count,
                                     bool dims_first, int64_t* out) {
  const int64_t i = thread_index();
  if (i >= n || pos[i] == (i > 0 ? pos[i - 1] : 0)) return;
  const int64_t row = pos[i] - 1, nd = shape.ndim;
  int64_t rest = i;
  for (int64_t d = nd - 1; d >= 0; --d) {
    out[dims_first ? d * count + row : row * nd + d] = rest % shape.sizes[d];
    rest /= shape.sizes[d];
  }
}

}  // namespace

int64_t inclusive_sum(const Tensor& flags, const Tensor& sums, const char* op) {
  const int64_t n = flags.numel();
  const Device device = flags.device();
  int64_t* out = sums.data<int64_t>();
  cub_run(device, op, [&](void* temp, size_t& bytes) {
    return cub::DeviceScan::InclusiveSum(temp, bytes, flags.data<int64_t>(), out, n,
                                         current_stream(device));
  });
  int64_t total = 0;
  read_back(&total, out + (n - 1), 1, device, op);
  return total;
}

Tensor nonzero_positions(const Tensor& in, bool dims_first, const char* op) {
  const int64_t n = in.numel(), nd = in.dim();
  const Device device = in.device();
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  Tensor flags = empty({n}, ScalarType::Int64, device), pos = empty({n}, ScalarType::Int64, device);
  int64_t count = 0;
  if (n > 0) {
    visit_dtype(in.dtype(), [&]<class K>(TypeTag<K>) {
      nonzero_flags_kernel<<<blocks_for(n, op), kBlock, 0, stream>>>(
          n, static_cast<const DeviceT<K>*>(in.data_ptr()), flags.data<int64_t>());
    });
    check_launch(op);
    count = inclusive_sum(flags, pos, op);
  }
  Tensor out = empty(dims_first ? Shape{nd, count} : Shape{count, nd}, ScalarType::Int64, device);
  if (count > 0 && nd > 0) {
    nonzero_write_kernel<<<blocks_for(n, op), kBlock, 0, stream>>>(
        n, make_strided(in, op), pos.data<int64_t>(), count, dims_first, out.data<int64_t>());
    check_launch(op);
  }
  return out;
}

void gather_cuda(const Tensor& out, const Tensor& input, const Tensor& index, int64_t dim,
                 const char* op) {
  visit_itemsize(input.itemsize(), op, [&]<class E>(TypeTag<E>) {
    run_dim_index<Mode::Gather, E>(input, out, index, dim, op);
  });
}

void scatter_cuda(const Tensor& self, const Tensor& index, const Tensor& src, int64_t dim,
                  ScatterReduce reduce, const char* op) {
  if (reduce == ScatterReduce::None) {
    return visit_itemsize(self.itemsize(), op, [&]<class E>(TypeTag<E>) {
      run_dim_index<Mode::Scatter, E>(self, src, index, dim, op);
    });
  }
  visit_dtype(self.dtype(), [&]<class K>(TypeTag<K>) {
    if (reduce == ScatterReduce::Add)
      run_dim_index<Mode::ScatterAdd, DeviceT<K>>(self, src, index, dim, op);
    else
      run_dim_index<Mode::ScatterMultiply, DeviceT<K>>(self, src, index, dim, op);
  });
}

// Smallest and largest value of an int64 tensor with at least one element,
// reduced on the device and read back (the caller sizes a result with them).
void index_range_cuda(const Tensor& t, int64_t* lo, int64_t* hi) {
  const int64_t n = t.numel();
  const Device device = t.device();
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  Tensor lo_hi = empty({2}, ScalarType::Int64, device);
  const long long init[2] = {LLONG_MAX, LLONG_MIN};
  check(cudaMemcpyAsync(lo_hi.data_ptr(), init, sizeof(init), cudaMemcpyHostToDevice, stream),
        "index_range");
  const unsigned grid = std::min<unsigned>(blocks_for(n, "index_range"), 1024);
  index_range_kernel<<<grid, kBlock, 0, stream>>>(n, make_strided(t, "index_range"),
                                                  t.data<int64_t>(),
                                                  static_cast<long long*>(lo_hi.data_ptr()));
  check_launch("index_range");
  int64_t h[2];
  read_back(h, lo_hi.data_ptr(), 2, device, "index_range");
  *lo = h[0];
  *hi = h[1];
}

Tensor nonzero_cuda(const Tensor& in) { return nonzero_positions(in, false, "nonzero"); }

KILN_REGISTER_KERNEL(gather, CUDA, gather_cuda);
KILN_REGISTER_KERNEL(scatter, CUDA, scatter_cuda);
KILN_REGISTER_KERNEL(index_range, CUDA, index_range_cuda);
KILN_REGISTER_KERNEL(nonzero, CUDA, nonzero_cuda);

}  // namespace kiln::cuda
