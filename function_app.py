"""Pega Exchange Sync: the Functions app. It only registers blueprints; triggers live in functions/."""

import azure.functions as func

from functions import (
    admin,
    delta_worker,
    failures,
    graph_intake,
    health,
    insight_worker,
    ops,
    outbound_worker,
    pega_api,
    poison,
    polling,
    subscriptions,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (
    health.bp,  # GET /api/health
    graph_intake.bp,  # Graph change and lifecycle notifications
    subscriptions.bp,  # subscription worker + manager timer
    polling.bp,  # safety-net delta poll timer, crash recovery timer
    delta_worker.bp,  # Exchange → Pega
    insight_worker.bp,  # Exchange → Pega: insight fields of new records, after them
    pega_api.bp,  # the contract Pega calls (openapi.yaml)
    outbound_worker.bp,  # Pega → Exchange
    admin.bp,  # mailbox onboarding
    ops.bp,  # health, dry run, resync, dead letters, incidents
    failures.bp,  # failed items and operations: list, retry, dismiss
    poison.bp,  # poison queues become dead letters with their cause
):
    app.register_functions(blueprint)
