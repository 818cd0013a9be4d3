"""MultiheadAttention and the Transformer modules against torch.nn with identical weights:
outputs and float64 gradients of inputs and parameters, masks, layouts, error messages."""

import kiln
import numpy as np
import pytest
from compare import assert_close, require_torch
from nn_compare import compare, copy_module

torch = require_torch()
# torch warns about mixed bool/float masks and its nested-tensor fast path; neither is under test.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
nn, tnn = kiln.nn, torch.nn


def pair(kcls, tcls, *args, **kwargs):
    torch.manual_seed(0)
    t = tcls(*args, **kwargs)
    k = kcls(*args, **kwargs)
    copy_module(k, t)
    return k, t


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def masks(dtype_bool, *shape, seed=3):
    """The same random mask for kiln and torch, bool (True = masked) or additive float."""
    rng = np.random.default_rng(seed)
    m = rng.random(shape) < 0.3
    m[..., 0] = False  # never mask a whole row: both libraries give NaN there
    if not dtype_bool:
        m = np.where(m, -1e9, 0.0) + rng.standard_normal(shape) * 0.1
    return kiln.tensor(m.copy()), torch.tensor(m.copy())


def causal(n):
    return (
        nn.Transformer.generate_square_subsequent_mask(n, dtype=kiln.float64),
        tnn.Transformer.generate_square_subsequent_mask(n, dtype=torch.float64),
    )


# ---- MultiheadAttention ----------------------------------------------------------------------


def test_mha_state_dict_keys():
    for kw in ({}, {"kdim": 3, "vdim": 5}, {"bias": False}, {"add_bias_kv": True}):
        k, t = nn.MultiheadAttention(8, 2, **kw), tnn.MultiheadAttention(8, 2, **kw)
        assert list(k.state_dict()) == list(t.state_dict())
        for name, v in t.state_dict().items():
            assert tuple(k.state_dict()[name].shape) == tuple(v.shape)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("average", [True, False])
def test_mha_self_attention_weights(batch_first, average):
    k, t = pair(nn.MultiheadAttention, tnn.MultiheadAttention, 8, 2, batch_first=batch_first)
    x = rand(3, 4, 8)
    compare(
        lambda a: k(a, a, a, average_attn_weights=average),
        lambda a: t(a, a, a, average_attn_weights=average),
        [x],
        kmod=k,
        tmod=t,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mha_cross_attention_separate_qkv(dtype):
    k, t = pair(nn.MultiheadAttention, tnn.MultiheadAttention, 8, 4)
    copy_module(k, t, dtype)
    compare(
        lambda q, kk, v: k(q, kk, v),
        lambda q, kk, v: t(q, kk, v),
        [rand(3, 2, 8), rand(5, 2, 8, seed=1), rand(5, 2, 8, seed=2)],
        dtype=dtype,
        kmod=k,
        tmod=t,
    )


def test_mha_kdim_vdim():
    k, t = pair(nn.MultiheadAttention, tnn.MultiheadAttention, 6, 3, kdim=4, vdim=5)
    assert k.in_proj_weight is None and tuple(k.k_proj_weight.shape) == (6, 4)
    compare(
        lambda q, kk, v: k(q, kk, v),
        lambda q, kk, v: t(q, kk, v),
        [rand(3, 2, 6), rand(5, 2, 4, seed=1), rand(5, 2, 5, seed=2)],
        kmod=k,
        tmod=t,
    )


def test_mha_no_bias_no_weights():
    k, t = pair(nn.MultiheadAttention, tnn.MultiheadAttention, 8, 2, bias=False)
    compare(
        lambda a: k(a, a, a, need_weights=False)[0],
        lambda a: t(a, a, a, need_weights=False)[0],
        [rand(4, 2, 8)],
        kmod=k,
        tmod=t,
    )
    x = kiln.tensor(rand(4, 2, 8))
    assert k(x, x, x, need_weights=False)[1] is None


@pytest.mark.parametrize("is_bool", [True, False])
@pytest.mark.parametrize("mask_dims", [2, 3])
def test_mha_attn_mask(is_bool, mask_dims):
    k, t = pair(nn.MultiheadAttention, tnn.MultiheadAttention, 8, 2)
    shape = (3, 5) if mask_dims == 2 else (2 * 2, 3, 5)
    km, tm = masks(is_bool, *shape)
    compare(
        lambda q, kv: k(q, kv, kv, attn_mask=km),
        lambda q, kv: t(q, kv, kv, attn_mask=tm),
        [rand(3, 2, 8), rand(5, 2, 8, seed=1)],
        kmod=k,
        tmod=t,
    )


@pytest.mark.parametrize("is_bool", [True, False])
def test_mha_key_padding_and_attn_mask(is_bool):
    k, t = pair(nn.MultiheadAttention, tnn.MultiheadAttention, 8, 2, batch_first=True)
    kp, tp = masks(is_bool, 2, 5)
    km, tm = masks(is_bool, 3, 5, seed=4)
    compare(
        lambda q, kv: k(q, kv, kv, key_padding_mask=kp, attn_mask=km),
        lambda q, kv: t(q, kv, kv, key_padding_mask=tp, attn_mask=tm),
        [rand(2, 3, 8), rand(2, 5, 8, seed=1)],
        kmod=k,
        tmod=t,
    )
    compare(
        lambda q, kv: k(q, kv, kv, key_padding_mask=kp),
        lambda q, kv: t(q, kv, kv, key_padding_mask=tp),
        [rand(2, 3, 8), rand(2, 5, 8, seed=1)],
        kmod=k,
        tmod=t,
    )


def test_mha_is_causal():
    k, t = pair(nn.MultiheadAttention, tnn.MultiheadAttention, 8, 2)
    km, tm = causal(4)
    compare(
        lambda a: k(a, a, a, attn_mask=km, is_causal=True, need_weights=False)[0],
        lambda a: t(a, a, a, attn_mask=tm, is_causal=True, need_weights=False)[0],
        [rand(4, 2, 8)],
        kmod=k,
        tmod=t,
    )
    x = kiln.tensor(rand(4, 2, 8))
    with pytest.raises(RuntimeError, match="attn_mask"):
        k(x, x, x, is_causal=True)


@pytest.mark.parametrize("bias_kv", [False, True])
@pytest.mark.parametrize("zero_attn", [False, True])
@pytest.mark.parametrize("is_bool", [True, False])
def test_mha_bias_kv_and_zero_attn(bias_kv, zero_attn, is_bool):
    k, t = pair(
        nn.MultiheadAttention, tnn.MultiheadAttention, 8, 2,
        add_bias_kv=bias_kv, add_zero_attn=zero_attn, batch_first=True,
    )
    km, tm = masks(is_bool, 3, 5)
    kp, tp = masks(True, 2, 5, seed=4)
    compare(
        lambda q, kv: k(q, kv, kv, attn_mask=km, key_padding_mask=kp, average_attn_weights=False),
        lambda q, kv: t(q, kv, kv, attn_mask=tm, key_padding_mask=tp, average_attn_weights=False),
        [rand(2, 3, 8), rand(2, 5, 8, seed=1)],
        kmod=k,
        tmod=t,
    )


def _functional_args(lib, E, kdim, separate, bias_kv, seed=5):
    """Random weights for multi_head_attention_forward, the same for kiln and torch."""
    rng = np.random.default_rng(seed)

    def t(*shape):
        return lib.tensor(rng.standard_normal(shape), requires_grad=True)

    args = dict(
        in_proj_weight=None if separate else t(3 * E, E),
        in_proj_bias=t(3 * E),
        bias_k=t(1, 1, E) if bias_kv else None,
        bias_v=t(1, 1, E) if bias_kv else None,
        out_proj_weight=t(E, E),
        out_proj_bias=t(E),
        use_separate_proj_weight=separate,
    )
    if separate:
        args.update(q_proj_weight=t(E, E), k_proj_weight=t(E, kdim), v_proj_weight=t(E, kdim))
    return args


@pytest.mark.parametrize("separate", [False, True])
@pytest.mark.parametrize("bias_kv", [False, True])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("average", [True, False])
def test_multi_head_attention_forward(separate, bias_kv, batched, average):
    E, H, kdim = 8, 4, (6 if separate else 8)
    kargs, targs = (_functional_args(lib, E, kdim, separate, bias_kv) for lib in (kiln, torch))
    kp, tp = masks(True, *((2, 5) if batched else (5,)), seed=4)
    qshape, kshape = ((3, 2, E), (5, 2, kdim)) if batched else ((3, E), (5, kdim))

    def run(F, args, kpm):
        return lambda q, kv: F.multi_head_attention_forward(
            q, kv, kv, E, H, add_zero_attn=True, dropout_p=0.5, training=False,
            key_padding_mask=kpm, average_attn_weights=average, **args,
        )

    kout = compare(
        run(kiln.nn.functional, kargs, kp), run(torch.nn.functional, targs, tp),
        [rand(*qshape), rand(*kshape, seed=1)],
    )
    assert tuple(kout[1].shape) == (
        (2,) * batched + (() if average else (H,)) + (3, 5 + 1 + bias_kv)
    )
    for name, value in targs.items():
        if isinstance(value, torch.Tensor):
            assert_close(kargs[name].grad, value.grad, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("bias_kv", [False, True])
@pytest.mark.parametrize("batched", [True, False])
def test_multi_head_attention_forward_batch_first(bias_kv, batched):
    # kiln's batch_first=True: (N, L, E) in and out, the values of the (L, N, E) layout.
    E, H = 8, 4
    args = _functional_args(kiln, E, E, False, bias_kv)
    kpm = masks(True, *((2, 5) if batched else (5,)), seed=4)[0]
    q = kiln.tensor(rand(*((3, 2, E) if batched else (3, E))))
    kv = kiln.tensor(rand(*((5, 2, E) if batched else (5, E)), seed=1))
    F = kiln.nn.functional
    common = dict(add_zero_attn=True, dropout_p=0.0, key_padding_mask=kpm,
                  average_attn_weights=False, **args)
    ref, ref_weights = F.multi_head_attention_forward(q, kv, kv, E, H, **common)

    def flip(t):
        return t.transpose(0, 1) if batched else t

    out, weights = F.multi_head_attention_forward(flip(q), flip(kv), flip(kv), E, H,
                                                  batch_first=True, **common)
    assert_close(flip(out), ref, rtol=1e-12, atol=1e-12)
    assert_close(weights, ref_weights, rtol=1e-12, atol=1e-12)


def test_multi_head_attention_forward_errors():
    args = _functional_args(kiln, 8, 8, False, False)
    x = kiln.randn(3, 2, 8, dtype=kiln.float64)
    F = kiln.nn.functional
    with pytest.raises(ValueError, match=r"\[multi_head_attention_forward\].*key embedding dim 8"):
        F.multi_head_attention_forward(x, x[..., :6], x, 8, 2, add_zero_attn=False,
                                       dropout_p=0.0, **args)
    with pytest.raises(ValueError, match="divisible"):
        F.multi_head_attention_forward(x, x, x, 8, 3, add_zero_attn=False, dropout_p=0.0, **args)
    with pytest.raises(NotImplementedError, match="static_k"):
        F.multi_head_attention_forward(x, x, x, 8, 2, add_zero_attn=False, dropout_p=0.0,
                                       static_k=x, **args)
    with pytest.raises(ValueError, match="bias_k and bias_v"):
        F.multi_head_attention_forward(x, x, x, 8, 2, add_zero_attn=False, dropout_p=0.0,
                                       **{**args, "bias_k": kiln.zeros(1, 1, 8)})


def test_mha_unbatched():
    k, t = pair(nn.MultiheadAttention, tnn.MultiheadAttention, 8, 2)
    kp, tp = masks(True, 5)
    compare(
        lambda q, kv: k(q, kv, kv, key_padding_mask=kp, average_attn_weights=False),
        lambda q, kv: t(q, kv, kv, key_padding_mask=tp, average_attn_weights=False),
        [rand(3, 8), rand(5, 8, seed=1)],
        kmod=k,
        tmod=t,
    )


def test_mha_dropout_eval_is_identity_and_train_is_random():
    k, t = pair(nn.MultiheadAttention, tnn.MultiheadAttention, 8, 2, dropout=0.5)
    k.eval(), t.eval()
    compare(lambda a: k(a, a, a), lambda a: t(a, a, a), [rand(4, 2, 8)], kmod=k, tmod=t)
    k.train()
    x = kiln.tensor(rand(4, 2, 8))
    w = k(x, x, x, average_attn_weights=False)[1]
    # Dropped weights are 0, kept ones scaled by 2: rows no longer sum to 1.
    assert (w == 0).any().item()


def test_mha_errors():
    with pytest.raises(ValueError, match=r"\[MultiheadAttention\].*divisible"):
        nn.MultiheadAttention(10, 3)
    k = nn.MultiheadAttention(8, 2)
    good, bad = kiln.randn(3, 2, 8), kiln.randn(3, 2, 6)
    with pytest.raises(ValueError, match="query embedding dim 8, got 6"):
        k(bad, good, good)
    with pytest.raises(ValueError, match="key embedding dim 8, got 6"):
        k(good, bad, good)
    with pytest.raises(ValueError, match="attn_mask"):
        k(good, good, good, attn_mask=kiln.zeros(2, 2))
    with pytest.raises(ValueError, match="key_padding_mask"):
        k(good, good, good, key_padding_mask=kiln.zeros(3, 2, dtype=kiln.bool))
    with pytest.raises(ValueError, match="batch size"):
        k(good, kiln.randn(3, 4, 8), kiln.randn(3, 4, 8))


# ---- Transformer layers ----------------------------------------------------------------------


LAYER_CASES = [
    {},
    {"batch_first": True},
    {"norm_first": True},
    {"activation": "gelu"},
    {"bias": False},
]


@pytest.mark.parametrize("extra", LAYER_CASES, ids=str)
def test_encoder_layer(extra):
    torch.manual_seed(0)
    t = tnn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, **extra)
    k = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, **extra)
    assert set(k.state_dict()) == set(t.state_dict())
    copy_module(k, t)
    shape = (2, 5, 8) if extra.get("batch_first") else (5, 2, 8)
    km, tm = causal(5)
    kp, tp = masks(True, 2, 5)
    compare(
        lambda x: k(x, src_mask=km, src_key_padding_mask=kp),
        lambda x: t(x, src_mask=tm, src_key_padding_mask=tp),
        [rand(*shape)],
        kmod=k,
        tmod=t,
    )


def test_encoder_layer_callable_activation():
    torch.manual_seed(0)
    t = tnn.TransformerEncoderLayer(8, 2, 16, 0.0, activation=torch.tanh)
    k = nn.TransformerEncoderLayer(8, 2, 16, 0.0, activation=kiln.tanh)
    copy_module(k, t)
    compare(k, t, [rand(4, 2, 8)], kmod=k, tmod=t)
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerEncoderLayer(8, 2, activation="swish")


@pytest.mark.parametrize("extra", LAYER_CASES, ids=str)
def test_decoder_layer(extra):
    torch.manual_seed(0)
    t = tnn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, **extra)
    k = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, **extra)
    assert set(k.state_dict()) == set(t.state_dict())
    copy_module(k, t)
    bf = extra.get("batch_first")
    tgt, mem = ((2, 4, 8), (2, 6, 8)) if bf else ((4, 2, 8), (6, 2, 8))
    km, tm = causal(4)
    kmm, tmm = masks(False, 4, 6)
    kp, tp = masks(True, 2, 6)
    compare(
        lambda x, m: k(
            x, m, tgt_mask=km, memory_mask=kmm, memory_key_padding_mask=kp, tgt_is_causal=True
        ),
        lambda x, m: t(
            x, m, tgt_mask=tm, memory_mask=tmm, memory_key_padding_mask=tp, tgt_is_causal=True
        ),
        [rand(*tgt), rand(*mem, seed=1)],
        kmod=k,
        tmod=t,
    )


def test_encoder_stack_deep_copies_and_norm():
    torch.manual_seed(0)
    tl = tnn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True)
    t = tnn.TransformerEncoder(tl, 3, norm=tnn.LayerNorm(8), enable_nested_tensor=False)

    k = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True),
        3,
        norm=nn.LayerNorm(8),
    )
    assert set(k.state_dict()) == set(t.state_dict())
    assert k.layers[0].linear1.weight is not k.layers[1].linear1.weight
    copy_module(k, t)
    kp, tp = masks(True, 2, 5)
    compare(
        lambda x: k(x, src_key_padding_mask=kp),
        lambda x: t(x, src_key_padding_mask=tp),
        [rand(2, 5, 8)],
        kmod=k,
        tmod=t,
    )


def test_decoder_stack():
    torch.manual_seed(0)
    t = tnn.TransformerDecoder(tnn.TransformerDecoderLayer(8, 2, 16, 0.0, norm_first=True), 2)
    k = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, 0.0, norm_first=True), 2)
    copy_module(k, t)
    km, tm = causal(4)
    compare(
        lambda x, m: k(x, m, tgt_mask=km),
        lambda x, m: t(x, m, tgt_mask=tm),
        [rand(4, 2, 8), rand(6, 2, 8, seed=1)],
        kmod=k,
        tmod=t,
    )


# ---- Transformer -----------------------------------------------------------------------------


def test_square_subsequent_mask():
    km, tm = causal(5)
    assert_close(km, tm)
    assert nn.Transformer.generate_square_subsequent_mask(3).dtype == kiln.float32


@pytest.mark.parametrize(
    "extra",
    [{}, {"batch_first": True, "norm_first": True}, {"activation": "gelu", "bias": False}],
    ids=str,
)
def test_transformer(extra):
    k, t = pair(nn.Transformer, tnn.Transformer, 8, 2, 2, 2, 16, 0.0, **extra)
    assert set(k.state_dict()) == set(t.state_dict())
    bf = extra.get("batch_first")
    src, tgt = ((2, 6, 8), (2, 4, 8)) if bf else ((6, 2, 8), (4, 2, 8))
    km, tm = causal(4)
    ksp, tsp = masks(True, 2, 6)
    ktp, ttp = masks(True, 2, 4, seed=5)
    compare(
        lambda s, g: k(
            s,
            g,
            tgt_mask=km,
            src_key_padding_mask=ksp,
            tgt_key_padding_mask=ktp,
            memory_key_padding_mask=ksp,
        ),
        lambda s, g: t(
            s,
            g,
            tgt_mask=tm,
            src_key_padding_mask=tsp,
            tgt_key_padding_mask=ttp,
            memory_key_padding_mask=tsp,
        ),
        [rand(*src), rand(*tgt, seed=1)],
        kmod=k,
        tmod=t,
    )


def test_transformer_eval_with_dropout():
    k, t = pair(nn.Transformer, tnn.Transformer, 8, 2, 1, 1, 16, 0.3)
    k.eval(), t.eval()
    compare(
        lambda s, g: k(s, g),
        lambda s, g: t(s, g),
        [rand(5, 2, 8), rand(3, 2, 8, seed=1)],
        kmod=k,
        tmod=t,
    )


def test_transformer_errors():
    k = nn.Transformer(8, 2, 1, 1, 16, 0.0)
    with pytest.raises(ValueError, match="batch size"):
        k(kiln.randn(5, 2, 8), kiln.randn(3, 3, 8))
    with pytest.raises(ValueError, match="d_model=8"):
        k(kiln.randn(5, 2, 6), kiln.randn(3, 2, 6))
    with pytest.raises(ValueError, match="divisible"):
        nn.Transformer(10, 3)


def test_transformer_float32_and_state_dict_round_trip():
    k, t = pair(nn.Transformer, tnn.Transformer, 8, 2, 1, 1, 16, 0.0, batch_first=True)
    copy_module(k, t, "float32")
    compare(
        lambda s, g: k(s, g),
        lambda s, g: t(s, g),
        [rand(2, 5, 8), rand(2, 3, 8, seed=1)],
        dtype="float32",
        kmod=k,
        tmod=t,
    )
    # kiln's state_dict loads back into a fresh torch model with the same result.
    t2 = tnn.Transformer(8, 2, 1, 1, 16, 0.0, batch_first=True)
    t2.load_state_dict({n: torch.tensor(v.numpy()) for n, v in k.state_dict().items()})
    s, g = torch.tensor(rand(2, 5, 8), dtype=torch.float32), torch.tensor(rand(2, 3, 8))
    g = g.float()
    assert_close(t2(s, g), t(s, g), rtol=1e-6, atol=1e-6)


def test_encoder_layer_unbatched():
    torch.manual_seed(0)
    t = tnn.TransformerEncoderLayer(8, 2, 16, 0.0, norm_first=True)
    k = nn.TransformerEncoderLayer(8, 2, 16, 0.0, norm_first=True)
    copy_module(k, t)
    km, tm = causal(5)
    compare(lambda x: k(x, src_mask=km), lambda x: t(x, src_mask=tm), [rand(5, 8)], kmod=k, tmod=t)


def test_mha_float_mask_takes_the_query_dtype():
    k = nn.MultiheadAttention(8, 2).double()
    x = kiln.tensor(rand(3, 2, 8))
    m64 = kiln.tensor(rand(3, 3, seed=7))
    out32, _ = k(x, x, x, attn_mask=m64.float())
    out64, _ = k(x, x, x, attn_mask=m64)
    assert out32.dtype == kiln.float64
    assert_close(out32, out64, rtol=1e-6, atol=1e-6)


def test_mha_gradcheck():
    k = nn.MultiheadAttention(4, 2, kdim=3, vdim=2, batch_first=True).double()
    kp = kiln.tensor(np.array([[False, False, True], [False, False, False]]))
    q, kk, v = (
        kiln.tensor(rand(*shape, seed=s), requires_grad=True)
        for s, shape in enumerate([(2, 2, 4), (2, 3, 3), (2, 3, 2)])
    )
    assert kiln.autograd.gradcheck(lambda a, b, c: k(a, b, c, key_padding_mask=kp)[0], (q, kk, v))
