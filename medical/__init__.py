"""medical package (being built)."""
