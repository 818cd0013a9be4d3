// Random sampling kernels. Element i draws from Philox block i of the op's
// stream exactly as the CPU kernels do (Note [Random stream layout]; the math
// is kiln/random_math.h), so one seed gives the same tensor on both devices:
// bit for bit for uniform_, random_, bernoulli, randperm and multinomial with
// replacement; normal_ and multinomial without replacement go through log/sin/
// cos, whose CUDA versions may differ from the host's in the last bit.
// Generators are per device (default_generator(cuda:i), seeded by
// kiln.cuda.manual_seed / kiln.manual_seed), each advanced once per op as on the CPU.
#include "index_common.cuh"
#include "kiln/dispatch.h"
#include "kiln/random_math.h"

namespace kiln::cuda {
namespace {

namespace rm = random_math;

template <class T, class F>
__global__ void generate_kernel(int64_t n, PhiloxSeed seed, T* out, F f) {
  const int64_t i = thread_index();
  if (i < n) out[i] = f(seed.block(static_cast<uint64_t>(i)), i);
}

// out[i] = f(seed.block(i), i) for every element of the contiguous `out`.
template <class K, class F>
void generate(const Tensor& out, PhiloxSeed seed, const F& f, const char* op) {
  KILN_CHECK(out.is_contiguous(), Error, "[", op, "] the CUDA kernel expects a contiguous output");
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(out.device());
  generate_kernel<<<blocks_for(n, op), kBlock, 0, current_stream(out.device())>>>(
      n, seed, static_cast<DeviceT<K>*>(out.data_ptr()), f);
  check_launch(op);
}

// An integer (or bool) value in T, converted as the CPU kernels convert it.
template <class T>
__device__ __forceinline__ T from_int(int64_t v) {
  if constexpr (std::is_same_v<T, bool>) return v != 0;
  else if constexpr (std::is_integral_v<T>) return static_cast<T>(v);
  else return convert<T>(static_cast<MathT<T>>(v));
}

template <class K>  // K: kiln's floating type
struct Uniform {
  using C = OpMath<K>;
  C lo, width;
  __device__ DeviceT<K> operator()(const Philox4x32& r, int64_t) const {
    return convert<DeviceT<K>>(rm::uniform<K>(r, lo, width));
  }
};

template <class T>
struct RandomInt {
  int64_t from;
  uint64_t range;
  __device__ T operator()(const Philox4x32& r, int64_t) const {
    return from_int<T>(rm::random_int(r, from, range));
  }
};

template <class T>
struct BernoulliScalar {
  double p;
  __device__ T operator()(const Philox4x32& r, int64_t) const {
    return from_int<T>(rm::bernoulli(r, p));
  }
};

// Probabilities outside [0, 1] are reported (the CPU kernel raises on them).
template <class T>
struct BernoulliTensor {
  const double* p;
  int64_t* check;
  __device__ T operator()(const Philox4x32& r, int64_t i) const {
    const double pi = p[i];
    if (!(pi >= 0 && pi <= 1)) report(check, __double_as_longlong(pi), i);
    return from_int<T>(rm::bernoulli(r, pi));
  }
};

// One thread per Box-Muller pair: elements 2j and 2j + 1 from block j.
template <class K>
__global__ void normal_kernel(int64_t n, PhiloxSeed seed, OpMath<K> mean, OpMath<K> std,
                              DeviceT<K>* out) {
  const int64_t j = thread_index();
  if (2 * j >= n) return;
  const auto pair = rm::normal_pair<K>(seed.block(static_cast<uint64_t>(j)), mean, std);
  out[2 * j] = convert<DeviceT<K>>(pair.even);
  if (2 * j + 1 < n) out[2 * j + 1] = convert<DeviceT<K>>(pair.odd);
}

// Note [multinomial checks]: one thread per row checks the row (code 1: a bad
// probability, 2: sum <= 0, 3: too few nonzero weights for the samples without
// replacement) and writes its running sums (the CPU's order, so identical).
__global__ void multinomial_rows_kernel(int64_t rows, int64_t cats, int64_t samples,
                                        bool replacement, const double* p, double* cum,
                                        int64_t* check) {
  const int64_t r = thread_index();
  if (r >= rows) return;
  const double* w = p + r * cats;
  double total = 0;
  int64_t nonzero = 0;
  for (int64_t c = 0; c < cats; ++c) {
    if (!(isfinite(w[c]) && w[c] >= 0)) return report(check, 1, r);
    total += w[c];
    cum[r * cats + c] = total;
    nonzero += w[c] > 0;
  }
  if (!(total > 0)) return report(check, 2, r);
  if (!replacement && nonzero < samples) report(check, 3, r);
}

__global__ void multinomial_replacement_kernel(int64_t rows, int64_t cats, int64_t samples,
                                               PhiloxSeed seed, const double* p,
                                               const double* cum, int64_t* out) {
  const int64_t e = thread_index();
  if (e >= rows * samples) return;
  const int64_t r = e / samples;
  const Philox4x32 b = seed.block(static_cast<uint64_t>(e));  // block r * samples + j
  const double* row_cum = cum + r * cats;
  out[e] = rm::sample_category(row_cum, p + r * cats, cats,
                               uniform_double(b.v[0], b.v[1]) * row_cum[cats - 1]);
}

__global__ void exponential_keys_kernel(int64_t n, PhiloxSeed seed, const double* p,
                                        double* keys) {
  const int64_t e = thread_index();  // block r * categories + c
  if (e < n) keys[e] = rm::exponential_key(seed.block(static_cast<uint64_t>(e)), p[e]);
}

}  // namespace

void uniform_cuda(const Tensor& out, PhiloxSeed seed, double from, double to) {
  visit_floating(out.dtype(), "uniform_", [&]<class K>(TypeTag<K>) {
    using C = OpMath<K>;
    generate<K>(out, seed, Uniform<K>{static_cast<C>(from), static_cast<C>(to - from)},
                "uniform_");
  });
}

void normal_cuda(const Tensor& out, PhiloxSeed seed, double mean, double std) {
  KILN_CHECK(out.is_contiguous(), Error, "[normal_] the CUDA kernel expects a contiguous output");
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(out.device());
  visit_floating(out.dtype(), "normal_", [&]<class K>(TypeTag<K>) {
    using C = OpMath<K>;
    normal_kernel<K><<<blocks_for((n + 1) / 2, "normal_"), kBlock, 0,
                       current_stream(out.device())>>>(
        n, seed, static_cast<C>(mean), static_cast<C>(std),
        static_cast<DeviceT<K>*>(out.data_ptr()));
  });
  check_launch("normal_");
}

void random_cuda(const Tensor& out, PhiloxSeed seed, int64_t from, uint64_t range) {
  visit_dtype(out.dtype(), [&]<class K>(TypeTag<K>) {
    generate<K>(out, seed, RandomInt<DeviceT<K>>{from, range}, "random_");
  });
}

void bernoulli_scalar_cuda(const Tensor& out, PhiloxSeed seed, double p) {
  visit_dtype(out.dtype(), [&]<class K>(TypeTag<K>) {
    generate<K>(out, seed, BernoulliScalar<DeviceT<K>>{p}, "bernoulli_");
  });
}

// probs: contiguous float64 of out's shape.
void bernoulli_tensor_cuda(const Tensor& out, PhiloxSeed seed, const Tensor& probs) {
  KILN_CHECK(probs.is_contiguous(), Error, "[bernoulli_] the CUDA kernel expects contiguous "
             "probabilities");
  DeviceCheck bad(out.device());
  visit_dtype(out.dtype(), [&]<class K>(TypeTag<K>) {
    generate<K>(out, seed, BernoulliTensor<DeviceT<K>>{probs.data<double>(), bad.ptr()},
                "bernoulli_");
  });
  bad.raise_if_reported("bernoulli_", [&](int64_t bits, int64_t) {
    double pi;
    std::memcpy(&pi, &bits, sizeof(pi));
    throw ValueError(
        detail::concat("[bernoulli] expected all probabilities to be in [0, 1], got ", pi));
  });
}

// Fisher-Yates is one sequential stream: it runs on the host with the CPU
// kernel (same numbers) and the permutation is copied to the device.
void randperm_cuda(const Tensor& out, PhiloxSeed seed) {
  static const dispatch::Op<void(const Tensor&, PhiloxSeed)> cpu_randperm("randperm");
  Tensor host = empty(out.sizes(), out.dtype());
  cpu_randperm(host.device(), host, seed);
  static const dispatch::Op<void(const Tensor&, const Tensor&, bool)> transfer("transfer");
  transfer.across_devices(out.device(), out, host, /*non_blocking=*/false);
}

// probs: contiguous float64 [rows, categories]; out: int64 [rows, samples] (the
// CPU kernel's streams). Without replacement the `samples` smallest exponential
// keys of each row are taken with the sort kernel.
void multinomial_cuda(const Tensor& out, const Tensor& probs, PhiloxSeed seed, bool replacement) {
  const char* op = "multinomial";
  const int64_t rows = probs.size(0), cats = probs.size(1), samples = out.size(1);
  if (rows == 0) return;
  const Device device = probs.device();
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  const double* p = probs.data<double>();
  Tensor cum = empty({rows, cats}, ScalarType::Float64, device);
  DeviceCheck bad(device);
  multinomial_rows_kernel<<<blocks_for(rows, op), kBlock, 0, stream>>>(
      rows, cats, samples, replacement, p, cum.data<double>(), bad.ptr());
  check_launch(op);
  bad.raise_if_reported(op, [&](int64_t code, int64_t r) {
    if (code == 1)
      throw ValueError("[multinomial] probability tensor contains either inf, nan or element < 0");
    if (code == 2)
      throw ValueError(detail::concat("[multinomial] invalid multinomial distribution (sum of "
                                      "probabilities <= 0) in row ", r));
    throw ValueError(detail::concat("[multinomial] row ", r, " has fewer non-zero probabilities "
                                    "than the ", samples,
                                    " samples requested without replacement"));
  });
  if (replacement) {
    multinomial_replacement_kernel<<<blocks_for(rows * samples, op), kBlock, 0, stream>>>(
        rows, cats, samples, seed, p, cum.data<double>(), out.data<int64_t>());
    check_launch(op);
    return;
  }
  Tensor keys = empty({rows, cats}, ScalarType::Float64, device);
  exponential_keys_kernel<<<blocks_for(rows * cats, op), kBlock, 0, stream>>>(
      rows * cats, seed, p, keys.data<double>());
  check_launch(op);
  sort_cuda(empty({rows, samples}, ScalarType::Float64, device), out, keys, samples, false);
}

KILN_REGISTER_KERNEL(uniform_, CUDA, uniform_cuda);
KILN_REGISTER_KERNEL(normal_, CUDA, normal_cuda);
KILN_REGISTER_KERNEL(random_, CUDA, random_cuda);
KILN_REGISTER_KERNEL(bernoulli_scalar, CUDA, bernoulli_scalar_cuda);
KILN_REGISTER_KERNEL(bernoulli_tensor, CUDA, bernoulli_tensor_cuda);
KILN_REGISTER_KERNEL(randperm, CUDA, randperm_cuda);
KILN_REGISTER_KERNEL(multinomial, CUDA, multinomial_cuda);

}  // namespace kiln::cuda
