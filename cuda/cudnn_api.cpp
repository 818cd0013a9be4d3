#include "cudnn_api.h"

#include "kiln/error.h"
#include "resolve_symbol.h"

namespace kiln::cuda {
namespace {

struct Loaded {
  CudnnApi api{};
  void* library = nullptr;
  std::string error;
};

Loaded load() {
  Loaded l;
  // Found when kiln.cuda preloaded it from the nvidia-cudnn-cu13 wheel, else
  // through this module's RPATH and the system's library path. It loads its
  // parts (libcudnn_cnn.so.9, ...) from its own folder.
  void* lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_GLOBAL);
  if (!lib) {
    const char* why = dlerror();
    l.error = std::string("libcudnn.so.9 could not be loaded (") + (why ? why : "unknown") +
              "); install it with pip install \"kiln[cuda]\"";
    return l;
  }
  l.library = lib;
  std::string missing;
  CudnnApi& a = l.api;
  resolve_symbol(lib, "cudnnGetVersion", a.version, missing);
  resolve_symbol(lib, "cudnnGetErrorString", a.error_string, missing);
  resolve_symbol(lib, "cudnnCreate", a.create, missing);
  resolve_symbol(lib, "cudnnSetStream", a.set_stream, missing);
  resolve_symbol(lib, "cudnnCreateTensorDescriptor", a.create_tensor, missing);
  resolve_symbol(lib, "cudnnSetTensor4dDescriptorEx", a.set_tensor, missing);
  resolve_symbol(lib, "cudnnDestroyTensorDescriptor", a.destroy_tensor, missing);
  resolve_symbol(lib, "cudnnCreateFilterDescriptor", a.create_filter, missing);
  resolve_symbol(lib, "cudnnSetFilter4dDescriptor", a.set_filter, missing);
  resolve_symbol(lib, "cudnnDestroyFilterDescriptor", a.destroy_filter, missing);
  resolve_symbol(lib, "cudnnCreateConvolutionDescriptor", a.create_conv, missing);
  resolve_symbol(lib, "cudnnSetConvolution2dDescriptor", a.set_conv, missing);
  resolve_symbol(lib, "cudnnSetConvolutionGroupCount", a.set_group_count, missing);
  resolve_symbol(lib, "cudnnSetConvolutionMathType", a.set_math_type, missing);
  resolve_symbol(lib, "cudnnDestroyConvolutionDescriptor", a.destroy_conv, missing);
  resolve_symbol(lib, "cudnnGetConvolutionForwardAlgorithm_v7", a.forward_algorithms, missing);
  resolve_symbol(lib, "cudnnGetConvolutionBackwardDataAlgorithm_v7", a.backward_data_algorithms,
                 missing);
  resolve_symbol(lib, "cudnnGetConvolutionBackwardFilterAlgorithm_v7", a.backward_filter_algorithms,
                 missing);
  resolve_symbol(lib, "cudnnGetConvolutionForwardWorkspaceSize", a.forward_workspace, missing);
  resolve_symbol(lib, "cudnnGetConvolutionBackwardDataWorkspaceSize", a.backward_data_workspace,
                 missing);
  resolve_symbol(lib, "cudnnGetConvolutionBackwardFilterWorkspaceSize", a.backward_filter_workspace,
                 missing);
  resolve_symbol(lib, "cudnnConvolutionForward", a.forward, missing);
  resolve_symbol(lib, "cudnnConvolutionBackwardData", a.backward_data, missing);
  resolve_symbol(lib, "cudnnConvolutionBackwardFilter", a.backward_filter, missing);
  if (!missing.empty()) {
    l.error = "libcudnn.so.9 lacks " + missing;
  } else if (const size_t v = a.version(); v / 10000 != CUDNN_MAJOR) {
    // Built against cuDNN 9's headers: another major version may lay structs out differently.
    l.error =
        detail::concat("libcudnn.so.9 reports version ", v, ", kiln needs cuDNN ", CUDNN_MAJOR);
  }
  return l;
}

const Loaded& loaded() {
  static const Loaded l = load();
  return l;
}

}  // namespace

const CudnnApi* cudnn() { return loaded().error.empty() ? &loaded().api : nullptr; }
void* cudnn_library() { return cudnn() ? loaded().library : nullptr; }
const std::string& cudnn_error() { return loaded().error; }

int cudnn_version() { return cudnn() ? static_cast<int>(cudnn()->version()) : 0; }

cudnnHandle_t cudnn_handle(const CudnnApi& api, int device, cudaStream_t stream, const char* op) {
  constexpr int kMaxDevices = 64;
  thread_local cudnnHandle_t handles[kMaxDevices] = {};
  KILN_CHECK(device >= 0 && device < kMaxDevices, ValueError, "[", op, "] bad device ", device);
  cudnnHandle_t& h = handles[device];
  cudnnStatus_t status = h ? CUDNN_STATUS_SUCCESS : api.create(&h);
  if (status == CUDNN_STATUS_SUCCESS) status = api.set_stream(h, stream);
  KILN_CHECK(status == CUDNN_STATUS_SUCCESS, Error, "[", op, "] cuDNN could not ",
             h ? "set its stream: " : "create a handle: ", api.error_string(status));
  return h;
}

}  // namespace kiln::cuda
