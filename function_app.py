"""Pega Exchange Sync: the Functions app. It only registers blueprints; triggers live in functions/."""

import azure.functions as func

from functions import health, poison

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (health.bp, poison.bp):
    app.register_functions(blueprint)
