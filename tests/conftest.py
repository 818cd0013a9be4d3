import numpy as np
import pytest

import kiln


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    try:
        import kiln.cuda as kc  # noqa: F401

        has_cuda = kc.is_available()
    except Exception:
        has_cuda = False
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None and not has_cuda:
            item.add_marker(skip)


assert kiln.__version__
