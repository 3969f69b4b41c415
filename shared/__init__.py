"""All logic of Pega Exchange Sync. Importable without Azure running: nothing here
reads settings or opens connections at import time."""

__version__ = "0.1.0"
