"""A small local Azure Functions host for the very same `function_app.app`.

Core Tools cannot be installed on this machine, so this host stands in for `func start`:
- HTTP triggers at http://127.0.0.1:<port>/api/<route>, honouring auth levels: `anonymous`,
  `function` (the function key or the master key, as `x-functions-key` header or `?code=`) and
  `admin` (master key only);
- queue triggers polled from Storage with host.json `extensions.queues` semantics: `batchSize`,
  `newBatchThreshold`, `maxDequeueCount` then `<queue>-poison`, `visibilityTimeout` between
  retries, `maxPollingInterval` backoff, base64 `messageEncoding`; a received message is leased
  for 10 minutes and the lease is renewed while the function runs, as the real host does (a host
  that dies leaves its messages invisible until the lease ends; `--message-lease` shortens that
  lease for the chaos harness — sandbox only, the real host's 10 minutes are not configurable);
- timer triggers on their 6-field NCRONTAB schedules (`%SETTING%` resolved), `runOnStartup`.

It reads only the binding metadata the real host reads (`app.get_functions()`), so nothing in
functions/ changes to run here; `func start` works on the same tree wherever Core Tools exist.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import importlib
import inspect
import json
import logging
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import azure.functions as func
from aiohttp import web
from azure.functions.queue import QueueMessage as FuncQueueMessage
from azure.functions.timer import TimerRequest
from croniter import croniter

log = logging.getLogger("sandbox.host")

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- settings and host.json


def load_local_settings(path: Path) -> dict[str, str]:
    """The `Values` of a local.settings.json (Core Tools' format)."""
    if not path.is_file() or not path.read_text().strip():
        return {}
    data = json.loads(path.read_text())
    values = data.get("Values", {})
    return {str(k): str(v) for k, v in values.items()}


def apply_settings(values: Mapping[str, str], *, override: bool = False) -> None:
    for k, v in values.items():
        if override or k not in os.environ:
            os.environ[k] = v


def timespan_seconds(value: str | int | float | None, default: float) -> float:
    """host.json TimeSpans: "hh:mm:ss" (optionally "d.hh:mm:ss" and fractions)."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)", value.strip())
    if not m:
        raise ValueError(f"not a TimeSpan: {value!r}")
    days, h, mnt, s = m.groups()
    return int(days or 0) * 86400 + int(h) * 3600 + int(mnt) * 60 + float(s)


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, host: Mapping[str, Any]) -> QueueOptions:
        q = (host.get("extensions") or {}).get("queues") or {}
        batch = int(q.get("batchSize", 16))
        if not 1 <= batch <= 32:
            raise ValueError("host.json extensions.queues.batchSize must be 1..32")
        return cls(
            batch_size=batch,
            new_batch_threshold=int(q.get("newBatchThreshold", batch // 2)),
            max_dequeue_count=int(q.get("maxDequeueCount", 5)),
            visibility_timeout=timespan_seconds(q.get("visibilityTimeout"), 0.0),
            max_polling_interval=timespan_seconds(q.get("maxPollingInterval"), 60.0),
            message_encoding=str(q.get("messageEncoding", "base64")).lower(),
        )


def resolve_setting_expr(value: str) -> str:
    """Binding expressions like `%POLL_SCHEDULE%` read app settings, as in the real host."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise KeyError(f"app setting '{name}' used in a binding is not defined")
        return os.environ[name]

    return re.sub(r"%([^%]+)%", sub, value)


# ---------------------------------------------------------------- invoking user functions


@dataclass
class FunctionInfo:
    name: str
    trigger: dict[str, Any]
    fn: Callable[..., Any]
    arg_name: str


def describe_functions(app: func.FunctionApp) -> list[FunctionInfo]:
    out = []
    for f in app.get_functions():
        trig = json.loads(f.get_function_json())["bindings"]
        trigger = next(b for b in trig if b["direction"] == "IN" and b["type"].endswith("Trigger"))
        out.append(FunctionInfo(f.get_function_name(), trigger, f.get_user_function(), trigger["name"]))
    return out


async def invoke(info: FunctionInfo, arg: Any) -> Any:
    invocation = uuid.uuid4()
    started = time.perf_counter()
    log.info("Executing 'Functions.%s' (Id=%s)", info.name, invocation)
    try:
        if inspect.iscoroutinefunction(info.fn):
            result = await info.fn(**{info.arg_name: arg})
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(None, lambda: info.fn(**{info.arg_name: arg}))
    except Exception:
        log.exception("Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)", info.name, invocation,
                      (time.perf_counter() - started) * 1000)
        raise
    log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)", info.name, invocation,
             (time.perf_counter() - started) * 1000)
    return result


# ---------------------------------------------------------------- HTTP


_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+)(?:\([^)]*\))?)?(\?)?\}")
_CONSTRAINTS = {"int": r"-?\d+", "long": r"-?\d+", "guid": r"[0-9a-fA-F-]{36}", "alpha": r"[A-Za-z]+",
                "bool": r"(?i:true|false)"}


def route_regex(route: str) -> re.Pattern[str]:
    """Compile an ASP.NET-style route template (`a/{id}`, `{id:int}`, `{x?}`, `{*rest}`)."""
    pattern = ""
    pos = 0
    for m in _PARAM.finditer(route):
        literal = route[pos:m.start()]
        catch_all, name, constraint, optional = m.groups()
        body = ".*" if catch_all else _CONSTRAINTS.get(constraint or "", r"[^/]+")
        if optional and literal.endswith("/"):
            pattern += re.escape(literal[:-1]) + f"(?:/(?P<{name}>{body}))?"
        else:
            pattern += re.escape(literal) + f"(?P<{name}>{body})" + ("?" if optional else "")
        pos = m.end()
    pattern += re.escape(route[pos:])
    # \Z, not $: "$" also matches before a trailing newline, so "health\n" would reach "health";
    # DOTALL: a catch-all parameter takes any character, newlines included.
    return re.compile(f"^{pattern}\\Z", re.IGNORECASE | re.DOTALL)


@dataclass
class HttpRoute:
    info: FunctionInfo
    regex: re.Pattern[str]
    methods: frozenset[str]
    auth_level: str


@dataclass
class Keys:
    master: str
    function: str

    def allows(self, level: str, supplied: str | None) -> bool:
        if level == "anonymous":
            return True
        if not supplied:
            return False
        import hmac

        if hmac.compare_digest(supplied, self.master):
            return True
        return level == "function" and hmac.compare_digest(supplied, self.function)


class HttpFront:
    def __init__(self, functions: list[FunctionInfo], keys: Keys, route_prefix: str = "api") -> None:
        self.keys = keys
        self.prefix = "/" + route_prefix.strip("/") if route_prefix else ""
        self.routes: list[HttpRoute] = []
        for info in functions:
            t = info.trigger
            if t["type"] != "httpTrigger":
                continue
            route = t.get("route") or info.name
            methods = frozenset(m.upper() for m in (t.get("methods") or ["GET", "POST", "PUT", "PATCH", "DELETE"]))
            self.routes.append(HttpRoute(info, route_regex(route.strip("/")), methods,
                                         str(t.get("authLevel", "function")).lower()))

    def app(self) -> web.Application:
        a = web.Application(client_max_size=256 * 1024 * 1024, middlewares=[self._problems])
        # [\s\S]: aiohttp's own "." stops at a newline, and a path with %0A fell through to its text 404
        a.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)
        return a

    @web.middleware
    async def _problems(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """aiohttp's own refusals (a body over client_max_size, a malformed request) in the same
        JSON shape as the host's other answers."""
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return host_problem(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Match the still-encoded path (as the real host's routing does: "/" separates segments,
        # an encoded %2F does not), then decode each route value exactly once.
        path = request.rel_url.raw_path
        if self.prefix:
            if not (path == self.prefix or path.startswith(self.prefix + "/")):
                return host_problem(404, "not_found", "no function answers this route")
            path = path[len(self.prefix):]
        path = path.strip("/")
        matched_path = False
        for r in self.routes:
            m = r.regex.match(path)
            if not m:
                continue
            matched_path = True
            if request.method.upper() not in r.methods:
                continue
            supplied = request.headers.get("x-functions-key") or request.query.get("code")
            if not self.keys.allows(r.auth_level, supplied):
                return host_problem(401, "unauthorized", "a valid function key is required (x-functions-key header "
                                                         "or code query parameter)")
            body = await request.read()
            route_params = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
            req = func.HttpRequest(method=request.method.upper(), url=str(request.url),
                                   headers=dict(request.headers), params=dict(request.query),
                                   route_params=route_params, body=body)
            try:
                result = await invoke(r.info, req)
            except Exception:
                return host_problem(500, "internal_error", "the function failed; see the host log")
            return self._to_response(result)
        if matched_path:
            return host_problem(405, "method_not_allowed", f"{request.method} is not allowed on this route")
        return host_problem(404, "not_found", "no function answers this route")

    @staticmethod
    def _to_response(result: Any) -> web.Response:
        if result is None:
            return web.Response(status=204)
        if isinstance(result, func.HttpResponse):
            headers = {k: v for k, v in result.headers.items() if k.lower() != "content-type"}
            ctype = result.headers.get("content-type") or result.mimetype or "text/plain"
            if "charset" not in ctype and ctype.startswith(("text/", "application/json")):
                ctype = f"{ctype}; charset={result.charset or 'utf-8'}"
            headers["Content-Type"] = ctype
            return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
        if isinstance(result, str | bytes):
            return web.Response(status=200, body=result)
        return host_problem(500, "internal_error", "the function returned no HTTP response")


def host_problem(status: int, code: str, message: str) -> web.Response:
    """The host's own answers (no route, wrong method, no key, a failed function) in the error shape
    of the contract (openapi.yaml `Error`): `{"error": {"code", "message"}}`, never aiohttp's text."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers={"X-Content-Type-Options": "nosniff"})


# ---------------------------------------------------------------- queues


MESSAGE_LEASE_SECONDS = 600.0  # the real host leases a received message for 10 minutes (and renews it)


class QueueListener:
    """Polls one queue and runs its function, with the host's retry and poison semantics."""

    def __init__(self, info: FunctionInfo, options: QueueOptions, stop: asyncio.Event, *,
                 message_lease: float = MESSAGE_LEASE_SECONDS) -> None:
        self.info = info
        self.options = options
        self.stop = stop
        self.message_lease = max(2, int(message_lease))
        self.queue_name = resolve_setting_expr(str(info.trigger["queueName"])).lower()
        self.connection = str(info.trigger.get("connection") or "AzureWebJobsStorage")
        self._inflight: set[asyncio.Task[None]] = set()

    def _service(self) -> Any:
        from azure.storage.queue.aio import QueueServiceClient

        from shared.storage.connection import expand_connection_string

        cs = os.environ.get(self.connection)
        if not cs:
            raise KeyError(f"connection setting '{self.connection}' is not defined")
        # as the product's own clients (shared.storage.connection): no netrc and proxy-variable lookup in
        # a worker thread per request — the real host polls in .NET, whose cost is not ours to measure
        return QueueServiceClient.from_connection_string(expand_connection_string(cs), use_env_settings=False)

    async def run(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        service = self._service()
        queue = service.get_queue_client(self.queue_name)
        poison = service.get_queue_client(f"{self.queue_name}-poison")
        for q in (queue, poison):
            with contextlib.suppress(ResourceExistsError):
                await q.create_queue()
        delay = 0.1
        try:
            while not self.stop.is_set():
                # Like the real host: fetch a new batch only once in-flight work drops to newBatchThreshold.
                if len(self._inflight) > self.options.new_batch_threshold:
                    await asyncio.sleep(0.02)
                    continue
                got = 0
                try:
                    pages = queue.receive_messages(messages_per_page=self.options.batch_size,
                                                   max_messages=self.options.batch_size,
                                                   visibility_timeout=self.message_lease)
                    async for msg in pages:
                        got += 1
                        t = asyncio.create_task(self._process(queue, poison, msg))
                        self._inflight.add(t)
                        t.add_done_callback(self._inflight.discard)
                except Exception as exc:  # storage hiccup: back off, keep listening
                    log.warning("queue %s: receive failed: %s", self.queue_name, type(exc).__name__)
                if got:
                    delay = 0.1
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
                delay = min(delay * 2, max(0.1, self.options.max_polling_interval))
        finally:
            if self._inflight:
                await asyncio.wait(self._inflight, timeout=10)
            await service.close()

    def _decode(self, content: str) -> bytes | None:
        if self.options.message_encoding == "none":
            return content.encode("utf-8")
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return None

    async def _process(self, queue: Any, poison: Any, msg: Any) -> None:
        body = self._decode(msg.content)
        dequeue = int(msg.dequeue_count or 1)
        if body is None:
            log.error("queue %s: message %s is not valid base64; moving to poison", self.queue_name, msg.id)
            await self._to_poison(queue, poison, msg)
            return
        qm = FuncQueueMessage(id=msg.id, body=body, dequeue_count=dequeue, expiration_time=msg.expires_on,
                              insertion_time=msg.inserted_on, time_next_visible=msg.next_visible_on,
                              pop_receipt=msg.pop_receipt)
        held = [msg]  # the message with its latest pop receipt (each lease renewal issues a new one)
        renewer = asyncio.create_task(self._renew_lease(queue, held))
        try:
            await invoke(self.info, qm)
        except Exception:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            if dequeue >= self.options.max_dequeue_count:
                await self._to_poison(queue, poison, msg, receipt=held[0])
            else:
                with contextlib.suppress(Exception):
                    await queue.update_message(held[0], visibility_timeout=int(self.options.visibility_timeout))
            return
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        with contextlib.suppress(Exception):
            await queue.delete_message(held[0])

    async def _renew_lease(self, queue: Any, held: list[Any]) -> None:
        """Keep a running message invisible: renew its lease at half time, as the real host does."""
        while True:
            await asyncio.sleep(self.message_lease / 2)
            with contextlib.suppress(Exception):
                updated = await queue.update_message(held[0], visibility_timeout=self.message_lease)
                held[0] = updated

    async def _to_poison(self, queue: Any, poison: Any, msg: Any, *, receipt: Any = None) -> None:
        await poison.send_message(msg.content)
        await queue.delete_message(receipt if receipt is not None else msg)
        log.warning("queue %s: message %s moved to %s-poison after %s tries", self.queue_name, msg.id,
                    self.queue_name, msg.dequeue_count)


# ---------------------------------------------------------------- timers


def to_croniter(ncrontab: str) -> str:
    fields = ncrontab.split()
    if len(fields) != 6:
        raise ValueError(f"NCRONTAB schedules have 6 fields (second first): {ncrontab!r}")
    return " ".join(fields[1:] + fields[:1])


class TimerRunner:
    def __init__(self, info: FunctionInfo, stop: asyncio.Event) -> None:
        self.info = info
        self.stop = stop
        self.schedule = resolve_setting_expr(str(info.trigger["schedule"]))
        self.run_on_startup = bool(info.trigger.get("runOnStartup", False))

    def next_after(self, now: dt.datetime) -> dt.datetime:
        if re.fullmatch(r"\d+(\.\d+)?:\d{2}:\d{2}", self.schedule):  # TimeSpan schedule
            return now + dt.timedelta(seconds=timespan_seconds(self.schedule, 60))
        return croniter(to_croniter(self.schedule), now).get_next(dt.datetime)

    async def run(self) -> None:
        if self.run_on_startup:
            await self._fire(past_due=False)
        while not self.stop.is_set():
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            nxt = self.next_after(now)
            wait = (nxt - now).total_seconds()
            try:
                await asyncio.wait_for(self.stop.wait(), max(0.0, wait))
                return
            except TimeoutError:
                pass
            late = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - nxt).total_seconds() > 10
            await self._fire(past_due=late)

    async def _fire(self, *, past_due: bool) -> None:
        with contextlib.suppress(Exception):  # a failed run is logged by invoke; the schedule goes on
            await invoke(self.info, TimerRequest(past_due=past_due))


# ---------------------------------------------------------------- the host


@dataclass
class HostConfig:
    app_ref: str = "function_app:app"
    host: str = "127.0.0.1"
    port: int = 7071
    host_json: Path = ROOT / "host.json"
    keys: Keys = field(default_factory=lambda: Keys(master="", function=""))
    disabled: frozenset[str] = frozenset()
    message_lease: float = MESSAGE_LEASE_SECONDS


def load_app(ref: str) -> func.FunctionApp:
    module, _, attr = ref.partition(":")
    sys.path.insert(0, str(ROOT))
    return getattr(importlib.import_module(module), attr or "app")


async def serve(cfg: HostConfig, *, ready: Callable[[str], Awaitable[None] | None] | None = None) -> None:
    host_json = json.loads(cfg.host_json.read_text()) if cfg.host_json.exists() else {}
    options = QueueOptions.from_host_json(host_json)
    route_prefix = ((host_json.get("extensions") or {}).get("http") or {}).get("routePrefix", "api")
    app = load_app(cfg.app_ref)
    functions = [f for f in describe_functions(app) if f.name not in cfg.disabled]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    front = HttpFront(functions, cfg.keys, route_prefix)
    # request line and header limits above aiohttp's 8 KiB, so a long URL reaches the function (and
    # its JSON answer) instead of aiohttp's text 400
    runner = web.AppRunner(front.app(), access_log=None,
                           handler_args={"max_line_size": 65536, "max_field_size": 65536})
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    tasks = []
    for info in functions:
        kind = info.trigger["type"]
        if kind == "queueTrigger":
            tasks.append(asyncio.create_task(QueueListener(info, options, stop, message_lease=cfg.message_lease).run()))
        elif kind == "timerTrigger":
            tasks.append(asyncio.create_task(TimerRunner(info, stop).run()))
        elif kind != "httpTrigger":
            log.warning("function %s: trigger type %s is not supported by the local host", info.name, kind)
    url = f"http://{cfg.host}:{cfg.port}/{route_prefix}".rstrip("/")
    log.info("host started: %d functions (%d http, %d queue, %d timer)", len(functions), len(front.routes),
             sum(1 for f in functions if f.trigger["type"] == "queueTrigger"),
             sum(1 for f in functions if f.trigger["type"] == "timerTrigger"))
    if ready is not None:
        r = ready(url)
        if inspect.isawaitable(r):
            await r
    await stop.wait()
    if tasks:
        await asyncio.wait(tasks, timeout=15)
    for t in tasks:
        t.cancel()
    await runner.cleanup()
    with contextlib.suppress(Exception):
        from shared.runtime import close_services

        await close_services()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sandbox.host", description=__doc__.split("\n\n")[0])
    p.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    p.add_argument("--port", type=int, default=int(os.environ.get("FUNCTIONS_HTTPWORKER_PORT", "7071")))
    p.add_argument("--settings", default=str(ROOT / "local.settings.json"), help="local.settings.json to load")
    p.add_argument("--host-json", default=str(ROOT / "host.json"))
    p.add_argument("--disable", action="append", default=[], help="function name not to run (repeatable)")
    p.add_argument("--message-lease", type=float, default=MESSAGE_LEASE_SECONDS,
                   help="sandbox only: seconds a received queue message stays invisible (renewed while it runs); "
                        "the chaos harness shortens it so a killed host's messages come back within seconds")
    args = p.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    from shared.ops import log_scrubbing

    log_scrubbing.install()  # before any function runs: no address, token or secret in the host log
    apply_settings(load_local_settings(Path(args.settings)))
    keys = Keys(master=os.environ.get("LOCAL_HOST_MASTER_KEY") or uuid.uuid4().hex,
                function=os.environ.get("LOCAL_HOST_FUNCTION_KEY") or uuid.uuid4().hex)

    def ready(url: str) -> None:
        print(f"HOST READY {url}", flush=True)

    asyncio.run(serve(HostConfig(app_ref=args.app, port=args.port, host_json=Path(args.host_json), keys=keys,
                                 disabled=frozenset(args.disable), message_lease=args.message_lease),
                      ready=ready))


if __name__ == "__main__":
    main()
