"""Measurements behind the engine's design, kept outside ``core``: per-layer
times (``layer_times``), whole-step profiles (``profile_cases``), a float32
audit (``dtype_audit``), im2col layouts compared (``im2col_layouts``), and a
check that two copies of ``core`` compute the same numbers (``equivalence``)."""
