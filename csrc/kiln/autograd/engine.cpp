#include "kiln/autograd/engine.h"

#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "kiln/autocast.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/error.h"
#include "kiln/ops.h"

namespace kiln::autograd {
namespace {

struct ByLatestFirst {
  bool operator()(const Node* a, const Node* b) const { return a->sequence_nr < b->sequence_nr; }
};

std::string shape_str(const Shape& s) { return detail::concat(s); }

// Makes a gradient produced by `node` for its input `i` fit that input: sums
// over broadcast dims and casts to the input's dtype.
Tensor fit_gradient(const Node& node, size_t i, Tensor grad) {
  const TensorMeta& meta = node.input_meta[i];
  if (grad.sizes() != meta.shape) {
    KILN_CHECK(is_expandable_to(meta.shape, grad.sizes()), Error, "Function ", node.name(),
               " returned an invalid gradient at index ", i, " - got ", shape_str(grad.sizes()),
               " but expected shape compatible with ", shape_str(meta.shape));
    grad = sum_to(grad, meta.shape);
  }
  if (grad.dtype() != meta.dtype) grad = to_dtype(grad, meta.dtype);
  KILN_CHECK(grad.device() == meta.device, Error, "Function ", node.name(),
             " returned a gradient on ", grad.device(), " for an input on ", meta.device);
  return grad;
}

void check_finite(const Node& node, const Tensor& grad, size_t i) {
  if (!is_floating(grad.dtype())) return;
  NoGradGuard no_grad;
  if (item(all(isfinite(grad))).to<bool>()) return;
  std::string msg = detail::concat("Function '", node.name(), "' returned nan or inf values in its ",
                                   i, "th output.");
  if (node.forward_trace)
    msg += "\nTraceback of forward call that caused the error:\n" + *node.forward_trace;
  else
    msg += "\n(no forward traceback: the node was created outside anomaly mode)";
  throw Error(msg);
}

// A tensor hook may replace the gradient, but not change its shape or dtype.
void run_hook(const TensorHook& hook, Tensor& grad) {
  if (!grad.defined()) return;  // an unmaterialized gradient (see Node::materialize_grads)
  Tensor replaced = hook(grad);
  if (!replaced.defined()) return;
  KILN_CHECK(replaced.sizes() == grad.sizes() && replaced.dtype() == grad.dtype(), Error,
             "[register_hook] a hook changed the gradient from ", grad.dtype(), " ",
             shape_str(grad.sizes()), " to ", replaced.dtype(), " ",
             shape_str(replaced.sizes()), "; hooks must keep its shape and dtype");
  grad = std::move(replaced);
}

}  // namespace

TensorList run_backward(const TensorList& roots, const TensorList& grad_roots, bool retain_graph,
                        bool create_graph, const TensorList& inputs, bool allow_unused) {
  // Backward formulas run in the dtypes the forward produced (Note [Autocast]).
  autocast::SuspendGuard no_autocast;
  KILN_CHECK(grad_roots.size() == roots.size(), ValueError, "[backward] got ", roots.size(),
             " tensors but ", grad_roots.size(), " gradients");
  // Root edges and their seed gradients.
  std::vector<Edge> root_edges;
  TensorList seeds;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    KILN_CHECK(r.requires_grad(), Error, "[backward] element ", i,
               " of tensors does not require grad and does not have a grad_fn");
    Tensor g = grad_roots[i];
    if (!g.defined()) {
      KILN_CHECK(r.numel() == 1, Error,
                 "[backward] grad can be implicitly created only for scalar outputs, but the "
                 "output has shape ",
                 shape_str(r.sizes()));
      g = ones_like(r);
    } else {
      KILN_CHECK(g.sizes() == r.sizes(), ValueError, "[backward] mismatch in shape: grad_output[",
                 i, "] has a shape of ", shape_str(g.sizes()), " and output[", i,
                 "] has a shape of ", shape_str(r.sizes()));
    }
    root_edges.push_back(gradient_edge(r));
    seeds.push_back(g);
  }

  // Dependencies: how many edges point at each node reachable from the roots.
  std::unordered_map<Node*, int> deps;
  {
    std::vector<Node*> stack;
    std::unordered_set<Node*> seen;
    for (auto& e : root_edges)
      if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (auto& e : n->next_edges) {
        if (!e.valid()) continue;
        deps[e.node.get()] += 1;
        if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
      }
    }
  }

  // autograd.grad: capture what flows into each input's edge; run only what leads there.
  const bool capture_mode = !inputs.empty();
  std::vector<Edge> input_edges;
  std::unordered_set<Node*> needed;
  if (capture_mode) {
    for (const auto& in : inputs) {
      KILN_CHECK(in.requires_grad(), Error, "[autograd.grad] one of the differentiated Tensors "
                 "does not require grad");
      input_edges.push_back(gradient_edge(in));
    }
    // A node is needed if some input edge is reachable from it.
    std::unordered_map<Node*, bool> memo;
    std::unordered_set<Node*> targets;
    for (auto& e : input_edges) targets.insert(e.node.get());
    std::function<bool(Node*)> reaches = [&](Node* n) -> bool {
      auto it = memo.find(n);
      if (it != memo.end()) return it->second;
      memo[n] = false;
      bool r = targets.count(n) > 0;
      for (auto& e : n->next_edges)
        if (e.valid() && reaches(e.node.get())) r = true;
      memo[n] = r;
      return r;
    };
    for (auto& e : root_edges) reaches(e.node.get());
    for (auto& [n, r] : memo)
      if (r) needed.insert(n);
  }
  TensorList captured(inputs.size());

  std::unordered_map<Node*, TensorList> buffers;
  auto accumulate = [&](Node* n, uint32_t slot, Tensor g) {
    auto& buf = buffers[n];
    if (buf.empty()) buf.resize(n->output_meta.size());
    KILN_CHECK(slot < buf.size(), Error, "[backward] internal error: bad input slot for ",
               n->name());
    buf[slot] = buf[slot].defined() ? add(buf[slot], g) : g;
  };

  std::priority_queue<Node*, std::vector<Node*>, ByLatestFirst> ready;
  std::unordered_set<Node*> queued;
  {
    GradModeGuard mode(create_graph);
    for (size_t i = 0; i < root_edges.size(); ++i)
      accumulate(root_edges[i].node.get(), root_edges[i].input_nr, seeds[i]);
  }
  for (auto& e : root_edges)
    if (deps[e.node.get()] == 0 && queued.insert(e.node.get()).second) ready.push(e.node.get());

  // Keep every node alive while we run (edges hold shared_ptrs, but released
  // graphs may drop them).
  std::vector<std::shared_ptr<Node>> keep_alive;
  for (auto& e : root_edges) keep_alive.push_back(e.node);

  const bool anomaly = is_anomaly_enabled();
  while (!ready.empty()) {
    Node* node = ready.top();
    ready.pop();
    TensorList grads = std::move(buffers[node]);
    buffers.erase(node);
    // autograd.grad runs only what leads to its inputs (their hooks included).
    if (capture_mode && !needed.count(node)) continue;
    grads.resize(node->output_meta.size());
    GradModeGuard mode(create_graph);
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined() && node->materialize_grads) {
        const auto& m = node->output_meta[i];
        grads[i] = zeros(m.shape, m.dtype, m.device);
      }
    }
    // Copies: a hook may remove itself (or others) while it runs.
    for (auto [id, slot, hook] : std::vector(node->pre_hooks)) run_hook(hook, grads[slot]);
    // Leaf hooks run here rather than in AccumulateGrad so autograd.grad sees them too.
    if (auto* acc = dynamic_cast<AccumulateGrad*>(node))
      for (auto [id, hook] : std::vector(acc->variable.autograd_meta().hooks))
        run_hook(hook, grads[0]);
    if (capture_mode) {
      for (size_t k = 0; k < input_edges.size(); ++k)
        if (input_edges[k].node.get() == node) captured[k] = grads[input_edges[k].input_nr];
      if (dynamic_cast<AccumulateGrad*>(node)) continue;
      bool feeds_needed = false;
      for (auto& e : node->next_edges) feeds_needed |= e.valid() && needed.count(e.node.get());
      if (!feeds_needed) continue;
    }
    TensorList outs = node->apply(std::move(grads));
    if (!retain_graph) node->release_saved();
    if (dynamic_cast<AccumulateGrad*>(node)) continue;
    KILN_CHECK(outs.size() == node->next_edges.size(), Error, "function ", node->name(),
               " returned an incorrect number of gradients (expected ", node->next_edges.size(),
               ", got ", outs.size(), ")");
    for (size_t i = 0; i < outs.size(); ++i) {
      const Edge& e = node->next_edges[i];
      if (!e.valid()) continue;
      if (outs[i].defined()) {
        outs[i] = fit_gradient(*node, i, outs[i]);
        if (anomaly) check_finite(*node, outs[i], i);
        keep_alive.push_back(e.node);
        accumulate(e.node.get(), e.input_nr, outs[i]);
      }
      if (--deps[e.node.get()] == 0 && queued.insert(e.node.get()).second) ready.push(e.node.get());
    }
  }

  if (!capture_mode) return {};
  for (size_t k = 0; k < inputs.size(); ++k) {
    KILN_CHECK(captured[k].defined() || allow_unused, Error,
               "[autograd.grad] one of the differentiated Tensors appears to not have been used "
               "in the graph. Set allow_unused=True if this is the desired behavior.");
    if (captured[k].defined() && captured[k].sizes() != inputs[k].sizes())
      captured[k] = sum_to(captured[k], inputs[k].sizes());
  }
  return captured;
}

}  // namespace kiln::autograd
