"""Benchmarks: each module with a `run() -> dict` writes JSON (and a PNG chart) under bench/results/."""
