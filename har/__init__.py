"""har package (being built)."""
