"""Human activity recognition from accelerometer recordings with a Conv1D network.

Readers (:func:`read_ts`, :func:`load_uci_har`, :func:`load_wisdm`,
:func:`load_csv`), preprocessing (:func:`sliding_windows`, :func:`segment`,
:func:`resample`, :class:`ChannelStandardizer`, :func:`subject_split`) and a
physically based simulator (:func:`make_synthetic`,
:func:`simulate_recording`), and :class:`ActivityClassifier`, a Conv1D
network on the core engine. Arrays are channels last: ``(N, steps, C)``.
"""
from ._common import DataQualityWarning
from .classifier import ActivityClassifier, conv1d_network
from .preprocessing import ChannelStandardizer, resample, segment, sliding_windows, subject_split
from .readers import UCI_HAR_CHANNELS, UCI_HAR_SIGNALS, load_csv, load_uci_har, load_wisdm, read_ts
from .synthetic import ACTIVITIES, GRAVITY, make_synthetic, simulate_recording

__all__ = [
    "read_ts", "load_uci_har", "load_wisdm", "load_csv", "UCI_HAR_SIGNALS", "UCI_HAR_CHANNELS",
    "sliding_windows", "segment", "resample", "ChannelStandardizer", "subject_split",
    "make_synthetic", "simulate_recording", "ACTIVITIES", "GRAVITY", "DataQualityWarning",
    "ActivityClassifier", "conv1d_network",
]
