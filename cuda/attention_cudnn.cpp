// scaled_dot_product_attention through cuDNN's fused flash attention, as
// PyTorch's cuDNN backend runs it: tensor cores, the (L, S) scores never
// stored. The problem is described with cuDNN's graph API through the
// cudnn-frontend headers (header-only; they call cuDNN through the library
// kiln loaded, NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING). A graph per problem
// (pass, dtype, sizes, causal, scale) is built on first use -- cuDNN compiles
// its kernels then, with NVRTC -- and kept for the thread, as cuDNN handles are.
#include "attention_cudnn.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>

#include <cudnn_frontend.h>

#include "context.h"
#include "cudnn_api.h"
#include "kiln/error.h"
#include "kiln/ops/creation.h"

// Where the frontend finds cuDNN's functions; set to kiln's handle of the library
// before the first graph is described.
void* cudnn_frontend::cudnn_dlhandle = nullptr;

namespace kiln::cuda {
namespace {

namespace fe = cudnn_frontend;
using fe::graph::Graph;
using fe::graph::Tensor_attributes;

constexpr const char* kOp = "scaled_dot_product_attention";
constexpr int64_t kMaxWorkspaceBytes = int64_t(1) << 30;
// Graphs a thread keeps before it drops them all (programs with ever-new
// sequence lengths would otherwise grow the cache without end).
constexpr size_t kMaxGraphsPerThread = 256;

// The tensors of the graphs, by the uid the variant pack names them with.
enum Uid : int64_t { kQ = 1, kK, kV, kOut, kLse, kGradOut, kGradQ, kGradK, kGradV };

// One problem; a graph is built for each. q (B, L, E), k (B, S, E), v (B, S, Ev).
struct Problem {
  bool backward;
  ScalarType dtype;
  int device;
  int64_t B, L, S, E, Ev;
  bool causal, deterministic;
  float scale;
  auto tie() const {
    return std::tie(backward, dtype, device, B, L, S, E, Ev, causal, deterministic, scale);
  }
  bool operator<(const Problem& o) const { return tie() < o.tie(); }
};

struct Built {
  std::shared_ptr<Graph> graph;  // null: cuDNN declined the problem
  int64_t workspace = 0;
};

std::atomic<int64_t> g_passes_run{0};
std::mutex g_declined_mutex;
std::string g_declined;

void note_declined(const Problem& p, const std::string& why) {
  std::lock_guard<std::mutex> lock(g_declined_mutex);
  g_declined = detail::concat(p.backward ? "backward" : "forward", " of q (", p.B, ", ", p.L,
                              ", ", p.E, "), k (", p.B, ", ", p.S, ", ", p.E, "), v (", p.B, ", ",
                              p.S, ", ", p.Ev, ") ", dtype_name(p.dtype),
                              p.causal ? " causal" : "", ": ", why);
}

// t as the contiguous (B, rows, cols) tensor `uid`, in cuDNN's (batch, heads,
// rows, cols) layout with one head per batch entry.
Tensor_attributes& describe_matrix(Tensor_attributes& t, Uid uid, int64_t B, int64_t rows,
                                   int64_t cols) {
  return t.set_uid(uid).set_dim({B, 1, rows, cols}).set_stride({rows * cols, rows * cols, cols, 1});
}

std::shared_ptr<Graph> describe(const Problem& p) {
  auto g = std::make_shared<Graph>();
  g->set_io_data_type(p.dtype == ScalarType::Float16 ? fe::DataType_t::HALF
                                                     : fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  const auto input = [&](const char* name, Uid uid, int64_t rows, int64_t cols) {
    Tensor_attributes t;
    t.set_name(name);
    return g->tensor(describe_matrix(t, uid, p.B, rows, cols));
  };
  const auto q = input("q", kQ, p.L, p.E), k = input("k", kK, p.S, p.E),
             v = input("v", kV, p.S, p.Ev);
  if (!p.backward) {
    auto options = fe::graph::SDPA_attributes()
                       .set_name("attention")
                       .set_generate_stats(true)
                       .set_attn_scale(p.scale)
                       .set_causal_mask(p.causal);
    auto [out, lse] = g->sdpa(q, k, v, options);
    describe_matrix(out->set_output(true), kOut, p.B, p.L, p.Ev);
    describe_matrix(lse->set_output(true).set_data_type(fe::DataType_t::FLOAT), kLse, p.B, p.L, 1);
    return g;
  }
  const auto out = input("out", kOut, p.L, p.Ev), grad_out = input("grad_out", kGradOut, p.L, p.Ev);
  Tensor_attributes lse_attributes;
  lse_attributes.set_name("lse").set_data_type(fe::DataType_t::FLOAT);
  const auto lse = g->tensor(describe_matrix(lse_attributes, kLse, p.B, p.L, 1));
  auto options = fe::graph::SDPA_backward_attributes()
                     .set_name("attention_backward")
                     .set_attn_scale(p.scale)
                     .set_causal_mask(p.causal)
                     .set_deterministic_algorithm(p.deterministic);
  auto [gq, gk, gv] = g->sdpa_backward(q, k, v, out, grad_out, lse, options);
  describe_matrix(gq->set_output(true), kGradQ, p.B, p.L, p.E);
  describe_matrix(gk->set_output(true), kGradK, p.B, p.S, p.E);
  describe_matrix(gv->set_output(true), kGradV, p.B, p.S, p.Ev);
  return g;
}

// The graph of p with its plan, or none where cuDNN does not support p (no
// engine for these sizes or this GPU, NVRTC missing, ...: noted for
// kiln._C_cuda._cudnn_attention_declined()).
Built build(const Problem& p, cudnnHandle_t handle) {
  Built b;
  try {
    std::shared_ptr<Graph> g = describe(p);
    fe::error_t status = g->build(handle, {fe::HeurMode_t::A});
    int64_t workspace = 0;
    if (status.is_good()) status = g->get_workspace_size(workspace);
    if (!status.is_good()) {
      note_declined(p, status.get_message());
    } else if (workspace > kMaxWorkspaceBytes) {
      note_declined(p, detail::concat("needs a workspace of ", workspace, " bytes"));
    } else {
      b.graph = std::move(g);
      b.workspace = workspace;
    }
  } catch (const std::exception& e) {
    note_declined(p, e.what());
  }
  return b;
}

// The problem of these tensors, or none where cuDNN's attention is off or
// can't take them.
std::optional<Problem> problem_of(bool backward, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const Tensor& mask, bool causal, double scale,
                                  std::initializer_list<const Tensor*> all) {
  if (!cudnn_sdp_enabled() || !cudnn_enabled() || !cudnn()) return std::nullopt;
  const ScalarType dtype = q.dtype();
  if ((dtype != ScalarType::Float16 && dtype != ScalarType::BFloat16) || mask.defined() ||
      !std::isfinite(scale))
    return std::nullopt;
  const Problem p{backward,  dtype,     static_cast<int>(q.device().index),
                  q.size(0), q.size(1), k.size(1),
                  q.size(2), v.size(2), causal,
                  cudnn_deterministic(), static_cast<float>(scale)};
  // cuDNN reads head rows 16 bytes at a time.
  if (p.B == 0 || p.L == 0 || p.S == 0 || p.E == 0 || p.Ev == 0 || p.E % 8 || p.Ev % 8)
    return std::nullopt;
  for (const Tensor* t : all) {
    if (!t->is_contiguous() || reinterpret_cast<uintptr_t>(t->data_ptr()) % 16 ||
        t->numel() >= (int64_t(1) << 31))
      return std::nullopt;
  }
  return p;
}

// Runs p's graph on the tensors of `pack` and returns true, or returns false
// where cuDNN declines p.
bool run(const Problem& p, std::unordered_map<int64_t, void*>& pack) {
  static std::once_flag library_set;
  std::call_once(library_set, [] { cudnn_frontend::cudnn_dlhandle = cudnn_library(); });
  const Device device(DeviceType::CUDA, p.device);
  DeviceGuard guard(device);
  cudnnHandle_t handle = cudnn_handle(*cudnn(), p.device, current_stream(device), kOp);
  // Never destroyed: at exit, cuDNN and the CUDA runtime may be torn down first.
  thread_local auto& graphs = *new std::map<Problem, Built>;
  auto it = graphs.find(p);
  if (it == graphs.end()) {
    if (graphs.size() >= kMaxGraphsPerThread) graphs.clear();
    it = graphs.emplace(p, build(p, handle)).first;
  }
  const Built& b = it->second;
  if (!b.graph) return false;
  const Tensor workspace =
      b.workspace ? empty({b.workspace}, ScalarType::UInt8, device) : Tensor();
  fe::error_t status =
      b.graph->execute(handle, pack, workspace.defined() ? workspace.data_ptr() : nullptr);
  KILN_CHECK(status.is_good(), Error, "[", kOp, "] cuDNN's fused attention failed (",
             p.backward ? "backward" : "forward", "): ", status.get_message(),
             " (kiln.backends.cuda.enable_cudnn_sdp(False) runs attention without it)");
  g_passes_run.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace

bool cudnn_attention(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                     const Tensor& v, const Tensor& mask, bool causal, double scale) {
  const std::optional<Problem> p =
      problem_of(false, q, k, v, mask, causal, scale, {&out, &lse, &q, &k, &v});
  if (!p) return false;
  std::unordered_map<int64_t, void*> pack = {
      {kQ, q.data_ptr()}, {kK, k.data_ptr()}, {kV, v.data_ptr()},
      {kOut, out.data_ptr()}, {kLse, lse.data_ptr()}};
  return run(*p, pack);
}

bool cudnn_attention_backward(const Tensor& gq, const Tensor& gk, const Tensor& gv,
                              const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& grad_out, const Tensor& lse, const Tensor& mask,
                              bool causal, double scale) {
  const std::optional<Problem> p = problem_of(true, q, k, v, mask, causal, scale,
                                              {&gq, &gk, &gv, &q, &k, &v, &out, &grad_out, &lse});
  if (!p) return false;
  std::unordered_map<int64_t, void*> pack = {
      {kQ, q.data_ptr()},         {kK, k.data_ptr()},     {kV, v.data_ptr()},
      {kOut, out.data_ptr()},     {kLse, lse.data_ptr()}, {kGradOut, grad_out.data_ptr()},
      {kGradQ, gq.data_ptr()},    {kGradK, gk.data_ptr()}, {kGradV, gv.data_ptr()}};
  return run(*p, pack);
}

int64_t cudnn_attentions_run() { return g_passes_run.load(std::memory_order_relaxed); }

std::string cudnn_attention_declined() {
  std::lock_guard<std::mutex> lock(g_declined_mutex);
  return g_declined;
}

}  // namespace kiln::cuda
