"""Authentication as IIS in front of Exchange does it: Basic, and NTLM (a connection-bound
three-leg handshake, verified with pyspnego's NTLM acceptor against a credential file the
simulator writes). An unauthenticated or failed request is a 401 offering Negotiate, NTLM and
Basic; the SOAP layer never sees it."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.ews.store import Account, Store

log = logging.getLogger(__name__)
REALM = "mail.contoso.example"
DOMAIN = "CONTOSO"


def challenge(extra: str | None = None) -> web.Response:
    resp = web.Response(status=401, text="401 - Unauthorized: Access is denied due to invalid credentials.")
    if extra is not None:
        resp.headers.add("WWW-Authenticate", extra)
    else:
        resp.headers.add("WWW-Authenticate", "Negotiate")
        resp.headers.add("WWW-Authenticate", "NTLM")
        resp.headers.add("WWW-Authenticate", f'Basic realm="{REALM}"')
    return resp


class NtlmAcceptor:
    """Per-connection NTLM contexts. The credential file (DOMAIN:user:password per line) is what
    pyspnego's acceptor reads through NTLM_USER_FILE; it is rewritten when accounts change."""

    def __init__(self, store: Store, directory: Path | None = None) -> None:
        self.store = store
        self.dir = directory or Path(tempfile.mkdtemp(prefix="ews-ntlm-"))
        self.file = self.dir / "ntlm-users"
        self.contexts: dict[int, Any] = {}
        self.authenticated: dict[int, str] = {}
        self.write()

    def write(self) -> None:
        lines = []
        for acct in self.store.accounts.values():
            user = acct.username.split("\\")[-1]
            lines.append(f"{DOMAIN}:{user}:{acct.password}")
            if "@" in user:
                lines.append(f"{DOMAIN}:{user.split('@')[0]}:{acct.password}")
        self.file.write_text("\n".join(lines) + "\n")
        os.environ["NTLM_USER_FILE"] = str(self.file)

    def step(self, conn: int, token_b64: str) -> tuple[str | None, str | None]:
        """(username once complete, a challenge token to send back)."""
        import spnego

        try:
            token = base64.b64decode(token_b64)
        except binascii.Error:
            return None, None
        ctx = self.contexts.get(conn)
        if ctx is None or token[8:12] == b"\x01\x00\x00\x00":  # a new NEGOTIATE message restarts
            self.write()
            ctx = spnego.server(protocol="ntlm")
            self.contexts[conn] = ctx
        try:
            out = ctx.step(token)
        except Exception as exc:  # a wrong password fails the AUTHENTICATE step
            log.info("NTLM authentication failed: %s", type(exc).__name__)
            self.contexts.pop(conn, None)
            return None, None
        if ctx.complete:
            self.contexts.pop(conn, None)
            user = str(ctx.client_principal or "").split("\\")[-1]
            self.authenticated[conn] = user
            return user, None
        return None, base64.b64encode(out).decode() if out else None

    def forget(self, conn: int) -> None:
        self.contexts.pop(conn, None)
        self.authenticated.pop(conn, None)


def authenticate(request: web.Request, store: Store, ntlm: NtlmAcceptor) -> Account | web.Response:
    """The caller's account, or the 401 to answer with."""
    header = request.headers.get("Authorization", "")
    conn = id(request.transport)
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return challenge()
        acct = store.account(user)
        if acct is None or acct.password != password:
            return challenge()
        return acct
    if scheme.lower() in ("ntlm", "negotiate"):
        user, token = ntlm.step(conn, value.strip())
        if user is not None:
            acct = store.account(user)
            return acct if acct is not None else challenge()
        if token is not None:
            return challenge(f"{scheme} {token}")
        return challenge()
    if conn in ntlm.authenticated:  # NTLM authenticates the connection, not each request
        acct = store.account(ntlm.authenticated[conn])
        if acct is not None:
            return acct
    return challenge()
