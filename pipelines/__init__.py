"""pipelines package (being built)."""
