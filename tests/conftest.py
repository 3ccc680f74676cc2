import os

# Keras (the reference implementation in tests) runs on JAX's CPU backend unless the user chose one.
os.environ.setdefault("KERAS_BACKEND", "jax")

# The block size of large convolutions follows the machine's L2 cache (core.config.block_bytes);
# tests that expect a layer to be built whole or in blocks are written for 4 MB blocks, so the
# suite runs with that size on every machine (tests/core/test_blocks.py covers the default).
os.environ["NUMPY_CNN_BLOCK_BYTES"] = str(4 << 20)
