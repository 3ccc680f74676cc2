"""Conv3D classification of MRI/CT scans stored as NIfTI files.

>>> import medical
>>> manifest = medical.make_synthetic("data/synthetic", seed=0)       # .nii.gz files + manifest.csv
>>> paths, labels = medical.read_manifest(manifest)
>>> vol = medical.load_scan(paths[0], shape=(32, 32, 32))             # (32, 32, 32, 1) float32, RAS
>>> clf = medical.ScanClassifier(shape=(32, 32, 32), seed=0).fit(paths, labels)
>>> clf.predict(["new_scan.nii.gz"])
"""
from .cache import ScanCache, load_scans
from .classifier import ScanClassifier, conv3d_network
from .manifest import read_manifest
from .preprocessing import (ScanQualityWarning, crop_or_pad, normalize_intensity, reorient_to_ras,
                            resample_to_spacing, resize_volume, voxel_spacing)
from .scans import load_scan, scan_info
from .synthetic import CLASSES, make_synthetic

__all__ = ["ScanClassifier", "conv3d_network", "load_scan", "load_scans", "scan_info", "read_manifest", "make_synthetic", "ScanCache",
           "ScanQualityWarning", "CLASSES", "crop_or_pad", "normalize_intensity", "reorient_to_ras",
           "resample_to_spacing", "resize_volume", "voxel_spacing"]
