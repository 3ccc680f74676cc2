"""The networks of ``cnn.py``, trained by Keras 3 instead of the NumPy engine.

Run with no arguments::

    python cnn_keras.py

Each Keras network is built from the same layer description as its NumPy
twin (``core.keras_compat.to_keras``) and starts from the same initial
weights; data, splits, preprocessing, optimizer, learning rate, batch size,
epochs and early stopping are the same too, so the two tables can be read side
by side. Keras runs on JAX unless ``KERAS_BACKEND`` names another backend.
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

try:
    import keras  # noqa: F401  (checked here so a missing install is one clear line)
except ImportError:
    print('cnn_keras.py needs Keras: pip install -e ".[test]"  (Keras 3 with the JAX CPU backend)', file=sys.stderr)
    sys.exit(1)

from cnn import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:], engine="keras", prog="cnn_keras.py")
