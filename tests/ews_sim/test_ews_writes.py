"""shared/ews/writes.py: the outbound executors' Graph-shaped requests carried out over EWS."""

from __future__ import annotations

from tests.plugins.ews_sim import SERVICE_PASSWORD, SERVICE_USER, EwsSim


async def test_ews_writes_address_ids_that_end_in_a_slash() -> None:
    """Regression: a base64 EWS id may end in "/"; the Graph-shaped path must not lose it."""
    from shared.ews.writes import EwsWrites

    class Gateway:
        async def call(self, mailbox: str, fn: object, *, what: str) -> object:
            raise AssertionError("not reached")

    seen: dict[str, object] = {}

    async def handler(method: str, rest: list[str], **kw: object) -> object:
        seen["rest"] = rest
        from shared.graph.gateway import GraphResponse

        return GraphResponse(200, {}, b"{}")

    writes = EwsWrites(Gateway())  # type: ignore[arg-type]
    writes._events = handler  # type: ignore[method-assign]
    await writes.request("PATCH", "users/rep@contoso.example/events/AAMkAD+abc/", mailbox="rep@contoso.example",
                         body={})
    assert seen["rest"] == ["AAMkAD+abc/"]
    await writes.request("POST", "users/rep@contoso.example/events/AAMk/x/cancel", mailbox="rep@contoso.example")
    assert seen["rest"] == ["AAMk/x", "cancel"]


async def test_a_reply_draft_keeps_the_reply_ready_stamp(ews_sim: EwsSim) -> None:
    """The executors mark a reply draft that already holds the rep's text (PegaReplyReady) so a retry
    does not write it twice; over EWS the stamp must survive the PATCH and come back on GET."""
    from shared.config import EwsSettings
    from shared.ews.gateway import EwsGateway
    from shared.ews.writes import EwsWrites
    from shared.outbound.emails import REPLY_READY_PROPERTY

    upn = ews_sim.new_mailbox()
    gw = EwsGateway(EwsSettings(url=ews_sim.endpoint, username=SERVICE_USER, password=SERVICE_PASSWORD))
    try:
        writes = EwsWrites(gw)
        draft = (await writes.request("POST", f"users/{upn}/messages", mailbox=upn, body={
            "subject": "Draft", "body": {"contentType": "Text", "content": "x"}})).json()
        await writes.request("PATCH", f"users/{upn}/messages/{draft['id']}", mailbox=upn, body={
            "singleValueExtendedProperties": [{"id": REPLY_READY_PROPERTY, "value": "1"}]})
        got = await writes.get_json(f"users/{upn}/messages/{draft['id']}", mailbox=upn)
        assert {"id": REPLY_READY_PROPERTY, "value": "1"} in got["singleValueExtendedProperties"]
    finally:
        gw.close()


async def test_server_busy_while_every_session_is_out_does_not_wedge_the_gateway(ews_sim: EwsSim, monkeypatch) -> None:
    """Chaos seed 3: after a burst of ErrorServerBusy under concurrency, on-premises requests hung until
    their timeout. exchangelib's pool shrink took its own non-reentrant lock twice when every session
    was out with another request. Here the other requests are made deterministic: the moment the
    refused request gives its session back, they take every session in the pool."""
    from queue import Empty

    from shared.config import EwsSettings
    from shared.ews.errors import EwsThrottledError
    from shared.ews.gateway import EwsGateway

    mb = ews_sim.new_mailbox()
    gw = EwsGateway(EwsSettings(url=ews_sim.endpoint, username=SERVICE_USER, password=SERVICE_PASSWORD,
                                timeout_seconds=5))

    def inbox_subjects(account):
        return [m.subject for m in account.inbox.all().only("subject")[:5]]

    try:
        await gw.call(mb, inbox_subjects, what="find")
        proto = gw.account(mb).protocol
        while proto.session_pool_size < 2:  # two sessions: the pool may shrink by one
            proto.increase_poolsize()
        held: list = []
        real_release = proto.release_session

        def released_then_taken(session):
            real_release(session)
            while True:  # the other requests in flight take every free session
                try:
                    held.append(proto._session_pool.get(block=False))
                except Empty:
                    return

        monkeypatch.setattr(proto, "release_session", released_then_taken)
        ews_sim.control("POST", "faults", {"code": "ErrorServerBusy", "count": 1, "mailbox": mb,
                                           "backOffMilliseconds": 500})
        try:
            await gw.call(mb, inbox_subjects, what="find")
            raise AssertionError("the fault was not met")
        except EwsThrottledError as exc:  # refused at once with its back-off, not timed out
            assert exc.retry_after is not None
        finally:
            monkeypatch.undo()
            for session in held:  # the other requests finish
                proto.release_session(session)
        assert await gw.call(mb, inbox_subjects, what="find") == []  # and the next request goes through
    finally:
        gw.close()
