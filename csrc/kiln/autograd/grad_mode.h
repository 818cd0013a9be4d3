#pragma once
#include "kiln/macros.h"

namespace kiln::autograd {

// Thread-local, like PyTorch: a no_grad block in one thread doesn't affect another.
KILN_API bool is_grad_enabled();
KILN_API void set_grad_enabled(bool enabled);
KILN_API bool is_inference_mode();
KILN_API void set_inference_mode(bool enabled);
KILN_API bool is_anomaly_enabled();
KILN_API void set_anomaly_enabled(bool enabled);

class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled) : prev_(is_grad_enabled()) { set_grad_enabled(enabled); }
  ~GradModeGuard() { set_grad_enabled(prev_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool prev_;
};

struct NoGradGuard : GradModeGuard {
  NoGradGuard() : GradModeGuard(false) {}
};

}  // namespace kiln::autograd
