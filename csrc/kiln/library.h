#pragma once
// Custom ops from extensions (see Note [Library ops]):
//
//   Tensor scaled_tanh(const Tensor& x, double alpha) { ... }          // the CPU kernel
//   KILN_LIBRARY(myops, m) {
//     m.def("scaled_tanh", scaled_tanh)
//         .cuda(scaled_tanh_cuda)                                        // optional
//         .backward([](const kiln::BackwardContext& c) -> kiln::TensorList {
//           Tensor y = c.output();
//           return {c.grad() * c.arg<double>(1) * (1 - y * y / ...), {}};  // one per argument
//         });
//   }
//
// Python calls it as kiln.ops.myops.scaled_tanh(x, 2.0).
//
// Note [Library ops]: a library op is a dispatcher entry named "ns::op" (kernels per
// device, as for built-in ops) plus a schema deduced from the kernel's C++ signature,
// so Python can check and convert arguments without the extension linking Python or
// pybind11. Calling it picks the kernel by the tensors' device, runs it without
// recording, and records one autograd node whose backward is the registered formula
// (written with kiln ops, so it runs on any device and double backward works).
// Registering an op again (a rebuilt extension in the same process) replaces it.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/tensor.h"

namespace kiln {

namespace library {

// The argument and return types a library op may use.
enum class ArgType : uint8_t { Tensor, OptionalTensor, TensorList, Float, Int, Bool, IntList, String };
KILN_API const char* type_name(ArgType t);

// One boxed argument or result; None is monostate (an absent optional tensor).
using Value = std::variant<std::monostate, Tensor, double, int64_t, bool, std::string,
                           std::vector<int64_t>, TensorList>;

struct Schema {
  std::vector<ArgType> args;
  std::vector<ArgType> returns;  // empty for void; several for a std::tuple
  bool returns_tuple = false;
};
// "(Tensor, float) -> Tensor"
KILN_API std::string to_string(const Schema& schema);

// Unboxes `args`, calls `kernel` (a function pointer of the op's signature), boxes results.
using BoxedCall = void (*)(void* kernel, std::vector<Value>& args, std::vector<Value>& out);

}  // namespace library

// What a backward formula sees. Indices count all forward arguments (tensors are the
// saved inputs); return one gradient per argument, undefined for non-tensors.
struct KILN_API BackwardContext {
  const std::vector<library::Value>& args;
  const TensorList& outputs;
  const TensorList& grads;  // one per tensor output, always defined
  const std::vector<bool>& needs_input_grad;  // per argument

  const Tensor& input(size_t i) const;
  template <class T>
  T arg(size_t i) const {
    return std::get<T>(args.at(i));
  }
  const Tensor& output(size_t i = 0) const { return outputs.at(i); }
  const Tensor& grad(size_t i = 0) const { return grads.at(i); }
  bool needs(size_t i) const { return needs_input_grad.at(i); }
};
using BackwardFormula = std::function<TensorList(const BackwardContext&)>;

namespace library {

struct KILN_API OpDef {
  std::string qualified_name;  // "ns::op"
  Schema schema;
  BoxedCall call = nullptr;
  dispatch::OpEntry* entry = nullptr;
  BackwardFormula backward;
};

// Defines (or redefines) "ns::op"; the returned address stays valid forever.
KILN_API OpDef& define_op(const std::string& ns, const std::string& name, Schema schema,
                          const char* signature, BoxedCall call);
KILN_API void set_kernel(OpDef& op, DeviceType device, void* kernel, const char* signature);
// nullptr when no such op.
KILN_API const OpDef* find_op(const std::string& qualified_name);
// Every op definition so far, in order (a rebuilt library's ops appear again).
KILN_API std::vector<std::string> definitions();
// Runs the op: checks arguments, picks the kernel by device, records autograd history.
KILN_API std::vector<Value> call(const OpDef& op, std::vector<Value> args);

// ---- schema deduction from C++ types ----------------------------------------------

template <class T>
struct Traits;
template <>
struct Traits<Tensor> {
  static constexpr ArgType type = ArgType::Tensor;
  static Tensor get(Value& v) { return std::get<Tensor>(std::move(v)); }
};
template <>
struct Traits<std::optional<Tensor>> {
  static constexpr ArgType type = ArgType::OptionalTensor;
  static std::optional<Tensor> get(Value& v) {
    if (auto* t = std::get_if<Tensor>(&v)) return *t;
    return std::nullopt;
  }
};
template <>
struct Traits<TensorList> {
  static constexpr ArgType type = ArgType::TensorList;
  static TensorList get(Value& v) { return std::get<TensorList>(std::move(v)); }
};
template <>
struct Traits<std::vector<int64_t>> {
  static constexpr ArgType type = ArgType::IntList;
  static std::vector<int64_t> get(Value& v) { return std::get<std::vector<int64_t>>(v); }
};
template <>
struct Traits<std::string> {
  static constexpr ArgType type = ArgType::String;
  static std::string get(Value& v) { return std::get<std::string>(v); }
};
template <>
struct Traits<bool> {
  static constexpr ArgType type = ArgType::Bool;
  static bool get(Value& v) { return std::get<bool>(v); }
};
template <class T>
  requires(std::is_floating_point_v<T>)
struct Traits<T> {
  static constexpr ArgType type = ArgType::Float;
  static T get(Value& v) { return static_cast<T>(std::get<double>(v)); }
};
template <class T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool>)
struct Traits<T> {
  static constexpr ArgType type = ArgType::Int;
  static T get(Value& v) { return static_cast<T>(std::get<int64_t>(v)); }
};

template <class T>
using Bare = std::remove_cvref_t<T>;

template <class R>
struct Returns {
  static void add(Schema& s) { s.returns.push_back(Traits<R>::type); }
  static void box(R&& r, std::vector<Value>& out) {
    if constexpr (std::is_floating_point_v<R>) out.emplace_back(static_cast<double>(r));
    else if constexpr (std::is_integral_v<R> && !std::is_same_v<R, bool>)
      out.emplace_back(static_cast<int64_t>(r));
    else out.emplace_back(std::move(r));
  }
};
template <>
struct Returns<void> {
  static void add(Schema&) {}
};
template <class... Rs>
struct Returns<std::tuple<Rs...>> {
  static void add(Schema& s) {
    (Returns<Rs>::add(s), ...);
    s.returns_tuple = true;
  }
  static void box(std::tuple<Rs...>&& r, std::vector<Value>& out) {
    std::apply([&](auto&&... x) { (Returns<Bare<decltype(x)>>::box(std::move(x), out), ...); },
               std::move(r));
  }
};

template <class Sig>
struct Signature;
template <class R, class... Args>
struct Signature<R(Args...)> {
  static Schema schema() {
    Schema s;
    (s.args.push_back(Traits<Bare<Args>>::type), ...);
    Returns<Bare<R>>::add(s);
    return s;
  }
  static void call(void* kernel, std::vector<Value>& args, std::vector<Value>& out) {
    auto fn = reinterpret_cast<R (*)(Args...)>(kernel);
    [&]<size_t... I>(std::index_sequence<I...>) {
      if constexpr (std::is_void_v<R>) fn(Traits<Bare<Args>>::get(args[I])...);
      else Returns<Bare<R>>::box(fn(Traits<Bare<Args>>::get(args[I])...), out);
    }(std::index_sequence_for<Args...>{});
  }
};

// m.def(...) returns this: add kernels for other devices and the backward formula.
template <class Sig>
class OpBuilder {
 public:
  explicit OpBuilder(OpDef& op) : op_(&op) {}
  OpBuilder& cpu(Sig* fn) { return kernel(DeviceType::CPU, fn); }
  OpBuilder& cuda(Sig* fn) { return kernel(DeviceType::CUDA, fn); }
  OpBuilder& backward(BackwardFormula fn) {
    op_->backward = std::move(fn);
    return *this;
  }

 private:
  OpBuilder& kernel(DeviceType device, Sig* fn) {
    set_kernel(*op_, device, reinterpret_cast<void*>(fn), typeid(Sig*).name());
    return *this;
  }
  OpDef* op_;
};

// The `m` of a KILN_LIBRARY block: defines ops under one namespace.
class Library {
 public:
  explicit Library(const char* ns) : ns_(ns) {}
  // The first kernel is the CPU one (pass nullptr for a CUDA-only op).
  template <class R, class... Args>
  OpBuilder<R(Args...)> def(const char* name, R (*cpu_kernel)(Args...)) {
    using Sig = R(Args...);
    OpDef& op = define_op(ns_, name, Signature<Sig>::schema(), typeid(Sig*).name(),
                          &Signature<Sig>::call);
    OpBuilder<Sig> builder(op);
    if (cpu_kernel) builder.cpu(cpu_kernel);
    return builder;
  }
  // A lambda without captures works as a kernel too.
  template <class F>
    requires(!std::is_pointer_v<F> && requires(F f) { +f; })
  auto def(const char* name, F kernel) {
    return def(name, +kernel);
  }

 private:
  std::string ns_;
};

}  // namespace library

}  // namespace kiln

// KILN_LIBRARY(ns, m) { m.def("op", cpu_kernel).cuda(cuda_kernel).backward(formula); }
// Runs when the shared library loads. Several blocks (on different lines) may share a namespace.
#define KILN_LIBRARY(ns, m) KILN_LIBRARY_(ns, m, KILN_DISPATCH_CONCAT(kiln_library_init_, __LINE__))
#define KILN_LIBRARY_(ns, m, init)                                              \
  static void init(::kiln::library::Library&);                                  \
  static const bool KILN_DISPATCH_CONCAT(init, _registered) = [] {              \
    ::kiln::library::Library lib(#ns);                                          \
    init(lib);                                                                  \
    return true;                                                                \
  }();                                                                          \
  static void init(::kiln::library::Library & m)
