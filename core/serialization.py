"""The one-file model format: an ``.npz`` archive holding

- ``__meta__``: UTF-8 JSON as a ``uint8`` array: format name and version, the
  architecture (``Sequential.get_config``), the compile settings and any
  ``extra`` JSON a caller adds (a domain classifier's preprocessing settings);
- ``weights/<layer index>/<weight name>``: every weight;
- ``optimizer/<name>``: the optimizer's step counter and slots, so training resumes;
- ``extra/<name>``: arrays a caller adds.

Nothing is pickled: the file is read with ``allow_pickle=False``. It is written
to a temporary file and renamed, so a crash never leaves half a model behind.
"""
import json
import os
import zipfile

import numpy as np

from . import losses, optimizers
from .exceptions import CNNError, DataFileNotFoundError, ModelFileError
from .io import atomic_write

FORMAT = "numpy-cnn-model"
VERSION = 1


def _json_array(obj):
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def save_model(model, filepath, include_optimizer=True, extra_config=None, extra_arrays=None):
    """Write ``model`` to ``filepath`` (``.npz`` is used as given, not appended)."""
    model._require_built("save")
    meta = {"format": FORMAT, "version": VERSION, "model": model.get_config(),
            "compile": model.compile_config(), "extra": extra_config or {}}
    arrays = {"__meta__": _json_array(meta)}
    for i, layer in enumerate(model.layers):
        for name in layer.weight_names():
            arrays[f"weights/{i}/{name}"] = layer.params[name]
    if include_optimizer and model.compiled:
        for name, arr in model.optimizer.get_state().items():
            arrays[f"optimizer/{name}"] = arr
    for name, arr in (extra_arrays or {}).items():
        arrays[f"extra/{name}"] = np.asarray(arr)
    with atomic_write(filepath, "wb") as handle:
        np.savez(handle, **arrays)


def read_archive(filepath):
    """Read a model file: ``(meta, arrays)`` with every array loaded eagerly."""
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise DataFileNotFoundError(f"model file {path!r} does not exist")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head != b"PK\x03\x04":
        raise ModelFileError(f"{path!r} is not a model file: a model is a .npz (zip) archive written by "
                             f"Sequential.save, but this file starts with {head!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path!r} is not a readable model file (expected a .npz archive written by "
                             f"Sequential.save): {type(exc).__name__}: {exc}") from None
    if "__meta__" not in arrays:
        raise ModelFileError(f"{path!r} is a .npz archive but not a model saved by this project "
                             f"(no '__meta__' entry; found {sorted(arrays)[:5]})")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path!r}: the model description is corrupt ({exc})") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path!r}: expected format {FORMAT!r}, found {meta.get('format')!r}")
    if meta.get("version", 0) > VERSION:
        raise ModelFileError(f"{path!r} was written by a newer version (format version {meta['version']}, "
                             f"this version reads up to {VERSION})")
    return meta, arrays


def load_model(filepath, compile=True):
    """Rebuild a model saved with ``Sequential.save``: architecture, weights and,
    when ``compile``, the optimizer with its state (so ``fit`` resumes)."""
    return load_model_with_extras(filepath, compile=compile)[0]


def load_model_with_extras(filepath, compile=True):
    """``(model, extra_config, extra_arrays)`` from a model file."""
    from .model import Sequential

    path = os.fspath(filepath)
    meta, arrays = read_archive(path)
    try:
        model = Sequential.from_config(meta["model"])
    except CNNError as exc:
        raise ModelFileError(f"{path!r}: the architecture cannot be rebuilt: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{path!r}: the architecture description is incomplete ({exc})") from None
    if not model.built:
        raise ModelFileError(f"{path!r}: the saved model has no input shape")
    expected = {f"weights/{i}/{n}": layer.params[n] for i, layer in enumerate(model.layers) for n in layer.weight_names()}
    stored = {k for k in arrays if k.startswith("weights/")}
    missing, unexpected = sorted(set(expected) - stored), sorted(stored - set(expected))
    if missing or unexpected:
        raise ModelFileError(f"{path!r}: the weights do not match the architecture "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    for key, current in expected.items():
        if arrays[key].shape != current.shape:
            raise ModelFileError(f"{path!r}: weight {key!r} has shape {arrays[key].shape}, the architecture "
                                 f"needs {current.shape}")
    for i, layer in enumerate(model.layers):
        for n in layer.weight_names():
            layer.params[n] = arrays[f"weights/{i}/{n}"].astype(layer.dtype, copy=True)
    comp = meta.get("compile")
    if compile and comp:
        model.compile(optimizer=optimizers.get(comp["optimizer"]), loss=losses.get(comp["loss"]),
                      metrics=comp.get("metrics"), loss_weights=comp.get("loss_weights"))
        state = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
        if state:
            model.optimizer.set_state(state)
    extra = {k[len("extra/"):]: v for k, v in arrays.items() if k.startswith("extra/")}
    return model, meta.get("extra", {}), extra
