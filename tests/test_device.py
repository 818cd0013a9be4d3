"""The device model on any machine: kiln.device, device= on factories, .to/.cuda/.cpu,
the cross-device check, and kiln.cuda's answers when CUDA is unavailable (this file
runs without a GPU; tests that need CUDA to be *absent* skip on GPU machines)."""

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

import kiln
from compare import require_torch

no_cuda = pytest.mark.skipif(kiln.cuda.is_available(), reason="CUDA is available here")

SPECS = ["cpu", "cuda", "cuda:0", "cuda:1", "cuda:17"]


@pytest.mark.parametrize("spec", SPECS)
def test_parse_matches_torch(spec):
    torch = require_torch()
    k, t = kiln.device(spec), torch.device(spec)
    assert (repr(k), str(k), k.type, k.index) == (repr(t), str(t), t.type, t.index)


def test_type_and_index_form():
    assert kiln.device("cuda", 1) == kiln.device("cuda:1")
    assert kiln.device("cuda", 0) != kiln.device("cuda")  # "cuda" is the current device, as torch
    assert kiln.device("cpu") == kiln.device("cpu")
    assert kiln.device("cpu") != kiln.device("cuda:0")
    assert len({kiln.device("cuda:0"), kiln.device("cuda", 0), kiln.device("cuda")}) == 2


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:1000", "CUDA", ""])
def test_bad_strings(bad):
    with pytest.raises(ValueError, match="device"):
        kiln.device(bad)


def test_bad_index():
    with pytest.raises(ValueError, match="index"):
        kiln.device("cuda", -1)


def test_cpu_tensor_device_and_moves():
    x = kiln.ones(2, 3)
    assert x.device == kiln.device("cpu") and x.is_cpu and not x.is_cuda
    assert x.cpu() is x
    assert x.to("cpu") is x
    assert x.to(kiln.device("cpu"), non_blocking=True) is x
    y = x.to("cpu", copy=True)
    assert y is not x and y.data_ptr() != x.data_ptr()
    assert x.to("cpu", kiln.float64).dtype == kiln.float64
    assert not x.is_pinned()


# ---- without CUDA --------------------------------------------------------------------

FACTORIES = {
    "empty": lambda d: kiln.empty(2, 3, device=d),
    "zeros": lambda d: kiln.zeros(2, 3, device=d),
    "ones": lambda d: kiln.ones(2, 3, device=d),
    "full": lambda d: kiln.full((2, 3), 1.5, device=d),
    "tensor": lambda d: kiln.tensor([1.0, 2.0], device=d),
    "as_tensor": lambda d: kiln.as_tensor(np.ones(3), device=d),
    "arange": lambda d: kiln.arange(5, device=d),
    "linspace": lambda d: kiln.linspace(0, 1, 5, device=d),
    "eye": lambda d: kiln.eye(3, device=d),
    "rand": lambda d: kiln.rand(2, 3, device=d),
    "randn": lambda d: kiln.randn(2, 3, device=d),
    "randint": lambda d: kiln.randint(0, 5, (3,), device=d),
    "randperm": lambda d: kiln.randperm(4, device=d),
    "empty_like": lambda d: kiln.empty_like(kiln.ones(2), device=d),
    "zeros_like": lambda d: kiln.zeros_like(kiln.ones(2), device=d),
    "ones_like": lambda d: kiln.ones_like(kiln.ones(2), device=d),
    "full_like": lambda d: kiln.full_like(kiln.ones(2), 3.0, device=d),
    "rand_like": lambda d: kiln.rand_like(kiln.ones(2), device=d),
    "randn_like": lambda d: kiln.randn_like(kiln.ones(2), device=d),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factories_take_device(name):
    t = FACTORIES[name]("cpu")
    assert t.device == kiln.device("cpu")
    t = FACTORIES[name](kiln.device("cpu"))
    assert t.device == kiln.device("cpu")


def _reason():
    return kiln.cuda.is_available(explain=True).reason


@no_cuda
@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:1"])
def test_factories_on_cuda_say_why_not(name, spec):
    with pytest.raises(RuntimeError, match="CUDA is not available|can't allocate") as e:
        FACTORIES[name](spec)
    assert "cuda" in str(e.value)


@no_cuda
@pytest.mark.parametrize("move", [
    lambda x: x.cuda(), lambda x: x.cuda(0), lambda x: x.to("cuda"),
    lambda x: x.to("cuda:0", non_blocking=True), lambda x: x.to(kiln.device("cuda", 0)),
    lambda x: x.to(device="cuda", dtype=kiln.float64),
])
def test_moves_to_cuda_say_why_not(move):
    with pytest.raises(RuntimeError, match="cuda"):
        move(kiln.ones(3))


def test_cuda_method_rejects_cpu_device():
    with pytest.raises(ValueError, match="CUDA device"):
        kiln.ones(2).cuda("cpu")


@no_cuda
def test_module_to_cuda_goes_through_tensor_to():
    m = kiln.nn.Linear(3, 2)
    for move in (lambda: m.to("cuda"), lambda: m.cuda(), lambda: m.to(device="cuda:0")):
        with pytest.raises(RuntimeError, match="cuda"):
            move()
    assert all(p.device == kiln.device("cpu") for p in m.parameters())
    assert m.to("cpu") is m


@no_cuda
def test_is_available_explains():
    assert kiln.cuda.is_available() is False
    a = kiln.cuda.is_available(explain=True)
    assert not a and a.available is False
    assert isinstance(a.reason, str) and len(a.reason) > 10
    assert a.reason in repr(a)
    assert kiln.cuda.device_count() == 0
    assert kiln.accelerator.is_available() is False
    assert kiln.accelerator.current_accelerator() is None


@no_cuda
def test_queries_answer_like_torch_without_cuda():
    assert kiln.cuda.memory_allocated() == 0
    assert kiln.cuda.max_memory_allocated() == 0
    kiln.cuda.reset_peak_memory_stats()
    kiln.cuda.empty_cache()
    kiln.cuda.manual_seed(0)
    kiln.cuda.manual_seed_all(0)


@no_cuda
@pytest.mark.parametrize("call", [
    kiln.cuda.current_device, lambda: kiln.cuda.set_device(0), kiln.cuda.get_device_name,
    kiln.cuda.synchronize, kiln.cuda.Stream, kiln.cuda.Event, kiln.cuda.current_stream,
    lambda: kiln.cuda.get_device_capability(0),
])
def test_gpu_calls_raise_with_the_reason(call):
    with pytest.raises(RuntimeError, match="CUDA is not available") as e:
        call()
    assert _reason() in str(e.value)


@no_cuda
def test_pin_memory_needs_cuda():
    with pytest.raises(RuntimeError, match="pin_memory"):
        kiln.ones(3).pin_memory()


def test_disable_env_var_explains():
    code = ("import kiln; a = kiln.cuda.is_available(explain=True); "
            "assert not a; print(a.reason)")
    env = dict(os.environ, KILN_DISABLE_CUDA="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "KILN_DISABLE_CUDA" in out.stdout


def test_allow_tf32_switch():
    m = kiln.backends.cuda.matmul
    assert m.allow_tf32 is False  # PyTorch's default
    try:
        m.allow_tf32 = True
        assert m.allow_tf32 is True
    finally:
        m.allow_tf32 = False
    assert m.allow_tf32 is False


def test_conv_allow_tf32_switch_is_separate_and_on_by_default():
    c = kiln.backends.cudnn
    assert c.allow_tf32 is True  # PyTorch's default for convolutions
    try:
        c.allow_tf32 = False
        assert c.allow_tf32 is False and kiln.backends.cuda.matmul.allow_tf32 is False
    finally:
        c.allow_tf32 = True
    assert c.allow_tf32 is True


@pytest.mark.parametrize("name,default", [("enabled", True), ("deterministic", False)])
def test_cudnn_switches_are_separate_with_pytorchs_defaults(name, default):
    c = kiln.backends.cudnn
    assert getattr(c, name) is default
    try:
        setattr(c, name, not default)
        assert getattr(c, name) is (not default)
        assert c.allow_tf32 is True and kiln.backends.cuda.matmul.allow_tf32 is False
    finally:
        setattr(c, name, default)
    assert getattr(c, name) is default


def test_cudnn_sdp_switch_is_on_by_default_and_separate():
    b = kiln.backends
    assert b.cuda.cudnn_sdp_enabled() is True  # PyTorch's default
    try:
        b.cuda.enable_cudnn_sdp(False)
        assert b.cuda.cudnn_sdp_enabled() is False
        assert b.cudnn.enabled is True and b.cuda.matmul.allow_tf32 is False
    finally:
        b.cuda.enable_cudnn_sdp(True)
    assert b.cuda.cudnn_sdp_enabled() is True


def test_cudnn_attention_built_when_expected():
    """A module built without the cudnn-frontend headers says so where it would say why
    cuDNN declined an attention; CI builds with them (KILN_CUDNN=ON)."""
    if not kiln.cuda.is_built():
        pytest.skip("kiln._C_cuda is not loaded")
    m = kiln.cuda._module
    declined = m._cudnn_attention_declined()
    built_without = "built without the cudnn-frontend headers" in declined
    if os.environ.get("KILN_EXPECT_CUDA_MODULE") == "1":
        assert not built_without, declined
    if not kiln.cuda.is_available():
        assert m._cudnn_attentions_run() == 0 and (built_without or declined == "")


def test_cudnn_benchmark_stays_off_and_warns():
    c = kiln.backends.cudnn
    assert c.benchmark is False
    with pytest.warns(UserWarning, match="heuristics"):
        c.benchmark = True
    assert c.benchmark is False
    c.benchmark = False  # no warning: it is what kiln does


def test_backend_flags_reject_unknown_names():
    if not kiln.cuda.is_built():
        pytest.skip("kiln._C_cuda is not loaded")
    with pytest.raises(ValueError, match="kiln.backends.*unknown switch"):
        kiln.cuda._module._get_flag("cudnn.benchmark")


@pytest.mark.skipif(kiln.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_cudnn_unavailable_without_cuda_says_why():
    c = kiln.backends.cudnn
    why = c.is_available(explain=True)
    assert not why and c.is_available() is False and c.version() is None
    assert why.reason == kiln.cuda.is_available(explain=True).reason


def test_cudnn_loader_names_what_is_missing():
    """Without a GPU the loader still reports on libcudnn.so.9: loaded and complete, or why
    not (a module built without cuDNN's headers says that)."""
    if not kiln.cuda.is_built():
        pytest.skip("kiln._C_cuda is not loaded")
    error, version = kiln.cuda._module._cudnn_error(), kiln.cuda._module._cudnn_version()
    if error:
        assert ("libcudnn.so.9" in error or "without cuDNN's headers" in error) and version == 0
    else:
        assert version // 10000 == 9


def test_cuda_module_built_when_expected():
    """CI builds kiln._C_cuda on every run and sets KILN_EXPECT_CUDA_MODULE=1."""
    if os.environ.get("KILN_EXPECT_CUDA_MODULE") != "1":
        pytest.skip("KILN_EXPECT_CUDA_MODULE is not set")
    assert kiln.cuda.is_built(), kiln.cuda.is_available(explain=True).reason


@pytest.mark.skipif(not kiln.cuda.is_built(), reason="kiln._C_cuda is not loaded")
@pytest.mark.parametrize("op", ["add", "mul", "div", "eq", "exp", "neg", "isnan", "softplus",
                                "copy", "transfer", "fill", "gemm", "pin_memory",
                                "is_pinned"])
def test_cuda_module_registers_kernels(op):
    # Loading the module already checked each kernel's signature against the CPU one.
    assert kiln._C._has_kernel(op, "cuda")


# CPU kernels that have no CUDA kernel yet (issue 6's known gaps). The test below fails
# when a new CPU kernel lands without its CUDA twin, and when a gap closes without this
# list shrinking, so it always says exactly what is missing.
NOT_YET_ON_CUDA = set()
# Kernels that exist only for CUDA (pinned host memory, moves between devices, and the
# fused attention, which the CPU composes from other ops).
CUDA_ONLY = {"pin_memory", "is_pinned", "transfer", "attention", "attention_backward"}


@pytest.mark.skipif(not kiln.cuda.is_built(), reason="kiln._C_cuda is not loaded")
def test_every_cpu_kernel_has_a_cuda_kernel():
    # Extension ops ("ns::op") that other tests of this process registered are not kiln's.
    def builtin(device):
        return {op for op in kiln._C._ops_with_kernel(kiln.device(device)) if "::" not in op}

    cpu, cuda = builtin("cpu"), builtin("cuda")
    assert sorted(cpu - cuda) == sorted(NOT_YET_ON_CUDA)
    assert sorted(cuda - cpu) == sorted(CUDA_ONLY)


# ---- the cross-device check, with a CUDA tensor that only claims to be one -----------


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


_keep = []  # the fake tensors' memory lives as long as the test process


def fake_cuda_tensor(n=3, index=0):
    """A float32 tensor whose storage says cuda:index (host memory, never read)."""
    buf = (ctypes.c_float * n)()
    shape = (ctypes.c_int64 * 1)(n)
    m = _DLManagedTensor()
    m.dl_tensor = _DLTensor(ctypes.cast(buf, ctypes.c_void_p), _DLDevice(2, index), 1,
                            _DLDataType(2, 32, 1), shape, None, 0)
    _keep.extend([buf, shape, m])
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    return kiln.from_dlpack(new(ctypes.addressof(m), b"dltensor", None))


@pytest.fixture
def fake():
    if kiln.cuda.is_available():
        pytest.skip("a real GPU would try to read the fake tensor's host memory")
    return fake_cuda_tensor()


def test_fake_cuda_tensor_reports_its_device(fake):
    assert fake.device == kiln.device("cuda:0") and fake.is_cuda and not fake.is_cpu


MIXED = {
    "add": lambda c, g: c + g,
    "mul_reversed": lambda c, g: g * c,
    "sub_": lambda c, g: c.sub_(g),
    "maximum": lambda c, g: kiln.maximum(c, g),
    "where": lambda c, g: kiln.where(c > 0, c, g),
    "matmul": lambda c, g: c @ g,
    "dot": lambda c, g: kiln.dot(c, g),
    "cat": lambda c, g: kiln.cat([c, g]),
    "clamp": lambda c, g: kiln.clamp(c, min=g),
    "lerp": lambda c, g: kiln.lerp(c, g, 0.5),
    "mse_loss": lambda c, g: kiln.nn.functional.mse_loss(c, g),
    "index_select": lambda c, g: kiln.index_select(g, 0, c.long()),
    "embedding": lambda c, g: kiln.nn.functional.embedding(c.long(), g.reshape(3, 1)),
    "softmax_backward": lambda c, g: kiln.softmax(c.requires_grad_(), 0).backward(g),
}


@pytest.mark.parametrize("name", sorted(MIXED))
def test_mixed_devices_name_both(fake, name):
    with pytest.raises((RuntimeError, ValueError, NotImplementedError)) as e:
        MIXED[name](kiln.ones(3), fake)
    msg = str(e.value)
    if isinstance(e.value, NotImplementedError):  # reached a CUDA-only kernel that isn't loaded
        assert "cuda" in msg
    else:
        assert "cpu" in msg and "cuda:0" in msg, msg
