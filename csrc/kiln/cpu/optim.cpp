// CPU kernels of the fused optimizer steps (Note [Fused optimizer steps]).
// Each kernel gives `apply` a factory: for parameter i it advances that
// parameter's counters and returns the element update, which sees the param,
// its grad and its state values in OpMath<T>.
#include <algorithm>
#include <cmath>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/ops/optim.h"
#include "kiln/parallel.h"

namespace kiln::cpu {
namespace {

constexpr size_t kMaxStates = 3;

template <class Make>
void apply(OptimTensors& t, const char* op, const Make& make) {
  if (t.params.empty()) return;
  visit_floating(t.params[0].dtype(), op, [&]<class T>(TypeTag<T>) {
    using M = OpMath<T>;
    for (size_t i = 0; i < t.params.size(); ++i) {
      T* p = t.params[i].data<T>();
      const T* g = t.grads[i].data<T>();
      T* s[kMaxStates] = {};
      for (size_t k = 0; k < t.states.size(); ++k)
        if (!t.states[k].empty()) s[k] = t.states[k][i].data<T>();
      const auto update = make.template operator()<M>(i);
      parallel_for(0, t.params[i].numel(), kParallelGrain, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
          M pv = static_cast<M>(p[j]);
          M sv[kMaxStates] = {};
          for (size_t k = 0; k < kMaxStates; ++k)
            if (s[k]) sv[k] = static_cast<M>(s[k][j]);
          update(pv, static_cast<M>(g[j]), sv);
          p[j] = static_cast<T>(pv);
          for (size_t k = 0; k < kMaxStates; ++k)
            if (s[k]) s[k][j] = static_cast<T>(sv[k]);
        }
      });
    }
  });
}

// Advances parameter i's step counter and returns the new step.
double next_step(OptimTensors& t, size_t i) {
  float& step = *t.steps[i].data<float>();
  step += 1;
  return step;
}

void sgd_kernel(OptimTensors& t, const SgdOptions& o) {
  const bool momentum = o.momentum != 0;
  apply(t, "sgd_step_", [&]<class M>(size_t i) {
    const bool fresh = momentum && t.fresh[i];
    const M lr = o.lr, wd = o.weight_decay, mom = o.momentum, damp = 1 - o.dampening;
    return [=, &o](M& p, M g, M* s) {
      if (o.maximize) g = -g;
      if (wd != 0) g += wd * p;
      if (momentum) {
        s[0] = fresh ? g : mom * s[0] + damp * g;
        g = o.nesterov ? g + mom * s[0] : s[0];
      }
      p -= lr * g;
    };
  });
}

void adam_kernel(OptimTensors& t, const AdamOptions& o) {
  apply(t, "adam_step_", [&]<class M>(size_t i) {
    const double step = next_step(t, i);
    const M step_size = o.lr / (1 - std::pow(o.beta1, step));
    const M bc2_sqrt = std::sqrt(1 - std::pow(o.beta2, step));
    const M b1 = 1 - o.beta1, b2 = o.beta2, wd = o.weight_decay, eps = o.eps;
    const M decay = 1 - o.lr * o.weight_decay;
    return [=, &o](M& p, M g, M* s) {
      if (o.maximize) g = -g;
      if (o.decoupled_weight_decay) p *= decay;
      else if (wd != 0) g += wd * p;
      s[0] += b1 * (g - s[0]);
      s[1] = b2 * s[1] + (1 - b2) * g * g;
      M v = s[1];
      if (o.amsgrad) v = s[2] = std::max(s[2], s[1]);
      p -= step_size * s[0] / (std::sqrt(v) / bc2_sqrt + eps);
    };
  });
}

void rmsprop_kernel(OptimTensors& t, const RmspropOptions& o) {
  apply(t, "rmsprop_step_", [&]<class M>(size_t i) {
    next_step(t, i);
    const M lr = o.lr, alpha = o.alpha, eps = o.eps, wd = o.weight_decay, mom = o.momentum;
    return [=, &o](M& p, M g, M* s) {
      if (o.maximize) g = -g;
      if (wd != 0) g += wd * p;
      s[0] = alpha * s[0] + (1 - alpha) * g * g;
      M avg;
      if (o.centered) {
        s[2] += (1 - alpha) * (g - s[2]);
        avg = std::sqrt(s[0] - s[2] * s[2]) + eps;
      } else {
        avg = std::sqrt(s[0]) + eps;
      }
      if (mom > 0) {
        s[1] = mom * s[1] + g / avg;
        p -= lr * s[1];
      } else {
        p -= lr * g / avg;
      }
    };
  });
}

void adagrad_kernel(OptimTensors& t, const AdagradOptions& o) {
  apply(t, "adagrad_step_", [&]<class M>(size_t i) {
    const double step = next_step(t, i);
    const M clr = o.lr / (1 + (step - 1) * o.lr_decay);
    const M wd = o.weight_decay, eps = o.eps;
    return [=, &o](M& p, M g, M* s) {
      if (o.maximize) g = -g;
      if (wd != 0) g += wd * p;
      s[0] += g * g;
      p -= clr * g / (std::sqrt(s[0]) + eps);
    };
  });
}

void adadelta_kernel(OptimTensors& t, const AdadeltaOptions& o) {
  apply(t, "adadelta_step_", [&]<class M>(size_t i) {
    next_step(t, i);
    const M lr = o.lr, rho = o.rho, eps = o.eps, wd = o.weight_decay;
    return [=, &o](M& p, M g, M* s) {
      if (o.maximize) g = -g;
      if (wd != 0) g += wd * p;
      s[0] = rho * s[0] + (1 - rho) * g * g;
      const M delta = std::sqrt(s[1] + eps) / std::sqrt(s[0] + eps) * g;
      s[1] = rho * s[1] + (1 - rho) * delta * delta;
      p -= lr * delta;
    };
  });
}

void adamax_kernel(OptimTensors& t, const AdamaxOptions& o) {
  apply(t, "adamax_step_", [&]<class M>(size_t i) {
    const double step = next_step(t, i);
    const M clr = o.lr / (1 - std::pow(o.beta1, step));
    const M b1 = 1 - o.beta1, b2 = o.beta2, eps = o.eps, wd = o.weight_decay;
    return [=, &o](M& p, M g, M* s) {
      if (o.maximize) g = -g;
      if (wd != 0) g += wd * p;
      s[0] += b1 * (g - s[0]);
      s[1] = std::max(s[1] * b2, std::abs(g) + eps);
      p -= clr * s[0] / s[1];
    };
  });
}

void nadam_kernel(OptimTensors& t, const NadamOptions& o) {
  apply(t, "nadam_step_", [&]<class M>(size_t i) {
    const double step = next_step(t, i);
    const double mu = o.beta1 * (1 - 0.5 * std::pow(0.96, step * o.momentum_decay));
    const double mu_next = o.beta1 * (1 - 0.5 * std::pow(0.96, (step + 1) * o.momentum_decay));
    float& mu_product_t = *t.mu_products[i].data<float>();
    mu_product_t *= static_cast<float>(mu);
    const double mu_product = mu_product_t;
    const M c_grad = o.lr * (1 - mu) / (1 - mu_product);
    const M c_avg = o.lr * mu_next / (1 - mu_product * mu_next);
    const M bc2 = 1 - std::pow(o.beta2, step);
    const M b1 = 1 - o.beta1, b2 = o.beta2, eps = o.eps, wd = o.weight_decay;
    const M decay = 1 - o.lr * o.weight_decay;
    return [=, &o](M& p, M g, M* s) {
      if (o.maximize) g = -g;
      if (o.decoupled_weight_decay) p *= decay;
      else if (wd != 0) g += wd * p;
      s[0] += b1 * (g - s[0]);
      s[1] = b2 * s[1] + (1 - b2) * g * g;
      const M denom = std::sqrt(s[1] / bc2) + eps;
      p -= c_grad * g / denom;
      p -= c_avg * s[0] / denom;
    };
  });
}

void radam_kernel(OptimTensors& t, const RadamOptions& o) {
  apply(t, "radam_step_", [&]<class M>(size_t i) {
    const double step = next_step(t, i);
    const double bc1 = 1 - std::pow(o.beta1, step);
    const double bc2 = 1 - std::pow(o.beta2, step);
    const double rho_inf = 2 / (1 - o.beta2) - 1;
    const double rho_t = rho_inf - 2 * step * std::pow(o.beta2, step) / bc2;
    // The variance is tractable (rectified update) only once rho_t > 5.
    const bool rectify = rho_t > 5;
    const double rect = rectify ? std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf /
                                            ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                                : 0;
    const M c_rect = o.lr * rect * std::sqrt(bc2) / bc1, c_plain = o.lr / bc1;
    const M b1 = 1 - o.beta1, b2 = o.beta2, eps = o.eps, wd = o.weight_decay;
    const M decay = 1 - o.lr * o.weight_decay;
    return [=, &o](M& p, M g, M* s) {
      if (o.maximize) g = -g;
      if (o.decoupled_weight_decay) p *= decay;
      else if (wd != 0) g += wd * p;
      s[0] += b1 * (g - s[0]);
      s[1] = b2 * s[1] + (1 - b2) * g * g;
      if (rectify) p -= c_rect * s[0] / (std::sqrt(s[1]) + eps);
      else p -= c_plain * s[0];
    };
  });
}

}  // namespace

KILN_REGISTER_KERNEL(sgd_step_, CPU, sgd_kernel);
KILN_REGISTER_KERNEL(adam_step_, CPU, adam_kernel);
KILN_REGISTER_KERNEL(rmsprop_step_, CPU, rmsprop_kernel);
KILN_REGISTER_KERNEL(adagrad_step_, CPU, adagrad_kernel);
KILN_REGISTER_KERNEL(adadelta_step_, CPU, adadelta_kernel);
KILN_REGISTER_KERNEL(adamax_step_, CPU, adamax_kernel);
KILN_REGISTER_KERNEL(nadam_step_, CPU, nadam_kernel);
KILN_REGISTER_KERNEL(radam_step_, CPU, radam_kernel);

}  // namespace kiln::cpu
