#include "context.h"

#include <atomic>
#include <string>

namespace kiln::cuda {
namespace {
constexpr int kMaxDevices = 64;
thread_local cudaStream_t t_current_stream[kMaxDevices] = {};
std::atomic<bool> g_allow_tf32[] = {false, true};  // indexed by Tf32Switch
}  // namespace

void throw_cuda_error(cudaError_t err, const char* op) {
  cudaGetLastError();  // clear a sticky launch error so later calls start clean
  throw Error(detail::concat("[", op, "] CUDA error ", cudaGetErrorName(err), ": ",
                             cudaGetErrorString(err)));
}

// The int a query reports, or 0 when it fails (no driver, no device).
int query_or_zero(cudaError_t (*query)(int*)) {
  int v = 0;
  if (query(&v) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return v;
}

int device_count() { return query_or_zero(&cudaGetDeviceCount); }

int current_device() {
  int d = 0;
  check(cudaGetDevice(&d), "current_device");
  return d;
}

void set_device(int index) {
  const int n = device_count();
  KILN_CHECK(index >= 0 && index < n, ValueError, "[set_device] device index ", index,
             " is out of range: ", n, " CUDA device(s) visible");
  check(cudaSetDevice(index), "set_device");
}

cudaStream_t current_stream(int device) {
  KILN_CHECK(device >= 0 && device < kMaxDevices, ValueError, "[stream] bad device index ", device);
  return t_current_stream[device];
}

void set_current_stream(int device, cudaStream_t stream) {
  KILN_CHECK(device >= 0 && device < kMaxDevices, ValueError, "[stream] bad device index ", device);
  t_current_stream[device] = stream;
}

DeviceGuard::DeviceGuard(int device) : previous_(current_device()) {
  if (device != previous_) check(cudaSetDevice(device), "device guard");
}

DeviceGuard::~DeviceGuard() {
  int now = previous_;
  cudaGetDevice(&now);
  if (now != previous_) cudaSetDevice(previous_);
}

bool allow_tf32(Tf32Switch which) {
  return g_allow_tf32[static_cast<int>(which)].load(std::memory_order_relaxed);
}
void set_allow_tf32(Tf32Switch which, bool allow) {
  g_allow_tf32[static_cast<int>(which)].store(allow, std::memory_order_relaxed);
}

}  // namespace kiln::cuda
