"""Write DICOM series of known geometry with pydicom, for the tests.

A volume ``raw`` (X, Y, Z) with a voxel -> RAS ``affine`` is written as the
series a scanner would give: one file per slice along the third axis, array
axis 0 along a row, axis 1 along a column, positions and orientation in LPS.
"""
import os

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


def _geometry(affine):
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=np.float64)
    a0, a1, a2, origin = lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3]
    row_sp, col_sp = np.linalg.norm(a1), np.linalg.norm(a0)
    iop = list(a0 / col_sp) + list(a1 / row_sp)
    return iop, [row_sp, col_sp], origin, a2


def _ds(sop_class, series_uid, rows, cols, syntax=ExplicitVRLittleEndian):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "CT"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    return ds


def write_series(folder, raw, affine, slope=1.0, inter=0.0, series_uid=None, number=1, description="test",
                 names=None, seed=0, syntax=ExplicitVRLittleEndian, drop=()):
    """Write int16 ``raw`` (X, Y, Z) as one file per slice; file names shuffled. Returns the file paths."""
    os.makedirs(folder, exist_ok=True)
    raw = np.asarray(raw, dtype=np.int16)
    iop, ps, origin, step = _geometry(affine)
    series_uid = series_uid or generate_uid()
    order = np.random.default_rng(seed).permutation(raw.shape[2])
    paths = []
    for k in range(raw.shape[2]):
        if k in drop:
            continue
        ds = _ds(CT_IMAGE, series_uid, raw.shape[1], raw.shape[0], syntax)
        ds.SeriesNumber = number
        ds.SeriesDescription = description
        ds.InstanceNumber = int(order[k]) + 1          # deliberately not the slice order
        ds.ImagePositionPatient = [float(v) for v in origin + k * step]
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.PixelSpacing = [float(v) for v in ps]
        ds.SliceThickness = float(np.linalg.norm(step))
        ds.RescaleSlope, ds.RescaleIntercept = slope, inter
        ds.PixelData = np.ascontiguousarray(raw[:, :, k].T).tobytes()
        name = names[k] if names else f"IM{int(order[k]):04d}"
        path = os.path.join(folder, name)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_multiframe(path, raw, affine, slope=1.0, inter=0.0, seed=0):
    """Write int16 ``raw`` (X, Y, Z) as one enhanced multi-frame file, frames in shuffled order."""
    raw = np.asarray(raw, dtype=np.int16)
    iop, ps, origin, step = _geometry(affine)
    nz = raw.shape[2]
    order = np.random.default_rng(seed).permutation(nz)     # frame f holds slice order[f]
    ds = _ds(ENHANCED_MR, generate_uid(), raw.shape[1], raw.shape[0])
    ds.Modality = "MR"
    ds.NumberOfFrames = nz
    shared = Dataset()
    meas = Dataset()
    meas.PixelSpacing = [float(v) for v in ps]
    meas.SliceThickness = float(np.linalg.norm(step))
    ori = Dataset()
    ori.ImageOrientationPatient = [float(v) for v in iop]
    trans = Dataset()
    trans.RescaleSlope, trans.RescaleIntercept, trans.RescaleType = slope, inter, "US"
    shared.PixelMeasuresSequence = Sequence([meas])
    shared.PlaneOrientationSequence = Sequence([ori])
    shared.PixelValueTransformationSequence = Sequence([trans])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for f in range(nz):
        k = int(order[f])
        item = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [float(v) for v in origin + k * step]
        item.PlanePositionSequence = Sequence([pos])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    frames = np.stack([raw[:, :, int(order[f])].T for f in range(nz)])
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def rewrite(path, **changes):
    """Change or (value None) delete header elements of one file in place."""
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
