"""kiln.nn.Module, Parameter and the containers, compared with torch.nn where comparable."""

import copy
from collections import OrderedDict

import kiln
import numpy as np
import pytest
from compare import require_torch

torch = require_torch()
knn, tnn = kiln.nn, torch.nn


def build(nn, lib):
    """The same model in either library (nn = kiln.nn or torch.nn, lib = kiln or torch)."""

    class Block(nn.Module):
        def __init__(self, n=3):
            super().__init__()
            self.weight = nn.Parameter(lib.ones(n, 2))
            self.bias = nn.Parameter(lib.zeros(n))
            self.register_buffer("running", lib.zeros(n))
            self.register_buffer("scratch", lib.zeros(1), persistent=False)
            self.register_parameter("unused", None)

        def forward(self, x):
            return x.mul(self.weight.sum()).add(self.bias.sum())

        def extra_repr(self):
            return f"n={self.bias.shape[0]}"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(Block(), nn.Flatten(), Block(4), nn.Identity())
            self.heads = nn.ModuleList([Block(2), Block(2), Block(2), Block(5)])
            self.table = nn.ModuleDict({"b": Block(1), "a": nn.Unflatten(1, (2, 3))})
            self.plist = nn.ParameterList([nn.Parameter(lib.ones(2)), lib.zeros(3, 4)])
            self.pdict = nn.ParameterDict({"x": nn.Parameter(lib.ones(1))})
            self.scale = nn.Parameter(lib.ones(1))
            self.alias = self.scale  # a tied parameter
            self.shared = self.features[0]  # a module in two places

        def forward(self, x):
            return self.features(x).mul(self.scale)

    return Net()


@pytest.fixture
def nets():
    return build(knn, kiln), build(tnn, torch)


def _names(pairs):
    return [n for n, _ in pairs]


# ---- Parameter and Tensor support -----------------------------------------------------


def test_parameter_is_a_tensor_sharing_memory():
    data = kiln.arange(6.0).reshape(2, 3)
    p = knn.Parameter(data)
    assert type(p) is knn.Parameter and isinstance(p, kiln.Tensor)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    assert p.data_ptr() == data.data_ptr() and p.shape == (2, 3)
    data.fill_(7.0)
    assert p.tolist() == [[7.0] * 3] * 2
    assert not knn.Parameter(data, requires_grad=False).requires_grad
    assert knn.Parameter().shape == (0,)
    # Ops that return self give back the same Python object.
    assert p.requires_grad_(True) is p


def test_parameter_repr_matches_torch():
    values = [[1.5, -2.0], [0.25, 3.0]]
    k = repr(knn.Parameter(kiln.tensor(values)))
    t = repr(tnn.Parameter(torch.tensor(values)))
    assert k == t
    assert str(knn.Parameter(kiln.tensor([1.0]))) == str(tnn.Parameter(torch.tensor([1.0])))


def test_parameter_gradients_accumulate():
    p = knn.Parameter(kiln.ones(3))
    for _ in range(2):
        p.mul(2.0).sum().backward()
    assert p.grad.tolist() == [4.0, 4.0, 4.0]


def test_parameter_deepcopy():
    p = knn.Parameter(kiln.ones(2))
    q = copy.deepcopy(p)
    assert type(q) is knn.Parameter and q.data_ptr() != p.data_ptr() and q.tolist() == [1, 1]


def test_data_getter_and_setter():
    p = knn.Parameter(kiln.ones(2, 2))
    d = p.data
    assert not d.requires_grad and d.data_ptr() == p.data_ptr()
    d.mul_(3.0)  # in-place updates through .data need no no_grad
    assert p.tolist() == [[3.0, 3.0]] * 2
    ident = id(p)
    p.data = kiln.zeros(3, dtype=kiln.float64)
    assert id(p) == ident and p.shape == (3,) and p.dtype == kiln.float64
    assert p.requires_grad and type(p) is knn.Parameter


def test_new_factories_and_format():
    t = kiln.ones(2, dtype=kiln.float64)
    assert t.new_zeros(3, 2).dtype == kiln.float64 and t.new_zeros((3, 2)).shape == (3, 2)
    assert t.new_ones(2).tolist() == [1.0, 1.0]
    assert t.new_full((2,), 5).tolist() == [5.0, 5.0]
    assert t.new_empty(4).shape == (4,)
    assert t.new_tensor([1, 2]).dtype == kiln.float64
    assert t.new_zeros(2, dtype=kiln.int64).dtype == kiln.int64
    assert t.new_ones(2, requires_grad=True).requires_grad
    loss = kiln.tensor(0.123456)
    assert f"{loss:.3f}" == f"{torch.tensor(0.123456):.3f}" == "0.123"
    assert f"{kiln.tensor(7)}" == "7"
    with pytest.raises(TypeError):
        f"{kiln.ones(2):.3f}"


def test_accelerator_answers_without_gpu():
    assert isinstance(kiln.accelerator.is_available(), bool)
    if not kiln.accelerator.is_available():
        assert kiln.accelerator.current_accelerator() is None
        assert kiln.accelerator.device_count() == 0
    assert kiln.device("cpu").type == "cpu"


# ---- walking the tree ---------------------------------------------------------------------


def test_names_match_torch(nets):
    k, t = nets
    assert _names(k.named_parameters()) == _names(t.named_parameters())
    assert _names(k.named_parameters(remove_duplicate=False)) == _names(
        t.named_parameters(remove_duplicate=False)
    )
    assert _names(k.named_parameters(prefix="m", recurse=False)) == _names(
        t.named_parameters(prefix="m", recurse=False)
    )
    assert _names(k.named_buffers()) == _names(t.named_buffers())
    assert _names(k.named_modules()) == _names(t.named_modules())
    assert _names(k.named_modules(remove_duplicate=False)) == _names(
        t.named_modules(remove_duplicate=False)
    )
    assert _names(k.named_children()) == _names(t.named_children())
    assert list(k.state_dict()) == list(t.state_dict())
    assert list(k.state_dict(prefix="model.")) == list(t.state_dict(prefix="model."))
    assert len(list(k.parameters())) == len(list(t.parameters()))
    assert len(list(k.modules())) == len(list(t.modules()))


def test_tied_parameters_listed_once(nets):
    k, _ = nets
    params = list(k.parameters())
    assert len(params) == len({id(p) for p in params})
    assert sum(p is k.scale for p in params) == 1


def test_repr_matches_torch(nets):
    k, t = nets
    assert repr(k) == repr(t).replace("torch.", "kiln.")
    for kk, tt in [
        (knn.Flatten(0, 2), tnn.Flatten(0, 2)),
        (knn.Identity(), tnn.Identity()),
        (knn.ModuleList(), tnn.ModuleList()),
        (knn.Sequential(), tnn.Sequential()),
        (
            knn.ParameterList([knn.Parameter(kiln.ones(2, 3))]),
            tnn.ParameterList([tnn.Parameter(torch.ones(2, 3))]),
        ),
    ]:
        assert repr(kk) == repr(tt).replace("torch.", "kiln.")


def test_train_eval_requires_grad_apply(nets):
    k, _ = nets
    assert k.training and all(m.training for m in k.modules())
    assert k.eval() is k and not any(m.training for m in k.modules())
    k.train()
    assert all(m.training for m in k.modules())
    with pytest.raises(ValueError, match="boolean"):
        k.train("yes")
    k.requires_grad_(False)
    assert not any(p.requires_grad for p in k.parameters())
    seen = []
    k.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Flatten") == 1


def test_zero_grad():
    m = knn.Sequential(knn.Identity())
    m.p = knn.Parameter(kiln.ones(2))
    m.p.grad = kiln.ones(2)
    m.zero_grad(set_to_none=False)
    assert m.p.grad.tolist() == [0.0, 0.0]
    m.zero_grad()
    assert m.p.grad is None


def test_to_keeps_parameter_objects_and_optimizer_works(nets):
    k, _ = nets
    params = list(k.parameters())
    k.features[0].weight.grad = kiln.ones(3, 2)
    opt = kiln.optim.SGD(k.parameters(), lr=0.5)
    assert k.double() is k
    after = list(k.parameters())
    assert all(a is b for a, b in zip(params, after))
    assert all(p.dtype == kiln.float64 for p in after)
    assert all(b.dtype == kiln.float64 for b in k.buffers())
    assert k.features[0].weight.grad.dtype == kiln.float64
    opt.step()
    assert k.features[0].weight.tolist() == [[0.5, 0.5]] * 3
    k.to(kiln.float32)
    assert k.scale.dtype == kiln.float32 and any(p is k.scale for p in params)
    k.to(kiln.zeros(1, dtype=kiln.float64))
    assert k.scale.dtype == kiln.float64
    k.to("cpu").to(device="cpu", dtype=kiln.float32).float().cpu()
    assert k.scale.dtype == kiln.float32
    k.half()
    assert k.scale.dtype == kiln.float16
    k.bfloat16()
    assert k.scale.dtype == kiln.bfloat16
    with pytest.raises(TypeError, match="floating point"):
        k.to(kiln.int64)


def test_int_buffers_keep_their_dtype():
    m = knn.Module()
    m.register_buffer("count", kiln.zeros(1, dtype=kiln.int64))
    m.double()
    assert m.count.dtype == kiln.int64


# ---- state dict ---------------------------------------------------------------------------


def test_state_dict_values_and_options(nets):
    k, t = nets
    sd = k.state_dict()
    assert isinstance(sd, OrderedDict)
    assert all(not v.requires_grad for v in sd.values())
    assert "features.0.scratch" not in sd
    kv = k.state_dict(keep_vars=True)
    assert kv["scale"] is k.scale
    dest = OrderedDict(extra=1)
    assert k.state_dict(destination=dest) is dest and next(iter(dest)) == "extra"
    # The values round-trip through torch.
    tsd = {n: torch.tensor(v.numpy()) for n, v in sd.items()}
    assert not t.load_state_dict(tsd).missing_keys


def test_load_state_dict_copies_in_place(nets):
    k, _ = nets
    sd = {n: v.clone().fill_(2.0) for n, v in k.state_dict().items()}
    w = k.features[0].weight
    result = k.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    assert k.features[0].weight is w and w.tolist() == [[2.0, 2.0]] * 3


def test_load_state_dict_strict_errors_match_torch(nets):
    k, t = nets
    ksd, tsd = k.state_dict(), t.state_dict()
    for sd in (ksd, tsd):
        del sd["features.2.bias"]
        sd["features.9.weight"] = sd["scale"]
        sd["bogus"] = sd["scale"]
    with pytest.raises(RuntimeError) as ke:
        k.load_state_dict(ksd)
    with pytest.raises(RuntimeError) as te:
        t.load_state_dict(tsd)
    assert str(ke.value) == str(te.value)
    assert 'Missing key(s) in state_dict: "features.2.bias"' in str(ke.value)
    kr, tr = k.load_state_dict(ksd, strict=False), t.load_state_dict(tsd, strict=False)
    assert kr.missing_keys == tr.missing_keys and kr.unexpected_keys == tr.unexpected_keys


def test_shape_mismatch_is_an_error_even_when_not_strict(nets):
    k, _ = nets
    sd = k.state_dict()
    sd["heads.3.bias"] = kiln.zeros(7)
    for strict in (True, False):
        with pytest.raises(
            RuntimeError,
            match=r"size mismatch for heads\.3\.bias: copying a "
            r"param with shape \[7\] from checkpoint, the shape in current model "
            r"is \[5\]",
        ):
            k.load_state_dict(sd, strict=strict)


def test_load_state_dict_assign():
    m = knn.Module()
    m.w = knn.Parameter(kiln.ones(2))
    new = kiln.zeros(2)
    m.load_state_dict({"w": new}, assign=True)
    assert type(m.w) is knn.Parameter and m.w.data_ptr() == new.data_ptr()


# ---- registration and attributes ----------------------------------------------------------


def test_setattr_routes_values():
    m = knn.Module()
    m.w = knn.Parameter(kiln.ones(1))
    m.child = knn.Identity()
    m.register_buffer("buf", kiln.ones(1))
    m.plain = 3
    assert list(m._parameters) == ["w"] and list(m._modules) == ["child"]
    assert list(m._buffers) == ["buf"] and m.plain == 3
    m.buf = kiln.zeros(2)
    assert m.buf.shape == (2,) and "buf" in m._buffers
    m.w = None
    assert m.w is None and "w" in m._parameters
    with pytest.raises(TypeError, match="cannot assign 'int' as parameter 'w'"):
        m.w = 1
    with pytest.raises(TypeError, match="as child module 'child'"):
        m.child = kiln.ones(1)
    with pytest.raises(TypeError, match="as buffer 'buf'"):
        m.buf = "no"
    m.child = knn.Parameter(kiln.ones(1))  # a parameter replaces a module of that name
    assert "child" not in m._modules and "child" in m._parameters
    del m.child
    assert "child" not in m._parameters
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nothing'"):
        _ = m.nothing
    del m.buf
    assert "buf" not in m._buffers


def test_register_errors():
    m = knn.Module()
    m.x = 1
    with pytest.raises(KeyError, match="attribute 'x' already exists"):
        m.register_buffer("x", kiln.ones(1))
    with pytest.raises(KeyError, match="contain"):
        m.register_parameter("a.b", None)
    with pytest.raises(KeyError, match="empty string"):
        m.add_module("", knn.Identity())
    with pytest.raises(TypeError, match="object to parameter 'p'"):
        m.register_parameter("p", kiln.ones(1))
    with pytest.raises(TypeError, match="object to buffer 'b'"):
        m.register_buffer("b", 3)
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("c", 3)

    class Early(knn.Module):
        def __init__(self):
            self.p = knn.Parameter(kiln.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    m.register_module("sub", knn.Identity())
    assert isinstance(m.sub, knn.Identity)


def test_get_submodule_and_parameter(nets):
    k, _ = nets
    assert k.get_submodule("features.2") is k.features[2]
    assert k.get_submodule("") is k
    assert k.get_parameter("heads.1.bias") is k.heads[1].bias
    assert k.get_buffer("features.0.running") is k.features[0].running
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        k.get_submodule("features.nope")
    with pytest.raises(AttributeError, match="not an nn.Parameter"):
        k.get_parameter("features.0.running")


def test_missing_forward():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        knn.Module()(1)


# ---- containers -------------------------------------------------------------------------------


def test_sequential_like_torch():
    def make(nn):
        return nn.Sequential(nn.Identity(), nn.Flatten(), nn.Identity(), nn.Unflatten(1, (2, 2)))

    k, t = make(knn), make(tnn)
    assert len(k) == 4 and isinstance(k[1], knn.Flatten) and isinstance(k[-1], knn.Unflatten)
    assert repr(k[1:3]) == repr(t[1:3]) and type(k[1:3]) is knn.Sequential
    for s in (k, t):
        del s[1]
        s.append(s[0])
        s.insert(1, s[0].__class__())
        s.extend([s[0]])
    assert repr(k) == repr(t) and list(k._modules) == list(t._modules)
    with pytest.raises(IndexError):
        k[10]
    od = knn.Sequential(OrderedDict([("first", knn.Identity()), ("flat", knn.Flatten())]))
    assert list(od._modules) == ["first", "flat"]
    x = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(
        od(kiln.tensor(x)).numpy(), tnn.Flatten()(torch.tensor(x)).numpy()
    )


def test_module_list_and_dict():
    def make(nn):
        ml = nn.ModuleList([nn.Identity(), nn.Identity(), nn.Flatten(), nn.Flatten(0)])
        ml.append(nn.Identity())
        ml.insert(0, nn.Flatten())
        ml += [nn.Identity()]
        del ml[2]
        return ml

    k, t = make(knn), make(tnn)
    assert repr(k) == repr(t) and len(k) == len(t) == 6
    assert repr(k[::2]) == repr(t[::2])
    d = knn.ModuleDict({"x": knn.Identity()})
    d["y"] = knn.Flatten()
    d.update([("z", knn.Identity())])
    assert list(d) == ["x", "y", "z"] and "y" in d and len(d) == 3
    assert list(d.keys()) == ["x", "y", "z"] and d.pop("y") is not None and len(d) == 2
    td = tnn.ModuleDict({"x": tnn.Identity(), "z": tnn.Identity()})
    assert repr(d) == repr(td)


def test_parameter_list_and_dict():
    pl = knn.ParameterList([kiln.ones(2), knn.Parameter(kiln.ones(3))])
    assert all(type(p) is knn.Parameter for p in pl) and len(pl) == 2
    pl.append(kiln.zeros(1))
    assert _names(pl.named_parameters()) == ["0", "1", "2"]
    tpl = tnn.ParameterList([torch.ones(2), torch.ones(3), torch.zeros(1)])
    assert repr(pl) == repr(tpl).replace("torch.", "kiln.")
    pd = knn.ParameterDict({"a": kiln.ones(2)})
    pd["b"] = knn.Parameter(kiln.zeros(1))
    assert list(pd.keys()) == ["a", "b"] and "a" in pd and len(pd) == 2
    tpd = tnn.ParameterDict({"a": torch.ones(2), "b": tnn.Parameter(torch.zeros(1))})
    assert repr(pd) == repr(tpd).replace("torch.", "kiln.")
    del pd["a"]
    assert list(pd.keys()) == ["b"] and _names(pd.named_parameters()) == ["b"]


def test_flatten_unflatten_forward_and_backward():
    x = np.random.randn(2, 3, 4, 5)
    for km, tm in [
        (knn.Flatten(), tnn.Flatten()),
        (knn.Flatten(0, 2), tnn.Flatten(0, 2)),
        (knn.Unflatten(2, (2, 2)), tnn.Unflatten(2, (2, 2))),
    ]:
        kx = kiln.tensor(x, requires_grad=True)
        tx = torch.tensor(x, requires_grad=True)
        ky, ty = km(kx), tm(tx)
        assert ky.shape == tuple(ty.shape)
        np.testing.assert_array_equal(ky.detach().numpy(), ty.detach().numpy())
        ky.sum().backward()
        assert kx.grad.tolist() == np.ones_like(x).tolist()
        assert repr(km) == repr(tm)


# ---- hooks -----------------------------------------------------------------------------------


class Scale(knn.Module):
    def __init__(self):
        super().__init__()
        self.w = knn.Parameter(kiln.tensor([2.0, 3.0]))

    def forward(self, x, y=None):
        out = x.mul(self.w)
        return out if y is None else out.add(y.mul(y))


def test_forward_hooks_modify_and_remove():
    m = Scale()
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0].mul(10.0),))
    h2 = m.register_forward_hook(lambda mod, args, out: out.add(1.0))
    h3 = m.register_forward_hook(lambda mod, args, out: calls.append("first"), prepend=True)
    out = m(kiln.ones(2))
    assert out.tolist() == [21.0, 31.0] and calls == ["first"]
    h1.remove()
    h2.remove()
    h3.remove()
    assert m(kiln.ones(2)).tolist() == [2.0, 3.0]

    def pre_kw(mod, args, kwargs):
        return args, {"y": kiln.ones(2)}

    def post_kw(mod, args, kwargs, out):
        calls.append(sorted(kwargs))

    with (
        m.register_forward_pre_hook(pre_kw, with_kwargs=True),
        m.register_forward_hook(post_kw, with_kwargs=True),
    ):
        assert m(kiln.ones(2)).tolist() == [3.0, 4.0]
    assert calls[-1] == ["y"] and m(kiln.ones(2)).tolist() == [2.0, 3.0]


def test_always_call_forward_hook_runs_when_forward_raises():
    class Boom(knn.Module):
        def forward(self, x):
            raise ValueError("boom")

    m = Boom()
    seen = []
    m.register_forward_hook(lambda mod, args, out: seen.append(("always", out)), always_call=True)
    m.register_forward_hook(lambda mod, args, out: seen.append("plain"))
    with pytest.raises(ValueError, match="boom"):
        m(kiln.ones(1))
    assert seen == [("always", None)]


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_full_backward_hook_matches_torch():
    class TScale(tnn.Module):
        def __init__(self):
            super().__init__()
            self.w = tnn.Parameter(torch.tensor([2.0, 3.0]))

        def forward(self, x, y=None):
            out = x * self.w
            return out if y is None else out + y * y

    results = {}
    for lib, m in (("kiln", Scale()), ("torch", TScale())):
        t = kiln if lib == "kiln" else torch
        got = []
        m.register_full_backward_hook(
            lambda mod, gi, go, got=got: got.append(
                ([None if g is None else g.tolist() for g in gi], [g.tolist() for g in go])
            )
        )
        x = t.tensor([1.0, 2.0], requires_grad=True)
        y = t.tensor([0.5, -1.0], requires_grad=True)
        out = m(x, y)
        out.mul(out).sum().backward()
        # Inputs that need no grad give None; the hook still runs once.
        out2 = m(t.tensor([1.0, 1.0]))
        out2.sum().backward()
        results[lib] = (got, x.grad.tolist(), y.grad.tolist())
    assert results["kiln"] == results["torch"]
    assert len(results["kiln"][0]) == 2


def test_backward_hook_can_replace_grad_input_and_be_removed():
    m = Scale()
    h = m.register_full_backward_hook(lambda mod, gi, go: (gi[0].mul(0.0),))
    x = kiln.ones(2, requires_grad=True)
    m(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]
    h.remove()
    x.grad = None
    m(x).sum().backward()
    assert x.grad.tolist() == [2.0, 3.0]
    pre = []
    m.register_full_backward_pre_hook(lambda mod, go: pre.append(go[0].tolist()))
    m(x).sum().backward()
    assert pre == [[1.0, 1.0]]


# ---- errors that name the module's place in the model --------------------------------------


class Checker(knn.Module):
    def __init__(self, channels):
        super().__init__()
        self.channels = channels

    def forward(self, x):
        if x.shape[1] != self.channels:
            self._shape_error(f"{self.channels} input channels", x.shape[1], x.shape)
        return x


def test_shape_error_names_module_path():
    model = knn.Sequential(
        OrderedDict(
            features=knn.Sequential(knn.Identity(), Checker(2), knn.Identity(), Checker(64))
        )
    )
    x = kiln.zeros(8, 32, 28, 28)
    with pytest.raises(
        RuntimeError,
        match=r"^features\.1 \(Checker\): expected 2 input "
        r"channels, got 32, input shape \[8, 32, 28, 28\]$",
    ):
        model(x)
    with pytest.raises(ValueError, match=r"^features\.1 \(Checker\)"):
        model(x)
    # Called on its own, the module names just its class.
    with pytest.raises(knn.ModuleShapeError, match=r"^Checker: expected 64"):
        Checker(64)(x)
    # The call stack is clean after an error.
    with pytest.raises(RuntimeError, match=r"^features\.3 \(Checker\)"):
        knn.Sequential(
            OrderedDict(
                features=knn.Sequential(knn.Identity(), Checker(32), knn.Identity(), Checker(64))
            )
        )(x)


def test_load_from_state_dict_override_with_torch_signature():
    class Renamed(knn.Module):
        def __init__(self):
            super().__init__()
            self.weight = knn.Parameter(kiln.zeros(2))

        def _load_from_state_dict(
            self,
            state_dict,
            prefix,
            local_metadata,
            strict,
            missing_keys,
            unexpected_keys,
            error_msgs,
        ):
            old = prefix + "w_old"
            if old in state_dict:
                state_dict[prefix + "weight"] = state_dict.pop(old)
            super()._load_from_state_dict(
                state_dict,
                prefix,
                local_metadata,
                strict,
                missing_keys,
                unexpected_keys,
                error_msgs,
            )

    m = knn.Sequential(Renamed())
    m.load_state_dict({"0.w_old": kiln.ones(2)})
    assert m[0].weight.tolist() == [1.0, 1.0]


def test_deepcopy_module(nets):
    k, _ = nets
    k.scale.grad = kiln.ones(1)
    c = copy.deepcopy(k)
    assert repr(c) == repr(k)
    assert list(c.state_dict()) == list(k.state_dict())
    assert c.alias is c.scale and c.scale is not k.scale and c.shared is c.features[0]
    assert c.scale.grad.tolist() == [1.0]
    c.scale.data.fill_(5.0)
    assert k.scale.tolist() == [1.0]
