#pragma once
// The generic elementwise launcher: one output and NIn inputs of one dtype,
// walked through kiln's TensorIter (broadcasting and coalescing done on the
// host). Two kernels per instantiation:
//  - contiguous: every operand contiguous or a broadcast scalar; 16-byte
//    vector loads and stores when the pointers allow;
//  - strided: anything else, through an offset calculator.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "context.h"
#include "fast_divmod.h"
#include "kiln/dtype_dispatch.h"
#include "kiln/tensor_iter.h"

namespace kiln::cuda {

// kiln stores 16-bit floats as bits; CUDA's types have the same layout.
template <class T>
struct DeviceTypeOf {
  using type = T;
};
template <>
struct DeviceTypeOf<Half> {
  using type = __half;
};
template <>
struct DeviceTypeOf<BFloat16> {
  using type = __nv_bfloat16;
};
template <class T>
using DeviceT = typename DeviceTypeOf<T>::type;

// The type device arithmetic on T happens in (float for the 16-bit floats).
template <class T>
using MathT = std::conditional_t<std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>,
                                 float, T>;

template <class To, class From>
__device__ __forceinline__ To convert(From v) {
  if constexpr (std::is_same_v<To, From>) return v;
  else if constexpr (std::is_same_v<To, bool>) return static_cast<MathT<From>>(v) != MathT<From>(0);
  else return To(static_cast<MathT<To>>(static_cast<MathT<From>>(v)));
}

template <class T, int N>
struct Array {
  T v[N > 0 ? N : 1];
};

constexpr int kBlock = 256;
constexpr int kMaxOperands = TensorIter::kMaxOperands;

// Byte offsets of every operand for a linear index of the iteration space.
template <int N>
struct OffsetCalc {
  int ndim;
  int64_t sizes[TensorIter::kMaxDims];
  FastDivmod divisors[TensorIter::kMaxDims];  // the sizes, with index32 (see set)
  int64_t strides[TensorIter::kMaxDims][N];

  // From iter's N operands; index32: linear indices will be uint32_t (numel < 2^31).
  void set(const TensorIter& iter, bool index32) {
    ndim = iter.ndim();
    for (int d = 0; d < ndim; ++d) {
      sizes[d] = iter.size(d);
      for (int t = 0; t < N; ++t) strides[d][t] = iter.stride(t, d);
    }
    if (index32) set_divisors();
  }
  // The divisors of the sizes, for uint32_t indices (every size below 2^31).
  void set_divisors() {
    for (int d = 0; d < ndim; ++d) divisors[d] = FastDivmod(static_cast<uint32_t>(sizes[d]));
  }

  // Index: int64_t, or uint32_t where every linear index fits (set with index32):
  // this loop is all divisions, which are multiply-high and shift then.
  template <class Index>
  __device__ __forceinline__ void get(Index linear, int64_t (&off)[N]) const {
#pragma unroll
    for (int t = 0; t < N; ++t) off[t] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t i;
      if constexpr (std::is_same_v<Index, uint32_t>) {
        const uint32_t q = divisors[d].div(linear);
        i = divisors[d].mod(linear, q);
        linear = q;
      } else {
        i = linear % sizes[d];
        linear /= sizes[d];
      }
#pragma unroll
      for (int t = 0; t < N; ++t) off[t] += i * strides[d][t];
    }
  }
};

template <class Out, class In, int NIn, class F, size_t... I>
__device__ __forceinline__ Out apply(const F& f, const In (&x)[NIn > 0 ? NIn : 1],
                                     std::index_sequence<I...>) {
  using M = MathT<In>;
  auto r = f(static_cast<M>(x[I])...);
  return convert<Out, decltype(r)>(r);
}

template <class T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T v[VEC];
};

// Each thread handles VEC consecutive elements; `scalar[i]` marks inputs
// broadcast from one element.
template <int VEC, class Out, class In, int NIn, class F>
__global__ void contiguous_kernel(int64_t n, Out* out, Array<const In*, NIn> in,
                                  Array<bool, NIn> scalar, F f) {
  const int64_t base = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * VEC;
  if (base >= n) return;
  constexpr auto seq = std::make_index_sequence<NIn>{};
  if (base + VEC <= n) {
    In x[VEC][NIn > 0 ? NIn : 1];
#pragma unroll
    for (int i = 0; i < NIn; ++i) {
      if (scalar.v[i]) {
        const In s = in.v[i][0];
#pragma unroll
        for (int k = 0; k < VEC; ++k) x[k][i] = s;
      } else {
        const Vec<In, VEC> vin = *reinterpret_cast<const Vec<In, VEC>*>(in.v[i] + base);
#pragma unroll
        for (int k = 0; k < VEC; ++k) x[k][i] = vin.v[k];
      }
    }
    Vec<Out, VEC> vout;
#pragma unroll
    for (int k = 0; k < VEC; ++k) vout.v[k] = apply<Out, In, NIn>(f, x[k], seq);
    *reinterpret_cast<Vec<Out, VEC>*>(out + base) = vout;
  } else {
    for (int64_t e = base; e < n; ++e) {
      In x[NIn > 0 ? NIn : 1];
#pragma unroll
      for (int i = 0; i < NIn; ++i) x[i] = in.v[i][scalar.v[i] ? 0 : e];
      out[e] = apply<Out, In, NIn>(f, x, seq);
    }
  }
}

template <class Out, class In, int NIn, class Index, class F>
__global__ void strided_kernel(Index n, OffsetCalc<NIn + 1> calc, Array<char*, NIn + 1> ptrs,
                               F f) {
  const Index e = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n) return;
  int64_t off[NIn + 1];
  calc.get(e, off);
  In x[NIn > 0 ? NIn : 1];
#pragma unroll
  for (int i = 0; i < NIn; ++i) x[i] = *reinterpret_cast<const In*>(ptrs.v[i + 1] + off[i + 1]);
  *reinterpret_cast<Out*>(ptrs.v[0] + off[0]) =
      apply<Out, In, NIn>(f, x, std::make_index_sequence<NIn>{});
}

inline unsigned grid_for(int64_t work) {
  return static_cast<unsigned>((work + kBlock - 1) / kBlock);
}

// strided_kernel over n elements with 32-bit indices where calc was set with
// index32 (n < 2^31), else 64-bit ones.
template <class Out, class In, int NIn, class F>
void launch_strided(int64_t n, bool index32, const OffsetCalc<NIn + 1>& calc,
                    const Array<char*, NIn + 1>& ptrs, const F& f, cudaStream_t stream) {
  if (index32)
    strided_kernel<Out, In, NIn, uint32_t>
        <<<grid_for(n), kBlock, 0, stream>>>(static_cast<uint32_t>(n), calc, ptrs, f);
  else
    strided_kernel<Out, In, NIn, int64_t><<<grid_for(n), kBlock, 0, stream>>>(n, calc, ptrs, f);
}

// Blocks of kBlock threads for `n` elements; throws (naming op) past CUDA's grid limit.
inline unsigned blocks_for(int64_t n, const char* op) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  KILN_CHECK(blocks < (int64_t(1) << 31), ValueError, "[", op, "] tensor too large: ", n,
             " elements");
  return static_cast<unsigned>(blocks);
}

// Launches f over iter (operand 0 the output, operands 1..NIn the inputs),
// on the current stream of `device`. Out and In are kiln's storage types.
template <class OutK, class InK, int NIn, class F>
void launch_elementwise(const TensorIter& iter, Device device, const F& f, const char* op) {
  using Out = DeviceT<OutK>;
  using In = DeviceT<InK>;
  static_assert(NIn + 1 <= kMaxOperands, "too many operands");
  const int64_t n = iter.numel();
  if (n == 0) return;
  KILN_CHECK(n / kBlock < (int64_t(1) << 31), ValueError, "[", op, "] tensor too large: ", n,
             " elements");
  DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);

  // Contiguous: one coalesced dim where every input is dense or a scalar.
  bool contiguous = iter.ndim() == 1 && iter.stride(0, 0) == sizeof(Out);
  Array<const In*, NIn> in{};
  Array<bool, NIn> scalar{};
  for (int i = 0; i < NIn && contiguous; ++i) {
    const int64_t s = iter.stride(i + 1, 0);
    contiguous = s == sizeof(In) || s == 0;
    in.v[i] = reinterpret_cast<const In*>(iter.data(i + 1));
    scalar.v[i] = s == 0;
  }
  if (contiguous) {
    // 16 bytes of the wider of the two types per vector.
    constexpr int kVec = 16 / (sizeof(In) > sizeof(Out) ? sizeof(In) : sizeof(Out));
    constexpr size_t kInBytes = sizeof(In) * kVec, kOutBytes = sizeof(Out) * kVec;
    Out* out = reinterpret_cast<Out*>(iter.data(0));
    bool aligned = reinterpret_cast<uintptr_t>(out) % kOutBytes == 0;
    for (int i = 0; i < NIn; ++i)
      aligned &= scalar.v[i] || reinterpret_cast<uintptr_t>(in.v[i]) % kInBytes == 0;
    if (aligned) {
      contiguous_kernel<kVec, Out, In, NIn><<<grid_for((n + kVec - 1) / kVec), kBlock, 0, stream>>>(
          n, out, in, scalar, f);
      check_launch(op);
      return;
    }
  }
  const bool index32 = n <= std::numeric_limits<int32_t>::max();
  OffsetCalc<NIn + 1> calc{};
  calc.set(iter, index32);
  Array<char*, NIn + 1> ptrs{};
  for (int t = 0; t <= NIn; ++t) ptrs.v[t] = iter.data(t);
  launch_strided<Out, In, NIn>(n, index32, calc, ptrs, f, stream);
  check_launch(op);
}

}  // namespace kiln::cuda
