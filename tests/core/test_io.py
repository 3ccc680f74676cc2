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
