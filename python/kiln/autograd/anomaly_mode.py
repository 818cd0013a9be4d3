"""Anomaly detection: name the op whose backward produced NaN/Inf and show where it was created."""

import traceback

from kiln import _C


def _forward_trace():
    # Drop kiln's own frames at the end so the user's call is the last line.
    return "".join(traceback.format_stack()[:-1])


_C._set_forward_trace_provider(_forward_trace)


class detect_anomaly:
    """Context manager/decorator enabling anomaly detection for autograd."""

    def __init__(self, check_nan=True):
        self._check = check_nan

    def __enter__(self):
        self._prev = _C.is_anomaly_enabled()
        _C._set_anomaly_enabled(self._check)

    def __exit__(self, *exc):
        _C._set_anomaly_enabled(self._prev)

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with detect_anomaly(self._check):
                return fn(*args, **kwargs)

        return wrapper


class set_detect_anomaly:
    """set_detect_anomaly(mode): turns anomaly detection on or off; restores it as a context."""

    def __init__(self, mode, check_nan=True):
        self._prev = _C.is_anomaly_enabled()
        _C._set_anomaly_enabled(bool(mode) and check_nan)

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        _C._set_anomaly_enabled(self._prev)
