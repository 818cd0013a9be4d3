// kiln._C_cuda built without the cudnn-frontend headers (cuda/CMakeLists.txt):
// attention never runs on cuDNN, and says so; attention.cu's own kernels run it.
#include "attention_cudnn.h"
#include "cudnn_status.h"

namespace kiln::cuda {

bool cudnn_attention(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                     bool, double) {
  return false;
}

bool cudnn_attention_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&,
                              const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                              const Tensor&, bool, double) {
  return false;
}

int64_t cudnn_attentions_run() { return 0; }

std::string cudnn_attention_declined() {
  return "this kiln._C_cuda was built without the cudnn-frontend headers (pip install "
         "nvidia-cudnn-frontend==1.18.0 or run tools/cuda-deps, then rebuild)";
}

}  // namespace kiln::cuda
