// Bindings for convolutions and pooling, with torch.nn.functional's signatures.
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "caster.h"
#include "kiln/ops/conv.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

// An int or a sequence of ints, as PyTorch takes kernel_size, stride, padding, ...
Shape ints(py::handle h, const char* op, const char* name) {
  if (py::isinstance<py::int_>(h) && !py::isinstance<py::bool_>(h)) return {h.cast<int64_t>()};
  if (py::isinstance<py::sequence>(h) && !py::isinstance<py::str>(h)) {
    Shape v;
    for (auto x : h) {
      if (!py::isinstance<py::int_>(x) || py::isinstance<py::bool_>(x))
        throw py::type_error(std::string("[") + op + "] expected " + name +
                             " to be ints, got " + std::string(py::repr(h)));
      v.push_back(x.cast<int64_t>());
    }
    return v;
  }
  throw py::type_error(std::string("[") + op + "] expected " + name +
                       " to be an int or a tuple of ints, got " + std::string(py::repr(h)));
}

Tensor opt(const std::optional<Tensor>& t) { return t.value_or(Tensor()); }

template <class Fn>
Tensor conv(const char* op, const Tensor& input, const Tensor& weight,
            const std::optional<Tensor>& bias, py::handle stride, py::handle padding,
            py::handle dilation, int64_t groups, Fn fn_ints,
            Tensor (*fn_str)(const Tensor&, const Tensor&, const Tensor&, const Shape&,
                             const std::string&, const Shape&, int64_t)) {
  const Shape s = ints(stride, op, "stride"), d = ints(dilation, op, "dilation");
  if (py::isinstance<py::str>(padding)) {
    const std::string mode = padding.cast<std::string>();
    py::gil_scoped_release no_gil;
    return fn_str(input, weight, opt(bias), s, mode, d, groups);
  }
  const Shape p = ints(padding, op, "padding");
  py::gil_scoped_release no_gil;
  return fn_ints(input, weight, opt(bias), s, p, d, groups);
}

template <int ND>
void def_conv(py::module_& m, const char* name) {
  using IntsFn = Tensor (*)(const Tensor&, const Tensor&, const Tensor&, const Shape&,
                            const Shape&, const Shape&, int64_t);
  using StrFn = Tensor (*)(const Tensor&, const Tensor&, const Tensor&, const Shape&,
                           const std::string&, const Shape&, int64_t);
  const IntsFn fi = ND == 1 ? IntsFn(&conv1d) : IntsFn(&conv2d);
  const StrFn fs = ND == 1 ? StrFn(&conv1d) : StrFn(&conv2d);
  m.def(name, [name, fi, fs](const Tensor& input, const Tensor& weight,
                             const std::optional<Tensor>& bias, py::handle stride,
                             py::handle padding, py::handle dilation, int64_t groups) {
    return conv(name, input, weight, bias, stride, padding, dilation, groups, fi, fs);
  }, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(),
     py::arg("stride") = 1, py::arg("padding") = 0, py::arg("dilation") = 1,
     py::arg("groups") = 1,
     "Convolution over (N, C, *spatial) input; padding is ints, 'same' or 'valid'.");
}

template <int ND>
void def_conv_transpose(py::module_& m, const char* name) {
  auto fn = ND == 1 ? &conv_transpose1d : &conv_transpose2d;
  m.def(name, [name, fn](const Tensor& input, const Tensor& weight,
                         const std::optional<Tensor>& bias, py::handle stride, py::handle padding,
                         py::handle output_padding, int64_t groups, py::handle dilation) {
    const Shape s = ints(stride, name, "stride"), p = ints(padding, name, "padding"),
                op = ints(output_padding, name, "output_padding"),
                d = ints(dilation, name, "dilation");
    py::gil_scoped_release no_gil;
    return fn(input, weight, opt(bias), s, p, op, groups, d);
  }, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("stride") = 1,
     py::arg("padding") = 0, py::arg("output_padding") = 0, py::arg("groups") = 1,
     py::arg("dilation") = 1, "Transposed convolution (the gradient of a convolution).");
}

}  // namespace

void init_ops_conv(py::module_& m) {
  def_conv<1>(m, "conv1d");
  def_conv<2>(m, "conv2d");
  def_conv_transpose<1>(m, "conv_transpose1d");
  def_conv_transpose<2>(m, "conv_transpose2d");
}

}  // namespace kiln::python
