"""cuda/fast_divmod.h, the multiply-and-shift division of the CUDA index math, compiled
for the CPU: quotients and remainders equal integer division over the range the kernels
use it for (dividends below 2^31, divisors up to 2^31)."""

from pathlib import Path

import kiln
import numpy as np
import pytest
from kiln.utils import cpp_extension

SOURCE = r"""
#include "fast_divmod.h"

// out[i] = (n[i] / d[i], n[i] % d[i]) through FastDivmod; n, d int64, contiguous.
kiln::Tensor fast_divmod(const kiln::Tensor& n, const kiln::Tensor& d) {
  kiln::Tensor out = kiln::empty({n.numel(), 2}, kiln::ScalarType::Int64);
  const int64_t* pn = n.data<int64_t>();
  const int64_t* pd = d.data<int64_t>();
  int64_t* po = out.data<int64_t>();
  for (int64_t i = 0; i < n.numel(); ++i) {
    const kiln::cuda::FastDivmod f(static_cast<uint32_t>(pd[i]));
    const uint32_t q = f.div(static_cast<uint32_t>(pn[i]));
    po[2 * i] = q;
    po[2 * i + 1] = f.mod(static_cast<uint32_t>(pn[i]), q);
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    return cpp_extension.load_inline(
        "fast_divmod_check", SOURCE, functions=["fast_divmod"],
        extra_include_paths=[str(Path(__file__).resolve().parents[1] / "cuda")],
        build_directory=str(tmp_path_factory.mktemp("fast_divmod")))


def test_matches_integer_division(ext):
    rng = np.random.default_rng(0)
    top = (1 << 31) - 1
    edges = np.array([1, 2, 3, 5, 7, 31, 32, 33, 64, 127, 1000, 65535, 65536, 65537,
                      (1 << 30) - 1, 1 << 30, (1 << 30) + 1, top - 1, top, 1 << 31])
    divisors = np.concatenate([edges, rng.integers(1, 1 << 31, 4000, endpoint=True),
                               rng.integers(1, 4096, 4000)])
    # For each divisor: dividends at the extremes, around its multiples, and at random.
    ns, ds = [], []
    for d in divisors:
        k = rng.integers(0, top // d + 1, 4)
        around = np.concatenate([k * d - 1, k * d, k * d + 1])
        cand = np.concatenate([[0, 1, top - 1, top, d - 1, d, d + 1], around,
                               rng.integers(0, top, 4, endpoint=True)])
        cand = cand[(cand >= 0) & (cand <= top)]
        ns.append(cand)
        ds.append(np.full(cand.shape, d))
    n, d = np.concatenate(ns).astype(np.int64), np.concatenate(ds).astype(np.int64)
    out = ext.fast_divmod(kiln.tensor(n), kiln.tensor(d)).numpy()
    np.testing.assert_array_equal(out[:, 0], n // d)
    np.testing.assert_array_equal(out[:, 1], n % d)
