// Autograd bindings: graph nodes, the engine, grad modes, hooks, and
// Python-defined functions (kiln.autograd.Function).
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <atomic>

#include "caster.h"
#include "kiln/autograd/anomaly.h"
#include "kiln/autograd/engine.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

using autograd::Node;

// A Python callable that may be called and dropped from threads without the GIL.
std::shared_ptr<py::object> hold(py::object fn) {
  return std::shared_ptr<py::object>(new py::object(std::move(fn)), [](py::object* p) {
    py::gil_scoped_acquire gil;
    delete p;
  });
}

autograd::TensorHook python_hook(py::object fn) {
  auto held = hold(std::move(fn));
  return [held](const Tensor& grad) -> Tensor {
    py::gil_scoped_acquire gil;
    py::object r = (*held)(grad);
    if (r.is_none()) return Tensor();
    return r.cast<Tensor>();
  };
}

std::atomic<int> g_next_hook_id{1};

// A node whose backward is a Python function (kiln.autograd.Function).
class PyFunctionNode final : public Node {
 public:
  PyFunctionNode(std::string name, py::object backward)
      : name_(std::move(name)), backward_(hold(std::move(backward))) {}
  std::string name() const override { return name_; }
  TensorList apply(TensorList&& grads) override {
    py::gil_scoped_acquire gil;
    KILN_CHECK(backward_, Error, "[", name_, "] Trying to backward through the graph a second "
               "time; specify retain_graph=True");
    py::tuple args(grads.size());
    for (size_t i = 0; i < grads.size(); ++i) args[i] = py::cast(grads[i]);
    py::object r = (*backward_)(*args);
    TensorList out;
    if (py::isinstance<py::tuple>(r) || py::isinstance<py::list>(r)) {
      for (auto h : r) out.push_back(h.is_none() ? Tensor() : h.cast<Tensor>());
    } else {
      out.push_back(r.is_none() ? Tensor() : r.cast<Tensor>());
    }
    KILN_CHECK(out.size() == next_edges.size(), Error, "function ", name_,
               " returned an incorrect number of gradients (expected ", next_edges.size(),
               ", got ", out.size(), ")");
    return out;
  }
  void release_saved() override { backward_.reset(); }

 private:
  std::string name_;
  std::shared_ptr<py::object> backward_;
};

}  // namespace

void init_autograd(py::module_& m) {
  py::class_<Node, std::shared_ptr<Node>>(m, "Node", "A backward function in the autograd graph.")
      .def("name", &Node::name)
      .def_property_readonly("next_functions", [](const Node& n) {
        py::tuple t(n.next_edges.size());
        for (size_t i = 0; i < n.next_edges.size(); ++i)
          t[i] = py::make_tuple(n.next_edges[i].node ? py::cast(n.next_edges[i].node) : py::none(),
                                n.next_edges[i].input_nr);
        return t;
      })
      .def_property_readonly("_sequence_nr", [](const Node& n) { return n.sequence_nr; })
      .def("__repr__", [](const Node& n) { return "<" + n.name() + ">"; })
      .def("__eq__", [](const Node& a, const Node& b) { return &a == &b; })
      .def("__hash__", [](const Node& n) { return reinterpret_cast<intptr_t>(&n); });
  py::class_<autograd::AccumulateGrad, Node, std::shared_ptr<autograd::AccumulateGrad>>(
      m, "AccumulateGrad")
      .def_property_readonly("variable", [](const autograd::AccumulateGrad& a) { return a.variable; });

  m.def(
      "_run_backward",
      [](const TensorList& roots, const std::vector<std::optional<Tensor>>& grads, bool retain_graph,
         bool create_graph, const TensorList& inputs, bool allow_unused) {
        TensorList g;
        for (const auto& x : grads) g.push_back(x ? *x : Tensor());
        py::gil_scoped_release release;
        return autograd::run_backward(roots, g, retain_graph, create_graph, inputs, allow_unused);
      },
      py::arg("tensors"), py::arg("grad_tensors"), py::arg("retain_graph"), py::arg("create_graph"),
      py::arg("inputs"), py::arg("allow_unused"));

  m.def("is_grad_enabled", &autograd::is_grad_enabled);
  m.def("_set_grad_enabled", &autograd::set_grad_enabled);
  m.def("is_inference_mode_enabled", &autograd::is_inference_mode);
  m.def("_set_inference_mode", &autograd::set_inference_mode);
  m.def("is_anomaly_enabled", &autograd::is_anomaly_enabled);
  m.def("_set_anomaly_enabled", &autograd::set_anomaly_enabled);
  m.def("_set_forward_trace_provider", [](py::object fn) {
    auto held = hold(std::move(fn));
    autograd::set_forward_trace_provider([held]() {
      py::gil_scoped_acquire gil;
      return (*held)().cast<std::string>();
    });
  });
  // Drop the Python provider before the interpreter goes away.
  py::module_::import("atexit").attr("register")(
      py::cpp_function([]() { autograd::set_forward_trace_provider(nullptr); }));

  // Tensor hooks: leaves keep them in their autograd meta, non-leaves on grad_fn.
  m.def("_register_hook", [](const Tensor& t, py::object fn) {
    KILN_CHECK(t.requires_grad(), Error,
               "[register_hook] cannot register a hook on a tensor that doesn't require gradient");
    const int id = g_next_hook_id++;
    if (t.is_leaf()) {
      t.autograd_meta().hooks.emplace_back(id, python_hook(std::move(fn)));
    } else {
      t.grad_fn()->pre_hooks.emplace_back(id, t.output_nr(), python_hook(std::move(fn)));
    }
    return id;
  });
  m.def("_remove_hook", [](const Tensor& t, int id) {
    if (!t.impl()->autograd) return;
    auto& hooks = t.impl()->autograd->hooks;
    std::erase_if(hooks, [id](const auto& h) { return h.first == id; });
    if (auto& fn = t.grad_fn())
      std::erase_if(fn->pre_hooks, [id](const auto& h) { return std::get<0>(h) == id; });
  });
  m.def("_retain_grad", [](const Tensor& t) {
    KILN_CHECK(t.requires_grad(), Error,
               "[retain_grad] can't retain_grad on Tensor that has requires_grad=False");
    if (t.is_leaf()) return;  // leaves keep .grad anyway
    auto& meta = t.autograd_meta();
    if (meta.retains_grad) return;
    meta.retains_grad = true;
    std::weak_ptr<TensorImpl> weak = t.impl_ptr();
    t.grad_fn()->pre_hooks.emplace_back(0, t.output_nr(), [weak](const Tensor& g) -> Tensor {
      auto impl = weak.lock();
      if (!impl) return Tensor();
      Tensor self(impl);
      autograd::NoGradGuard no_grad;
      Tensor current = self.grad();
      self.autograd_meta().grad = current.defined() ? add(current, g) : clone(g);
      return Tensor();
    });
  });

  // kiln.autograd.Function: connect outputs computed under no_grad to a Python backward.
  m.def("_record_python_function", [](const std::string& name, const TensorList& inputs,
                                      const TensorList& outputs, py::object backward,
                                      bool materialize_grads) {
    auto node = std::make_shared<PyFunctionNode>(name, std::move(backward));
    node->materialize_grads = materialize_grads;
    for (const auto& in : inputs) {
      node->next_edges.push_back(autograd::gradient_edge(in));
      node->input_meta.push_back(autograd::TensorMeta::of(in));
    }
    for (uint32_t i = 0; i < outputs.size(); ++i) {
      node->output_meta.push_back(autograd::TensorMeta::of(outputs[i]));
      autograd::set_history(outputs[i], node, i);
    }
    if (autograd::is_anomaly_enabled()) node->forward_trace = autograd::capture_forward_trace();
    return std::static_pointer_cast<Node>(node);
  });
}

}  // namespace kiln::python
