"""Dropout functionals (elementwise and channel-wise)."""

import kiln


def _check_p(p, op):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"[{op}] dropout probability has to be between 0 and 1, but got {p}")


def dropout(input, p=0.5, training=True, inplace=False):
    _check_p(p, "dropout")
    return kiln.dropout(input, p, training, inplace)


def dropout2d(input, p=0.5, training=True, inplace=False):
    _check_p(p, "dropout2d")
    return kiln.dropout2d(input, p, training, inplace)
