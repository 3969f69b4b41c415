"""Pure unit tests: privacy scrubbing, notice text, dry-run summaries, message redaction, CLI helpers."""

from __future__ import annotations

import datetime as dt
import json

from shared.admin.cli import _round_done, build_parser
from shared.ops.actions import summarize_plan
from shared.ops.deadletters import redact_message
from shared.ops.notices import FAILURE, RECOVERY, GraphNotifier, Notice
from shared.ops.privacy import mailbox_id, sanitize_error, scrub_attributes, scrub_text
from shared.ops.telemetry import _aad_client_id, dims
from shared.sync.planner import PlannedItem

T0 = dt.datetime(2026, 11, 22, 6, 0, tzinfo=dt.UTC)


def test_mailbox_id_is_stable_case_insensitive_and_opaque():
    a = mailbox_id("Alex@Contoso.example")
    assert a == mailbox_id("alex@contoso.example") == mailbox_id("alex%40contoso.example")
    assert a.startswith("mbx-") and len(a) == 20 and "alex" not in a
    assert a != mailbox_id("blair@contoso.example")


def test_scrub_text_removes_addresses_quoted_content_and_secrets():
    text = ("POST https://graph.microsoft.com/v1.0/users/alex@contoso.example/sendMail?code=abc123&x=1 failed: "
            "subject 'Salary review' from \"Dana\" Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig "
            "AccountKey=Zm9vYmFy; client_secret=hunter2")
    out = scrub_text(text)
    for secret in ("alex@contoso.example", "Salary review", "abc123", "eyJ", "Zm9vYmFy", "hunter2"):
        assert secret not in out, out
    assert mailbox_id("alex@contoso.example") in out and "code=<redacted>" in out
    assert sanitize_error("PegaError: 400 field 'Subject' value \"Quarterly numbers\" too long") == \
        "PegaError: 400 field '…' value '…' too long"


def test_scrub_attributes_drops_content_keys_and_keeps_numbers():
    out = scrub_attributes({"email.subject": "hi", "http.response.body.size": 10, "url.full": "https://h/u/a@b.co/x",
                            "http.request.header.authorization": ["Bearer x"], "messaging.message.body": "text",
                            "http.response.header.content-type": "application/json"})
    assert out == {"http.response.body.size": 10, "url.full": f"https://h/u/{mailbox_id('a@b.co')}/x",
                   "http.response.header.content-type": "application/json"}


def test_dims_use_the_pseudonym():
    assert dims(mailbox="alex@contoso.example", kind="email", direction="inbound", reason="private") == {
        "pes.mailbox": mailbox_id("alex@contoso.example"), "pes.kind": "email", "pes.direction": "inbound",
        "pes.reason": "private"}
    assert _aad_client_id("ClientId=1234-abcd;Authorization=AAD") == "1234-abcd"
    assert _aad_client_id("InstrumentationKey=x") is None


def test_failure_notice_states_what_since_error_and_what_to_do_without_content():
    n = Notice(FAILURE, "alex@contoso.example", "calendar", T0, "PegaError: 500 writing 'Board meeting' for "
               "dana@fabrikam.example", 30, T0 + dt.timedelta(minutes=31))
    assert n.subject == "Pega Exchange Sync: calendar sync is failing for alex@contoso.example"
    for must in ("alex@contoso.example", "calendar", "2026-11-22 06:00 UTC", "PegaError: 500", "What to do",
                 "30 minutes", "pes-admin deadletters replay --mailbox alex@contoso.example"):
        assert must in n.text, must
    assert "Board meeting" not in n.text and "dana@fabrikam.example" not in n.text
    r = Notice(RECOVERY, "alex@contoso.example", "calendar", None, "x", 30, T0, recovered_at=T0)
    assert "recovered" in r.subject and "recovered at 2026-11-22 06:00 UTC" in r.text


def test_notice_recipients_are_the_rep_and_the_admins_once():
    g = GraphNotifier(gateway=None, sender="sync@contoso.example", admin="ops@contoso.example; Alex@contoso.example")
    n = Notice(FAILURE, "alex@contoso.example", "email", T0, "", 30, T0)
    assert g.recipients(n) == ["alex@contoso.example", "ops@contoso.example"]


def test_dry_run_summary_counts_and_labels():
    plan = [PlannedItem("A1", "create", "new"), PlannedItem("A2", "update", "changed", ("Subject",)),
            PlannedItem("A3", "skip", "private"), PlannedItem("A4", "skip", "no_association"),
            PlannedItem("A5", "skip", "private"), PlannedItem("A6", "noop", "unchanged")]
    s = summarize_plan(plan, mailbox="alex@contoso.example", kind="email")
    assert s["counts"] == {"would_sync": 2, "excluded": 3, "unchanged": 1, "by_action": {"create": 1, "update": 1},
                           "excluded_by_reason": {"private": 2, "no_association": 1}}
    assert [i["reason_label"] for i in s["excluded"]] == ["private item", "no matching contact or account in Pega",
                                                          "private item"]


def test_redact_message_keeps_ids_and_hides_content():
    env = {"v": 1, "id": "e1", "type": "outbound.operation", "body": {"mailbox": "a@b.co", "operation_id": "op1",
                                                                      "payload": {"subject": "S", "body": "B"}}}
    out = redact_message(json.dumps(env))
    assert out["id"] == "e1" and out["body"]["operation_id"] == "op1" and out["body"]["mailbox"] == "a@b.co"
    assert out["body"]["payload"]["subject"].startswith("<redacted") and out["body"]["payload"]["body"].startswith(
        "<redacted")
    assert redact_message("not json") == {"unparsed": "<8 characters, not JSON>"}


def test_progress_completion_rules():
    row = {"kind": "email", "state": "ok", "consecutive_failures": 0, "last_error": "",
           "last_success_at": (T0 + dt.timedelta(seconds=5)).isoformat(),
           "backlog": {"round_pending_since": None, "round_in_progress": False}}
    assert _round_done(row, {"email": "pending", "email:inbox": "done", "email:sentitems": "done"}, None)[0]
    done, detail = _round_done(row, {"email:inbox": "in_progress:3", "email:sentitems": "done"}, None)
    assert not done and "3 pages" in detail
    assert _round_done(row, {}, T0)[0]
    assert not _round_done({**row, "backlog": {"round_pending_since": "x", "round_in_progress": False}}, {}, T0)[0]
    assert not _round_done(row, {}, T0 + dt.timedelta(minutes=1))[0]


def test_parser_knows_every_command():
    p = build_parser()
    for argv in (["status"], ["health", "a@b.co"], ["onboard", "a@b.co", "--operator", "x", "--wait"],
                 ["offboard", "a@b.co"], ["dry-run", "a@b.co", "--kind", "email"],
                 ["resync", "a@b.co", "--kind", "contacts", "--wait"], ["deadletters", "list"],
                 ["deadletters", "show", "q", "i"], ["deadletters", "replay", "--all"], ["pseudonym", "a@b.co"]):
        assert p.parse_args(argv).command == argv[0]


def test_cli_runs_as_a_program():
    import subprocess
    import sys

    from sandbox.proc import ROOT

    proc = subprocess.run([sys.executable, "-m", "shared.admin.cli", "pseudonym", "Alex@contoso.example"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == mailbox_id("alex@contoso.example")
    proc = subprocess.run([sys.executable, "-m", "shared.admin.cli", "status"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "PES_ADMIN_URL" in proc.stdout
