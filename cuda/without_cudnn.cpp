// kiln._C_cuda built without cuDNN's headers (cuda/CMakeLists.txt): cuDNN is
// never used, and says so; convolutions run as im2col + cuBLAS GEMMs.
#include "conv_cudnn.h"
#include "cudnn_status.h"

namespace kiln::cuda {

const std::string& cudnn_error() {
  static const std::string why =
      "this kiln._C_cuda was built without cuDNN's headers (pip install nvidia-cudnn-cu13 or "
      "run tools/cuda-deps, then rebuild)";
  return why;
}

int cudnn_version() { return 0; }
int64_t cudnn_convolutions_run() { return 0; }

bool cudnn_convolution(ConvPass, const Tensor&, const Tensor&, const Tensor&, const ConvGeometry&,
                       double, const char*) {
  return false;
}

}  // namespace kiln::cuda
