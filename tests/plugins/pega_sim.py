"""Fixtures for the pega_sim stand-in (filled in by its issue)."""
