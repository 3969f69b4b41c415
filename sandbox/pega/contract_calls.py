"""Turn a change in the simulator into the call a configured Pega makes to our HTTP contract.

This plays the part of a Pega implementation's Connect-REST wiring: appointment create/update/
cancel, outbound email send/reply/reply-all, contact create/update/close. Bodies follow
openapi.yaml (operation ids and paths come from :mod:`shared.contract`), and only fields that
changed are sent on update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.pega.store import Change, Store, iso
from shared.contract import build_path, operation
from shared.pega.convert import get_path, parse_datetime


@dataclass(frozen=True)
class ContractCall:
    operation_id: str
    method: str
    path: str  # URL-encoded, relative to the service base URL
    body: dict[str, Any]
    record_id: str


def _local(value: Any, tz_name: str) -> dict[str, str] | None:
    when = parse_datetime(value)
    if when is None:
        return None
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone, tz_name = ZoneInfo("UTC"), "UTC"
    return {"dateTime": when.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": tz_name}


def _addresses(text: Any) -> list[dict[str, str]]:
    return [{"email": a.strip()} for a in str(text or "").split(";") if a.strip()]


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {} and v != []}


class CallBuilder:
    """Builds the contract calls for one change, given the simulator's store (operators, mapping)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.m = store.mapping

    def _who(self, change: Change, operator_prop: str) -> dict[str, str] | None:
        operator = str(change.after.get(operator_prop) or change.actor.operator)
        op = self.store.operators.get(operator)
        if op is None:
            return None
        return {"operator": op.operator_id, "mailbox": op.email}

    @staticmethod
    def _links(content: dict[str, Any], fields: Any) -> dict[str, str] | None:
        """contact/organization/lead/opportunity ids the record points at (fields the mapping has)."""
        names = {"contactId": "contact_id", "organizationId": "organization_id", "leadId": "lead_id",
                 "opportunityId": "opportunity_id"}
        links = {key: str(content[getattr(fields, attr)]) for key, attr in names.items()
                 if hasattr(fields, attr) and content.get(getattr(fields, attr))}
        return links or None

    def calls_for(self, change: Change) -> list[ContractCall]:
        kind = change.kind
        if kind == "appointment":
            return self._appointment(change)
        if kind == "email":
            return self._email(change)
        if kind == "contact":
            return self._contact(change)
        return []

    # ----------------------------------------------------------------- appointments

    def _appointment_fields(self, c: dict[str, Any]) -> dict[str, Any]:
        f = self.m.appointment
        a = self.m.attendee
        tz = str(c.get(f.time_zone) or "UTC")
        attendees = None
        if isinstance(c.get(f.attendees), list):
            attendees = [_drop_none({"email": r.get(a.email), "name": r.get(a.name),
                                     "type": (str(r.get(a.type)).lower() if r.get(a.type) else None)})
                         for r in c[f.attendees] if isinstance(r, dict) and r.get(a.email)]
        body = None
        if c.get(f.body) is not None:
            body = {"contentType": str(c.get(f.body_type) or "text").lower(), "content": str(c[f.body])}
        return {
            "subject": c.get(f.subject),
            "start": _local(c.get(f.start), tz),
            "end": _local(c.get(f.end), tz),
            "isAllDay": c.get(f.is_all_day),
            "location": c.get(f.location),
            "body": body,
            "attendees": attendees,
            "recurrence": c.get(f.recurrence),
            "sensitivity": (str(c[f.sensitivity]).lower() if c.get(f.sensitivity) else None),
            "showAs": c.get(f.show_as),
            "reminderMinutesBeforeStart": c.get(f.reminder_minutes),
            "links": self._links(c, f),
        }

    def _appointment(self, change: Change) -> list[ContractCall]:
        f = self.m.appointment
        who = self._who(change, f.operator)
        if who is None:
            return []
        rec = change.record
        changed_at = iso(rec.updated_at)
        cancelled = self.m.status.appointment_cancelled
        if change.before is None:
            body = _drop_none({"pegaId": rec.id, **who, **self._appointment_fields(change.after), "changedAt": changed_at})
            return [self._call("createAppointment", body, rec.id, pegaId=rec.id)]
        if change.after.get(f.status) == cancelled and change.before.get(f.status) != cancelled:
            comment = change.after.get(f.body) if change.after.get(f.body) != change.before.get(f.body) else None
            body = _drop_none({**who, "comment": comment, "changedAt": changed_at})
            return [self._call("cancelAppointment", body, rec.id, pegaId=rec.id)]
        old, new = self._appointment_fields(change.before), self._appointment_fields(change.after)
        diff = {k: v for k, v in new.items() if v != old.get(k)}
        if "recurrence" in diff and diff["recurrence"] is None:
            diff["recurrence"] = None  # removed: sent as null
        diff = {k: v for k, v in diff.items() if v is not None or k == "recurrence"}
        if not diff:
            return []
        return [self._call("updateAppointment", {**who, **diff, "changedAt": changed_at}, rec.id, pegaId=rec.id)]

    # ----------------------------------------------------------------- emails

    def _email(self, change: Change) -> list[ContractCall]:
        f = self.m.email
        c = change.after
        if change.before is not None or str(c.get(f.direction) or "") != self.m.status.email_outbound:
            return []  # only a new outbound email is sent; inbound ones came from Exchange
        who = self._who(change, f.operator)
        if who is None:
            return []
        rec = change.record
        body_type = str(c.get(f.body_type) or "text").lower()
        common = _drop_none({
            "pegaId": rec.id, **who,
            "subject": c.get(f.subject),
            "body": {"contentType": body_type, "content": str(c.get(f.body) or "")},
            "attachments": c.get(f.attachments) or None,
            "links": self._links(c, f),
            "changedAt": iso(rec.updated_at),
        })
        reply_to = c.get(f.reply_to_id)
        reply_type = str(c.get(f.reply_type) or "").lower().replace("-", "").replace("_", "")
        if reply_to:
            original = self.store.get(str(reply_to))
            extra = _drop_none({"to": _addresses(c.get(f.to)) or None, "cc": _addresses(c.get(f.cc)) or None,
                                "originalExchangeId": original.content.get(f.external_id) if original else None})
            op_id = "replyAllToEmail" if reply_type == "replyall" else "replyToEmail"
            return [self._call(op_id, {**common, **extra}, rec.id, originalPegaId=str(reply_to))]
        body = {**common, **_drop_none({"to": _addresses(c.get(f.to)), "cc": _addresses(c.get(f.cc)) or None,
                                        "bcc": _addresses(c.get(f.bcc)) or None,
                                        "importance": (str(c[f.importance]).lower() if c.get(f.importance) else None)})}
        return [self._call("sendEmail", body, rec.id)]

    # ----------------------------------------------------------------- contacts

    def _contact_fields(self, c: dict[str, Any]) -> dict[str, Any]:
        f = self.m.contact
        c = {name: get_path(c, prop) for name, prop in f.model_dump().items() if prop}  # dotted: embedded pages
        address = _drop_none({"street": c.get("street"), "city": c.get("city"), "state": c.get("state"),
                              "postalCode": c.get("postal_code"), "countryOrRegion": c.get("country")})
        photo = c.get("photo")
        first, last = c.get("first_name"), c.get("last_name")
        return {
            "givenName": first, "surname": last,
            "displayName": " ".join(str(x) for x in (first, last) if x) or None,
            "emailAddresses": [_drop_none({"email": c["email"], "name": " ".join(str(x) for x in (first, last) if x)
                                           or None})] if c.get("email") else None,
            "businessPhones": [c["business_phone"]] if c.get("business_phone") else None,
            "mobilePhone": c.get("mobile_phone"), "jobTitle": c.get("job_title"),
            "companyName": c.get("company_name"), "department": c.get("department"),
            "businessAddress": address or None, "personalNotes": c.get("notes"),
            "photo": {"contentType": "image/jpeg", "contentBytes": photo} if photo else None,
            "links": _drop_none({"organizationId": c.get("organization_id")}) or None,
        }

    def _contact(self, change: Change) -> list[ContractCall]:
        f = self.m.contact
        who = self._who(change, f.operator)
        if who is None:
            return []
        rec = change.record
        changed_at = iso(rec.updated_at)
        closed = self.m.status.contact_closed
        if change.before is None:
            body = _drop_none({"pegaId": rec.id, **who, **self._contact_fields(change.after), "changedAt": changed_at})
            return [self._call("createContact", body, rec.id)]
        if change.after.get(f.status) == closed and change.before.get(f.status) != closed:
            return [self._call("closeContact", {**who, "changedAt": changed_at}, rec.id, pegaId=rec.id)]
        old, new = self._contact_fields(change.before), self._contact_fields(change.after)
        diff = {k: v for k, v in new.items() if v != old.get(k) and v is not None}
        if not diff:
            return []
        return [self._call("updateContact", {**who, **diff, "changedAt": changed_at}, rec.id, pegaId=rec.id)]

    def _call(self, operation_id: str, body: dict[str, Any], record_id: str, **params: str) -> ContractCall:
        return ContractCall(operation_id, operation(operation_id).method, build_path(operation_id, **params),
                            body, record_id)

