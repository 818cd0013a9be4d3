"""kiln.utils.cpp_extension's builds: caching, rebuilds, concurrent loads, compiler
errors, missing tools, the CUDA variant, and examples/extension as a wheel."""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import kiln
import kiln.utils
import numpy as np
import pytest
from kiln.utils import _cpp_toolchain, cpp_extension

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "extension"

TRIPLE = "kiln::Tensor triple(const kiln::Tensor& x) { return x * 3.0; }\n"

LOADER = textwrap.dedent("""
    import sys, time
    import kiln
    from kiln.utils.cpp_extension import load_inline
    source = open(sys.argv[2]).read()
    start = time.perf_counter()
    ext = load_inline("cached_ext", source, functions=["triple"], build_directory=sys.argv[1])
    took = time.perf_counter() - start
    print(ext.triple(kiln.ones(2)).tolist(), f"load took {took:.3f}s")
""")


@pytest.fixture
def logging_cxx(tmp_path, monkeypatch):
    """A C++ compiler (CXX) that logs every compile or link it runs."""
    log = tmp_path / "compiler_calls.log"
    wrapper = tmp_path / "logging-c++"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" != "--version" ]; then echo "$@" >> "{log}"; fi
        exec {shutil.which("c++")} "$@"
    """))
    wrapper.chmod(0o755)
    monkeypatch.setenv("CXX", str(wrapper))
    return log


def compiles(log):
    return [line for line in log.read_text().splitlines() if " -c " in line] if log.exists() else []


def run_loader(tmp_path, build_dir, **popen):
    (tmp_path / "loader.py").write_text(LOADER)
    (tmp_path / "source.cpp").write_text(TRIPLE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen([sys.executable, str(tmp_path / "loader.py"), str(build_dir),
                             str(tmp_path / "source.cpp")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def finish(proc):
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "[3.0, 3.0]" in out
    return out


def test_second_load_is_cached_without_running_the_compiler(tmp_path, logging_cxx):
    build_dir = tmp_path / "build"
    finish(run_loader(tmp_path, build_dir))
    assert len(compiles(logging_cxx)) == 1
    calls = logging_cxx.read_text()
    out = finish(run_loader(tmp_path, build_dir))  # a new process: nothing loaded yet
    assert logging_cxx.read_text() == calls, "the cached load ran the compiler"
    print(out)  # "load took ..." (well under a second; tests don't assert timings)


def test_two_processes_loading_at_once_both_succeed(tmp_path, logging_cxx):
    build_dir = tmp_path / "build"
    procs = [run_loader(tmp_path, build_dir) for _ in range(2)]
    for p in procs:
        finish(p)
    assert len(compiles(logging_cxx)) == 1  # the second waited on the lock, then loaded


def test_source_change_rebuilds(tmp_path):
    build_dir = str(tmp_path)
    src = "kiln::Tensor scale(const kiln::Tensor& x) {{ return x * {}; }}"
    first = cpp_extension.load_inline("rebuild_ext", src.format(2.0), functions=["scale"],
                                      build_directory=build_dir)
    assert first.scale(kiln.ones(1)).item() == 2.0
    second = cpp_extension.load_inline("rebuild_ext", src.format(5.0), functions=["scale"],
                                       build_directory=build_dir)
    assert second.__file__ != first.__file__
    assert second.scale(kiln.ones(1)).item() == 5.0
    assert kiln.ops.rebuild_ext.scale(kiln.ones(1)).item() == 5.0  # the op was redefined
    assert [f for f in os.listdir(build_dir) if f.endswith(".so")] == [
        os.path.basename(second.__file__)]  # the stale library is gone


def test_new_kiln_version_or_compiler_rebuilds(tmp_path, logging_cxx, monkeypatch):
    def load():
        return cpp_extension.load_inline("version_ext", TRIPLE, functions=["triple"],
                                         build_directory=str(tmp_path / "build"))

    base = load()
    assert load().__file__ == base.__file__
    monkeypatch.setattr(kiln, "__version__", kiln.__version__ + ".post1")
    bumped = load()
    assert bumped.__file__ != base.__file__
    assert len(compiles(logging_cxx)) == 2
    monkeypatch.setenv("CXX", shutil.which("c++"))
    assert load().__file__ != bumped.__file__
    assert bumped.triple(kiln.ones(1)).item() == 3.0


def test_compile_error_starts_with_the_compilers_message(tmp_path):
    src = "kiln::Tensor broken(const kiln::Tensor& x) {\n  return x +;\n}\n"
    with pytest.raises(cpp_extension.BuildError) as info:
        cpp_extension.load_inline("broken_ext", src, functions=["broken"],
                                  build_directory=str(tmp_path))
    message = str(info.value)
    first = message.splitlines()[0]
    main = os.path.join(os.path.realpath(tmp_path), "main.cpp")
    assert first.startswith(main), message
    assert f"{main}:2:" in message and "error:" in message  # the line as the user wrote it
    compiler_part = message.split("[cpp_extension]")[0]
    assert "FAILED" not in compiler_part and "ninja" not in compiler_part
    assert isinstance(info.value, RuntimeError)
    assert (tmp_path / "build.log").exists()


def test_missing_compiler_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++-13")
    with pytest.raises(RuntimeError, match=r"no C\+\+ compiler: '/nonexistent/c\+\+-13' was "
                                           r"not found on PATH"):
        cpp_extension.load_inline("no_cxx_ext", TRIPLE, functions=["triple"],
                                  build_directory=str(tmp_path))


def test_missing_nvcc_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(_cpp_toolchain, "_nvcc_candidates", list)
    with pytest.raises(RuntimeError, match=r"CUDA sources need nvcc, the CUDA compiler, which "
                                           r"was not found"):
        cpp_extension.load_inline("no_nvcc_ext", TRIPLE, cuda_sources="__global__ void k() {}",
                                  functions=["triple"], build_directory=str(tmp_path))


def reference_bias_gelu(x, b):
    torch = pytest.importorskip("torch")
    return torch.nn.functional.gelu(x + b, approximate="tanh")


@pytest.fixture(scope="module")
def fused_jit(tmp_path_factory):
    """The example's .cpp and .cu built by load(with_cuda=True): CI compiles the CUDA variant."""
    if _cpp_toolchain.find_nvcc() is None:
        pytest.skip("nvcc not found")
    src = EXAMPLE / "src"
    return cpp_extension.load("kiln_fused_jit", [src / "bias_gelu.cpp", src / "bias_gelu.cu"],
                              extra_include_paths=[str(src)], with_cuda=True,
                              build_directory=str(tmp_path_factory.mktemp("fused_jit")))


def test_cuda_variant_compiles_and_runs_its_cpu_kernel(fused_jit):
    torch = pytest.importorskip("torch")
    assert b"libcudart" in Path(fused_jit.__file__).read_bytes()
    x = kiln.randn(4, 5, dtype=kiln.float64, requires_grad=True)
    b = kiln.randn(5, dtype=kiln.float64, requires_grad=True)
    y = fused_jit.bias_gelu(x, b)
    tx = torch.tensor(x.detach().numpy(), requires_grad=True)
    tb = torch.tensor(b.detach().numpy(), requires_grad=True)
    ty = reference_bias_gelu(tx, tb)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-10)
    assert kiln.autograd.gradcheck(fused_jit.bias_gelu, (x, b))
    with pytest.raises(ValueError, match=r"\[kiln_fused::bias_gelu\] expected a 1-d bias"):
        fused_jit.bias_gelu(x, kiln.randn(4, dtype=kiln.float64))


@pytest.mark.cuda
def test_cuda_variant_runs_on_the_gpu(fused_jit):
    x, b = kiln.randn(1000, 33), kiln.randn(33)
    y = fused_jit.bias_gelu(x.to("cuda"), b.to("cuda"))
    np.testing.assert_allclose(y.cpu().numpy(), fused_jit.bias_gelu(x, b).numpy(), rtol=1e-5,
                               atol=1e-6)


USE_EXAMPLE = textwrap.dedent("""
    import kiln, kiln_fused
    from kiln import nn
    kiln.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16, bias=False), kiln_fused.BiasGELU(16), nn.Linear(16, 1))
    opt = kiln.optim.SGD(model.parameters(), lr=0.05)
    x, y = kiln.randn(64, 3), kiln.randn(64, 1)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    assert model[1].bias.grad is not None
    print("trained", losses[0], losses[-1])
""")


@pytest.mark.slow
def test_example_project_builds_as_a_wheel_and_trains(tmp_path):
    if not os.path.isdir(kiln.utils.cmake_prefix_path):
        pytest.skip("kiln runs from a development tree (no installed CMake package)")
    pytest.importorskip("scikit_build_core")
    env = dict(os.environ)
    nvcc = _cpp_toolchain.find_nvcc()
    if nvcc:
        env["CUDACXX"] = nvcc
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation",
                           "--no-deps", str(EXAMPLE), "-w", str(tmp_path / "dist")],
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("kiln_fused-*.whl")
    with zipfile.ZipFile(wheel) as z:
        lib = z.read("kiln_fused/fused_ops.so")
    assert (b"libcudart" in lib) == bool(nvcc)  # the CUDA kernel is in when nvcc is there
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(tmp_path / "site"), str(wheel)], check=True, timeout=300)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), *sys.path])
    proc = subprocess.run([sys.executable, "-c", USE_EXAMPLE], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "trained" in proc.stdout
