"""Hostile model files: every attack ends in our own error naming the file,
before anything large is allocated; nothing loads that would fail (or give
NaN) later."""
import errno
import os
import zipfile

import numpy as np
import pytest

from core import ModelFileError, load_model
from core.exceptions import ConfigError, InputError

from .conftest import (assert_ours, meta_array, meta_of, npy_header, read_npz, rewrite, run_capped, run_capped_many,
                       small_model)

LOAD = "from core import load_model\nload_model({path!r})"


# ------------------------------------------------------- memory: child under a cap
CAP_ATTACKS = ["units", "filters", "filters_3e8", "input_shape"]


def _huge_header_file(folder, model_file):
    path = folder / "huge_header.npz"
    data = read_npz(model_file)
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in data.items():
            if name == "weights/0/kernel":  # 400 GB declared over a 16-byte body
                zf.writestr(name + ".npy", npy_header((100_000, 100_000, 10)) + bytes(16))
            else:
                with zf.open(name + ".npy", "w") as member:
                    np.lib.format.write_array(member, arr, allow_pickle=False)
    return str(path)


def _cap_file(folder, model_file, attack):
    def change(meta):
        layers = meta["model"]["layers"]
        if attack == "units":
            layers[-1]["config"]["units"] = 10**12
        elif attack == "filters":
            layers[0]["config"]["filters"] = 10**12
        elif attack == "filters_3e8":
            layers[0]["config"]["filters"] = 300_000_000
        else:
            meta["model"]["input_shape"] = [10**6, 10**6, 1]
        return meta

    return rewrite(model_file, folder / f"{attack}.npz", meta=change)


@pytest.fixture(scope="module")
def capped(tmp_path_factory, model_file, bomb_file):
    """The memory attacks, each run in one child process limited to 384 MiB more
    than its imports: ``{name: (path, result)}``."""
    folder = tmp_path_factory.mktemp("capped")
    paths = {"huge_header": _huge_header_file(folder, model_file), "bomb": bomb_file}
    paths.update({a: _cap_file(folder, model_file, a) for a in CAP_ATTACKS})
    attacks = {name: LOAD.format(path=p) for name, p in paths.items()}
    attacks["conv3d_in_code"] = "from core import Input, Sequential, layers\n" \
                                "Sequential([Input((4, 4, 4, 1)), layers.Conv3D(10**10, 2)])"
    results = run_capped_many(attacks, headroom_mb=384, timeout=60)
    return {name: (paths.get(name), results[name]) for name in attacks}


def test_npy_header_declaring_a_huge_shape_is_refused_before_allocation(capped):
    path, result = capped["huge_header"]
    assert_ours(result, path, "weights/0/kernel", "(100000, 100000, 10)")


def test_deflate_bomb_member_is_not_inflated(capped):
    path, result = capped["bomb"]
    assert_ours(result, path, "extra")


@pytest.mark.parametrize("attack", CAP_ATTACKS)
def test_architecture_asking_for_huge_weights_hits_the_parameter_cap(capped, attack):
    path, result = capped[attack]
    assert_ours(result, path, "cap", "set_max_params")


def test_conv3d_built_in_code_hits_the_parameter_cap(capped):
    _, result = capped["conv3d_in_code"]
    assert_ours(result, "conv3d", "100,000,000", "set_max_params")
    assert result["raised"] == "ConfigError"


def test_parameter_cap_is_configurable_and_exact():
    from core import Input, Sequential, layers, limits

    def build():
        return Sequential([Input((8,)), layers.Dense(10)])  # 8 * 10 + 10 = 90 parameters

    with limits.max_params_scope(89):
        with pytest.raises(ConfigError, match="the cap is 89 parameters"):
            build()
    with limits.max_params_scope(90):
        assert build().count_params() == 90
    with pytest.raises(ConfigError, match="max_params"):
        limits.set_max_params(0)


def test_model_file_budget_counts_the_whole_architecture(tmp_path):
    """Each layer is under the cap, the model is not: a model file is refused."""
    from core import Input, Sequential, layers, limits

    m = Sequential([Input((8,)), layers.Dense(10), layers.Dense(10)])  # 90 + 110 parameters
    path = str(tmp_path / "two.npz")
    m.save(path)
    with limits.max_params_scope(150):
        with pytest.raises(ModelFileError, match=r"two\.npz.*needs more than 190 parameters.*cap is 150"):
            load_model(path)
    with limits.max_params_scope(200):
        assert load_model(path).count_params() == 200


# ----------------------------------------------------------- malformed descriptions
def _deep(meta):
    import json

    text = json.dumps(meta)
    return text[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"


def _set(path, value):
    def change(meta):
        target = meta
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return meta
    return change


def _opt_config(key, value):
    def change(meta):
        opt = meta["compile"]["optimizer"]
        opt["config"][key] = value
        return meta
    return change


META_ATTACKS = {
    "deep_nesting": (None, "nests deeper"),
    "layers_as_dict": (_set(["model", "layers"], {"0": "Conv2D"}), "model.layers"),
    "spec_as_string": (_set(["model", "layers", 0], "Conv2D"), "model.layers[0]"),
    "meta_as_list": (lambda meta: [meta], "JSON object"),
    "version_as_string": (_set(["version"], "1"), "version"),
    "dtype_object": (_set(["model", "layers", 0, "config", "dtype"], "object"), "dtype"),
    "optimizer_unknown_key": (_opt_config("bogus", 1), "bogus"),
    "learning_rate_not_a_number": (_opt_config("learning_rate", "fast"), "learning_rate"),
    "learning_rate_as_text": (_opt_config("learning_rate", "0.1"), "learning_rate"),
}


@pytest.mark.parametrize("attack", sorted(META_ATTACKS))
def test_malformed_description_is_a_model_file_error(tmp_path, model_file, attack):
    change, expected = META_ATTACKS[attack]
    dst = tmp_path / f"{attack}.npz"
    if attack == "deep_nesting":
        data = read_npz(model_file)
        data["__meta__"] = meta_array(_deep(meta_of(data)))
        np.savez(dst, **data)
        path = str(dst)
    else:
        path = rewrite(model_file, dst, meta=change)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert path in str(info.value) and expected in str(info.value)


ARRAY_ATTACKS = {
    "iterations_as_strings": (lambda a: a.update({"optimizer/iterations": np.array(["12", "x"])}),
                              "optimizer/iterations"),
    "slot_of_wrong_shape": (lambda a: a.update({"optimizer/m/0/kernel": np.zeros((2, 2), np.float32)}),
                            "optimizer/m/0/kernel"),
    "slot_of_no_weight": (lambda a: a.update({"optimizer/m/9/kernel": np.zeros((2, 2), np.float32)}),
                          "optimizer/m/9/kernel"),
    "weights_as_strings": (lambda a: a.update({"weights/0/kernel": np.full(a["weights/0/kernel"].shape, "w")}),
                           "weights/0/kernel"),
    "weights_nan": (lambda a: a["weights/0/bias"].__setitem__(0, np.nan), "NaN"),
    "slot_inf": (lambda a: a["optimizer/v/3/kernel"].__setitem__(0, np.inf), "optimizer/v/3/kernel"),
    "unexpected_member": (lambda a: a.update({"payload": np.zeros(3)}), "payload"),
    "object_extra": (lambda a: a.update({"extra/x": np.zeros(3, np.complex64)}), "extra/x"),
}


@pytest.mark.parametrize("attack", sorted(ARRAY_ATTACKS))
def test_malformed_arrays_are_refused_at_load(tmp_path, model_file, attack):
    change, expected = ARRAY_ATTACKS[attack]
    path = rewrite(model_file, tmp_path / f"{attack}.npz", arrays=change)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert path in str(info.value) and expected in str(info.value)


def test_a_good_file_still_loads_and_resumes(model_file):
    model = load_model(model_file)
    state = model.optimizer.get_state()
    assert int(state["iterations"]) == 1 and state["m/0/kernel"].shape == (3, 3, 1, 4)
    assert np.abs(state["m/0/kernel"]).sum() > 0


# ----------------------------------------------------------------- paths
def test_a_folder_is_refused_by_name(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path}.*folder"):
        load_model(tmp_path)


def test_a_fifo_is_refused_without_opening_it(tmp_path):
    fifo = str(tmp_path / "model.npz")
    os.mkfifo(fifo)
    result = run_capped(LOAD.format(path=fifo), timeout=10)
    assert_ours(result, fifo, "FIFO")


def test_none_is_refused_by_argument():
    with pytest.raises(InputError, match="model file: expected a path.*NoneType"):
        load_model(None)


def test_save_over_a_folder_is_refused_and_leaves_it_alone(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(InputError, match=f"{tmp_path}.*folder"):
        small_model().save(tmp_path)
    assert os.listdir(tmp_path) == ["keep.txt"]


@pytest.mark.parametrize("failure", ["disk_full", "read_only"])
def test_a_failed_write_names_the_file_and_leaves_the_old_one(tmp_path, monkeypatch, failure):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    if failure == "disk_full":
        def fail(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(os, "fsync", fail)
    else:
        import core.io

        def fail(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")
        monkeypatch.setattr(core.io, "_create_temporary", fail)
    from core.exceptions import FileWriteError

    with pytest.raises(FileWriteError) as info:
        small_model().save(path)
    assert str(path) in str(info.value) and info.value.errno in (errno.ENOSPC, errno.EROFS)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.npz"]


def test_slots_of_a_layer_frozen_after_training_still_load(tmp_path):
    model = small_model()
    model.layers[0].trainable = False
    path = str(tmp_path / "frozen.npz")
    model.save(path)
    assert load_model(path).optimizer.get_state()["m/0/kernel"].shape == (3, 3, 1, 4)
