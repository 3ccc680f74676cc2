"""The one-file model format: an ``.npz`` archive holding

- ``__meta__``: UTF-8 JSON as a ``uint8`` array: format name and version, the
  architecture (``Sequential.get_config``), the compile settings and any
  ``extra`` JSON a caller adds (a domain classifier's preprocessing settings);
- ``weights/<layer index>/<weight name>``: every weight;
- ``optimizer/<name>``: the optimizer's step counter and slots, so training resumes;
- ``extra/<name>``: arrays a caller adds.

Nothing is pickled: the file is read with ``allow_pickle=False``. It is written
to a temporary file and renamed, so a crash never leaves half a model behind.

A model file is untrusted input. Loading it is bounded: the path must be a
regular file (checked without opening it); the JSON description is checked
for types and nesting depth before anything is built; the architecture is
built under the parameter cap of :mod:`core.limits`; and every archive member
is checked from its ``.npy`` header and its declared uncompressed size
against what the architecture implies *before* it is read, so neither a
header that declares a huge shape nor a deflate bomb allocates anything.
Members outside the four names above, ``extra/*`` members larger than
:data:`MAX_EXTRA_BYTES` together, and non-finite weights are refused. Every
problem is a :class:`~core.exceptions.ModelFileError` naming the file.
"""
import inspect
import json
import math
import re
import zipfile

import numpy as np

from . import limits, losses, optimizers
from .exceptions import CNNError, InputError, ModelFileError
from .filecheck import peek, regular_file, writable_target
from .io import atomic_write

FORMAT = "numpy-cnn-model"
VERSION = 1

#: the JSON description may take at most this many bytes
MAX_META_BYTES = 16 << 20
#: all ``extra/*`` members together may take at most this many bytes (uncompressed)
MAX_EXTRA_BYTES = 64 << 20
#: at most this many members in the archive, and this many layers in the architecture
MAX_MEMBERS = 100_000
MAX_LAYERS = 10_000
#: the JSON description may nest at most this deep
MAX_JSON_DEPTH = 32

_NAME = re.compile(r"^(__meta__|weights/\d{1,6}/[A-Za-z0-9_./-]{1,200}|optimizer/[A-Za-z0-9_./-]{1,200}"
                   r"|extra/[A-Za-z0-9_./-]{1,200})\.npy$")
_FLOAT_DTYPES = ("float16", "float32", "float64")
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def _json_array(obj):
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def save_model(model, filepath, include_optimizer=True, extra_config=None, extra_arrays=None):
    """Write ``model`` to ``filepath`` (``.npz`` is used as given, not appended)."""
    path = writable_target(filepath, "model file")
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
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)


# ------------------------------------------------------------------ the archive
class _Archive:
    """An open model archive whose members are read one by one, each only after
    its header and declared size have been checked."""

    def __init__(self, path):
        self.path = path
        head = peek(path, 4)
        if head != b"PK\x03\x04":
            raise ModelFileError(f"{path!r} is not a model file: a model is a .npz (zip) archive written by "
                                 f"Sequential.save, but this file does not start like a zip archive")
        try:
            self.zip = zipfile.ZipFile(path)
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                NotImplementedError) as exc:
            raise self.error(f"is not a readable .npz archive ({type(exc).__name__})") from None
        if len(infos) > MAX_MEMBERS:
            self.close()
            raise self.error(f"holds {len(infos):,} archive members; a model file holds at most {MAX_MEMBERS:,}")
        if not any(info.filename == "__meta__.npy" for info in infos):
            self.close()
            raise self.error("is a .npz archive but not a model saved by this project (no '__meta__' entry)")
        self.members = {}
        for info in infos:
            if not _NAME.match(info.filename) or info.filename in self.members:
                self.close()
                shown = info.filename if len(info.filename) <= 80 and info.filename.isprintable() else "(unprintable)"
                raise self.error(f"holds an unexpected archive member {shown!r}; a model file holds only "
                                 f"__meta__, weights/*, optimizer/* and extra/* arrays, each once")
            if info.compress_type not in _ZIP_METHODS:
                self.close()
                raise self.error(f"member {info.filename!r} uses an unsupported compression method")
            self.members[info.filename[:-4]] = info

    def error(self, text):
        return ModelFileError(f"{self.path!r} {text}")

    def close(self):
        self.zip.close()

    def names(self, prefix):
        return sorted(k for k in self.members if k.startswith(prefix))

    def header(self, name):
        """``(shape, fortran_order, dtype, header_bytes)`` of member ``name`` from its .npy header."""
        info = self.members[name]
        try:
            with self.zip.open(info) as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
                else:
                    raise ValueError(f"unknown .npy version {version}")
                offset = fp.tell()
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, SyntaxError, TypeError,
                RuntimeError, NotImplementedError) as exc:
            raise self.error(f"member {name!r} is not a readable .npy array ({type(exc).__name__})") from None
        return tuple(shape), bool(fortran), dtype, offset

    def read(self, name, kinds, shape=None, max_bytes=None, what="array"):
        """Member ``name`` as an array after checking its dtype kind (one of ``kinds``),
        its shape (``shape`` when given), its size (at most ``max_bytes``) and that
        the archive's declared size of the member agrees with its header."""
        shape_found, fortran, dtype, offset = self.header(name)
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in kinds:
            raise self.error(f"{what} {name!r} is stored as dtype {dtype}; expected "
                             f"{' or '.join(_KIND_NAMES[k] for k in kinds)}")
        if shape is not None and shape_found != tuple(shape):
            raise self.error(f"{what} {name!r} has shape {shape_found}; the architecture needs {tuple(shape)}")
        if any(d < 0 for d in shape_found):
            raise self.error(f"{what} {name!r} declares the impossible shape {shape_found}")
        nbytes = math.prod(shape_found) * dtype.itemsize
        if max_bytes is not None and nbytes > max_bytes:
            raise self.error(f"{what} {name!r} declares {nbytes:,} bytes (shape {shape_found}, {dtype}); at most "
                             f"{max_bytes:,} are allowed here")
        declared = self.members[name].file_size
        if declared != offset + nbytes:
            raise self.error(f"member {name!r}: the archive declares {declared:,} uncompressed bytes but its .npy "
                             f"header implies {offset + nbytes:,}; the file is corrupt or forged")
        buf = bytearray(nbytes)
        try:
            with self.zip.open(self.members[name]) as fp:
                fp.read(offset)
                got = fp.readinto(memoryview(buf)) if nbytes else 0
                trailing = fp.read(1)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError) as exc:
            raise self.error(f"member {name!r} cannot be read ({type(exc).__name__}); the file is corrupt") from None
        if got != nbytes or trailing:
            raise self.error(f"member {name!r} holds a different amount of data than its header declares")
        arr = np.frombuffer(buf, dtype=dtype)
        return arr.reshape(shape_found, order="F" if fortran else "C")

    def read_float(self, name, shape, what):
        arr = self.read(name, "f", shape=shape, what=what)
        if not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise self.error(f"{what} {name!r} holds {bad} NaN or infinite value(s); a usable model has none")
        return arr


_KIND_NAMES = {"f": "floats", "i": "signed ints", "u": "unsigned ints", "b": "booleans", "U": "unicode text",
               "S": "bytes"}


# ------------------------------------------------------------ the description
def _depth(obj, limit):
    """Nesting depth of a parsed JSON value, stopping once ``limit`` is passed."""
    stack, deepest = [(obj, 1)], 0
    while stack:
        value, d = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((v, d + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _kind(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _MetaChecker:
    def __init__(self, path):
        self.path = path

    def fail(self, where, expected, value):
        return ModelFileError(f"{self.path!r}: the model description is invalid: {where} must be {expected}, "
                              f"found {_kind(value)}")

    def check(self, meta):
        if not isinstance(meta, dict):
            raise self.fail("the description", "a JSON object", meta)
        if meta.get("format") != FORMAT:
            shown = meta.get("format") if isinstance(meta.get("format"), str) and len(meta["format"]) < 40 else "?"
            raise ModelFileError(f"{self.path!r}: expected format {FORMAT!r}, found {shown!r}")
        version = meta.get("version")
        if not _is_int(version):
            raise self.fail("'version'", f"an integer (1 to {VERSION})", version)
        if version > VERSION:
            raise ModelFileError(f"{self.path!r} was written by a newer version (format version {version}, "
                                 f"this version reads up to {VERSION})")
        if version < 1:
            raise ModelFileError(f"{self.path!r}: format version {version} does not exist (expected 1 to {VERSION})")
        self.model(meta.get("model"))
        comp = meta.get("compile")
        if comp is not None:
            self.compile(comp)
        if not isinstance(meta.get("extra", {}), dict):
            raise self.fail("'extra'", "an object", meta.get("extra"))

    def model(self, model):
        if not isinstance(model, dict):
            raise self.fail("'model'", "an object", model)
        layers = model.get("layers")
        if not isinstance(layers, list):
            raise self.fail("'model.layers'", "a list of layer objects", layers)
        if len(layers) > MAX_LAYERS:
            raise ModelFileError(f"{self.path!r}: the architecture lists {len(layers):,} layers; at most "
                                 f"{MAX_LAYERS:,} are accepted")
        shape = model.get("input_shape")
        if shape is not None and not (isinstance(shape, list) and 1 <= len(shape) <= 8
                                      and all(_is_int(d) and d >= 1 for d in shape)):
            raise ModelFileError(f"{self.path!r}: 'model.input_shape' must be a list of 1 to 8 positive integers")
        for key in ("name",):
            if model.get(key) is not None and not isinstance(model[key], str):
                raise self.fail(f"'model.{key}'", "a string", model[key])
        if model.get("seed") is not None and not _is_int(model["seed"]):
            raise self.fail("'model.seed'", "an integer", model["seed"])
        for i, spec in enumerate(layers):
            where = f"'model.layers[{i}]'"
            cfg = self.spec(where, spec, "an object {class_name, config}")
            dtype = cfg.get("dtype")
            if dtype is not None and dtype not in _FLOAT_DTYPES:
                shown = dtype if isinstance(dtype, str) and len(dtype) < 20 else _kind(dtype)
                raise ModelFileError(f"{self.path!r}: {where}.config.dtype must be one of {list(_FLOAT_DTYPES)}, "
                                     f"found {shown!r}")

    def spec(self, where, value, expected):
        """The ``config`` of a ``{"class_name": str, "config": {...}}`` object, its types checked."""
        if not isinstance(value, dict):
            raise self.fail(where, expected, value)
        if not isinstance(value.get("class_name"), str):
            raise self.fail(f"{where}.class_name", "a string", value.get("class_name"))
        cfg = value.get("config", {})
        if not isinstance(cfg, dict):
            raise self.fail(f"{where}.config", "an object", cfg)
        return cfg

    def named(self, where, value, registry):
        """A ``"name"`` or ``{"class_name": ..., "config": {...}}`` reference."""
        if isinstance(value, str):
            return None
        cfg = self.spec(where, value, "a name or an object {class_name, config}")
        cls = registry.get(value["class_name"])
        if cls is not None:  # an unknown name is reported by the registry lookup itself
            known = set()  # **kwargs go on to the base classes: their names count too
            for klass in cls.__mro__:
                if "__init__" in vars(klass) and klass is not object:
                    known |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"}
            unknown = sorted(k for k in cfg if k not in known)
            if unknown:
                raise ModelFileError(f"{self.path!r}: {where} ({value['class_name']}) has unknown setting(s) "
                                     f"{unknown[:5]}")
        return cfg

    def compile(self, comp):
        if not isinstance(comp, dict):
            raise self.fail("'compile'", "an object or null", comp)
        cfg = self.named("'compile.optimizer'", comp.get("optimizer"), optimizers._REGISTRY)
        for key, value in (cfg or {}).items():
            where = f"'compile.optimizer.config.{key}'"
            if key == "learning_rate":
                if isinstance(value, dict):
                    sched = self.named(where, value, optimizers._SCHEDULES) or {}
                    for k, v in sched.items():
                        if not (_is_number(v) or isinstance(v, bool) or v is None
                                or (isinstance(v, list) and all(_is_number(x) for x in v))):
                            raise self.fail(f"{where}.config.{k}", "a number", v)
                elif not _is_number(value):
                    raise self.fail(where, "a finite number or a schedule object", value)
            elif key == "name":
                if value is not None and not isinstance(value, str):
                    raise self.fail(where, "a string", value)
            elif not (value is None or isinstance(value, bool) or _is_number(value)):
                raise self.fail(where, "a finite number, a boolean or null", value)
        if comp.get("loss") is not None:
            self.named("'compile.loss'", comp["loss"], {})
        metrics = comp.get("metrics")
        if metrics is not None and not (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
            raise self.fail("'compile.metrics'", "a list of metric names", metrics)


def _read_meta(archive):
    path = archive.path
    if "__meta__" not in archive.members:
        raise ModelFileError(f"{path!r} is a .npz archive but not a model saved by this project "
                             f"(no '__meta__' entry)")
    raw = archive.read("__meta__", "u", max_bytes=MAX_META_BYTES, what="the model description")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"{path!r}: the model description must be a 1-D uint8 array, found "
                             f"{raw.ndim}-D {raw.dtype}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path!r}: the model description is corrupt JSON ({type(exc).__name__} at "
                             f"position {getattr(exc, 'pos', getattr(exc, 'start', '?'))})") from None
    except RecursionError:
        raise ModelFileError(f"{path!r}: the model description nests deeper than {MAX_JSON_DEPTH} "
                             f"levels") from None
    if _depth(meta, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ModelFileError(f"{path!r}: the model description nests deeper than {MAX_JSON_DEPTH} levels")
    _MetaChecker(path).check(meta)
    return meta


def read_archive(filepath):
    """Read a model file: ``(meta, arrays)``: the checked JSON description and
    every member, each checked before it is read (no architecture is built, so
    only the generic bounds apply: at most :data:`MAX_EXTRA_BYTES` per member)."""
    path = regular_file(filepath, "model file")
    archive = _Archive(path)
    try:
        meta = _read_meta(archive)
        arrays = {name: archive.read(name, "biufUS", max_bytes=MAX_EXTRA_BYTES)
                  for name in archive.members if name != "__meta__"}
    finally:
        archive.close()
    return meta, arrays


def load_model(filepath, compile=True):
    """Rebuild a model saved with ``Sequential.save``: architecture, weights and,
    when ``compile``, the optimizer with its state (so ``fit`` resumes).

    The file is checked before anything large is allocated (see the module
    documentation); every problem is a ``ModelFileError`` naming the file.
    """
    return load_model_with_extras(filepath, compile=compile)[0]


_BUILD_ERRORS = (CNNError, KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def load_model_with_extras(filepath, compile=True):
    """``(model, extra_config, extra_arrays)`` from a model file."""
    path = regular_file(filepath, "model file")
    archive = _Archive(path)
    try:
        meta = _read_meta(archive)
        model = _build(archive, meta)
        _load_weights(archive, model)
        comp = meta.get("compile")
        if compile and comp:
            _compile(archive, model, comp)
        extra = _read_extras(archive)
    finally:
        archive.close()
    return model, meta.get("extra", {}), extra


#: the model classes a file can rebuild, by name; ``core.model`` registers ``Sequential``
#: (so this module, which ``core.model`` uses to save, does not import it back)
MODEL_CLASSES = {}


def register_model_class(cls):
    """Class decorator: ``load_model`` can rebuild models of ``cls`` (from ``cls.from_config``)."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def _build(archive, meta):
    Sequential = MODEL_CLASSES["Sequential"]
    path = archive.path
    try:
        with limits.model_budget("the architecture"):
            model = Sequential.from_config(meta["model"])
    except _BUILD_ERRORS as exc:
        raise ModelFileError(f"{path!r}: the architecture cannot be rebuilt: {type(exc).__name__}: "
                             f"{exc}") from None
    if not model.built:
        raise ModelFileError(f"{path!r}: the saved model has no input shape")
    return model


def _load_weights(archive, model):
    expected = {f"weights/{i}/{n}": layer.params[n] for i, layer in enumerate(model.layers)
                for n in layer.weight_names()}
    stored = set(archive.names("weights/"))
    missing, unexpected = sorted(set(expected) - stored), sorted(stored - set(expected))
    if missing or unexpected:
        raise archive.error(f"does not match its architecture: weights missing {missing[:5]}, "
                            f"unexpected {unexpected[:5]}")
    loaded = {key: archive.read_float(key, current.shape, "weight") for key, current in expected.items()}
    for i, layer in enumerate(model.layers):
        for n in layer.weight_names():
            layer.params[n] = loaded[f"weights/{i}/{n}"].astype(layer.dtype, copy=True)
    model.reset_inference()


def _compile(archive, model, comp):
    path = archive.path
    try:
        model.compile(optimizer=optimizers.get(comp["optimizer"]), loss=losses.get(comp["loss"]),
                      metrics=comp.get("metrics"), loss_weights=comp.get("loss_weights"))
    except _BUILD_ERRORS as exc:
        raise ModelFileError(f"{path!r}: the compile settings cannot be restored: {type(exc).__name__}: "
                             f"{exc}") from None
    names = archive.names("optimizer/")
    if not names:
        return
    # every weight, not only the trainable ones: a layer frozen after training keeps its slots
    weights = {f"{i}/{n}": layer.params[n] for i, layer in enumerate(model.layers) for n in layer.weight_names()}
    state = {}
    for name in names:
        key = name[len("optimizer/"):]
        if key == "iterations":
            it = archive.read(name, "iu", shape=(), what="optimizer step counter")
            if int(it) < 0:
                raise archive.error(f"optimizer step counter {name!r} is negative ({int(it)})")
            state[key] = it
            continue
        slot, _, weight = key.partition("/")
        if not slot or weight not in weights:
            raise archive.error(f"optimizer slot {name!r} belongs to no weight of the architecture")
        state[key] = archive.read_float(name, weights[weight].shape, "optimizer slot").astype(
            weights[weight].dtype, copy=False)
    if "iterations" not in state:
        raise archive.error("holds optimizer slots but no optimizer step counter ('optimizer/iterations')")
    model.optimizer.set_state(state)


def _read_extras(archive):
    names = archive.names("extra/")
    total = sum(archive.members[n].file_size for n in names)
    if total > MAX_EXTRA_BYTES:
        raise archive.error(f"holds {total:,} bytes of extra/* arrays (uncompressed, as declared); at most "
                            f"{MAX_EXTRA_BYTES:,} are accepted (core.serialization.MAX_EXTRA_BYTES)")
    out = {}
    for name in names:
        arr = archive.read(name, "biufUS", max_bytes=MAX_EXTRA_BYTES, what="extra array")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise archive.error(f"extra array {name!r} holds NaN or infinite values")
        out[name[len("extra/"):]] = arr
    return out


# ------------------------------------------------------------ classifier files
def restore_estimator(cls, path):
    """A fitted ``cls`` (a ``core.estimator.BaseClassifier`` subclass) from a file
    written by its ``save``; its settings, classes and preprocessing state are
    checked against the network before the estimator is returned."""
    model, extra_cfg, extra_arrays = load_model_with_extras(path)
    path = str(path)
    name = cls.__name__

    def bad(text):
        return ModelFileError(f"{path!r} is not a usable {name} file: {text}")

    info = extra_cfg.get("estimator")
    if not info:
        raise ModelFileError(f"{path!r} holds a bare network, not a {name} (use core.load_model)")
    if not isinstance(info, dict):
        raise bad(f"the estimator description must be a JSON object, found {_kind(info)}")
    if info.get("class") != name:
        found = info.get("class") if isinstance(info.get("class"), str) and len(info["class"]) < 60 else "?"
        article = "an" if found[:1].lower() in "aeiou" else "a"
        raise ModelFileError(f"{path!r} holds {article} {found}, not {'an' if name[:1].lower() in 'aeiou' else 'a'} "
                             f"{name}")
    for key, kind in (("params", dict), ("state", dict), ("history", dict), ("input_shape", list)):
        if key in info and not isinstance(info[key], kind):
            raise bad(f"estimator '{key}' must be {_kind(kind())}, found {_kind(info[key])}")
    valid = set(cls._param_names())
    try:
        est = cls(**{k: v for k, v in info.get("params", {}).items() if k in valid})
        est._validate_params()  # the declarative table of every setting, then the cross-setting checks
    except (InputError, CNNError, TypeError, ValueError) as exc:
        raise bad(f"a saved setting is invalid: {exc}") from None
    shape = info.get("input_shape", [])
    if not shape or not all(_is_int(d) and d >= 1 for d in shape):
        raise bad("'input_shape' must be a non-empty list of positive integers")
    if "classes" not in extra_arrays:
        raise bad("the class labels ('extra/classes') are missing")
    classes = extra_arrays["classes"]
    n_out = model.layers[-1].output_shape[-1]
    if classes.ndim != 1 or classes.dtype.kind not in "biufUS":
        raise bad(f"'extra/classes' must be a 1-D array of labels, found shape {classes.shape}")
    if len(np.unique(classes)) != len(classes):
        raise bad("'extra/classes' repeats a label")
    if len(classes) != n_out or len(classes) < 2:
        raise bad(f"it lists {len(classes)} class label(s) but the network has {n_out} outputs")
    est.model_ = model
    est.classes_ = classes
    est.input_shape_ = tuple(shape)
    est.history_ = info.get("history", {})
    state_arrays = {k[len("state/"):]: v for k, v in extra_arrays.items() if k.startswith("state/")}
    try:
        est._set_state(info.get("state", {}), state_arrays)
    except (CNNError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise bad(f"the saved preprocessing state is incomplete or malformed ({detail})") from None
    return est
