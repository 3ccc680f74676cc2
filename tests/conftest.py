import os

# Keras (the reference implementation in tests) runs on JAX's CPU backend unless the user chose one.
os.environ.setdefault("KERAS_BACKEND", "jax")
