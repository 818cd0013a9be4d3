#pragma once
// Fused multi-tensor optimizer steps: one call updates every parameter of a
// param group in place (see Note [Fused optimizer steps] in optim.cpp).
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

struct SgdOptions {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
};
struct AdamOptions {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize, decoupled_weight_decay;  // decoupled: AdamW
};
struct RmspropOptions {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};
struct AdagradOptions {
  double lr, lr_decay, weight_decay, eps;
  bool maximize;
};
struct AdadeltaOptions {
  double lr, rho, eps, weight_decay;
  bool maximize;
};
struct AdamaxOptions {
  double lr, beta1, beta2, eps, weight_decay;
  bool maximize;
};
struct NadamOptions {
  double lr, beta1, beta2, eps, weight_decay, momentum_decay;
  bool decoupled_weight_decay, maximize;
};
struct RadamOptions {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled_weight_decay, maximize;
};

// What a kernel gets: contiguous tensors of one dtype per parameter (the front
// end checks and prepares them). `states[k][i]` is state k of parameter i; a
// state list that an option turns off (momentum 0, amsgrad false) is empty.
struct OptimTensors {
  TensorList params, grads;
  std::vector<TensorList> states;
  TensorList steps;            // 0-dim float32 CPU counters, incremented by the kernel
  TensorList mu_products;      // NAdam only: 0-dim float32 CPU running products
  std::vector<uint8_t> fresh;  // SGD only: the momentum buffer is new
};

// State tensors are per parameter, same shape and dtype; `steps` are 0-dim
// float32 CPU counters that the step increments. Lists of state that an option
// turns off (momentum 0, amsgrad false, ...) may be empty.

// Undefined momentum buffers are created from the gradient; returns the buffers.
KILN_API TensorList sgd_step_(const TensorList& params, const TensorList& grads,
                              const TensorList& momentum_buffers, const SgdOptions& o);
KILN_API void adam_step_(const TensorList& params, const TensorList& grads,
                         const TensorList& exp_avgs, const TensorList& exp_avg_sqs,
                         const TensorList& max_exp_avg_sqs, const TensorList& steps,
                         const AdamOptions& o);
KILN_API void rmsprop_step_(const TensorList& params, const TensorList& grads,
                            const TensorList& square_avgs, const TensorList& momentum_buffers,
                            const TensorList& grad_avgs, const TensorList& steps,
                            const RmspropOptions& o);
KILN_API void adagrad_step_(const TensorList& params, const TensorList& grads,
                            const TensorList& sums, const TensorList& steps,
                            const AdagradOptions& o);
KILN_API void adadelta_step_(const TensorList& params, const TensorList& grads,
                             const TensorList& square_avgs, const TensorList& acc_deltas,
                             const TensorList& steps, const AdadeltaOptions& o);
KILN_API void adamax_step_(const TensorList& params, const TensorList& grads,
                           const TensorList& exp_avgs, const TensorList& exp_infs,
                           const TensorList& steps, const AdamaxOptions& o);
// `mu_products` are 0-dim float32 CPU tensors, updated like `steps`.
KILN_API void nadam_step_(const TensorList& params, const TensorList& grads,
                          const TensorList& exp_avgs, const TensorList& exp_avg_sqs,
                          const TensorList& mu_products, const TensorList& steps,
                          const NadamOptions& o);
KILN_API void radam_step_(const TensorList& params, const TensorList& grads,
                          const TensorList& exp_avgs, const TensorList& exp_avg_sqs,
                          const TensorList& steps, const RadamOptions& o);

}  // namespace kiln
