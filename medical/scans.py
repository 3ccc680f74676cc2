"""Reading scans into network-ready volumes: :func:`load_scan` and :func:`scan_info`.

Formats: NIfTI-1/2 (``.nii``, ``.nii.gz``), Analyze 7.5 and NIfTI pairs
(``.hdr``/``.img``), FreeSurfer MGH (``.mgh``, ``.mgz``), all through nibabel's
header classes with the voxels read by us; and DICOM (a folder holding a
series, or one enhanced multi-frame file) through pydicom, see
:mod:`medical.dicom`. Every format ends as the same thing, a float32 volume
and a voxel-to-RAS affine, and goes through the same preprocessing.
"""
import gzip
import os
import stat
import struct
import warnings
import zlib

import nibabel as nib
import numpy as np
from nibabel import orientations

from core.exceptions import DataFormatError, InputError
from core.io import check_path

from . import preprocessing as pp
from .preprocessing import ScanQualityWarning

DEFAULT_MAX_BYTES = 2 * 1024 ** 3
"""Largest float32 volume (bytes) :func:`load_scan` agrees to allocate: 2 GiB,
e.g. a 1024 x 1024 x 512 CT. Headers declaring more are refused before reading,
and so are settings (``spacing``, ``shape``) whose output grid would be larger."""

MAX_CHANNELS = 4
"""Most volumes of a 4-D file that ``channels=True`` stacks as channels."""

VOLUME_REDUCTIONS = ("mean", "first")
"""The named choices of ``volume`` for a 4-D file, besides an index."""

_GZIP_MAGIC = b"\x1f\x8b"
_NIFTI = (".nii", ".nii.gz")
_PAIR = (".hdr", ".img", ".hdr.gz", ".img.gz")
_MGH = (".mgh", ".mgz")
SCAN_SUFFIXES = _NIFTI + _PAIR + _MGH + (".dcm",)
"""File name endings :func:`load_scan` reads (besides DICOM folders and DICOM files of any name)."""


def _as_path(path):
    """``path`` as str after checking it names an existing regular file (``check_path``
    refuses FIFOs and devices unopened) or a folder."""
    try:
        raw = os.fsdecode(os.fspath(path))
    except TypeError:
        raise InputError(f"scan: expected a path (str or os.PathLike), got {type(path).__name__}") from None
    if os.path.isdir(raw):
        return raw
    return check_path(raw, "scan file", kind="file")


def _is_gzip(path):
    with open(path, "rb") as raw:
        return raw.read(2) == _GZIP_MAGIC


def _head(path, n=544):
    """The first ``n`` bytes of a file (decompressed when it is gzip), bounded."""
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as handle:
                return handle.read(n)
        with open(path, "rb") as handle:
            return handle.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(f"{path!r}: the gzip stream is corrupt before the header could be read "
                              f"({type(exc).__name__})") from None


def _describe(block):
    """What a file that is not the expected format looks like, from its first bytes (no content echoed)."""
    sizes = {struct.unpack(f, block[:4])[0] for f in ("<i", ">i")} if len(block) >= 4 else set()
    if sizes & {348, 540}:
        return "an Analyze 7.5 header or a NIfTI header that is cut short"
    if block[:8] == b"\x89PNG\r\n\x1a\n":
        return "a PNG image"
    if block[:3] == b"\xff\xd8\xff":
        return "a JPEG image"
    if block[128:132] == b"DICM":
        return "a DICOM file"
    if block[:2] == b"PK":
        return "a zip archive"
    if block and all(32 <= b < 127 or b in (9, 10, 13) for b in block[:64]):
        return "text"
    return "an unknown binary format"


def _kind(path):
    """``"nifti"``, ``"pair"``, ``"mgh"`` or ``"dicom"`` for a file; DataFormatError otherwise."""
    lower = path.lower()
    block = _head(path)
    if not block:
        raise DataFormatError(f"{path!r} is empty; expected a scan (NIfTI, Analyze, MGH or DICOM)")
    if block[128:132] == b"DICM":
        return "dicom"
    if lower.endswith(_PAIR):
        return "pair"
    if lower.endswith(_MGH):
        return "mgh"
    if lower.endswith(".dcm"):
        return "dicom"                     # DICOM without the preamble: pydicom decides
    return "nifti"


# ------------------------------------------------------------------ nibabel
def _sniff_nifti(path):
    """Identify a single-file NIfTI from its first bytes: ``(version, byte_order)``."""
    compressed = _is_gzip(path)
    named_gz = path.lower().endswith(".gz")
    block = _head(path)
    version = order = None
    if len(block) >= 4:
        for fmt, bo in (("<i", "<"), (">i", ">")):
            size = struct.unpack(fmt, block[:4])[0]
            if size == 348 and len(block) >= 348 and block[344:347] in (b"n+1", b"ni1"):
                version, order, magic = 1, bo, block[344:347]
            elif size == 540 and len(block) >= 12 and block[4:7] in (b"n+2", b"ni2"):
                version, order, magic = 2, bo, block[4:7]
    if version is None:
        raise DataFormatError(f"{path!r} is not a NIfTI file: expected a NIfTI-1 or NIfTI-2 header "
                              f"(sizeof_hdr 348 or 540 and magic 'n+1'/'n+2'), found {_describe(block)}")
    if magic[:2] == b"ni":
        raise DataFormatError(f"{path!r} is the header of a NIfTI pair (.hdr/.img) under a single-file name; "
                              f"name it .hdr (with its .img beside it)")
    if compressed != named_gz:
        state = "gzip-compressed but its name does not end in .gz" if compressed else \
            "named .gz but not gzip-compressed"
        raise DataFormatError(f"{path!r} is a NIfTI file {state}; rename it (.nii.gz for compressed, .nii otherwise)")
    # vox_offset as stored (nibabel's in-memory header does not keep it)
    if version == 1:
        offset = struct.unpack(order + "f", block[108:112])[0]
    else:
        offset = struct.unpack(order + "q", block[168:176])[0]
    minimum = 352 if version == 1 else 544
    if not offset >= minimum:
        raise DataFormatError(f"{path!r}: the header's vox_offset is {offset:g}; a single-file NIfTI-{version} "
                              f"stores its voxels at byte {minimum} or later (the header would be read as "
                              f"voxels): the file is damaged")
    return version, order


def _load_nibabel(path, cls, what):
    try:
        img = cls.from_filename(path, mmap=False)
        img.affine  # noqa: B018 - computing it may fail on a malformed header
        img.dataobj.offset  # noqa: B018
    except DataFormatError:
        raise
    except Exception as exc:  # nibabel raises many kinds for a malformed header
        raise DataFormatError(f"{path!r}: the {what} header could not be read ({type(exc).__name__})") from None
    return img


class _NibabelSource:
    """A scan nibabel's header classes describe; voxels read by :meth:`volumes`."""

    def __init__(self, path, kind):
        self.path = path
        self.kind = kind
        self.version = None
        self.byte_order = None
        if kind == "nifti":
            self.version, self.byte_order = _sniff_nifti(path)
            img = _load_nibabel(path, nib.Nifti1Image if self.version == 1 else nib.Nifti2Image,
                                f"NIfTI-{self.version}")
            self.format = f"nifti{self.version}"
            self.data_path = path
        elif kind == "pair":
            hdr = path[:-3] if path.lower().endswith(".gz") else path
            stem = hdr[:-4]
            hdr_path = next((stem + e for e in (".hdr", ".HDR", ".hdr.gz") if os.path.isfile(stem + e)), None)
            img_path = next((stem + e for e in (".img", ".IMG", ".img.gz") if os.path.isfile(stem + e)), None)
            if hdr_path is None or img_path is None:
                missing = ".hdr" if hdr_path is None else ".img"
                raise DataFormatError(f"{path!r} is half of an Analyze/NIfTI pair; its {missing} file "
                                      f"({os.path.basename(stem)}{missing}) is missing beside it")
            block = _head(hdr_path)
            sizes = {struct.unpack(f, block[:4])[0] for f in ("<i", ">i")} if len(block) >= 4 else set()
            if 348 not in sizes or len(block) < 348:
                raise DataFormatError(f"{hdr_path!r} is not an Analyze 7.5 or NIfTI-1 header (sizeof_hdr 348), "
                                      f"found {_describe(block)}")
            self.byte_order = "<" if struct.unpack("<i", block[:4])[0] == 348 else ">"
            nifti = block[344:347] == b"ni1"
            cls = nib.Nifti1Pair if nifti else nib.AnalyzeImage
            self.format = "nifti1-pair" if nifti else "analyze"
            img = _load_nibabel(hdr_path, cls, "NIfTI-1 pair" if nifti else "Analyze 7.5")
            self.data_path = img.file_map["image"].filename or img_path
            if not os.path.isfile(self.data_path) or not stat.S_ISREG(os.stat(self.data_path).st_mode):
                raise DataFormatError(f"{path!r}: its voxel file {self.data_path!r} is missing or not a regular file")
        else:  # mgh
            block = _head(path, 4)
            if len(block) < 4 or struct.unpack(">i", block[:4])[0] != 1:
                raise DataFormatError(f"{path!r} is not an MGH/MGZ file: expected version 1 in its first 4 bytes, "
                                      f"found {_describe(_head(path))}")
            img = _load_nibabel(path, nib.MGHImage, "MGH")
            self.format = "mgz" if _is_gzip(path) else "mgh"
            self.byte_order = ">"
            self.data_path = path
        self.img = img
        self.shape = self._header_shape()
        self.affine = _check_affine(path, img.affine)
        proxy = img.dataobj
        self.dtype = np.dtype(proxy.dtype)
        if self.dtype.kind not in "biuf" or self.dtype.fields is not None:
            raise DataFormatError(f"{path!r}: voxel type {img.header.get_data_dtype()} is not supported; "
                                  f"expected integer or real voxels (not complex or RGB)")
        self.slope = float(proxy.slope) if proxy.slope is not None else 1.0
        self.inter = float(proxy.inter) if proxy.inter is not None else 0.0
        if not (np.isfinite(self.slope) and np.isfinite(self.inter)):
            raise DataFormatError(f"{path!r}: the header's scaling (slope={self.slope}, intercept={self.inter}) "
                                  f"is not finite")
        self.offset = int(proxy.offset)
        self.order = getattr(proxy, "order", "F")

    def _header_shape(self):
        path = self.path
        shape = tuple(int(d) for d in self.img.header.get_data_shape())
        if not 1 <= len(shape) <= 7:
            raise DataFormatError(f"{path!r}: the header declares {len(shape)} dimensions; expected 3 to 7")
        if any(d < 1 for d in shape):
            raise DataFormatError(f"{path!r}: the header declares the shape {shape}; every size must be >= 1")
        spatial = (shape + (1, 1, 1))[:3]
        if len(shape) < 3 or sum(d > 1 for d in spatial) < 3:
            raise DataFormatError(f"{path!r} holds a {'single slice' if len(shape) >= 3 else f'{len(shape)}-D image'} "
                                  f"of shape {shape}; expected a 3-D volume (at least 2 voxels along each of x, y, z)")
        return shape

    def check_size(self):
        """A file that cannot hold the voxels its header declares is refused before reading."""
        if _is_gzip(self.data_path):
            return
        needed = self.offset + int(np.prod(self.shape, dtype=np.float64)) * self.dtype.itemsize
        size = os.path.getsize(self.data_path)
        if size < needed:
            raise DataFormatError(f"{self.data_path!r} is truncated: the header declares shape {self.shape} of "
                                  f"{self.img.header.get_data_dtype()}, i.e. {needed} bytes with the header, but "
                                  f"the file has {size}")

    def volumes(self, first, count):
        """Yield ``count`` consecutive volumes from ``first`` as float32 ``(X, Y, Z)``, scaled.

        The bytes are read straight from the (possibly gzip-compressed) file,
        one volume at a time; a compressed file is then read to its end so that
        its length and CRC are checked: a truncated or corrupt ``.gz`` fails
        here rather than giving silently wrong voxels.
        """
        path = self.data_path
        spatial = self.shape[:3]
        n_vox = int(np.prod(spatial))
        nbytes = n_vox * self.dtype.itemsize
        compressed = _is_gzip(path)
        opener = gzip.open if compressed else open
        try:
            with opener(path, "rb") as handle:
                handle.seek(self.offset + first * nbytes)
                for _ in range(count):
                    buf = np.empty(n_vox, dtype=self.dtype)
                    target = memoryview(buf.view(np.uint8))
                    got = 0
                    while got < nbytes:
                        k = handle.readinto(target[got:])
                        if not k:
                            break
                        got += k
                    if got < nbytes:
                        raise DataFormatError(f"{path!r}: the voxel data ends after {got} of the {nbytes} bytes "
                                              f"expected for a volume of shape {spatial} of "
                                              f"{self.img.header.get_data_dtype()}; the file is truncated or corrupt")
                    del target
                    data = np.array(buf.reshape(spatial, order=self.order), dtype=np.float32, order="C")
                    del buf
                    if self.slope != 1.0:
                        data *= np.float32(self.slope)
                    if self.inter != 0.0:
                        data += np.float32(self.inter)
                    yield data
                if compressed:
                    while handle.read(1 << 22):       # to the end: gzip checks length and CRC there
                        pass
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{path!r}: the voxel data could not be read ({type(exc).__name__}); "
                                  f"the file is truncated or corrupt") from None

    def info(self):
        out = {"format": self.format, "dtype": str(self.dtype.newbyteorder("=")), "byte_order": self.byte_order,
               "scaling": (self.slope, self.inter)}
        if self.version is not None:
            out["nifti_version"] = self.version
        return out


def _check_affine(path, affine):
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all() or not abs(np.linalg.det(affine[:3, :3])) > 1e-12:
        raise DataFormatError(f"{path!r}: the voxel-to-world affine is degenerate or not finite "
                              f"(voxel sizes {pp.voxel_spacing(affine) if affine.shape == (4, 4) else '?'})")
    return affine


def _open_source(path, series=None):
    """The reader for ``path``: a nibabel-described file or a DICOM series/file."""
    if os.path.isdir(path):
        from .dicom import DicomSource
        return DicomSource(path, series=series)
    kind = _kind(path)
    if kind == "dicom":
        from .dicom import DicomSource
        return DicomSource(path, series=series)
    if series is not None:
        raise InputError(f"series= selects a DICOM series; {path!r} is not DICOM")
    return _NibabelSource(path, kind)


# -------------------------------------------------------------- selection
def _select(path, shape, volume, channels):
    """Which volumes of the file to read: ``(mode, first, count)``.

    ``mode`` is ``"stack"`` (``count`` volumes as channels; 1 for a 3-D scan or
    one chosen volume) or ``"mean"`` (their voxel-wise mean). Singleton axes
    beyond the third are ignored; at most one further axis may have several
    entries (a 4-D series, or 5-D vectors stored as x, y, z, 1, c).
    """
    extra = [n for n in shape[3:] if n > 1]
    if len(extra) > 1:
        raise DataFormatError(f"{path!r} has shape {shape}: more than one axis beyond x, y, z has several entries; "
                              f"expected a 3-D volume or a 4-D series")
    n = extra[0] if extra else 1
    if volume is not None:
        if channels:
            raise InputError("pass either volume= (pick or reduce volumes) or channels=True (stack them), not both")
        if isinstance(volume, str):
            if volume == "mean":
                return "mean", 0, n
            if volume == "first":
                return "stack", 0, 1
            raise InputError(f"volume must be an int index, 'mean', 'first' or None, got {volume!r}")
        if isinstance(volume, bool) or not isinstance(volume, (int, np.integer)):
            raise InputError(f"volume must be an int index, 'mean', 'first' or None, got {volume!r}")
        if not -n <= volume < n:
            raise InputError(f"volume={volume} is out of range for {path!r}, which holds {n} volume(s) "
                             f"(shape {shape}); valid: 0..{n - 1}")
        return "stack", int(volume) % n, 1
    if n == 1:
        return "stack", 0, 1
    if channels:
        if n > MAX_CHANNELS:
            raise InputError(f"{path!r} holds {n} volumes (shape {shape}); channels=True stacks at most "
                             f"{MAX_CHANNELS}: pick one with volume=0..{n - 1}, or volume='mean'")
        return "stack", 0, n
    hint = f", or channels=True to stack the {n} volumes as channels" if n <= MAX_CHANNELS else ""
    raise InputError(f"{path!r} is a 4-D series of {n} volumes (shape {shape}); pass volume=0..{n - 1} "
                     f"to pick one, volume='first' or volume='mean' (their voxel-wise mean){hint}")


def _read_selected(source, mode, first, count):
    """float32 ``(X, Y, Z)`` or ``(X, Y, Z, C)``; a mean is accumulated one volume at a time."""
    if mode == "mean":
        total = None
        for vol in source.volumes(first, count):
            if total is None:
                total = vol.astype(np.float64)
            else:
                total += vol
        return (total / count).astype(np.float32)
    vols = list(source.volumes(first, count))
    if count == 1:
        return vols[0]
    return np.stack(vols, axis=-1)


def _output_grid(shape3, affine, spacing, shape, shape_mode):
    """Voxel counts of the largest grids ``load_scan`` will allocate: after ``spacing``, after ``shape``."""
    spacings = pp.voxel_spacing(affine)
    grids = []
    n = list(shape3)
    if spacing is not None:
        ornt = orientations.io_orientation(affine)
        target = [spacing[int(ornt[i, 0])] if np.isfinite(ornt[i, 0]) else spacing[i] for i in range(3)]
        n = [max(1.0, round(k * s / t)) for k, s, t in zip(n, spacings, target)]
        grids.append(float(np.prod(n, dtype=np.float64)))
    if shape is not None:
        grids.append(float(np.prod(shape, dtype=np.float64)))
    return grids


def scan_info(path, series=None):
    """Header facts about a scan, without reading its voxels.

    Returns a dict: ``format`` (``"nifti1"``, ``"nifti2"``, ``"analyze"``,
    ``"nifti1-pair"``, ``"mgh"``, ``"mgz"`` or ``"dicom"``), ``shape`` (as
    stored), ``spacing`` (mm per stored axis), ``orientation`` (axis codes such
    as ``"LPS"``), ``dtype``, ``affine`` (4 x 4 list, voxel -> RAS mm), and
    per format: ``nifti_version``, ``byte_order``, ``scaling`` (slope,
    intercept); for DICOM ``series_uid``, ``series_number``,
    ``series_description``, ``modality``, ``n_files``, ``transfer_syntax``.
    """
    path = _as_path(path)
    source = _open_source(path, series=series)
    info = {"shape": tuple(source.shape), "spacing": pp.voxel_spacing(source.affine),
            "orientation": pp.axis_codes(source.affine), "affine": source.affine.tolist()}
    info.update(source.info())
    return info


def load_scan(path, spacing=None, shape=None, normalize="zscore", volume=None, shape_mode="resample",
              channels=False, antialias=True, max_bytes=DEFAULT_MAX_BYTES, return_info=False, series=None):
    """Read a scan and bring it to a standard orientation, grid and intensity scale.

    Steps, in order: read the header (NIfTI-1/2 ``.nii``/``.nii.gz`` in
    either byte order, Analyze 7.5 or NIfTI pairs ``.hdr``/``.img``, MGH
    ``.mgh``/``.mgz``, or DICOM: a folder holding a series, or one enhanced
    multi-frame file); refuse absurd sizes before allocating (the file's grid
    and the grids ``spacing`` and ``shape`` would create); read the voxels
    eagerly as float32 with the file's scaling applied (``scl_slope``/
    ``scl_inter``, DICOM RescaleSlope/RescaleIntercept); replace non-finite
    voxels; reorient to the closest canonical RAS orientation (array axes 0,
    1, 2 then run towards Right, Anterior, Superior for every scan); resample
    to ``spacing``; normalize intensities; bring to ``shape``.

    Parameters
    ----------
    path : str or os.PathLike
        A scan file, or a folder of DICOM files (see :mod:`medical.dicom`).
    spacing : float or (3,) floats, optional
        Target voxel size in mm (trilinear resampling). None keeps the file's.
    shape : int or (3,) ints, optional
        Target grid. None keeps the grid after ``spacing``.
    normalize : {"zscore", "minmax", "percentile"}, ("ct", level, width) or None
        See :func:`medical.preprocessing.normalize_intensity`. Computed on the
        scan after resampling to ``spacing`` and before ``shape``, so padding
        does not enter the statistics.
    volume : int, "first" or "mean", optional
        For a 4-D file (x, y, z, t): the index of the one volume to read (only
        that volume is read), ``"first"`` (index 0), or ``"mean"``: the
        voxel-wise mean of all volumes (read one at a time, e.g. a mean fMRI
        or DWI image). Required for 4-D files unless ``channels``. A 3-D
        file is its own volume 0, first and mean.
    shape_mode : {"resample", "crop_or_pad"}
        How ``shape`` is reached: ``"resample"`` interpolates the whole field of
        view onto the new grid (the voxel size changes, possibly differently
        per axis); ``"crop_or_pad"`` keeps the voxel size and cuts or pads
        (with the scan's minimum) around the centre.
    channels : bool
        For a 4-D file with at most 4 volumes (e.g. T1/T2/FLAIR or a vector
        field): stack them as channels.
    antialias : bool
        Gaussian smoothing before making a grid coarser (see :mod:`medical.preprocessing`).
    max_bytes : int
        Largest float32 volume that may be allocated: the file's grid, and the
        grids after ``spacing`` and ``shape``.
    return_info : bool
        Also return a dict: ``original_shape``, ``original_spacing``,
        ``original_orientation``, ``spacing`` (mm per output axis), ``affine``
        (output voxel -> world mm), ``n_nonfinite``, ``format``, and
        ``nifti_version`` for NIfTI files.
    series : str or int, optional
        For a DICOM folder holding several series: the SeriesInstanceUID or
        the SeriesNumber of the one to read.

    Returns
    -------
    volume : ndarray, float32, ``(D, H, W, C)``
        ``C = 1`` unless ``channels``. Axis order R, A, S.

    Non-finite voxels (NaN, +/-inf, as some tools write outside a mask) are
    replaced by the smallest (NaN, -inf) or largest (+inf) finite value and
    counted in a :class:`medical.ScanQualityWarning`. A scan without any
    finite voxel is refused.

    Raises
    ------
    DataFileNotFoundError
        ``path`` does not exist.
    DataFormatError
        Not a scan, truncated or corrupt, 2-D, absurd header dimensions, a
        degenerate affine, an unsupported voxel type, a damaged DICOM series
        (missing slice, mixed series, no position, unequal spacing), a
        compressed DICOM transfer syntax no installed package decodes. The
        message names the file.
    InputError
        A bad argument, or a 4-D file without ``volume=``/``channels=True``.
    """
    path = _as_path(path)
    spacing = pp.check_spacing(spacing)
    shape = pp.check_shape(shape)
    normalize = pp.check_normalize(normalize)
    pp.check_shape_mode(shape_mode)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise InputError(f"max_bytes must be a positive int, got {max_bytes!r}")

    source = _open_source(path, series=series)
    file_shape = tuple(source.shape)
    mode, first, count = _select(path, file_shape, volume, channels)
    n_channels = count if mode == "stack" else 1
    n_bytes = 4 * int(np.prod(file_shape[:3], dtype=np.float64)) * n_channels
    if n_bytes > max_bytes:
        raise DataFormatError(f"{path!r}: the header declares shape {file_shape}, i.e. {n_bytes / 2**30:.1f} GiB as "
                              f"float32, above max_bytes={max_bytes} ({max_bytes / 2**30:.1f} GiB); refusing to "
                              f"allocate it (pass a larger max_bytes if the scan is really that big)")
    affine = source.affine
    for n_vox in _output_grid(file_shape[:3], affine, spacing, shape, shape_mode):
        out_bytes = 4.0 * n_vox * n_channels
        if out_bytes > max_bytes:
            raise DataFormatError(f"{path!r}: voxels of {tuple(round(s, 6) for s in pp.voxel_spacing(affine))} mm on "
                                  f"a grid of {file_shape[:3]} brought to spacing={spacing} and shape={shape} give "
                                  f"{out_bytes / 2**30:.1f} GiB as float32, above max_bytes={max_bytes} "
                                  f"({max_bytes / 2**30:.1f} GiB); refusing to allocate it (check the header's "
                                  f"voxel size, or pass a larger max_bytes)")
    source.check_size()
    original_spacing = pp.voxel_spacing(affine)
    original_orientation = pp.axis_codes(affine)

    data = _read_selected(source, mode, first, count)
    n_bad = pp.replace_nonfinite(data)
    if n_bad:
        if n_bad == data.size:
            raise DataFormatError(f"{path!r}: every voxel is NaN or infinite")
        warnings.warn(f"{path!r}: replaced {n_bad} non-finite voxel(s) (NaN/-inf by the smallest finite value, "
                      f"+inf by the largest) out of {data.size}", ScanQualityWarning, stacklevel=2)

    data, affine = pp.reorient_to_ras(data, affine)
    cur_spacing = pp.voxel_spacing(affine)
    if spacing is not None:
        data, scale = pp.resample_to_spacing(data, cur_spacing, spacing, antialias=antialias, return_scale=True)
        affine = _scaled_affine(affine, scale)
    data = pp.normalize_intensity(data, normalize, copy=False)
    if shape is not None and tuple(data.shape[:3]) != shape:
        if shape_mode == "resample":
            scale = tuple(n / m for n, m in zip(data.shape[:3], shape))
            data = pp.resize_volume(data, shape, antialias=antialias)
            affine = _scaled_affine(affine, scale)
        else:
            starts = pp.crop_or_pad_offsets(data.shape[:3], shape)
            data = pp.crop_or_pad(data, shape)
            shift = np.eye(4)
            shift[:3, 3] = starts
            affine = affine @ shift
    if data.ndim == 3:
        data = data[..., None]
    data = np.ascontiguousarray(data, dtype=np.float32)
    if not return_info:
        return data
    info = {"original_shape": file_shape, "original_spacing": original_spacing,
            "original_orientation": original_orientation, "spacing": pp.voxel_spacing(affine),
            "affine": affine, "n_nonfinite": n_bad, "format": source.info()["format"]}
    if getattr(source, "version", None) is not None:
        info["nifti_version"] = source.version
    return data, info


def _scaled_affine(affine, scale):
    """Affine of a grid whose voxel ``o`` samples input coordinate ``(o + 0.5) * s - 0.5``."""
    scale = np.asarray(scale, dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = np.diag(scale)
    m[:3, 3] = 0.5 * scale - 0.5
    return affine @ m
