"""Helpers for the pipeline tests: small settings, in-process builds, run summaries."""
import json
import os
import socket
import subprocess
import sys

import luigi
import luigi.execution_summary
import pytest

# Small settings: a chain of each domain trains in a second or two.
HAR_SMALL = dict(synthetic_subjects=4, synthetic_windows=3, window=32, epochs=2, batch_size=16)
VISION_SMALL = dict(max_samples=200, epochs=1, batch_size=32, architecture="tiny")
MEDICAL_SMALL = dict(synthetic_n=8, synthetic_shape=(16, 16, 16), shape=(12, 12, 12), epochs=1, batch_size=4)


def build(tasks, workers=1):
    """Run ``tasks`` with the local scheduler in this process; return (result, {status: set of task ids})."""
    result = luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, workers=workers,
                         log_level="WARNING")
    sets = luigi.execution_summary._summary_dict(result.worker)
    return result, {k: {t.task_id for t in v} for k, v in sets.items()}


def ran(sets):
    """Task families that ran successfully in a build."""
    return sorted(tid.split("_")[0] for tid in sets["completed"])


def mtimes(folder):
    """{relative path: mtime_ns} of every file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, folder)] = os.stat(p).st_mtime_ns
    return out


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def script(name):
    """The command for Luigi's console script ``name`` of this interpreter's installation."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(path):
        return [path]
    entry = {"luigi": "luigi_run", "luigid": "luigid"}[name]
    return [sys.executable, "-c", f"import sys; from luigi.cmdline import {entry}; {entry}(sys.argv[1:])"]


def luigi_cli(args, cwd, timeout=180, env_extra=None):
    """Run the ``luigi`` command line (as a user would) in ``cwd``; returns CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if k not in ("LUIGI_CONFIG_PATH", "PYTHONPATH")}
    env.update(env_extra or {})
    cmd = script("luigi") + list(args)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def out(tmp_path):
    return str(tmp_path / "outputs")
