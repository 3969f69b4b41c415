"""Binding metadata of every function, as the Functions host indexes it from function_app.py.

The expected table is the contract with the host (routes, auth levels, queue names, schedules):
a function added, renamed or rebound without updating it fails here.
"""

import json

import pytest

import function_app
from shared.queues import names

EXPECTED = {
    "health": {"type": "httpTrigger", "route": "health", "methods": ["GET"], "authLevel": "ANONYMOUS"},
    "graph_notifications": {"type": "httpTrigger", "route": "graph/notifications", "methods": ["POST"],
                            "authLevel": "FUNCTION"},
    "graph_lifecycle": {"type": "httpTrigger", "route": "graph/lifecycle", "methods": ["POST"],
                        "authLevel": "FUNCTION"},
    "subscription_worker": {"type": "queueTrigger", "queueName": "subscription-work"},
    "subscription_manager": {"type": "timerTrigger", "schedule": "0 * * * * *"},
    "delta_poll": {"type": "timerTrigger", "schedule": "0 * * * * *"},
    "ews_events": {"type": "timerTrigger", "schedule": "*/15 * * * * *"},
    "lease_recovery": {"type": "timerTrigger", "schedule": "*/15 * * * * *"},
    "admin_mailbox_failures": {"type": "httpTrigger", "route": "admin/mailboxes/{upn}/failures", "methods": ["GET"],
                               "authLevel": "ADMIN"},
    "admin_mailbox_failure_action": {"type": "httpTrigger", "route": "admin/mailboxes/{upn}/failures/{action}",
                                     "methods": ["POST"], "authLevel": "ADMIN"},
    "admin_mailbox": {"type": "httpTrigger", "route": "admin/mailboxes/{upn}", "methods": ["DELETE", "GET", "PUT"],
                      "authLevel": "ADMIN"},
    "admin_mailboxes": {"type": "httpTrigger", "route": "admin/mailboxes", "methods": ["GET"],
                        "authLevel": "ADMIN"},
    "delta_worker": {"type": "queueTrigger", "queueName": "delta-work"},
    "outbound_worker": {"type": "queueTrigger", "queueName": "outbound-ops"},
    "pega_create_appointment": {"type": "httpTrigger", "route": "pega/v1/appointments", "methods": ["POST"],
                                "authLevel": "FUNCTION"},
    "pega_update_appointment": {"type": "httpTrigger", "route": "pega/v1/appointments/{pegaId}",
                                "methods": ["PATCH"], "authLevel": "FUNCTION"},
    "pega_cancel_appointment": {"type": "httpTrigger", "route": "pega/v1/appointments/{pegaId}/cancel",
                                "methods": ["POST"], "authLevel": "FUNCTION"},
    "pega_send_email": {"type": "httpTrigger", "route": "pega/v1/emails", "methods": ["POST"], "authLevel": "FUNCTION"},
    "pega_reply_email": {"type": "httpTrigger", "route": "pega/v1/emails/{originalPegaId}/reply", "methods": ["POST"],
                         "authLevel": "FUNCTION"},
    "pega_reply_all_email": {"type": "httpTrigger", "route": "pega/v1/emails/{originalPegaId}/reply-all",
                             "methods": ["POST"], "authLevel": "FUNCTION"},
    "pega_create_contact": {"type": "httpTrigger", "route": "pega/v1/contacts", "methods": ["POST"],
                            "authLevel": "FUNCTION"},
    "pega_update_contact": {"type": "httpTrigger", "route": "pega/v1/contacts/{pegaId}", "methods": ["PATCH"],
                            "authLevel": "FUNCTION"},
    "pega_close_contact": {"type": "httpTrigger", "route": "pega/v1/contacts/{pegaId}/close", "methods": ["POST"],
                           "authLevel": "FUNCTION"},
    "pega_operation_status": {"type": "httpTrigger", "route": "pega/v1/operations/{operationId}", "methods": ["GET"],
                              "authLevel": "FUNCTION"},
    "admin_health": {"type": "httpTrigger", "route": "admin/health", "methods": ["GET"], "authLevel": "ADMIN"},
    "admin_mailbox_health": {"type": "httpTrigger", "route": "admin/mailboxes/{upn}/health", "methods": ["GET"],
                             "authLevel": "ADMIN"},
    "admin_mailbox_dryrun": {"type": "httpTrigger", "route": "admin/mailboxes/{upn}/dryrun", "methods": ["GET"],
                             "authLevel": "ADMIN"},
    "admin_mailbox_resync": {"type": "httpTrigger", "route": "admin/mailboxes/{upn}/resync", "methods": ["POST"],
                             "authLevel": "ADMIN"},
    "admin_doctor": {"type": "httpTrigger", "route": "admin/doctor", "methods": ["GET"], "authLevel": "ADMIN"},
    "admin_deadletters": {"type": "httpTrigger", "route": "admin/deadletters", "methods": ["GET"],
                          "authLevel": "ADMIN"},
    "admin_deadletter": {"type": "httpTrigger", "route": "admin/deadletters/{queue}/{id}", "methods": ["GET"],
                         "authLevel": "ADMIN"},
    "admin_deadletters_replay": {"type": "httpTrigger", "route": "admin/deadletters/replay", "methods": ["POST"],
                                 "authLevel": "ADMIN"},
    "ops_incidents": {"type": "timerTrigger", "schedule": "30 * * * * *"},
    "poison_delta_work": {"type": "queueTrigger", "queueName": "delta-work-poison"},
    "poison_outbound_ops": {"type": "queueTrigger", "queueName": "outbound-ops-poison"},
    "poison_subscription_work": {"type": "queueTrigger", "queueName": "subscription-work-poison"},
    "insight_worker": {"type": "queueTrigger", "queueName": "insight-work"},
    "poison_insight_work": {"type": "queueTrigger", "queueName": "insight-work-poison"},
}


@pytest.fixture(scope="module")
def bindings():
    app = function_app.app
    app.functions_bindings = None  # get_functions() caches; see azure-functions.md
    out = {}
    for f in app.get_functions():
        trig = next(b for b in json.loads(f.get_function_json())["bindings"] if b["type"].endswith("Trigger"))
        out[f.get_function_name()] = trig
    return out


def test_every_function_is_expected(bindings):
    assert set(bindings) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_binding(bindings, name):
    trig = bindings[name]
    for key, value in EXPECTED[name].items():
        got = trig[key]
        if isinstance(value, list):
            assert sorted(str(v).upper() for v in got) == sorted(value), (name, key)
        else:
            assert str(got) == value, (name, key)
    if trig["type"] == "queueTrigger":
        assert trig["connection"] == "AzureWebJobsStorage"


def test_every_work_queue_has_a_poison_recorder(bindings):
    watched = {t["queueName"] for t in bindings.values() if t["type"] == "queueTrigger"}
    for q in names.ALL:
        assert names.poison(q) in watched, f"{q}-poison would drop messages silently"


def test_function_app_only_registers_blueprints():
    import inspect

    src = inspect.getsource(function_app)
    assert len(src.splitlines()) <= 40
    assert "@app." not in src
