// CPU kernels of the fused optimizer steps (Note [Fused optimizer steps]).
// Each kernel turns its on/off options into template flags (static_bools), so
// the per-element update has no branches and vectorizes, and gives `apply` a
// factory: for parameter i it advances that parameter's counters and returns
// the update of element j, in OpMath<T> (float for 16-bit T). `apply` runs it
// in a loop compiled for AVX-512, AVX2 and the baseline (sqrt and division
// dominate these updates).
#include "kiln/ops/optim.h"

#include <algorithm>
#include <cmath>

#include "kiln/cpu/vec_math.h"
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/parallel.h"

namespace kiln::cpu {
namespace {

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

template <class F>
KILN_TARGET_CLONES void update_range(const F& update, int64_t b, int64_t e) {
  for (int64_t j = b; j < e; ++j) update(j);
}

template <class Make>
void apply(OptimTensors& t, const char* op, const Make& make) {
  if (t.params.empty()) return;
  visit_floating(t.params[0].dtype(), op, [&]<class T>(TypeTag<T>) {
    for (size_t i = 0; i < t.params.size(); ++i) {
      const auto update = make.template operator()<T>(i);
      parallel_for(0, t.params[i].numel(), kParallelGrain,
                   [&](int64_t b, int64_t e) { update_range(update, b, e); });
    }
  });
}

template <class T>
struct Ptrs {
  T* p;
  const T* g;
  T* s[3];
};
// Param i's data, grad and state pointers (null for switched-off states).
template <class T>
Ptrs<T> ptrs(const OptimTensors& t, size_t i) {
  Ptrs<T> r{t.params[i].data<T>(), t.grads[i].data<T>(), {}};
  for (size_t k = 0; k < t.states.size() && k < 3; ++k)
    if (!t.states[k].empty()) r.s[k] = t.states[k][i].data<T>();
  return r;
}

// Advances parameter i's step counter and returns the new step.
double next_step(OptimTensors& t, size_t i) {
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
M grad_at(const Ptrs<T>& x, int64_t j, M p, M sg, M wd) {
  M g = sg * M(x.g[j]);
  if constexpr (Decay) g += wd * p;
  return g;
}

// Adam's moments: m (state 0) and v (state 1) advanced by g, stored and returned.
template <class M, class T>
void update_moments(const Ptrs<T>& x, int64_t j, M g, M one_minus_b1, M b2, M& m, M& v) {
  m = x.s[0][j];
  m += one_minus_b1 * (g - m);
  v = b2 * M(x.s[1][j]) + (1 - b2) * g * g;
  x.s[0][j] = T(m);
  x.s[1][j] = T(v);
}

void sgd_kernel(OptimTensors& t, const SgdOptions& o) {
  static_bools(
      [&]<bool Momentum, bool Nesterov, bool Decay>() {
        apply(t, "sgd_step_", [&]<class T>(size_t i) {
          using M = OpMath<T>;
          const Ptrs<T> x = ptrs<T>(t, i);
          const bool fresh = Momentum && t.fresh[i];
          const M lr = o.lr, wd = o.weight_decay, mom = o.momentum, damp = 1 - o.dampening;
          const M sg = sign<M>(o.maximize);
          return [=](int64_t j) {
            const M p = x.p[j];
            M g = grad_at<Decay>(x, j, p, sg, wd);
            if constexpr (Momentum) {
              const M buf = fresh ? g : mom * M(x.s[0][j]) + damp * g;
              x.s[0][j] = T(buf);
              g = Nesterov ? g + mom * buf : buf;
            }
            x.p[j] = T(p - lr * g);
          };
        });
      },
      o.momentum != 0, o.nesterov, o.weight_decay != 0);
}

void adam_kernel(OptimTensors& t, const AdamOptions& o) {
  static_bools(
      [&]<bool Amsgrad, bool Decay>() {
        apply(t, "adam_step_", [&]<class T>(size_t i) {
          using M = OpMath<T>;
          const Ptrs<T> x = ptrs<T>(t, i);
          const double step = next_step(t, i);
          const M step_size = o.lr / (1 - std::pow(o.beta1, step));
          const M bc2_sqrt = std::sqrt(1 - std::pow(o.beta2, step));
          const M b1 = 1 - o.beta1, b2 = o.beta2, wd = o.weight_decay, eps = o.eps;
          const M decay = o.decoupled_weight_decay ? 1 - o.lr * o.weight_decay : 1;
          const M sg = sign<M>(o.maximize);
          return [=](int64_t j) {
            M p = decay * M(x.p[j]);
            M g = grad_at<Decay>(x, j, p, sg, wd);
            M m, v;
            update_moments(x, j, g, b1, b2, m, v);
            if constexpr (Amsgrad) {
              v = std::max(M(x.s[2][j]), v);
              x.s[2][j] = T(v);
            }
            x.p[j] = T(p - step_size * m / (std::sqrt(v) / bc2_sqrt + eps));
          };
        });
      },
      o.amsgrad, o.weight_decay != 0 && !o.decoupled_weight_decay);
}

void rmsprop_kernel(OptimTensors& t, const RmspropOptions& o) {
  static_bools(
      [&]<bool Centered, bool Momentum, bool Decay>() {
        apply(t, "rmsprop_step_", [&]<class T>(size_t i) {
          using M = OpMath<T>;
          const Ptrs<T> x = ptrs<T>(t, i);
          next_step(t, i);
          const M lr = o.lr, alpha = o.alpha, eps = o.eps, wd = o.weight_decay, mom = o.momentum;
          const M sg = sign<M>(o.maximize);
          return [=](int64_t j) {
            const M p = x.p[j];
            M g = grad_at<Decay>(x, j, p, sg, wd);
            const M sq = alpha * M(x.s[0][j]) + (1 - alpha) * g * g;
            x.s[0][j] = T(sq);
            M avg;
            if constexpr (Centered) {
              M ga = x.s[2][j];
              ga += (1 - alpha) * (g - ga);
              x.s[2][j] = T(ga);
              avg = std::sqrt(sq - ga * ga) + eps;
            } else {
              avg = std::sqrt(sq) + eps;
            }
            if constexpr (Momentum) {
              const M buf = mom * M(x.s[1][j]) + g / avg;
              x.s[1][j] = T(buf);
              x.p[j] = T(p - lr * buf);
            } else {
              x.p[j] = T(p - lr * g / avg);
            }
          };
        });
      },
      o.centered, o.momentum > 0, o.weight_decay != 0);
}

void adagrad_kernel(OptimTensors& t, const AdagradOptions& o) {
  static_bools(
      [&]<bool Decay>() {
        apply(t, "adagrad_step_", [&]<class T>(size_t i) {
          using M = OpMath<T>;
          const Ptrs<T> x = ptrs<T>(t, i);
          const double step = next_step(t, i);
          const M clr = o.lr / (1 + (step - 1) * o.lr_decay);
          const M wd = o.weight_decay, eps = o.eps, sg = sign<M>(o.maximize);
          return [=](int64_t j) {
            const M p = x.p[j];
            M g = grad_at<Decay>(x, j, p, sg, wd);
            const M sum = M(x.s[0][j]) + g * g;
            x.s[0][j] = T(sum);
            x.p[j] = T(p - clr * g / (std::sqrt(sum) + eps));
          };
        });
      },
      o.weight_decay != 0);
}

void adadelta_kernel(OptimTensors& t, const AdadeltaOptions& o) {
  static_bools(
      [&]<bool Decay>() {
        apply(t, "adadelta_step_", [&]<class T>(size_t i) {
          using M = OpMath<T>;
          const Ptrs<T> x = ptrs<T>(t, i);
          next_step(t, i);
          const M lr = o.lr, rho = o.rho, eps = o.eps, wd = o.weight_decay;
          const M sg = sign<M>(o.maximize);
          return [=](int64_t j) {
            const M p = x.p[j];
            M g = grad_at<Decay>(x, j, p, sg, wd);
            const M sq = rho * M(x.s[0][j]) + (1 - rho) * g * g;
            const M acc = x.s[1][j];
            const M delta = std::sqrt(acc + eps) / std::sqrt(sq + eps) * g;
            x.s[0][j] = T(sq);
            x.s[1][j] = T(rho * acc + (1 - rho) * delta * delta);
            x.p[j] = T(p - lr * delta);
          };
        });
      },
      o.weight_decay != 0);
}

void adamax_kernel(OptimTensors& t, const AdamaxOptions& o) {
  static_bools(
      [&]<bool Decay>() {
        apply(t, "adamax_step_", [&]<class T>(size_t i) {
          using M = OpMath<T>;
          const Ptrs<T> x = ptrs<T>(t, i);
          const double step = next_step(t, i);
          const M clr = o.lr / (1 - std::pow(o.beta1, step));
          const M b1 = 1 - o.beta1, b2 = o.beta2, eps = o.eps, wd = o.weight_decay;
          const M sg = sign<M>(o.maximize);
          return [=](int64_t j) {
            const M p = x.p[j];
            M g = grad_at<Decay>(x, j, p, sg, wd);
            M m = x.s[0][j];
            m += b1 * (g - m);
            const M inf = std::max(M(x.s[1][j]) * b2, std::abs(g) + eps);
            x.s[0][j] = T(m);
            x.s[1][j] = T(inf);
            x.p[j] = T(p - clr * m / inf);
          };
        });
      },
      o.weight_decay != 0);
}

void nadam_kernel(OptimTensors& t, const NadamOptions& o) {
  static_bools(
      [&]<bool Decay>() {
        apply(t, "nadam_step_", [&]<class T>(size_t i) {
          using M = OpMath<T>;
          const Ptrs<T> x = ptrs<T>(t, i);
          const double step = next_step(t, i);
          const double mu = o.beta1 * (1 - 0.5 * std::pow(0.96, step * o.momentum_decay));
          const double mu_next =
              o.beta1 * (1 - 0.5 * std::pow(0.96, (step + 1) * o.momentum_decay));
          // The running product is float32, as PyTorch keeps it.
          float& mu_product_t = *t.mu_products[i].data<float>();
          mu_product_t *= static_cast<float>(mu);
          const double mu_product = mu_product_t;
          const M c_grad = o.lr * (1 - mu) / (1 - mu_product);
          const M c_avg = o.lr * mu_next / (1 - mu_product * mu_next);
          const M bc2 = 1 - std::pow(o.beta2, step);
          const M b1 = 1 - o.beta1, b2 = o.beta2, eps = o.eps, wd = o.weight_decay;
          const M decay = o.decoupled_weight_decay ? 1 - o.lr * o.weight_decay : 1;
          const M sg = sign<M>(o.maximize);
          return [=](int64_t j) {
            M p = decay * M(x.p[j]);
            M g = grad_at<Decay>(x, j, p, sg, wd);
            M m, v;
            update_moments(x, j, g, b1, b2, m, v);
            const M denom = std::sqrt(v / bc2) + eps;
            p -= c_grad * g / denom;
            x.p[j] = T(p - c_avg * m / denom);
          };
        });
      },
      o.weight_decay != 0 && !o.decoupled_weight_decay);
}

void radam_kernel(OptimTensors& t, const RadamOptions& o) {
  static_bools(
      [&]<bool Decay>() {
        apply(t, "radam_step_", [&]<class T>(size_t i) {
          using M = OpMath<T>;
          const Ptrs<T> x = ptrs<T>(t, i);
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
          const M decay = o.decoupled_weight_decay ? 1 - o.lr * o.weight_decay : 1;
          const M sg = sign<M>(o.maximize);
          return [=](int64_t j) {
            const M p = decay * M(x.p[j]);
            M g = grad_at<Decay>(x, j, p, sg, wd);
            M m, v;
            update_moments(x, j, g, b1, b2, m, v);
            x.p[j] = T(rectify ? p - c_rect * m / (std::sqrt(v) + eps) : p - c_plain * m);
          };
        });
      },
      o.weight_decay != 0 && !o.decoupled_weight_decay);
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
