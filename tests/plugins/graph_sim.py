"""Fixtures for the graph_sim stand-in (filled in by its issue)."""
