"""Readers, each tried on small files written byte-exact in the real format."""
import gzip
import os
import warnings

import numpy as np
import pytest

import har
from core.exceptions import DataFileNotFoundError, DataFormatError, InputError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


# ------------------------------------------------------------------ .ts

BASIC_HEADER = """#The data was generated as part of a student project where four students performed
#four activities whilst wearing a smart watch.
@problemName BasicMotions
@timeStamps false
@missing false
@univariate false
@dimensions 3
@equalLength true
@seriesLength 4
@classLabel true Standing Running Walking Badminton
@data
"""


def test_read_ts_multivariate(tmp_path):
    path = write(tmp_path / "BasicMotions_TRAIN.ts", BASIC_HEADER +
                 "0.079106,0.079106,-0.903497,1.116125:0.394032,0.394032,-3.666397,-0.656101:"
                 "0.551444,0.551444,-0.282844,0.333118:Standing\n"
                 "1.0e-1,2,3,4:5,6,7,8:9,10,11,12:Running\n")
    X, y = har.read_ts(path)
    assert X.shape == (2, 4, 3) and X.dtype == np.float32
    np.testing.assert_allclose(X[0, :, 1], [0.394032, 0.394032, -3.666397, -0.656101], rtol=1e-6)
    np.testing.assert_allclose(X[1, :, 2], [9, 10, 11, 12])
    np.testing.assert_allclose(X[1, 0, 0], 0.1)
    assert y.tolist() == ["Standing", "Running"]


def test_read_ts_univariate_missing_and_case_insensitive_tags(tmp_path):
    text = ("@ProblemName Tiny\n@TIMESTAMPS false\n@missing true\n@univariate true\n"
            "@equalLength true\n@seriesLength 5\n@classLabel true 1 2\n@data\n"
            "1,2,?,4,5:1\n\n6,7,8,9,?:2\r\n")
    X, y = har.read_ts(write(tmp_path / "t.ts", text), dtype=np.float64)
    assert X.shape == (2, 5, 1) and X.dtype == np.float64
    assert np.isnan(X[0, 2, 0]) and np.isnan(X[1, 4, 0])
    assert X[1, 3, 0] == 9.0
    assert y.tolist() == ["1", "2"]


def test_read_ts_unlabelled_and_timestamps(tmp_path):
    text = ("@problemName Stamps\n@timeStamps true\n@univariate true\n@classLabel false\n@data\n"
            "(2007-01-01 00:00:00,241.97),(2007-01-01 01:00:00,241.75),(2007-01-01 02:00:00,?)\n"
            "(1,5),(2,6),(3,7)\n")
    X, y = har.read_ts(write(tmp_path / "s.ts", text))
    assert y is None
    assert X.shape == (2, 3, 1)
    np.testing.assert_allclose(X[0, :2, 0], [241.97, 241.75], rtol=1e-6)
    assert np.isnan(X[0, 2, 0])
    np.testing.assert_allclose(X[1, :, 0], [5, 6, 7])


def test_read_ts_target_label_is_numeric(tmp_path):
    text = "@problemName R\n@univariate true\n@targetLabel true\n@data\n1,2,3:0.5\n4,5,6:-1.25\n"
    X, y = har.read_ts(write(tmp_path / "r.ts", text))
    assert y.dtype == np.float64 and y.tolist() == [0.5, -1.25]


UNEQUAL = ("@problemName U\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n"
           "@equalLength false\n@classLabel true a b\n@data\n"
           "1,2,3:4,5,6:a\n"
           "7,8:9,10:b\n")


def test_read_ts_unequal_length_errors_unless_asked(tmp_path):
    path = write(tmp_path / "u.ts", UNEQUAL)
    with pytest.raises(DataFormatError, match=r"u\.ts, line 10: series length 2 differs from 3.*unequal='pad'"):
        har.read_ts(path)
    X, _ = har.read_ts(path, unequal="pad")  # NaN marks where a shorter series ends
    assert X.shape == (2, 3, 2)
    np.testing.assert_array_equal(X[1, :, 0], [7, 8, np.nan])
    X, _ = har.read_ts(path, unequal="pad", pad_value="edge")
    np.testing.assert_array_equal(X[1, :, 1], [9, 10, 10])
    X, _ = har.read_ts(path, unequal="pad", pad_value=0.0)
    np.testing.assert_array_equal(X[1, :, 0], [7, 8, 0])
    X, _ = har.read_ts(path, unequal="truncate")
    assert X.shape == (2, 2, 2)
    np.testing.assert_array_equal(X[0, :, 1], [4, 5])


def test_read_ts_unequal_dimensions_within_a_case(tmp_path):
    text = UNEQUAL.replace("7,8:9,10:b", "7,8,1:9,10:b")
    with pytest.raises(DataFormatError, match=r"line 10: the dimensions of this case have different lengths \(3, 2\)"):
        har.read_ts(write(tmp_path / "u2.ts", text))


@pytest.mark.parametrize("data_line, pattern", [
    ("1,2,x,4:1,2,3,4:1,2,3,4:Walking", r"line 12, dimension 1, value 3: expected a number or '\?', found 'x'"),
    ("1,2,3,4:1,2,3,4:Walking", r"line 12: expected 3 dimension\(s\) \(from @dimensions\), found 2"),
    ("1,2,3:1,2,3,4:1,2,3,4:Walking", r"line 12, dimension 1: @seriesLength is 4, found 3"),
    ("1,2,3,4:1,2,3,4:1,2,3,4:Swimming", r"line 12: class label 'Swimming' is not among"),
    ("1,2,3,4", r"line 12: expected the series followed by ':' and a label"),
    ("1,2,3,4:1,,3,4:1,2,3,4:Walking", r"line 12, dimension 2, value 2: expected a number"),
])
def test_read_ts_bad_data_lines_name_file_and_line(tmp_path, data_line, pattern):
    path = write(tmp_path / "bad.ts", BASIC_HEADER + data_line + "\n")
    with pytest.raises(DataFormatError, match=r"bad\.ts, " + pattern):
        har.read_ts(path)


@pytest.mark.parametrize("header, pattern", [
    ("@problemName X\n@univariate maybe\n@classLabel false\n@data\n1,2\n", r"line 2: @univariate expects 'true' or 'false'"),
    ("@problemName X\n@dimensions two\n@classLabel false\n@data\n1,2\n", r"line 2: @dimensions expects an integer"),
    ("@problemName X\n@univariate true\n1,2,3\n", r"line 3: expected a header tag"),
    ("@problemName X\n@classLabel true\n@data\n1:a\n", r"line 2: @classLabel true must list the class values"),
    ("@problemName X\n@data\n1,2:a\n", r"line 2: @data reached without a @classLabel"),
    ("@problemName X\n@classLabel false\n", r"no @data line found"),
    ("@problemName X\n@classLabel false\n@data\n\n", r"@data is followed by no cases"),
])
def test_read_ts_bad_headers(tmp_path, header, pattern):
    with pytest.raises(DataFormatError, match=pattern):
        har.read_ts(write(tmp_path / "h.ts", header))


def test_read_ts_gzip_missing_file_and_bad_arguments(tmp_path):
    path = tmp_path / "g.ts.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"@problemName G\n@univariate true\n@classLabel true a\n@data\n1,2:a\n")
    X, y = har.read_ts(path)
    assert X.shape == (1, 2, 1) and y.tolist() == ["a"]
    with pytest.raises(DataFileNotFoundError, match="nope.ts"):
        har.read_ts(tmp_path / "nope.ts")
    with pytest.raises(InputError, match="unequal"):
        har.read_ts(path, unequal="stretch")
    with pytest.raises(InputError, match="pad_value"):
        har.read_ts(path, pad_value="mean")


# ------------------------------------------------------------------ UCI HAR

def fmt_uci(value):
    """Format like the distributed files: '%.7e' with a three-digit exponent, two leading spaces."""
    mantissa, exponent = f"{value:.7e}".split("e")
    return f"{mantissa}e{exponent[0]}{int(exponent[1:]):03d}"


def write_uci(root, split, X, codes, subjects, newline="\n"):
    """Write a UCI HAR Dataset folder for one split; X is (N, steps, 9) in UCI_HAR_CHANNELS order."""
    write(root / "activity_labels.txt",
          "1 WALKING\n2 WALKING_UPSTAIRS\n3 WALKING_DOWNSTAIRS\n4 SITTING\n5 STANDING\n6 LAYING\n")
    write(root / split / f"y_{split}.txt", "".join(f"{c}{newline}" for c in codes))
    write(root / split / f"subject_{split}.txt", "".join(f"{s}{newline}" for s in subjects))
    for c, name in enumerate(har.UCI_HAR_CHANNELS):
        lines = ["".join(" " + (" " if v >= 0 else "") + fmt_uci(v) for v in row) for row in X[:, :, c]]
        write(root / split / "Inertial Signals" / f"{name}_{split}.txt", newline.join(lines) + newline)


def test_fmt_uci_matches_the_real_files():
    assert fmt_uci(1.808515e-4) == "1.8085150e-004"
    assert fmt_uci(-0.0101386) == "-1.0138600e-002"


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_load_uci_har(tmp_path, newline):
    rng = np.random.default_rng(0)
    X = rng.normal(scale=0.3, size=(5, 128, 9))
    root = tmp_path / "UCI HAR Dataset"
    write_uci(root, "test", X, [5, 5, 1, 6, 2], [2, 2, 4, 4, 9], newline)
    Xr, y, subjects = har.load_uci_har(root, split="test")
    assert Xr.shape == (5, 128, 9) and Xr.dtype == np.float32
    np.testing.assert_allclose(Xr, X, rtol=1e-6, atol=1e-9)
    assert y.tolist() == ["STANDING", "STANDING", "WALKING", "LAYING", "WALKING_UPSTAIRS"]
    assert subjects.tolist() == [2, 2, 4, 4, 9] and subjects.dtype == np.int64
    # The folder that holds "UCI HAR Dataset" works too, and a subset of signals.
    Xt, _, _ = har.load_uci_har(tmp_path, split="test", signals=("total_acc",))
    np.testing.assert_allclose(Xt, X[:, :, 6:], rtol=1e-6, atol=1e-9)


def test_load_uci_har_real_line_start(tmp_path):
    X = np.zeros((1, 128, 9))
    X[0, 0, 0], X[0, 1, 0] = 1.808515e-4, -1.0138560e-2
    root = tmp_path / "UCI HAR Dataset"
    write_uci(root, "train", X, [1], [1])
    line = (root / "train" / "Inertial Signals" / "body_acc_x_train.txt").read_text()
    assert line.startswith("  1.8085150e-004 -1.0138560e-002  0.0000000e+000")
    Xr, y, _ = har.load_uci_har(root)
    assert Xr[0, 1, 0] == np.float32(-1.013856e-2) and y.tolist() == ["WALKING"]


def test_load_uci_har_missing_file_is_named(tmp_path):
    root = tmp_path / "UCI HAR Dataset"
    write_uci(root, "train", np.zeros((2, 128, 9)), [1, 2], [1, 1])
    os.remove(root / "train" / "Inertial Signals" / "body_gyro_y_train.txt")
    with pytest.raises(DataFileNotFoundError, match=r"body_gyro_y_train\.txt"):
        har.load_uci_har(root)
    with pytest.raises(DataFileNotFoundError, match=r"y_test\.txt"):
        har.load_uci_har(root, split="test")
    with pytest.raises(DataFileNotFoundError, match="UCI HAR folder not found"):
        har.load_uci_har(tmp_path / "elsewhere")


def test_load_uci_har_row_count_and_width_disagreements(tmp_path):
    root = tmp_path / "UCI HAR Dataset"
    write_uci(root, "train", np.zeros((3, 128, 9)), [1, 2, 3], [1, 1, 2])
    write(root / "train" / "subject_train.txt", "1\n1\n")
    with pytest.raises(DataFormatError, match=r"row counts disagree: .*y_train\.txt has 3 rows but .*subject_train\.txt has 2"):
        har.load_uci_har(root)
    write_uci(root, "train", np.zeros((3, 128, 9)), [1, 2, 3], [1, 1, 2])
    path = root / "train" / "Inertial Signals" / "total_acc_z_train.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")
    with pytest.raises(DataFormatError, match=r"total_acc_z_train\.txt has 2 rows but .*y_train\.txt has 3"):
        har.load_uci_har(root)
    write_uci(root, "train", np.zeros((3, 64, 9)), [1, 2, 3], [1, 1, 2])
    write_uci(root, "train", np.zeros((3, 128, 9)), [1, 2, 3], [1, 1, 2])
    lines = path.read_text().splitlines()
    lines[1] = lines[1] + "  1.0000000e+000"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"total_acc_z_train\.txt, line 2: expected 128 whitespace-separated values"):
        har.load_uci_har(root)


def test_load_uci_har_bad_content(tmp_path):
    root = tmp_path / "UCI HAR Dataset"
    write_uci(root, "train", np.zeros((3, 128, 9)), [1, 2, 3], [1, 1, 2])
    path = root / "train" / "Inertial Signals" / "body_acc_x_train.txt"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("0.0000000e+000", "abc", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"body_acc_x_train\.txt, line 3: expected a number, found 'abc'"):
        har.load_uci_har(root)
    write_uci(root, "train", np.zeros((3, 128, 9)), [1, 7, 3], [1, 1, 2])
    with pytest.raises(DataFormatError, match=r"y_train\.txt, line 2: activity id 7 is not listed"):
        har.load_uci_har(root)
    write(root / "activity_labels.txt", "1 WALKING\nWALKING_UPSTAIRS 2\n")
    with pytest.raises(DataFormatError, match=r"activity_labels\.txt, line 2: expected an integer activity id"):
        har.load_uci_har(root)
    with pytest.raises(InputError, match="split"):
        har.load_uci_har(root, split="validation")
    with pytest.raises(InputError, match="signals"):
        har.load_uci_har(root, signals=("gyro",))


# ------------------------------------------------------------------ WISDM

WISDM = (
    "33,Jogging,49105962326000,-0.6946377,12.680544,0.50395286;\n"
    "33,Jogging,49106062271000,5.012288,11.264028,0.95342433;\n"
    "33,Jogging,49106112167000,4.903325,10.882658,-0.08172209;33,Jogging,49106222305000,-0.61291564,18.496431,3.0237172;\n"
    "33,Jogging,49106332290000,-1.1849703,12.108489,7.205164,;\n"
    "\n"
    "33,Jogging,49106442306000,1.3756552,-2.4925237,-6.510526;\n"
    "33,Jogging,0,0.0,0.0,0.0;\n"
    "33,Jogging,49106542312000,,12.108489,7.205164;\n"
    "33,Jogging,49106652389000,-0.61291564,18.496431,3.0237172,1.0;\n"
    "11,Walking,1867172313000,4.4,4.4,;\n"
    "11,Walking,1867222270000,3.7,abc,1.2;\n"
    "11,Walking,1867247000000,3.7;\n"
    "11,Walking,1867272278000,-0.5720038,11.223166,1.3347715\n"
)


def test_load_wisdm_real_defects(tmp_path):
    path = write(tmp_path / "WISDM_ar_v1.1_raw.txt", WISDM)
    with pytest.warns(har.DataQualityWarning) as record:
        table = har.load_wisdm(path)
    message = str(record[0].message)
    assert "WISDM_ar_v1.1_raw.txt" in message
    assert "dropped 6 of 13 WISDM records" in message
    assert "1 with timestamp 0 (first on line 7)" in message
    assert "2 with empty fields (first on line 8)" in message  # lines 8 and 10 ('4.4,4.4,;': z empty)
    assert "1 with extra fields (first on line 9)" in message
    assert "1 with unparsable numbers (first on line 11)" in message
    assert "1 with too few fields (first on line 12)" in message
    assert list(table.columns) == ["user", "activity", "timestamp", "x", "y", "z"]
    assert len(table) == 7
    assert table["user"].tolist() == [33] * 6 + [11]
    assert table["activity"].tolist() == ["Jogging"] * 6 + ["Walking"]
    assert table["timestamp"].dtype == np.int64 and table["timestamp"].iloc[0] == 49105962326000
    np.testing.assert_allclose(table.loc[3, ["x", "y", "z"]].to_numpy(float), [-0.61291564, 18.496431, 3.0237172], rtol=1e-6)
    np.testing.assert_allclose(table.loc[4, "z"], 7.205164, rtol=1e-6)   # trailing ',' before ';'
    np.testing.assert_allclose(table.loc[6, "z"], 1.3347715, rtol=1e-6)  # no ';' at all
    assert table["x"].dtype == np.float32


def test_load_wisdm_keep_zero_timestamps_and_clean_file_is_silent(tmp_path):
    path = write(tmp_path / "w.txt", "1,Walking,0,0.1,9.8,0.2;\n1,Walking,100,0.1,9.8,0.2;\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = har.load_wisdm(path, drop_zero_timestamps=False)
    assert table["timestamp"].tolist() == [0, 100]


def test_load_wisdm_nothing_valid_and_missing(tmp_path):
    path = write(tmp_path / "w.txt", "user,activity,timestamp,x,y,z\nhello\n")
    with pytest.raises(DataFormatError, match=r"w\.txt: no valid WISDM record found among 2 "
                       r"\(1 with too few fields \(first on line 2\); 1 with unparsable numbers \(first on line 1\)"):
        har.load_wisdm(path)
    with pytest.raises(DataFileNotFoundError, match="missing.txt"):
        har.load_wisdm(tmp_path / "missing.txt")


# ------------------------------------------------------------------ CSV

def test_load_csv_named_columns(tmp_path):
    path = write(tmp_path / "rec.csv",
                 "t,acc_x,acc_y,acc_z,who,what,extra\n"
                 "0.00,0.1,9.8,0.3,7,walk,x\n"
                 "0.02,0.2,,0.3,7,walk,x\n"
                 "0.04, 0.3,9.7,0.2,7,run,x\n")
    table = har.load_csv(path, time="t", axes=["acc_x", "acc_y", "acc_z"], label="what", subject="who")
    assert list(table.columns) == ["who", "t", "acc_x", "acc_y", "acc_z", "what"]
    assert table["who"].dtype == np.int64 and table["acc_x"].dtype == np.float32
    assert np.isnan(table.loc[1, "acc_y"])
    assert table["what"].tolist() == ["walk", "walk", "run"]
    assert table.attrs["har"]["axes"] == ["acc_x", "acc_y", "acc_z"]


def test_load_csv_errors(tmp_path):
    path = write(tmp_path / "rec.csv", "t,ax,ay\n0,1,2\n1,1,oops\n")
    with pytest.raises(DataFormatError, match=r"rec\.csv, line 3: column 'ay' expected a number, found 'oops'"):
        har.load_csv(path, time="t", axes=["ax", "ay"])
    with pytest.raises(DataFormatError, match=r"column\(s\) \['az'\] not found; the header has \['t', 'ax', 'ay'\]"):
        har.load_csv(path, axes=["ax", "az"])
    with pytest.raises(InputError, match="axes"):
        har.load_csv(path, axes="ax")
    with pytest.raises(DataFileNotFoundError):
        har.load_csv(tmp_path / "none.csv", axes=["ax"])


def test_read_ts_length_makes_test_match_train(tmp_path):
    train = write(tmp_path / "u_TRAIN.ts", UNEQUAL)
    test = write(tmp_path / "u_TEST.ts", UNEQUAL.replace("1,2,3:4,5,6:a", "1,2:4,5:a"))
    Xtr, _ = har.read_ts(train, unequal="pad")
    Xte, _ = har.read_ts(test, unequal="pad")
    assert Xtr.shape[1] == 3 and Xte.shape[1] == 2  # each file padded to its own longest series
    Xte, _ = har.read_ts(test, unequal="pad", length=Xtr.shape[1])
    assert Xte.shape == (2, 3, 2)
    np.testing.assert_array_equal(Xte[0, :, 0], [1, 2, np.nan])
    Xcut, _ = har.read_ts(train, unequal="pad", length=2, pad_value=0.0)
    np.testing.assert_array_equal(Xcut[:, :, 0], [[1, 2], [7, 8]])
    with pytest.raises(InputError, match="length"):
        har.read_ts(train, unequal="pad", length=0)


def test_read_ts_skips_percent_comments(tmp_path):
    text = ("% written by aeon\n@problemName P\n% a comment between tags\n@univariate true\n"
            "@classLabel true a b\n@data\n% a comment among the cases\n1,2,3:a\n4,5,6:b\n")
    X, y = har.read_ts(write(tmp_path / "p.ts", text))
    assert X.shape == (2, 3, 1) and y.tolist() == ["a", "b"]


@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e999", "1e50"])
def test_read_ts_refuses_values_float32_cannot_hold(tmp_path, value):
    text = f"@problemName P\n@univariate true\n@classLabel true a b\n@data\n1,2,3:a\n4,{value},6:b\n"
    with pytest.raises(DataFormatError, match=r"h\.ts, line 6, dimension 1, value 2: expected a finite number"):
        har.read_ts(write(tmp_path / "h.ts", text))


@pytest.mark.parametrize("value", ["inf", "1e999", "-1e50"])
def test_load_csv_refuses_values_float32_cannot_hold(tmp_path, value):
    path = write(tmp_path / "h.csv", f"t,ax\n0,1.0\n0.02,{value}\n")
    with pytest.raises(DataFormatError, match=r"h\.csv, line 3: column 'ax' expected a finite number"):
        har.load_csv(path, axes=["ax"], time="t")


def test_broken_gzip_files_raise_data_format_error(tmp_path):
    good = gzip.compress(("@problemName P\n@univariate true\n@classLabel true a b\n@data\n"
                          + "1,2,3:a\n" * 400).encode())
    cases = {"plain.ts.gz": b"@problemName P\n@data\n",          # plain text named .gz
             "cut.ts.gz": good[: len(good) // 2],                  # truncated
             "bad.ts.gz": good[:20] + bytes(64) + good[84:]}       # damaged stream
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataFormatError, match=name.replace(".", r"\.")):
            har.read_ts(path)
    csv_gz = gzip.compress(b"t,ax\n" + b"0,1.0\n" * 2000)
    (tmp_path / "rec.csv.gz").write_bytes(csv_gz[: len(csv_gz) // 2])
    with pytest.raises(DataFormatError, match=r"rec\.csv\.gz.*truncated"):
        har.load_csv(tmp_path / "rec.csv.gz", axes=["ax"])


def test_load_csv_parses_iso_timestamps(tmp_path):
    path = write(tmp_path / "iso.csv", "time,ax,ay\n2024-05-01T12:00:00Z,1,2\n2024-05-01T12:00:00.020Z,3,4\n"
                                       "2024-05-01 12:00:00.040,5,6\n")
    table = har.load_csv(path, axes=["ax", "ay"], time="time")
    t = table["time"].to_numpy()
    np.testing.assert_allclose(np.diff(t), [0.02, 0.02], atol=1e-6)
    assert t[0] == pytest.approx(1714564800.0)
    ms = har.load_csv(path, axes=["ax", "ay"], time="time", time_unit="ms")["time"].to_numpy()
    np.testing.assert_allclose(np.diff(ms), [20.0, 20.0], atol=1e-3)
    bad = write(tmp_path / "iso_bad.csv", "time,ax\n2024-05-01T12:00:00Z,1\nyesterday,3\n")
    with pytest.raises(DataFormatError, match=r"iso_bad\.csv, line 3: column 'time' holds ISO-8601"):
        har.load_csv(bad, axes=["ax"], time="time")
