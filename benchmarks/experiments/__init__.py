"""Prototypes of faster code paths, kept outside ``core`` (which the lead owns):
each is measured against the current engine and checked to give the same
numbers before it is proposed as a change to ``core``."""
