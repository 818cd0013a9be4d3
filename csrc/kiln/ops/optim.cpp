// Front ends of the fused optimizer steps: check the lists, hand the kernel
// contiguous tensors, write results back into non-contiguous parameters.
//
// Note [Fused optimizer steps]: an optimizer's step() is one call per param
// group. The kernel walks every parameter and updates it, its state and its
// step counter element by element in one pass (float for 16-bit params), so a
// step costs one trip through memory instead of one per elementwise op. The
// math follows PyTorch's single-tensor implementations term by term.
#include "kiln/ops/optim.h"

#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"

namespace kiln {
namespace {

void check_state(const char* op, const TensorList& params, const TensorList& states,
                 const char* name) {
  if (states.empty()) return;
  KILN_CHECK(states.size() == params.size(), ValueError, "[", op, "] got ", params.size(),
             " params but ", states.size(), " ", name, " tensors");
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& s = states[i];
    KILN_CHECK(s.defined() && s.sizes() == params[i].sizes() && s.dtype() == params[i].dtype() &&
                   s.device() == params[i].device() && s.is_contiguous(),
               ValueError, "[", op, "] ", name, "[", i,
               "] must be a contiguous tensor like its parameter (shape ", Shape(params[i].sizes()),
               ", dtype ", params[i].dtype(), ")");
  }
}

void check_counters(const char* op, const TensorList& params, const TensorList& counters,
                    const char* name) {
  KILN_CHECK(counters.size() == params.size(), ValueError, "[", op, "] got ", params.size(),
             " params but ", counters.size(), " ", name, " tensors");
  for (const Tensor& c : counters)
    KILN_CHECK(
        c.defined() && c.numel() == 1 && c.dtype() == ScalarType::Float32 && c.device().is_cpu(),
        ValueError, "[", op, "] ", name, " must be one-element float32 CPU tensors");
}

// Checks params/grads and builds the kernel's view of them.
OptimTensors prepare(const char* op, const TensorList& params, const TensorList& grads,
                     std::vector<std::pair<const TensorList*, const char*>> states) {
  KILN_CHECK(params.size() == grads.size(), ValueError, "[", op, "] got ", params.size(),
             " params but ", grads.size(), " grads");
  OptimTensors t;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    const Tensor& g = grads[i];
    KILN_CHECK(p.defined() && g.defined(), ValueError, "[", op, "] param ", i,
               " or its grad is None");
    KILN_CHECK(p.is_floating_point(), TypeError, "[", op, "] params must be floating point, got ",
               p.dtype(), " for param ", i);
    KILN_CHECK(g.sizes() == p.sizes() && g.dtype() == p.dtype(), ValueError, "[", op, "] grad ", i,
               " has shape ", Shape(g.sizes()), " and dtype ", g.dtype(),
               " but its param has shape ", Shape(p.sizes()), " and dtype ", p.dtype());
    KILN_CHECK(p.device() == params[0].device() && g.device() == p.device(), ValueError, "[", op,
               "] all params and grads must be on one device, got ", p.device(), " and ",
               g.device(), " (param ", i, ")");
    t.params.push_back(contiguous(detach(p)));
    t.grads.push_back(contiguous(detach(g)));
  }
  for (auto [list, name] : states) {
    check_state(op, params, *list, name);
    t.states.push_back(*list);
  }
  return t;
}

// Non-contiguous params were updated in a copy: write it back. Bumps versions
// so autograd sees the in-place change.
void finish(const TensorList& params, const OptimTensors& t) {
  for (size_t i = 0; i < params.size(); ++i) {
    if (t.params[i].data_ptr() != params[i].data_ptr()) {
      Tensor dst = detach(params[i]);
      copy_(dst, t.params[i]);
    }
    params[i].bump_version();
  }
}

template <class Options>
void run(const char* name, const TensorList& params, OptimTensors& t, const Options& o) {
  if (params.empty()) return;
  // One instantiation per Options type, so one op name per static.
  static const dispatch::Op<void(OptimTensors&, const Options&)> kernel(name);
  kernel(params[0].device(), t, o);
  finish(params, t);
}

}  // namespace

TensorList sgd_step_(const TensorList& params, const TensorList& grads,
                     const TensorList& momentum_buffers, const SgdOptions& o) {
  TensorList bufs = momentum_buffers;
  OptimTensors t = prepare("sgd_step_", params, grads, {});
  if (o.momentum != 0) {
    KILN_CHECK(bufs.size() == params.size(), ValueError, "[sgd_step_] got ", params.size(),
               " params but ", bufs.size(), " momentum buffers");
    for (size_t i = 0; i < bufs.size(); ++i) {
      t.fresh.push_back(!bufs[i].defined());
      if (!bufs[i].defined())
        bufs[i] = empty(params[i].sizes(), params[i].dtype(), params[i].device());
    }
    check_state("sgd_step_", params, bufs, "momentum_buffer");
    t.states.push_back(bufs);
  }
  run("sgd_step_", params, t, o);
  return bufs;
}

void adam_step_(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                const TensorList& exp_avg_sqs, const TensorList& max_exp_avg_sqs,
                const TensorList& steps, const AdamOptions& o) {
  KILN_CHECK(!o.amsgrad || max_exp_avg_sqs.size() == params.size(), ValueError,
             "[adam_step_] amsgrad needs one max_exp_avg_sq per param");
  OptimTensors t = prepare(
      "adam_step_", params, grads,
      {{&exp_avgs, "exp_avg"}, {&exp_avg_sqs, "exp_avg_sq"}, {&max_exp_avg_sqs, "max_exp_avg_sq"}});
  check_counters("adam_step_", params, steps, "step");
  t.steps = steps;
  run("adam_step_", params, t, o);
}

void rmsprop_step_(const TensorList& params, const TensorList& grads, const TensorList& square_avgs,
                   const TensorList& momentum_buffers, const TensorList& grad_avgs,
                   const TensorList& steps, const RmspropOptions& o) {
  KILN_CHECK(o.momentum == 0 || momentum_buffers.size() == params.size(), ValueError,
             "[rmsprop_step_] momentum needs one momentum_buffer per param");
  KILN_CHECK(!o.centered || grad_avgs.size() == params.size(), ValueError,
             "[rmsprop_step_] centered needs one grad_avg per param");
  OptimTensors t = prepare("rmsprop_step_", params, grads,
                           {{&square_avgs, "square_avg"},
                            {&momentum_buffers, "momentum_buffer"},
                            {&grad_avgs, "grad_avg"}});
  check_counters("rmsprop_step_", params, steps, "step");
  t.steps = steps;
  run("rmsprop_step_", params, t, o);
}

void adagrad_step_(const TensorList& params, const TensorList& grads, const TensorList& sums,
                   const TensorList& steps, const AdagradOptions& o) {
  OptimTensors t = prepare("adagrad_step_", params, grads, {{&sums, "sum"}});
  check_counters("adagrad_step_", params, steps, "step");
  t.steps = steps;
  run("adagrad_step_", params, t, o);
}

void adadelta_step_(const TensorList& params, const TensorList& grads,
                    const TensorList& square_avgs, const TensorList& acc_deltas,
                    const TensorList& steps, const AdadeltaOptions& o) {
  OptimTensors t = prepare("adadelta_step_", params, grads,
                           {{&square_avgs, "square_avg"}, {&acc_deltas, "acc_delta"}});
  check_counters("adadelta_step_", params, steps, "step");
  t.steps = steps;
  run("adadelta_step_", params, t, o);
}

void adamax_step_(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                  const TensorList& exp_infs, const TensorList& steps, const AdamaxOptions& o) {
  OptimTensors t =
      prepare("adamax_step_", params, grads, {{&exp_avgs, "exp_avg"}, {&exp_infs, "exp_inf"}});
  check_counters("adamax_step_", params, steps, "step");
  t.steps = steps;
  run("adamax_step_", params, t, o);
}

void nadam_step_(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                 const TensorList& exp_avg_sqs, const TensorList& mu_products,
                 const TensorList& steps, const NadamOptions& o) {
  OptimTensors t =
      prepare("nadam_step_", params, grads, {{&exp_avgs, "exp_avg"}, {&exp_avg_sqs, "exp_avg_sq"}});
  check_counters("nadam_step_", params, steps, "step");
  check_counters("nadam_step_", params, mu_products, "mu_product");
  t.steps = steps;
  t.mu_products = mu_products;
  run("nadam_step_", params, t, o);
}

void radam_step_(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                 const TensorList& exp_avg_sqs, const TensorList& steps, const RadamOptions& o) {
  OptimTensors t =
      prepare("radam_step_", params, grads, {{&exp_avgs, "exp_avg"}, {&exp_avg_sqs, "exp_avg_sq"}});
  check_counters("radam_step_", params, steps, "step");
  t.steps = steps;
  run("radam_step_", params, t, o);
}

}  // namespace kiln
