#pragma once
// cuDNN, loaded on first use with dlopen like cuBLAS (cublas.h): kiln._C_cuda
// imports without it, and convolutions then run as im2col + cuBLAS GEMMs.
// Only the convolution API (cuDNN's "legacy" descriptors, as PyTorch uses) is
// resolved here; the attention graphs call the graph API through the
// cudnn-frontend headers, which resolve it in cudnn_library(). cudnn_error() and cudnn_version() (cudnn_status.h) report on it.
#include <cudnn.h>

#include "cudnn_status.h"

namespace kiln::cuda {

struct CudnnApi {
  decltype(&cudnnGetVersion) version;
  decltype(&cudnnGetErrorString) error_string;
  decltype(&cudnnCreate) create;
  decltype(&cudnnSetStream) set_stream;
  decltype(&cudnnCreateTensorDescriptor) create_tensor;
  decltype(&cudnnSetTensor4dDescriptorEx) set_tensor;
  decltype(&cudnnDestroyTensorDescriptor) destroy_tensor;
  decltype(&cudnnCreateFilterDescriptor) create_filter;
  decltype(&cudnnSetFilter4dDescriptor) set_filter;
  decltype(&cudnnDestroyFilterDescriptor) destroy_filter;
  decltype(&cudnnCreateConvolutionDescriptor) create_conv;
  decltype(&cudnnSetConvolution2dDescriptor) set_conv;
  decltype(&cudnnSetConvolutionGroupCount) set_group_count;
  decltype(&cudnnSetConvolutionMathType) set_math_type;
  decltype(&cudnnDestroyConvolutionDescriptor) destroy_conv;
  decltype(&cudnnGetConvolutionForwardAlgorithm_v7) forward_algorithms;
  decltype(&cudnnGetConvolutionBackwardDataAlgorithm_v7) backward_data_algorithms;
  decltype(&cudnnGetConvolutionBackwardFilterAlgorithm_v7) backward_filter_algorithms;
  decltype(&cudnnGetConvolutionForwardWorkspaceSize) forward_workspace;
  decltype(&cudnnGetConvolutionBackwardDataWorkspaceSize) backward_data_workspace;
  decltype(&cudnnGetConvolutionBackwardFilterWorkspaceSize) backward_filter_workspace;
  decltype(&cudnnConvolutionForward) forward;
  decltype(&cudnnConvolutionBackwardData) backward_data;
  decltype(&cudnnConvolutionBackwardFilter) backward_filter;
};

// The loaded library, or nullptr (then cudnn_error() says why). Loads once.
const CudnnApi* cudnn();
// Its dlopen handle, where the cudnn-frontend headers find cuDNN's graph API
// (attention_cudnn.cpp); nullptr when cudnn() is.
void* cudnn_library();

// This thread's cuDNN handle for `device` (one per thread and device, as cuDNN
// recommends; created with the device current), set to run on `stream`.
// Errors throw, naming `op`.
cudnnHandle_t cudnn_handle(const CudnnApi& api, int device, cudaStream_t stream, const char* op);

}  // namespace kiln::cuda
