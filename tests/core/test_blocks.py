"""The block size of large convolutions: how the default follows the L2 cache, the setting and
its environment variable, and layers built with it."""
import numpy as np
import pytest

from core import ConfigError, Input, Sequential, config, layers


@pytest.fixture(autouse=True)
def _default_blocks(monkeypatch):
    monkeypatch.delenv("NUMPY_CNN_BLOCK_BYTES", raising=False)
    config.set_block_bytes(None)
    yield
    config.set_block_bytes(None)


def _cache_tree(root, entries):
    for i, (level, kind, size, *shared) in enumerate(entries):
        entry = root / f"index{i}"
        entry.mkdir(parents=True)
        (entry / "level").write_text(f"{level}\n")
        (entry / "type").write_text(f"{kind}\n")
        (entry / "size").write_text(f"{size}\n")
        if shared:
            (entry / "shared_cpu_list").write_text(f"{shared[0]}\n")
    return str(root)


def test_l2_cache_size_is_read_from_the_cache_entries(tmp_path):
    sapphire = _cache_tree(tmp_path / "a", [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                                            (3, "Unified", "307200K")])
    assert config.l2_cache_bytes(sapphire) == 2 << 20
    zen4 = _cache_tree(tmp_path / "b", [(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "1M"),
                                        (3, "Unified", "32M")])
    assert config.l2_cache_bytes(zen4) == 1 << 20
    assert config.l2_cache_bytes(_cache_tree(tmp_path / "c", [(1, "Data", "32K"), (3, "Unified", "8M")])) is None
    assert config.l2_cache_bytes(_cache_tree(tmp_path / "d", [(2, "Unified", "unknown")])) is None
    assert config.l2_cache_bytes(str(tmp_path / "missing")) is None
    # an L2 shared by a cluster of cores, or by a core's two hyperthreads: the share of one CPU
    cluster = _cache_tree(tmp_path / "e", [(1, "Data", "32K", "0"), (2, "Unified", "4096K", "0-3"),
                                           (3, "Unified", "36M", "0-15")])
    assert config.l2_cache_bytes(cluster) == 1 << 20
    assert config.l2_cache_bytes(_cache_tree(tmp_path / "f", [(2, "Unified", "2048K", "0,48")])) == 1 << 20
    assert config.l2_cache_bytes(_cache_tree(tmp_path / "g", [(2, "Unified", "2048K", "0")])) == 2 << 20
    assert config.l2_cache_bytes(_cache_tree(tmp_path / "h", [(2, "Unified", "2048K", "?")])) == 2 << 20


@pytest.mark.parametrize("l2, block", [(2 << 20, 1 << 20), (4 << 20, 2 << 20), (1 << 20, 2 << 20),
                                       (1280 << 10, 2 << 20), (512 << 10, 2 << 20)])
def test_default_block_is_half_of_a_large_l2_cache(l2, block):
    assert config.default_block_bytes(l2) == block


def test_default_block_where_the_cache_is_unknown(monkeypatch):
    monkeypatch.setattr(config, "l2_cache_bytes", lambda *a: None)
    monkeypatch.setitem(config._block, "l2", "unread")  # (read once, then kept)
    assert config.default_block_bytes() == config.SHARED_CACHE_BLOCK == 2 << 20


def test_set_block_bytes_then_environment_then_default(monkeypatch):
    default = config.block_bytes()
    assert default == config.default_block_bytes()
    monkeypatch.setenv("NUMPY_CNN_BLOCK_BYTES", "2M")
    assert config.block_bytes() == 2 << 20
    config.set_block_bytes("512K")
    assert config.block_bytes() == 512 << 10
    config.set_block_bytes(1 << 20)
    assert config.block_bytes() == 1 << 20
    config.set_block_bytes(None)
    assert config.block_bytes() == 2 << 20
    monkeypatch.setenv("NUMPY_CNN_BLOCK_BYTES", "65536")
    assert config.block_bytes() == 65536
    monkeypatch.delenv("NUMPY_CNN_BLOCK_BYTES")
    assert config.block_bytes() == default


@pytest.mark.parametrize("bad", [0, -4096, True, 1.5, "abc", "K", "", "-1M", "4 MB", [4096], "\u00b2", "\u0664M"])
def test_set_block_bytes_validates(bad):
    with pytest.raises(ConfigError, match="set_block_bytes"):
        config.set_block_bytes(bad)


@pytest.mark.parametrize("raw", ["0", "lots", "1.5M", "-2K"])
def test_block_bytes_environment_validated(monkeypatch, raw):
    monkeypatch.setenv("NUMPY_CNN_BLOCK_BYTES", raw)
    with pytest.raises(ConfigError, match=f"NUMPY_CNN_BLOCK_BYTES.*{raw}"):
        config.block_bytes()


def _network(seed=3):
    conv = layers.Conv3D(4, 3, activation="relu")
    model = Sequential([Input((12, 11, 10, 1)), conv, layers.MaxPooling3D(2), layers.Flatten(), layers.Dense(3)],
                       seed=seed)
    conv.chunk_threshold = 0  # in blocks in training too
    return model, conv


def test_layers_built_after_the_setting_take_its_blocks():
    """A layer reads the block size when it is built, its own ``chunk_bytes`` overrides it, and
    two block sizes give the same outputs and gradients up to float32 rounding."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 12, 11, 10, 1)).astype(np.float32)
    dy = rng.normal(size=(3, 3)).astype(np.float32)
    results = {}
    for size in ("1M", 4096):
        config.set_block_bytes(size)
        model, conv = _network()
        assert conv.block_size == conv._block_bytes == config.block_bytes()
        out, ctx = conv.forward(x, training=True)
        assert ctx["cols"] is None  # built in blocks, rebuilt in backward
        dx, grads = conv.backward(ctx, np.ones_like(out) * dy[:, None, None, None, :1], need_input_grad=True)
        results[size] = (conv._chunk_rows, out, dx, grads["kernel"], model.predict(x))
    config.set_block_bytes(None)
    (rows_big, *big), (rows_small, *small) = results["1M"], results[4096]
    assert rows_big == 10 and rows_small < 10  # whole samples against a few rows
    for a, b in zip(big, small):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()))
    model, conv = _network()
    conv.chunk_bytes = 4096
    conv.build(conv.input_shape)
    assert conv.block_size == 4096 and conv._chunk_rows == rows_small


def test_a_built_layer_keeps_the_block_size_it_was_built_with():
    """``set_block_bytes`` after a model is built leaves its layers' blocks, and their choice of
    blocks in inference, as they were; a layer built after it takes the new size."""
    x = np.zeros((3, 12, 11, 10, 1), np.float32)  # 3 x 1080 positions x 27 x 4 bytes: 350 KB of columns
    config.set_block_bytes("1M")
    _, built = _network()
    built.chunk_threshold = 8 << 20
    config.set_block_bytes("64K")
    _, fresh = _network()
    fresh.chunk_threshold = 8 << 20
    assert (built._block_bytes, built._chunk_rows) == (1 << 20, 10)
    assert built.block_size == 1 << 20 and fresh.block_size == 64 << 10  # what each layer uses
    assert not built._use_chunks(x, keep=False)  # whole in inference: under its 1 MB block
    assert fresh._block_bytes == 64 << 10 and fresh._chunk_rows < 10 and fresh._use_chunks(x, keep=False)


@pytest.mark.parametrize("channels_last, l2, expected", [
    (True, 1 << 20, 5 << 20), (True, 1280 << 10, 5 << 20), (True, 2 << 20, 8 << 20),
    (False, 1 << 20, 8 << 20), (False, 4 << 20, 8 << 20)])
def test_training_keeps_columns_whole_up_to_a_size_that_follows_the_l2_cache(channels_last, l2, expected):
    assert config.training_column_bytes(channels_last, l2) == expected


def test_training_column_bytes_reads_this_machines_l2_once(monkeypatch):
    calls = []
    monkeypatch.setattr(config, "l2_cache_bytes", lambda *a: calls.append(1) or (1 << 20))
    monkeypatch.setitem(config._block, "l2", "unread")
    assert config.training_column_bytes(True) == config.training_column_bytes(True) == 5 << 20
    assert config.training_column_bytes(False) == 8 << 20 and len(calls) == 1
    monkeypatch.setitem(config._block, "l2", None)  # a machine that does not say
    assert config.training_column_bytes(True) == 8 << 20


def test_inference_blocks_keep_the_8_mb_ceiling(monkeypatch):
    """The smaller training threshold leaves inference alone: there a layer builds its columns
    in blocks above the smaller of one block and 8 MB, whatever the L2."""
    from core.layers.conv import Conv
    monkeypatch.setattr(Conv, "chunk_threshold", None)
    monkeypatch.setitem(config._block, "l2", 1 << 20)
    conv = layers.Conv2D(16, 5, padding="same")
    conv.chunk_bytes = 16 << 20  # blocks larger than either threshold
    Sequential([Input((14, 14, 6)), conv], seed=0)
    x = np.zeros((60, 14, 14, 6), np.float32)  # 6.7 MB of columns
    assert conv._use_chunks(x) and not conv._use_chunks(x, keep=False)
    assert conv._use_chunks(np.zeros((72, 14, 14, 6), np.float32), keep=False)  # 8.1 MB


def _lenet_second_conv():
    """LeNet-5's second convolution (6 -> 16 channels, 5x5 'same' on 14x14): columns channels
    last, 117,600 bytes a sample."""
    conv = layers.Conv2D(16, 5, padding="same", activation="relu")
    Sequential([Input((14, 14, 6)), conv], seed=0)
    return conv


@pytest.mark.parametrize("l2, whole_up_to", [(1 << 20, 44), (2 << 20, 71), (None, 71)])
def test_default_threshold_of_a_layer_follows_the_l2_cache(monkeypatch, l2, whole_up_to):
    """With the default threshold (``chunk_threshold`` None) a layer with channels-last columns
    keeps them whole in training up to 5 MB where the L2 is small (44 samples here), 8 MB
    elsewhere (71); a one-channel layer (columns channels first) up to 8 MB everywhere."""
    from core.layers.conv import Conv
    monkeypatch.setattr(Conv, "chunk_threshold", None)
    monkeypatch.setitem(config._block, "l2", l2)
    conv = _lenet_second_conv()
    assert conv._cols_last and conv._sample_column_bytes == 14 * 14 * 25 * 6 * 4
    for n, whole in ((whole_up_to, True), (whole_up_to + 1, False)):
        assert conv._use_chunks(np.zeros((n, 14, 14, 6), np.float32)) is not whole
    first = layers.Conv2D(4, 5, padding="same")
    Sequential([Input((20, 20, 1)), first], seed=0)  # 40,000 bytes of columns a sample
    assert not first._cols_last
    assert not first._use_chunks(np.zeros((209, 20, 20, 1), np.float32))  # 8.0 MB
    assert first._use_chunks(np.zeros((210, 20, 20, 1), np.float32))


def test_the_lower_threshold_trains_in_blocks_to_the_same_gradients(monkeypatch):
    """LeNet-5's second convolution at batch 64 (7.5 MB of columns) where the L2 is small: built
    in blocks in training by default, with the outputs and gradients of the whole matrix."""
    from core.layers.conv import Conv
    monkeypatch.setattr(Conv, "chunk_threshold", None)
    monkeypatch.setitem(config._block, "l2", 1 << 20)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 14, 14, 6)).astype(np.float32)
    dy = rng.normal(size=(64, 14, 14, 16)).astype(np.float32)
    conv = _lenet_second_conv()
    results = []
    for threshold in (None, 1 << 30):
        conv.chunk_threshold = threshold
        out, ctx = conv.forward(x, training=True)
        assert (ctx["cols"] is None) is (threshold is None)
        dx, grads = conv.backward(ctx, dy)
        results.append([out.copy(), dx.copy(), grads["kernel"].copy(), grads["bias"].copy()])
    for blocks, whole in zip(*results):
        np.testing.assert_allclose(blocks, whole, rtol=1e-5, atol=1e-5 * float(np.abs(whole).max()))
