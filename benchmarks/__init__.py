"""Timing of the NumPy engine against PyTorch (CPU): see ``benchmarks/run.py``
and ``benchmarks/RESULTS.md``. Never part of the test suite (its smoke test
only checks that the harness runs)."""
