"""A FunctionApp with the Pega → Exchange blueprints plus health/admin/graph_intake, for e2e tests
that must run before function_app.py registers them."""

import azure.functions as func

from functions import admin, failures, graph_intake, health, outbound_worker, pega_api

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (health.bp, graph_intake.bp, admin.bp, failures.bp, pega_api.bp, outbound_worker.bp):
    app.register_functions(blueprint)
