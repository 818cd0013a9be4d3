#include "kiln/ops/linalg.h"

#include <sstream>
#include <vector>

#include "kiln/autocast.h"
#include "kiln/autograd/grad_mode.h"
#include "kiln/autograd/node.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

// The kernel: out = beta * out + alpha * a @ b over dim 0 of 3-D tensors; out is contiguous.
using GemmKernel = void(const Tensor&, const Tensor&, const Tensor&, Scalar, Scalar);

void run_gemm(const Tensor& out, const Tensor& a, const Tensor& b, Scalar beta, Scalar alpha) {
  static const dispatch::Op<GemmKernel> kernel("gemm");
  kernel(out.device(), out, a, b, beta, alpha);
}

// `t`'s memory seen with other geometry, without autograd (only kernels see it),
// from `offset` elements past t's first.
Tensor raw_view(const Tensor& t, Shape sizes, Shape strides, int64_t offset = 0) {
  return make_tensor(t.storage(), std::move(sizes), std::move(strides),
                     t.storage_offset() + offset, t.dtype());
}

// A 2-D matrix as a batch of one.
Tensor batch_of_one(const Tensor& m) {
  return raw_view(m, {1, m.size(0), m.size(1)}, {m.size(0) * m.size(1), m.stride(0), m.stride(1)});
}

// "2x3x4", the way shapes read in matmul errors.
std::string dims_str(const Shape& s) {
  std::ostringstream ss;
  for (size_t i = 0; i < s.size(); ++i) ss << (i ? "x" : "") << s[i];
  return ss.str();
}

bool is_one(Scalar s) { return s.to_double() == 1.0; }

Tensor scaled(const Tensor& t, Scalar s) { return is_one(s) ? t : t * s; }

Tensor mT(const Tensor& t) { return transpose(t, -2, -1); }

// Same device, same dtype, and a dtype the kernels multiply.
void check_operands(const char* op, const char* na, const Tensor& a, const char* nb,
                    const Tensor& b) {
  check_same_device({a, b}, op);
  KILN_CHECK(a.dtype() == b.dtype(), TypeError, "[", op, "] expected ", na, " and ", nb,
             " to have the same dtype, but got ", a.dtype(), " and ", b.dtype());
  KILN_CHECK(a.dtype() != ScalarType::Bool, TypeError, "[", op,
             "] bool tensors are not supported");
}

void check_dim(const char* op, const char* name, const Tensor& t, int64_t want) {
  KILN_CHECK(t.dim() == want, ValueError, "[", op, "] ", name, " must be a ", want,
             "-D tensor, got a ", t.dim(), "-D tensor of shape ", t.sizes());
}

void check_scalars(const char* op, ScalarType dtype, Scalar beta, Scalar alpha) {
  KILN_CHECK(is_floating(dtype) || (!beta.is_floating() && !alpha.is_floating()), TypeError,
             "[", op, "] for integral input tensors, beta and alpha must not be floating point "
             "numbers, got beta=", beta.to_double(), " alpha=", alpha.to_double());
}

// out = beta * input + alpha * a @ b for 3-D a and b (2-D ones are batches of one).
Tensor product(const Tensor& input, const Tensor& a, const Tensor& b, const Shape& out_shape,
               Scalar beta, Scalar alpha) {
  Tensor out = empty(out_shape, a.dtype(), a.device());
  const bool add_input = input.defined() && beta.to_double() != 0;
  if (add_input) {
    static const dispatch::Op<void(const Tensor&, const Tensor&)> copy_kernel("copy");
    copy_kernel(out.device(), out, input);
  }
  const bool two_d = a.dim() == 2;
  run_gemm(two_d ? batch_of_one(out) : out, two_d ? batch_of_one(a) : a,
           two_d ? batch_of_one(b) : b, add_input ? beta : Scalar(0), alpha);
  return out;
}

// One level of a batched product's loops: `size` entries `a`, `b` and `out`
// elements apart in the operands and the result.
struct BatchLevel {
  int64_t size, a, b, out;
};

// A product loops over at most kMaxGemmCalls kernel calls of at least
// kMinGemmCallWork multiply-adds each (enough to hide a GPU launch); otherwise
// copying the operands into one level costs less.
constexpr int64_t kMaxGemmCalls = 64;
constexpr double kMinGemmCallWork = double(1 << 24);

// alpha * a (..., m, k) @ b (..., k, n) over the broadcast batch dims `batch`,
// into a new contiguous (batch..., m, n); no autograd. Adjacent batch dims whose strides
// line up in both operands merge into one level (broadcast dims, stride 0, too);
// the innermost level is the kernel's batch and the outer ones are looped over
// (within the limits above), so that views such as attention's heads
// (N, H, L, D) of an (N, L, E) projection multiply without being copied.
Tensor batched_product(const Tensor& a_in, const Tensor& b_in, const Shape& batch,
                       Scalar alpha = 1) {
  autograd::NoGradGuard no_grad;  // the views and copies below are the kernels' business
  const int64_t m = a_in.size(-2), k = a_in.size(-1), n = b_in.size(-1);
  const auto expanded = [&](const Tensor& t, int64_t rows, int64_t cols) {
    Shape full = batch;
    full.push_back(rows);
    full.push_back(cols);
    return t.sizes() == full ? t : expand(t, full);
  };
  Tensor a = expanded(a_in, m, k), b = expanded(b_in, k, n);
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = empty(out_shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  const auto levels_of = [&] {
    std::vector<BatchLevel> levels;  // innermost first
    int64_t out_stride = m * n;
    for (int64_t i = int64_t(batch.size()) - 1; i >= 0; out_stride *= batch[i--]) {
      if (batch[i] == 1) continue;
      const int64_t sa = a.stride(i), sb = b.stride(i);
      if (!levels.empty()) {
        BatchLevel& inner = levels.back();
        if (sa == inner.a * inner.size && sb == inner.b * inner.size) {
          inner.size *= batch[i];
          continue;
        }
      }
      levels.push_back({batch[i], sa, sb, out_stride});
    }
    if (levels.empty()) levels.push_back({1, 0, 0, m * n});
    return levels;
  };
  std::vector<BatchLevel> levels = levels_of();
  int64_t calls = 1;
  for (size_t l = 1; l < levels.size(); ++l) calls *= levels[l].size;
  const double call_work = double(levels.front().size) * double(m) * double(n) * double(k);
  if (calls > 1 && (calls > kMaxGemmCalls || call_work < kMinGemmCallWork)) {
    a = contiguous(a);
    b = contiguous(b);
    levels = levels_of();
    calls = 1;
  }
  const BatchLevel& inner = levels.front();
  for (int64_t c = 0; c < calls; ++c) {
    int64_t oa = 0, ob = 0, oo = 0, rest = c;
    for (size_t l = 1; l < levels.size(); ++l) {
      const int64_t i = rest % levels[l].size;
      rest /= levels[l].size;
      oa += i * levels[l].a, ob += i * levels[l].b, oo += i * levels[l].out;
    }
    run_gemm(raw_view(out, {inner.size, m, n}, {inner.out, n, 1}, oo),
             raw_view(a, {inner.size, m, k}, {inner.a, a.stride(-2), a.stride(-1)}, oa),
             raw_view(b, {inner.size, k, n}, {inner.b, b.stride(-2), b.stride(-1)}, ob), 0,
             alpha);
  }
  return out;
}

}  // namespace

Tensor mm(const Tensor& a, const Tensor& b) {
  KILN_AUTOCAST(kLowerPrecision, mm, a, b);
  check_dim("mm", "mat1", a, 2);
  check_dim("mm", "mat2", b, 2);
  check_operands("mm", "mat1", a, "mat2", b);
  KILN_CHECK(a.size(1) == b.size(0), ValueError, "[mm] mat1 and mat2 shapes cannot be multiplied (",
             dims_str(a.sizes()), " and ", dims_str(b.sizes()), ")");
  Tensor out = product(Tensor(), a, b, {a.size(0), b.size(1)}, 0, 1);
  if (autograd::needs_grad({a, b}))
    autograd::record("MmBackward0", {a, b}, {out}, {a, b}, [](const BackwardArgs& g) {
      return TensorList{g.needs(0) ? mm(g.grad(), mT(g.saved[1])) : Tensor(),
                        g.needs(1) ? mm(mT(g.saved[0]), g.grad()) : Tensor()};
    });
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  KILN_AUTOCAST(kLowerPrecision, bmm, a, b);
  check_dim("bmm", "batch1", a, 3);
  check_dim("bmm", "batch2", b, 3);
  check_operands("bmm", "batch1", a, "batch2", b);
  KILN_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1), ValueError,
             "[bmm] batch1 and batch2 shapes cannot be multiplied (", dims_str(a.sizes()), " and ",
             dims_str(b.sizes()), ")");
  Tensor out = product(Tensor(), a, b, {a.size(0), a.size(1), b.size(2)}, 0, 1);
  if (autograd::needs_grad({a, b}))
    autograd::record("BmmBackward0", {a, b}, {out}, {a, b}, [](const BackwardArgs& g) {
      return TensorList{g.needs(0) ? bmm(g.grad(), mT(g.saved[1])) : Tensor(),
                        g.needs(1) ? bmm(mT(g.saved[0]), g.grad()) : Tensor()};
    });
  return out;
}

namespace {
// addmm and baddbmm: the same formula on 2-D or 3-D operands.
Tensor add_product(const char* op, const char* node, const Tensor& input, const Tensor& a,
                   const Tensor& b, Scalar beta, Scalar alpha, Tensor (*prod)(const Tensor&,
                                                                               const Tensor&)) {
  const bool batched = a.dim() == 3;
  check_operands(op, "input", input, batched ? "batch1" : "mat1", a);
  check_scalars(op, a.dtype(), beta, alpha);
  const Shape shape =
      batched ? Shape{a.size(0), a.size(1), b.size(2)} : Shape{a.size(0), b.size(1)};
  KILN_CHECK(is_expandable_to(input.sizes(), shape), ValueError, "[", op, "] input of shape ",
             input.sizes(), " cannot be broadcast to the product's shape ", shape);
  Tensor out = product(input, a, b, shape, beta, alpha);
  if (autograd::needs_grad({input, a, b}))
    autograd::record(node, {input, a, b}, {out}, {a, b}, [=](const BackwardArgs& g) {
      return TensorList{g.needs(0) ? scaled(g.grad(), beta) : Tensor(),
                        g.needs(1) ? scaled(prod(g.grad(), mT(g.saved[1])), alpha) : Tensor(),
                        g.needs(2) ? scaled(prod(mT(g.saved[0]), g.grad()), alpha) : Tensor()};
    });
  return out;
}
}  // namespace

Tensor addmm(const Tensor& input, const Tensor& a, const Tensor& b, Scalar beta, Scalar alpha) {
  KILN_AUTOCAST(kLowerPrecision, addmm, input, a, b, beta, alpha);
  check_dim("addmm", "mat1", a, 2);
  check_dim("addmm", "mat2", b, 2);
  check_operands("addmm", "mat1", a, "mat2", b);
  KILN_CHECK(a.size(1) == b.size(0), ValueError,
             "[addmm] mat1 and mat2 shapes cannot be multiplied (", dims_str(a.sizes()), " and ",
             dims_str(b.sizes()), ")");
  return add_product("addmm", "AddmmBackward0", input, a, b, beta, alpha, &mm);
}

Tensor baddbmm(const Tensor& input, const Tensor& a, const Tensor& b, Scalar beta, Scalar alpha) {
  KILN_AUTOCAST(kLowerPrecision, baddbmm, input, a, b, beta, alpha);
  check_dim("baddbmm", "batch1", a, 3);
  check_dim("baddbmm", "batch2", b, 3);
  check_operands("baddbmm", "batch1", a, "batch2", b);
  KILN_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1), ValueError,
             "[baddbmm] batch1 and batch2 shapes cannot be multiplied (", dims_str(a.sizes()),
             " and ", dims_str(b.sizes()), ")");
  return add_product("baddbmm", "BaddbmmBackward0", input, a, b, beta, alpha, &bmm);
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  KILN_AUTOCAST(kLowerPrecision, matmul, a, b);
  const int64_t da = a.dim(), db = b.dim();
  KILN_CHECK(da >= 1 && db >= 1, ValueError, "[matmul] both arguments need to be at least 1-D, "
             "but they are ", da, "-D and ", db, "-D");
  check_operands("matmul", "input", a, "other", b);
  const int64_t k_a = a.size(-1), k_b = db == 1 ? b.size(0) : b.size(-2);
  KILN_CHECK(k_a == k_b, ValueError, "[matmul] mat1 and mat2 shapes cannot be multiplied (",
             dims_str(a.sizes()), " and ", dims_str(b.sizes()), ")");
  if (da == 1 && db == 1) return dot(a, b);
  if (da == 2 && db == 2) return mm(a, b);
  if (da == 2 && db == 1) return squeeze(mm(a, unsqueeze(b, 1)), Shape{1});
  if (da == 1 && db == 2) return squeeze(mm(unsqueeze(a, 0), b), Shape{0});
  if (da >= 3 && db <= 2) {
    // Fold a's batch dims into its rows: one large GEMM instead of many small ones.
    Shape out_shape(a.sizes().begin(), a.sizes().end() - 1);
    if (db == 2) out_shape.push_back(b.size(1));
    const int64_t rows = shape_numel(Shape(a.sizes().begin(), a.sizes().end() - 1));
    Tensor prod = mm(reshape(a, {rows, k_a}), db == 1 ? unsqueeze(b, 1) : b);
    return reshape(prod, out_shape);
  }
  // Batched: broadcast the batch dims, multiply over them, restore 1-D operands' shapes.
  const Tensor a2 = da == 1 ? unsqueeze(a, 0) : a;
  const Tensor b2 = db == 1 ? unsqueeze(b, 1) : b;
  const Shape batch_a(a2.sizes().begin(), a2.sizes().end() - 2);
  const Shape batch_b(b2.sizes().begin(), b2.sizes().end() - 2);
  const size_t nb = std::max(batch_a.size(), batch_b.size());
  Shape batch(nb);
  for (size_t i = 0; i < nb; ++i) {
    const int64_t x = i < nb - batch_a.size() ? 1 : batch_a[i - (nb - batch_a.size())];
    const int64_t y = i < nb - batch_b.size() ? 1 : batch_b[i - (nb - batch_b.size())];
    KILN_CHECK(x == y || x == 1 || y == 1, ValueError, "[matmul] batch dimensions of shapes ",
               dims_str(a.sizes()), " and ", dims_str(b.sizes()), " cannot be broadcast (",
               batch_a, " and ", batch_b, ")");
    batch[i] = x == 1 ? y : x;
  }
  Tensor prod = batched_product(a2, b2, batch);
  if (autograd::needs_grad({a2, b2}))
    autograd::record("MatmulBackward0", {a2, b2}, {prod}, {a2, b2}, [](const BackwardArgs& g) {
      const Tensor &x = g.saved[0], &y = g.saved[1];
      return TensorList{g.needs(0) ? sum_to(matmul(g.grad(), mT(y)), x.sizes()) : Tensor(),
                        g.needs(1) ? sum_to(matmul(mT(x), g.grad()), y.sizes()) : Tensor()};
    });
  const int64_t m = a2.size(-2), n = b2.size(-1);
  Shape out_shape = batch;
  if (da > 1) out_shape.push_back(m);
  if (db > 1) out_shape.push_back(n);
  return reshape(prod, out_shape);
}

Tensor matmul_scaled(const Tensor& a, const Tensor& b, double alpha) {
  check_operands("matmul", "input", a, "other", b);
  KILN_CHECK(a.dim() >= 2 && b.dim() >= 2 && a.size(-1) == b.size(-2), ValueError,
             "[matmul] expected (..., m, k) and (..., k, n) operands, got shapes ",
             dims_str(a.sizes()), " and ", dims_str(b.sizes()));
  const Shape batch = broadcast_shapes(Shape(a.sizes().begin(), a.sizes().end() - 2),
                                       Shape(b.sizes().begin(), b.sizes().end() - 2), "matmul");
  return batched_product(a, b, batch, alpha);
}

Tensor dot(const Tensor& a, const Tensor& b) {
  KILN_AUTOCAST(kPromoteCuda, dot, a, b);
  KILN_CHECK(a.dim() == 1 && b.dim() == 1, ValueError, "[dot] 1-D tensors expected, but got ",
             a.dim(), "-D and ", b.dim(), "-D tensors");
  check_operands("dot", "input", a, "tensor", b);
  KILN_CHECK(a.size(0) == b.size(0), ValueError, "[dot] inconsistent tensor size, expected tensors "
             "of the same number of elements, but got ", a.size(0), " and ", b.size(0));
  const int64_t n = a.size(0);
  Tensor out = empty({}, a.dtype(), a.device());
  run_gemm(raw_view(out, {1, 1, 1}, {1, 1, 1}), raw_view(a, {1, 1, n}, {n, n, a.stride(0)}),
           raw_view(b, {1, n, 1}, {n, b.stride(0), 1}), 0, 1);
  if (autograd::needs_grad({a, b}))
    autograd::record("DotBackward0", {a, b}, {out}, {a, b}, [](const BackwardArgs& g) {
      return TensorList{g.needs(0) ? g.grad() * g.saved[1] : Tensor(),
                        g.needs(1) ? g.grad() * g.saved[0] : Tensor()};
    });
  return out;
}

Tensor outer(const Tensor& a, const Tensor& b) {
  KILN_CHECK(a.dim() == 1 && b.dim() == 1, ValueError, "[outer] 1-D tensors expected, but got ",
             a.dim(), "-D and ", b.dim(), "-D tensors");
  return mul(unsqueeze(a, 1), b);
}

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  KILN_AUTOCAST(kLowerPrecision, linear, input, weight, bias);
  KILN_CHECK(weight.dim() == 1 || weight.dim() == 2, ValueError,
             "[linear] weight must be 1-D or 2-D, got shape ", weight.sizes());
  KILN_CHECK(input.dim() >= 1, ValueError, "[linear] input must be at least 1-D, got a 0-D tensor");
  const int64_t in_features = weight.size(-1);
  KILN_CHECK(input.size(-1) == in_features, ValueError, "[linear] input of shape ",
             input.sizes(), " and weight of shape ", weight.sizes(),
             " are incompatible: input.shape[-1] (", input.size(-1),
             ") must equal weight.shape[-1] (", in_features, ")");
  check_operands("linear", "input", input, "weight", weight);
  if (bias.defined()) check_operands("linear", "input", input, "bias", bias);
  const Tensor w = weight.dim() == 2 ? transpose(weight, 0, 1) : weight;
  if (bias.defined() && weight.dim() == 2 && input.dim() >= 2) {
    // Rows of input times W^T plus the bias, in one GEMM call.
    Shape out_shape(input.sizes().begin(), input.sizes().end() - 1);
    const int64_t rows = shape_numel(out_shape);
    out_shape.push_back(weight.size(0));
    const Tensor x = input.dim() == 2 ? input : reshape(input, {rows, in_features});
    KILN_CHECK(is_expandable_to(bias.sizes(), {rows, weight.size(0)}), ValueError,
               "[linear] bias of shape ", bias.sizes(), " cannot be broadcast to the output's ",
               "shape ", Shape{rows, weight.size(0)});
    const Tensor out = product(bias, x, w, {rows, weight.size(0)}, 1, 1);
    // Own node rather than addmm's: the weight's gradient comes out as g^T x, already
    // in weight's layout, so .grad takes it without a transposing copy.
    if (autograd::needs_grad({bias, x, weight}))
      autograd::record("AddmmBackward0", {bias, x, weight}, {out}, {x, weight},
                       [](const BackwardArgs& g) {
                         return TensorList{g.needs(0) ? g.grad() : Tensor(),
                                           g.needs(1) ? mm(g.grad(), g.saved[1]) : Tensor(),
                                           g.needs(2) ? mm(mT(g.grad()), g.saved[0]) : Tensor()};
                       });
    return input.dim() == 2 ? out : reshape(out, out_shape);
  }
  const Tensor out = matmul(input, w);
  return bias.defined() ? add(out, bias) : out;
}

}  // namespace kiln
