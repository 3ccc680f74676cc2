"""Reading NIfTI scans into network-ready volumes: :func:`load_scan`, :func:`load_scans`, :func:`scan_info`."""
import gzip
import os
import struct
import warnings
import zlib

import nibabel as nib
import numpy as np

from core.exceptions import DataFormatError, InputError
from core.io import check_path

from . import preprocessing as pp
from .preprocessing import ScanQualityWarning

DEFAULT_MAX_BYTES = 2 * 1024 ** 3
"""Largest float32 volume (bytes) :func:`load_scan` agrees to allocate: 2 GiB,
e.g. a 1024 x 1024 x 512 CT. Headers declaring more are refused before reading."""

MAX_CHANNELS = 4
"""Most volumes of a 4-D file that ``channels=True`` stacks as channels."""

_GZIP_MAGIC = b"\x1f\x8b"


def _as_path(path):
    return check_path(path, "scan file", kind="file")


def _sniff(path):
    """Identify a NIfTI file from its first bytes: ``(version, byte_order)``.

    Raises DataFormatError naming the file and what it looks like otherwise.
    """
    with open(path, "rb") as raw:
        head = raw.read(2)
    compressed = head == _GZIP_MAGIC
    named_gz = path.lower().endswith(".gz")
    try:
        if compressed:
            with gzip.open(path, "rb") as handle:
                block = handle.read(544)
        else:
            with open(path, "rb") as handle:
                block = handle.read(544)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(f"{path!r}: the gzip stream is corrupt before the NIfTI header could be read "
                              f"({exc}); expected a .nii.gz file") from None
    if len(block) == 0:
        raise DataFormatError(f"{path!r} is empty; expected a NIfTI-1 or NIfTI-2 file (.nii or .nii.gz)")
    version = None
    order = None
    if len(block) >= 4:
        for fmt, bo in (("<i", "<"), (">i", ">")):
            size = struct.unpack(fmt, block[:4])[0]
            if size == 348 and len(block) >= 348 and block[344:347] in (b"n+1", b"ni1"):
                version, order, magic = 1, bo, block[344:347]
            elif size == 540 and len(block) >= 12 and block[4:7] in (b"n+2", b"ni2"):
                version, order, magic = 2, bo, block[4:7]
    if version is None:
        sizes = {struct.unpack(f, block[:4])[0] for f in ("<i", ">i")} if len(block) >= 4 else set()
        if sizes & {348, 540}:
            found = "an Analyze 7.5 header or a NIfTI header that is cut short"
        elif block[:8] == b"\x89PNG\r\n\x1a\n":
            found = "a PNG image"
        elif block[:3] == b"\xff\xd8\xff":
            found = "a JPEG image"
        elif block[128:132] == b"DICM":
            found = "a DICOM file (convert it to NIfTI first, e.g. with dcm2niix)"
        elif block[:2] == b"PK":
            found = "a zip archive"
        else:
            found = f"first bytes {block[:8]!r}"
        raise DataFormatError(f"{path!r} is not a NIfTI file: expected a NIfTI-1 or NIfTI-2 header "
                              f"(sizeof_hdr 348 or 540 and magic 'n+1'/'n+2'), found {found}")
    if magic[:2] == b"ni":
        raise DataFormatError(f"{path!r} is the header of a NIfTI pair (.hdr/.img); only single-file NIfTI "
                              f"(.nii or .nii.gz) is read: convert it, e.g. nibabel.save(nibabel.load(p), 'x.nii.gz')")
    if compressed != named_gz:
        state = "gzip-compressed but its name does not end in .gz" if compressed else \
            "named .gz but not gzip-compressed"
        raise DataFormatError(f"{path!r} is a NIfTI file {state}; rename it (.nii.gz for compressed, .nii otherwise)")
    return version, order


def _open(path):
    """``(image, version)`` from a NIfTI file, header only (no voxel data read yet)."""
    version, _ = _sniff(path)
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    try:
        img = cls.from_filename(path, mmap=False)
        img.affine  # noqa: B018 - computing it may fail on a malformed header
    except Exception as exc:  # nibabel raises many kinds for a malformed header
        raise DataFormatError(f"{path!r}: the NIfTI-{version} header could not be read: "
                              f"{type(exc).__name__}: {exc}") from None
    return img, version


def _header_shape(path, img):
    dim = [int(d) for d in img.header["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise DataFormatError(f"{path!r}: the header declares {ndim} dimensions (dim[0]); expected 3 to 7")
    shape = tuple(dim[1:ndim + 1])
    if any(d < 1 for d in shape):
        raise DataFormatError(f"{path!r}: the header declares the shape {shape}; every size must be >= 1")
    spatial = (shape + (1, 1, 1))[:3]
    if ndim < 3 or sum(d > 1 for d in spatial) < 3:
        raise DataFormatError(f"{path!r} holds a {'single slice' if ndim >= 3 else f'{ndim}-D image'} of shape "
                              f"{shape}; expected a 3-D volume (at least 2 voxels along each of x, y, z)")
    return shape


def _select(path, shape, volume, channels):
    """Which volumes of the file to read: ``(first block, number of channels)``.

    Singleton axes beyond the third are ignored; at most one further axis may
    have several entries (a 4-D series, or 5-D vectors stored as x, y, z, 1, c).
    """
    extra = [n for n in shape[3:] if n > 1]
    if len(extra) > 1:
        raise DataFormatError(f"{path!r} has shape {shape}: more than one axis beyond x, y, z has several entries; "
                              f"expected a 3-D volume or a 4-D series")
    n = extra[0] if extra else 1
    if volume is not None:
        if isinstance(volume, bool) or not isinstance(volume, (int, np.integer)):
            raise InputError(f"volume must be an int index (or None), got {volume!r}")
        if channels:
            raise InputError("pass either volume= (pick one volume) or channels=True (stack them), not both")
        if not -n <= volume < n:
            raise InputError(f"volume={volume} is out of range for {path!r}, which holds {n} volume(s) "
                             f"(shape {shape}); valid: 0..{n - 1}")
        return int(volume) % n, 1
    if n == 1:
        return 0, 1
    if channels:
        if n > MAX_CHANNELS:
            raise InputError(f"{path!r} holds {n} volumes (shape {shape}); channels=True stacks at most "
                             f"{MAX_CHANNELS}: pick one with volume=0..{n - 1}")
        return 0, n
    hint = f" or channels=True to stack the {n} volumes as channels" if n <= MAX_CHANNELS else ""
    raise InputError(f"{path!r} is a 4-D series of {n} volumes (shape {shape}); pass volume=0..{n - 1} "
                     f"to pick one{hint}")


def _read(path, img, file_shape, block, n_channels):
    """Read the selected voxels eagerly as float32 ``(X, Y, Z[, C])`` with the
    header's scaling applied.

    NIfTI stores voxels in Fortran order, so the volumes of a 4-D file are
    consecutive blocks: ``block`` is the index of the first one to read and
    ``n_channels`` how many. The bytes are read straight from the (possibly
    gzip-compressed) file; a compressed file is then read to its end so that
    its length and CRC are checked: a truncated or corrupted ``.nii.gz`` fails
    here rather than giving silently wrong voxels.
    """
    proxy = img.dataobj
    dtype = np.dtype(proxy.dtype)                 # with the file's byte order
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise DataFormatError(f"{path!r}: voxel type {img.header.get_data_dtype()} is not supported; "
                              f"expected integer or real voxels (not complex or RGB)")
    n_vox = int(np.prod(file_shape[:3]))
    start = int(proxy.offset) + block * n_vox * dtype.itemsize
    buf = np.empty(n_vox * n_channels, dtype=dtype)
    target = memoryview(buf.view(np.uint8))
    got = 0
    try:
        opener = gzip.open if path.lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            handle.seek(start)
            while got < len(target):
                k = handle.readinto(target[got:])
                if not k:
                    break
                got += k
            if got == len(target) and opener is gzip.open:
                while handle.read(1 << 22):       # to the end: gzip checks length and CRC there
                    pass
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(f"{path!r}: the voxel data could not be read ({type(exc).__name__}: {exc}); "
                              f"the file is truncated or corrupt") from None
    if got < len(target):
        raise DataFormatError(f"{path!r}: the voxel data ends after {got} of the {len(target)} bytes expected for "
                              f"shape {file_shape} of {img.header.get_data_dtype()}; the file is truncated or corrupt")
    shape = file_shape[:3] + ((n_channels,) if n_channels > 1 else ())
    data = np.array(buf.reshape(shape, order="F"), dtype=np.float32, order="C")
    del buf, target
    slope, inter = float(proxy.slope), float(proxy.inter)
    if not (np.isfinite(slope) and np.isfinite(inter)):
        raise DataFormatError(f"{path!r}: the header's scaling (scl_slope={slope}, scl_inter={inter}) is not finite")
    if slope != 1.0:
        data *= np.float32(slope)
    if inter != 0.0:
        data += np.float32(inter)
    return data


def _affine(path, img):
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise DataFormatError(f"{path!r}: the header's voxel-to-world affine is degenerate or not finite:\n{affine}")
    return affine


def scan_info(path):
    """Header facts about a NIfTI scan, without reading its voxels.

    Returns a dict: ``shape`` (as stored), ``spacing`` (mm per stored axis),
    ``orientation`` (axis codes such as ``"LPS"``), ``dtype``, ``nifti_version``
    (1 or 2), ``byte_order`` (``"<"`` or ``">"``), ``scaling`` (slope, intercept)
    and ``affine`` (4 x 4 list).
    """
    path = _as_path(path)
    version, order = _sniff(path)
    img, _ = _open(path)
    shape = _header_shape(path, img)
    affine = _affine(path, img)
    return {"shape": shape, "spacing": pp.voxel_spacing(affine), "orientation": pp.axis_codes(affine),
            "dtype": str(np.dtype(img.header.get_data_dtype()).newbyteorder("=")), "nifti_version": version,
            "byte_order": order, "scaling": (float(img.dataobj.slope), float(img.dataobj.inter)),
            "affine": affine.tolist()}


def load_scan(path, spacing=None, shape=None, normalize="zscore", volume=None, shape_mode="resample",
              channels=False, antialias=True, max_bytes=DEFAULT_MAX_BYTES, return_info=False):
    """Read a NIfTI scan and bring it to a standard orientation, grid and intensity scale.

    Steps, in order: read the header (``.nii`` or ``.nii.gz``, NIfTI-1 or
    NIfTI-2, either byte order); refuse absurd sizes before allocating; read
    the voxels eagerly as float32 with the header's ``scl_slope``/``scl_inter``
    applied; replace non-finite voxels; reorient to the closest canonical RAS
    orientation (array axes 0, 1, 2 then run towards Right, Anterior,
    Superior for every scan); resample to ``spacing``; normalize intensities;
    bring to ``shape``.

    Parameters
    ----------
    path : str or os.PathLike
        A single-file NIfTI scan.
    spacing : float or (3,) floats, optional
        Target voxel size in mm (trilinear resampling). None keeps the file's.
    shape : int or (3,) ints, optional
        Target grid. None keeps the grid after ``spacing``.
    normalize : {"zscore", "minmax", "percentile"}, ("ct", level, width) or None
        See :func:`medical.preprocessing.normalize_intensity`. Computed on the
        scan after resampling to ``spacing`` and before ``shape``, so padding
        does not enter the statistics.
    volume : int, optional
        For a 4-D file (x, y, z, t): the index of the one volume to read (only
        that volume is read). Required for 4-D files unless ``channels``.
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
        Largest float32 result, before resampling, that may be allocated.
    return_info : bool
        Also return a dict: ``original_shape``, ``original_spacing``,
        ``original_orientation``, ``spacing`` (mm per output axis), ``affine``
        (output voxel -> world mm), ``n_nonfinite``, ``nifti_version``.

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
        Not NIfTI, truncated or corrupt, 2-D, absurd header dimensions, a
        degenerate affine, an unsupported voxel type. The message names the file.
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

    img, version = _open(path)
    file_shape = _header_shape(path, img)
    block, n_channels = _select(path, file_shape, volume, channels)
    n_bytes = 4 * int(np.prod(file_shape[:3], dtype=np.float64)) * n_channels
    if n_bytes > max_bytes:
        raise DataFormatError(f"{path!r}: the header declares shape {file_shape}, i.e. {n_bytes / 2**30:.1f} GiB as "
                              f"float32, above max_bytes={max_bytes} ({max_bytes / 2**30:.1f} GiB); refusing to "
                              f"allocate it (pass a larger max_bytes if the scan is really that big)")
    if not path.lower().endswith(".gz"):
        needed = int(img.dataobj.offset) + int(np.prod(file_shape, dtype=np.float64)) * np.dtype(img.dataobj.dtype).itemsize
        size = os.path.getsize(path)
        if size < needed:
            raise DataFormatError(f"{path!r} is truncated: the header declares shape {file_shape} of "
                                  f"{img.header.get_data_dtype()}, i.e. {needed} bytes with the header, but the file "
                                  f"has {size}")
    affine = _affine(path, img)
    original_spacing = pp.voxel_spacing(affine)
    original_orientation = pp.axis_codes(affine)

    data = _read(path, img, file_shape, block, n_channels)
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
            "affine": affine, "n_nonfinite": n_bad, "nifti_version": version}
    return data, info


def _scaled_affine(affine, scale):
    """Affine of a grid whose voxel ``o`` samples input coordinate ``(o + 0.5) * s - 0.5``."""
    scale = np.asarray(scale, dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = np.diag(scale)
    m[:3, 3] = 0.5 * scale - 0.5
    return affine @ m


def load_scans(paths, spacing=None, shape=None, normalize="zscore", volume=None, shape_mode="resample",
               channels=False, antialias=True, max_bytes=DEFAULT_MAX_BYTES, cache_dir=None, progress=False):
    """Load many scans, one at a time, into one float32 array ``(N, D, H, W, C)``.

    Every scan must come out with the same shape, so pass ``shape`` unless all
    files share a grid. The result is allocated once, after the first scan;
    each scan is read, preprocessed and copied in, so memory holds one raw
    volume besides the result. With ``cache_dir``, preprocessed volumes are
    kept as ``.npz`` files keyed by the file (path, size, modification time)
    and the settings (see :class:`medical.ScanCache`), and read from there next
    time. Other arguments as :func:`load_scan`. Errors name the offending file.
    """
    from .cache import ScanCache

    if isinstance(paths, (str, os.PathLike)):
        raise InputError("load_scans expects a list of paths; use load_scan for a single file")
    paths = list(paths)
    if not paths:
        raise InputError("load_scans: the list of paths is empty")
    settings = dict(spacing=spacing, shape=shape, normalize=normalize, volume=volume, shape_mode=shape_mode,
                    channels=channels, antialias=antialias, max_bytes=max_bytes)
    cache = ScanCache(cache_dir) if cache_dir is not None else None
    out = None
    iterator = paths
    if progress:
        from tqdm import tqdm
        iterator = tqdm(paths, desc="scans", unit="scan")
    for i, p in enumerate(iterator):
        vol = cache.load(p, **settings) if cache is not None else load_scan(p, **settings)
        if out is None:
            out = np.empty((len(paths),) + vol.shape, dtype=np.float32)
        elif vol.shape != out.shape[1:]:
            raise InputError(f"{os.fspath(p)!r} gives a volume of shape {vol.shape} but {os.fspath(paths[0])!r} gave "
                             f"{out.shape[1:]}; pass shape=(D, H, W) so that every scan comes out the same")
        out[i] = vol
    return out
