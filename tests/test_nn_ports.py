"""Programs written for PyTorch run on kiln with only their imports changed.

Each file in tests/ports/ is a complete program in the style of PyTorch's own
examples (synthetic data instead of downloads, initial weights drawn by NumPy).
It runs twice in this process: as written, against torch, and with its torch
imports pointed at kiln. Both runs must print the same lines -- integers (counts,
batch numbers, generated words) exactly, decimals within float32 rounding --
and the printed scores must show that the program learned.
"""

import contextlib
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from compare import require_torch

torch = require_torch()

PORTS = Path(__file__).resolve().parent / "ports"
DECIMAL = re.compile(r"-?\d+\.\d+")
TORCH_IMPORTS = [
    (re.compile(r"^import torch$", re.MULTILINE), "import kiln as torch"),
    (re.compile(r"^import torch\.([\w.]+) as ", re.MULTILINE), r"import kiln.\1 as "),
    (re.compile(r"^from torch(\.[\w.]+)? import ", re.MULTILINE), r"from kiln\1 import "),
]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # These programs run thousands of small ops; torch's thread pool only adds waiting on a
    # busy machine (one run took minutes instead of seconds). kiln runs with its defaults.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def with_kiln_imports(source):
    ported = source
    for pattern, replacement in TORCH_IMPORTS:
        ported = pattern.sub(replacement, ported)
    changed = [
        (a, b) for a, b in zip(source.splitlines(), ported.splitlines(), strict=True) if a != b
    ]
    assert changed and all(b.startswith(("import kiln", "from kiln")) for _, b in changed)
    assert not re.search(r"^\s*(import|from) torch\b", ported, re.MULTILINE), "an import was missed"
    return ported


def run_program(name, source, argv):
    """Run source as __main__ with sys.argv = [name, *argv]; return its printed lines."""
    code = compile(source, str(PORTS / name), "exec")
    out = io.StringIO()
    saved_argv = sys.argv
    sys.argv = [name, *argv]
    try:
        with contextlib.redirect_stdout(out):
            exec(code, {"__name__": "__main__"})  # noqa: S102 (running the program is the test)
    finally:
        sys.argv = saved_argv
    return out.getvalue().splitlines()


def run_both(name, argv, tmp_path, monkeypatch):
    source = (PORTS / name).read_text()
    outputs = []
    for framework, text in (("torch", source), ("kiln", with_kiln_imports(source))):
        workdir = tmp_path / framework
        workdir.mkdir()
        monkeypatch.chdir(workdir)
        outputs.append(run_program(name, text, argv))
    return outputs


def assert_same_output(torch_lines, kiln_lines, rtol=1e-4, atol=2e-6):
    assert len(kiln_lines) == len(torch_lines), "\n".join(kiln_lines)
    for t, k in zip(torch_lines, kiln_lines):
        assert DECIMAL.sub("#", k) == DECIMAL.sub("#", t), f"kiln: {k!r}\ntorch: {t!r}"
        np.testing.assert_allclose(
            [float(v) for v in DECIMAL.findall(k)],
            [float(v) for v in DECIMAL.findall(t)],
            rtol=rtol,
            atol=atol,
            err_msg=f"kiln: {k!r}\ntorch: {t!r}",
        )


def scores(lines, pattern):
    return [float(m.group(1)) for line in lines if (m := re.search(pattern, line))]


def test_mnist_style_cnn(tmp_path, monkeypatch):
    # Conv2d, max_pool2d, flatten, log_softmax + nll_loss (mean and sum), Adadelta, StepLR,
    # DataLoader over a TensorDataset, torch.device / torch.accelerator, argmax/eq/view_as,
    # copy_ into parameters under no_grad, save/load of a state_dict.
    torch_out, kiln_out = run_both("mnist_cnn.py", [], tmp_path, monkeypatch)
    assert_same_output(torch_out, kiln_out)
    accuracy = scores(kiln_out, r"Accuracy: \d+/\d+ \((\d+)%\)")
    assert len(accuracy) == 4 and accuracy[-1] == accuracy[-2] >= 95
    losses = scores(kiln_out, r"Loss: (\d+\.\d+)")
    assert losses[-1] < 0.1 * losses[0]
    assert (tmp_path / "kiln" / "mnist_cnn.pt").exists()


@pytest.mark.parametrize("argv", [[], ["--model", "GRU", "--nlayers", "2"]], ids=["lstm", "gru2"])
def test_word_language_model(argv, tmp_path, monkeypatch):
    # Embedding, LSTM/GRU with initial states, tied encoder/decoder weight, NLLLoss, detached
    # hidden states, clip_grad_norm_, hand-written SGD through p.data, new_zeros, narrow/t/
    # contiguous, fill_, save/load of a state_dict, greedy decoding.
    torch_out, kiln_out = run_both("word_language_model.py", argv, tmp_path, monkeypatch)
    assert_same_output(torch_out, kiln_out)
    vocabulary = int(kiln_out[0].split()[0])
    test_ppl = scores(kiln_out, r"test ppl +(\d+\.\d+)")[0]
    assert test_ppl < vocabulary / 5  # the chain has three likely successors per word
    assert kiln_out[-1].startswith("generated: w0 ")


def test_time_sequence_prediction(tmp_path, monkeypatch):
    # LSTMCell unrolled by hand in float64, split/cat over time, MSELoss, LBFGS with a closure
    # (every closure call prints its loss, so the line search must take the same steps).
    torch_out, kiln_out = run_both("time_sequence_prediction.py", [], tmp_path, monkeypatch)
    assert_same_output(torch_out, kiln_out, rtol=1e-9, atol=1e-12)
    test_losses = scores(kiln_out, r"test loss (\d+\.\d+)")
    assert len(test_losses) == 6 and test_losses[-1] < 0.01 * test_losses[0]
