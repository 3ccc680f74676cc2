"""DICOM scans through pydicom: a folder holding a series (one slice per file), or one
enhanced multi-frame file.

Geometry follows the DICOM standard (PS3.3 C.7.6.2): ImageOrientationPatient
gives the directions of a row and of a column in LPS patient coordinates,
PixelSpacing the distance between rows, then between columns, and
ImagePositionPatient the centre of each slice's first pixel. Slices are
ordered by their position projected on the slice normal (the cross product of
the row and column directions), never by file name or InstanceNumber, and the
step between consecutive positions becomes the third column of the affine, so
a tilted gantry gives a sheared affine rather than a wrong one. The affine is
converted from LPS to RAS (x and y negated), the geometry dcm2niix and
dicom2nifti write. Array axes are (column, row, slice): the first array axis
runs along a row, as in the NIfTI files those converters write.

Files are untrusted: headers are read first without pixel data, the sizes they
declare are checked by :func:`medical.load_scan` before any pixel is decoded,
and every error pydicom raises becomes a :class:`DataFormatError` naming the
file (never showing its content).
"""
import os
import stat
import warnings
from collections import Counter, defaultdict

import numpy as np

from core.exceptions import DataFormatError, InputError

MAX_FILES = 20000
"""Most files a DICOM folder may hold (a whole-body CT has a few thousand slices)."""

MAX_FRAMES = 20000
"""Most frames a multi-frame file may declare."""

SPACING_TOLERANCE = 0.01
"""Relative tolerance on the distance between consecutive slices (plus 0.001 mm)."""

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_SKIP = {"DICOMDIR"}


def _pydicom():
    try:
        import pydicom
    except ImportError:  # pragma: no cover - a declared dependency
        raise DataFormatError("reading DICOM needs the pydicom package (pip install pydicom)") from None
    return pydicom


def _clean(text, limit=64):
    """A header string made safe to show: printable ASCII only, cut to ``limit`` characters."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(text))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _floats(value, n, path, name):
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        out = np.zeros(0)
    if out.shape != (n,) or not np.isfinite(out).all():
        raise DataFormatError(f"{path!r}: {name} must hold {n} finite numbers; it does not")
    return out


class _Slice:
    """One 2-D image: a classic file, or one frame of a multi-frame file."""
    __slots__ = ("file", "frame", "position", "orientation", "pixel_spacing", "slope", "inter", "order_key")

    def __init__(self, file, frame, position, orientation, pixel_spacing, slope, inter, order_key):
        self.file, self.frame = file, frame
        self.position, self.orientation, self.pixel_spacing = position, orientation, pixel_spacing
        self.slope, self.inter, self.order_key = slope, inter, order_key

    def where(self):
        name = os.path.basename(self.file)
        return name if self.frame is None else f"{name} frame {self.frame + 1}"


def _read_header(path, pydicom, quiet=False):
    """The dataset without pixel data; None for a file that is not DICOM when ``quiet``."""
    try:
        with warnings.catch_warnings():      # pydicom's warnings may quote header values
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=False)
            ds.get("SOPClassUID")  # noqa: B018 - forces the first elements to parse
        return ds
    except pydicom.errors.InvalidDicomError:
        if quiet:
            return None
        raise DataFormatError(f"{path!r} is not a DICOM file (no DICM marker at byte 128)") from None
    except Exception as exc:  # pydicom raises many kinds for a damaged file
        raise DataFormatError(f"{path!r}: the DICOM header could not be read ({type(exc).__name__}); "
                              f"the file is damaged") from None


def _get(ds, name, path, default=None):
    """``ds.name`` with pydicom's value conversion errors turned into ours."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ds.get(name, default)
    except Exception as exc:
        raise DataFormatError(f"{path!r}: the DICOM element {name} could not be read ({type(exc).__name__})") from None
    return default if value is None or value == "" else value


def _first_item(group, seq_name, path):
    seq = _get(group, seq_name, path)
    if seq is None:
        return None
    try:
        return seq[0] if len(seq) else None
    except Exception:
        raise DataFormatError(f"{path!r}: the DICOM sequence {seq_name} is malformed") from None


def _scaling(item, path):
    slope = float(_get(item, "RescaleSlope", path, 1.0))
    inter = float(_get(item, "RescaleIntercept", path, 0.0))
    if not (np.isfinite(slope) and np.isfinite(inter)) or slope == 0:
        raise DataFormatError(f"{path!r}: RescaleSlope/RescaleIntercept must be finite numbers and the slope "
                              f"non-zero")
    return slope, inter


def _check_image(ds, path):
    """Rows, columns and pixel format of a dataset, checked; returns ``(rows, cols, dtype name)``."""
    rows, cols = int(_get(ds, "Rows", path, 0)), int(_get(ds, "Columns", path, 0))
    if rows < 1 or cols < 1:
        raise DataFormatError(f"{path!r}: Rows and Columns must be positive, found {rows} x {cols} (is it an image?)")
    samples = int(_get(ds, "SamplesPerPixel", path, 1))
    if samples != 1:
        raise DataFormatError(f"{path!r}: {samples} samples per pixel (colour); expected grey-level images")
    bits = int(_get(ds, "BitsAllocated", path, 16))
    if bits not in (8, 16, 32, 64):
        raise DataFormatError(f"{path!r}: BitsAllocated is {bits}; expected 8, 16, 32 or 64")
    signed = int(_get(ds, "PixelRepresentation", path, 0)) == 1
    return rows, cols, f"{'int' if signed else 'uint'}{bits}"


def _transfer_syntax(ds):
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return uid


def _check_decodable(uid, path, pydicom):
    """A compressed transfer syntax that no installed package decodes is refused, naming the packages."""
    if uid is None:
        return
    uid = pydicom.uid.UID(str(uid))
    if not uid.is_compressed:
        return
    name = _clean(uid.name) if uid.is_valid else "unknown"
    try:
        decoder = pydicom.pixels.get_decoder(uid)
    except Exception:
        raise DataFormatError(f"{path!r}: pixel data compressed with transfer syntax {name} ({_clean(uid)}), "
                              f"which pydicom cannot decode at all; convert the series (e.g. with dcm2niix or "
                              f"gdcmconv --raw)") from None
    if not decoder.is_available:
        needs = "; or ".join(decoder.missing_dependencies) or "a pixel data handler"
        raise DataFormatError(f"{path!r}: pixel data compressed with transfer syntax {name} ({uid}), and no "
                              f"installed package decodes it. Install one of: {needs}")


class DicomSource:
    """A DICOM scan: the series in a folder, or one (multi-frame) file.

    Attributes used by :func:`medical.load_scan`: ``shape`` ``(columns, rows,
    slices[, volumes])``, ``affine`` (voxel -> RAS mm), ``volumes(first,
    count)`` and ``info()``.
    """

    def __init__(self, path, series=None):
        self.path = path
        pydicom = _pydicom()
        if os.path.isdir(path):
            headers = self._scan_folder(path, pydicom)
        else:
            headers = [(path, _read_header(path, pydicom))]
        headers = self._choose_series(path, headers, series)
        self.headers = headers
        first_path, first = headers[0]
        self.rows, self.cols, self.dtype = _check_image(first, first_path)
        for p, ds in headers[1:]:
            if _check_image(ds, p)[:2] != (self.rows, self.cols):
                raise DataFormatError(f"{p!r}: an image of {_check_image(ds, p)[0]} x {_check_image(ds, p)[1]} "
                                      f"pixels in a series of {self.rows} x {self.cols} ({first_path!r}); the "
                                      f"folder mixes images of different sizes")
        frames = [int(_get(ds, "NumberOfFrames", p, 1)) for p, ds in headers]
        if any(f > 1 for f in frames):
            if len(headers) > 1:
                raise DataFormatError(f"{path!r}: the series holds {len(headers)} files, some of them multi-frame; "
                                      f"expected one multi-frame file or single-frame slices")
            if frames[0] > MAX_FRAMES:
                raise DataFormatError(f"{first_path!r} declares {frames[0]} frames, more than {MAX_FRAMES}")
            slices = self._frames(first_path, first, frames[0])
            self.multiframe = True
        else:
            if len(headers) == 1:
                raise DataFormatError(f"{first_path!r} is a single DICOM slice; give the folder holding the whole "
                                      f"series (one file per slice)")
            slices = [self._classic(p, ds) for p, ds in headers]
            self.multiframe = False
        for p, ds in headers:
            _check_decodable(_transfer_syntax(ds), p, pydicom)
        self.syntax = _transfer_syntax(first)
        self._geometry(slices)

    # ----------------------------------------------------------- reading
    @staticmethod
    def _scan_folder(path, pydicom):
        names = []
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name.upper() in _SKIP:
                    continue
                if entry.is_file(follow_symlinks=True) and stat.S_ISREG(entry.stat().st_mode):
                    names.append(entry.name)
                    if len(names) > MAX_FILES:
                        raise DataFormatError(f"{path!r} holds more than {MAX_FILES} files; expected one series "
                                              f"(split the folder per series)")
        headers = []
        for name in sorted(names):
            p = os.path.join(path, name)
            ds = _read_header(p, pydicom, quiet=True)
            if ds is not None:
                headers.append((p, ds))
        if not headers:
            raise DataFormatError(f"{path!r} is a folder holding no DICOM files ({len(names)} other file(s)); "
                                  f"expected a DICOM series (or give a scan file)")
        return headers

    @staticmethod
    def _choose_series(path, headers, series):
        groups = defaultdict(list)
        for p, ds in headers:
            uid = _get(ds, "SeriesInstanceUID", p)
            if uid is None:
                raise DataFormatError(f"{p!r} has no SeriesInstanceUID; cannot tell which series it belongs to")
            groups[str(uid)].append((p, ds))
        if series is not None:
            wanted = str(series).strip()
            chosen = [u for u, items in groups.items()
                      if u == wanted or str(_get(items[0][1], "SeriesNumber", items[0][0], "")).strip() == wanted]
            if len(chosen) != 1:
                raise InputError(f"series={series!r} matches {len(chosen)} of the series in {path!r}: "
                                 f"{DicomSource._listing(groups)}")
            return groups[chosen[0]]
        if len(groups) > 1:
            raise DataFormatError(f"{path!r} holds {len(groups)} DICOM series; choose one with series= "
                                  f"(its number or UID): {DicomSource._listing(groups)}")
        return next(iter(groups.values()))

    @staticmethod
    def _listing(groups):
        lines = []
        for uid, items in groups.items():
            p, ds = items[0]
            number = _clean(_get(ds, "SeriesNumber", p, "?"))
            desc = _clean(_get(ds, "SeriesDescription", p, ""))
            lines.append(f"number {number} {desc!r}: {len(items)} file(s), UID {_clean(uid)}")
        return "; ".join(lines)

    @staticmethod
    def _classic(p, ds):
        ipp = _get(ds, "ImagePositionPatient", p)
        if ipp is None:
            raise DataFormatError(f"{p!r} has no ImagePositionPatient; the slice cannot be placed in the series")
        iop = _get(ds, "ImageOrientationPatient", p)
        if iop is None:
            raise DataFormatError(f"{p!r} has no ImageOrientationPatient; the slice cannot be placed in the series")
        ps = _get(ds, "PixelSpacing", p)
        if ps is None:
            raise DataFormatError(f"{p!r} has no PixelSpacing")
        slope, inter = _scaling(ds, p)
        key = tuple(float(_get(ds, k, p, 0) or 0) for k in
                    ("TemporalPositionIdentifier", "AcquisitionNumber", "InstanceNumber"))
        return _Slice(p, None, _floats(ipp, 3, p, "ImagePositionPatient"),
                      _floats(iop, 6, p, "ImageOrientationPatient"), _floats(ps, 2, p, "PixelSpacing"), slope, inter,
                      key)

    @staticmethod
    def _frames(p, ds, n):
        shared = _first_item(ds, "SharedFunctionalGroupsSequence", p)
        per = _get(ds, "PerFrameFunctionalGroupsSequence", p)
        if per is None or len(per) != n:
            raise DataFormatError(f"{p!r} declares {n} frames but its PerFrameFunctionalGroupsSequence has "
                                  f"{0 if per is None else len(per)} items")

        def attr(group, seq_name, name):
            for g in (group, shared):
                if g is None:
                    continue
                item = _first_item(g, seq_name, p)
                if item is not None and _get(item, name, p) is not None:
                    return item
            return None

        out = []
        for f, group in enumerate(per):
            pos = attr(group, "PlanePositionSequence", "ImagePositionPatient")
            ori = attr(group, "PlaneOrientationSequence", "ImageOrientationPatient")
            meas = attr(group, "PixelMeasuresSequence", "PixelSpacing")
            if pos is None:
                raise DataFormatError(f"{p!r}: frame {f + 1} has no ImagePositionPatient (PlanePositionSequence)")
            if ori is None:
                raise DataFormatError(f"{p!r}: frame {f + 1} has no ImageOrientationPatient")
            if meas is None:
                raise DataFormatError(f"{p!r}: frame {f + 1} has no PixelSpacing (PixelMeasuresSequence)")
            trans = attr(group, "PixelValueTransformationSequence", "RescaleSlope")
            slope, inter = _scaling(trans if trans is not None else ds, p)
            content = _first_item(group, "FrameContentSequence", p)
            temporal = float(_get(content, "TemporalPositionIndex", p, 0) or 0) if content is not None else 0.0
            out.append(_Slice(p, f, _floats(_get(pos, "ImagePositionPatient", p), 3, p, "ImagePositionPatient"),
                              _floats(_get(ori, "ImageOrientationPatient", p), 6, p, "ImageOrientationPatient"),
                              _floats(_get(meas, "PixelSpacing", p), 2, p, "PixelSpacing"), slope, inter,
                              (temporal, float(f), 0.0)))
        return out

    # ---------------------------------------------------------- geometry
    def _geometry(self, slices):
        ref = slices[0]
        for s in slices[1:]:
            if np.abs(s.orientation - ref.orientation).max() > 1e-4:
                raise DataFormatError(f"{self.path!r}: {s.where()} has another ImageOrientationPatient than "
                                      f"{ref.where()}; the series mixes orientations (a localizer?)")
            if np.abs(s.pixel_spacing - ref.pixel_spacing).max() > 1e-4 * ref.pixel_spacing.max():
                raise DataFormatError(f"{self.path!r}: {s.where()} has another PixelSpacing than {ref.where()}")
        row, col = ref.orientation[:3], ref.orientation[3:]
        if min(np.linalg.norm(row), np.linalg.norm(col)) < 1e-3 or \
                abs(np.dot(row, col)) > 1e-3 * np.linalg.norm(row) * np.linalg.norm(col):
            raise DataFormatError(f"{self.path!r}: ImageOrientationPatient of {ref.where()} does not hold two "
                                  f"perpendicular directions")
        row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
        if not (ref.pixel_spacing > 0).all():
            raise DataFormatError(f"{self.path!r}: PixelSpacing of {ref.where()} must be positive")
        normal = np.cross(row, col)
        dist = np.array([float(np.dot(s.position, normal)) for s in slices])
        order = sorted(range(len(slices)), key=lambda i: (dist[i], slices[i].order_key, slices[i].file))
        slices = [slices[i] for i in order]
        dist = dist[order]

        # slices at the same position (within 1 micrometre-ish) belong to different volumes of a 4-D series
        groups, starts = [], []
        for i, d in enumerate(dist):
            if starts and abs(d - dist[starts[-1]]) < 1e-3:
                groups[-1].append(slices[i])
            else:
                starts.append(i)
                groups.append([slices[i]])
        counts = Counter(len(g) for g in groups)
        if len(counts) > 1:
            common = counts.most_common(1)[0][0]
            odd = next(g for g in groups if len(g) != common)
            raise DataFormatError(f"{self.path!r}: slice positions hold different numbers of images ({common} at "
                                  f"most positions, {len(odd)} at the position of {odd[0].where()}); the series "
                                  f"mixes acquisitions or lacks images")
        n_volumes = len(groups[0])
        if len(groups) < 2:
            raise DataFormatError(f"{self.path!r}: every image lies at the same position; a single slice is not "
                                  f"a volume")
        positions = np.array([g[0].position for g in groups])
        d = dist[starts]
        gaps = np.diff(d)
        step = float(np.median(gaps))
        tol = SPACING_TOLERANCE * step + 1e-3
        for i, g in enumerate(gaps):
            if abs(g - step) <= tol:
                continue
            a, b = groups[i][0].where(), groups[i + 1][0].where()
            k = g / step
            if abs(k - round(k)) * step <= tol and round(k) >= 2:
                raise DataFormatError(f"{self.path!r}: a gap of {g:.4g} mm between slices {a} and {b}, {round(k)} "
                                      f"times the spacing of {step:.4g} mm elsewhere: {round(k) - 1} slice(s) "
                                      f"missing from the series")
            raise DataFormatError(f"{self.path!r}: unequal slice spacing: {g:.4g} mm between slices {a} and {b}, "
                                  f"{step:.4g} mm elsewhere (gaps range {gaps.min():.4g} to {gaps.max():.4g} mm)")
        n = len(groups)
        vec = (positions[-1] - positions[0]) / (n - 1)
        off_line = np.abs(positions - (positions[0] + np.arange(n)[:, None] * vec)).max()
        if off_line > tol:
            raise DataFormatError(f"{self.path!r}: the slice positions do not lie on one line ({off_line:.3g} mm "
                                  f"off); the series cannot be stacked into a volume")
        lps = np.eye(4)
        lps[:3, 0] = row * ref.pixel_spacing[1]
        lps[:3, 1] = col * ref.pixel_spacing[0]
        lps[:3, 2] = vec
        lps[:3, 3] = positions[0]
        self.affine = _LPS_TO_RAS @ lps
        for g in groups:
            g.sort(key=lambda s: (s.order_key, s.file, s.frame or 0))
        self.groups = groups
        self.shape = (self.cols, self.rows, n) + ((n_volumes,) if n_volumes > 1 else ())
        self.scaling = (ref.slope, ref.inter)

    # ------------------------------------------------------------ voxels
    def check_size(self):
        """Sizes are checked when each file's pixel data is decoded."""

    def _pixels(self, path):
        pydicom = _pydicom()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, force=False)
                arr = ds.pixel_array
        except DataFormatError:
            raise
        except Exception as exc:
            raise DataFormatError(f"{path!r}: the DICOM pixel data could not be decoded ({type(exc).__name__}); "
                                  f"the file is damaged or truncated") from None
        frames = int(_get(ds, "NumberOfFrames", path, 1))
        expected = (frames, self.rows, self.cols) if frames > 1 else (self.rows, self.cols)
        if arr.shape != expected:
            raise DataFormatError(f"{path!r}: the pixel data has shape {arr.shape}, expected {expected}")
        return arr

    def volumes(self, first, count):
        """Yield ``count`` volumes from index ``first`` as float32 ``(columns, rows, slices)``, rescaled."""
        cache = {}
        if self.multiframe:
            cache[self.headers[0][0]] = self._pixels(self.headers[0][0])
        for t in range(first, first + count):
            vol = np.empty((self.cols, self.rows, len(self.groups)), dtype=np.float32)
            for k, group in enumerate(self.groups):
                s = group[t]
                arr = cache[s.file][s.frame] if s.frame is not None else self._pixels(s.file)
                plane = arr.T.astype(np.float32)
                if s.slope != 1.0:
                    plane *= np.float32(s.slope)
                if s.inter != 0.0:
                    plane += np.float32(s.inter)
                vol[:, :, k] = plane
            yield vol

    def info(self):
        p, ds = self.headers[0]
        syntax = self.syntax
        return {"format": "dicom", "dtype": self.dtype, "scaling": self.scaling,
                "series_uid": _clean(_get(ds, "SeriesInstanceUID", p, "")),
                "series_number": _clean(_get(ds, "SeriesNumber", p, "")),
                "series_description": _clean(_get(ds, "SeriesDescription", p, "")),
                "modality": _clean(_get(ds, "Modality", p, "")), "n_files": len(self.headers),
                "multiframe": self.multiframe,
                "transfer_syntax": _clean(syntax.name if syntax is not None and hasattr(syntax, "name") else syntax)}
