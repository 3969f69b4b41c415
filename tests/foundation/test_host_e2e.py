"""The local host end to end against Azurite: HTTP → queue → worker, auth levels, poison, timers.

The host runs as a separate process (like `func start`) on a test app (tests/fixtures/echo_app.py)
with a host.json that makes retries fast.
"""

import asyncio
import base64
import json
import time

import aiohttp
import pytest
from azure.data.tables.aio import TableServiceClient
from azure.storage.queue.aio import QueueClient

from sandbox.proc import azurite_connection_string, free_port, python_module, start, start_azurite

MASTER, FUNC = "test-master-key", "test-function-key"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    azurite = start_azurite()
    conn = azurite_connection_string(azurite)
    d = tmp_path_factory.mktemp("host")
    (d / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"queues": {
        "maxDequeueCount": 3, "visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.5",
        "batchSize": 4}}}))
    port = free_port()
    svc = start("host", python_module("sandbox.host", "--app", "tests.fixtures.echo_app:app", "--port", str(port),
                                      "--settings", str(d / "none.json"), "--host-json", str(d / "host.json")),
                wait_ports=[port], env={"AzureWebJobsStorage": conn, "LOCAL_HOST_MASTER_KEY": MASTER,
                                        "LOCAL_HOST_FUNCTION_KEY": FUNC, "ECHO_SCHEDULE": "*/1 * * * * *"})
    try:
        yield {"url": f"http://127.0.0.1:{port}/api", "conn": conn, "svc": svc}
    finally:
        svc.stop()
        azurite.stop()


async def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def entity(conn, table, pk, rk):
    async with TableServiceClient.from_connection_string(conn) as svc:
        try:
            return await svc.get_table_client(table).get_entity(pk, rk)
        except Exception:
            return None


async def test_auth_levels(host):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{host['url']}/echo/a", json={}) as r:
            assert r.status == 401
        async with s.post(f"{host['url']}/echo/a", json={}, headers={"x-functions-key": "wrong"}) as r:
            assert r.status == 401
        async with s.get(f"{host['url']}/admin-only", params={"code": FUNC}) as r:
            assert r.status == 401, "a function key is not enough for admin level"
        async with s.get(f"{host['url']}/admin-only", params={"code": MASTER}) as r:
            assert r.status == 200 and await r.text() == "admin ok"
        async with s.get(f"{host['url']}/open/12") as r:
            assert r.status == 200 and (await r.json()) == {"id": 12}
        async with s.get(f"{host['url']}/open/abc") as r:
            assert r.status == 404
        async with s.get(f"{host['url']}/echo/a", headers={"x-functions-key": FUNC}) as r:
            assert r.status == 405


async def test_http_to_queue_to_worker(host):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{host['url']}/echo/bob", json={"n": 1}, headers={"x-functions-key": FUNC}) as r:
            assert r.status == 202
            mid = (await r.json())["id"]
    e = await wait_for(lambda: entity(host["conn"], "echoresults", "echo", mid))
    assert json.loads(e["value"]) == {"name": "bob", "n": 1}


async def test_failing_message_reaches_poison_and_is_recorded_with_its_cause(host):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{host['url']}/echo/x", json={"fail": "always"}, params={"code": FUNC}) as r:
            mid = (await r.json())["id"]
    dead = await wait_for(lambda: entity(host["conn"], "pesdeadletters", "dead|echo-work", mid), timeout=30)
    assert dead["cause"] == "RuntimeError: asked to fail: always"
    assert dead["attempts"] == 3, "maxDequeueCount from host.json"
    assert await entity(host["conn"], "echoresults", "echo", mid) is None


async def test_malformed_message_is_dead_lettered_at_once_with_the_reason(host):
    async with QueueClient.from_connection_string(host["conn"], "echo-work") as q:
        await q.send_message(base64.b64encode(b'{"v": 1, "type": "echo", "body": "nope"}').decode())

    async def find():
        async with TableServiceClient.from_connection_string(host["conn"]) as svc:
            t = svc.get_table_client("pesdeadletters")
            async for e in t.query_entities("PartitionKey eq 'dead|echo-work'"):
                if "body" in e["cause"]:
                    return e
        return None

    dead = await wait_for(find)
    assert dead["attempts"] == 1, "not retried: retrying cannot fix a malformed message"
    assert "invalid envelope field 'body'" in dead["cause"]


async def test_timer_fires_on_its_ncrontab_schedule(host):
    async def ticks():
        async with TableServiceClient.from_connection_string(host["conn"]) as svc:
            t = svc.get_table_client("echoticks")
            try:
                return len([e async for e in t.list_entities()]) >= 2
            except Exception:
                return False

    assert await wait_for(ticks, timeout=10)
