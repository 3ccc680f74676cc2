"""Parameters: normalization, and which of them key the output folders."""
import os

import luigi
import numpy as np
import pytest

import pipelines
from core.exceptions import ConfigError
from pipelines.medical_tasks import parse_normalize
from pipelines.params import sweep_values

from .conftest import HAR_SMALL


def _hash_part(folder):
    return os.path.basename(folder).rsplit("-", 1)[1]


@pytest.mark.parametrize("given", ["16", "16x16x16", "16,16,16", "[16, 16, 16]", (16, 16, 16), [16, 16, 16], 16])
def test_shape_spellings_give_one_task(given, tmp_path):
    ref = pipelines.TrainMedical(output_dir=str(tmp_path), shape=(16, 16, 16))
    task = pipelines.TrainMedical(output_dir=str(tmp_path), shape=given)
    assert task.shape == (16, 16, 16)
    assert task.task_id == ref.task_id
    assert task.output_folder() == ref.output_folder()


@pytest.mark.parametrize("bad", ["16x16", "0", "-3", "abc", "16x16x16x16", (1.5, 2, 2)])
def test_bad_shape_is_a_config_error(bad, tmp_path):
    with pytest.raises(ConfigError, match="expected"):
        pipelines.PrepareMedical(output_dir=str(tmp_path), shape=bad)


def test_spacing_accepts_floats_and_none(tmp_path):
    assert pipelines.PrepareMedical(spacing="1.5").spacing == (1.5, 1.5, 1.5)
    assert pipelines.PrepareMedical(spacing="1x1x2.5").spacing == (1.0, 1.0, 2.5)
    assert pipelines.PrepareMedical(spacing="").spacing is None
    assert pipelines.PrepareMedical().spacing is None


def test_relative_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    task = pipelines.PrepareHAR(source="data/x.ts", output_dir="out")
    assert task.source == str(tmp_path / "data" / "x.ts")
    assert task.output_dir == str(tmp_path / "out")
    assert task.data_folder().startswith(str(tmp_path / "out" / "har" / "x-"))
    assert pipelines.PrepareHAR(source=str(tmp_path / "data" / "x.ts"), output_dir="out").task_id == task.task_id


def test_every_significant_parameter_changes_the_folder_and_others_do_not(tmp_path):
    base = dict(output_dir=str(tmp_path / "a"), **HAR_SMALL)
    ref = pipelines.TrainHAR(**base)
    data_changes = dict(window=64, data_seed=1, test_size=0.3, max_samples=50, synthetic_subjects=5,
                        synthetic_windows=4)
    train_changes = dict(epochs=3, batch_size=8, learning_rate=0.01, seed=1, patience=2, validation_split=0.2,
                         augment=False)
    for name, value in data_changes.items():
        task = pipelines.TrainHAR(**{**base, name: value})
        assert task.data_folder() != ref.data_folder(), name
        assert task.output_folder() != ref.output_folder(), name
    for name, value in train_changes.items():
        task = pipelines.TrainHAR(**{**base, name: value})
        assert task.data_folder() == ref.data_folder(), name
        assert task.output_folder() != ref.output_folder(), name
    # Settings that do not change results leave the folders (their hashes) alone.
    same = pipelines.TrainHAR(**{**base, "verbose": 2, "output_dir": str(tmp_path / "b")})
    assert _hash_part(same.output_folder()) == _hash_part(ref.output_folder())
    assert _hash_part(same.data_folder()) == _hash_part(ref.data_folder())
    # Settings that do not apply to the embedded data do not key it (step, CSV columns).
    assert pipelines.TrainHAR(**{**base, "step": 7, "label_column": "act"}).output_folder() == ref.output_folder()


def test_folder_names_are_readable():
    task = pipelines.TrainVision(learning_rate=0.003, epochs=5, seed=2, image_size="16")
    assert os.path.basename(task.data_folder()).startswith("digits-16x16-")
    assert os.path.basename(task.output_folder()).startswith("lenet5_bn-aug-lr0.003-bsauto-e5-seed2-")


def test_parse_normalize():
    assert parse_normalize("zscore") == "zscore"
    assert parse_normalize("None") is None
    assert parse_normalize("ct:40:400") == ("ct", 40.0, 400.0)
    assert parse_normalize("ct,-600,1500") == ("ct", -600.0, 1500.0)
    for bad in ("ct", "ct:40", "ct:40:-1", "gauss"):
        with pytest.raises(ConfigError, match="normalize"):
            parse_normalize(bad)


def test_medical_pipeline_preprocesses_as_the_classifier_by_default():
    # the pipeline trains what ``ScanClassifier()`` trains: the same normalization unless told otherwise
    import inspect

    import medical
    default = inspect.signature(medical.ScanClassifier.__init__).parameters["normalize"].default
    task = pipelines.PrepareMedical()
    assert parse_normalize(task.normalize) == default == "minmax"
    kwargs = pipelines.TrainMedical().domain_classifier_kwargs()
    assert kwargs["normalize"] == default


def test_sweep_lists_take_one_value_and_name_their_option():
    from pipelines.params import SweepListParameter

    p = SweepListParameter(label="--learning-rates")
    assert p.parse("[0.001, 0.003]") == (0.001, 0.003)
    assert p.parse("0.001") == (0.001,)  # one value: a list of one (Luigi's own list parameter raised TypeError)
    with pytest.raises(ConfigError, match="--learning-rates must be a JSON list"):
        p.parse("0.001x")
    seeds = SweepListParameter(label="--seeds", kind=int)
    with pytest.raises(ConfigError, match=r"--seeds must hold int values, got 1.5"):
        seeds.parse("[1, 1.5]")
    with pytest.raises(ConfigError, match=r"--seeds must be a JSON list such as '\[0, 1, 2\]'"):
        seeds.parse("1,2")
    task = pipelines.SweepHAR(learning_rates=p.parse("0.003"), seeds=seeds.parse("4"))
    assert task.grid() == [(0.003, 4)]
    # Luigi's workers rebuild a task from its string parameters: the defaults (None) included
    for task in (pipelines.SweepHAR(), task):
        again = pipelines.SweepHAR.from_str_params(task.to_str_params())
        assert again.task_id == task.task_id and again.grid() == task.grid()


def test_every_number_option_names_itself_in_its_errors():
    # Luigi's own Int/FloatParameter say only "invalid literal for int()": ours name the option
    from pipelines.params import _Labelled

    seen = 0
    for name in pipelines.__all__:
        cls = getattr(pipelines, name)
        if not isinstance(cls, type):
            continue
        for attr, param in cls.get_params():
            assert not (type(param) in (luigi.IntParameter, luigi.FloatParameter)), (name, attr)
            if isinstance(param, _Labelled):
                assert param.label == "--" + attr.replace("_", "-"), (name, attr, param.label)
                seen += 1
    assert seen > 50
    with pytest.raises(ConfigError, match="--batch-size: expected a whole number, got '3x'"):
        dict(pipelines.TrainMedical.get_params())["batch_size"].parse("3x")


def test_sweep_values():
    assert sweep_values("[0.001, 0.003]", "--learning-rates", float) == [0.001, 0.003]
    assert sweep_values((0, 1), "--seeds", int) == [0, 1]
    for bad in ([], [0.5], [1, 1], ["a"]):
        with pytest.raises(ConfigError, match="--seeds"):
            sweep_values(bad, "--seeds", int)


def test_sweep_grid_defaults_to_the_single_settings():
    sweep = pipelines.SweepHAR(learning_rate=0.01, seed=3)
    assert sweep.grid() == [(0.01, 3)]
    sweep = pipelines.SweepHAR(learning_rates=[0.001, 0.01], seeds=[0, 1])
    assert sweep.grid() == [(0.001, 0), (0.001, 1), (0.01, 0), (0.01, 1)]
    assert {t.learning_rate for t in sweep.requires()} == {0.001, 0.01}
    assert pipelines.SweepHAR(learning_rates=[0.001]).output_folder() != sweep.output_folder()


def test_grouped_split_keeps_subjects_apart_and_medical_uses_it():
    from pipelines.base import stratified_group_split

    y = np.array(["a", "b"] * 12)
    groups = np.repeat(np.arange(8), 3)
    train, test = stratified_group_split(y, groups, 0.25, seed=0)
    assert len(train) + len(test) == 24 and not set(groups[train]) & set(groups[test])
    assert set(y[test]) == {"a", "b"}
    prep = pipelines.PrepareMedical()
    tr, te, method = prep.split(y, groups)
    assert not set(groups[tr]) & set(groups[te]) and method.startswith("by subject")
    tr, te, method = prep.split(y, np.arange(24))  # one scan per subject: plain stratified split
    assert method.startswith("stratified") and sorted(np.bincount((y[te] == "a").astype(int))) == [3, 3]


def test_vision_patience_none_or_a_number():
    from pipelines.params import NoneOrIntParameter

    p = NoneOrIntParameter()
    assert p.parse("none") is None and p.parse("None") is None and p.parse("") is None
    assert p.parse("4") == 4 and p.serialize(None) == "none"
    with pytest.raises(ConfigError, match="'none'"):
        p.parse("soon")
    assert pipelines.TrainVision(patience=0).patience == 0
    with pytest.raises(ConfigError, match="patience"):
        pipelines.TrainVision(patience=-1).check_train_params()
