import numpy as np
import pytest

from core import config, shardprocs


@pytest.fixture
def float64():
    """Build layers in float64 for the duration of a test (gradient checks)."""
    with config.floatx_scope("float64"):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def shards_on_threads():
    """Run sharded batches on threads for the duration of a test: a test that counts calls
    through a patched method sees only this process's (``core.shardprocs``)."""
    shardprocs.set_shard_processes(False)
    yield
    shardprocs.set_shard_processes(None)
