// Random sampling kernels. Each writes a contiguous output; element i draws
// from Philox block i of the op's stream (Note [Random stream layout]; normal_
// uses block i / 2), so the split across threads never changes the values.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/parallel.h"
#include "kiln/philox.h"
#include "kiln/random_math.h"
#include "kiln/tensor.h"

namespace kiln::cpu {
namespace {

// Random elements cost more than a copy, so threads pay off sooner.
constexpr int64_t kRandomGrain = 4096;

template <class T>
T* out_data(const Tensor& out, const char* op) {
  KILN_CHECK(out.is_contiguous(), Error, "[", op, "] the CPU kernel expects a contiguous output");
  return out.data<T>();
}

// out[i] = f(seed.block(i)) for every element, in parallel.
template <class T, class F>
void generate(const Tensor& out, const char* op, PhiloxSeed seed, const F& f) {
  T* o = out_data<T>(out, op);
  parallel_for(0, out.numel(), kRandomGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = f(seed.block(static_cast<uint64_t>(i)));
  });
}

void uniform_kernel(const Tensor& out, PhiloxSeed seed, double from, double to) {
  visit_floating(out.dtype(), "uniform_", [&]<class T>(TypeTag<T>) {
    using C = OpMath<T>;
    const C lo = static_cast<C>(from), width = static_cast<C>(to - from);
    generate<T>(out, "uniform_", seed, [=](const Philox4x32& r) {
      return static_cast<T>(random_math::uniform<T>(r, lo, width));
    });
  });
}

// Box-Muller gives two samples per Philox block: element i uses block i / 2, taking
// the cosine branch when i is even and the sine branch when odd.
void normal_kernel(const Tensor& out, PhiloxSeed seed, double mean, double std) {
  visit_floating(out.dtype(), "normal_", [&]<class T>(TypeTag<T>) {
    using C = OpMath<T>;
    const C m = static_cast<C>(mean), s = static_cast<C>(std);
    T* o = out_data<T>(out, "normal_");
    parallel_for(0, out.numel(), kRandomGrain, [&](int64_t b, int64_t e) {
      random_math::Pair<C> pair{};
      for (int64_t i = b; i < e; ++i) {
        if (i == b || (i & 1) == 0)
          pair = random_math::normal_pair<T>(seed.block(static_cast<uint64_t>(i >> 1)), m, s);
        o[i] = static_cast<T>((i & 1) ? pair.odd : pair.even);
      }
    });
  });
}

// from + (64 random bits mod range): the modulo bias is below range / 2^64.
void random_kernel(const Tensor& out, PhiloxSeed seed, int64_t from, uint64_t range) {
  visit_dtype(out.dtype(), [&]<class T>(TypeTag<T>) {
    generate<T>(out, "random_", seed, [=](const Philox4x32& r) {
      const int64_t v = random_math::random_int(r, from, range);
      if constexpr (std::is_same_v<T, bool>) return v != 0;
      else if constexpr (std::is_integral_v<T>) return static_cast<T>(v);
      else return static_cast<T>(static_cast<OpMath<T>>(v));
    });
  });
}

template <class T>
T bernoulli_sample(const Philox4x32& r, double p) {
  const bool one = random_math::bernoulli(r, p);
  if constexpr (std::is_same_v<T, bool>) return one;
  else if constexpr (std::is_integral_v<T>) return static_cast<T>(one);
  else return static_cast<T>(static_cast<OpMath<T>>(one));
}

void bernoulli_scalar_kernel(const Tensor& out, PhiloxSeed seed, double p) {
  visit_dtype(out.dtype(), [&]<class T>(TypeTag<T>) {
    generate<T>(out, "bernoulli_", seed,
                [=](const Philox4x32& r) { return bernoulli_sample<T>(r, p); });
  });
}

void bernoulli_tensor_kernel(const Tensor& out, PhiloxSeed seed, const Tensor& probs) {
  const double* p = out_data<double>(probs, "bernoulli_");
  visit_dtype(out.dtype(), [&]<class T>(TypeTag<T>) {
    T* o = out_data<T>(out, "bernoulli_");
    parallel_for(0, out.numel(), kRandomGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        KILN_CHECK(p[i] >= 0 && p[i] <= 1, ValueError,
                   "[bernoulli] expected all probabilities to be in [0, 1], got ", p[i]);
        o[i] = bernoulli_sample<T>(seed.block(static_cast<uint64_t>(i)), p[i]);
      }
    });
  });
}

// Fisher-Yates; swap i draws from block i. Sequential, so it is one stream anyway.
void randperm_kernel(const Tensor& out, PhiloxSeed seed) {
  const int64_t n = out.numel();
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), int64_t(0));
  for (int64_t i = n - 1; i > 0; --i) {
    const Philox4x32 r = seed.block(static_cast<uint64_t>(i));
    std::swap(perm[i], perm[bits64(r.v[0], r.v[1]) % static_cast<uint64_t>(i + 1)]);
  }
  visit_dtype(out.dtype(), [&]<class T>(TypeTag<T>) {
    T* o = out_data<T>(out, "randperm");
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(static_cast<OpMath<T>>(perm[i]));
  });
}

// probs: contiguous float64 [rows, categories]; out: int64 [rows, samples].
// With replacement: inverse CDF, sample j of row r uses block r * samples + j.
// Without: the k smallest exponential keys -log(u) / w (a weighted sample
// without replacement), key of category c in row r from block r * categories + c.
void multinomial_kernel(const Tensor& out, const Tensor& probs, PhiloxSeed seed, bool replacement) {
  const int64_t rows = probs.size(0), cats = probs.size(1), samples = out.size(1);
  const double* p = out_data<double>(probs, "multinomial");
  int64_t* o = out_data<int64_t>(out, "multinomial");
  parallel_for(0, rows, 1, [&](int64_t rb, int64_t re) {
    std::vector<double> work(cats);
    std::vector<int64_t> order(cats);
    for (int64_t r = rb; r < re; ++r) {
      const double* w = p + r * cats;
      double total = 0;
      int64_t nonzero = 0;
      for (int64_t c = 0; c < cats; ++c) {
        KILN_CHECK(std::isfinite(w[c]) && w[c] >= 0, ValueError,
                   "[multinomial] probability tensor contains either inf, nan or element < 0");
        total += w[c];
        nonzero += w[c] > 0;
      }
      KILN_CHECK(total > 0, ValueError, "[multinomial] invalid multinomial distribution (sum of "
                 "probabilities <= 0) in row ", r);
      KILN_CHECK(replacement || nonzero >= samples, ValueError, "[multinomial] row ", r, " has ",
                 nonzero, " non-zero probabilities, fewer than the ", samples,
                 " samples requested without replacement");
      int64_t* dst = o + r * samples;
      if (replacement) {
        std::partial_sum(w, w + cats, work.begin());
        for (int64_t j = 0; j < samples; ++j) {
          const Philox4x32 b = seed.block(static_cast<uint64_t>(r * samples + j));
          dst[j] = random_math::sample_category(work.data(), w, cats,
                                                uniform_double(b.v[0], b.v[1]) * total);
        }
      } else {
        for (int64_t c = 0; c < cats; ++c) {
          const Philox4x32 b = seed.block(static_cast<uint64_t>(r * cats + c));
          work[c] = random_math::exponential_key(b, w[c]);
        }
        std::iota(order.begin(), order.end(), int64_t(0));
        std::partial_sort(order.begin(), order.begin() + samples, order.end(),
                          [&](int64_t a, int64_t b) { return work[a] < work[b]; });
        std::copy(order.begin(), order.begin() + samples, dst);
      }
    }
  });
}

}  // namespace

KILN_REGISTER_KERNEL(uniform_, CPU, uniform_kernel);
KILN_REGISTER_KERNEL(normal_, CPU, normal_kernel);
KILN_REGISTER_KERNEL(random_, CPU, random_kernel);
KILN_REGISTER_KERNEL(bernoulli_scalar, CPU, bernoulli_scalar_kernel);
KILN_REGISTER_KERNEL(bernoulli_tensor, CPU, bernoulli_tensor_kernel);
KILN_REGISTER_KERNEL(randperm, CPU, randperm_kernel);
KILN_REGISTER_KERNEL(multinomial, CPU, multinomial_kernel);

}  // namespace kiln::cpu
