// Bindings for convolutions and pooling, with torch.nn.functional's signatures.
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "caster.h"
#include "kiln/ops/conv.h"
#include "kiln/ops/pool.h"
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
        throw py::type_error(std::string("[") + op + "] expected " + name + " to be ints, got " +
                             std::string(py::repr(h)));
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
  using IntsFn = Tensor (*)(const Tensor&, const Tensor&, const Tensor&, const Shape&, const Shape&,
                            const Shape&, int64_t);
  using StrFn = Tensor (*)(const Tensor&, const Tensor&, const Tensor&, const Shape&,
                           const std::string&, const Shape&, int64_t);
  const IntsFn fi = ND == 1 ? IntsFn(&conv1d) : IntsFn(&conv2d);
  const StrFn fs = ND == 1 ? StrFn(&conv1d) : StrFn(&conv2d);
  m.def(
      name,
      [name, fi, fs](const Tensor& input, const Tensor& weight, const std::optional<Tensor>& bias,
                     py::handle stride, py::handle padding, py::handle dilation, int64_t groups) {
        return conv(name, input, weight, bias, stride, padding, dilation, groups, fi, fs);
      },
      py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("stride") = 1,
      py::arg("padding") = 0, py::arg("dilation") = 1, py::arg("groups") = 1,
      "Convolution over (N, C, *spatial) input; padding is ints, 'same' or 'valid'.");
}

template <int ND>
void def_conv_transpose(py::module_& m, const char* name) {
  auto fn = ND == 1 ? &conv_transpose1d : &conv_transpose2d;
  m.def(
      name,
      [name, fn](const Tensor& input, const Tensor& weight, const std::optional<Tensor>& bias,
                 py::handle stride, py::handle padding, py::handle output_padding, int64_t groups,
                 py::handle dilation) {
        const Shape s = ints(stride, name, "stride"), p = ints(padding, name, "padding"),
                    op = ints(output_padding, name, "output_padding"),
                    d = ints(dilation, name, "dilation");
        py::gil_scoped_release no_gil;
        return fn(input, weight, opt(bias), s, p, op, groups, d);
      },
      py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("stride") = 1,
      py::arg("padding") = 0, py::arg("output_padding") = 0, py::arg("groups") = 1,
      py::arg("dilation") = 1, "Transposed convolution (the gradient of a convolution).");
}

// stride=None means stride = kernel_size (an empty Shape).
Shape stride_or_none(py::handle h, const char* op) {
  return h.is_none() ? Shape{} : ints(h, op, "stride");
}

// Adaptive output sizes: None keeps the input's size (-1).
Shape output_size(py::handle h, const char* op) {
  if (py::isinstance<py::sequence>(h)) {
    Shape v;
    for (auto x : h) v.push_back(x.is_none() ? -1 : ints(x, op, "output_size")[0]);
    return v;
  }
  return ints(h, op, "output_size");
}

template <class Fn>
void def_max_pool(py::module_& m, const char* name, const char* op, Fn fn, const char* doc) {
  m.def(
      name,
      [op, fn](const Tensor& input, py::handle kernel_size, py::handle stride, py::handle padding,
               py::handle dilation, bool ceil_mode) {
        const Shape k = ints(kernel_size, op, "kernel_size"), s = stride_or_none(stride, op),
                    p = ints(padding, op, "padding"), d = ints(dilation, op, "dilation");
        py::gil_scoped_release no_gil;
        return fn(input, k, s, p, d, ceil_mode);
      },
      py::arg("input"), py::arg("kernel_size"), py::arg("stride") = py::none(),
      py::arg("padding") = 0, py::arg("dilation") = 1, py::arg("ceil_mode") = false, doc);
}

template <class Fn>
void def_adaptive(py::module_& m, const char* name, Fn fn, const char* doc) {
  m.def(
      name,
      [name, fn](const Tensor& input, py::handle size) {
        const Shape s = output_size(size, name);
        py::gil_scoped_release no_gil;
        return fn(input, s);
      },
      py::arg("input"), py::arg("output_size"), doc);
}

}  // namespace

void init_ops_conv(py::module_& m) {
  def_conv<1>(m, "conv1d");
  def_conv<2>(m, "conv2d");
  def_conv_transpose<1>(m, "conv_transpose1d");
  def_conv_transpose<2>(m, "conv_transpose2d");

  // torch.nn.functional.unfold / fold (torch._C._nn.im2col / col2im): for kiln.nn.functional.
  m.def(
      "im2col",
      [](const Tensor& input, py::handle kernel_size, py::handle dilation, py::handle padding,
         py::handle stride) {
        const char* op = "unfold";
        const Shape k = ints(kernel_size, op, "kernel_size"), d = ints(dilation, op, "dilation"),
                    p = ints(padding, op, "padding"), s = ints(stride, op, "stride");
        py::gil_scoped_release no_gil;
        return unfold(input, k, d, p, s);
      },
      py::arg("input"), py::arg("kernel_size"), py::arg("dilation") = 1, py::arg("padding") = 0,
      py::arg("stride") = 1, "Sliding patches as columns: F.unfold.");
  m.def(
      "col2im",
      [](const Tensor& input, py::handle output_size, py::handle kernel_size, py::handle dilation,
         py::handle padding, py::handle stride) {
        const char* op = "fold";
        const Shape o = ints(output_size, op, "output_size"),
                    k = ints(kernel_size, op, "kernel_size"), d = ints(dilation, op, "dilation"),
                    p = ints(padding, op, "padding"), s = ints(stride, op, "stride");
        py::gil_scoped_release no_gil;
        return fold(input, o, k, d, p, s);
      },
      py::arg("input"), py::arg("output_size"), py::arg("kernel_size"), py::arg("dilation") = 1,
      py::arg("padding") = 0, py::arg("stride") = 1, "Sums columns back into an image: F.fold.");

  def_max_pool(m, "max_pool1d", "max_pool1d", &max_pool1d, "Max over sliding windows.");
  def_max_pool(m, "max_pool2d", "max_pool2d", &max_pool2d, "Max over sliding windows.");
  def_max_pool(m, "max_pool1d_with_indices", "max_pool1d", &max_pool1d_with_indices,
               "(values, flat indices into each input plane) of max_pool1d.");
  def_max_pool(m, "max_pool2d_with_indices", "max_pool2d", &max_pool2d_with_indices,
               "(values, flat indices h * W + w into each input plane) of max_pool2d.");
  m.def(
      "avg_pool1d",
      [](const Tensor& input, py::handle kernel_size, py::handle stride, py::handle padding,
         bool ceil_mode, bool count_include_pad) {
        const char* op = "avg_pool1d";
        const Shape k = ints(kernel_size, op, "kernel_size"), s = stride_or_none(stride, op),
                    p = ints(padding, op, "padding");
        py::gil_scoped_release no_gil;
        return avg_pool1d(input, k, s, p, ceil_mode, count_include_pad);
      },
      py::arg("input"), py::arg("kernel_size"), py::arg("stride") = py::none(),
      py::arg("padding") = 0, py::arg("ceil_mode") = false, py::arg("count_include_pad") = true,
      "Mean over sliding windows.");
  m.def(
      "avg_pool2d",
      [](const Tensor& input, py::handle kernel_size, py::handle stride, py::handle padding,
         bool ceil_mode, bool count_include_pad, std::optional<int64_t> divisor_override) {
        const char* op = "avg_pool2d";
        const Shape k = ints(kernel_size, op, "kernel_size"), s = stride_or_none(stride, op),
                    p = ints(padding, op, "padding");
        py::gil_scoped_release no_gil;
        return avg_pool2d(input, k, s, p, ceil_mode, count_include_pad, divisor_override);
      },
      py::arg("input"), py::arg("kernel_size"), py::arg("stride") = py::none(),
      py::arg("padding") = 0, py::arg("ceil_mode") = false, py::arg("count_include_pad") = true,
      py::arg("divisor_override") = py::none(), "Mean over sliding windows.");
  def_adaptive(m, "adaptive_avg_pool1d", &adaptive_avg_pool1d,
               "Mean over output_size evenly spread windows.");
  def_adaptive(m, "adaptive_avg_pool2d", &adaptive_avg_pool2d,
               "Mean over output_size evenly spread windows.");
  def_adaptive(m, "adaptive_max_pool1d", &adaptive_max_pool1d,
               "(values, indices) of the max over output_size evenly spread windows.");
  def_adaptive(m, "adaptive_max_pool2d", &adaptive_max_pool2d,
               "(values, indices) of the max over output_size evenly spread windows.");
}

}  // namespace kiln::python
