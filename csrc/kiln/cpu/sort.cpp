// Sorting kernels: sort/topk, the gather/scatter pair their backward uses, and unique.
// Sort-like kernels see views whose last dim is the one to work along.
#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/creation.h"
#include "kiln/parallel.h"
#include "kiln/tensor.h"

namespace kiln::cpu {
namespace {

// Length and element stride of the last dim (a 0-dim tensor is one row of one element).
int64_t row_length(const Tensor& t) { return t.dim() == 0 ? 1 : t.size(-1); }
int64_t row_stride(const Tensor& t) { return t.dim() == 0 ? 0 : t.stride(-1); }

int64_t num_rows(const Tensor& t) {
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) rows *= t.size(d);
  return rows;
}

// Element offset of row `r` (row-major over all dims but the last).
int64_t row_offset(const Tensor& t, int64_t r) {
  int64_t off = 0;
  for (int64_t d = t.dim() - 2; d >= 0; --d) {
    off += (r % t.size(d)) * t.stride(d);
    r /= t.size(d);
  }
  return off;
}

// Calls f(r) for each row, in parallel when the work is large.
template <class F>
void for_each_row(const Tensor& t, int64_t row_cost, const F& f) {
  const int64_t rows = num_rows(t);
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(row_cost, 1));
  parallel_for(0, rows, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) f(r);
  });
}

template <class T>
bool is_nan(T v) {
  if constexpr (std::is_integral_v<T>) return false;
  else return std::isnan(static_cast<OpMath<T>>(v));
}

// Strict orders with NaN as the largest value, as PyTorch sorts.
template <class T>
bool less_nan_last(T a, T b) {
  using C = OpMath<T>;
  return static_cast<C>(a) < static_cast<C>(b) || (is_nan(b) && !is_nan(a));
}
template <class T>
bool greater_nan_first(T a, T b) {
  using C = OpMath<T>;
  return static_cast<C>(a) > static_cast<C>(b) || (is_nan(a) && !is_nan(b));
}

// Writes the first k of each row's elements in sorted order (stable: ties keep
// input order), with their positions in the row.
void sort_kernel(const Tensor& values, const Tensor& indices, const Tensor& input, int64_t k,
                 bool descending) {
  const int64_t n = row_length(input);
  const int64_t in_s = row_stride(input), v_s = row_stride(values), i_s = row_stride(indices);
  visit_dtype(input.dtype(), [&]<class T>(TypeTag<T>) {
    const T* in = input.data<T>();
    T* vals = values.data<T>();
    int64_t* idx = indices.data<int64_t>();
    for_each_row(input, n * 8, [&](int64_t r) {
      const T* row = in + row_offset(input, r);
      std::vector<std::pair<T, int64_t>> items(n);
      for (int64_t j = 0; j < n; ++j) items[j] = {row[j * in_s], j};
      auto cmp = [descending](const std::pair<T, int64_t>& a, const std::pair<T, int64_t>& b) {
        if (descending ? greater_nan_first(a.first, b.first) : less_nan_last(a.first, b.first))
          return true;
        if (descending ? greater_nan_first(b.first, a.first) : less_nan_last(b.first, a.first))
          return false;
        return a.second < b.second;  // a total order: ties by position
      };
      if (k < n) std::partial_sort(items.begin(), items.begin() + k, items.end(), cmp);
      else std::sort(items.begin(), items.end(), cmp);
      T* vrow = vals + row_offset(values, r);
      int64_t* irow = idx + row_offset(indices, r);
      for (int64_t j = 0; j < k; ++j) {
        vrow[j * v_s] = items[j].first;
        irow[j * i_s] = items[j].second;
      }
    });
  });
}

// input: contiguous and 1-D. Equal values merge; NaNs don't (NaN != NaN), as in PyTorch.
std::tuple<Tensor, Tensor, Tensor> unique_kernel(const Tensor& input, bool return_inverse,
                                                 bool return_counts) {
  const int64_t n = input.numel();
  return visit_dtype(input.dtype(), [&]<class T>(TypeTag<T>) {
    const T* in = input.data<T>();
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [in](int64_t a, int64_t b) { return less_nan_last(in[a], in[b]); });
    std::vector<int64_t> inverse(return_inverse ? n : 0);
    std::vector<int64_t> counts;
    std::vector<T> distinct;
    for (int64_t j = 0; j < n; ++j) {
      const T v = in[order[j]];
      using C = OpMath<T>;
      if (distinct.empty() || !(static_cast<C>(distinct.back()) == static_cast<C>(v))) {
        distinct.push_back(v);
        counts.push_back(0);
      }
      ++counts.back();
      if (return_inverse) inverse[order[j]] = static_cast<int64_t>(distinct.size()) - 1;
    }
    const int64_t u = static_cast<int64_t>(distinct.size());
    Tensor values = empty({u}, input.dtype(), input.device());
    std::copy(distinct.begin(), distinct.end(), values.data<T>());
    Tensor inv, cnt;
    if (return_inverse) {
      inv = empty({n}, ScalarType::Int64, input.device());
      std::copy(inverse.begin(), inverse.end(), inv.data<int64_t>());
    }
    if (return_counts) {
      cnt = empty({u}, ScalarType::Int64, input.device());
      std::copy(counts.begin(), counts.end(), cnt.data<int64_t>());
    }
    return std::tuple<Tensor, Tensor, Tensor>{values, inv, cnt};
  });
}

}  // namespace

KILN_REGISTER_KERNEL(sort, CPU, sort_kernel);
KILN_REGISTER_KERNEL(unique, CPU, unique_kernel);

}  // namespace kiln::cpu
