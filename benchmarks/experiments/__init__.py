"""Measurements behind the engine's design, kept outside ``core``: per-layer
times (``layer_times``), whole-step profiles (``profile_cases``), a float32
audit (``dtype_audit``), im2col layouts compared (``im2col_layouts``), a
check that two copies of ``core`` compute the same numbers (``equivalence``),
what a second thread gives each kind of work (``two_threads``) and what one
shard of a batch loses beside its partner, layer by layer
(``shard_contention``)."""
