"""Exceptions raised for user mistakes.

Every error the project raises for bad input derives from :class:`CNNError`,
so callers can catch all of them at once, and also from the built-in class a
Python user would expect (``ValueError`` for bad values, ``OSError`` for
files), so ``except ValueError`` keeps working.

Messages name the argument or file, what was expected and what was found.
"""


class CNNError(Exception):
    """Base class of every error raised by this project for bad input."""


class InputError(CNNError, ValueError):
    """An argument or array has the wrong type, shape, dtype or values."""


class ShapeError(InputError):
    """An array's shape does not fit the model or layer it is given to."""


class ConfigError(CNNError, ValueError):
    """An unknown name (layer, loss, optimizer, activation...) or a bad setting."""


class NotFittedError(CNNError, ValueError, AttributeError):
    """A model or estimator was used before it was built or fitted."""


class TrainingError(CNNError, ValueError):
    """Training cannot go on, for example because the loss became NaN or inf."""


class DataFormatError(CNNError, ValueError):
    """A data file exists but its content is not in the expected format."""


class ModelFileError(CNNError, ValueError):
    """A file given to ``load_model`` is not a model saved by this project,
    is truncated, or does not match its own architecture."""


class DataFileNotFoundError(CNNError, FileNotFoundError):
    """A file or folder that was named does not exist."""


class FileWriteError(CNNError, OSError):
    """An output file could not be written (disk full, read-only folder, no
    permission...); the message names the file and the system's reason."""


__all__ = [
    "CNNError", "InputError", "ShapeError", "ConfigError", "NotFittedError",
    "TrainingError", "DataFormatError", "ModelFileError", "DataFileNotFoundError", "FileWriteError",
]
