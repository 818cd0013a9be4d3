#pragma once
#include <functional>
#include <memory>
#include <string>

#include "kiln/macros.h"

namespace kiln::autograd {

// The Python bindings install a provider that returns the current Python
// traceback; nodes created while anomaly mode is on keep it, and the engine
// shows it when that node's backward produces NaN or Inf.
using TraceProvider = std::function<std::string()>;
KILN_API void set_forward_trace_provider(TraceProvider provider);
KILN_API std::shared_ptr<const std::string> capture_forward_trace();

}  // namespace kiln::autograd
