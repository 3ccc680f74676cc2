"""Human activity recognition from accelerometer recordings with a Conv1D network.

Readers (:func:`read_ts`, :func:`load_uci_har`, :func:`load_wisdm`,
:func:`load_csv`), preprocessing (:func:`sliding_windows`, :func:`segment`,
:func:`resample`, :class:`ChannelStandardizer`, :func:`subject_split`) and a
physically based simulator (:func:`make_synthetic`,
:func:`simulate_recording`), :class:`ActivityClassifier` (a time-series
classifier for sensor windows and for any UCR/UEA archive problem, with the
networks of :mod:`har.networks`), and subject-wise :func:`cross_validate`. Arrays are channels last: ``(N, steps, C)``.
"""
from ._common import DataQualityWarning
from . import networks
from .classifier import ActivityClassifier, conv1d_network
from .evaluation import cross_validate, group_folds
from .preprocessing import ChannelStandardizer, resample, segment, sliding_windows, subject_split
from .readers import UCI_HAR_CHANNELS, UCI_HAR_SIGNALS, load_csv, load_uci_har, load_wisdm, read_ts
from .synthetic import ACTIVITIES, GRAVITY, make_synthetic, simulate_recording

__all__ = [
    "read_ts", "load_uci_har", "load_wisdm", "load_csv", "UCI_HAR_SIGNALS", "UCI_HAR_CHANNELS",
    "sliding_windows", "segment", "resample", "ChannelStandardizer", "subject_split",
    "make_synthetic", "simulate_recording", "ACTIVITIES", "GRAVITY", "DataQualityWarning",
    "ActivityClassifier", "conv1d_network", "networks", "cross_validate", "group_folds",
]
