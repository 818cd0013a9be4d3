#pragma once
// The fused optimizer steps (Note [Fused optimizer steps]) written once for
// the CPU and CUDA kernels. Each <Name>Update<M, flags...> holds one
// parameter's constants, computed on the host by make() from the options and
// the parameter's new step count, and its operator() updates element j of the
// parameter, its gradient and its state in M (OpMath<T>: float for 16-bit T).
// On/off options are template flags, so the per-element update has no
// branches and vectorizes on the CPU.
//
// <name>_step(t, o, apply) turns the options into flags and calls
// apply(t, op, make), where make.template operator()<T>(i) advances parameter
// i's counters and returns its Update; `apply` (one per backend) runs the
// updates over every element.
#include <algorithm>
#include <cmath>

#include "kiln/dtype_dispatch.h"
#include "kiln/functors.h"
#include "kiln/ops/optim.h"

namespace kiln::optim {

// Parameter data, gradient and up to three state tensors (null when switched off).
template <class T>
struct Ptrs {
  T* p;
  const T* g;
  T* s[3];
};

// Calls f.template operator()<b0, b1, ...>() with runtime bools as template arguments.
template <bool... Fixed, class F>
void static_bools(const F& f) {
  f.template operator()<Fixed...>();
}
template <bool... Fixed, class F, class... Rest>
void static_bools(const F& f, bool b, Rest... rest) {
  if (b)
    static_bools<Fixed..., true>(f, rest...);
  else
    static_bools<Fixed..., false>(f, rest...);
}

// Advances parameter i's step counter (a float32 CPU tensor) and returns the new step.
inline double next_step(OptimTensors& t, size_t i) {
  float& step = *t.steps[i].data<float>();
  step += 1;
  return step;
}

template <class M>
M sign(bool maximize) {
  return maximize ? M(-1) : M(1);
}

// Element j's gradient, negated to maximize, plus L2 weight decay of parameter value p.
template <bool Decay, class M, class T>
KILN_HD M grad_at(const Ptrs<T>& x, int64_t j, M p, M sg, M wd) {
  M g = sg * static_cast<M>(x.g[j]);
  if constexpr (Decay) g += wd * p;
  return g;
}

// Adam's moments: m (state 0) and v (state 1) advanced by g, stored and returned.
template <class M, class T>
KILN_HD void update_moments(const Ptrs<T>& x, int64_t j, M g, M one_minus_b1, M b2, M& m, M& v) {
  m = static_cast<M>(x.s[0][j]);
  m += one_minus_b1 * (g - m);
  v = b2 * static_cast<M>(x.s[1][j]) + (1 - b2) * g * g;
  x.s[0][j] = T(m);
  x.s[1][j] = T(v);
}

// The step of an Update whose one flag is Decay and whose make() takes (options, step).
template <template <class, bool> class Update, class Options, class Apply>
void decay_step(OptimTensors& t, const Options& o, bool decay, const char* op,
                const Apply& apply) {
  static_bools(
      [&]<bool Decay>() {
        apply(t, op, [&]<class T>(size_t i) {
          return Update<OpMath<T>, Decay>::make(o, next_step(t, i));
        });
      },
      decay);
}

template <class M, bool Momentum, bool Nesterov, bool Decay>
struct SgdUpdate {
  M lr, wd, mom, damp, sg;
  bool fresh;  // the momentum buffer is new: it starts as the gradient
  static SgdUpdate make(const SgdOptions& o, bool fresh) {
    return {M(o.lr), M(o.weight_decay), M(o.momentum), M(1 - o.dampening), sign<M>(o.maximize),
            fresh};
  }
  template <class T>
  KILN_HD void operator()(const Ptrs<T>& x, int64_t j) const {
    const M p = static_cast<M>(x.p[j]);
    M g = grad_at<Decay>(x, j, p, sg, wd);
    if constexpr (Momentum) {
      const M buf = fresh ? g : mom * static_cast<M>(x.s[0][j]) + damp * g;
      x.s[0][j] = T(buf);
      g = Nesterov ? g + mom * buf : buf;
    }
    x.p[j] = T(p - lr * g);
  }
};

template <class Apply>
void sgd_step(OptimTensors& t, const SgdOptions& o, const Apply& apply) {
  static_bools(
      [&]<bool Momentum, bool Nesterov, bool Decay>() {
        apply(t, "sgd_step_", [&]<class T>(size_t i) {
          return SgdUpdate<OpMath<T>, Momentum, Nesterov, Decay>::make(o,
                                                                       Momentum && t.fresh[i]);
        });
      },
      o.momentum != 0, o.nesterov, o.weight_decay != 0);
}

template <class M, bool Amsgrad, bool Decay>
struct AdamUpdate {
  M step_size, bc2_sqrt, b1, b2, wd, eps, decay, sg;
  static AdamUpdate make(const AdamOptions& o, double step) {
    return {M(o.lr / (1 - std::pow(o.beta1, step))),
            M(std::sqrt(1 - std::pow(o.beta2, step))),
            M(1 - o.beta1),
            M(o.beta2),
            M(o.weight_decay),
            M(o.eps),
            M(o.decoupled_weight_decay ? 1 - o.lr * o.weight_decay : 1),
            sign<M>(o.maximize)};
  }
  template <class T>
  KILN_HD void operator()(const Ptrs<T>& x, int64_t j) const {
    const M p = decay * static_cast<M>(x.p[j]);
    const M g = grad_at<Decay>(x, j, p, sg, wd);
    M m, v;
    update_moments(x, j, g, b1, b2, m, v);
    if constexpr (Amsgrad) {
      v = std::max(static_cast<M>(x.s[2][j]), v);
      x.s[2][j] = T(v);
    }
    x.p[j] = T(p - step_size * m / (std::sqrt(v) / bc2_sqrt + eps));
  }
};

template <class Apply>
void adam_step(OptimTensors& t, const AdamOptions& o, const Apply& apply) {
  static_bools(
      [&]<bool Amsgrad, bool Decay>() {
        apply(t, "adam_step_", [&]<class T>(size_t i) {
          return AdamUpdate<OpMath<T>, Amsgrad, Decay>::make(o, next_step(t, i));
        });
      },
      o.amsgrad, o.weight_decay != 0 && !o.decoupled_weight_decay);
}

template <class M, bool Centered, bool Momentum, bool Decay>
struct RmspropUpdate {
  M lr, alpha, eps, wd, mom, sg;
  static RmspropUpdate make(const RmspropOptions& o) {
    return {M(o.lr), M(o.alpha), M(o.eps), M(o.weight_decay), M(o.momentum), sign<M>(o.maximize)};
  }
  template <class T>
  KILN_HD void operator()(const Ptrs<T>& x, int64_t j) const {
    const M p = static_cast<M>(x.p[j]);
    const M g = grad_at<Decay>(x, j, p, sg, wd);
    const M sq = alpha * static_cast<M>(x.s[0][j]) + (1 - alpha) * g * g;
    x.s[0][j] = T(sq);
    M avg;
    if constexpr (Centered) {
      M ga = static_cast<M>(x.s[2][j]);
      ga += (1 - alpha) * (g - ga);
      x.s[2][j] = T(ga);
      avg = std::sqrt(sq - ga * ga) + eps;
    } else {
      avg = std::sqrt(sq) + eps;
    }
    if constexpr (Momentum) {
      const M buf = mom * static_cast<M>(x.s[1][j]) + g / avg;
      x.s[1][j] = T(buf);
      x.p[j] = T(p - lr * buf);
    } else {
      x.p[j] = T(p - lr * g / avg);
    }
  }
};

template <class Apply>
void rmsprop_step(OptimTensors& t, const RmspropOptions& o, const Apply& apply) {
  static_bools(
      [&]<bool Centered, bool Momentum, bool Decay>() {
        apply(t, "rmsprop_step_", [&]<class T>(size_t i) {
          next_step(t, i);
          return RmspropUpdate<OpMath<T>, Centered, Momentum, Decay>::make(o);
        });
      },
      o.centered, o.momentum > 0, o.weight_decay != 0);
}

template <class M, bool Decay>
struct AdagradUpdate {
  M clr, wd, eps, sg;
  static AdagradUpdate make(const AdagradOptions& o, double step) {
    return {M(o.lr / (1 + (step - 1) * o.lr_decay)), M(o.weight_decay), M(o.eps),
            sign<M>(o.maximize)};
  }
  template <class T>
  KILN_HD void operator()(const Ptrs<T>& x, int64_t j) const {
    const M p = static_cast<M>(x.p[j]);
    const M g = grad_at<Decay>(x, j, p, sg, wd);
    const M sum = static_cast<M>(x.s[0][j]) + g * g;
    x.s[0][j] = T(sum);
    x.p[j] = T(p - clr * g / (std::sqrt(sum) + eps));
  }
};


template <class M, bool Decay>
struct AdadeltaUpdate {
  M lr, rho, eps, wd, sg;
  static AdadeltaUpdate make(const AdadeltaOptions& o, double /*step*/) {
    return {M(o.lr), M(o.rho), M(o.eps), M(o.weight_decay), sign<M>(o.maximize)};
  }
  template <class T>
  KILN_HD void operator()(const Ptrs<T>& x, int64_t j) const {
    const M p = static_cast<M>(x.p[j]);
    const M g = grad_at<Decay>(x, j, p, sg, wd);
    const M sq = rho * static_cast<M>(x.s[0][j]) + (1 - rho) * g * g;
    const M acc = static_cast<M>(x.s[1][j]);
    const M delta = std::sqrt(acc + eps) / std::sqrt(sq + eps) * g;
    x.s[0][j] = T(sq);
    x.s[1][j] = T(rho * acc + (1 - rho) * delta * delta);
    x.p[j] = T(p - lr * delta);
  }
};


template <class M, bool Decay>
struct AdamaxUpdate {
  M clr, b1, b2, eps, wd, sg;
  static AdamaxUpdate make(const AdamaxOptions& o, double step) {
    return {M(o.lr / (1 - std::pow(o.beta1, step))), M(1 - o.beta1), M(o.beta2), M(o.eps),
            M(o.weight_decay), sign<M>(o.maximize)};
  }
  template <class T>
  KILN_HD void operator()(const Ptrs<T>& x, int64_t j) const {
    const M p = static_cast<M>(x.p[j]);
    const M g = grad_at<Decay>(x, j, p, sg, wd);
    M m = static_cast<M>(x.s[0][j]);
    m += b1 * (g - m);
    const M inf = std::max(static_cast<M>(x.s[1][j]) * b2, std::abs(g) + eps);
    x.s[0][j] = T(m);
    x.s[1][j] = T(inf);
    x.p[j] = T(p - clr * m / inf);
  }
};


template <class M, bool Decay>
struct NadamUpdate {
  M c_grad, c_avg, bc2, b1, b2, eps, wd, decay, sg;
  // Also advances the running product of the momentum coefficients, kept in
  // float32 as PyTorch keeps it.
  static NadamUpdate make(const NadamOptions& o, double step, float& mu_product_t) {
    const double mu = o.beta1 * (1 - 0.5 * std::pow(0.96, step * o.momentum_decay));
    const double mu_next = o.beta1 * (1 - 0.5 * std::pow(0.96, (step + 1) * o.momentum_decay));
    mu_product_t *= static_cast<float>(mu);
    const double mu_product = mu_product_t;
    return {M(o.lr * (1 - mu) / (1 - mu_product)),
            M(o.lr * mu_next / (1 - mu_product * mu_next)),
            M(1 - std::pow(o.beta2, step)),
            M(1 - o.beta1),
            M(o.beta2),
            M(o.eps),
            M(o.weight_decay),
            M(o.decoupled_weight_decay ? 1 - o.lr * o.weight_decay : 1),
            sign<M>(o.maximize)};
  }
  template <class T>
  KILN_HD void operator()(const Ptrs<T>& x, int64_t j) const {
    M p = decay * static_cast<M>(x.p[j]);
    const M g = grad_at<Decay>(x, j, p, sg, wd);
    M m, v;
    update_moments(x, j, g, b1, b2, m, v);
    const M denom = std::sqrt(v / bc2) + eps;
    p -= c_grad * g / denom;
    x.p[j] = T(p - c_avg * m / denom);
  }
};

template <class Apply>
void nadam_step(OptimTensors& t, const NadamOptions& o, const Apply& apply) {
  static_bools(
      [&]<bool Decay>() {
        apply(t, "nadam_step_", [&]<class T>(size_t i) {
          const double step = next_step(t, i);
          return NadamUpdate<OpMath<T>, Decay>::make(o, step, *t.mu_products[i].data<float>());
        });
      },
      o.weight_decay != 0 && !o.decoupled_weight_decay);
}

template <class M, bool Decay>
struct RadamUpdate {
  M c_rect, c_plain, b1, b2, eps, wd, decay, sg;
  bool rectify;  // the variance is tractable (rectified update) only once rho_t > 5
  static RadamUpdate make(const RadamOptions& o, double step) {
    const double bc1 = 1 - std::pow(o.beta1, step);
    const double bc2 = 1 - std::pow(o.beta2, step);
    const double rho_inf = 2 / (1 - o.beta2) - 1;
    const double rho_t = rho_inf - 2 * step * std::pow(o.beta2, step) / bc2;
    const bool rectify = rho_t > 5;
    const double rect = rectify ? std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf /
                                            ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                                : 0;
    return {M(o.lr * rect * std::sqrt(bc2) / bc1),
            M(o.lr / bc1),
            M(1 - o.beta1),
            M(o.beta2),
            M(o.eps),
            M(o.weight_decay),
            M(o.decoupled_weight_decay ? 1 - o.lr * o.weight_decay : 1),
            sign<M>(o.maximize),
            rectify};
  }
  template <class T>
  KILN_HD void operator()(const Ptrs<T>& x, int64_t j) const {
    const M p = decay * static_cast<M>(x.p[j]);
    const M g = grad_at<Decay>(x, j, p, sg, wd);
    M m, v;
    update_moments(x, j, g, b1, b2, m, v);
    x.p[j] = T(rectify ? p - c_rect * m / (std::sqrt(v) + eps) : p - c_plain * m);
  }
};


template <class Apply>
void adagrad_step(OptimTensors& t, const AdagradOptions& o, const Apply& apply) {
  decay_step<AdagradUpdate>(t, o, o.weight_decay != 0, "adagrad_step_", apply);
}
template <class Apply>
void adadelta_step(OptimTensors& t, const AdadeltaOptions& o, const Apply& apply) {
  decay_step<AdadeltaUpdate>(t, o, o.weight_decay != 0, "adadelta_step_", apply);
}
template <class Apply>
void adamax_step(OptimTensors& t, const AdamaxOptions& o, const Apply& apply) {
  decay_step<AdamaxUpdate>(t, o, o.weight_decay != 0, "adamax_step_", apply);
}
template <class Apply>
void radam_step(OptimTensors& t, const RadamOptions& o, const Apply& apply) {
  decay_step<RadamUpdate>(t, o, o.weight_decay != 0 && !o.decoupled_weight_decay, "radam_step_",
                          apply);
}

}  // namespace kiln::optim
