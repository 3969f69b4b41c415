"""One gateway for every EWS call: exchangelib in a bounded thread pool, never on the event loop.

exchangelib is synchronous (requests). Each call runs in a worker thread of a pool of
EWS_MAX_THREADS, under a per-mailbox limit, with an asyncio timeout around it (and exchangelib's
own HTTP timeout inside). Retries are off (FailFast): ErrorServerBusy surfaces at once with its
back-off hint and the queue, not a sleeping thread, waits it out. One exchangelib Account per
mailbox impersonates the rep through the service account (ExchangeImpersonation header).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from shared.config import EwsAuthType, EwsSettings
from shared.errors import ConfigurationError
from shared.ews.errors import EwsUnavailableError, map_error

log = logging.getLogger(__name__)
T = TypeVar("T")

_registered = threading.Lock()
_done = False


def register_stamp() -> None:
    """Our PegaId named property (same GUID and name as the Graph side's extended property, so a
    mailbox moved between on-premises and Online keeps its stamps) on exchangelib's item classes."""
    global _done
    with _registered:
        if _done:
            return
        from exchangelib import CalendarItem, Contact, ExtendedProperty, Message

        class PegaId(ExtendedProperty):
            property_set_id = "4b1e9f3a-6c2d-4e8b-9a75-0d3c5e7f9a21"
            property_name = "PegaId"
            property_type = "String"

        class PegaReplyReady(ExtendedProperty):  # a reply draft already holds the rep's text
            property_set_id = "4b1e9f3a-6c2d-4e8b-9a75-0d3c5e7f9a21"
            property_name = "PegaReplyReady"
            property_type = "String"

        for cls in (Message, CalendarItem, Contact):
            if "pega_id" not in {f.name for f in cls.FIELDS}:
                cls.register("pega_id", PegaId)
        if "reply_ready" not in {f.name for f in Message.FIELDS}:
            Message.register("reply_ready", PegaReplyReady)
        _done = True


class EwsGateway:
    def __init__(self, settings: EwsSettings) -> None:
        if not settings.configured:
            raise ConfigurationError("EWS_URL is not set: no on-premises mailbox can be synced",
                                     settings=["EWS_URL"])
        self.settings = settings
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=settings.max_threads,
                                                           thread_name_prefix="ews")
        self._accounts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._config: Any = None
        register_stamp()

    def _configuration(self) -> Any:
        from exchangelib import BASIC, NTLM, OAUTH2, Build, Configuration, Credentials, FailFast, Version
        from exchangelib.credentials import OAuth2Credentials

        if self._config is None:
            s = self.settings
            build = Build(*(int(p) for p in s.server_version.split(".")))
            if s.auth_type is EwsAuthType.OAUTH:
                creds: Any = OAuth2Credentials(client_id=s.oauth_client_id, client_secret=s.oauth_client_secret or "",
                                               tenant_id=s.oauth_tenant_id)
                auth = OAUTH2
            else:
                creds = Credentials(s.username, s.password or "")
                auth = NTLM if s.auth_type is EwsAuthType.NTLM else BASIC
            self._config = Configuration(service_endpoint=s.url, credentials=creds, auth_type=auth,
                                         version=Version(build=build), retry_policy=FailFast(),
                                         max_connections=s.max_connections_per_mailbox * s.max_threads)
            if s.ca_bundle:
                from exchangelib.protocol import BaseProtocol

                BaseProtocol.HTTP_ADAPTER_CLS.cert_verify = _ca_adapter(s.ca_bundle)  # type: ignore[method-assign]
        return self._config

    def account(self, mailbox: str) -> Any:
        """The rep's exchangelib Account (impersonated); built once per mailbox, thread-safe."""
        from exchangelib import IMPERSONATION, UTC, Account

        key = mailbox.lower()
        with self._lock:
            found = self._accounts.get(key)
            if found is None:
                found = Account(key, config=self._configuration(), autodiscover=False, access_type=IMPERSONATION,
                                default_timezone=UTC)
                from exchangelib.protocol import BaseProtocol

                BaseProtocol.TIMEOUT = int(self.settings.timeout_seconds)
                reentrant_pool_lock(found.protocol)
                self._accounts[key] = found
            return found

    async def call(self, mailbox: str, fn: Callable[[Any], T], *, what: str) -> T:
        """Run `fn(account)` in the pool under the mailbox's limit and a timeout; errors mapped."""
        sem = self._limits.setdefault(mailbox.lower(), asyncio.Semaphore(self.settings.max_connections_per_mailbox))
        loop = asyncio.get_running_loop()
        async with sem:
            fut = loop.run_in_executor(self._pool, functools.partial(self._run, mailbox, fn))
            try:
                return await asyncio.wait_for(fut, self.settings.timeout_seconds * 2)
            except TimeoutError:
                raise EwsUnavailableError(f"EWS {what}: timed out", retry_after=None) from None
            except (ConfigurationError, EwsUnavailableError):
                raise
            except Exception as exc:
                from shared.errors import SyncError

                if isinstance(exc, SyncError):
                    raise
                log.info("EWS %s for a mailbox failed: %s", what, type(exc).__name__)
                raise map_error(exc, what=what) from None

    def _run(self, mailbox: str, fn: Callable[[Any], T]) -> T:
        return fn(self.account(mailbox))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def reentrant_pool_lock(protocol: Any) -> None:
    """exchangelib shrinks its session pool on ErrorServerBusy: `decrease_poolsize` holds the pool's
    lock and takes a session to discard; when every session is out with other requests, that take
    grows the pool, which takes the same (non-reentrant) lock again. The thread deadlocks on itself,
    and every later request of the protocol waits behind it: a burst of ErrorServerBusy under
    concurrency wedged the on-premises sync (chaos seed 3). A reentrant lock lets that growth through.
    Set before the protocol's first request; a protocol shared by several accounts is set once."""
    lock = getattr(protocol, "_session_pool_lock", None)
    if lock is not None and not isinstance(lock, _RLOCK_TYPE):
        protocol._session_pool_lock = threading.RLock()


_RLOCK_TYPE = type(threading.RLock())


def _ca_adapter(ca_bundle: str) -> Any:
    import requests.adapters

    original = requests.adapters.HTTPAdapter.cert_verify

    def cert_verify(self: Any, conn: Any, url: str, verify: Any, cert: Any) -> None:
        original(self, conn, url, ca_bundle if verify is True else verify, cert)

    return cert_verify


_gateways: dict[int, EwsGateway] = {}
_glock = threading.Lock()


def ews_gateway(settings: EwsSettings) -> EwsGateway:
    """One gateway per settings object (the thread pool and accounts outlive event loops)."""
    with _glock:
        gw = _gateways.get(id(settings))
        if gw is None:
            gw = _gateways[id(settings)] = EwsGateway(settings)
        return gw
