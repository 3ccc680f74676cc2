"""Helpers that write NIfTI files byte-exact for the medical tests."""
import gzip
import io

import nibabel as nib
import numpy as np
import pytest


def nifti_bytes(raw, affine=None, version=1, endian="<", slope=None, inter=None, zooms=None, qform=True):
    """The bytes of a single-file NIfTI image holding ``raw`` exactly as given.

    The header is built with nibabel's header classes; the voxel bytes are
    written by hand (Fortran order, the header's byte order) so that the
    stored integers and the scl_slope/scl_inter fields are exactly the ones
    asked for (nibabel's own writer would choose its own scaling).
    """
    raw = np.asarray(raw)
    header = (nib.Nifti1Header if version == 1 else nib.Nifti2Header)(endianness=endian)
    header.set_data_shape(raw.shape)
    header.set_data_dtype(raw.dtype.newbyteorder("="))
    if affine is None:
        affine = np.diag(list(zooms or (1.0, 1.0, 1.0)) + [1.0])
    header.set_sform(affine, code=1)
    if qform:
        header.set_qform(affine, code=1)
    if slope is not None:
        header["scl_slope"] = slope
        header["scl_inter"] = 0.0 if inter is None else inter
    buf = io.BytesIO()
    header.write_to(buf)
    offset = int(header.get_data_offset())
    buf.write(b"\0" * (offset - buf.tell()))
    buf.write(raw.astype(raw.dtype.newbyteorder(endian)).tobytes(order="F"))
    return buf.getvalue()


def write_nifti(path, raw, **kwargs):
    """Write ``raw`` to ``path`` (gzip-compressed when it ends in .gz); return the path as str."""
    data = nifti_bytes(raw, **kwargs)
    path = str(path)
    if path.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


@pytest.fixture
def nifti(tmp_path):
    """``nifti(name, raw, **header)`` writes a NIfTI file under tmp_path and returns its path."""
    def make(name, raw, **kwargs):
        return write_nifti(tmp_path / name, raw, **kwargs)
    return make


def head_like(shape=(12, 14, 10), seed=0):
    """A small float32 volume: a bright noisy ellipsoid on a dark background."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(sum(g ** 2 for g in grid))
    vol = np.where(r < 0.8, 100.0, 2.0) + rng.normal(scale=3.0, size=shape)
    return np.abs(vol).astype(np.float32)
