// Device memory from CUDA's stream-ordered pool (cudaMallocAsync), pinned
// host memory for pin_memory(), and the per-device statistics.
#include "allocator.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "context.h"
#include "kiln/dispatch.h"
#include "kiln/storage.h"

namespace kiln::cuda {
namespace {

constexpr int kMaxDevices = 64;

struct Block {
  size_t nbytes;
  cudaStream_t stream;  // freed on the stream it was allocated on, so the free is ordered
                        // after the work that stream queued on it
  std::vector<cudaStream_t> used_on;  // other streams, from Tensor.record_stream
};

struct DeviceStats {
  int64_t allocated = 0;
  int64_t peak = 0;
  bool pool_configured = false;
};

class CudaAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Device device) override {
    const int d = device.index;
    const int n = device_count();
    KILN_CHECK(d >= 0 && d < n, Error, "[allocator] can't allocate memory on ", device, ": ",
               n == 0 ? "CUDA is not available (" + unavailable_reason() + ")"
                      : detail::concat("only ", n, " CUDA device(s) are visible"));
    if (nbytes == 0) return nullptr;
    DeviceGuard guard(d);
    configure_pool(d);
    const cudaStream_t stream = current_stream(d);
    void* p = nullptr;
    const cudaError_t err = cudaMallocAsync(&p, nbytes, stream);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw Error(detail::concat("[allocator] CUDA out of memory: tried to allocate ", nbytes,
                                 " bytes on ", device, " (", memory_allocated(d),
                                 " bytes held by kiln tensors)"));
    }
    check(err, "allocator");
    std::lock_guard<std::mutex> lock(mutex_);
    blocks_[p] = Block{nbytes, stream, {}};
    if (stream) ++stream_blocks_[stream];
    DeviceStats& s = stats_[d];
    s.allocated += static_cast<int64_t>(nbytes);
    s.peak = std::max(s.peak, s.allocated);
    return p;
  }

  void deallocate(void* ptr, Device device) override {
    Block block{};
    std::vector<cudaStream_t> dead;  // released streams this block was the last user of
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = blocks_.find(ptr);
      if (it == blocks_.end()) return;
      block = it->second;
      stats_[device.index].allocated -= static_cast<int64_t>(block.nbytes);
      blocks_.erase(it);
      unuse(block.stream, dead);
      for (cudaStream_t other : block.used_on) unuse(other, dead);
    }
    // Runs from destructors: an error here can't be raised, and a sticky
    // error will surface at the next checked call anyway. The block's device
    // is made current (without DeviceGuard, which throws): the legacy default
    // stream (nullptr) and the event of wait_for are those of the current device.
    int previous = device.index;
    bool ok = cudaGetDevice(&previous) == cudaSuccess;
    const bool switched = ok && previous != device.index;
    if (switched) ok &= cudaSetDevice(device.index) == cudaSuccess;
    for (cudaStream_t other : block.used_on) ok &= wait_for(block.stream, other);
    ok &= cudaFreeAsync(ptr, block.stream) == cudaSuccess;
    for (cudaStream_t s : dead) ok &= cudaStreamDestroy(s) == cudaSuccess;  // after the free
    if (switched) ok &= cudaSetDevice(previous) == cudaSuccess;
    if (!ok) cudaGetLastError();
  }

  // Note [Streams that use a block]: a block is freed in the order of the
  // stream that allocated it. When another stream also used it (recorded with
  // Tensor.record_stream), the free first waits for the work that stream has
  // queued so far; the allocating stream's later work waits with it, a small
  // price PyTorch's event-polling cache avoids, taken here for simplicity.
  void record_stream(void* ptr, cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = blocks_.find(ptr);
    KILN_CHECK(it != blocks_.end(), ValueError,
               "[record_stream] the tensor's memory was not allocated by kiln's CUDA allocator");
    Block& b = it->second;
    if (stream != b.stream && std::find(b.used_on.begin(), b.used_on.end(), stream) == b.used_on.end()) {
      b.used_on.push_back(stream);
      if (stream) ++stream_blocks_[stream];
    }
  }

  // A kiln.cuda.Stream's stream is destroyed once no live block is freed in its
  // order (or waits for it): a tensor allocated under a stream may outlive the
  // Python object, and its free must not use a destroyed stream.
  void release_stream(cudaStream_t stream) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stream_blocks_.count(stream)) {
        released_.insert(stream);
        return;
      }
    }
    cudaStreamDestroy(stream);
  }

  DeviceStats stats(int d) {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_[checked(d)];
  }
  void reset_peak(int d) {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_[checked(d)].peak = stats_[d].allocated;
  }

 private:
  static int checked(int d) {
    KILN_CHECK(d >= 0 && d < kMaxDevices, ValueError, "[memory stats] bad device index ", d);
    return d;
  }
  // By default the pool returns freed memory to the driver at every
  // synchronization; keeping it makes steady-state allocation free.
  void configure_pool(int d) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stats_[d].pool_configured) return;
    }
    cudaMemPool_t pool;
    check(cudaDeviceGetDefaultMemPool(&pool, d), "allocator");
    uint64_t keep_all = UINT64_MAX;
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all), "allocator");
    std::lock_guard<std::mutex> lock(mutex_);
    stats_[d].pool_configured = true;
  }

  static bool wait_for(cudaStream_t waiter, cudaStream_t other) {
    cudaEvent_t done;
    if (cudaEventCreateWithFlags(&done, cudaEventDisableTiming) != cudaSuccess) return false;
    const bool ok = cudaEventRecord(done, other) == cudaSuccess &&
                    cudaStreamWaitEvent(waiter, done, 0) == cudaSuccess;
    cudaEventDestroy(done);  // released once the wait has happened
    return ok;
  }

  // With mutex_ held: one block fewer uses `stream`; a released stream without
  // users goes to `dead`, for the caller to destroy.
  void unuse(cudaStream_t stream, std::vector<cudaStream_t>& dead) {
    if (!stream) return;  // the legacy default stream is never destroyed
    auto it = stream_blocks_.find(stream);
    if (it == stream_blocks_.end() || --it->second > 0) return;
    stream_blocks_.erase(it);
    if (released_.erase(stream)) dead.push_back(stream);
  }

  std::mutex mutex_;
  std::unordered_map<void*, Block> blocks_;
  std::unordered_map<cudaStream_t, int64_t> stream_blocks_;  // live blocks using each stream
  std::unordered_set<cudaStream_t> released_;  // streams whose kiln.cuda.Stream is gone
  DeviceStats stats_[kMaxDevices];
};

CudaAllocator& allocator() {
  static auto* a = new CudaAllocator();  // never destroyed: tensors may outlive static teardown
  return *a;
}

int current_device_or_zero() { return query_or_zero(&cudaGetDevice); }

void free_pinned(void* ptr) { cudaFreeHost(ptr); }

// pin_memory(): a contiguous copy of a CPU tensor in page-locked memory, so
// host-to-device copies from it run asynchronously at full speed.
Tensor pin_memory_kernel(const Tensor& t) {
  KILN_CHECK(t.device().is_cpu(), ValueError, "[pin_memory] expected a CPU tensor, got one on ",
             t.device());
  const size_t nbytes = static_cast<size_t>(t.numel()) * t.itemsize();
  void* p = nullptr;
  if (nbytes > 0) check(cudaHostAlloc(&p, nbytes, cudaHostAllocDefault), "pin_memory");
  auto storage = Storage::borrow(p, nbytes, Device(), nbytes > 0 ? &free_pinned : nullptr, p);
  return make_tensor(std::move(storage), t.sizes(), contiguous_strides(t.sizes()), 0, t.dtype());
}

bool is_pinned_kernel(const Tensor& t) {
  return t.device().is_cpu() && is_pinned_host(t.storage()->data());
}

const bool registered = [] {
  register_allocator(DeviceType::CUDA, &allocator());
  register_current_device_fn(DeviceType::CUDA, &current_device_or_zero);
  return true;
}();

}  // namespace

KILN_REGISTER_KERNEL(pin_memory, CUDA, pin_memory_kernel);
KILN_REGISTER_KERNEL(is_pinned, CUDA, is_pinned_kernel);

bool is_pinned_host(const void* ptr) {
  if (ptr == nullptr || device_count() == 0) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeHost;
}

void record_stream(void* ptr, cudaStream_t stream) { allocator().record_stream(ptr, stream); }
void release_stream(cudaStream_t stream) { allocator().release_stream(stream); }

int64_t memory_allocated(int device) { return allocator().stats(device).allocated; }
int64_t max_memory_allocated(int device) { return allocator().stats(device).peak; }
void reset_peak_memory_stats(int device) { allocator().reset_peak(device); }

void empty_cache() {
  const int n = device_count();
  for (int d = 0; d < n; ++d) {
    DeviceGuard guard(d);
    check(cudaDeviceSynchronize(), "empty_cache");
    cudaMemPool_t pool;
    check(cudaDeviceGetDefaultMemPool(&pool, d), "empty_cache");
    check(cudaMemPoolTrimTo(pool, 0), "empty_cache");
  }
}

std::string unavailable_reason() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return detail::concat("the CUDA runtime reports ", cudaGetErrorName(err), ": ",
                          cudaGetErrorString(err));
  }
  return n == 0 ? "no CUDA device is visible" : "";
}

}  // namespace kiln::cuda
