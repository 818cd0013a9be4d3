// The registry and call path of library ops; see Note [Library ops] in library.h.
#include "kiln/library.h"

#include <map>
#include <memory>
#include <mutex>

#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"

namespace kiln {

const Tensor& BackwardContext::input(size_t i) const {
  const auto* t = std::get_if<Tensor>(&args.at(i));
  KILN_CHECK(t, TypeError, "[BackwardContext] argument ", i, " is not a tensor");
  return *t;
}

namespace library {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::unique_ptr<OpDef>, std::less<>> ops;
  std::vector<std::string> definitions;
};
Registry& registry() {
  static Registry r;
  return r;
}

bool is_identifier(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  return true;
}

bool matches(const Value& v, ArgType t) {
  switch (t) {
    case ArgType::Tensor: return std::holds_alternative<Tensor>(v) && std::get<Tensor>(v).defined();
    case ArgType::OptionalTensor:
      return std::holds_alternative<std::monostate>(v) || std::holds_alternative<Tensor>(v);
    case ArgType::TensorList: return std::holds_alternative<TensorList>(v);
    case ArgType::Float: return std::holds_alternative<double>(v);
    case ArgType::Int: return std::holds_alternative<int64_t>(v);
    case ArgType::Bool: return std::holds_alternative<bool>(v);
    case ArgType::IntList: return std::holds_alternative<std::vector<int64_t>>(v);
    case ArgType::String: return std::holds_alternative<std::string>(v);
  }
  return false;
}

const char* value_name(const Value& v) {
  static const char* names[] = {"None", "Tensor", "float", "int", "bool", "str", "list[int]",
                                "list[Tensor]"};
  return names[v.index()];
}

void check_args(const OpDef& op, const std::vector<Value>& args) {
  const auto& types = op.schema.args;
  KILN_CHECK(args.size() == types.size(), TypeError, "[", op.qualified_name, "] expected ",
             types.size(), " argument(s) ", to_string(op.schema), ", got ", args.size());
  for (size_t i = 0; i < args.size(); ++i)
    KILN_CHECK(matches(args[i], types[i]), TypeError, "[", op.qualified_name, "] argument ", i,
               " must be ", type_name(types[i]), ", got ", value_name(args[i]));
}

// The device the op runs on: that of its tensors, which must agree (CPU when none).
Device op_device(const OpDef& op, const std::vector<Value>& args) {
  std::optional<Device> device;
  auto see = [&](const Tensor& t) {
    if (!t.defined()) return;
    if (!device) device = t.device();
    KILN_CHECK(*device == t.device(), ValueError, "[", op.qualified_name,
               "] expected all tensors on the same device, got ", *device, " and ", t.device());
  };
  for (const auto& v : args) {
    if (const auto* t = std::get_if<Tensor>(&v)) see(*t);
    if (const auto* l = std::get_if<TensorList>(&v))
      for (const auto& t : *l) see(t);
  }
  return device.value_or(Device());
}

TensorList tensors_of(const std::vector<Value>& values) {
  TensorList out;
  for (const auto& v : values)
    if (const auto* t = std::get_if<Tensor>(&v)) out.push_back(*t);
  return out;
}

// Records the op's backward node: one edge per argument, so gradients line up with
// arguments; the inputs and outputs are saved (SavedTensor checks in-place changes).
void record_backward(const OpDef& op, const std::vector<Value>& args, const TensorList& outputs) {
  TensorList per_arg(args.size()), to_save;
  std::vector<size_t> tensor_positions;
  std::vector<Value> skeleton = args;  // non-tensor arguments, captured by value
  for (size_t i = 0; i < args.size(); ++i)
    if (const auto* t = std::get_if<Tensor>(&args[i])) {
      per_arg[i] = *t;
      to_save.push_back(*t);
      tensor_positions.push_back(i);
      skeleton[i] = std::monostate{};
    }
  for (const auto& o : outputs) {
    for (const auto& t : per_arg)
      KILN_CHECK(!o.is_same(t), ValueError, "[", op.qualified_name,
                 "] a kernel returned one of its inputs; differentiable ops must return new "
                 "tensors");
    to_save.push_back(o);
  }
  autograd::record(
      (op.qualified_name + "Backward").c_str(), per_arg, outputs, to_save,
      [name = op.qualified_name, formula = op.backward, skeleton = std::move(skeleton),
       tensor_positions = std::move(tensor_positions)](const autograd::BackwardArgs& g) {
        std::vector<Value> a = skeleton;
        size_t k = 0;
        for (size_t pos : tensor_positions) a[pos] = g.saved[k++];
        const TensorList outs(g.saved.begin() + static_cast<std::ptrdiff_t>(k), g.saved.end());
        TensorList grads = formula(BackwardContext{a, outs, g.grads, g.needs_input_grad});
        KILN_CHECK(grads.size() == a.size(), ValueError, "[", name, "] backward returned ",
                   grads.size(), " gradient(s), expected ", a.size(), " (one per argument)");
        return grads;
      });
}

// Outputs of an op without a backward formula fail at backward time, as in PyTorch.
void record_missing_backward(const OpDef& op, const std::vector<Value>& args, TensorList outputs) {
  std::erase_if(outputs, [](const Tensor& t) { return t.requires_grad(); });
  if (outputs.empty()) return;  // the kernel was made of differentiable kiln ops
  autograd::record((op.qualified_name + "Backward").c_str(), tensors_of(args), outputs, {},
                   [name = op.qualified_name](const autograd::BackwardArgs&) -> TensorList {
                     throw NotImplementedError(
                         "[" + name + "] has no backward formula; register one with "
                         ".backward(...) in its KILN_LIBRARY block");
                   });
}

}  // namespace

const char* type_name(ArgType t) {
  switch (t) {
    case ArgType::Tensor: return "Tensor";
    case ArgType::OptionalTensor: return "Tensor?";
    case ArgType::TensorList: return "list[Tensor]";
    case ArgType::Float: return "float";
    case ArgType::Int: return "int";
    case ArgType::Bool: return "bool";
    case ArgType::IntList: return "list[int]";
    case ArgType::String: return "str";
  }
  return "?";
}

std::string to_string(const Schema& schema) {
  auto list = [](const std::vector<ArgType>& types) {
    std::string s;
    for (size_t i = 0; i < types.size(); ++i) {
      if (i) s += ", ";
      s += type_name(types[i]);
    }
    return s;
  };
  std::string s = "(";
  s += list(schema.args);
  s += ") -> ";
  if (schema.returns_tuple) s += "tuple[" + list(schema.returns) + "]";
  else s += schema.returns.empty() ? "None" : type_name(schema.returns[0]);
  return s;
}

OpDef& define_op(const std::string& ns, const std::string& name, Schema schema,
                 const char* signature, BoxedCall call) {
  KILN_CHECK(is_identifier(ns) && is_identifier(name), ValueError,
             "[KILN_LIBRARY] op names must be identifiers, got '", ns, "::", name, "'");
  const std::string qualified = ns + "::" + name;
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto& slot = r.ops[qualified];
  if (!slot) slot = std::make_unique<OpDef>();
  OpDef& op = *slot;
  op.qualified_name = qualified;
  op.schema = std::move(schema);
  op.call = call;
  op.backward = nullptr;
  op.entry = &dispatch::op_entry(qualified.c_str());
  // A redefinition (rebuilt extension) may change the signature: start the entry afresh.
  op.entry->signature = signature;
  for (auto& k : op.entry->kernels) k = nullptr;
  r.definitions.push_back(qualified);
  return op;
}

void set_kernel(OpDef& op, DeviceType device, void* kernel, const char* signature) {
  dispatch::register_kernel(op.qualified_name.c_str(), device, kernel, signature);
}

const OpDef* find_op(const std::string& qualified_name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.ops.find(qualified_name);
  return it == r.ops.end() ? nullptr : it->second.get();
}

std::vector<std::string> definitions() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.definitions;
}

std::vector<Value> call(const OpDef& op, std::vector<Value> args) {
  check_args(op, args);
  const Device device = op_device(op, args);
  void* kernel = op.entry->kernels[static_cast<int>(device.type)];
  if (!kernel) dispatch::throw_no_kernel(*op.entry, device);
  std::vector<Value> out;
  if (!autograd::needs_grad(tensors_of(args))) {
    op.call(kernel, args, out);
    return out;
  }
  std::vector<Value> kept = args;  // the kernel may move from its arguments
  if (op.backward) {
    {
      autograd::NoGradGuard no_grad;
      op.call(kernel, args, out);
    }
    record_backward(op, kept, tensors_of(out));
  } else {
    op.call(kernel, args, out);
    record_missing_backward(op, kept, tensors_of(out));
  }
  return out;
}

}  // namespace library
}  // namespace kiln
