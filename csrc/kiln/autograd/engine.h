#pragma once
#include "kiln/autograd/node.h"

namespace kiln::autograd {

// Runs backward from `roots` (seeded with `grad_roots`, or ones for scalar roots).
// With `inputs` empty, accumulates into leaves' .grad (Tensor.backward). Otherwise
// returns the gradients w.r.t. `inputs` and leaves every .grad alone (autograd.grad);
// an input the roots don't depend on yields an undefined tensor if allow_unused,
// and an error otherwise. Call with the GIL released.
KILN_API TensorList run_backward(const TensorList& roots, const TensorList& grad_roots,
                                 bool retain_graph, bool create_graph, const TensorList& inputs,
                                 bool allow_unused);

}  // namespace kiln::autograd
