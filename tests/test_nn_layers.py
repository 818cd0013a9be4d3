"""kiln.nn layer modules vs torch.nn: same weights, same outputs and gradients."""

import kiln
import numpy as np
import pytest
from compare import require_torch
from kiln import nn
from nn_compare import compare_module

torch = require_torch()
tnn = torch.nn
DTYPES = ["float64", "float32"]


def arr(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3), (3,)])
def test_linear(dtype, bias, shape):
    compare_module(nn.Linear(3, 4, bias=bias), tnn.Linear(3, 4, bias=bias), [arr(*shape)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bilinear(dtype):
    compare_module(
        nn.Bilinear(3, 2, 4), tnn.Bilinear(3, 2, 4), [arr(5, 3), arr(5, 2, seed=1)], dtype
    )


CONV2D = [
    {},
    {"stride": 2, "padding": 1},
    {"padding": "same", "dilation": 2},
    {"padding": "valid", "bias": False},
    {"groups": 2, "stride": (2, 1), "padding": (1, 0)},
    {"padding": 1, "padding_mode": "reflect"},
    {"padding": 2, "padding_mode": "replicate"},
    {"padding": 1, "padding_mode": "circular"},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", CONV2D)
def test_conv2d(dtype, kw):
    compare_module(nn.Conv2d(4, 6, 3, **kw), tnn.Conv2d(4, 6, 3, **kw), [arr(2, 4, 7, 8)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"stride": 2, "padding": 1, "dilation": 2},
        {"padding": "same", "groups": 2},
        {"padding": 1, "padding_mode": "reflect"},
    ],
)
def test_conv1d(dtype, kw):
    compare_module(nn.Conv1d(4, 6, 3, **kw), tnn.Conv1d(4, 6, 3, **kw), [arr(2, 4, 9)], dtype)


def test_conv_unbatched():
    compare_module(nn.Conv2d(2, 3, 3), tnn.Conv2d(2, 3, 3), [arr(2, 5, 5)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"stride": 2, "padding": 1, "output_padding": 1},
        {"groups": 2, "dilation": 2, "bias": False},
    ],
)
def test_conv_transpose2d(dtype, kw):
    compare_module(
        nn.ConvTranspose2d(4, 6, 3, **kw),
        tnn.ConvTranspose2d(4, 6, 3, **kw),
        [arr(2, 4, 5, 6)],
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [{}, {"stride": 3, "padding": 1, "output_padding": 2}])
def test_conv_transpose1d(dtype, kw):
    compare_module(
        nn.ConvTranspose1d(2, 3, 4, **kw), tnn.ConvTranspose1d(2, 3, 4, **kw), [arr(2, 2, 7)], dtype
    )


def test_conv_transpose_output_size():
    k, t = nn.ConvTranspose2d(2, 3, 3, stride=2), tnn.ConvTranspose2d(2, 3, 3, stride=2)
    x = arr(1, 2, 4, 4)
    compare_module(lambda_mod(k, output_size=(10, 10)), lambda_mod(t, output_size=(10, 10)), [x])


class _Call:
    """Calls a module with extra keyword arguments, after an optional input transform."""

    def __init__(self, mod, pre=None, **kw):
        self.mod, self.pre, self.kw = mod, pre, kw

    def __call__(self, x):
        return self.mod(self.pre(x) if self.pre else x, **self.kw)

    def __getattr__(self, name):
        return getattr(self.mod, name)


def lambda_mod(mod, **kw):
    return _Call(mod, **kw)


def test_default_init_bounds():
    kiln.manual_seed(0)
    conv = nn.Conv2d(8, 4, 3)
    bound = 1 / np.sqrt(8 * 9)
    w = conv.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.abs(conv.bias.detach().numpy()).max() <= bound
    lin = nn.Linear(16, 3)
    assert np.abs(lin.weight.detach().numpy()).max() <= 0.25
    assert tuple(nn.ConvTranspose2d(4, 6, 3, groups=2).weight.shape) == (4, 3, 3, 3)


@pytest.mark.parametrize(
    "mod",
    [
        lambda m: m.Conv2d(3, 8, 3, stride=2, padding=1),
        lambda m: m.Conv1d(3, 8, 5, dilation=2, groups=1, bias=False),
        lambda m: m.Conv2d(4, 4, 3, padding="same", groups=2, padding_mode="reflect"),
        lambda m: m.ConvTranspose2d(3, 8, 3, stride=2, output_padding=1),
        lambda m: m.Linear(3, 4, bias=False),
        lambda m: m.Bilinear(2, 3, 4),
        lambda m: m.MaxPool2d(2),
        lambda m: m.MaxPool1d(3, stride=2, padding=1),
        lambda m: m.AvgPool2d(2),
        lambda m: m.AdaptiveAvgPool2d((2, 3)),
        lambda m: m.AdaptiveMaxPool2d(1),
        lambda m: m.LeakyReLU(0.2),
        lambda m: m.ELU(),
        lambda m: m.Hardtanh(-2.0, 2.0),
        lambda m: m.Softplus(),
        lambda m: m.GELU("tanh"),
        lambda m: m.ReLU(inplace=True),
        lambda m: m.Softmax(dim=1),
        lambda m: m.PReLU(3),
        lambda m: m.PixelShuffle(2),
        lambda m: m.Upsample(scale_factor=2, mode="nearest"),
        lambda m: m.Upsample(size=(4, 5), mode="bilinear"),
    ],
)
def test_repr_matches_torch(mod):
    assert repr(mod(nn)) == repr(mod(tnn))


POOLS = [
    (lambda m: m.MaxPool2d(2), (2, 3, 6, 7)),
    (lambda m: m.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 7, 7)),
    (lambda m: m.MaxPool2d((2, 3), dilation=2), (1, 2, 9, 9)),
    (lambda m: m.MaxPool1d(3, stride=2, padding=1), (2, 3, 10)),
    (lambda m: m.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 7, 8)),
    (lambda m: m.AvgPool2d(2, divisor_override=3), (2, 3, 6, 6)),
    (lambda m: m.AvgPool1d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 10)),
    (lambda m: m.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
    (lambda m: m.AdaptiveAvgPool2d((None, 2)), (2, 3, 7, 5)),
    (lambda m: m.AdaptiveAvgPool1d(4), (2, 3, 9)),
    (lambda m: m.AdaptiveMaxPool2d((2, 3)), (2, 3, 7, 8)),
    (lambda m: m.AdaptiveMaxPool2d(3, return_indices=True), (2, 3, 7, 8)),
    (lambda m: m.MaxPool2d(2, return_indices=True), (2, 3, 6, 6)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make,shape", POOLS)
def test_pools(dtype, make, shape):
    compare_module(make(nn), make(tnn), [arr(*shape)], dtype)


ACTIVATIONS = [
    lambda m: m.ReLU(),
    lambda m: m.ReLU6(),
    lambda m: m.LeakyReLU(0.2),
    lambda m: m.ELU(0.7),
    lambda m: m.SELU(),
    lambda m: m.GELU(),
    lambda m: m.GELU("tanh"),
    lambda m: m.SiLU(),
    lambda m: m.Mish(),
    lambda m: m.Tanh(),
    lambda m: m.Sigmoid(),
    lambda m: m.LogSigmoid(),
    lambda m: m.Hardtanh(-0.5, 2.0),
    lambda m: m.Hardswish(),
    lambda m: m.Hardsigmoid(),
    lambda m: m.Softplus(2.0, 1.0),
    lambda m: m.Softmax(dim=1),
    lambda m: m.LogSoftmax(dim=-1),
    lambda m: m.PReLU(),
    lambda m: m.PReLU(3, init=0.1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", ACTIVATIONS)
def test_activations(dtype, make):
    x = arr(2, 3, 4) * 4
    compare_module(make(nn), make(tnn), [x], dtype)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.ReLU(inplace=True),
        lambda m: m.ELU(inplace=True),
        lambda m: m.Hardswish(inplace=True),
    ],
)
def test_inplace_activation(make):
    x = arr(3, 4)
    k, t = kiln.tensor(x.copy()), torch.tensor(x.copy())
    kout, tout = make(nn)(k), make(tnn)(t)
    np.testing.assert_allclose(k.numpy(), t.numpy(), rtol=1e-12)
    np.testing.assert_allclose(kout.numpy(), tout.numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kw",
    [
        {"scale_factor": 2},
        {"size": (5, 7)},
        {"scale_factor": 2, "mode": "bilinear"},
        {"size": (5, 3), "mode": "bilinear", "align_corners": True},
        {"scale_factor": 1.5, "mode": "bilinear", "align_corners": False},
    ],
)
def test_upsample(dtype, kw):
    compare_module(nn.Upsample(**kw), tnn.Upsample(**kw), [arr(2, 3, 4, 6)], dtype)


def test_pixel_shuffle():
    compare_module(nn.PixelShuffle(2), tnn.PixelShuffle(2), [arr(2, 8, 3, 4)])
    compare_module(nn.PixelShuffle(3), tnn.PixelShuffle(3), [arr(9, 2, 2)])


def test_small_cnn_end_to_end():
    def make(m):
        return m.Sequential(
            m.Conv2d(3, 4, 3, padding=1),
            m.ReLU(),
            m.MaxPool2d(2),
            m.Conv2d(4, 8, 3),
            m.GELU(),
            m.AdaptiveAvgPool2d(1),
            m.Flatten(),
            m.Linear(8, 5),
        )

    compare_module(make(nn), make(tnn), [arr(2, 3, 8, 8)])


# ---- wrong shapes name the module -----------------------------------------------------------


def test_conv_wrong_channels_names_path():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.Conv2d(5, 2, 1))
    with pytest.raises(nn.ModuleShapeError, match=r"^3 \(Conv2d\): expected.*in_channels=5"):
        model(kiln.randn(1, 3, 10, 10))


def test_linear_wrong_features_names_nested_path():
    model = nn.Sequential(nn.Sequential(nn.Flatten(), nn.Linear(12, 4)))
    with pytest.raises(
        nn.ModuleShapeError, match=r"0\.1 \(Linear\).*in_features=12, got 15.*\[2, 15\]"
    ):
        model(kiln.randn(2, 3, 5))


def test_standalone_errors():
    with pytest.raises(nn.ModuleShapeError, match=r"^Conv1d: expected 2-D .* or 3-D"):
        nn.Conv1d(2, 2, 1)(kiln.randn(1, 2, 3, 4))
    with pytest.raises(nn.ModuleShapeError, match="MaxPool2d"):
        nn.MaxPool2d(2)(kiln.randn(4, 4))
    with pytest.raises(nn.ModuleShapeError, match="in2_features=3"):
        nn.Bilinear(2, 3, 4)(kiln.randn(5, 2), kiln.randn(5, 4))
    with pytest.raises(nn.ModuleShapeError, match="PReLU.*num_parameters=3"):
        nn.PReLU(3)(kiln.randn(2, 4))
    with pytest.raises(nn.ModuleShapeError, match="PixelShuffle"):
        nn.PixelShuffle(2)(kiln.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2d(3, 4, 3, padding="full")


def test_error_names_attribute_path():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3)
            )

        def forward(self, x):
            return self.features(x)

    with pytest.raises(nn.ModuleShapeError, match=r"^features\.3 \(Conv2d\): .*got 8 channels"):
        Net()(kiln.randn(1, 3, 12, 12))


def test_noncontiguous_module_input():
    x = arr(2, 4, 7, 8)
    compare_module(
        _Call(nn.Conv2d(8, 3, 3), pre=_channels_from_last),
        _Call(tnn.Conv2d(8, 3, 3), pre=_channels_from_last),
        [x],
    )


def _channels_from_last(x):
    return x.transpose(1, 3)


def test_more_construction_and_shape_errors():
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(nn.ModuleShapeError, match="Upsample"):
        nn.Upsample(scale_factor=2)(kiln.randn(4, 4))
