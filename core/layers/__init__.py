"""Layers with Keras 3 names and arguments (channels last)."""
from .activation import Activation, ReLU, Softmax
from .base import LAYER_CLASSES, Layer
from .branches import Branches
from .conv import Conv1D, Conv2D, Conv3D
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNormalization
from .pooling import (AveragePooling1D, AveragePooling2D, AveragePooling3D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                      GlobalMaxPooling3D, MaxPooling1D, MaxPooling2D, MaxPooling3D)
from .reshape import Flatten, Reshape

_ALL = [Activation, ReLU, Softmax, Branches, Conv1D, Conv2D, Conv3D, Dense, Dropout, BatchNormalization,
        AveragePooling1D, AveragePooling2D, AveragePooling3D, GlobalAveragePooling1D, GlobalAveragePooling2D,
        GlobalAveragePooling3D, GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D,
        MaxPooling1D, MaxPooling2D, MaxPooling3D, Flatten, Reshape]

#: class name -> class, used when a saved model is rebuilt
LAYER_CLASSES.update({c.__name__: c for c in _ALL})
# Keras aliases
MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D

__all__ = ["Layer"] + list(LAYER_CLASSES) + ["MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D",
                                             "AvgPool3D", "LAYER_CLASSES"]
