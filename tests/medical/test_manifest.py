"""medical.read_manifest on CSV files written here."""
import os

import numpy as np
import pytest

import medical
from core.exceptions import DataFileNotFoundError, DataFormatError, InputError


@pytest.fixture
def folder(tmp_path):
    """A folder with scans/a.nii.gz ... scans/d.nii.gz (content irrelevant to the manifest)."""
    (tmp_path / "scans").mkdir()
    for name in "abcd":
        (tmp_path / "scans" / f"{name}.nii.gz").write_bytes(b"x")
    return tmp_path


def _write(folder, text, name="manifest.csv"):
    path = folder / name
    path.write_text(text)
    return path


def test_relative_paths_labels_and_subjects(folder):
    csv = _write(folder, "path,label,subject\nscans/a.nii.gz,lesion,s1\nscans/b.nii.gz,healthy,s1\n"
                         "scans/c.nii.gz,lesion,s2\n" + f"{folder / 'scans' / 'd.nii.gz'},healthy,s3\n")
    paths, labels, subjects = medical.read_manifest(csv, return_subjects=True)
    assert paths == [os.path.join(str(folder), "scans", f"{n}.nii.gz") for n in "abcd"]
    assert labels.tolist() == ["lesion", "healthy", "lesion", "healthy"] and labels.dtype.kind == "U"
    assert subjects.tolist() == ["s1", "s1", "s2", "s3"]
    # read from another working directory, the paths still resolve against the CSV's folder
    cwd = os.getcwd()
    try:
        os.chdir(folder / "scans")
        assert medical.read_manifest("../manifest.csv")[0] == paths
    finally:
        os.chdir(cwd)


def test_column_order_case_and_integer_labels(folder):
    csv = _write(folder, " Label , PATH \n0,scans/a.nii.gz\n1,scans/b.nii.gz\n0,scans/c.nii.gz\n\n1,scans/d.nii.gz\n")
    paths, labels = medical.read_manifest(csv)
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 0, 1]
    assert len(paths) == 4
    assert medical.read_manifest(csv, return_subjects=True)[2] is None


def test_missing_and_unknown_columns_list_expected_and_found(folder):
    csv = _write(folder, "file,label,age\nscans/a.nii.gz,x,3\n")
    with pytest.raises(DataFormatError) as err:
        medical.read_manifest(csv)
    msg = str(err.value)
    assert "manifest.csv" in msg and "missing column(s) ['path']" in msg and "unknown column(s) ['file', 'age']" in msg
    assert "['path', 'label']" in msg and "['subject']" in msg


def test_every_missing_file_is_reported_at_once(folder):
    csv = _write(folder, "path,label\nscans/a.nii.gz,x\nscans/gone1.nii.gz,x\nscans/b.nii.gz,y\n"
                         "scans/gone2.nii.gz,y\n")
    with pytest.raises(DataFileNotFoundError) as err:
        medical.read_manifest(csv)
    msg = str(err.value)
    assert "2 of 4" in msg and "line 3" in msg and "gone1.nii.gz" in msg and "line 5" in msg and "gone2.nii.gz" in msg
    assert len(medical.read_manifest(csv, check_files=False)[0]) == 4


def test_label_seen_once_is_an_error_unless_allowed(folder):
    csv = _write(folder, "path,label\nscans/a.nii.gz,lesion\nscans/b.nii.gz,lesion\nscans/c.nii.gz,healthy\n"
                         "scans/d.nii.gz,helthy\n")
    with pytest.raises(DataFormatError, match=r"fewer than 2 times: \{'healthy': 1, 'helthy': 1\}"):
        medical.read_manifest(csv)
    assert medical.read_manifest(csv, min_per_class=1)[1].tolist() == ["lesion", "lesion", "healthy", "helthy"]
    with pytest.raises(InputError, match="min_per_class"):
        medical.read_manifest(csv, min_per_class=0)


def test_blank_cells_and_ragged_rows_give_line_numbers(folder):
    blank = _write(folder, "path,label\nscans/a.nii.gz,x\nscans/b.nii.gz,\n,x\n", "blank.csv")
    with pytest.raises(DataFormatError, match=r"'label' is blank on line 3; 'path' is blank on line 4"):
        medical.read_manifest(blank)
    ragged = _write(folder, "path,label\nscans/a.nii.gz,x,extra\nscans/b.nii.gz,x\n", "ragged.csv")
    with pytest.raises(DataFormatError, match="line 2 does not have 2 fields"):
        medical.read_manifest(ragged)


def test_empty_header_only_missing_and_binary(folder):
    with pytest.raises(DataFormatError, match="empty"):
        medical.read_manifest(_write(folder, "", "empty.csv"))
    with pytest.raises(DataFormatError, match="no rows"):
        medical.read_manifest(_write(folder, "path,label\n", "header.csv"))
    with pytest.raises(DataFileNotFoundError, match="nothere.csv"):
        medical.read_manifest(folder / "nothere.csv")
    (folder / "bin.csv").write_bytes(b"\xff\xfe\x00\x81path")
    with pytest.raises(DataFormatError, match="UTF-8"):
        medical.read_manifest(folder / "bin.csv")


def test_duplicate_rows_warn(folder):
    csv = _write(folder, "path,label\nscans/a.nii.gz,x\nscans/a.nii.gz,x\nscans/b.nii.gz,y\nscans/c.nii.gz,y\n")
    with pytest.warns(UserWarning, match="more than once"):
        medical.read_manifest(csv)
