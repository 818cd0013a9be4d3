// CPU kernels of the fused optimizer steps (Note [Fused optimizer steps]): the
// updates of kiln/optim_update.h run over each parameter in a loop compiled for
// AVX-512, AVX2 and the baseline (sqrt and division dominate these updates).
#include "kiln/optim_update.h"

#include "kiln/cpu/vec_math.h"
#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/parallel.h"

namespace kiln::cpu {
namespace {

using optim::Ptrs;

template <class U, class T>
KILN_TARGET_CLONES void update_range(const U& update, const Ptrs<T>& x, int64_t b, int64_t e) {
  for (int64_t j = b; j < e; ++j) update(x, j);
}

// Param i's data, grad and state pointers (null for switched-off states).
template <class T>
Ptrs<T> ptrs(const OptimTensors& t, size_t i) {
  Ptrs<T> r{t.params[i].data<T>(), t.grads[i].data<T>(), {}};
  for (size_t k = 0; k < t.states.size() && k < 3; ++k)
    if (!t.states[k].empty()) r.s[k] = t.states[k][i].data<T>();
  return r;
}

struct Apply {
  template <class Make>
  void operator()(OptimTensors& t, const char* op, const Make& make) const {
    if (t.params.empty()) return;
    visit_floating(t.params[0].dtype(), op, [&]<class T>(TypeTag<T>) {
      for (size_t i = 0; i < t.params.size(); ++i) {
        const auto update = make.template operator()<T>(i);
        const Ptrs<T> x = ptrs<T>(t, i);
        parallel_for(0, t.params[i].numel(), kParallelGrain,
                     [&](int64_t b, int64_t e) { update_range(update, x, b, e); });
      }
    });
  }
};

void sgd_kernel(OptimTensors& t, const SgdOptions& o) { optim::sgd_step(t, o, Apply{}); }
void adam_kernel(OptimTensors& t, const AdamOptions& o) { optim::adam_step(t, o, Apply{}); }
void rmsprop_kernel(OptimTensors& t, const RmspropOptions& o) {
  optim::rmsprop_step(t, o, Apply{});
}
void adagrad_kernel(OptimTensors& t, const AdagradOptions& o) {
  optim::adagrad_step(t, o, Apply{});
}
void adadelta_kernel(OptimTensors& t, const AdadeltaOptions& o) {
  optim::adadelta_step(t, o, Apply{});
}
void adamax_kernel(OptimTensors& t, const AdamaxOptions& o) { optim::adamax_step(t, o, Apply{}); }
void nadam_kernel(OptimTensors& t, const NadamOptions& o) { optim::nadam_step(t, o, Apply{}); }
void radam_kernel(OptimTensors& t, const RadamOptions& o) { optim::radam_step(t, o, Apply{}); }

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
