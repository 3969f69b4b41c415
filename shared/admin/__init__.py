"""Operator-facing actions shared by the admin HTTP API and the CLI."""
