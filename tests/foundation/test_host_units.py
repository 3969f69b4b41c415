"""Pure parts of the local host: route templates, NCRONTAB conversion, host.json TimeSpans."""

import datetime as dt
import json
from pathlib import Path

import pytest

from sandbox.host import QueueOptions, TimerRunner, route_regex, timespan_seconds, to_croniter


@pytest.mark.parametrize(("template", "path", "params"), [
    ("health", "health", {}),
    ("admin/mailboxes/{upn}", "admin/mailboxes/alex@contoso.example", {"upn": "alex@contoso.example"}),
    ("ops/{id:int}", "ops/42", {"id": "42"}),
    ("files/{*rest}", "files/a/b/c", {"rest": "a/b/c"}),
    ("items/{id?}", "items", {"id": None}),
    ("items/{id?}", "items/7", {"id": "7"}),
])
def test_route_templates_match(template, path, params):
    m = route_regex(template).match(path)
    assert m is not None and m.groupdict() == params


@pytest.mark.parametrize(("template", "path"), [("ops/{id:int}", "ops/abc"), ("health", "healthz"),
                                                ("a/{b}", "a/b/c")])
def test_route_templates_reject(template, path):
    assert route_regex(template).match(path) is None


def test_ncrontab_seconds_field_moves_last_for_croniter():
    assert to_croniter("0 */5 * * * *") == "*/5 * * * * 0"
    with pytest.raises(ValueError):
        to_croniter("*/5 * * * *")


def test_timer_next_occurrence():
    info = type("I", (), {"trigger": {"schedule": "30 */5 * * * *"}, "name": "t"})()
    import asyncio

    runner = TimerRunner(info, asyncio.Event())  # type: ignore[arg-type]
    assert runner.next_after(dt.datetime(2026, 1, 1, 0, 0, 0)) == dt.datetime(2026, 1, 1, 0, 0, 30)
    assert runner.next_after(dt.datetime(2026, 1, 1, 0, 0, 31)) == dt.datetime(2026, 1, 1, 0, 5, 30)


def test_timespans():
    assert timespan_seconds("00:00:02", 0) == 2
    assert timespan_seconds("1.02:00:00", 0) == 93600
    assert timespan_seconds(None, 5) == 5
    with pytest.raises(ValueError):
        timespan_seconds("two seconds", 0)


def test_project_host_json_queue_options():
    host = json.loads((Path(__file__).parents[2] / "host.json").read_text())
    opts = QueueOptions.from_host_json(host)
    assert opts.max_dequeue_count == 5 and opts.message_encoding == "base64"
    assert opts.max_polling_interval <= 5, "a quiet app must see new work within seconds"
    with pytest.raises(ValueError):
        QueueOptions.from_host_json({"extensions": {"queues": {"batchSize": 64}}})


def test_host_json_is_valid_against_the_public_schema():
    schema_path = Path(__file__).parents[3] / "shared" / "schemas" / "host.json.schema.json"
    if not schema_path.exists():
        pytest.skip("../shared/schemas is not beside this clone")
    import jsonschema

    host = json.loads((Path(__file__).parents[2] / "host.json").read_text())
    jsonschema.validate(host, json.loads(schema_path.read_text()))


async def test_the_local_hosts_queue_polling_takes_no_thread_hop(azurite_conn, monkeypatch):
    """The local host polls queues as the real host does in .NET; its Python client must not add a
    netrc and proxy-variable lookup in a worker thread per request (aiohttp with the SDK's default
    `use_env_settings`), which the notification bench counted as the product's CPU (issue 16)."""
    import asyncio
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from sandbox.host import FunctionInfo, QueueListener, QueueOptions

    class Counting(ThreadPoolExecutor):
        submitted = 0

        def submit(self, *args, **kwargs):  # type: ignore[override]
            Counting.submitted += 1
            return super().submit(*args, **kwargs)

    monkeypatch.setenv("AzureWebJobsStorage", azurite_conn)
    name = "hop" + uuid.uuid4().hex[:10]
    info = FunctionInfo("f", {"type": "queueTrigger", "queueName": name}, lambda msg: None, "msg")
    listener = QueueListener(info, QueueOptions(), asyncio.Event())
    service = listener._service()
    queue = service.get_queue_client(name)
    asyncio.get_running_loop().set_default_executor(Counting(max_workers=1))
    try:
        await queue.create_queue()
        for _ in range(5):
            async for _msg in queue.receive_messages(max_messages=1):
                pass
        assert Counting.submitted == 0
    finally:
        await queue.delete_queue()
        await service.close()
