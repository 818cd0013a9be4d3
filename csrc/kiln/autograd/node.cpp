#include "kiln/autograd/node.h"

#include <atomic>
#include <mutex>

#include "kiln/autograd/anomaly.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/error.h"
#include "kiln/ops.h"

namespace kiln::autograd {

namespace {
std::atomic<uint64_t> g_next_sequence_nr{0};
}

Node::Node() : sequence_nr(g_next_sequence_nr.fetch_add(1, std::memory_order_relaxed)) {}
Node::~Node() = default;

// ---- AccumulateGrad ----------------------------------------------------------------

AccumulateGrad::AccumulateGrad(Tensor v) : variable(std::move(v)) {
  output_meta.push_back(TensorMeta::of(variable));
}

// Note [Concurrent accumulation]: backward runs without the GIL, so threads may
// accumulate into the same leaf at once (possibly through different accumulator
// nodes). One process-wide lock serializes updates of leaves' .grad and the
// creation of their accumulators; it is recursive because accumulating under
// create_graph records ops, which look up accumulators again.
static std::recursive_mutex& leaf_mutex() {
  static std::recursive_mutex m;
  return m;
}

TensorList AccumulateGrad::apply(TensorList&& grads) {
  Tensor g = std::move(grads[0]);
  Tensor previous;  // released after unlocking: freeing borrowed memory may need the GIL
  std::lock_guard<std::recursive_mutex> lock(leaf_mutex());
  auto& meta = variable.autograd_meta();  // its hooks already ran in the engine
  previous = meta.grad;
  if (is_grad_enabled()) {  // create_graph: .grad keeps its history
    meta.grad = meta.grad.defined() ? add(meta.grad, g) : g;
    return {};
  }
  if (meta.grad.defined()) {
    meta.grad = add(meta.grad, g);
  } else if (g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && g.is_contiguous() &&
             !g.requires_grad()) {
    meta.grad = g;  // nobody else sees this buffer: steal it
  } else {
    // .grad must own its memory: users update it in place (clip_grad_norm_, zero_).
    meta.grad = clone(detach(g));
  }
  return {};
}

// ---- SavedTensor -------------------------------------------------------------------

SavedTensor::SavedTensor(const Tensor& t, bool is_output)
    : is_output_(is_output), was_defined_(t.defined()) {
  if (!t.defined()) return;
  saved_version_ = t.version();
  if (is_output) {
    data_ = detach(t);
    grad_fn_ = t.grad_fn();
    output_nr_ = t.output_nr();
  } else {
    data_ = t;
  }
}

Tensor SavedTensor::unpack(const std::string& node_name) const {
  if (!was_defined_) return Tensor();
  KILN_CHECK(data_.defined(), Error,
             "Trying to backward through the graph a second time (or directly access saved "
             "tensors after they have already been freed). Saved intermediate values of the "
             "graph are freed when you call .backward() or autograd.grad(). Specify "
             "retain_graph=True if you need to backward through the graph a second time. "
             "(node: ",
             node_name, ")");
  KILN_CHECK(data_.version() == saved_version_, Error,
             "one of the variables needed for gradient computation has been modified by an "
             "inplace operation: [",
             data_.dtype(), " ", data_.sizes(), "] is at version ", data_.version(),
             "; expected version ", saved_version_, " instead (saved by ", node_name, ")");
  if (!is_output_) return data_;
  auto fn = grad_fn_.lock();
  if (!fn) return data_;
  // Re-link the output to its node so double backward sees its history.
  Tensor relinked = make_tensor(data_.storage(), data_.sizes(), data_.strides(),
                                data_.storage_offset(), data_.dtype());
  set_history(relinked, fn, output_nr_);
  return relinked;
}

void SavedTensor::reset() {
  data_ = Tensor();
  grad_fn_.reset();
}

// ---- FunctionNode ------------------------------------------------------------------

TensorList FunctionNode::apply(TensorList&& grads) {
  TensorList unpacked;
  unpacked.reserve(saved.size());
  for (const auto& s : saved) unpacked.push_back(s.unpack(name_));
  std::vector<bool> needs(next_edges.size());
  for (size_t i = 0; i < next_edges.size(); ++i) needs[i] = next_edges[i].valid();
  return fn_(BackwardArgs{grads, unpacked, needs});
}

void FunctionNode::release_saved() {
  for (auto& s : saved) s.reset();
  released_ = true;
}

// ---- recording ---------------------------------------------------------------------

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!is_grad_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool needs_grad(const TensorList& inputs) {
  if (!is_grad_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  auto& meta = t.autograd_meta();
  if (meta.grad_fn) return {meta.grad_fn, meta.output_nr};
  std::lock_guard<std::recursive_mutex> lock(leaf_mutex());  // Note [Concurrent accumulation]
  auto acc = meta.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t);
    meta.grad_accumulator = acc;
  }
  return {acc, 0};
}

void set_history(const Tensor& t, const std::shared_ptr<Node>& node, uint32_t output_nr) {
  auto& meta = t.autograd_meta();
  meta.grad_fn = node;
  meta.output_nr = output_nr;
  meta.requires_grad = false;
  meta.grad_accumulator.reset();
}

std::shared_ptr<FunctionNode> record(const char* name, const TensorList& inputs,
                                     const TensorList& outputs, const TensorList& to_save,
                                     BackwardFn fn) {
  auto node = std::make_shared<FunctionNode>(name, std::move(fn));
  node->next_edges.reserve(inputs.size());
  node->input_meta.reserve(inputs.size());
  for (const auto& in : inputs) {
    node->next_edges.push_back(gradient_edge(in));
    node->input_meta.push_back(in.defined() ? TensorMeta::of(in) : TensorMeta{});
  }
  for (uint32_t i = 0; i < outputs.size(); ++i) {
    node->output_meta.push_back(TensorMeta::of(outputs[i]));
    set_history(outputs[i], node, i);
  }
  node->saved.reserve(to_save.size());
  for (const auto& s : to_save) {
    bool is_output = false;
    for (const auto& o : outputs) is_output |= s.defined() && s.is_same(o);
    node->saved.emplace_back(s, is_output);
  }
  if (is_anomaly_enabled()) node->forward_trace = capture_forward_trace();
  return node;
}

}  // namespace kiln::autograd
