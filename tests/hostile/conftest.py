"""Helpers for the hostile-input suite: attack files, and a child process
under a memory cap for the attacks whose point is memory (or a hang)."""
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CHILD = r"""
import json, resource, sys
sys.path.insert(0, {root!r})
{preload}
from core.exceptions import CNNError

def _vm_bytes():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")

_cap = _vm_bytes() + {headroom}
resource.setrlimit(resource.RLIMIT_AS, (_cap, _cap))
for _name, _code in json.loads({attacks!r}).items():
    try:
        exec(_code, dict(globals()))
        _out = {{"raised": None}}
    except BaseException as _exc:
        _out = {{"raised": type(_exc).__name__, "ours": isinstance(_exc, CNNError), "message": str(_exc)[:4000]}}
    print("RESULT:" + json.dumps([_name, _out]), flush=True)
"""


def run_capped_many(attacks, preload="import numpy as np\nimport core", headroom_mb=512, timeout=30):
    """Run each ``{name: code}`` attack, one after the other, in one fresh Python
    whose address space may grow by at most ``headroom_mb`` MiB beyond what the
    imports in ``preload`` took (one child for many attacks: imports cost seconds).

    Returns ``{name: {"raised": exception class name or None, "ours": bool, "message": str}}``;
    ``raised`` is ``"Timeout"`` for attacks not finished within ``timeout`` seconds in all.
    """
    attacks = {name: textwrap.dedent(code) for name, code in attacks.items()}
    source = _CHILD.format(root=ROOT, preload=preload, headroom=headroom_mb << 20, attacks=json.dumps(attacks))
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               NUMPY_CNN_THREADS="1")
    try:
        proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=ROOT)
        stdout, tail = proc.stdout, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        tail = f"no answer within {timeout} s"
    results = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT:"):
            name, out = json.loads(line[len("RESULT:"):])
            results[name] = out
    for name in attacks:
        results.setdefault(name, {"raised": "Timeout or crash", "ours": False, "message": tail})
    return results


def run_capped(code, **kwargs):
    """:func:`run_capped_many` for a single attack."""
    return run_capped_many({"attack": code}, **kwargs)["attack"]


def assert_ours(result, *names):
    """The child ended in one of our exceptions whose message names every one of ``names``."""
    assert result["raised"] is not None, "the attack was accepted without an error"
    assert result["ours"], f"{result['raised']} is not one of ours: {result['message'][:500]}"
    for name in names:
        assert str(name) in result["message"], (name, result["message"][:500])


# ------------------------------------------------------------- model files
def small_model(compiled=True, trained=True):
    from core import Input, Sequential, layers

    m = Sequential([Input((10, 10, 1)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                    layers.Flatten(), layers.Dense(3, activation="softmax")], seed=0)
    if compiled:
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        if trained:
            rng = np.random.default_rng(0)
            m.train_on_batch(rng.normal(size=(4, 10, 10, 1)).astype(np.float32), np.array([0, 1, 2, 0]))
    return m


def read_npz(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def meta_of(arrays):
    return json.loads(arrays["__meta__"].tobytes().decode("utf-8"))


def meta_array(meta_or_text):
    text = meta_or_text if isinstance(meta_or_text, str) else json.dumps(meta_or_text)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def rewrite(src, dst, meta=None, arrays=None):
    """Copy the model file ``src`` to ``dst`` after ``meta(dict) -> dict`` and
    ``arrays(dict) -> None`` (in place) change it."""
    data = read_npz(src)
    if meta is not None:
        data["__meta__"] = meta_array(meta(meta_of(data)))
    if arrays is not None:
        arrays(data)
    np.savez(dst, **data)
    return str(dst)


def npy_header(shape, descr="<f4"):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A small compiled model, trained one step (so it carries optimizer slots)."""
    path = tmp_path_factory.mktemp("model") / "good.npz"
    small_model().save(path)
    return str(path)


@pytest.fixture(scope="session")
def bomb_file(tmp_path_factory, model_file):
    """The good model plus an ``extra/blob`` member: 640 MiB of zeros deflated to about 0.6 MB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    with open(model_file, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("extra/blob.npy", "w", force_zip64=True) as member:
            member.write(npy_header((640 << 20,), "|u1"))
            for _ in range(640):
                member.write(zeros)
    return str(path)
