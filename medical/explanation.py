"""Relevance maps of the scan classifier carried back into a scan's own space, as NIfTI.

``medical.load_scan`` brings a scan to the network's grid in steps
(reorientation to RAS, resampling to a spacing, resampling or crop/pad to a
shape) and tracks, through every step, the affine that maps a voxel of the
result to world coordinates (mm). A map on the network's grid therefore has
that affine; and the original file's affine maps the original voxels to the
same world. For each voxel ``i`` of the original grid,

    model voxel = inverse(model affine) @ original affine @ i

so one affine resampling (trilinear) undoes the whole preprocessing at once:
flips and axis swaps of the reorientation, the change of voxel size and the
crop or pad. Voxels the network never saw (cut away by ``crop_or_pad``) get
zero. The map is written with the original scan's affine (sform and qform,
with the scan's own codes), so it overlays the scan in FSLeyes, ITK-SNAP or
3D Slicer.
"""
import gzip
import os

import nibabel as nib
import numpy as np
from scipy import ndimage

from core.exceptions import InputError, ShapeError
from core.io import atomic_write

__all__ = ["map_to_scan_space", "write_map", "check_out_path"]


def map_to_scan_space(volume_map, model_affine, scan_affine, scan_shape, outside_zero=False):
    """Resample a map on the network's grid into a scan's voxel grid.

    Parameters
    ----------
    volume_map : ``(D, H, W)`` float
        The map on the grid ``model_affine`` describes.
    model_affine, scan_affine : ``(4, 4)``
        Voxel -> world (mm) of the network's grid and of the original scan.
    scan_shape : 3 ints
        The original scan's spatial shape.
    outside_zero : bool
        Set to zero the scan voxels whose centre lies outside the network's
        grid (more than half a voxel beyond its edge voxels), as after a crop.
        Otherwise they take the value at the nearest edge, as ``load_scan``'s
        resampling samples them.

    Returns
    -------
    float32 ``scan_shape``.
    """
    volume_map = np.asarray(volume_map, dtype=np.float32)
    if volume_map.ndim != 3:
        raise ShapeError(f"volume_map must be a 3-D map (D, H, W), found shape {volume_map.shape}")
    scan_shape = tuple(int(n) for n in scan_shape[:3])
    m = np.linalg.inv(np.asarray(model_affine, np.float64)) @ np.asarray(scan_affine, np.float64)
    out = ndimage.affine_transform(volume_map, m[:3, :3], offset=m[:3, 3], output_shape=scan_shape,
                                   output=np.float32, order=1, mode="nearest")
    if outside_zero:
        inside = np.zeros(tuple(n + 2 for n in volume_map.shape), np.float32)
        inside[1:-1, 1:-1, 1:-1] = 1
        shift = np.eye(4)
        shift[:3, 3] = 1.0                           # coordinates in the bordered array
        mb = shift @ m
        seen = ndimage.affine_transform(inside, mb[:3, :3], offset=mb[:3, 3], output_shape=scan_shape,
                                        output=np.float32, order=0, mode="constant", cval=0.0)
        out *= seen
    return out


def check_out_path(path):
    """``path`` as a ``str`` after checking it names a NIfTI file (``.nii`` or ``.nii.gz``)."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise InputError(f"out_path must be a path (str or os.PathLike), got {type(path).__name__}") from None
    lower = path.lower()
    if not (lower.endswith(".nii") or lower.endswith(".nii.gz")):
        raise InputError(f"out_path must end in .nii or .nii.gz (a NIfTI file), got {path!r}")
    return path


def write_map(data, affine, path, like=None, description="relevance"):
    """Write a 3-D float map as NIfTI (``.nii`` or ``.nii.gz``), atomically.

    ``like``: a nibabel image whose sform/qform codes are copied (the scan
    the map belongs to); the affine is ``affine``.
    """
    path = check_out_path(path)
    lower = path.lower()
    data = np.asarray(data, dtype=np.float32)
    cls = nib.Nifti1Image if max(data.shape) <= 32767 else nib.Nifti2Image
    img = cls(data, np.asarray(affine, np.float64))
    sform_code = qform_code = 1
    if like is not None:
        sform_code = int(like.header.get_sform(coded=True)[1]) or 1
        qform_code = int(like.header.get_qform(coded=True)[1]) or sform_code
    img.header.set_sform(affine, code=sform_code)
    img.header.set_qform(affine, code=qform_code)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = description.encode("ascii", "replace")[:79]
    top = float(data.max()) if data.size else 0.0
    img.header["cal_min"], img.header["cal_max"] = 0.0, top
    payload = img.to_bytes()
    with atomic_write(path, "wb") as handle:
        if lower.endswith(".gz"):
            with gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=6, mtime=0, filename="") as gz:
                gz.write(payload)
        else:
            handle.write(payload)
    return path
