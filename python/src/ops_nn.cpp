// Bindings for the fused neural-network ops: normalization layers, embedding, dropout,
// losses and attention, with torch.nn.functional's signatures.
#include <pybind11/stl.h>

#include "args.h"
#include "caster.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

using OptTensor = std::optional<Tensor>;
Tensor opt(const OptTensor& t) { return t ? *t : Tensor(); }

// normalized_shape may be an int or a sequence of ints, as in PyTorch.
Shape shape_arg(py::handle h, const char* op) {
  if (py::isinstance<py::int_>(h)) return {py::cast<int64_t>(h)};
  try {
    return py::cast<Shape>(h);
  } catch (const py::cast_error&) {
    throw py::type_error(std::string("[") + op +
                         "] expected an int or a sequence of ints for "
                         "normalized_shape, got " +
                         std::string(py::str(py::type::of(h).attr("__name__"))));
  }
}

// F.dropout(..., inplace=True) writes the result back into input.
Tensor maybe_inplace(Tensor input, const Tensor& out, bool inplace) {
  if (!inplace || out.is_same(input)) return out;
  copy_(input, out);
  return input;
}

}  // namespace

void init_ops_nn(py::module_& m) {
  m.def(
      "layer_norm",
      [](const Tensor& input, py::handle normalized_shape, OptTensor weight, OptTensor bias,
         double eps) {
        return layer_norm(input, shape_arg(normalized_shape, "layer_norm"), opt(weight), opt(bias),
                          eps);
      },
      py::arg("input"), py::arg("normalized_shape"), py::arg("weight") = py::none(),
      py::arg("bias") = py::none(), py::arg("eps") = 1e-5,
      "Normalizes over the trailing normalized_shape dims, then scales and shifts.");
  m.def(
      "rms_norm",
      [](const Tensor& input, py::handle normalized_shape, OptTensor weight,
         std::optional<double> eps) {
        return rms_norm(input, shape_arg(normalized_shape, "rms_norm"), opt(weight), eps);
      },
      py::arg("input"), py::arg("normalized_shape"), py::arg("weight") = py::none(),
      py::arg("eps") = py::none(),
      "Divides by the root mean square over the trailing normalized_shape dims, then scales.");
  m.def(
      "group_norm",
      [](const Tensor& input, int64_t num_groups, OptTensor weight, OptTensor bias, double eps) {
        return group_norm(input, num_groups, opt(weight), opt(bias), eps);
      },
      py::arg("input"), py::arg("num_groups"), py::arg("weight") = py::none(),
      py::arg("bias") = py::none(), py::arg("eps") = 1e-5,
      "Normalizes each group of channels of an (N, C, *) input, then applies a per-channel "
      "affine.");
  m.def(
      "batch_norm",
      [](const Tensor& input, OptTensor running_mean, OptTensor running_var, OptTensor weight,
         OptTensor bias, bool training, double momentum, double eps) {
        return batch_norm(input, opt(running_mean), opt(running_var), opt(weight), opt(bias),
                          training, momentum, eps);
      },
      py::arg("input"), py::arg("running_mean"), py::arg("running_var"),
      py::arg("weight") = py::none(), py::arg("bias") = py::none(), py::arg("training") = false,
      py::arg("momentum") = 0.1, py::arg("eps") = 1e-5,
      "Per-channel normalization of an (N, C, *) input; in training mode uses batch statistics "
      "and updates running_mean/running_var in place.");

  m.def(
      "embedding",
      [](const Tensor& input, const Tensor& weight, std::optional<int64_t> padding_idx) {
        return embedding(input, weight, padding_idx);
      },
      py::arg("input"), py::arg("weight"), py::arg("padding_idx") = py::none(),
      "Rows of weight picked by the integer input; padding_idx rows get no gradient.");
  m.def(
      "dropout",
      [](const Tensor& input, double p, bool training, bool inplace) {
        return maybe_inplace(input, dropout(input, p, training), inplace);
      },
      py::arg("input"), py::arg("p") = 0.5, py::arg("training") = true, py::arg("inplace") = false,
      "Zeroes elements with probability p and scales the rest by 1/(1-p) (training only).");
  m.def(
      "dropout2d",
      [](const Tensor& input, double p, bool training, bool inplace) {
        return maybe_inplace(input, dropout2d(input, p, training), inplace);
      },
      py::arg("input"), py::arg("p") = 0.5, py::arg("training") = true, py::arg("inplace") = false,
      "Zeroes whole channels of an (N, C, *) input with probability p (training only).");

  m.def(
      "cross_entropy",
      [](const Tensor& input, const Tensor& target, OptTensor weight, int64_t ignore_index,
         const std::string& reduction, double label_smoothing) {
        return cross_entropy(input, target, opt(weight), ignore_index,
                             parse_reduction(reduction, "cross_entropy"), label_smoothing);
      },
      py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("ignore_index") = -100, py::arg("reduction") = "mean",
      py::arg("label_smoothing") = 0.0,
      "Cross entropy of logits against class indices or class probabilities (fused "
      "log-softmax).");
  m.def(
      "nll_loss",
      [](const Tensor& input, const Tensor& target, OptTensor weight, int64_t ignore_index,
         const std::string& reduction) {
        return nll_loss(input, target, opt(weight), ignore_index,
                        parse_reduction(reduction, "nll_loss"));
      },
      py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("ignore_index") = -100, py::arg("reduction") = "mean",
      "Negative log likelihood of log-probabilities at the target class indices.");
  m.def(
      "_scaled_dot_product_attention",
      [](const Tensor& query, const Tensor& key, const Tensor& value, OptTensor attn_mask,
         bool is_causal, std::optional<double> scale) {
        return scaled_dot_product_attention(query, key, value, opt(attn_mask), is_causal, scale);
      },
      py::arg("query"), py::arg("key"), py::arg("value"), py::arg("attn_mask") = py::none(),
      py::arg("is_causal") = false, py::arg("scale") = py::none(),
      "softmax(query @ key^T * scale + mask) @ value without dropout (fused where the device "
      "has a kernel).");
}

}  // namespace kiln::python
