// copy (dtype conversion, broadcasting, strides, and moves between host and
// devices) and fill.
#include "kiln/dispatch.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "allocator.h"
#include "kiln/scalar.h"
#include "loops.cuh"

namespace kiln::cuda {
namespace {

struct Identity {
  template <class T>
  __device__ T operator()(T v) const { return v; }
};

template <class T>
struct FillValue {
  T value;
  __device__ T operator()() const { return value; }
};

// A same-dtype copy whose innermost dim is dense in both operands, moved in
// Words (16, 8 or 4 bytes) where the rows, the other strides and the pointers
// allow it: a fraction of the threads and index math of one per element.
// Attention's head transposes ((N, L, H, D) <-> (N, H, L, D)) are such copies.
// False, having done nothing, where Word does not fit.
template <class Word>
bool copy_in_words(const TensorIter& iter, int64_t itemsize, Device device) {
  constexpr int64_t kWord = sizeof(Word);
  const int inner = iter.ndim() - 1;
  const int64_t row_bytes = iter.size(inner) * itemsize;
  if (itemsize >= kWord || row_bytes % kWord != 0) return false;
  for (int t = 0; t < 2; ++t) {
    if (iter.stride(t, inner) != itemsize || reinterpret_cast<uintptr_t>(iter.data(t)) % kWord)
      return false;
    for (int d = 0; d < inner; ++d)
      if (iter.stride(t, d) % kWord != 0) return false;
  }
  const int64_t n = iter.numel() / (kWord / itemsize);
  const bool index32 = n <= std::numeric_limits<int32_t>::max();
  OffsetCalc<2> calc{};
  // Divisors only once the row counts words: its element count may not fit 32 bits.
  calc.set(iter, false);
  calc.sizes[inner] = row_bytes / kWord;
  calc.strides[inner][0] = calc.strides[inner][1] = kWord;
  if (index32) calc.set_divisors();
  const Array<char*, 2> ptrs{{iter.data(0), iter.data(1)}};
  DeviceGuard guard(device);
  launch_strided<Word, Word, 1>(n, index32, calc, ptrs, Identity{}, current_stream(device));
  check_launch("copy_");
  return true;
}

// dst = src on one device (converting, broadcasting, any strides).
void copy_on_device(const Tensor& dst, const Tensor& src) {
  TensorIter iter({dst, src});
  if (dst.dtype() == src.dtype() && iter.numel() > 0) {
    const int64_t item = dst.itemsize();
    const Device d = dst.device();
    if (copy_in_words<uint4>(iter, item, d) || copy_in_words<uint2>(iter, item, d) ||
        copy_in_words<uint32_t>(iter, item, d))
      return;
  }
  visit_dtype(dst.dtype(), [&]<class To>(TypeTag<To>) {
    visit_dtype(src.dtype(), [&]<class From>(TypeTag<From>) {
      launch_elementwise<To, From, 1>(iter, dst.device(), Identity{}, "copy_");
    });
  });
}

bool same_layout_dense(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.sizes() == b.sizes() && a.is_contiguous() &&
         b.is_contiguous();
}

size_t nbytes(const Tensor& t) { return static_cast<size_t>(t.numel()) * t.itemsize(); }

}  // namespace

// dst = src on one device: a plain memcpy when both are dense with one dtype.
void copy_kernel(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  const Device d = dst.device();
  if (!same_layout_dense(dst, src)) {
    copy_on_device(dst, src);
    return;
  }
  DeviceGuard guard(d);
  check(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), nbytes(dst), cudaMemcpyDeviceToDevice,
                        current_stream(d)),
        "copy_");
}

// Host <-> device and device <-> device: a plain memcpy when both sides are
// dense with one dtype; otherwise the conversion runs on the device side
// through a dense staging buffer.
//
// Note [Non-blocking transfers]: as in PyTorch, a blocking transfer returns
// once the data has arrived (the stream is synchronized); non_blocking=True
// returns at once where the host side is pinned memory: H2D from a pinned
// source, D2H into a dense pinned destination. The caller then synchronizes
// before reading the destination or writing the source. A pinned source freed
// early is still safe: cudaFreeHost waits for the device.
void transfer_kernel(const Tensor& dst, const Tensor& src, bool non_blocking) {
  if (dst.numel() == 0) return;
  const Device dd = dst.device(), sd = src.device();
  if (dd.is_cuda() && sd.is_cpu()) {  // host to device
    // A temporary dense copy is pageable memory, which cudaMemcpyAsync has
    // staged by the time it returns.
    const Tensor host = contiguous(detach(src));
    const Tensor staged = same_layout_dense(dst, host) ? dst : empty(host.sizes(), host.dtype(), dd);
    DeviceGuard guard(dd);
    const cudaStream_t stream = current_stream(dd);
    check(cudaMemcpyAsync(staged.data_ptr(), host.data_ptr(), nbytes(host), cudaMemcpyHostToDevice,
                          stream),
          "copy_");
    if (!staged.is_same(dst)) copy_on_device(dst, staged);
    if (!non_blocking) check(cudaStreamSynchronize(stream), "copy_");
    return;
  }
  if (dd.is_cpu() && sd.is_cuda()) {  // device to host
    Tensor staged = detach(src);
    if (!(staged.dtype() == dst.dtype() && staged.sizes() == dst.sizes() && staged.is_contiguous())) {
      staged = empty(dst.sizes(), dst.dtype(), sd);
      copy_on_device(staged, src);
    }
    const bool direct = dst.is_contiguous();
    Tensor host = direct ? dst : empty(dst.sizes(), dst.dtype(), dd);
    DeviceGuard guard(sd);
    const cudaStream_t stream = current_stream(sd);
    check(cudaMemcpyAsync(host.data_ptr(), staged.data_ptr(), nbytes(host), cudaMemcpyDeviceToHost,
                          stream),
          "copy_");
    if (non_blocking && direct && is_pinned_host(dst.storage()->data())) return;
    check(cudaStreamSynchronize(stream), "copy_");
    if (!direct) {
      Tensor d = detach(dst);
      copy_(d, host);
    }
    return;
  }
  // Between two GPUs: densify on the source, copy peer to peer, convert on the destination.
  const Tensor from = contiguous(detach(src));
  const Tensor staged = same_layout_dense(dst, from) ? dst : empty(from.sizes(), from.dtype(), dd);
  {
    DeviceGuard guard(sd);
    check(cudaStreamSynchronize(current_stream(sd)), "copy_");
  }
  DeviceGuard guard(dd);
  check(cudaMemcpyPeerAsync(staged.data_ptr(), dd.index, from.data_ptr(), sd.index, nbytes(from),
                            current_stream(dd)),
        "copy_");
  if (!staged.is_same(dst)) copy_on_device(dst, staged);
  // Always waits: the source-side temporary must outlive the peer copy.
  check(cudaStreamSynchronize(current_stream(dd)), "copy_");
}

void fill_kernel(const Tensor& dst, Scalar value) {
  TensorIter iter({dst});
  visit_dtype(dst.dtype(), [&]<class T>(TypeTag<T>) {
    const T host_value = value.to<T>();
    DeviceT<T> v;
    static_assert(sizeof(v) == sizeof(host_value), "kiln and CUDA types differ in size");
    std::memcpy(static_cast<void*>(&v), &host_value, sizeof(v));
    launch_elementwise<T, T, 0>(iter, dst.device(), FillValue<DeviceT<T>>{v}, "fill_");
  });
}

KILN_REGISTER_KERNEL(copy, CUDA, copy_kernel);
KILN_REGISTER_KERNEL(transfer, CUDA, transfer_kernel);
KILN_REGISTER_KERNEL(fill, CUDA, fill_kernel);

}  // namespace kiln::cuda
