"""Custom-op build speed: kiln.utils.cpp_extension.load_inline against torch's.

Targets (issue 8): first build <= 0.5x PyTorch's, cached load <= 0.3 s.

    python -m benchmarks.extension_suite [--json out.json]

The same small op (y = alpha * silu(x), a raw CPU loop, with a backward) is built by
each library in a fresh build directory, then loaded again from its cache. Every
timing runs in a new process (as a user's next run would) and covers only the
load_inline call, not `import kiln` / `import torch`. Builds run alternately.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

KILN_SOURCE = r"""
kiln::Tensor scaled_silu(const kiln::Tensor& x, double alpha) {
  kiln::Tensor xc = kiln::contiguous(x), y = kiln::empty_like(xc);
  const float* a = xc.data<float>();
  float* b = y.data<float>();
  for (int64_t i = 0; i < xc.numel(); ++i) b[i] = alpha * a[i] / (1 + std::exp(-a[i]));
  return y;
}
KILN_LIBRARY(bench_ext, m) {
  m.def("scaled_silu", scaled_silu).backward([](const kiln::BackwardContext& c) -> kiln::TensorList {
    kiln::Tensor s = kiln::sigmoid(c.input(0));
    return {c.grad() * c.arg<double>(1) * s * (c.input(0) * (1 - s) + 1), {}};
  });
}
"""

TORCH_SOURCE = r"""
struct ScaledSilu : torch::autograd::Function<ScaledSilu> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x,
                               double alpha) {
    ctx->save_for_backward({x});
    ctx->saved_data["alpha"] = alpha;
    auto xc = x.contiguous();
    auto y = torch::empty_like(xc);
    const float* a = xc.data_ptr<float>();
    float* b = y.data_ptr<float>();
    for (int64_t i = 0; i < xc.numel(); ++i) b[i] = alpha * a[i] / (1 + std::exp(-a[i]));
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    auto x = ctx->get_saved_variables()[0];
    double alpha = ctx->saved_data["alpha"].toDouble();
    auto s = torch::sigmoid(x);
    return {g[0] * alpha * s * (1 + x * (1 - s)), torch::Tensor()};
  }
};
torch::Tensor scaled_silu(torch::Tensor x, double alpha) { return ScaledSilu::apply(x, alpha); }
"""

RUNNER = textwrap.dedent("""
    import sys, time
    lib, source, build_dir = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
    if lib == "kiln":
        import kiln as m
        from kiln.utils.cpp_extension import load_inline
        kw = {}
    else:
        import torch as m
        from torch.utils.cpp_extension import load_inline
        kw = {"functions": ["scaled_silu"]}
    start = time.perf_counter()
    ext = load_inline("bench_ext", source, build_directory=build_dir, **kw)
    took = time.perf_counter() - start
    x = m.randn(8, requires_grad=True)
    ext.scaled_silu(x, 2.0).sum().backward()
    assert x.grad is not None
    print(took)
""")


def _time(lib, source_path, build_dir):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", RUNNER, lib, source_path, build_dir],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{lib} load_inline failed:\n{proc.stdout}{proc.stderr}")
    return float(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.extension_suite",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    from benchmarks import machine

    libs = ["kiln"]
    try:
        import torch.utils.cpp_extension  # noqa: F401

        libs.append("torch")
    except ImportError:
        pass
    info = machine.describe()
    print(machine.format_description(info))
    rows = {"first build": {}, "cached load": {}}
    with tempfile.TemporaryDirectory() as tmp:
        sources = {}
        for lib in libs:
            sources[lib] = os.path.join(tmp, f"{lib}.cpp")
            with open(sources[lib], "w") as f:
                f.write(KILN_SOURCE if lib == "kiln" else TORCH_SOURCE)
            os.makedirs(os.path.join(tmp, lib))
        for case, times in rows.items():
            for lib in libs:
                times[lib] = _time(lib, sources[lib], os.path.join(tmp, lib))
                print(f"  {lib} {case}: {times[lib]:.3f} s", file=sys.stderr, flush=True)
    print(f"{'case':<14}{'kiln':>10}{'torch':>10}{'ratio':>8}")
    for case, t in rows.items():
        torch_t = t.get("torch")
        ratio = f"{t['kiln'] / torch_t:.2f}" if torch_t else "-"
        torch_s = f"{torch_t:.3f} s" if torch_t else "-"
        print(f"{case:<14}{t['kiln']:>8.3f} s{torch_s:>10}{ratio:>8}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"suite": "extension", "machine": info, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
