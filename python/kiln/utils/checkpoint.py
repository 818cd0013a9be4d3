"""Training checkpoints that resume exactly: kiln.utils.checkpoint.CheckpointManager.

    manager = CheckpointManager("ckpts", max_to_keep=3, keep_every_n=1000)
    manager.save(step, model=model, optimizer=opt, scheduler=sched)
    ...
    state = manager.restore(model=model, optimizer=opt, scheduler=sched)  # latest
    start = state["step"] + 1 if state else 0

Each checkpoint is one `kiln.save` file, `<directory>/ckpt-<step>.safetensors`
(atomic, checksummed). It holds each object's `state_dict()` (or the object
itself when it is a plain value or tensor) and the random states of kiln (when
this kiln has a global generator), NumPy's global generator and Python's
`random`, so that a run restored in a fresh process draws the same numbers as
one that never stopped.
"""

import os
import random
import re

import numpy as np

import kiln
from kiln.serialization import check_storable

_NAME = re.compile(r"^ckpt-(\d+)\.safetensors$")


def get_rng_states():
    """The global random states: kiln's (when available), NumPy's and Python's."""
    states = {
        "numpy": np.random.get_state(legacy=False),
        "python": random.getstate(),
    }
    if hasattr(kiln, "get_rng_state"):
        states["kiln"] = kiln.get_rng_state()
    return states


def set_rng_states(states):
    """Restore states from get_rng_states(); a kiln state is skipped when this kiln has
    no global generator."""
    if "numpy" in states:
        np.random.set_state(states["numpy"])
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "kiln" in states and hasattr(kiln, "set_rng_state"):
        kiln.set_rng_state(states["kiln"])


class CheckpointManager:
    """Saves numbered checkpoints in `directory`, keeps the newest `max_to_keep`
    (None keeps all) plus every step divisible by `keep_every_n`, and restores them."""

    def __init__(self, directory, max_to_keep=5, keep_every_n=None):
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(
                f"[CheckpointManager] max_to_keep must be >= 1 or None, got {max_to_keep}"
            )
        if keep_every_n is not None and keep_every_n < 1:
            raise ValueError(
                f"[CheckpointManager] keep_every_n must be >= 1 or None, got {keep_every_n}"
            )
        self.directory = os.fspath(directory)
        self.max_to_keep = max_to_keep
        self.keep_every_n = keep_every_n
        os.makedirs(self.directory, exist_ok=True)

    def path(self, step):
        return os.path.join(self.directory, f"ckpt-{step}.safetensors")

    @property
    def steps(self):
        """Steps with a checkpoint in the directory, ascending."""
        found = (_NAME.match(n) for n in os.listdir(self.directory))
        return sorted(int(m.group(1)) for m in found if m)

    @property
    def latest_step(self):
        """The newest checkpoint's step, or None if there is none."""
        steps = self.steps
        return steps[-1] if steps else None

    def save(self, step, **objects):
        """Write checkpoint `step` holding each object's state_dict() (plain values and
        tensors are stored as they are) and the RNG states; prunes old checkpoints.
        Returns the file's path."""
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"[CheckpointManager.save] step must be an int >= 0, got {step!r}")
        for name in objects:
            if name in ("step", "rng"):
                raise ValueError(
                    f"[CheckpointManager.save] {name!r} is reserved; use another keyword"
                )
        states = {name: _state_of(obj) for name, obj in objects.items()}
        for name, value in states.items():
            try:
                check_storable(value, name)
            except (TypeError, ValueError) as e:
                raise type(e)(f"[CheckpointManager.save] {e}") from None
        state = {"step": step, "objects": states, "rng": get_rng_states()}
        path = self.path(step)
        kiln.save(state, path)
        self._prune()
        return path

    def restore(self, step=None, *, latest=True, restore_rng=True, map_location=None, **objects):
        """Load checkpoint `step` (or the newest when `step` is None and `latest`).

        Objects passed as keywords get `load_state_dict()` with their saved state; the
        RNG states are restored too unless `restore_rng=False`. Returns
        {"step": step, name: saved state, ...} for every saved object, or None when
        `latest` is asked for and the directory has no checkpoint."""
        if step is None:
            if not latest:
                raise ValueError("[CheckpointManager.restore] give step=N or latest=True")
            step = self.latest_step
            if step is None:
                return None
        path = self.path(step)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"[CheckpointManager.restore] no checkpoint for step {step} "
                f"in {self.directory!r} (have {self.steps})"
            )
        state = kiln.load(path, map_location=map_location)
        if not isinstance(state, dict) or not {"step", "objects", "rng"} <= set(state):
            raise ValueError(
                f"[CheckpointManager.restore] {path!r} is not a checkpoint "
                "written by CheckpointManager"
            )
        saved = state["objects"]
        missing = [name for name in objects if name not in saved]
        if missing:
            raise KeyError(
                f"[CheckpointManager.restore] checkpoint {step} has no {missing}; "
                f"it holds {sorted(saved)}"
            )
        for name, obj in objects.items():
            if not hasattr(obj, "load_state_dict"):
                raise TypeError(
                    f"[CheckpointManager.restore] {name}: "
                    f"{type(obj).__name__} has no load_state_dict()"
                )
            obj.load_state_dict(saved[name])
        if restore_rng:
            set_rng_states(state["rng"])
        return {"step": state["step"], **saved}

    def _prune(self):
        if self.max_to_keep is None:
            return
        steps = self.steps
        for step in steps[: -self.max_to_keep]:
            if self.keep_every_n is not None and step % self.keep_every_n == 0:
                continue
            try:
                os.remove(self.path(step))
            except FileNotFoundError:  # another process pruned it first
                pass


def _state_of(obj):
    return obj.state_dict() if hasattr(obj, "state_dict") else obj
