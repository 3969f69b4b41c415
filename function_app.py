"""Pega Exchange Sync: the Functions app. It only registers blueprints; triggers live in functions/."""

import azure.functions as func

from functions import admin, graph_intake, health, poison, polling, subscriptions

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (health.bp, graph_intake.bp, subscriptions.bp, polling.bp, admin.bp, poison.bp):
    app.register_functions(blueprint)
