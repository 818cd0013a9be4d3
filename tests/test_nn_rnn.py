"""kiln.nn recurrent modules (RNN/LSTM/GRU and cells) vs torch.nn: same weights, same outputs,
final states, and gradients of inputs, initial states and every parameter."""

import itertools
import warnings

import kiln
import numpy as np
import pytest
from compare import assert_close, require_torch
from kiln import nn
from nn_compare import TOL, copy_module

torch = require_torch()
tnn = torch.nn
DTYPES = ["float64", "float32"]
LOOSE = {"float64": TOL["float64"], "float32": {"rtol": 1e-4, "atol": 5e-5}}


def arr(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _flatten(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flatten(o)]
    return [out]


def _leaf(a, dtype):
    a = np.asarray(a).astype(dtype)
    return (
        kiln.tensor(a.copy()).requires_grad_(True),
        torch.tensor(a.copy()).requires_grad_(True),
    )


def run_both(kmod, tmod, x, hx=None, dtype="float64", seed=3):
    """Runs kmod(x, hx) and tmod(x, hx) with tmod's weights copied to kmod; compares every output
    and, after backpropagating random cotangents through all of them, the gradients of x, of the
    initial states and of every parameter."""
    tol = LOOSE[dtype]
    copy_module(kmod, tmod, dtype)
    kx, tx = _leaf(x, dtype)
    kh = th = None
    leaves = [(kx, tx)]
    if hx is not None:
        pairs = [_leaf(h, dtype) for h in (hx if isinstance(hx, tuple) else (hx,))]
        leaves += pairs
        kh, th = [p[0] for p in pairs], [p[1] for p in pairs]
        kh, th = (tuple(kh), tuple(th)) if isinstance(hx, tuple) else (kh[0], th[0])
    kouts, touts = _flatten(kmod(kx, kh)), _flatten(tmod(tx, th))
    assert len(kouts) == len(touts)
    rng = np.random.default_rng(seed)
    kloss, tloss = 0, 0
    for k, t in zip(kouts, touts):
        assert tuple(k.shape) == tuple(t.shape)
        assert_close(k, t, **tol)
        g = rng.standard_normal(tuple(t.shape)).astype(dtype)
        kloss = kloss + (k * kiln.tensor(g)).sum()
        tloss = tloss + (t * torch.tensor(g)).sum()
    kloss.backward()
    tloss.backward()
    for k, t in leaves:
        assert_close(k.grad, t.grad, **tol)
    kparams = dict(kmod.named_parameters())
    assert list(kparams) == [n for n, _ in tmod.named_parameters()]
    for name, tp in tmod.named_parameters():
        assert_close(kparams[name].grad, tp.grad, **tol)
    return kouts


SEQ = [(nn.RNN, tnn.RNN, {}), (nn.LSTM, tnn.LSTM, {}), (nn.GRU, tnn.GRU, {})]
SEQ += [(nn.RNN, tnn.RNN, {"nonlinearity": "relu"})]
SEQ_IDS = ["rnn_tanh", "lstm", "gru", "rnn_relu"]


def _states(kind, shape, seed=7):
    if kind is nn.LSTM:
        return (arr(*shape, seed=seed), arr(*shape, seed=seed + 1))
    return arr(*shape, seed=seed)


CONFIGS = list(
    itertools.product(
        [1, 2],  # num_layers
        [False, True],  # bidirectional
        [False, True],  # batch_first
        [True, False],  # bias
        [False, True],  # initial states given
    )
)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: "L{}-bi{}-bf{}-b{}-h{}".format(*map(int, c))
)
@pytest.mark.parametrize("kinds", SEQ, ids=SEQ_IDS)
def test_sequence_batched(kinds, config, dtype):
    kcls, tcls, extra = kinds
    layers, bidir, batch_first, bias, with_h = config
    kw = dict(num_layers=layers, bidirectional=bidir, batch_first=batch_first, bias=bias, **extra)
    seq, batch, hidden = 5, 3, 4
    x = arr(batch, seq, 3) if batch_first else arr(seq, batch, 3)
    hx = _states(kcls, ((2 if bidir else 1) * layers, batch, hidden)) if with_h else None
    run_both(kcls(3, hidden, **kw), tcls(3, hidden, **kw), x, hx, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "config", [(1, False, False), (2, True, True), (2, False, True), (1, True, False)]
)
@pytest.mark.parametrize("kinds", SEQ, ids=SEQ_IDS)
def test_sequence_unbatched(kinds, config, dtype):
    kcls, tcls, extra = kinds
    layers, bidir, with_h = config
    kw = dict(num_layers=layers, bidirectional=bidir, **extra)
    hx = _states(kcls, ((2 if bidir else 1) * layers, 4)) if with_h else None
    for batch_first in (False, True):
        run_both(
            kcls(3, 4, batch_first=batch_first, **kw),
            tcls(3, 4, batch_first=batch_first, **kw),
            arr(6, 3),
            hx,
            dtype,
        )


@pytest.mark.parametrize("kinds", SEQ, ids=SEQ_IDS)
def test_sequence_length_one_and_batch_one(kinds):
    kcls, tcls, extra = kinds
    run_both(
        kcls(2, 3, num_layers=2, bidirectional=True, **extra),
        tcls(2, 3, num_layers=2, bidirectional=True, **extra),
        arr(1, 1, 2),
        None,
    )


@pytest.mark.parametrize("kinds", SEQ, ids=SEQ_IDS)
def test_dropout_eval_matches_torch(kinds):
    kcls, tcls, extra = kinds
    kmod = kcls(3, 4, num_layers=3, dropout=0.5, **extra).eval()
    tmod = tcls(3, 4, num_layers=3, dropout=0.5, **extra).eval()
    run_both(kmod, tmod, arr(5, 2, 3), None)


def test_dropout_training_is_random_and_only_between_layers():
    kiln.manual_seed(0)
    mod = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = kiln.tensor(arr(5, 2, 3).astype("float32"))
    a, b = mod(x)[0], mod(x)[0]
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    mod.eval()
    assert np.allclose(mod(x)[0].detach().numpy(), mod(x)[0].detach().numpy())
    # One layer: dropout has nothing to act on (torch warns about it too).
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        single = nn.GRU(3, 4, dropout=0.5)
    assert np.allclose(single(x)[0].detach().numpy(), single(x)[0].detach().numpy())


CELLS = [
    (nn.RNNCell, tnn.RNNCell, {}),
    (nn.RNNCell, tnn.RNNCell, {"nonlinearity": "relu"}),
    (nn.LSTMCell, tnn.LSTMCell, {}),
    (nn.GRUCell, tnn.GRUCell, {}),
]
CELL_IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_h", [False, True])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("kinds", CELLS, ids=CELL_IDS)
def test_cell(kinds, batched, with_h, bias, dtype):
    kcls, tcls, extra = kinds
    shape = (3, 5) if batched else (5,)
    x = arr(*shape[:-1], 4)
    hx = None
    if with_h:
        hx = (
            (arr(*shape, seed=1), arr(*shape, seed=2))
            if kcls is nn.LSTMCell
            else arr(*shape, seed=1)
        )
    run_both(kcls(4, 5, bias=bias, **extra), tcls(4, 5, bias=bias, **extra), x, hx, dtype)


def test_cell_unrolled_equals_sequence_module():
    # An LSTMCell run over time with the layer's weights gives the LSTM's output.
    lstm, cell = nn.LSTM(3, 4).to(kiln.float64), nn.LSTMCell(3, 4).to(kiln.float64)
    cell.load_state_dict({k[:-3]: v for k, v in lstm.state_dict().items()})
    x = kiln.tensor(arr(6, 2, 3))
    state = None
    outs = []
    for t in x.unbind(0):
        state = cell(t, state)
        outs.append(state[0])
    out, (_, c) = lstm(x)
    assert_close(kiln.stack(outs, 0), out, rtol=1e-12, atol=1e-12)
    assert_close(state[1], c[0], rtol=1e-12, atol=1e-12)


def test_parameters_names_shapes_and_init():
    torch.manual_seed(0)
    for kcls, tcls, extra in SEQ:
        k = kcls(3, 5, num_layers=2, bidirectional=True, **extra)
        t = tcls(3, 5, num_layers=2, bidirectional=True, **extra)
        kp, tp = dict(k.named_parameters()), dict(t.named_parameters())
        assert list(kp) == list(tp)
        bound = 1 / np.sqrt(5)
        for name, tparam in tp.items():
            assert tuple(kp[name].shape) == tuple(tparam.shape)
            values = kp[name].detach().numpy()
            assert values.min() >= -bound and values.max() <= bound and values.std() > 0.05
        assert len(k.all_weights) == 4 and len(k.all_weights[0]) == 4
    no_bias = nn.LSTM(3, 5, bias=False, bidirectional=True)
    assert [n for n, _ in no_bias.named_parameters()] == [
        n for n, _ in tnn.LSTM(3, 5, bias=False, bidirectional=True).named_parameters()
    ]
    for kcls, tcls, extra in CELLS:
        for bias in (True, False):
            k, t = kcls(3, 5, bias=bias, **extra), tcls(3, 5, bias=bias, **extra)
            assert [(n, tuple(p.shape)) for n, p in k.named_parameters()] == [
                (n, tuple(p.shape)) for n, p in t.named_parameters()
            ]
            assert k.bias_ih is None if not bias else k.bias_ih is not None


def test_reprs_match_torch():
    cases = [
        ((3, 4), {}),
        (
            (3, 4),
            {
                "num_layers": 2,
                "bias": False,
                "batch_first": True,
                "dropout": 0.25,
                "bidirectional": True,
            },
        ),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for (kcls, tcls, extra), (args, kw) in itertools.product(SEQ, cases):
            assert repr(kcls(*args, **kw, **extra)) == repr(tcls(*args, **kw, **extra))
    for kcls, tcls, extra in CELLS:
        for bias in (True, False):
            assert repr(kcls(3, 4, bias=bias, **extra)) == repr(tcls(3, 4, bias=bias, **extra))


def test_wrong_input_shapes_raise():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(nn.ModuleShapeError, match=r"^LSTM: expected 2-D \(unbatched\) or 3-D"):
        lstm(kiln.zeros(2, 3, 4, 3))
    with pytest.raises(nn.ModuleShapeError, match=r"input_size=3, got 5, input shape \[6, 2, 5\]"):
        lstm(kiln.zeros(6, 2, 5))
    h = kiln.zeros(2, 2, 4)
    with pytest.raises(nn.ModuleShapeError, match=r"h_0 of shape \[2, 3, 4\], got \[2, 2, 4\]"):
        lstm(kiln.zeros(6, 3, 3), (h, h))
    with pytest.raises(nn.ModuleShapeError, match=r"c_0 of shape \[2, 2, 4\], got \[1, 2, 4\]"):
        lstm(kiln.zeros(6, 2, 3), (h, kiln.zeros(1, 2, 4)))
    with pytest.raises(nn.ModuleShapeError, match=r"h_0 2-D for unbatched 2-D input, got 3-D"):
        lstm(kiln.zeros(6, 3), (h, h))
    with pytest.raises(TypeError, match=r"LSTM: LSTM expects hx as a tuple"):
        lstm(kiln.zeros(6, 2, 3), h)
    gru = nn.GRU(3, 4, batch_first=True)
    with pytest.raises(nn.ModuleShapeError, match=r"h_0 of shape \[1, 2, 4\], got \[1, 6, 4\]"):
        gru(kiln.zeros(2, 6, 3), kiln.zeros(1, 6, 4))
    with pytest.raises(nn.ModuleShapeError, match=r"h_0 3-D for batched 3-D input, got 2-D"):
        gru(kiln.zeros(2, 6, 3), kiln.zeros(1, 4))
    with pytest.raises(
        ValueError, match=r"input dtype kiln.float64 does not match weight dtype kiln.float32"
    ):
        lstm(kiln.zeros(6, 2, 3, dtype=kiln.float64))
    with pytest.raises(ValueError, match=r"^GRU: h_0 dtype kiln.float64 does not match"):
        gru(kiln.zeros(2, 6, 3), kiln.zeros(1, 2, 4, dtype=kiln.float64))
    # The error names the module's path inside its parent.
    model = nn.Sequential(nn.Linear(3, 3), nn.RNN(4, 2))
    with pytest.raises(
        nn.ModuleShapeError, match=r"^1 \(RNN\): expected input with last dim input_size=4"
    ):
        model(kiln.zeros(5, 2, 3))


def test_cell_wrong_shapes_raise():
    cell = nn.GRUCell(3, 4)
    with pytest.raises(nn.ModuleShapeError, match=r"^GRUCell: expected 1-D \(unbatched\) or 2-D"):
        cell(kiln.zeros(2, 2, 3))
    with pytest.raises(nn.ModuleShapeError, match=r"input_size=3, got 5, input shape \[2, 5\]"):
        cell(kiln.zeros(2, 5))
    with pytest.raises(nn.ModuleShapeError, match=r"hx of shape \[2, 4\], got \[3, 4\]"):
        cell(kiln.zeros(2, 3), kiln.zeros(3, 4))
    with pytest.raises(nn.ModuleShapeError, match=r"hx of shape \[4\], got \[1, 4\]"):
        cell(kiln.zeros(3), kiln.zeros(1, 4))
    lstm_cell = nn.LSTMCell(3, 4)
    with pytest.raises(nn.ModuleShapeError, match=r"hx\[1\] of shape \[2, 4\], got \[2, 5\]"):
        lstm_cell(kiln.zeros(2, 3), (kiln.zeros(2, 4), kiln.zeros(2, 5)))
    with pytest.raises(ValueError, match="^LSTMCell: input dtype kiln.float64 does not match"):
        lstm_cell(kiln.zeros(2, 3, dtype=kiln.float64))
    with pytest.raises(TypeError, match="LSTMCell expects hx as a tuple"):
        lstm_cell(kiln.zeros(2, 3), kiln.zeros(2, 4))


def test_bad_constructor_arguments_raise_like_torch():
    for args, kw, exc in [
        ((3, 4), {"dropout": 1.5}, ValueError),
        ((3, 4), {"dropout": True}, ValueError),
        ((3, 0), {}, ValueError),
        ((0, 4), {}, ValueError),
        ((3, 4), {"num_layers": 0}, ValueError),
        ((3, 4.0), {}, TypeError),
        ((3, 4), {"bias": 1}, TypeError),
        ((3, 4), {"batch_first": None}, TypeError),
        ((3, 4), {"nonlinearity": "gelu"}, ValueError),
    ]:
        with pytest.raises(exc):
            tnn.RNN(*args, **kw)
        with pytest.raises(exc):
            nn.RNN(*args, **kw)
    with pytest.raises(ValueError):
        nn.GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNNCell(3, 4, nonlinearity="gelu")


@pytest.mark.parametrize("kinds", SEQ, ids=SEQ_IDS)
def test_dropout_one_in_training_matches_torch(kinds):
    # p=1 zeroes every input of the upper layers: deterministic, so comparable with torch.
    kcls, tcls, extra = kinds
    run_both(
        kcls(3, 4, num_layers=2, dropout=1.0, **extra),
        tcls(3, 4, num_layers=2, dropout=1.0, **extra),
        arr(5, 2, 3),
        None,
    )


@pytest.mark.parametrize("kinds", SEQ, ids=SEQ_IDS)
def test_non_contiguous_input_and_states(kinds):
    kcls, tcls, extra = kinds
    kmod, tmod = kcls(3, 4, bidirectional=True, **extra), tcls(3, 4, bidirectional=True, **extra)
    copy_module(kmod, tmod)
    x = arr(2, 5, 3)
    h = arr(2, 4, 2)  # transposed to (D, N, H) = (2, 2, 4)
    kx, tx = kiln.tensor(x).transpose(0, 1), torch.tensor(x).transpose(0, 1)
    kh, th = kiln.tensor(h).transpose(1, 2), torch.tensor(h).transpose(1, 2)
    if kcls is nn.LSTM:
        kh, th = (kh, kh), (th, th)
    for k, t in zip(_flatten(kmod(kx, kh)), _flatten(tmod(tx, th))):
        assert_close(k, t, **TOL["float64"])


@pytest.mark.parametrize("kinds", SEQ, ids=SEQ_IDS)
def test_empty_batch(kinds):
    kcls, tcls, extra = kinds
    run_both(kcls(3, 4, num_layers=2, **extra), tcls(3, 4, num_layers=2, **extra), arr(5, 0, 3))


@pytest.mark.parametrize("kinds", SEQ, ids=SEQ_IDS)
def test_gradcheck(kinds):
    kcls, _, extra = kinds
    mod = kcls(2, 3, num_layers=2, bidirectional=True, **extra).to(kiln.float64)
    x = kiln.tensor(arr(3, 2, 2)).requires_grad_(True)
    h = kiln.tensor(arr(4, 2, 3, seed=1)).requires_grad_(True)

    def fn(x, h):
        out = mod(x, (h, h * 0.5) if kcls is nn.LSTM else h)
        return kiln.cat([t.reshape(-1) for t in _flatten(out)])

    assert kiln.autograd.gradcheck(fn, (x, h))


def test_dtype_argument_and_flatten_parameters():
    for mod in (
        nn.LSTM(3, 4, num_layers=2, dtype=kiln.float64),
        nn.GRUCell(3, 4, dtype=kiln.float64),
    ):
        assert all(p.dtype == kiln.float64 for p in mod.parameters())
    gru = nn.GRU(3, 4, dtype=kiln.float64)
    gru.flatten_parameters()
    out, h = gru(kiln.tensor(arr(5, 2, 3)))
    assert out.dtype == kiln.float64 and tuple(h.shape) == (1, 2, 4)


@pytest.mark.parametrize("kinds", SEQ, ids=SEQ_IDS)
def test_gradgradcheck(kinds):
    kcls, _, extra = kinds
    mod = kcls(2, 3, bidirectional=True, **extra).to(kiln.float64)
    x = kiln.tensor(arr(4, 2, 2)).requires_grad_(True)
    assert kiln.autograd.gradgradcheck(lambda x: _flatten(mod(x))[0], (x,))
