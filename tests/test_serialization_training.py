"""Checkpoints of real kiln.nn models, optimizers and LR schedulers: kiln.save/kiln.load
round-trips of their state dicts, and exact resume through CheckpointManager in a new
process (parameters and optimizer state bit-identical to an uninterrupted run)."""

import os
import subprocess
import sys

import kiln
import kiln.nn as nn
import numpy as np
import pytest
from kiln.optim import SGD

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(kiln.__file__)))

# Builds a model, optimizer and scheduler by config name and trains them on data from
# NumPy's global RNG, with dropout drawing from kiln's: resuming must restore both.
SETUP = r"""
import numpy as np
import kiln
import kiln.nn as nn
from kiln.optim import SGD, Adam, AdamW
from kiln.optim.lr_scheduler import CosineAnnealingLR, StepLR


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(8, 11)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))


def build(config, steps):
    if config == "cnn-adamw-cosine":
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Dropout(0.25), nn.Flatten(), nn.Linear(4 * 4 * 4, 3),
        )
        opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, amsgrad=True)
        sched = CosineAnnealingLR(opt, T_max=steps)
    elif config == "transformer-sgd-step":
        model = TinyTransformer()
        opt = SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
        sched = StepLR(opt, step_size=3, gamma=0.5)
    else:  # mlp-adam-step
        model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Dropout(0.2), nn.Linear(7, 3))
        opt = Adam(model.parameters(), lr=3e-3, betas=(0.8, 0.99))
        sched = StepLR(opt, step_size=2, gamma=0.7)
    return model, opt, sched


def batch(config):
    if config == "cnn-adamw-cosine":
        x = np.random.standard_normal((6, 1, 8, 8)).astype(np.float32)
        return kiln.from_numpy(x), kiln.from_numpy(np.random.randint(0, 3, 6))
    if config == "transformer-sgd-step":
        tokens = np.random.randint(0, 11, (3, 5))
        return kiln.from_numpy(tokens), kiln.from_numpy(np.roll(tokens, 1, axis=1).reshape(-1))
    x = np.random.standard_normal((4, 5)).astype(np.float32)
    return kiln.from_numpy(x), kiln.from_numpy(np.random.randint(0, 3, 4))


def train(config, model, opt, sched, steps):
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        x, y = batch(config)
        out = model(x)
        loss = loss_fn(out.reshape(-1, out.shape[-1]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
"""

SCRIPT = SETUP + r"""
import sys
from kiln.utils.checkpoint import CheckpointManager

mode, config, directory, out, n = sys.argv[1:6]
n = int(n)
np.random.seed(0)
kiln.manual_seed(0)
model, opt, sched = build(config, 2 * n)
manager = CheckpointManager(directory, max_to_keep=1)
if mode == "straight":
    train(config, model, opt, sched, 2 * n)
elif mode == "first-half":
    train(config, model, opt, sched, n)
    manager.save(n, model=model, optimizer=opt, scheduler=sched)
else:  # a fresh process with other RNG states restores, then trains the rest
    np.random.seed(123)
    kiln.manual_seed(123)
    assert manager.restore(model=model, optimizer=opt, scheduler=sched)["step"] == n
    train(config, model, opt, sched, n)
kiln.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
           "scheduler": sched.state_dict()}, out)
"""

CONFIGS = ["cnn-adamw-cosine", "transformer-sgd-step", "mlp-adam-step"]


def exact(obj):
    """A comparable form of a nested state: tensors become (dtype, shape, bytes)."""
    if isinstance(obj, kiln.Tensor):
        t = obj.detach()
        return ("tensor", str(t.dtype), tuple(t.shape), t.contiguous().numpy().tobytes())
    if isinstance(obj, dict):
        return {k: exact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(exact(v) for v in obj)
    return obj


def setup_namespace():
    namespace = {}
    exec(compile(SETUP, "setup", "exec"), namespace)  # the same code the subprocesses run
    return namespace


@pytest.mark.parametrize("config", CONFIGS)
def test_state_dicts_round_trip_exactly(tmp_path, config):
    ns = setup_namespace()
    np.random.seed(1)
    kiln.manual_seed(1)
    model, opt, sched = ns["build"](config, 8)
    ns["train"](config, model, opt, sched, 3)
    path = tmp_path / "state.safetensors"
    kiln.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    loaded = kiln.load(path)
    assert exact(loaded["model"]) == exact(model.state_dict())
    assert exact(loaded["optimizer"]) == exact(opt.state_dict())
    assert list(loaded["model"]) == list(model.state_dict())  # order kept
    assert all(isinstance(k, int) for k in loaded["optimizer"]["state"])

    # a fresh model and optimizer loaded from the file take the very same next step
    model2, opt2, sched2 = ns["build"](config, 8)
    model2.load_state_dict(loaded["model"])
    opt2.load_state_dict(loaded["optimizer"])
    sched2.load_state_dict(sched.state_dict())
    for m, o, s in ((model, opt, sched), (model2, opt2, sched2)):
        np.random.seed(2)
        kiln.manual_seed(2)
        ns["train"](config, m, o, s, 1)
    assert exact(model2.state_dict()) == exact(model.state_dict())
    assert exact(opt2.state_dict()) == exact(opt.state_dict())


def run(tmp_path, mode, config, n):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{mode}.safetensors"
    subprocess.run(
        [sys.executable, str(script), mode, config, str(tmp_path / "ckpts"), str(out), str(n)],
        check=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
    )
    return kiln.load(out)


@pytest.mark.parametrize("config", CONFIGS)
def test_resume_in_new_process_matches_straight_run_bit_for_bit(tmp_path, config):
    n = 4
    straight = run(tmp_path, "straight", config, n)
    run(tmp_path, "first-half", config, n)
    resumed = run(tmp_path, "second-half", config, n)
    assert exact(resumed["model"]) == exact(straight["model"])
    assert exact(resumed["optimizer"]) == exact(straight["optimizer"])
    assert resumed["scheduler"] == straight["scheduler"]
    # sanity: the optimizer has state for every parameter
    assert len(straight["optimizer"]["state"]) == len(
        [p for p in setup_namespace()["build"](config, 2 * n)[0].parameters()]
    )


def test_restore_into_a_model_of_another_shape_fails_clearly(tmp_path):
    from kiln.utils.checkpoint import CheckpointManager

    manager = CheckpointManager(tmp_path)
    model = nn.Linear(3, 2)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    manager.save(1, model=model, optimizer=opt)
    with pytest.raises(RuntimeError, match="size mismatch|shape"):
        manager.restore(model=nn.Linear(4, 2))
