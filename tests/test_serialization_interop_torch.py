"""Weights move between PyTorch and kiln through safetensors files: a torch.nn model's
weights saved with safetensors.torch load into the same kiln.nn architecture and give
the same outputs, and a kiln model's weights saved by kiln load into torch."""

import kiln
import kiln.serialization
import kiln.nn as knn
import numpy as np
import pytest

torch = pytest.importorskip("torch")
st = pytest.importorskip("safetensors.torch")
tnn = torch.nn


def mlp(nn):
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 4))


def cnn(nn):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 4, 3, stride=2, bias=False), nn.BatchNorm2d(4), nn.Flatten(),
        nn.Linear(4, 5),
    )


def lstm(nn):
    return nn.LSTM(5, 7, num_layers=2, batch_first=True, bidirectional=True)


def transformer(nn):
    layer = nn.TransformerEncoderLayer(8, 2, 32, dropout=0.1, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


MODELS = {  # builder, input shape
    "mlp": (mlp, (3, 6)),
    "cnn-batchnorm": (cnn, (2, 3, 8, 8)),
    "lstm": (lstm, (2, 4, 5)),
    "transformer-encoder": (transformer, (2, 5, 8)),
}


def outputs(out):
    """Every tensor of a model's output (an LSTM returns (out, (h, c))) as NumPy arrays."""
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in outputs(o)]
    return [out.detach().numpy()]


def trained_torch(build):
    """A torch model with non-default weights and BatchNorm running statistics."""
    torch.manual_seed(0)
    model = build(tnn)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        if any(isinstance(m, tnn.BatchNorm2d) for m in model.modules()):
            model.train()
            for _ in range(3):
                model(torch.randn(4, 3, 8, 8) * 2 + 1)
    return model.eval()


def kiln_model(build):
    kiln.manual_seed(0)
    return build(knn).eval()


def same_outputs(torch_model, kiln_model_, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = outputs(torch_model(torch.from_numpy(x)))
    with kiln.no_grad():
        got = outputs(kiln_model_(kiln.from_numpy(x)))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loader", ["kiln.load", "kiln.serialization.load_file"])
def test_torch_weights_load_into_kiln(tmp_path, name, loader):
    build, shape = MODELS[name]
    torch_model = trained_torch(build)
    path = tmp_path / "torch.safetensors"
    st.save_file(torch_model.state_dict(), path)
    state = kiln.load(path) if loader == "kiln.load" else kiln.serialization.load_file(path)
    assert list(state) == sorted(torch_model.state_dict())  # safetensors sorts names
    model = kiln_model(build)
    model.load_state_dict(state)  # strict: every name and shape matches
    same_outputs(torch_model, model, shape)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("saver", ["kiln.save", "kiln.serialization.save_file"])
def test_kiln_weights_load_into_torch(tmp_path, name, saver):
    build, shape = MODELS[name]
    source = trained_torch(build)  # kiln's own init differs; give it non-trivial weights
    model = kiln_model(build)
    model.load_state_dict({k: kiln.from_numpy(v.numpy()) for k, v in source.state_dict().items()})
    path = tmp_path / "kiln.safetensors"
    save = kiln.save if saver == "kiln.save" else kiln.serialization.save_file
    save(model.state_dict(), path)
    torch_model = build(tnn).eval()
    torch_model.load_state_dict(st.load_file(path))  # strict
    same_outputs(torch_model, model, shape)


def test_safetensors_file_dtypes_and_metadata_load(tmp_path):
    tensors = {
        "h": torch.randn(3, 2).to(torch.float16),
        "b": torch.randn(4).to(torch.bfloat16),
        "i": torch.arange(5, dtype=torch.int64),
        "m": torch.tensor([True, False]),
        "t": torch.randn(4, 3).t(),  # non-contiguous: safetensors stores it compactly
    }
    path = tmp_path / "t.safetensors"
    st.save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})
    state = kiln.load(path)
    for k, v in tensors.items():
        got = state[k]
        assert list(got.shape) == list(v.shape)
        assert str(got.dtype).split(".")[-1] == str(v.dtype).split(".")[-1]
        np.testing.assert_array_equal(got.float().numpy(), v.float().numpy())
