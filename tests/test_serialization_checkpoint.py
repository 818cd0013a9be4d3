"""kiln.utils.checkpoint.CheckpointManager: saving, pruning, restoring, exact resume."""

import os
import random
import subprocess
import sys

import kiln
import numpy as np
import pytest
from kiln.utils.checkpoint import CheckpointManager, get_rng_states, set_rng_states

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(kiln.__file__)))
HAS_KILN_RNG = all(
    hasattr(kiln, n) for n in ("manual_seed", "get_rng_state", "set_rng_state", "randn")
)


class Box:
    """Anything with state_dict()/load_state_dict() (stands in for nn.Module/optimizers)."""

    def __init__(self, **state):
        self.state = state

    def state_dict(self):
        return dict(self.state)

    def load_state_dict(self, sd):
        self.state = dict(sd)


def test_save_restore_latest_and_by_step(tmp_path):
    m = CheckpointManager(tmp_path / "ck", max_to_keep=None)
    assert m.latest_step is None and m.restore() is None
    model = Box(w=kiln.ones(2))
    for step in (0, 5, 10):
        model.state["w"] = kiln.full([2], float(step))
        path = m.save(step, model=model, sched=Box(epoch=step // 5), note="plain value")
        assert os.path.basename(path) == f"ckpt-{step}.safetensors"
    assert m.steps == [0, 5, 10] and m.latest_step == 10
    target, sched = Box(), Box()
    out = m.restore(model=target, sched=sched)
    assert out["step"] == 10 and out["note"] == "plain value"
    assert target.state["w"].tolist() == [10.0, 10.0] and sched.state == {"epoch": 2}
    assert m.restore(step=5, model=target)["step"] == 5
    assert target.state["w"].tolist() == [5.0, 5.0]
    with pytest.raises(FileNotFoundError, match=r"no checkpoint for step 7 .*\[0, 5, 10\]"):
        m.restore(step=7)
    with pytest.raises(KeyError, match="has no \\['optimizer'\\]"):
        m.restore(optimizer=Box())
    with pytest.raises(TypeError, match="no load_state_dict"):
        m.restore(note=object())
    with pytest.raises(ValueError, match="latest=True"):
        m.restore(latest=False)


def test_pruning_keeps_newest_and_every_n(tmp_path):
    m = CheckpointManager(tmp_path, max_to_keep=2, keep_every_n=4)
    for step in range(11):
        m.save(step, x=step)
    assert m.steps == [0, 4, 8, 9, 10]
    m2 = CheckpointManager(tmp_path, max_to_keep=1)
    m2.save(11, x=11)
    assert m2.steps == [11]
    with pytest.raises(ValueError):
        CheckpointManager(tmp_path, max_to_keep=0)


def test_other_files_and_temp_files_are_ignored(tmp_path):
    m = CheckpointManager(tmp_path, max_to_keep=1)
    (tmp_path / ".ckpt-9.safetensors.abc.tmp").write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("x")
    m.save(3, x=1)
    assert m.steps == [3]
    assert sorted(os.listdir(tmp_path)) == [
        ".ckpt-9.safetensors.abc.tmp",
        "ckpt-3.safetensors",
        "notes.txt",
    ]


def test_unstorable_state_is_reported_with_its_name(tmp_path):
    m = CheckpointManager(tmp_path)
    with pytest.raises(TypeError, match=r"opt\['lr_fn'\]: function is not storable"):
        m.save(1, opt=Box(lr_fn=lambda s: s))
    assert m.steps == []
    with pytest.raises(ValueError, match="reserved"):
        m.save(1, rng=1)


def test_rng_states_round_trip_in_process(tmp_path):
    m = CheckpointManager(tmp_path)
    np.random.seed(3)
    random.seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in NumPy's state
    random.gauss(0, 1)
    m.save(0)

    def draw():
        kiln_draw = kiln.randn(4).tolist() if HAS_KILN_RNG else None
        return np.random.standard_normal(5).tolist(), random.random(), random.gauss(0, 1), kiln_draw

    expected = draw()
    m.restore()
    assert draw() == expected
    assert set(get_rng_states()) == (
        {"numpy", "python", "kiln"} if HAS_KILN_RNG else {"numpy", "python"}
    )
    set_rng_states({})  # nothing to restore is fine


# --------------------------------------------------------------- exact resume

TRAIN_SCRIPT = r"""
import random, sys
import numpy as np
import kiln
from kiln.utils.checkpoint import CheckpointManager

mode, directory, out, n, use_kiln_rng = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"


class Linear:
    def __init__(self):
        self.w = kiln.from_numpy(np.random.standard_normal((4, 3)).astype(np.float32)).requires_grad_(True)
        self.b = kiln.zeros(3, requires_grad=True)

    def parameters(self):
        return [self.w, self.b]

    def __call__(self, x):
        return (x.unsqueeze(2) * self.w).sum(1) + self.b

    def state_dict(self):
        return {"w": self.w.detach(), "b": self.b.detach()}

    def load_state_dict(self, sd):
        with kiln.no_grad():
            self.w.copy_(sd["w"])
            self.b.copy_(sd["b"])


class MomentumSGD:
    def __init__(self, params, lr, momentum):
        self.params, self.lr, self.momentum = params, lr, momentum
        self.bufs, self.steps = [None] * len(params), 0

    def step(self, scale):
        with kiln.no_grad():
            for i, p in enumerate(self.params):
                g = p.grad
                self.bufs[i] = g.clone() if self.bufs[i] is None else self.bufs[i] * self.momentum + g
                p.sub_(self.bufs[i] * (self.lr * scale))
                p.grad = None
        self.steps += 1

    def state_dict(self):
        return {"bufs": list(self.bufs), "steps": self.steps, "lr": self.lr}

    def load_state_dict(self, sd):
        self.bufs, self.steps, self.lr = list(sd["bufs"]), sd["steps"], sd["lr"]


def train(model, opt, steps):
    for _ in range(steps):
        x = kiln.from_numpy(np.random.standard_normal((8, 4)).astype(np.float32))
        y = x.sum(1, keepdim=True) * 0.5
        if use_kiln_rng:  # noise from kiln's own generator
            x = x + kiln.randn(8, 4) * 0.01
        pred = model(x)
        loss = ((pred - y) * (pred - y)).sum()
        loss.backward()
        opt.step(scale=random.uniform(0.5, 1.5))  # Python's RNG drives the step size


np.random.seed(0)
random.seed(0)
if use_kiln_rng:
    kiln.manual_seed(0)
model = Linear()
opt = MomentumSGD(model.parameters(), lr=0.01, momentum=0.9)
manager = CheckpointManager(directory, max_to_keep=2)
if mode == "straight":
    train(model, opt, 2 * n)
elif mode == "first-half":
    train(model, opt, n)
    manager.save(n, model=model, optimizer=opt)
else:  # second-half, in a fresh process: scrambled RNGs, then restore
    np.random.seed(123)
    random.seed(123)
    state = manager.restore(model=model, optimizer=opt)
    assert state["step"] == n
    train(model, opt, n)
kiln.save(model.state_dict(), out)
"""


def run_training(tmp_path, mode, n, use_kiln_rng):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    out = tmp_path / f"{mode}.safetensors"
    subprocess.run(
        [
            sys.executable,
            str(script),
            mode,
            str(tmp_path / "ckpts"),
            str(out),
            str(n),
            "1" if use_kiln_rng else "0",
        ],
        check=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
    )
    return kiln.load(out)


def bits(sd):
    return {k: v.numpy().tobytes() for k, v in sd.items()}


@pytest.mark.parametrize(
    "use_kiln_rng",
    [
        False,
        pytest.param(
            True,
            marks=pytest.mark.skipif(
                not HAS_KILN_RNG,
                reason="this kiln has no global RNG (kiln.manual_seed/get_rng_state/"
                "set_rng_state/randn); the NumPy+Python RNG resume is still tested",
            ),
        ),
    ],
    ids=["numpy+python-rng", "kiln+numpy+python-rng"],
)
def test_resume_in_new_process_is_bit_identical(tmp_path, use_kiln_rng):
    n = 15
    straight = run_training(tmp_path, "straight", n, use_kiln_rng)
    run_training(tmp_path, "first-half", n, use_kiln_rng)
    resumed = run_training(tmp_path, "second-half", n, use_kiln_rng)
    assert bits(straight) == bits(resumed)
    # sanity: the resumed run really depended on the restored state
    assert straight["w"].numpy().std() > 0
