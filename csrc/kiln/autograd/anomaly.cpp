#include "kiln/autograd/anomaly.h"

namespace kiln::autograd {
namespace {
TraceProvider& provider() {
  static TraceProvider p;
  return p;
}
}  // namespace

void set_forward_trace_provider(TraceProvider p) { provider() = std::move(p); }

std::shared_ptr<const std::string> capture_forward_trace() {
  if (!provider()) return nullptr;
  return std::make_shared<const std::string>(provider()());
}

}  // namespace kiln::autograd
