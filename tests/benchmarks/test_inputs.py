"""The batch the harness times (``benchmarks.cases.make_inputs``): noise as before, or
data of each case's domain, the same arrays for both engines."""
import numpy as np
import pytest

from benchmarks.cases import CASES, INPUT_KINDS, make_inputs

ALL_CASES = sorted(CASES)


@pytest.mark.parametrize("name", ALL_CASES)
def test_noise_is_the_draw_the_harness_always_timed(name):
    case = CASES[name]
    rng = np.random.default_rng(0)
    want_x = rng.standard_normal((case.batch,) + case.input_shape, dtype=np.float32)
    want_y = rng.integers(0, case.n_classes, case.batch)
    x, y = make_inputs(case)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)


@pytest.mark.parametrize("name", ALL_CASES)
def test_data_has_the_case_shape_standardized_channels_and_valid_labels(name):
    case = CASES[name]
    x, y = make_inputs(case, "data")
    assert x.shape == (case.batch,) + case.input_shape and x.dtype == np.float32
    assert x.flags.c_contiguous and np.isfinite(x).all()
    assert y.shape == (case.batch,) and y.dtype == np.int64
    assert y.min() >= 0 and y.max() < case.n_classes
    if case.batch > 1:  # (one image standardized over its own pixels)
        axes = tuple(range(x.ndim - 1))
        np.testing.assert_allclose(x.mean(axis=axes, dtype=np.float64), 0, atol=1e-5)
        np.testing.assert_allclose(x.std(axis=axes, dtype=np.float64), 1, rtol=1e-4)
    # the same arrays in every call (each engine's process makes its own)
    x2, y2 = make_inputs(case, "data")
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    noise, _ = make_inputs(case, "noise")
    assert not np.allclose(x, noise)


def test_data_images_are_the_digits_standardized():
    import vision
    case = CASES["tiny"]  # 8x8: the digits at their own size
    x, y = make_inputs(case, "data")
    digits, labels = vision.load_digits()
    d = digits[:case.batch].astype(np.float64)
    np.testing.assert_allclose(x, (d - d.mean()) / d.std(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y, labels[:case.batch] % case.n_classes)
    # backgrounds: the images have large flat areas, which noise never has
    assert np.mean(x == x.min()) > 0.2


def test_data_images_are_resized_to_the_case():
    import vision
    x, y = make_inputs(CASES["lenet5_b64"], "data")
    np.testing.assert_array_equal(y, vision.load_digits()[1][:64])  # the first 64 digits, 28x28
    assert np.mean(np.isclose(x, x.min())) > 0.2  # flat background survives the resizing


def test_data_series_cycle_the_three_axes_to_the_case_channels():
    case = CASES["har_conv1d_b64"]
    x, y = make_inputs(case, "data")
    assert case.input_shape[-1] == 9
    for start in (3, 6):
        np.testing.assert_array_equal(x[..., start:start + 3], x[..., :3])
    assert len(np.unique(y)) == case.n_classes  # every class present (8 windows of each activity)
    assert not np.allclose(x[..., 0], x[..., 1])


def test_data_volumes_alternate_healthy_and_lesion_scans():
    case = CASES["conv3d_32_b8"]
    x, y = make_inputs(case, "data")
    np.testing.assert_array_equal(y, np.arange(case.batch) % 2)
    assert not np.allclose(x[0], x[1])
    # a phantom, not noise: neighbouring voxels are strongly correlated
    v = x[0, ..., 0]
    assert np.corrcoef(v[1:].ravel(), v[:-1].ravel())[0, 1] > 0.5


def test_unknown_kind_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"inputs: expected one of .*'noise'.*found 'images'"):
        make_inputs(CASES["tiny"], "images")
    assert INPUT_KINDS == ("noise", "data")
