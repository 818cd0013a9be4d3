// Convolutions through cuDNN's descriptor API, as PyTorch's default
// (non-benchmark) mode uses it: cuDNN's heuristics rank the algorithms for a
// problem, the first one that is supported and needs a workspace of at most
// kMaxWorkspaceBytes runs, and the choice is remembered per problem.
#include "conv_cudnn.h"

#include <array>
#include <atomic>
#include <limits>
#include <map>
#include <mutex>
#include <optional>

#include "context.h"
#include "cudnn_api.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"

namespace kiln::cuda {
namespace {

constexpr size_t kMaxWorkspaceBytes = size_t(1) << 30;

void check_cudnn(const CudnnApi& api, cudnnStatus_t status, const char* what, const char* op) {
  if (status == CUDNN_STATUS_SUCCESS) [[likely]]
    return;
  throw Error(detail::concat("[", op, "] cuDNN error in ", what, ": ", api.error_string(status),
                             " (kiln.backends.cudnn.enabled = False runs convolutions without "
                             "cuDNN)"));
}

// While describing a problem: false where cuDNN does not support it (the
// convolution then runs without cuDNN); other errors throw.
bool supported(const CudnnApi& api, cudnnStatus_t status, const char* what, const char* op) {
  if (status == CUDNN_STATUS_SUCCESS) [[likely]]
    return true;
  if (CUDNN_STATUS_CATEGORY(status) == CUDNN_STATUS_NOT_SUPPORTED) return false;
  check_cudnn(api, status, what, op);
  return false;
}

struct Types {
  cudnnDataType_t data, compute;
  cudnnMathType_t math;
};
std::optional<Types> types_for(ScalarType dtype) {
  switch (dtype) {
    case ScalarType::Float32:
      // CUDNN_DEFAULT_MATH lets float32 use TF32 tensor cores; FMA_MATH keeps it exact.
      return Types{CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT,
                   allow_tf32(Tf32Switch::Convolution) ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH};
    case ScalarType::Float64:
      return Types{CUDNN_DATA_DOUBLE, CUDNN_DATA_DOUBLE, CUDNN_DEFAULT_MATH};
    // 16-bit floats accumulate in float32, as cuBLAS's GEMMs on the im2col path.
    case ScalarType::Float16:
      return Types{CUDNN_DATA_HALF, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH};
    case ScalarType::BFloat16:
      return Types{CUDNN_DATA_BFLOAT16, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH};
    default:
      return std::nullopt;
  }
}

// Whether cuDNN's convolution computes g's grid: its output size formula
// (symmetric padding, no output_padding), non-empty tensors of at most 2^31
// elements, strides, padding and dilation in int.
bool describable(const ConvGeometry& g, int64_t O) {
  const auto out_size = [](int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
    const int64_t span = in + 2 * p - d * (k - 1) - 1;
    return span < 0 ? -1 : span / s + 1;
  };
  if (out_size(g.height, g.kh, g.sh, g.ph, g.dh) != g.out_h ||
      out_size(g.width, g.kw, g.sw, g.pw, g.dw) != g.out_w)
    return false;
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  const int64_t Cg = g.channels / g.groups;
  const std::array<int64_t, 3> sizes = {g.n * g.channels * g.height * g.width,
                                        g.n * O * g.out_h * g.out_w, O * Cg * g.kh * g.kw};
  for (int64_t s : sizes)
    if (s <= 0 || s > kMax) return false;
  for (int64_t v : {g.sh, g.sw, g.ph, g.pw, g.dh, g.dw})
    if (v > kMax) return false;
  return true;
}

// The descriptors of one call, destroyed with it.
class Descriptors {
 public:
  Descriptors(const CudnnApi& api, const char* op) : api_(api) {
    try {
      check_cudnn(api, api.create_tensor(&x), "cudnnCreateTensorDescriptor", op);
      check_cudnn(api, api.create_tensor(&y), "cudnnCreateTensorDescriptor", op);
      check_cudnn(api, api.create_filter(&w), "cudnnCreateFilterDescriptor", op);
      check_cudnn(api, api.create_conv(&conv), "cudnnCreateConvolutionDescriptor", op);
    } catch (...) {
      destroy();
      throw;
    }
  }
  ~Descriptors() { destroy(); }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;

  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;

 private:
  void destroy() {
    if (x) api_.destroy_tensor(x);
    if (y) api_.destroy_tensor(y);
    if (w) api_.destroy_filter(w);
    if (conv) api_.destroy_conv(conv);
  }
  const CudnnApi& api_;
};

int to_int(int64_t v) { return static_cast<int>(v); }  // describable() checked the range

// Fills d for the problem of contiguous x, w, y; false where cuDNN does not
// support it. The strides given are the packed ones: those of size-1 dims may
// be anything in a contiguous kiln tensor (expand, permute), cuDNN must see
// packed NCHW.
bool describe(const CudnnApi& api, Descriptors& d, const Types& types, const Tensor& x,
              const Tensor& w, const Tensor& y, const ConvGeometry& g, const char* op) {
  for (const auto& [desc, t] : {std::pair{d.x, &x}, std::pair{d.y, &y}}) {
    const int n = to_int(t->size(0)), c = to_int(t->size(1)), h = to_int(t->size(2)),
              wd = to_int(t->size(3));
    if (!supported(api, api.set_tensor(desc, types.data, n, c, h, wd, c * h * wd, h * wd, wd, 1),
                   "cudnnSetTensor4dDescriptorEx", op))
      return false;
  }
  return supported(api,
                   api.set_filter(d.w, types.data, CUDNN_TENSOR_NCHW, to_int(w.size(0)),
                                  to_int(w.size(1)), to_int(g.kh), to_int(g.kw)),
                   "cudnnSetFilter4dDescriptor", op) &&
         supported(api,
                   api.set_conv(d.conv, to_int(g.ph), to_int(g.pw), to_int(g.sh), to_int(g.sw),
                                to_int(g.dh), to_int(g.dw), CUDNN_CROSS_CORRELATION, types.compute),
                   "cudnnSetConvolution2dDescriptor", op) &&
         supported(api, api.set_group_count(d.conv, to_int(g.groups)),
                   "cudnnSetConvolutionGroupCount", op) &&
         supported(api, api.set_math_type(d.conv, types.math), "cudnnSetConvolutionMathType", op);
}

// An algorithm and the math type and workspace it runs with; algo < 0: none fits.
struct Choice {
  int algo = -1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
};

// What the algorithm must satisfy beyond supporting the problem.
struct Requirements {
  cudnnMathType_t math;  // FMA_MATH: no tensor cores (float32 without TF32)
  bool deterministic;
};

// Runs one pass's heuristics, ask(&count, perfs), and takes their first
// supported algorithm within the workspace limit, with FMA math where TF32 is
// off (as PyTorch checks) and deterministic where asked; then sets d.conv's
// math type to the algorithm's (it selects the tensor-core variant) and asks
// workspace(algo, &bytes) for its workspace. No choice (algo < 0) where cuDNN
// supports none.
template <class Perf, int kCount, class Ask, class Workspace>
Choice choose(const CudnnApi& api, Descriptors& d, Requirements need, const Ask& ask,
              const Workspace& workspace, const char* op) {
  Perf perfs[kCount];
  int count = 0;
  if (!supported(api, ask(&count, perfs), "a cudnnGetConvolution*Algorithm_v7 heuristic", op))
    return Choice{};
  for (int i = 0; i < count; ++i) {
    const Perf& p = perfs[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kMaxWorkspaceBytes) continue;
    if (need.math == CUDNN_FMA_MATH && p.mathType != CUDNN_FMA_MATH) continue;
    if (need.deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    Choice c{static_cast<int>(p.algo), p.mathType, 0};
    cudnnStatus_t status = api.set_math_type(d.conv, c.math);
    if (status == CUDNN_STATUS_SUCCESS) status = workspace(p.algo, &c.workspace);
    // Not supported after all: the next algorithm may be.
    if (supported(api, status, "a cudnnGetConvolution*WorkspaceSize query", op)) return c;
  }
  return Choice{};
}

Choice choose(const CudnnApi& api, cudnnHandle_t h, ConvPass pass, Descriptors& d,
              Requirements need, const char* op) {
  switch (pass) {
    case ConvPass::Forward:
      return choose<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT>(
          api, d, need,
          [&](int* count, auto* perfs) {
            return api.forward_algorithms(h, d.x, d.w, d.conv, d.y,
                                          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, count, perfs);
          },
          [&](auto algo, size_t* bytes) {
            return api.forward_workspace(h, d.x, d.w, d.conv, d.y, algo, bytes);
          },
          op);
    case ConvPass::BackwardData:
      return choose<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>(
          api, d, need,
          [&](int* count, auto* perfs) {
            return api.backward_data_algorithms(h, d.w, d.y, d.conv, d.x,
                                                CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, count,
                                                perfs);
          },
          [&](auto algo, size_t* bytes) {
            return api.backward_data_workspace(h, d.w, d.y, d.conv, d.x, algo, bytes);
          },
          op);
    case ConvPass::BackwardFilter:
      return choose<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>(
          api, d, need,
          [&](int* count, auto* perfs) {
            return api.backward_filter_algorithms(h, d.x, d.y, d.conv, d.w,
                                                  CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, count,
                                                  perfs);
          },
          [&](auto algo, size_t* bytes) {
            return api.backward_filter_workspace(h, d.x, d.y, d.conv, d.w, algo, bytes);
          },
          op);
  }
  return Choice{};
}

// Everything the heuristics' answer depends on (the tensors are contiguous).
using ProblemKey = std::array<int64_t, 21>;
ProblemKey problem_key(ConvPass pass, const Tensor& w, const ConvGeometry& g, Requirements need) {
  return {static_cast<int64_t>(pass),
          need.math,
          need.deterministic,
          w.device().index,
          static_cast<int64_t>(w.dtype()),
          g.n,
          g.channels,
          g.groups,
          g.height,
          g.width,
          w.size(0),
          g.kh,
          g.kw,
          g.out_h,
          g.out_w,
          g.sh,
          g.sw,
          g.ph,
          g.pw,
          g.dh,
          g.dw};
}

std::mutex g_choices_mutex;
std::map<ProblemKey, Choice> g_choices;
std::atomic<int64_t> g_passes_run{0};

}  // namespace

bool cudnn_convolution(ConvPass pass, const Tensor& x_in, const Tensor& w_in, const Tensor& y_in,
                       const ConvGeometry& g, double beta, const char* op) {
  if (!cudnn_enabled()) return false;
  const CudnnApi* loaded = cudnn();
  const std::optional<Types> types = types_for(x_in.dtype());
  if (!loaded || !types || !describable(g, w_in.size(0))) return false;
  const CudnnApi& api = *loaded;
  const Tensor& written = pass == ConvPass::Forward        ? y_in
                          : pass == ConvPass::BackwardData ? x_in
                                                           : w_in;
  KILN_CHECK(written.is_contiguous(), Error, "[", op, "] cuDNN writes contiguous tensors only");
  // cuDNN's fastest kernels want packed NCHW (a no-op for the written tensor).
  const Tensor x = contiguous(x_in), w = contiguous(w_in), y = contiguous(y_in);
  // Its vectorized kernels may fail at run time on a view starting mid-word (a slice
  // like x[1:]); those go to im2col, as the algorithm cache can't tell them apart.
  for (const Tensor* t : {&x, &w, &y})
    if (reinterpret_cast<uintptr_t>(t->data_ptr()) % 16) return false;

  const Device device = w.device();
  DeviceGuard guard(device);
  cudnnHandle_t h = cudnn_handle(api, device.index, current_stream(device), op);
  Descriptors d(api, op);
  if (!describe(api, d, *types, x, w, y, g, op)) return false;

  const Requirements need{types->math, cudnn_deterministic()};
  const ProblemKey key = problem_key(pass, w, g, need);
  Choice c;
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(g_choices_mutex);
    if (auto it = g_choices.find(key); it != g_choices.end()) c = it->second, known = true;
  }
  if (!known) {
    c = choose(api, h, pass, d, need, op);
    std::lock_guard<std::mutex> lock(g_choices_mutex);
    g_choices.emplace(key, c);
  } else if (c.algo >= 0) {
    check_cudnn(api, api.set_math_type(d.conv, c.math), "cudnnSetConvolutionMathType", op);
  }
  if (c.algo < 0) return false;

  const Tensor workspace =
      c.workspace ? empty({static_cast<int64_t>(c.workspace)}, ScalarType::UInt8, device)
                  : Tensor();
  void* ws = workspace.defined() ? workspace.data_ptr() : nullptr;
  // Scalars are double for double data, float otherwise.
  const float alpha_f = 1.f, beta_f = static_cast<float>(beta);
  const double alpha_d = 1.0;
  const bool dbl = types->data == CUDNN_DATA_DOUBLE;
  const void* alpha = dbl ? static_cast<const void*>(&alpha_d) : &alpha_f;
  const void* scale = dbl ? static_cast<const void*>(&beta) : &beta_f;
  switch (pass) {
    case ConvPass::Forward:
      check_cudnn(api,
                  api.forward(h, alpha, d.x, x.data_ptr(), d.w, w.data_ptr(), d.conv,
                              static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws, c.workspace,
                              scale, d.y, y.data_ptr()),
                  "cudnnConvolutionForward", op);
      break;
    case ConvPass::BackwardData:
      check_cudnn(api,
                  api.backward_data(h, alpha, d.w, w.data_ptr(), d.y, y.data_ptr(), d.conv,
                                    static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws,
                                    c.workspace, scale, d.x, x.data_ptr()),
                  "cudnnConvolutionBackwardData", op);
      break;
    case ConvPass::BackwardFilter:
      check_cudnn(api,
                  api.backward_filter(h, alpha, d.x, x.data_ptr(), d.y, y.data_ptr(), d.conv,
                                      static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), ws,
                                      c.workspace, scale, d.w, w.data_ptr()),
                  "cudnnConvolutionBackwardFilter", op);
      break;
  }
  g_passes_run.fetch_add(1, std::memory_order_relaxed);
  return true;
}

int64_t cudnn_convolutions_run() { return g_passes_run.load(std::memory_order_relaxed); }

}  // namespace kiln::cuda
