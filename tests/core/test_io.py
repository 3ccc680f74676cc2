import os
import stat

import pytest

from core.io import atomic_write


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half")
            raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_write(path, "w") as f:
        f.write("new")
    assert path.read_text() == "new"


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "shared.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "shared.bin").st_mode) == 0o644


def test_make_folder_names_what_failed(tmp_path, monkeypatch):
    from core.exceptions import FileWriteError
    from core.io import make_folder

    made = make_folder(tmp_path / "a" / "b", "--plots")
    assert made == str(tmp_path / "a" / "b") and os.path.isdir(made)
    assert make_folder(made, "--plots") == made  # an existing folder is fine
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileWriteError, match=r"--plots: could not create the folder .*/f': a file of that name"):
        make_folder(tmp_path / "f", "--plots")
    with pytest.raises(FileWriteError, match=r"--plots: could not create the folder .*f/sub"):
        make_folder(tmp_path / "f" / "sub", "--plots")
    # an existing folder this process may not write in (simulated: the tests may run as root)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(FileWriteError, match=r"--plots: the folder .* exists but this process may not write in it"):
        make_folder(made, "--plots")
