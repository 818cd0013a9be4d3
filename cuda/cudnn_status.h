#pragma once
// What the rest of kiln._C_cuda knows of cuDNN, without its headers: whether
// it can be used, and the kiln.backends.cudnn switches. Built with cuDNN's
// headers, cudnn_api.cpp answers (loading libcudnn.so.9 on first use);
// without them, without_cudnn.cpp does (convolutions then always run as
// im2col + cuBLAS GEMMs).
#include <cstdint>
#include <string>

namespace kiln::cuda {

// Why cuDNN can't be used ("" when it can): not installed, wrong major version,
// missing symbols, or this module built without cuDNN's headers.
const std::string& cudnn_error();
// cuDNN's version (91002 for 9.10.2), 0 when it can't be used.
int cudnn_version();
// How many convolution passes cuDNN has run in this process (a diagnostic: tests
// check that the cases cuDNN should take do not fall back to im2col unnoticed).
int64_t cudnn_convolutions_run();

// kiln.backends.cudnn.enabled: convolutions use cuDNN when it is loaded and
// this is on (the default, as in PyTorch).
bool cudnn_enabled();
void set_cudnn_enabled(bool enabled);
// kiln.backends.cudnn.deterministic: only algorithms whose results do not
// vary from run to run (off by default, as in PyTorch).
bool cudnn_deterministic();
void set_cudnn_deterministic(bool deterministic);

}  // namespace kiln::cuda
