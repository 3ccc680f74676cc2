"""Hostile pipeline inputs: a device or FIFO as ``--source`` is refused at once
(no hang, no memory growth), and a failed write names the file."""
import errno
import os

import pytest

from .conftest import assert_ours, run_capped_many

_PRELOAD = "import numpy as np\nimport core\nimport pipelines"


TASKS = {"PrepareHAR": "", "PrepareVision": ", format='idx'", "PrepareMedical": ""}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """``/dev/zero`` as the source of each Prepare task, and a FIFO given to format
    detection, all in one child process under a memory cap (a hang is a timeout)."""
    folder = tmp_path_factory.mktemp("sources")
    fifo = str(folder / "recording.csv")
    os.mkfifo(fifo)
    attacks = {task: f"pipelines.{task}(source='/dev/zero', output_dir={str(folder / task)!r}{extra}).run()"
               for task, extra in TASKS.items()}
    attacks["fifo"] = f"pipelines.har_tasks.detect_format({fifo!r})"
    return folder, fifo, run_capped_many(attacks, preload=_PRELOAD, headroom_mb=512, timeout=40)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_dev_zero_as_source_is_refused_at_once(sources, task):
    folder, _, results = sources
    assert_ours(results[task], "--source", "/dev/zero", "character device")
    assert not os.path.exists(folder / task)


def test_fifo_as_source_is_refused_without_opening_it(sources):
    _, fifo, results = sources
    assert_ours(results["fifo"], fifo, "FIFO")


def test_format_detection_reads_a_bounded_peek(tmp_path, monkeypatch):
    """A regular file of one endless line: detection reads a bounded head, not the file."""
    from core.filecheck import PEEK_BYTES
    from pipelines import har_tasks

    path = tmp_path / "recording"
    path.write_bytes(b"x" * (4 * PEEK_BYTES))
    reads = []
    real_open = open

    class Counting:
        def __init__(self, handle):
            self.handle = handle

        def read(self, n=-1):
            data = self.handle.read(n)
            reads.append(len(data))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr("builtins.open", lambda p, mode="r", *a, **k: Counting(real_open(p, mode, *a, **k))
                        if str(p) == str(path) else real_open(p, mode, *a, **k))
    with pytest.raises(Exception) as info:
        har_tasks.detect_format(str(path))
    assert str(path) in str(info.value) and "xxxx" not in str(info.value)
    assert sum(reads) <= PEEK_BYTES + 2


@pytest.mark.parametrize("failure", [errno.ENOSPC, errno.EROFS])
def test_prepare_on_a_full_or_read_only_disk_names_the_file(tmp_path, monkeypatch, failure):
    import pipelines
    from core.exceptions import FileWriteError

    def fail(*args, **kwargs):
        raise OSError(failure, os.strerror(failure))

    monkeypatch.setattr(os, "fsync", fail)
    task = pipelines.PrepareVision(output_dir=str(tmp_path), max_samples=60)
    with pytest.raises(FileWriteError) as info:
        task.run()
    msg = task.on_failure(info.value)
    assert "prepared.npz" in msg and os.strerror(failure) in msg and "\n" not in msg
    assert "Traceback" not in msg
    left = [f for _, _, files in os.walk(tmp_path) for f in files]
    assert left == []  # nothing half-written
