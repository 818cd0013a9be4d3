// einsum: every operand is aligned to one global dim order (ellipsis dims, then
// the subscripts in ASCII order), with size 1 where it lacks a dim. Operands are
// then contracted left to right: dims both sides have become bmm batch or
// contraction dims, dims no one needs later are summed away first.
#include <algorithm>
#include <array>
#include <cctype>
#include <numeric>

#include "kiln/autocast.h"
#include "kiln/autograd/node.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/linalg.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/view.h"

namespace kiln {

using autograd::BackwardArgs;

namespace {

constexpr int kEllipsis = -1;
using Subscripts = std::vector<int>;  // letters, with kEllipsis where "..." stands
using Positions = std::vector<int64_t>;

Subscripts parse_term(const std::string& term, const std::string& what) {
  Subscripts out;
  bool ellipsis = false;
  for (size_t i = 0; i < term.size(); ++i) {
    const char c = term[i];
    if (c == ' ') continue;
    if (c == '.') {
      KILN_CHECK(term.compare(i, 3, "...") == 0, ValueError, "[einsum] found a '.' that is not "
                 "part of an ellipsis ('...') in the subscripts of ", what, " '", term, "'");
      KILN_CHECK(!ellipsis, ValueError, "[einsum] more than one ellipsis ('...') in the "
                 "subscripts of ", what, " '", term, "'");
      ellipsis = true;
      out.push_back(kEllipsis);
      i += 2;
      continue;
    }
    KILN_CHECK(std::isalpha(static_cast<unsigned char>(c)), ValueError, "[einsum] invalid "
               "subscript '", c, "' in ", what, " '", term, "': subscripts must be letters "
               "[a-zA-Z]");
    out.push_back(c);
  }
  return out;
}

std::vector<std::string> split_terms(const std::string& lhs) {
  std::vector<std::string> terms(1);
  for (char c : lhs) {
    if (c == ',') terms.emplace_back();
    else terms.back() += c;
  }
  return terms;
}

// The diagonal over dims d1 < d2 (a view; d2 is removed). Its backward puts the
// gradient back on the diagonal with an identity mask, so it is differentiable too.
Tensor diagonal(const Tensor& t, int64_t d1, int64_t d2) {
  Shape sizes = t.sizes(), strides = t.strides();
  strides[d1] += strides[d2];
  sizes.erase(sizes.begin() + d2);
  strides.erase(strides.begin() + d2);
  Tensor out = make_view(t, sizes, strides, t.storage_offset());
  if (autograd::needs_grad({t})) {
    const int64_t n = t.size(d1);
    Tensor eye = zeros({n, n}, t.dtype());
    visit_dtype(t.dtype(), [&]<class T>(TypeTag<T>) {
      for (int64_t i = 0; i < n; ++i) eye.data<T>()[i * (n + 1)] = static_cast<T>(1);
    });
    Shape mask_shape(t.dim(), 1);
    mask_shape[d1] = mask_shape[d2] = n;
    const Tensor mask = view(to_device(eye, t.device()), mask_shape);
    autograd::record("DiagonalBackward0", {t}, {out}, {}, [=](const BackwardArgs& a) {
      return TensorList{unsqueeze(a.grad(), d2) * mask};
    });
  }
  return out;
}

Tensor permuted(const Tensor& t, const Shape& order) {
  return std::is_sorted(order.begin(), order.end()) ? t : permute(t, order);
}

// Permutes the dims of t (which sit at global positions `pos`) into ascending
// order and inserts size-1 dims for the other positions of [0, ndim).
Tensor to_aligned(const Tensor& t, const Positions& pos, int64_t ndim) {
  Shape order(pos.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return pos[x] < pos[y]; });
  const Tensor p = permuted(t, order);
  Shape shape(ndim, 1);
  for (size_t i = 0; i < pos.size(); ++i) shape[pos[i]] = t.size(static_cast<int64_t>(i));
  return p.sizes() == shape ? p : reshape(p, shape);
}

bool present(const Tensor& t, int64_t p) { return t.size(p) != 1; }


int64_t product_of(const Tensor& t, const Positions& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= t.size(d);
  return n;
}

Positions concat(std::initializer_list<const Positions*> parts) {
  Positions out;
  for (const Positions* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

// Sums t over the dims it has (size != 1) for which keep(p) is false.
template <class Keep>
Tensor sum_unneeded(const Tensor& t, const Keep& keep) {
  Shape dims;
  for (int64_t p = 0; p < t.dim(); ++p)
    if (present(t, p) && !keep(p)) dims.push_back(p);
  return dims.empty() ? t : sum(t, dims, /*keepdim=*/true, t.dtype());
}

// The product of two aligned operands, summed over the dims that are in both
// and not kept; the result is aligned too.
template <class Keep>
Tensor contract(const Tensor& a, const Tensor& b, const Keep& keep) {
  Positions batch, a_only, b_only, summed, rest;
  for (int64_t p = 0; p < a.dim(); ++p) {
    const bool pa = present(a, p), pb = present(b, p);
    if (pa && pb) (keep(p) ? batch : summed).push_back(p);
    else if (pa) a_only.push_back(p);
    else if (pb) b_only.push_back(p);
    else rest.push_back(p);
  }
  if (summed.empty()) return mul(a, b);
  const int64_t nb = product_of(a, batch), m = product_of(a, a_only), k = product_of(a, summed),
                n = product_of(b, b_only);
  const Tensor a3 = reshape(permuted(a, concat({&batch, &a_only, &summed, &b_only, &rest})),
                            {nb, m, k});
  const Tensor b3 = reshape(permuted(b, concat({&batch, &summed, &b_only, &a_only, &rest})),
                            {nb, k, n});
  Shape sizes;
  for (int64_t p : batch) sizes.push_back(a.size(p));
  for (int64_t p : a_only) sizes.push_back(a.size(p));
  for (int64_t p : b_only) sizes.push_back(b.size(p));
  return to_aligned(reshape(bmm(a3, b3), sizes), concat({&batch, &a_only, &b_only}), a.dim());
}

// Where every dim goes: the equation resolved against the operands' shapes.
struct Plan {
  std::vector<Positions> operand_pos;  // global position of each dim of each operand
  std::vector<std::string> label;      // subscript of each global position, for messages
  Positions out_pos;                   // global positions of the output dims, in order
  std::vector<bool> in_output;
  int64_t ndim() const { return static_cast<int64_t>(label.size()); }
};

Plan make_plan(const std::string& equation, const TensorList& operands) {
  const size_t arrow = equation.find("->");
  const std::vector<std::string> terms = split_terms(equation.substr(0, arrow));
  KILN_CHECK(terms.size() == operands.size(), ValueError, "[einsum] the equation '", equation,
             "' has subscripts for ", terms.size(), " operand(s) but ", operands.size(),
             " were given");
  // Parse the operands' subscripts; count each letter and the ellipsis dims.
  std::vector<Subscripts> subs;
  std::vector<int64_t> ellipsis_dims(operands.size(), 0);
  std::array<int, 128> count{};
  int64_t n_ell = 0;
  for (size_t i = 0; i < operands.size(); ++i) {
    const std::string what = "operand " + std::to_string(i);
    subs.push_back(parse_term(terms[i], what));
    int64_t letters = 0;
    bool has_ell = false;
    for (int c : subs[i]) {
      if (c == kEllipsis) has_ell = true;
      else ++letters, ++count[c];
    }
    const int64_t nd = operands[i].dim();
    KILN_CHECK(has_ell ? nd >= letters : nd == letters, ValueError, "[einsum] the subscripts '",
               terms[i], "' of ", what, " name ", letters, " dimension(s) but the operand has ",
               nd, " (shape ", operands[i].sizes(), ")",
               has_ell ? "" : " and no ellipsis was given");
    ellipsis_dims[i] = has_ell ? nd - letters : 0;
    n_ell = std::max(n_ell, ellipsis_dims[i]);
  }
  Plan plan;
  std::array<int64_t, 128> pos{};
  plan.label.assign(n_ell, "...");
  for (int c = 0; c < 128; ++c) {
    if (!count[c]) continue;
    pos[c] = static_cast<int64_t>(plan.label.size());
    plan.label.emplace_back(1, char(c));
  }
  for (size_t i = 0; i < operands.size(); ++i) {
    Positions dims;
    for (int c : subs[i]) {
      if (c != kEllipsis) dims.push_back(pos[c]);
      else
        for (int64_t j = 0; j < ellipsis_dims[i]; ++j) dims.push_back(n_ell - ellipsis_dims[i] + j);
    }
    plan.operand_pos.push_back(dims);
  }
  // Output: as written, or the ellipsis dims then the letters used once, in ASCII order.
  plan.in_output.assign(plan.ndim(), false);
  auto add_output = [&](int64_t p) {
    plan.out_pos.push_back(p);
    plan.in_output[p] = true;
  };
  if (arrow != std::string::npos) {
    for (int c : parse_term(equation.substr(arrow + 2), "the output")) {
      if (c == kEllipsis) {
        for (int64_t p = 0; p < n_ell; ++p) add_output(p);
        continue;
      }
      KILN_CHECK(count[c] > 0, ValueError, "[einsum] output subscript ", char(c),
                 " does not appear in the equation for any input operand");
      KILN_CHECK(!plan.in_output[pos[c]], ValueError, "[einsum] output subscript ", char(c),
                 " appears more than once in the output");
      add_output(pos[c]);
    }
  } else {
    for (int64_t p = 0; p < n_ell; ++p) add_output(p);
    for (int c = 0; c < 128; ++c)
      if (count[c] == 1) add_output(pos[c]);
  }
  return plan;
}

// Operand i in the global dim order, with diagonals taken for repeated subscripts.
Tensor align_operand(const Tensor& operand, size_t i, const Plan& plan) {
  Tensor t = operand;
  Positions dims = plan.operand_pos[i];
  for (size_t d = 0; d < dims.size(); ++d) {
    for (size_t d2 = d + 1; d2 < dims.size();) {
      if (dims[d2] != dims[d]) {
        ++d2;
        continue;
      }
      KILN_CHECK(t.size(d) == t.size(d2), ValueError, "[einsum] subscript ", plan.label[dims[d]],
                 " is repeated for operand ", i, " of shape ", operand.sizes(),
                 " but the sizes don't match, ", t.size(d), " != ", t.size(d2));
      t = diagonal(t, d, d2);
      dims.erase(dims.begin() + d2);
    }
  }
  return to_aligned(t, dims, plan.ndim());
}

}  // namespace

Tensor einsum(const std::string& equation, const TensorList& operands) {
  KILN_AUTOCAST(kLowerPrecisionCuda, einsum, equation, operands);
  KILN_CHECK(!operands.empty(), ValueError, "[einsum] must provide at least one operand");
  for (size_t i = 1; i < operands.size(); ++i) {
    check_same_device({operands[0], operands[i]}, "einsum");
    KILN_CHECK(operands[i].dtype() == operands[0].dtype(), TypeError, "[einsum] expected all "
               "operands to have the same dtype, but operand 0 is ", operands[0].dtype(),
               " and operand ", i, " is ", operands[i].dtype());
  }
  KILN_CHECK(operands[0].dtype() != ScalarType::Bool, TypeError,
             "[einsum] bool tensors are not supported");
  const Plan plan = make_plan(equation, operands);

  TensorList aligned;
  Shape sizes(plan.ndim(), 1);
  for (size_t i = 0; i < operands.size(); ++i) {
    aligned.push_back(align_operand(operands[i], i, plan));
    for (int64_t p = 0; p < plan.ndim(); ++p) {
      const int64_t s = aligned[i].size(p);
      KILN_CHECK(s == 1 || sizes[p] == 1 || s == sizes[p], ValueError, "[einsum] subscript ",
                 plan.label[p], " has size ", s, " for operand ", i, " (shape ",
                 operands[i].sizes(), ") which does not broadcast with previously seen size ",
                 sizes[p]);
      if (s != 1) sizes[p] = s;
    }
  }

  // Contract left to right; a dim is kept while the output or a later operand has it.
  auto needed_by = [&](size_t first, int64_t p) {
    if (plan.in_output[p]) return true;
    for (size_t j = first; j < aligned.size(); ++j)
      if (present(aligned[j], p)) return true;
    return false;
  };
  Tensor result = sum_unneeded(aligned[0], [&](int64_t p) { return needed_by(1, p); });
  for (size_t i = 1; i < aligned.size(); ++i) {
    const Tensor other = sum_unneeded(aligned[i], [&](int64_t p) {
      return present(result, p) || needed_by(i + 1, p);
    });
    result = contract(result, other, [&](int64_t p) { return needed_by(i + 1, p); });
  }

  // Drop the size-1 leftovers and order the dims as the output asks.
  result = sum_unneeded(result, [&](int64_t p) { return plan.in_output[p]; });
  Positions sorted = plan.out_pos;
  std::sort(sorted.begin(), sorted.end());
  Shape shape;
  for (int64_t p : sorted) shape.push_back(result.size(p));
  result = reshape(result, shape);
  Shape perm;
  for (int64_t p : plan.out_pos)
    perm.push_back(std::find(sorted.begin(), sorted.end(), p) - sorted.begin());
  return permuted(result, perm);
}

}  // namespace kiln
