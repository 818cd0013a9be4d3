#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::autograd {

class Node;

// A tensor hook: sees the gradient; returns a replacement or an undefined tensor to keep it.
using TensorHook = std::function<Tensor(const Tensor&)>;

struct KILN_API AutogradMeta {
  bool requires_grad = false;  // leaves only; non-leaves require grad through grad_fn
  bool retains_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
  uint32_t output_nr = 0;
  // Leaves: the node that accumulates into .grad, shared by every graph that uses the leaf.
  std::weak_ptr<Node> grad_accumulator;
  // Leaves' hooks (non-leaf hooks live on grad_fn as pre-hooks), with ids for removal.
  std::vector<std::pair<int, TensorHook>> hooks;
};

}  // namespace kiln::autograd
