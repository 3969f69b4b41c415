"""Thin triggers: parse the input, call shared/, answer. One blueprint per concern."""
