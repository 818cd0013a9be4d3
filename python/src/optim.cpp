// Fused optimizer steps (kiln._C._sgd_step_, ...), called once per param group
// by the optimizers in kiln/optim. Python keeps the param groups and state
// dicts; these update every parameter of a group in one call.
#include "kiln/ops/optim.h"

#include <pybind11/stl.h>

#include "caster.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

void init_optim(py::module_& m) {
  using TL = TensorList;
  using release = py::call_guard<py::gil_scoped_release>;
  m.def(
      "_sgd_step_",
      [](const TL& params, const TL& grads, const std::vector<std::optional<Tensor>>& bufs,
         double lr, double momentum, double dampening, double weight_decay, bool nesterov,
         bool maximize) {
        TL b;
        for (const auto& t : bufs) b.push_back(t ? *t : Tensor());
        py::gil_scoped_release nogil;
        return sgd_step_(params, grads, b,
                         {lr, momentum, dampening, weight_decay, nesterov, maximize});
      },
      py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("lr"),
      py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"),
      py::arg("maximize"),
      "SGD step over a param group; None momentum buffers are created. Returns the buffers.");
  m.def(
      "_adam_step_",
      [](const TL& params, const TL& grads, const TL& exp_avgs, const TL& exp_avg_sqs,
         const TL& max_exp_avg_sqs, const TL& steps, double lr, double beta1, double beta2,
         double eps, double weight_decay, bool amsgrad, bool maximize, bool decoupled) {
        adam_step_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
                   {lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled});
      },
      release(), py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
      py::arg("max_exp_avg_sqs"), py::arg("steps"), py::arg("lr"), py::arg("beta1"),
      py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("amsgrad"),
      py::arg("maximize"), py::arg("decoupled_weight_decay"),
      "Adam/AdamW step over a param group.");
  m.def(
      "_rmsprop_step_",
      [](const TL& params, const TL& grads, const TL& square_avgs, const TL& momentum_buffers,
         const TL& grad_avgs, const TL& steps, double lr, double alpha, double eps,
         double weight_decay, double momentum, bool centered, bool maximize) {
        rmsprop_step_(params, grads, square_avgs, momentum_buffers, grad_avgs, steps,
                      {lr, alpha, eps, weight_decay, momentum, centered, maximize});
      },
      release(), py::arg("params"), py::arg("grads"), py::arg("square_avgs"),
      py::arg("momentum_buffers"), py::arg("grad_avgs"), py::arg("steps"), py::arg("lr"),
      py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"), py::arg("momentum"),
      py::arg("centered"), py::arg("maximize"), "RMSprop step over a param group.");
  m.def(
      "_adagrad_step_",
      [](const TL& params, const TL& grads, const TL& sums, const TL& steps, double lr,
         double lr_decay, double weight_decay, double eps, bool maximize) {
        adagrad_step_(params, grads, sums, steps, {lr, lr_decay, weight_decay, eps, maximize});
      },
      release(), py::arg("params"), py::arg("grads"), py::arg("sums"), py::arg("steps"),
      py::arg("lr"), py::arg("lr_decay"), py::arg("weight_decay"), py::arg("eps"),
      py::arg("maximize"), "Adagrad step over a param group.");
  m.def(
      "_adadelta_step_",
      [](const TL& params, const TL& grads, const TL& square_avgs, const TL& acc_deltas,
         const TL& steps, double lr, double rho, double eps, double weight_decay, bool maximize) {
        adadelta_step_(params, grads, square_avgs, acc_deltas, steps,
                       {lr, rho, eps, weight_decay, maximize});
      },
      release(), py::arg("params"), py::arg("grads"), py::arg("square_avgs"), py::arg("acc_deltas"),
      py::arg("steps"), py::arg("lr"), py::arg("rho"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("maximize"), "Adadelta step over a param group.");
  m.def(
      "_adamax_step_",
      [](const TL& params, const TL& grads, const TL& exp_avgs, const TL& exp_infs, const TL& steps,
         double lr, double beta1, double beta2, double eps, double weight_decay, bool maximize) {
        adamax_step_(params, grads, exp_avgs, exp_infs, steps,
                     {lr, beta1, beta2, eps, weight_decay, maximize});
      },
      release(), py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_infs"),
      py::arg("steps"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
      py::arg("weight_decay"), py::arg("maximize"), "Adamax step over a param group.");
  m.def(
      "_nadam_step_",
      [](const TL& params, const TL& grads, const TL& exp_avgs, const TL& exp_avg_sqs,
         const TL& mu_products, const TL& steps, double lr, double beta1, double beta2, double eps,
         double weight_decay, double momentum_decay, bool decoupled, bool maximize) {
        nadam_step_(params, grads, exp_avgs, exp_avg_sqs, mu_products, steps,
                    {lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled, maximize});
      },
      release(), py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
      py::arg("mu_products"), py::arg("steps"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"),
      py::arg("eps"), py::arg("weight_decay"), py::arg("momentum_decay"),
      py::arg("decoupled_weight_decay"), py::arg("maximize"), "NAdam step over a param group.");
  m.def(
      "_radam_step_",
      [](const TL& params, const TL& grads, const TL& exp_avgs, const TL& exp_avg_sqs,
         const TL& steps, double lr, double beta1, double beta2, double eps, double weight_decay,
         bool decoupled, bool maximize) {
        radam_step_(params, grads, exp_avgs, exp_avg_sqs, steps,
                    {lr, beta1, beta2, eps, weight_decay, decoupled, maximize});
      },
      release(), py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
      py::arg("steps"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
      py::arg("weight_decay"), py::arg("decoupled_weight_decay"), py::arg("maximize"),
      "RAdam step over a param group.");
}

}  // namespace kiln::python
