#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kiln/autograd/meta.h"
#include "kiln/tensor.h"

namespace kiln::autograd {

class Node;

// Where a gradient goes: input slot `input_nr` of `node`.
struct Edge {
  std::shared_ptr<Node> node;
  uint32_t input_nr = 0;
  bool valid() const { return node != nullptr; }
};

// Shape/dtype/device a gradient must have to match a forward tensor.
struct TensorMeta {
  Shape shape;
  ScalarType dtype;
  Device device;
  static TensorMeta of(const Tensor& t) { return {t.sizes(), t.dtype(), t.device()}; }
};

// A backward function in the graph. Forward outputs i flow in as grads[i];
// apply() returns one gradient per next edge (the forward inputs).
class KILN_API Node : public std::enable_shared_from_this<Node> {
 public:
  Node();
  virtual ~Node();
  virtual std::string name() const = 0;
  virtual TensorList apply(TensorList&& grads) = 0;
  // Drops saved tensors after a backward without retain_graph.
  virtual void release_saved() {}

  std::vector<Edge> next_edges;
  std::vector<TensorMeta> input_meta;   // one per next edge: the forward inputs
  std::vector<TensorMeta> output_meta;  // one per forward output
  uint64_t sequence_nr;                 // creation order, for deterministic scheduling
  // Hooks on gradients of forward output `output_nr` (tensor hooks, retain_grad).
  std::vector<std::tuple<int, uint32_t, TensorHook>> pre_hooks;
  // Anomaly mode: the Python traceback of the forward call that created this node.
  std::shared_ptr<const std::string> forward_trace;
  // False: outputs that got no gradient reach apply() as undefined tensors, not zeros
  // (kiln.autograd.Function's ctx.set_materialize_grads(False)).
  bool materialize_grads = true;
};

// Accumulates the gradient of a leaf into its .grad.
class KILN_API AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(Tensor variable);
  std::string name() const override { return "AccumulateGrad"; }
  TensorList apply(TensorList&& grads) override;
  Tensor variable;
};

// A tensor saved for backward. Outputs of the node that saves them are kept
// without their grad_fn (which would be a reference cycle) and re-linked on
// unpack; see Note [Version counter] in storage.h for the modification check.
class KILN_API SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& t, bool is_output);
  Tensor unpack(const std::string& node_name) const;
  void reset();

 private:
  Tensor data_;
  std::weak_ptr<Node> grad_fn_;  // outputs only
  uint32_t output_nr_ = 0;
  uint32_t saved_version_ = 0;
  bool is_output_ = false;
  bool was_defined_ = false;
};

// What a backward formula sees.
struct BackwardArgs {
  const TensorList& grads;  // one per forward output, always defined
  const TensorList& saved;  // unpacked saved tensors, in the order they were given
  const std::vector<bool>& needs_input_grad;
  const Tensor& grad(size_t i = 0) const { return grads[i]; }
  bool needs(size_t i) const { return needs_input_grad[i]; }
};
using BackwardFn = std::function<TensorList(const BackwardArgs&)>;

// A node whose backward is a lambda written with kiln ops (so it is itself
// differentiable: double backward works when the formula's ops record).
class KILN_API FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::string name() const override { return name_; }
  TensorList apply(TensorList&& grads) override;
  void release_saved() override;

  std::vector<SavedTensor> saved;

 private:
  std::string name_;
  BackwardFn fn_;
  bool released_ = false;
};

// True when grad mode is on and some tensor requires grad.
KILN_API bool needs_grad(std::initializer_list<Tensor> inputs);
KILN_API bool needs_grad(const TensorList& inputs);
// The edge a gradient for `t` should flow along (invalid if t doesn't require grad).
KILN_API Edge gradient_edge(const Tensor& t);

// Records a backward node for an op: connects `outputs` to it and saves `to_save`
// (inputs or outputs, recognized by identity). Call only when needs_grad(inputs).
// Undefined inputs get no edge. The returned node is already attached to the outputs.
KILN_API std::shared_ptr<FunctionNode> record(const char* name, const TensorList& inputs,
                                              const TensorList& outputs,
                                              const TensorList& to_save, BackwardFn fn);

// Makes `t` the output `output_nr` of `node` (sets grad_fn; t becomes a non-leaf).
KILN_API void set_history(const Tensor& t, const std::shared_ptr<Node>& node, uint32_t output_nr);

}  // namespace kiln::autograd
