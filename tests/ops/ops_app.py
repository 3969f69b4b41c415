"""The real function_app plus the ops blueprint (until function_app.py registers functions.ops.bp)."""

import function_app
from functions import ops

app = function_app.app

if not hasattr(function_app, "ops"):  # function_app.py does `from functions import ..., ops` once it registers it
    app.register_functions(ops.bp)

__all__ = ["app"]
