import os

# Keras (the reference implementation in tests) runs on JAX's CPU backend unless the user chose one.
os.environ.setdefault("KERAS_BACKEND", "jax")

# The block size of large convolutions follows the machine's L2 cache (core.config.block_bytes).
# The suite runs with 4 MB blocks on every machine unless NUMPY_CNN_BLOCK_BYTES asks for another
# size, so that it runs the same code paths everywhere (tests/core/test_blocks.py covers the
# default); the tests that expect a layer whole or in blocks set their own sizes.
os.environ.setdefault("NUMPY_CNN_BLOCK_BYTES", str(4 << 20))
