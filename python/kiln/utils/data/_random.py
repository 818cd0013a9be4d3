"""The random numbers data loading needs, from kiln's generators when kiln has them.

kiln's random ops (``kiln.Generator``, ``kiln.manual_seed``, ``kiln.randperm``,
``kiln.randint``, ``kiln.multinomial``, ``Tensor.random_``) make shuffling
reproducible from ``kiln.manual_seed`` exactly as in PyTorch. Where a build
lacks them this module falls back to NumPy generators with the same interface
(``manual_seed``, ``initial_seed``), and a ``numpy.random.Generator`` is
accepted wherever a ``generator`` argument is.
"""

import contextlib
import os
import random

import numpy as np

import kiln


def _kiln_has_random():
    return all(
        hasattr(kiln, n) for n in ("Generator", "manual_seed", "randperm", "randint", "multinomial")
    ) and hasattr(kiln.Tensor, "random_")


class NumpyGenerator:
    """Stands in for ``kiln.Generator`` when kiln has none: a seeded NumPy PCG64 stream."""

    def __init__(self, seed=None):
        self.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1 if seed is None else seed)

    def manual_seed(self, seed):
        self._seed = int(seed) & (2**64 - 1)
        self.rng = np.random.default_rng(self._seed)
        return self

    def initial_seed(self):
        return self._seed


_fallback_default = NumpyGenerator()


def default_generator():
    return kiln.default_generator if _kiln_has_random() else _fallback_default


def manual_seed(seed):
    """Seeds the default generator (kiln's, or the NumPy stand-in)."""
    if _kiln_has_random():
        return kiln.manual_seed(seed)
    return _fallback_default.manual_seed(seed)


def new_generator(seed):
    g = kiln.Generator() if _kiln_has_random() else NumpyGenerator()
    g.manual_seed(seed)
    return g


def _numpy_rng(generator):
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, NumpyGenerator):
        return generator.rng
    return None


def _kiln_generator(generator):
    """The generator to pass to kiln ops, or None when NumPy must be used."""
    if _numpy_rng(generator) is not None or not _kiln_has_random():
        return None
    return generator if generator is not None else kiln.default_generator


def _rng(generator):
    rng = _numpy_rng(generator)
    if rng is not None:
        return rng
    if generator is None:
        return _fallback_default.rng
    raise TypeError(
        f"generator must be a kiln.Generator or numpy.random.Generator, got {type(generator).__name__} "
        "(this kiln build has no random ops)"
    )


def draw_seed(generator=None):
    """A 63-bit seed drawn from ``generator`` (default: the default generator); advances it."""
    g = _kiln_generator(generator)
    if g is not None:
        return int(kiln.empty((), dtype=kiln.int64).random_(generator=g).item())
    return int(_rng(generator).integers(0, 2**63 - 1))


def randperm(n, generator=None):
    g = _kiln_generator(generator)
    if g is not None:
        return kiln.randperm(n, generator=g).tolist()
    return _rng(generator).permutation(n).tolist()


def randint(high, size, generator=None):
    g = _kiln_generator(generator)
    if g is not None:
        return kiln.randint(high, (size,), dtype=kiln.int64, generator=g).tolist()
    return _rng(generator).integers(0, high, size).tolist()


def multinomial(weights, num_samples, replacement, generator=None):
    """Indices drawn with probability proportional to ``weights`` (a float64 ndarray)."""
    g = _kiln_generator(generator)
    if g is not None:
        return kiln.multinomial(
            kiln.from_numpy(weights), num_samples, replacement, generator=g
        ).tolist()
    rng = _rng(generator)
    p = weights / weights.sum()
    if replacement:
        return rng.choice(len(p), num_samples, replace=True, p=p).tolist()
    return rng.choice(len(p), num_samples, replace=False, p=p).tolist()


@contextlib.contextmanager
def preserved_rng_state():
    """Restores Python's, NumPy's and the default generator's states on exit."""
    py, np_state = random.getstate(), np.random.get_state()
    kiln_state = (
        kiln.get_rng_state() if _kiln_has_random() and hasattr(kiln, "get_rng_state") else None
    )
    fallback = _fallback_default.rng.bit_generator.state
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        _fallback_default.rng.bit_generator.state = fallback
        if kiln_state is not None:
            kiln.set_rng_state(kiln_state)
