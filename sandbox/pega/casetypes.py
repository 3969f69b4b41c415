"""Field allow-lists of the simulated DX API v2 case types, like a real Pega application has them.

Real DX API v2 applies on create only the fields the case type's `pyAllowedStartingFields` data
transform (AllowedStartingFields) names, and on a case action only the fields of that action's
view; every other field of the request is dropped without an error. The sync's idempotency rests
on the external id being stored, so the simulator drops fields the same way and tests can prove
the client notices (shared.pega.client reads the external id back after a create).

The defaults are what docs/pega-setup.md asks a Pega architect to configure: every property the
mapping names for the case type. `/_sim/casetypes` changes them (a broken configuration).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from shared.pega.mapping import PegaMapping


@dataclass
class CaseTypeRules:
    """Allowed starting fields and the fields of each action's view (top-level property names)."""

    allowed_starting_fields: list[str]
    action_views: dict[str, list[str]] = field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        return {"allowedStartingFields": list(self.allowed_starting_fields),
                "actionViews": {k: list(v) for k, v in self.action_views.items()}}


def _mapped(section: Any, exclude: tuple[str, ...] = ("status",)) -> list[str]:
    return [v for k, v in section.model_dump().items() if isinstance(v, str) and v and k not in exclude]


def default_rules(mapping: PegaMapping) -> dict[str, CaseTypeRules]:
    """Per case kind (appointment, email, task): the mapping's properties plus the insights fields."""
    insights = [v for k, v in mapping.insights.model_dump().items() if isinstance(v, str) and v and k != "max_text_length"]
    appointment = _mapped(mapping.appointment) + insights
    email = _mapped(mapping.email) + insights
    task = ["Subject", "Description", "DueDate", "OwnerOperator"]
    update, cancel = mapping.actions.update, mapping.actions.cancel_appointment
    return {
        "appointment": CaseTypeRules(appointment, {update: list(appointment), cancel: [mapping.appointment.body]}),
        "email": CaseTypeRules(email, {update: list(email)}),
        "task": CaseTypeRules(task, {update: list(task)}),
    }


@dataclass
class CaseTypeBook:
    """The current rules, resettable to the defaults."""

    mapping: PegaMapping
    rules: dict[str, CaseTypeRules] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.rules = default_rules(self.mapping)

    def starting(self, kind: str, content: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """(the fields a create keeps, the names it dropped)."""
        return _keep(content, self.rules[kind].allowed_starting_fields)

    def for_action(self, kind: str, action: str, content: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """(the fields the action's view keeps, the names it dropped); an action without a view keeps none."""
        return _keep(content, self.rules[kind].action_views.get(action, []))

    def update(self, kind: str, body: dict[str, Any]) -> CaseTypeRules:
        """Replace a case type's lists (`allowedStartingFields`, `actionViews`) from a control request."""
        if kind not in self.rules:
            raise KeyError(kind)
        rules = copy.deepcopy(self.rules[kind])
        if "allowedStartingFields" in body:
            rules.allowed_starting_fields = _names(body["allowedStartingFields"], "allowedStartingFields")
        if "actionViews" in body:
            views = body["actionViews"]
            if not isinstance(views, dict):
                raise ValueError("actionViews must be an object of action ID -> field names")
            rules.action_views = {str(k): _names(v, f"actionViews.{k}") for k, v in views.items()}
        self.rules[kind] = rules
        return rules


def _names(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{what} must be a list of property names")
    return list(value)


def _keep(content: dict[str, Any], allowed: list[str]) -> tuple[dict[str, Any], list[str]]:
    allowed_set = set(allowed)
    kept = {k: v for k, v in content.items() if k in allowed_set}
    return kept, sorted(k for k in content if k not in allowed_set)
