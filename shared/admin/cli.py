"""`pes-admin`: the operator's console for Pega Exchange Sync.

Two ways to reach the service, same commands and same output:
- over the HTTP admin API (`--url https://<app>.azurewebsites.net/api --key <admin/master key>`, or
  PES_ADMIN_URL / PES_ADMIN_KEY): what an operator uses against a deployed app;
- `--direct`: the same shared/ functions against the storage account (and Graph/Pega for a dry
  run) with the app's settings from the environment (AzureWebJobsStorage, GRAPH_*, PEGA_*, SYNC_*):
  for the sandbox, or when the app is down.
Without --direct the API is used when a URL is given; otherwise direct mode.

Commands: status, health UPN, onboard UPN --operator OP [--wait], offboard UPN,
dry-run UPN --kind K, resync UPN --kind K [--wait], deadletters list|show|replay, pseudonym UPN,
doctor [--no-probe] (the readiness checklist, shared.admin.doctor; exit 1 when anything FAILs).
`--json` prints the raw JSON answer instead of tables. Long operations (--wait on onboard and
resync) show a progress bar fed by polling the mailbox's backfill and health state.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote, unquote

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

KINDS = ("email", "calendar", "contacts")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class Backend(Protocol):
    async def call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                   body: Any = None) -> tuple[int, Any]: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------- backends


class HttpBackend:
    """The admin HTTP API; `path` is relative to the /api root."""

    def __init__(self, url: str, key: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self._session: Any = None

    async def call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                   body: Any = None) -> tuple[int, Any]:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        async with self._session.request(method, f"{self.url}/{path}", params=dict(params or {}),
                                         headers={"x-functions-key": self.key},
                                         data=json.dumps(body) if body is not None else None) as resp:
            text = await resp.text()
            try:
                doc = json.loads(text) if text else None
            except ValueError:
                doc = {"error": text[:500]}
            return resp.status, doc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class DirectBackend:
    """The same operations through shared/ code, answering like the HTTP API would."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self._services: Any = None

    async def services(self) -> Any:
        if self._services is None:
            from shared.config import load_settings
            from shared.queues.sender import QueueSender
            from shared.runtime import Services
            from shared.storage.state import StateStore

            settings = load_settings(self.environ)
            self._services = Services(settings=settings, state=await StateStore.open(settings.storage),
                                      queues=QueueSender.from_settings(settings.storage))
        return self._services

    async def call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                   body: Any = None) -> tuple[int, Any]:
        from shared.admin import mailboxes as admin_mb
        from shared.errors import InvalidMessageError
        from shared.ops import actions, deadletters, health

        svc = await self.services()
        params = dict(params or {})
        parts = [unquote(x) for x in path.strip("/").split("/")]
        try:
            if parts == ["admin", "doctor"]:
                from shared.admin.doctor import run_doctor

                return 200, (await run_doctor(svc, probe=params.get("probe") != "0")).as_dict()
            if parts == ["admin", "health"]:
                return 200, await health.tenant_health(svc)
            if parts[:2] == ["admin", "mailboxes"] and len(parts) == 3:
                upn = parts[2]
                if method == "PUT":
                    mailbox, created = await admin_mb.onboard(svc, upn, admin_mb.parse_request(
                        json.dumps(body or {}).encode()))
                    return (201 if created else 200), await admin_mb.describe(svc, mailbox.upn)
                if method == "DELETE":
                    return (204 if await admin_mb.offboard(svc, upn) else 404), None
                found = await admin_mb.describe(svc, upn)
                return (200, found) if found else (404, {"error": "mailbox is not onboarded"})
            if parts[:2] == ["admin", "mailboxes"] and len(parts) == 4:
                upn, what = parts[2], parts[3]
                if what == "health":
                    found = await health.mailbox_health(svc, admin_mb.validate_upn(upn))
                    return (200, found) if found else (404, {"error": "mailbox is not onboarded"})
                if what == "dryrun":
                    return 200, await actions.dry_run(svc, upn, params.get("kind", ""),
                                                      max_pages=actions.parse_max_pages(params.get("max_pages")))
                if what == "resync":
                    return 202, await actions.resync(svc, upn, str((body or {}).get("kind", "")))
            if parts == ["admin", "deadletters"]:
                letters = await deadletters.list_letters(svc, queue=params.get("queue") or None,
                                                         mailbox=params.get("mailbox") or None,
                                                         include_replayed=params.get("include_replayed") == "1")
                return 200, {"count": len(letters), "deadletters": [v.as_dict() for v in letters]}
            if parts == ["admin", "deadletters", "replay"]:
                b = body or {}
                report = await deadletters.replay(svc, queue=b.get("queue") or None, message_id=b.get("id") or None,
                                                  mailbox=b.get("mailbox") or None, all_letters=b.get("all") is True)
                return 200, report.as_dict()
            if parts[:2] == ["admin", "deadletters"] and len(parts) == 4:
                found = await deadletters.inspect(svc, parts[2], parts[3])
                return (200, found) if found else (404, {"error": "no such dead letter"})
        except InvalidMessageError as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": f"unknown operation {method} {path}"}

    async def close(self) -> None:
        if self._services is not None:
            from shared.sync.context import close_sync_context

            await close_sync_context()  # the dry run's Graph/Pega clients, if one ran
            await self._services.close()


# ---------------------------------------------------------------- output helpers


def _ago(iso: str | None, now: dt.datetime) -> str:
    if not iso:
        return "never"
    secs = int((now - dt.datetime.fromisoformat(iso)).total_seconds())
    if secs < 120:
        return f"{secs}s ago"
    if secs < 7200:
        return f"{secs // 60}m ago"
    if secs < 172800:
        return f"{secs // 3600}h ago"
    return f"{secs // 86400}d ago"


STATE_STYLE = {"ok": "green", "degraded": "yellow", "failing": "yellow", "incident": "bold red", "never": "dim", "disabled": "dim"}


def _state(s: str) -> str:
    return f"[{STATE_STYLE.get(s, 'white')}]{s}[/]"


def _expect(status: int, doc: Any, ok: Sequence[int] = (200,)) -> Any:
    if status in ok:
        return doc
    reason = (doc or {}).get("error") if isinstance(doc, dict) else None
    if status == 404:
        raise CliError(reason or "not found", EXIT_NOT_FOUND)
    if status == 400:
        raise CliError(reason or "bad request", EXIT_USAGE)
    if status == 401:
        raise CliError("unauthorized: check --key / PES_ADMIN_KEY (the admin/master key)", EXIT_USAGE)
    raise CliError(f"the service answered {status}: {reason or doc}")


# ---------------------------------------------------------------- commands


class Cli:
    def __init__(self, backend: Backend, console: Console, *, as_json: bool) -> None:
        self.b = backend
        self.out = console
        self.as_json = as_json

    def dump(self, doc: Any) -> None:
        self.out.print_json(json.dumps(doc, default=str))

    async def status(self, args: argparse.Namespace) -> int:
        doc = _expect(*await self.b.call("GET", "admin/health"))
        if self.as_json:
            self.dump(doc)
            return EXIT_OK
        now = dt.datetime.fromisoformat(doc["generated_at"])
        t = Table(title=f"Mailboxes ({doc['mailboxes']['active']} active, {doc['mailboxes']['offboarded']} offboarded)")
        for col in ("Mailbox", "Status", *[k.capitalize() for k in KINDS], "Synced", "Skipped", "Failed",
                    "Throttled", "Dead letters", "Incident"):
            t.add_column(col)
        for row in doc["mailbox_rows"]:
            kinds = row["kinds"]
            cells = []
            for k in KINDS:
                r = kinds.get(k) or {"state": "never", "last_success_at": None}
                cells.append(f"{_state(r['state'])} {_ago(r['last_success_at'], now)}")
            total = {f: sum(int(r.get(f, 0)) for r in kinds.values())
                     for f in ("synced", "skipped", "failed", "throttled", "dead_letters")}
            t.add_row(row["upn"], row["status"], *cells, str(total["synced"]), str(total["skipped"]),
                      str(total["failed"]), str(total["throttled"]), str(total["dead_letters"]),
                      "[bold red]OPEN[/]" if row["incident_open"] else "-")
        self.out.print(t)
        q = ", ".join(f"{k}={v}" for k, v in doc["queues"].items() if v)
        self.out.print(f"Queues: {q or 'empty'}  Dead letters: {doc['dead_letters']['total']}  "
                       f"Subscriptions: {doc['subscriptions']['active']} active, "
                       f"{doc['subscriptions']['expiring_within_24h']} expiring within 24h, "
                       f"{doc['subscriptions']['failed']} failed  Open incidents: {len(doc['incidents_open'])}")
        return EXIT_OK

    async def doctor(self, args: argparse.Namespace) -> int:
        doc = _expect(*await self.b.call("GET", "admin/doctor", params={"probe": "0" if args.no_probe else "1"}))
        if self.as_json:
            self.dump(doc)
            return EXIT_OK if doc.get("ok") else EXIT_FAILED
        t = Table(title="Readiness (pes-admin doctor)")
        for col in ("", "Area", "Check", "Detail", "Fix"):
            t.add_column(col, overflow="fold")
        style = {"PASS": "[green]PASS[/]", "FAIL": "[bold red]FAIL[/]", "SKIP": "[dim]SKIP[/]"}
        for c in doc.get("checks", []):
            t.add_row(style.get(c["status"], c["status"]), c["area"], c["name"], c.get("detail", ""), c.get("fix", ""))
        self.out.print(t)
        failed = int(doc.get("failed", 0))
        self.out.print("[green]ready[/]" if doc.get("ok") else f"[bold red]{failed} check(s) failed[/]: apply each fix")
        return EXIT_OK if doc.get("ok") else EXIT_FAILED

    async def health(self, args: argparse.Namespace) -> int:
        doc = _expect(*await self.b.call("GET", f"admin/mailboxes/{quote(args.upn)}/health"))
        if self.as_json:
            self.dump(doc)
            return EXIT_OK
        now = dt.datetime.fromisoformat(doc["generated_at"])
        self.out.print(f"[bold]{doc['upn']}[/] (Pega operator {doc['pega_operator']}, {doc['status']})")
        t = Table(title="Health per kind")
        for col in ("Kind", "State", "Last success", "Lag", "Synced", "Skipped (reasons)", "Failed", "Throttled",
                    "Backlog", "Subscriptions", "Incident", "Last error"):
            t.add_column(col, overflow="fold")
        for r in doc["kinds"]:
            reasons = ", ".join(f"{k}={v}" for k, v in r["skip_reasons"].items())
            bl = r["backlog"]
            backlog = ", ".join(x for x in (
                f"backfill {bl['backfill']}" if bl.get("backfill") else "",
                "round pending" if bl["round_pending_since"] else "",
                "round in progress" if bl["round_in_progress"] else "",
                f"{bl['dead_letters']} dead letters" if bl["dead_letters"] else "") if x) or "-"
            subs = "; ".join(f"{s['status']} until {s['expires_at'][:16]}" for s in r.get("subscriptions", [])) or "-"
            lag = f"{r['lag_seconds']}s" if r["lag_seconds"] is not None else "-"
            incident = (f"[bold red]OPEN[/] since {(r['failing_since'] or '')[:16]}" if r["incident"]["open"] else "-")
            t.add_row(r["kind"], _state(r["state"]), _ago(r["last_success_at"], now), lag, str(r["synced"]),
                      f"{r['skipped']} ({reasons})" if reasons else str(r["skipped"]), str(r["failed"]),
                      str(r["throttled"]), backlog, subs, incident, r["last_error"] or "-")
        self.out.print(t)
        return EXIT_OK

    async def onboard(self, args: argparse.Namespace) -> int:
        body: dict[str, Any] = {"pega_operator": args.operator}
        for k in KINDS:
            if getattr(args, f"no_{k}"):
                body[f"{k}_enabled"] = False
        if args.private_policy:
            body["private_policy"] = args.private_policy
        if args.past_days is not None:
            body["past_days"] = args.past_days
        status, doc = await self.b.call("PUT", f"admin/mailboxes/{quote(args.upn)}", body=body)
        doc = _expect(status, doc, ok=(200, 201))
        if self.as_json:
            self.dump(doc)
        else:
            self.out.print(f"{'Onboarded' if status == 201 else 'Updated'} {doc['upn']} "
                           f"(backfill: {', '.join(f'{k} {v}' for k, v in doc['backfill'].items()) or 'none'})")
        if args.wait:
            return await self._wait(args.upn, kinds=[k for k in KINDS if k in _base_kinds(doc["backfill"])],
                                    since=None, limit_seconds=args.timeout)
        return EXIT_OK

    async def offboard(self, args: argparse.Namespace) -> int:
        status, doc = await self.b.call("DELETE", f"admin/mailboxes/{quote(args.upn)}")
        _expect(status, doc, ok=(204,))
        self.out.print(f"Offboarded {args.upn} (subscriptions removed; nothing is deleted in Pega)")
        return EXIT_OK

    async def dry_run(self, args: argparse.Namespace) -> int:
        doc = _expect(*await self.b.call("GET", f"admin/mailboxes/{quote(args.upn)}/dryrun",
                                         params={"kind": args.kind, "max_pages": str(args.max_pages)}))
        if self.as_json:
            self.dump(doc)
            return EXIT_OK
        c = doc["counts"]
        self.out.print(f"[bold]Dry run[/] {doc['mailbox']} / {doc['kind']}: these {c['would_sync']} items would sync; "
                       f"these {c['excluded']} are excluded; {c['unchanged']} unchanged.")
        if c["excluded_by_reason"]:
            self.out.print("Excluded by reason: " + ", ".join(f"{k}={v}" for k, v in c["excluded_by_reason"].items()))
        limit = None if args.all_items else 50
        for title, items in (("Would sync", doc["would_sync"]), ("Excluded", doc["excluded"])):
            t = Table(title=f"{title} ({len(items)})")
            t.add_column("Item id", overflow="fold")
            t.add_column("Action")
            t.add_column("Reason")
            for it in items[:limit]:
                t.add_row(it["id"], it["action"], it["reason_label"] if title == "Excluded"
                          else (it["reason"] + (f" ({', '.join(it['fields'])})" if it["fields"] else "")))
            if items:
                self.out.print(t)
            if limit is not None and len(items) > limit:
                self.out.print(f"… {len(items) - limit} more (--all-items to list every one)")
        return EXIT_OK

    async def resync(self, args: argparse.Namespace) -> int:
        doc = _expect(*await self.b.call("POST", f"admin/mailboxes/{quote(args.upn)}/resync",
                                         body={"kind": args.kind}), ok=(202,))
        if self.as_json:
            self.dump(doc)
        else:
            self.out.print(f"Full resync of {doc['kind']} requested for {doc['mailbox']}")
        if args.wait:
            return await self._wait(args.upn, kinds=[args.kind], since=dt.datetime.fromisoformat(doc["requested_at"]),
                                    limit_seconds=args.timeout)
        return EXIT_OK

    async def _wait(self, upn: str, *, kinds: list[str], since: dt.datetime | None, limit_seconds: float) -> int:
        """Poll the mailbox's backfill and health until each kind's round is done (or times out)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_seconds
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=self.out,
                      transient=False) as progress:
            tasks = {k: progress.add_task(k, total=None, detail="waiting") for k in kinds}
            base_synced: dict[str, int] = {}
            while True:
                doc = _expect(*await self.b.call("GET", f"admin/mailboxes/{quote(upn)}/health"))
                done_all = True
                for r in doc["kinds"]:
                    k = r["kind"]
                    if k not in tasks:
                        continue
                    base_synced.setdefault(k, int(r["synced"]))
                    done, detail = _round_done(r, doc["backfill"], since)
                    synced = int(r["synced"]) - base_synced[k]
                    progress.update(tasks[k], detail=f"{detail}, {synced} synced",
                                    total=1 if done else None, completed=1 if done else 0)
                    done_all &= done
                if done_all:
                    return EXIT_OK
                if loop.time() > deadline:
                    self.out.print("[yellow]still running; check again with `pes-admin health`[/]")
                    return EXIT_FAILED
                await asyncio.sleep(1.0)

    async def deadletters(self, args: argparse.Namespace) -> int:
        if args.dl_command == "list":
            params = {k: v for k, v in (("queue", args.queue), ("mailbox", args.mailbox)) if v}
            if args.include_replayed:
                params["include_replayed"] = "1"
            doc = _expect(*await self.b.call("GET", "admin/deadletters", params=params))
            if self.as_json:
                self.dump(doc)
                return EXIT_OK
            t = Table(title=f"Dead letters ({doc['count']})")
            for col in ("Queue", "Id", "Type", "Mailbox", "Kind", "Dead since", "Tries", "Replayed", "Cause"):
                t.add_column(col, overflow="fold")
            for d in doc["deadletters"]:
                t.add_row(d["queue"], d["id"], d["type"], d["mailbox"] or "-", d["kind"] or "-",
                          (d["dead_at"] or "")[:19], str(d["attempts"]), (d["replayed_at"] or "-")[:19], d["cause"])
            self.out.print(t)
            return EXIT_OK
        if args.dl_command == "show":
            doc = _expect(*await self.b.call("GET", f"admin/deadletters/{quote(args.queue)}/{quote(args.id)}"))
            self.dump(doc)
            return EXIT_OK
        body: dict[str, Any]
        if args.id:
            if not args.queue:
                raise CliError("--id needs --queue", EXIT_USAGE)
            body = {"queue": args.queue, "id": args.id}
        elif args.mailbox:
            body = {"mailbox": args.mailbox, **({"queue": args.queue} if args.queue else {})}
        elif args.all:
            body = {"all": True, **({"queue": args.queue} if args.queue else {})}
        else:
            raise CliError("say what to replay: --queue Q --id ID, --mailbox UPN or --all", EXIT_USAGE)
        doc = _expect(*await self.b.call("POST", "admin/deadletters/replay", body=body))
        if self.as_json:
            self.dump(doc)
        else:
            c = doc["counts"]
            self.out.print(f"Replayed {c['replayed']}, skipped {c['skipped']}, failed {c['failed']}")
            for s in doc["skipped"] + doc["failed"]:
                self.out.print(f"  {s['queue']}/{s['id']}: {s['reason']}")
        return EXIT_OK if not doc["failed"] else EXIT_FAILED


def _base_kinds(backfill: Mapping[str, str]) -> set[str]:
    return {k.split(":", 1)[0] for k in backfill}


def _round_done(row: Mapping[str, Any], backfill: Mapping[str, str], since: dt.datetime | None) -> tuple[bool, str]:
    """Whether the kind's backfill (since=None) or resync (since=request time) has finished."""
    k = row["kind"]
    bl = row["backlog"]
    if row["state"] in ("incident", "failing") and row["consecutive_failures"]:
        detail = f"failing: {row['last_error'][:60]}"
    else:
        detail = "round pending" if bl["round_pending_since"] else ("running" if bl["round_in_progress"] else "idle")
    if since is None:
        states = {key: v for key, v in backfill.items() if key.startswith(f"{k}:")} or (
            {k: backfill[k]} if k in backfill else {})
        if not states:
            return True, "no backfill"
        pages = sum(int(v.split(":", 1)[1]) for v in states.values() if v.startswith("in_progress:")
                    and v.split(":", 1)[1].isdigit())
        done = all(v == "done" for v in states.values())
        return done, "backfill done" if done else f"backfill {pages} pages, {detail}"
    last = dt.datetime.fromisoformat(row["last_success_at"]) if row["last_success_at"] else None
    done = bool(last and last >= since and not bl["round_pending_since"] and not bl["round_in_progress"])
    return done, "resync done" if done else detail


# ---------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pes-admin", description="Operate Pega Exchange Sync (health, mailboxes, "
                                "dry runs, resyncs, dead letters).")
    p.add_argument("--url", help="admin API root, e.g. https://app.azurewebsites.net/api (env PES_ADMIN_URL)")
    p.add_argument("--key", help="admin (master) key for the API (env PES_ADMIN_KEY)")
    p.add_argument("--direct", action="store_true", help="use shared/ code against storage with the app settings "
                   "from the environment instead of the HTTP API")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="status table of all mailboxes")
    h = sub.add_parser("health", help="one mailbox's health per kind")
    h.add_argument("upn")
    o = sub.add_parser("onboard", help="onboard (or update) a mailbox")
    o.add_argument("upn")
    o.add_argument("--operator", required=True, help="Pega operator id of the rep")
    for k in KINDS:
        o.add_argument(f"--no-{k}", action="store_true", help=f"do not sync {k}")
    o.add_argument("--private-policy", choices=("skip", "mask", "full"))
    o.add_argument("--past-days", type=int)
    o.add_argument("--wait", action="store_true", help="show backfill progress until it is done")
    o.add_argument("--timeout", type=float, default=3600.0)
    f = sub.add_parser("offboard", help="stop syncing a mailbox (nothing is deleted in Pega)")
    f.add_argument("upn")
    d = sub.add_parser("dry-run", help="what the next round would sync and what is excluded, with reasons")
    d.add_argument("upn")
    d.add_argument("--kind", required=True, choices=KINDS)
    d.add_argument("--all-items", action="store_true", help="list every item (default: first 50 per table)")
    d.add_argument("--max-pages", type=int, default=50, help="read at most this many delta pages per folder")
    r = sub.add_parser("resync", help="full resync of one kind")
    r.add_argument("upn")
    r.add_argument("--kind", required=True, choices=KINDS)
    r.add_argument("--wait", action="store_true", help="show progress until the resync round is done")
    r.add_argument("--timeout", type=float, default=3600.0)
    dl = sub.add_parser("deadletters", help="list, show or replay dead letters")
    dls = dl.add_subparsers(dest="dl_command", required=True)
    ls = dls.add_parser("list")
    ls.add_argument("--queue")
    ls.add_argument("--mailbox")
    ls.add_argument("--include-replayed", action="store_true")
    sh = dls.add_parser("show")
    sh.add_argument("queue")
    sh.add_argument("id")
    rp = dls.add_parser("replay", help="replay one (--queue --id), a mailbox's (--mailbox) or all (--all)")
    rp.add_argument("--queue")
    rp.add_argument("--id")
    rp.add_argument("--mailbox")
    rp.add_argument("--all", action="store_true")
    dr = sub.add_parser("doctor", help="readiness checklist: Graph, notification URL, storage, Pega (PASS/FAIL + fix)")
    dr.add_argument("--no-probe", action="store_true", help="do not write Pega probe records (skips field round-trips)")
    ps = sub.add_parser("pseudonym", help="the telemetry id of a mailbox (find it in Application Insights)")
    ps.add_argument("upn")
    return p


def make_backend(args: argparse.Namespace, environ: Mapping[str, str]) -> Backend:
    url = args.url or environ.get("PES_ADMIN_URL", "")
    if url and not args.direct:
        key = args.key or environ.get("PES_ADMIN_KEY", "")
        if not key:
            raise CliError("the HTTP API needs the admin key: --key or PES_ADMIN_KEY", EXIT_USAGE)
        return HttpBackend(url, key)
    if not (environ.get("AzureWebJobsStorage") or environ.get("AzureWebJobsStorage__tableServiceUri")):
        raise CliError("give --url/--key (PES_ADMIN_URL/PES_ADMIN_KEY) for the HTTP API, or set the app settings "
                       "(AzureWebJobsStorage, ...) for --direct", EXIT_USAGE)
    return DirectBackend(environ)


async def run(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None,
              console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    out = console or Console(width=None if sys.stdout.isatty() else 200)
    if args.command == "pseudonym":
        from shared.ops.privacy import mailbox_id

        out.print(mailbox_id(args.upn))
        return EXIT_OK
    try:
        backend = make_backend(args, env)
    except CliError as exc:
        out.print(f"[red]error:[/] {exc}")
        return exc.code
    cli = Cli(backend, out, as_json=args.json)
    handler = {"status": cli.status, "health": cli.health, "onboard": cli.onboard, "offboard": cli.offboard,
               "dry-run": cli.dry_run, "resync": cli.resync, "deadletters": cli.deadletters,
               "doctor": cli.doctor}[args.command]
    try:
        return await handler(args)
    except CliError as exc:
        out.print(f"[red]error:[/] {exc}")
        return exc.code
    finally:
        await backend.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point (`pes-admin`; the generated wrapper exits with the returned code).

    The one place the CLI reads the process environment (PES_ADMIN_URL/KEY, or the app settings
    for --direct): it is a process entry point, like load_settings() for the app.
    """
    return asyncio.run(run(argv))


if __name__ == "__main__":
    sys.exit(main())
