// scaled_dot_product_attention through cuDNN's fused flash attention, as
// PyTorch's cuDNN backend runs it: tensor cores, the (L, S) scores never
// stored. The problem is described with cuDNN's graph API through the
// cudnn-frontend headers (header-only; they call cuDNN through the library
// kiln loaded, NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING). A graph per problem
// (pass, dtype, sizes and strides, causal, scale) is built on first use --
// cuDNN compiles its kernels then, with NVRTC -- and kept for the thread, as
// cuDNN handles are.
#include "attention_cudnn.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cudnn_frontend.h>

#include "attention_layout.h"
#include "context.h"
#include "cudnn_api.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
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
// Each new problem costs cuDNN a compilation. A thread builds at most this many
// graphs; later new problems (programs with ever-new sequence lengths) run on
// the other paths instead of compiling without end.
constexpr size_t kMaxGraphsPerThread = 256;

// The tensors of the graphs, by the uid the variant pack names them with.
enum Uid : int64_t { kQ = 1, kK, kV, kOut, kLse, kGradOut, kGradQ, kGradK, kGradV };

// One problem; a graph is built for each.
struct Problem {
  bool backward;
  ScalarType dtype;
  int device;
  bool causal, deterministic;
  float scale;  // finite
  std::vector<std::pair<int64_t, Dims4>> tensors;  // by uid, in the order added
  auto operator<=>(const Problem&) const = default;

  const Dims4& dims(Uid uid) const {
    for (const auto& [u, d] : tensors)
      if (u == uid) return d;
    throw Error(detail::concat("[", kOp, "] no tensor ", static_cast<int64_t>(uid)));
  }
  std::string describe() const {
    const Dims4& q = dims(kQ);
    return detail::concat(backward ? "backward" : "forward", " of ", dtype_name(dtype),
                          " q (", q.size[0], ", ", q.size[1], ", ", q.size[2], ", ", q.size[3],
                          "), S ", dims(kK).size[2], ", Ev ", dims(kV).size[3],
                          causal ? ", causal" : "");
  }
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
  g_declined = p.describe() + ": " + why;
}

// The tensors of one pass, gathered for a graph: its problem and variant pack.
class Operands {
 public:
  Operands(bool backward, const Tensor& q, bool causal, double scale, bool packed)
      : packed_(packed), split_(head_split(q)) {
    problem_ = Problem{backward, q.dtype(),           static_cast<int>(q.device().index),
                       causal,   cudnn_deterministic(), static_cast<float>(scale),
                       {}};
  }

  // t read in place, or a contiguous copy of it where cuDNN can't (always when
  // packed; a fresh one where t is contiguous but not 16-byte aligned).
  Tensor input(Uid uid, const Tensor& t) {
    std::optional<Dims4> d = packed_ ? std::nullopt : dims_of(t, split_);
    Tensor used = t;
    if (d) {
      strided_ = strided_ || !t.is_contiguous();
    } else {
      used = contiguous(t);
      d = dims_of(used, split_);
      if (!d && used.is_contiguous()) {
        used = clone(used);
        d = dims_of(used, split_);
      }
    }
    add(uid, used, d);
    return used;
  }
  // A new tensor of `sizes` for cuDNN to write, laid out like `like` unless packed.
  Tensor output(Uid uid, const Tensor& like, const Shape& sizes) {
    Tensor t = packed_ ? Tensor() : empty_in_order_of(like, sizes);
    std::optional<Dims4> d = t.defined() ? dims_of(t, split_) : std::nullopt;
    if (!d) {
      t = empty(sizes, like.dtype(), like.device());
      d = dims_of(t, split_);
    }
    add(uid, t, d);
    return t;
  }
  // The float32 logsumexp (B, L), B the batch of q's dims.
  void logsumexp(const Tensor& lse) {
    const Dims4& q = problem_.dims(kQ);
    const int64_t L = q.size[2];
    add(kLse, lse, Dims4{{q.size[0], q.size[1], L, 1}, {q.size[1] * L, L, 1, 1}});
  }

  // Whether every tensor has a 4-D description and fewer than 2^31 elements
  // (larger ones are left to the other paths).
  bool usable() const { return usable_; }
  // Whether an input was read in place with strides other than contiguous ones
  // (where cuDNN declines, contiguous copies may still do).
  bool strided() const { return strided_; }
  // Runs the problem's graph (usable() first) and returns true, or returns false
  // where cuDNN declines it.
  bool run();

 private:
  void add(Uid uid, const Tensor& t, const std::optional<Dims4>& d) {
    if (!d || t.numel() >= (int64_t(1) << 31)) usable_ = false;
    problem_.tensors.emplace_back(uid, d.value_or(Dims4{}));
    pack_[uid] = t.data_ptr();
    kept_.push_back(t);  // copies made here must outlive the pass
  }

  bool packed_, strided_ = false, usable_ = true;
  int64_t split_;
  Problem problem_;
  std::unordered_map<int64_t, void*> pack_;
  std::vector<Tensor> kept_;
};

// Tensor attributes t as the graph's tensor `uid` of dims d.
Tensor_attributes& set_dims(Tensor_attributes& t, Uid uid, const Dims4& d) {
  return t.set_uid(uid)
      .set_dim({d.size.begin(), d.size.end()})
      .set_stride({d.stride.begin(), d.stride.end()});
}

// p's graph; the forward as `implementation` (the backward has one).
std::shared_ptr<Graph> describe(const Problem& p, fe::AttentionImplementation_t implementation) {
  auto g = std::make_shared<Graph>();
  g->set_io_data_type(p.dtype == ScalarType::Float16 ? fe::DataType_t::HALF
                                                     : fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  const auto input = [&](const char* name, Uid uid) {
    Tensor_attributes t;
    t.set_name(name);
    if (uid == kLse) t.set_data_type(fe::DataType_t::FLOAT);
    return g->tensor(set_dims(t, uid, p.dims(uid)));
  };
  const auto output = [&](const std::shared_ptr<Tensor_attributes>& t, Uid uid) {
    set_dims(t->set_output(true), uid, p.dims(uid));
  };
  const auto q = input("q", kQ), k = input("k", kK), v = input("v", kV);
  if (!p.backward) {
    auto options = fe::graph::SDPA_attributes()
                       .set_name("attention")
                       .set_generate_stats(true)
                       .set_attn_scale(p.scale)
                       .set_causal_mask(p.causal)
                       .set_implementation(implementation);
    auto [out, lse] = g->sdpa(q, k, v, options);
    output(out, kOut);
    lse->set_data_type(fe::DataType_t::FLOAT);
    output(lse, kLse);
    return g;
  }
  auto options = fe::graph::SDPA_backward_attributes()
                     .set_name("attention_backward")
                     .set_attn_scale(p.scale)
                     .set_causal_mask(p.causal)
                     .set_deterministic_algorithm(p.deterministic);
  auto [gq, gk, gv] = g->sdpa_backward(q, k, v, input("out", kOut), input("grad_out", kGradOut),
                                       input("lse", kLse), options);
  output(gq, kGradQ);
  output(gk, kGradK);
  output(gv, kGradV);
  return g;
}

// The graph of p with its plan, or none where cuDNN does not support p (no
// engine for these sizes, strides or this GPU, NVRTC missing, ...: noted for
// kiln._C_cuda._cudnn_attention_declined()). The forward is tried as the
// frontend picks it (cuDNN's newer unified attention where its version and the
// options allow, chosen before any engine is asked), then as the composite
// graph.
Built build(const Problem& p, cudnnHandle_t handle) {
  using Implementation = fe::AttentionImplementation_t;
  std::string why;
  for (const Implementation implementation : {Implementation::AUTO, Implementation::COMPOSITE}) {
    if (p.backward && implementation != Implementation::AUTO) break;
    try {
      std::shared_ptr<Graph> g = describe(p, implementation);
      fe::error_t status = g->build(handle, {fe::HeurMode_t::A});
      int64_t workspace = 0;
      if (status.is_good()) status = g->get_workspace_size(workspace);
      if (status.is_good() && workspace <= kMaxWorkspaceBytes) return Built{std::move(g), workspace};
      why += status.is_good() ? detail::concat("needs a workspace of ", workspace, " bytes")
                              : status.get_message();
    } catch (const std::exception& e) {
      why += e.what();
    }
    why += "; ";
  }
  note_declined(p, why);
  return Built{};
}

bool Operands::run() {
  const Problem& p = problem_;
  static std::once_flag library_set;
  std::call_once(library_set, [] { cudnn_frontend::cudnn_dlhandle = cudnn_library(); });
  const Device device(DeviceType::CUDA, p.device);
  DeviceGuard guard(device);
  cudnnHandle_t handle = cudnn_handle(*cudnn(), p.device, current_stream(device), kOp);
  // Never destroyed: at exit, cuDNN and the CUDA runtime may be torn down first.
  thread_local auto& graphs = *new std::map<Problem, Built>;
  auto it = graphs.find(p);
  if (it == graphs.end()) {
    if (graphs.size() >= kMaxGraphsPerThread) {
      note_declined(p, detail::concat("this thread has built ", graphs.size(), " graphs already"));
      return false;
    }
    it = graphs.emplace(p, build(p, handle)).first;
  }
  const Built& b = it->second;
  if (!b.graph) return false;
  const Tensor workspace =
      b.workspace ? empty({b.workspace}, ScalarType::UInt8, device) : Tensor();
  fe::error_t status =
      b.graph->execute(handle, pack_, workspace.defined() ? workspace.data_ptr() : nullptr);
  KILN_CHECK(status.is_good(), Error, "[", kOp, "] cuDNN's fused attention failed (",
             p.describe(), "): ", status.get_message(),
             " (kiln.backends.cuda.enable_cudnn_sdp(False) runs attention without it)");
  g_passes_run.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// Whether cuDNN's attention is on and could take these tensors at all.
bool offered(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
             double scale) {
  if (!cudnn_sdp_enabled() || !cudnn_enabled() || !cudnn()) return false;
  const ScalarType dtype = q.dtype();
  // cuDNN reads head rows 16 bytes at a time.
  return (dtype == ScalarType::Float16 || dtype == ScalarType::BFloat16) && !mask.defined() &&
         std::isfinite(scale) && q.numel() > 0 && k.numel() > 0 && v.numel() > 0 &&
         q.size(-1) % 8 == 0 && v.size(-1) % 8 == 0;
}

Shape with_last(Shape sizes, int64_t last) {
  sizes.back() = last;
  return sizes;
}

}  // namespace

bool cudnn_attention(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& mask, bool causal, double scale) {
  if (!offered(q, k, v, mask, scale)) return false;
  // In place first; where cuDNN declines strided inputs, contiguous copies.
  for (const bool packed : {false, true}) {
    Operands ops(false, q, causal, scale, packed);
    const Tensor q_used = ops.input(kQ, q);
    ops.input(kK, k);
    ops.input(kV, v);
    const Tensor o = ops.output(kOut, q_used, with_last(q.sizes(), v.size(-1)));
    const int64_t L = q.size(-2);
    const Tensor l = empty({q.numel() / (L * q.size(-1)), L}, ScalarType::Float32, q.device());
    ops.logsumexp(l);
    if (!ops.usable()) return false;
    if (ops.run()) {
      out = o, lse = l;
      return true;
    }
    if (!ops.strided()) break;
  }
  return false;
}

bool cudnn_attention_backward(Tensor& gq, Tensor& gk, Tensor& gv, const Tensor& q,
                              const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& grad_out, const Tensor& lse, const Tensor& mask,
                              bool causal, double scale) {
  if (!offered(q, k, v, mask, scale)) return false;
  for (const bool packed : {false, true}) {
    Operands ops(true, q, causal, scale, packed);
    const Tensor q_used = ops.input(kQ, q), k_used = ops.input(kK, k), v_used = ops.input(kV, v);
    ops.input(kGradOut, in_layout_of(grad_out, ops.input(kOut, out)));
    ops.logsumexp(lse);
    const Tensor a = ops.output(kGradQ, q_used, q.sizes()),
                 b = ops.output(kGradK, k_used, k.sizes()),
                 c = ops.output(kGradV, v_used, v.sizes());
    if (!ops.usable()) return false;
    if (ops.run()) {
      gq = a, gk = b, gv = c;
      return true;
    }
    if (!ops.strided()) break;
  }
  return false;
}

int64_t cudnn_attentions_run() { return g_passes_run.load(std::memory_order_relaxed); }

std::string cudnn_attention_declined() {
  std::lock_guard<std::mutex> lock(g_declined_mutex);
  return g_declined;
}

}  // namespace kiln::cuda
