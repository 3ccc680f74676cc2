import numpy as np
import pytest

from core import config


@pytest.fixture
def float64():
    """Build layers in float64 for the duration of a test (gradient checks)."""
    with config.floatx_scope("float64"):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
