"""A test Functions app with only the delta worker blueprint (the real app registers it in function_app.py)."""

import azure.functions as func

from functions import delta_worker

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(delta_worker.bp)
