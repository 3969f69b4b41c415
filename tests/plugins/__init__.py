"""Pytest plugins: one per stand-in service, each owning the fixtures that start it."""
