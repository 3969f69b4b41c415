"""OpenTelemetry for the service: traces across intake → queue → worker → Graph/Pega, metrics, logs.

Set-up happens once per process, on first use (never at import): :func:`configure` installs the
scrubbing of every log record (:mod:`shared.ops.log_scrubbing`) and turns on the Azure Monitor distro (`azure-monitor-opentelemetry`) when an Application Insights connection
string is configured, and does nothing otherwise. Every span, log record and metric goes through
the privacy rules of :mod:`shared.ops.privacy` before it is exported: a scrubbing span processor
and log-record processor run ahead of the exporters (including the auto-instrumented httpx, Azure
SDK and Kiota spans, whose URLs carry mailbox addresses), and our own metric attributes only ever
carry the pseudonymous mailbox id.

The trace context travels in the queue envelope (`Envelope.traceparent`, W3C): the sender calls
:func:`inject` when enqueueing, the worker wraps the handler in :func:`extract`, which starts a
CONSUMER span whose parent is the producer's span — one trace from the Graph notification to the
Pega write.

Metric names and dimensions are the contract of the ops workbook (infra/workbook.json):
`pes.items.synced|skipped|failed|deadlettered` (counters), `pes.sync.latency` (histogram, ms,
from `Envelope.created`), `pes.remote.calls` (counter by `pes.service` graph|pega and
`pes.status_code`; 429 = throttled) and `pes.incidents.open` (gauge 0/1), each with
`pes.mailbox` (pseudonymous), `pes.kind`, `pes.direction` (inbound = Exchange→Pega,
outbound = Pega→Exchange) and, for skips and failures, `pes.reason`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.ops import log_scrubbing
from shared.ops.privacy import mailbox_id, scrub_attributes, scrub_text
from shared.queues.envelope import Envelope

log = logging.getLogger(__name__)

TRACER_NAME = "pega_exchange_sync"
METER_NAME = "pega_exchange_sync"
_PROPAGATOR = TraceContextTextMapPropagator()
_lock = threading.Lock()
_configured: str | None = None
_test_log_handler: logging.Handler | None = None
_test_remote: RemoteCallMetricsProcessor | None = None

INBOUND = "inbound"  # Exchange → Pega
OUTBOUND = "outbound"  # Pega → Exchange


# ---------------------------------------------------------------- privacy processors


class ScrubbingSpanProcessor:
    """Runs before the exporting processor: rewrites each ended span's name, attributes, events and
    status text so no address, content or secret is exported (spans of any library, not just ours)."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def _on_ending(self, span: Any) -> None:
        return None

    def on_end(self, span: Any) -> None:
        try:
            from opentelemetry.sdk.trace import Event
            from opentelemetry.sdk.util import BoundedList
            from opentelemetry.util.types import Attributes  # noqa: F401

            span._name = scrub_text(span.name or "", elide_quoted=False, limit=200)
            span._attributes = _bounded(scrub_attributes(span.attributes))
            events = [Event(e.name, _bounded(scrub_attributes(e.attributes)), e.timestamp) for e in span.events]
            span._events = BoundedList.from_seq(max(len(events), 1), events)
            if span.status is not None and span.status.description:
                span._status = Status(span.status.status_code, scrub_text(span.status.description))
        except Exception:  # never break telemetry (or the app) over a span
            log.debug("span scrubbing failed", exc_info=True)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _bounded(attrs: Mapping[str, Any]) -> Any:
    from opentelemetry.attributes import BoundedAttributes

    return BoundedAttributes(attributes=dict(attrs), immutable=True)


class ScrubbingLogRecordProcessor:
    """Runs before the log exporter: log bodies and attributes scrubbed like span text."""

    def on_emit(self, log_record: Any) -> None:
        try:
            rec = log_record.log_record
            if isinstance(rec.body, str):
                rec.body = scrub_text(rec.body, elide_quoted=False)
            attrs = rec.attributes or {}
            cleaned = scrub_attributes(attrs)
            for k in list(attrs.keys()):
                if k not in cleaned:
                    del attrs[k]
                else:
                    attrs[k] = cleaned[k]
        except Exception:
            log.debug("log scrubbing failed", exc_info=True)

    def emit(self, log_record: Any) -> None:  # older SDK name
        self.on_emit(log_record)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class ScrubbingLogFilter(logging.Filter):
    """The same scrubbing as a filter, for a handler of a process that does not install
    :mod:`shared.ops.log_scrubbing` (which scrubs every record at creation and is what
    :func:`configure` and the local host install)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            log_scrubbing.scrub_record(record)
        except Exception:  # a record that cannot be formatted is left to the handler's own error path
            return True
        return True


class RemoteCallMetricsProcessor:
    """Counts `pes.remote.calls` from the HTTP CLIENT spans of the instrumented clients: Graph calls
    (httpx under msgraph-sdk) and Pega calls (aiohttp), by host, with status code and the mailbox
    taken from a Graph `/users/{upn}/` path — without touching the Graph gateway or Pega client."""

    _USERS = re.compile(r"/users/([^/?#]+)", re.IGNORECASE)

    def __init__(self, hosts: Mapping[str, str]) -> None:
        self.hosts = {h.lower(): service for h, service in hosts.items() if h}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def _on_ending(self, span: Any) -> None:
        return None

    def on_end(self, span: Any) -> None:
        try:
            if span.kind != SpanKind.CLIENT:
                return
            attrs = span.attributes or {}
            url = str(attrs.get("url.full") or attrs.get("http.url") or "")
            host = urlsplit(url).netloc.lower()
            service = self.hosts.get(host)
            if service is None:
                return
            status = int(attrs.get("http.response.status_code") or attrs.get("http.status_code") or 0)
            m = self._USERS.search(urlsplit(url).path)
            mailbox = unquote(m.group(1)) if m and "@" in unquote(m.group(1)) else None
            method = str(attrs.get("http.request.method") or attrs.get("http.method") or "")
            record_remote_call(service, status, mailbox=mailbox, operation=method or None)
        except Exception:
            log.debug("remote call metric failed", exc_info=True)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def remote_hosts(settings: Any) -> dict[str, str]:
    """host[:port] → "graph" | "pega", from the configured base URLs."""
    out: dict[str, str] = {}
    graph = getattr(getattr(settings, "graph", None), "base_url", "") or ""
    pega = getattr(getattr(settings, "pega", None), "base_url", "") or ""
    if graph:
        out[urlsplit(graph).netloc.lower()] = "graph"
    if pega:
        out[urlsplit(pega).netloc.lower()] = "pega"
    return out


# ---------------------------------------------------------------- set-up


def _aad_client_id(auth_string: str) -> str | None:
    """`ClientId=<guid>;Authorization=AAD` → the managed identity's client id."""
    m = re.search(r"(?i)(?:^|;)\s*ClientId\s*=\s*([^;]+)", auth_string or "")
    return m.group(1).strip() if m and "aad" in auth_string.lower() else None


def configure(settings: Any = None, *, connection_string: str | None = None,
              authentication_string: str | None = None) -> str:
    """Turn telemetry on for this process, once. Returns "azure-monitor", "off" or "already".

    `settings` is a shared.config Settings (its `telemetry` group, when present, supplies the
    connection and authentication strings); the keyword arguments override it.
    """
    global _configured
    log_scrubbing.install()  # every log record of the process, exported or not
    with _lock:
        if _configured is not None:
            return "already"
        tel = getattr(settings, "telemetry", None) if settings is not None else None
        conn = connection_string if connection_string is not None else getattr(tel, "connection_string", None)
        auth = authentication_string if authentication_string is not None else getattr(
            tel, "authentication_string", None)
        if not conn:
            _configured = "off"
            return "off"
        from azure.monitor.opentelemetry import configure_azure_monitor

        kwargs: dict[str, Any] = {
            "connection_string": conn,
            "logger_name": "",  # the root logger: our modules log through logging.getLogger(__name__)
            # metrics from the raw spans first, then scrub, then the distro's exporter
            "span_processors": [RemoteCallMetricsProcessor(remote_hosts(settings)), ScrubbingSpanProcessor()],
            "log_record_processors": [ScrubbingLogRecordProcessor()],
            "instrumentation_options": {name: {"enabled": False} for name in
                                        ("django", "fastapi", "flask", "psycopg2", "requests", "urllib")},
            "enable_live_metrics": False,
        }
        client_id = _aad_client_id(auth or "")
        if client_id:
            from azure.identity import ManagedIdentityCredential

            kwargs["credential"] = ManagedIdentityCredential(client_id=client_id)
        configure_azure_monitor(**kwargs)
        _instrument_aiohttp()
        _configured = "azure-monitor"
        log.info("telemetry: Azure Monitor OpenTelemetry configured")
        return "azure-monitor"


def configure_for_tests(span_exporter: Any, metric_reader: Any, *, log_exporter: Any = None,
                        instrument_http: bool = True, remote: Mapping[str, str] | None = None) -> None:
    """The same privacy pipeline with in-memory exporters (tests): global providers, set once."""
    global _configured
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    with _lock:
        tp = TracerProvider()
        global _test_remote
        _test_remote = RemoteCallMetricsProcessor(remote or {})
        tp.add_span_processor(_test_remote)  # type: ignore[arg-type]
        tp.add_span_processor(ScrubbingSpanProcessor())  # type: ignore[arg-type]
        tp.add_span_processor(SimpleSpanProcessor(span_exporter))
        trace.set_tracer_provider(tp)
        metrics.set_meter_provider(MeterProvider(metric_readers=[metric_reader]))
        if log_exporter is not None:
            from opentelemetry._logs import set_logger_provider
            from opentelemetry.instrumentation.logging.handler import LoggingHandler
            from opentelemetry.sdk._logs import LoggerProvider
            from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

            lp = LoggerProvider()
            lp.add_log_record_processor(ScrubbingLogRecordProcessor())  # type: ignore[arg-type]
            lp.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
            set_logger_provider(lp)
            global _test_log_handler
            _test_log_handler = LoggingHandler(level=logging.INFO, logger_provider=lp)
            logging.getLogger().addHandler(_test_log_handler)
        if instrument_http:
            from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

            HTTPXClientInstrumentor().instrument(tracer_provider=tp)
            _instrument_aiohttp(tp)
            from azure.core.settings import settings as azure_settings

            azure_settings.tracing_implementation = "opentelemetry"
        _configured = "tests"
        _instruments.cache_clear()


def _instrument_aiohttp(tracer_provider: Any = None) -> None:
    """Pega (and Azure SDK async) calls go through aiohttp, which the distro does not instrument."""
    try:
        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

        inst = AioHttpClientInstrumentor()
        if not inst.is_instrumented_by_opentelemetry:
            inst.instrument(**({"tracer_provider": tracer_provider} if tracer_provider is not None else {}))
    except Exception as exc:  # telemetry must never stop the app
        log.warning("aiohttp instrumentation unavailable: %s", type(exc).__name__)


def set_remote_hosts_for_tests(hosts: Mapping[str, str]) -> None:
    if _test_remote is not None:
        _test_remote.hosts = {h.lower(): s for h, s in hosts.items()}


def uninstrument_for_tests() -> None:
    """Undo the global HTTP instrumentation of configure_for_tests (the providers stay, unexported)."""
    from azure.core.settings import settings as azure_settings
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    AioHttpClientInstrumentor().uninstrument()
    azure_settings.tracing_implementation = None
    if _test_log_handler is not None:
        logging.getLogger().removeHandler(_test_log_handler)


# ---------------------------------------------------------------- dimensions and metrics


def dims(*, mailbox: str | None = None, kind: str | None = None, direction: str | None = None,
         **extra: str | int | None) -> dict[str, str | int]:
    """Metric/span attributes: pseudonymous mailbox, kind, direction, and any `pes.*` extras."""
    out: dict[str, str | int] = {}
    if mailbox:
        out["pes.mailbox"] = mailbox_id(mailbox)
    if kind:
        out["pes.kind"] = kind
    if direction:
        out["pes.direction"] = direction
    for k, v in extra.items():
        if v is not None:
            out[f"pes.{k}"] = scrub_text(v) if isinstance(v, str) else v
    return out


def log_extra(*, mailbox: str | None = None, kind: str | None = None, direction: str | None = None,
              **extra: str | int | None) -> dict[str, str | int]:
    """`extra=` for a log call: the same pes.* dimensions as the metrics, so logs land in App
    Insights with customDimensions pes.mailbox (pseudonymous) / pes.kind / pes.direction."""
    return dims(mailbox=mailbox, kind=kind, direction=direction, **extra)


class _Instruments:
    def __init__(self) -> None:
        meter = metrics.get_meter(METER_NAME)
        self.items = {
            outcome: meter.create_counter(f"pes.items.{outcome}", unit="{item}", description=f"items {outcome}")
            for outcome in ("synced", "skipped", "failed", "deadlettered")
        }
        self.latency = meter.create_histogram("pes.sync.latency", unit="ms",
                                              description="end-to-end latency from the request to the write")
        self.remote = meter.create_counter("pes.remote.calls", unit="{call}", description="Graph and Pega calls")
        self.incident = meter.create_gauge("pes.incidents.open", description="1 while a failure incident is open")


@functools.cache
def _instruments() -> _Instruments:
    return _Instruments()


def record_items(outcome: str, count: int = 1, *, mailbox: str, kind: str, direction: str,
                 reason: str | None = None) -> None:
    """`outcome`: synced | skipped | failed | deadlettered; `reason` a short code (private, draft…)."""
    if count <= 0:
        return
    _instruments().items[outcome].add(count, dims(mailbox=mailbox, kind=kind, direction=direction, reason=reason))


def record_latency(created: dt.datetime, *, mailbox: str, kind: str, direction: str,
                   now: dt.datetime | None = None) -> float:
    """End-to-end latency of one item: from `Envelope.created` (the request) to now (the write)."""
    ms = max(0.0, ((now or dt.datetime.now(dt.UTC)) - created).total_seconds() * 1000.0)
    _instruments().latency.record(ms, dims(mailbox=mailbox, kind=kind, direction=direction))
    return ms


def record_remote_call(service: str, status: int, *, mailbox: str | None = None, kind: str | None = None,
                       direction: str | None = None, operation: str | None = None) -> None:
    """One Graph or Pega call and its HTTP status (0 = no answer); 429 counts as throttled."""
    _instruments().remote.add(1, dims(mailbox=mailbox, kind=kind, direction=direction, service=service,
                                      status_code=str(status), operation=operation))


def record_round(report: Any, *, created: dt.datetime | None = None, direction: str = INBOUND) -> None:
    """Metrics of one Exchange → Pega delta round (shared.sync.inbound.RoundReport, duck-typed):
    items synced, skipped per reason, failed per item, and — for rounds caused by a request
    (notification, resync) — the end-to-end latency from `Envelope.created` to the last write."""
    mailbox, kind = str(report.mailbox), str(report.kind)
    synced = int(getattr(report, "synced", 0))
    record_items("synced", synced, mailbox=mailbox, kind=kind, direction=direction)
    for reason, n in dict(getattr(report, "skipped", {}) or {}).items():
        record_items("skipped", int(n), mailbox=mailbox, kind=kind, direction=direction, reason=str(reason))
    failed = getattr(report, "failed", {}) or {}
    if failed:
        record_items("failed", len(failed), mailbox=mailbox, kind=kind, direction=direction, reason="item")
    if created is not None and synced:
        record_latency(created, mailbox=mailbox, kind=kind, direction=direction)


def record_operation(status: str, *, mailbox: str, kind: str, created: dt.datetime | None = None) -> None:
    """Metrics of one Pega → Exchange operation run (`status` as returned by run_operation)."""
    if status == "succeeded":
        record_items("synced", 1, mailbox=mailbox, kind=kind, direction=OUTBOUND)
        if created is not None:
            record_latency(created, mailbox=mailbox, kind=kind, direction=OUTBOUND)
    elif status == "failed":
        record_items("failed", 1, mailbox=mailbox, kind=kind, direction=OUTBOUND, reason="operation_failed")


def set_incident_open(mailbox: str, kind: str, is_open: bool) -> None:
    _instruments().incident.set(1 if is_open else 0, dims(mailbox=mailbox, kind=kind))


# ---------------------------------------------------------------- traces


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def inject(envelope: Envelope) -> Envelope:
    """The envelope with the current trace context as its W3C `traceparent` (unchanged without one).

    Call it where messages are sent (QueueSender.send) so the consumer continues the trace.
    """
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    tp = carrier.get("traceparent")
    if not tp or tp == envelope.traceparent:
        return envelope
    return envelope.model_copy(update={"traceparent": tp})


def _message_attrs(envelope: Envelope, queue: str) -> dict[str, Any]:
    body = envelope.body or {}
    attrs: dict[str, Any] = {"messaging.system": "azure_queue", "messaging.destination.name": queue,
                             "messaging.message.id": envelope.id, "messaging.operation.type": "process",
                             "pes.message_type": envelope.type, "pes.attempt": envelope.attempt}
    if isinstance(body.get("mailbox"), str):
        attrs["pes.mailbox"] = mailbox_id(body["mailbox"])
    if isinstance(body.get("kind"), str):
        attrs["pes.kind"] = body["kind"]
    return attrs


@contextlib.contextmanager
def extract(envelope: Envelope, *, queue: str) -> Iterator[Span]:
    """A CONSUMER span for processing one message, child of the producer's span (its traceparent).

    Use it around the handler in the queue worker: everything the handler does (Graph, Pega, the
    next enqueue) joins the trace that started at intake.
    """
    parent = _PROPAGATOR.extract({"traceparent": envelope.traceparent}) if envelope.traceparent else None
    queued_ms = max(0.0, (dt.datetime.now(dt.UTC) - envelope.created).total_seconds() * 1000.0)
    attrs = _message_attrs(envelope, queue) | {"pes.queued_ms": round(queued_ms, 1)}
    with tracer().start_as_current_span(f"process {envelope.type}", context=parent, kind=SpanKind.CONSUMER,
                                        attributes=attrs) as span:
        yield span


@contextlib.contextmanager
def server_span(name: str, **attributes: Any) -> Iterator[Span]:
    """A SERVER span for an HTTP trigger (intake, admin API): the root of the work it enqueues."""
    with tracer().start_as_current_span(name, kind=SpanKind.SERVER, attributes=scrub_attributes(attributes)) as span:
        yield span


@contextlib.asynccontextmanager
async def remote_call(service: str, operation: str, *, mailbox: str | None = None, kind: str | None = None,
                      direction: str | None = None) -> AsyncIterator[_CallResult]:
    """A CLIENT span and a `pes.remote.calls` count for one Graph or Pega call.

    Set `result.status` to the HTTP status; an exception with a `status` attribute (the typed
    Graph/Pega errors) is counted with it, any other exception as status 0.
    """
    result = _CallResult()
    attrs = dims(mailbox=mailbox, kind=kind, direction=direction, service=service, operation=operation)
    started = time.perf_counter()
    with tracer().start_as_current_span(f"{service} {operation}", kind=SpanKind.CLIENT, attributes=attrs) as span:
        try:
            yield result
        except BaseException as exc:
            result.status = result.status or int(getattr(exc, "status", 0) or (429 if "Throttl" in type(exc).__name__
                                                                                else 0))
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.set_attribute("http.response.status_code", result.status)
            span.set_attribute("pes.duration_ms", round((time.perf_counter() - started) * 1000.0, 1))
            record_remote_call(service, result.status, mailbox=mailbox, kind=kind, direction=direction,
                               operation=operation)


class _CallResult:
    status: int = 0


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def detach_all() -> None:
    """Reset the current context (tests that run several 'processes' in one loop)."""
    otel_context.attach(otel_context.Context())
