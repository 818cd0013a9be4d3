// CUDA kernels of the fused optimizer steps (Note [Fused optimizer steps]):
// the updates of kiln/optim_update.h over every parameter of a group in as
// few launches as fit: the parameters are cut into chunks, one block per
// chunk, and each launch carries (as a kernel argument, no copy to the
// device) the pointers and constants of up to kMaxTensors parameters and the
// (parameter, chunk) of each of up to kMaxBlocks blocks.
#include "kiln/dispatch.h"
#include "kiln/optim_update.h"
#include "nn_util.cuh"

namespace kiln::cuda {
namespace {

using optim::Ptrs;

constexpr int kMaxTensors = 16;
constexpr int kMaxBlocks = 192;
constexpr int64_t kChunk = 65536;  // elements per block
constexpr int kThreads = 512;

template <class T, class U>
struct Batch {
  Ptrs<T> ptrs[kMaxTensors];
  U update[kMaxTensors];
  int64_t numel[kMaxTensors];
  int32_t tensor[kMaxBlocks];  // which parameter block b updates
  int32_t chunk[kMaxBlocks];   // and which of its chunks
};

template <class T, class U>
__global__ void __launch_bounds__(kThreads) multi_tensor_k(Batch<T, U> batch) {
  const int i = batch.tensor[blockIdx.x];
  const int64_t begin = static_cast<int64_t>(batch.chunk[blockIdx.x]) * kChunk;
  const int64_t end = std::min(begin + kChunk, batch.numel[i]);
  const Ptrs<T> x = batch.ptrs[i];
  const U u = batch.update[i];
  for (int64_t j = begin + threadIdx.x; j < end; j += kThreads) u(x, j);
}

struct Apply {
  template <class Make>
  void operator()(OptimTensors& t, const char* op, const Make& make) const {
    if (t.params.empty()) return;
    const Device device = t.params[0].device();
    DeviceGuard guard(device);
    const cudaStream_t stream = current_stream(device);
    visit_floating(t.params[0].dtype(), op, [&]<class K>(TypeTag<K>) {
      using T = DeviceT<K>;
      using U = decltype(make.template operator()<K>(0));
      static_assert(sizeof(Batch<T, U>) <= 4096, "kernel arguments over 4 KiB");
      Batch<T, U> batch;
      int tensors = 0, blocks = 0;
      const auto launch = [&] {
        if (blocks > 0) {
          multi_tensor_k<<<blocks, kThreads, 0, stream>>>(batch);
          check_launch(op);
        }
        tensors = blocks = 0;
      };
      // Puts parameter x in the next tensor slot and returns the slot.
      const auto add = [&](const Ptrs<T>& x, const U& update, int64_t n) {
        batch.ptrs[tensors] = x;
        batch.update[tensors] = update;
        batch.numel[tensors] = n;
        return tensors++;
      };
      for (size_t i = 0; i < t.params.size(); ++i) {
        // Counters advance for every parameter, empty ones included, as on the CPU.
        const U update = make.template operator()<K>(i);
        const int64_t n = t.params[i].numel();
        if (n == 0) continue;
        const int64_t chunks = (n + kChunk - 1) / kChunk;
        KILN_CHECK(chunks < (int64_t(1) << 31), ValueError, "[", op, "] parameter ", i,
                   " is too large: ", n, " elements");
        Ptrs<T> x{static_cast<T*>(t.params[i].data_ptr()),
                  static_cast<const T*>(t.grads[i].data_ptr()),
                  {}};
        for (size_t k = 0; k < t.states.size() && k < 3; ++k)
          if (!t.states[k].empty()) x.s[k] = static_cast<T*>(t.states[k][i].data_ptr());
        if (tensors == kMaxTensors) launch();
        int slot = add(x, update, n);
        for (int64_t c = 0; c < chunks; ++c) {
          if (blocks == kMaxBlocks) {  // the rest of this parameter goes in the next launch
            launch();
            slot = add(x, update, n);
          }
          batch.tensor[blocks] = slot;
          batch.chunk[blocks] = static_cast<int32_t>(c);
          ++blocks;
        }
      }
      launch();
    });
  }
};

}  // namespace

void sgd_step_cuda(OptimTensors& t, const SgdOptions& o) { optim::sgd_step(t, o, Apply{}); }
void adam_step_cuda(OptimTensors& t, const AdamOptions& o) { optim::adam_step(t, o, Apply{}); }
void rmsprop_step_cuda(OptimTensors& t, const RmspropOptions& o) {
  optim::rmsprop_step(t, o, Apply{});
}
void adagrad_step_cuda(OptimTensors& t, const AdagradOptions& o) {
  optim::adagrad_step(t, o, Apply{});
}
void adadelta_step_cuda(OptimTensors& t, const AdadeltaOptions& o) {
  optim::adadelta_step(t, o, Apply{});
}
void adamax_step_cuda(OptimTensors& t, const AdamaxOptions& o) {
  optim::adamax_step(t, o, Apply{});
}
void nadam_step_cuda(OptimTensors& t, const NadamOptions& o) { optim::nadam_step(t, o, Apply{}); }
void radam_step_cuda(OptimTensors& t, const RadamOptions& o) { optim::radam_step(t, o, Apply{}); }

KILN_REGISTER_KERNEL(sgd_step_, CUDA, sgd_step_cuda);
KILN_REGISTER_KERNEL(adam_step_, CUDA, adam_step_cuda);
KILN_REGISTER_KERNEL(rmsprop_step_, CUDA, rmsprop_step_cuda);
KILN_REGISTER_KERNEL(adagrad_step_, CUDA, adagrad_step_cuda);
KILN_REGISTER_KERNEL(adadelta_step_, CUDA, adadelta_step_cuda);
KILN_REGISTER_KERNEL(adamax_step_, CUDA, adamax_step_cuda);
KILN_REGISTER_KERNEL(nadam_step_, CUDA, nadam_step_cuda);
KILN_REGISTER_KERNEL(radam_step_, CUDA, radam_step_cuda);

}  // namespace kiln::cuda
