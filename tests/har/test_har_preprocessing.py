"""Windowing, segmentation, resampling, standardization and subject splits."""
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import har
from core.exceptions import InputError, NotFittedError, ShapeError


# ------------------------------------------------------------------ sliding_windows

@settings(max_examples=60, deadline=None)
@given(T=st.integers(1, 60), C=st.integers(1, 4), window=st.integers(1, 60), step=st.integers(1, 20))
def test_sliding_windows_matches_slicing(T, C, window, step):
    signal = np.arange(T * C, dtype=np.float32).reshape(T, C)
    if window > T:
        with pytest.raises(ShapeError, match=f"window \\({window} samples\\) is longer than the recording \\({T}"):
            har.sliding_windows(signal, window, step)
        return
    W = har.sliding_windows(signal, window, step)
    n = 1 + (T - window) // step
    assert W.shape == (n, window, C)
    for i in range(n):
        np.testing.assert_array_equal(W[i], signal[i * step:i * step + window])


def test_sliding_windows_is_a_read_only_view():
    signal = np.random.default_rng(0).normal(size=(1000, 3))
    W = har.sliding_windows(signal, 100, 50)
    assert np.shares_memory(W, signal)
    assert not W.flags.writeable
    with pytest.raises(ValueError):
        W[0, 0, 0] = 1.0
    copy = np.array(W)
    copy[0, 0, 0] = 1.0  # a copy is writable and independent
    assert copy[0, 0, 0] == 1.0 and signal[0, 0] != 1.0


def test_sliding_windows_1d_and_exact_fit():
    W = har.sliding_windows(np.arange(10), 5, 5)
    assert W.shape == (2, 5) and W[1].tolist() == [5, 6, 7, 8, 9]
    assert har.sliding_windows(np.zeros((7, 2)), 7, 3).shape == (1, 7, 2)


@pytest.mark.parametrize("window, step, pattern", [(0, 1, "window"), (4, 0, "step"), (2.5, 1, "window"),
                                                   (4, True, "step")])
def test_sliding_windows_bad_arguments(window, step, pattern):
    with pytest.raises(InputError, match=pattern):
        har.sliding_windows(np.zeros((10, 3)), window, step)


def test_sliding_windows_bad_signal():
    with pytest.raises(InputError, match=r"shape \(T, C\)"):
        har.sliding_windows(np.zeros((2, 3, 4)), 2, 1)
    with pytest.raises(InputError, match="numeric"):
        har.sliding_windows(np.array(["a", "b"]), 1, 1)


# ------------------------------------------------------------------ resample

def test_resample_keeps_a_sinusoid_and_gravity():
    rate, target = 20.0, 50.0
    t = np.arange(400) / rate
    signal = np.column_stack([np.sin(2 * np.pi * 1.5 * t), 9.81 + 0 * t])
    out = har.resample(signal, rate, target)
    assert out.shape == (1000, 2)
    t2 = np.arange(1000) / target
    inner = slice(50, 950)  # away from the edges
    np.testing.assert_allclose(out[inner, 0], np.sin(2 * np.pi * 1.5 * t2[inner]), atol=0.02)
    np.testing.assert_allclose(out[:, 1], 9.81, atol=0.05)  # no ringing at the ends for a constant


def test_resample_down_and_same_rate():
    x = np.random.default_rng(1).normal(size=(500, 3)).astype(np.float32)
    assert har.resample(x, 50, 20).shape == (200, 3)
    assert har.resample(x, 50, 20).dtype == np.float32
    assert har.resample(x, 50, 50) is x
    with pytest.raises(InputError, match="rate"):
        har.resample(x, 0, 20)
    with pytest.raises(InputError, match="NaN"):
        har.resample(np.array([1.0, np.nan]), 50, 20)


# ------------------------------------------------------------------ segment

def recording(subject, labels, start=0.0, rate=50.0, seed=0):
    """A table of one subject: labels is a list of (activity, n_samples)."""
    rng = np.random.default_rng(seed)
    acts = np.concatenate([[a] * n for a, n in labels])
    n = len(acts)
    return pd.DataFrame({"user": subject, "activity": acts,
                         "timestamp": ((start + np.arange(n) / rate) * 1e9).astype(np.int64),
                         "x": rng.normal(size=n), "y": 9.8 + rng.normal(size=n), "z": rng.normal(size=n)})


def test_segment_windows_never_cross_subjects_or_gaps():
    a = recording(1, [("Walking", 250)])
    b = recording(1, [("Walking", 80)], start=100.0)           # a gap: new run, too short
    c = recording(2, [("Jogging", 200)], start=5.0, seed=1)
    table = pd.concat([a, b, c], ignore_index=True)
    with pytest.warns(har.DataQualityWarning, match=r"1 runs shorter than the window \(80 samples\) left out"):
        X, y, subjects = har.segment(table, 100, 50, time_unit="ns")
    # run a: 250 samples -> 4 windows; run c: 200 -> 3 windows.
    assert X.shape == (7, 100, 3) and X.dtype == np.float32
    assert y.tolist() == ["Walking"] * 4 + ["Jogging"] * 3
    assert subjects.tolist() == [1] * 4 + [2] * 3
    np.testing.assert_allclose(X[1, :, 0], a["x"].to_numpy()[50:150], rtol=1e-6)
    np.testing.assert_allclose(X[4, :, 2], c["z"].to_numpy()[0:100], rtol=1e-6)


def test_segment_majority_and_drop_mixed():
    table = recording(3, [("Sitting", 130), ("Standing", 70)])
    X, y, _ = har.segment(table, 100, 50, time_unit="ns", mixed="majority")
    # windows start 0, 50, 100: Sitting 100/100, Sitting 80/100, Standing 70/100
    assert y.tolist() == ["Sitting", "Sitting", "Standing"]
    X, y, _ = har.segment(table, 100, 50, time_unit="ns", mixed="drop")
    assert y.tolist() == ["Sitting"] and len(X) == 1
    tie = recording(3, [("B", 50), ("A", 50)])
    _, y, _ = har.segment(tie, 100, 100, time_unit="ns")
    assert y.tolist() == ["B"]  # a tie goes to the label met first
    with pytest.raises(InputError, match="every window mixing labels"):
        har.segment(recording(3, [("A", 60), ("B", 60)]), 100, 10, time_unit="ns", mixed="drop")


def test_segment_interpolates_nan_and_counts():
    table = recording(1, [("Walking", 100)])
    table.loc[10, "x"] = np.nan
    table.loc[0, "y"] = np.nan
    with pytest.warns(har.DataQualityWarning, match="2 samples with NaN interpolated"):
        X, _, _ = har.segment(table, 100, 100, time_unit="ns")
    expected = (table.loc[9, "x"] + table.loc[11, "x"]) / 2
    assert X[0, 10, 0] == pytest.approx(expected, rel=1e-5)
    assert X[0, 0, 1] == pytest.approx(table.loc[1, "y"], rel=1e-5)  # edge: nearest valid value
    with pytest.warns(har.DataQualityWarning, match="2 samples with NaN dropped"):
        X, _, _ = har.segment(table, 98, 98, time_unit="ns", missing="drop")
    assert X.shape == (1, 98, 3) and not np.isnan(X).any()


def test_segment_drops_rows_without_label_duplicates_and_empty_channels():
    table = recording(1, [("Walking", 120)])
    table.loc[5, "activity"] = None
    dup = table.iloc[[20]]
    table = pd.concat([table.iloc[:21], dup, table.iloc[21:]], ignore_index=True)
    with pytest.warns(har.DataQualityWarning) as record:
        X, y, _ = har.segment(table, 100, 10, time_unit="ns")
    message = str(record[0].message)
    assert "1 rows without label/subject/time dropped" in message
    assert "1 rows repeating the previous timestamp dropped" in message
    assert len(X) == 2 and set(y) == {"Walking"}
    empty = recording(1, [("Walking", 120)])
    empty["z"] = np.nan
    with pytest.raises(InputError, match="no window"), \
            pytest.warns(har.DataQualityWarning, match="1 runs with a channel entirely NaN dropped"):
        har.segment(empty, 100, 10, time_unit="ns")


def test_segment_resamples_runs_of_different_rates():
    fast = recording(1, [("Walking", 500)], rate=50.0)   # 10 s at 50 Hz
    slow = recording(2, [("Walking", 200)], rate=20.0, start=50.0)  # 10 s at 20 Hz
    table = pd.concat([fast, slow], ignore_index=True)
    with pytest.warns(har.DataQualityWarning, match=r"different sampling rates \(20 to 50 Hz\).*target_rate"):
        har.segment(table, 100, 100, time_unit="ns")
    X, y, subjects = har.segment(table, 100, 100, time_unit="ns", target_rate=25.0)
    # 10 s at 25 Hz is 250 samples (within one sample) -> 2 windows per subject.
    assert subjects.tolist() == [1, 1, 2, 2]
    assert X.shape == (4, 100, 3)
    assert abs(X[:, :, 1].mean() - 9.8) < 0.2


def test_segment_resample_without_time_column_needs_rate():
    table = recording(1, [("A", 100), ("B", 100)]).drop(columns=["timestamp"])
    with pytest.raises(InputError, match="rate="):
        har.segment(table, 40, 40, target_rate=25.0)
    X, y, _ = har.segment(table, 40, 40, target_rate=25.0, rate=50.0)
    assert X.shape == (2, 40, 3) and y.tolist() == ["A", "B"]


def test_segment_uses_reader_attrs_and_explicit_columns(tmp_path):
    path = tmp_path / "rec.csv"
    rows = ["time_ms,ax,ay,az,person,act"] + [f"{i * 20},{i % 3},{9.8},{0.1},5,{'run' if i < 60 else 'walk'}"
                                             for i in range(120)]
    path.write_bytes(("\n".join(rows) + "\n").encode())
    table = har.load_csv(path, time="time_ms", axes=["ax", "ay", "az"], label="act", subject="person",
                         time_unit="ms")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X, y, subjects = har.segment(table, 50, 50)
    assert X.shape == (2, 50, 3) and y.tolist() == ["run", "walk"] and subjects.tolist() == [5, 5]
    X, y, subjects = har.segment(table, 50, 50, label=False, subject=False)
    assert y is None and subjects is None and X.shape == (2, 50, 3)
    with pytest.raises(InputError, match=r"label column 'nope' not in the table"):
        har.segment(table, 50, 50, label="nope")


def test_segment_bad_inputs():
    with pytest.raises(InputError, match="DataFrame"):
        har.segment(np.zeros((10, 3)), 5, 5)
    table = recording(1, [("A", 50)])
    with pytest.raises(InputError, match="mixed"):
        har.segment(table, 10, 10, mixed="first")
    with pytest.raises(InputError, match=r"axis column\(s\) \['w'\]"):
        har.segment(table, 10, 10, axes=["x", "w"])
    with pytest.raises(InputError, match="no window of 100 samples"), pytest.warns(har.DataQualityWarning):
        har.segment(table, 100, 10, time_unit="ns")


# ------------------------------------------------------------------ ChannelStandardizer

def test_channel_standardizer_fit_transform_state():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[0.0, 9.8, -3.0], scale=[1.0, 0.1, 5.0], size=(40, 64, 3))
    X[:, :, 0] = 2.0  # a constant channel is only centred
    s = har.ChannelStandardizer().fit(X)
    Z = s.transform(X)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z.reshape(-1, 3).mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(Z.reshape(-1, 3).std(0), [0, 1, 1], atol=1e-4)
    np.testing.assert_allclose(s.inverse_transform(Z), X, rtol=1e-5, atol=1e-5)
    config, arrays = s.get_state()
    import json
    json.dumps(config)
    restored = har.ChannelStandardizer().set_state(json.loads(json.dumps(config)), arrays)
    np.testing.assert_array_equal(restored.transform(X), Z)


def test_channel_standardizer_errors():
    s = har.ChannelStandardizer()
    with pytest.raises(NotFittedError):
        s.transform(np.zeros((2, 3)))
    s.fit(np.random.default_rng(0).normal(size=(10, 5, 3)))
    with pytest.raises(ShapeError, match="4 channels.*fitted on 3"):
        s.transform(np.zeros((2, 5, 4)))
    with pytest.raises(InputError, match="NaN"):
        s.fit(np.array([[np.nan, 1.0]]))
    with pytest.raises(InputError, match="shape"):
        har.ChannelStandardizer().set_state({"n_channels": 3}, {"mean": np.zeros(2), "scale": np.ones(2)})


# ------------------------------------------------------------------ subject_split

def test_subject_split_has_no_leakage_and_is_seeded():
    subjects = np.repeat(np.arange(1, 11), 7)
    train, test = har.subject_split(subjects, test_size=0.3, seed=4)
    assert len(np.intersect1d(subjects[train], subjects[test])) == 0
    assert len(np.unique(subjects[test])) == 3
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(subjects)))
    again = har.subject_split(subjects, test_size=0.3, seed=4)
    assert np.array_equal(again[1], test)
    other = har.subject_split(subjects, test_size=0.3, seed=5)
    assert len(np.unique(subjects[other[1]])) == 3
    tr, te = har.subject_split(subjects, test_subjects=[2, 9])
    assert set(subjects[te]) == {2, 9} and 2 not in subjects[tr]
    tr, te = har.subject_split(subjects, test_size=2)
    assert len(np.unique(subjects[te])) == 2
    named = np.array([f"S{s}" for s in subjects])
    tr, te = har.subject_split(named, test_subjects=["S2", "S2", "S9"])  # repeats are one subject
    np.testing.assert_array_equal(har.subject_split(named, test_subjects="S2")[1], np.flatnonzero(named == "S2"))
    np.testing.assert_array_equal(har.subject_split(subjects, test_subjects=2)[1], np.flatnonzero(subjects == 2))
    assert set(named[te]) == {"S2", "S9"} and np.array_equal(te, har.subject_split(subjects, test_subjects=[2, 9])[1])


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(subjects=[1, 1, 1]), "at least 2 subjects"),
    (dict(subjects=[1, 2], test_size=2), "at least one must stay"),
    (dict(subjects=[1, 2], test_size=1.5), "test_size"),
    (dict(subjects=[1, 2], test_subjects=[3]), r"\[3\] do not occur"),
    (dict(subjects=[1, 2], test_subjects=[1, 2]), "between 1 and 1"),
    # not cast to the subjects' type first: "S10" is no "S1", 2.7 no subject 2, "2" no 2
    (dict(subjects=["S1", "S2", "S3"], test_subjects=["S10"]), r"\['S10'\] do not occur .*'S1', 'S2', 'S3'"),
    (dict(subjects=[1, 2, 3], test_subjects=[2.7]), r"\[2.7\] do not occur"),
    (dict(subjects=[1, 2, 3], test_subjects=["2"]), r"\['2'\] do not occur"),
    (dict(subjects=[1, 2, 3], test_subjects=[1, "2"]), r"test_subjects \['2'\] do not occur"),
    (dict(subjects=[1, 2, 3], test_subjects=[[1, 2]]), "flat sequence"),
])
def test_subject_split_errors(kwargs, pattern):
    with pytest.raises(InputError, match=pattern):
        har.subject_split(**kwargs)
