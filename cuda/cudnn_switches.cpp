// The kiln.backends.cudnn switches (cudnn_status.h), with or without cuDNN.
#include <atomic>

#include "cudnn_status.h"

namespace kiln::cuda {
namespace {
std::atomic<bool> g_enabled{true}, g_deterministic{false}, g_sdp_enabled{true};
}  // namespace

bool cudnn_enabled() { return g_enabled.load(std::memory_order_relaxed); }
void set_cudnn_enabled(bool enabled) { g_enabled.store(enabled, std::memory_order_relaxed); }
bool cudnn_deterministic() { return g_deterministic.load(std::memory_order_relaxed); }
void set_cudnn_deterministic(bool deterministic) {
  g_deterministic.store(deterministic, std::memory_order_relaxed);
}
bool cudnn_sdp_enabled() { return g_sdp_enabled.load(std::memory_order_relaxed); }
void set_cudnn_sdp_enabled(bool enabled) { g_sdp_enabled.store(enabled, std::memory_order_relaxed); }

}  // namespace kiln::cuda
