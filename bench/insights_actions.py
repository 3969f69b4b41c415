"""Suggested actions against the action sets a sales manager expects, on self-written realistic emails.

Data (the project's own text, no third-party content):
- ``bench/data/insights_actions_tune.jsonl`` (40 emails): looked at while writing the rules and intents;
- ``bench/data/insights_actions_holdout.jsonl`` (40 emails): written before the rules, never used to tune.

Each email carries the actions a sales manager would sign off (possibly none). Every email is
analysed by the production path (``analyze_email``: new-text extraction, sentiment, automated-mail
detection from headers and text, rules with phrases and intents) as an inbound email from a contact
with an open opportunity. Scored as (email, action) pairs: precision, recall, F1, per action, and
exact-set accuracy. Baseline in the same run: the rules as shipped before (``insights_rules_v1.yaml``,
five actions, phrases only; its ``propose_appointment`` counts as ``propose_meeting``).

Writes bench/results/insights_actions.json and .png.  Run: ``.venv/bin/python -m bench insights_actions``
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from shared.insights import (
    BodyType,
    CrmContext,
    Direction,
    EmailInput,
    EntityType,
    Opportunity,
    analyze_email,
    load_rules,
)
from shared.insights.rules import RuleSet

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
_RENAMED = {"propose_appointment": "propose_meeting"}


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def context() -> CrmContext:
    return CrmContext(entity_type=EntityType.CONTACT, entity_id="C-1", entity_name="the contact",
                      account_owner="the account owner", opportunities=(Opportunity("O-1", "Expansion"),))  # fmt: skip


async def predict(item: dict[str, Any], rules: RuleSet) -> tuple[set[str], list[dict[str, Any]]]:
    email = EmailInput(subject=item["subject"], body=item["body"], body_type=BodyType.TEXT,
                       direction=Direction.INBOUND, headers=item.get("headers") or {})  # fmt: skip
    insight = await analyze_email(email, context(), rules=rules)
    actions = {_RENAMED.get(a.action, a.action) for a in insight.actions}
    return actions, [a.to_dict() for a in insight.actions]


def score(items: list[dict[str, Any]], preds: list[set[str]]) -> dict[str, Any]:
    tp = fp = fn = 0
    per: dict[str, Counter[str]] = {}
    exact = 0
    for it, pred in zip(items, preds, strict=True):
        gold = set(it["expected"])
        exact += gold == pred
        for a in gold | pred:
            c = per.setdefault(a, Counter())
            if a in gold and a in pred:
                tp += 1
                c["tp"] += 1
            elif a in pred:
                fp += 1
                c["fp"] += 1
            else:
                fn += 1
                c["fn"] += 1
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    per_action = {}
    for a, c in sorted(per.items()):
        ap = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        ar = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        per_action[a] = {"precision": round(ap, 3), "recall": round(ar, 3), **{k: c[k] for k in ("tp", "fp", "fn")}}
    return {
        "n": len(items),
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
        "exact_set_accuracy": round(exact / len(items), 4) if items else 0.0,
        "pairs": {"tp": tp, "fp": fp, "fn": fn},
        "per_action": per_action,
    }


async def _run() -> dict[str, Any]:
    started = time.perf_counter()
    systems = {"rules_v2": load_rules(), "rules_v1_baseline": load_rules(DATA / "insights_rules_v1.yaml")}
    out: dict[str, Any] = {"sets": {}}
    for set_name in ("tune", "holdout"):
        items = load(DATA / f"insights_actions_{set_name}.jsonl")
        res: dict[str, Any] = {}
        for sys_name, rules in systems.items():
            preds, details = [], []
            for it in items:
                pred, detail = await predict(it, rules)
                preds.append(pred)
                details.append(detail)
            m = score(items, preds)
            m["errors"] = [
                {"id": it["id"], "expected": sorted(it["expected"]), "predicted": sorted(p)}
                for it, p in zip(items, preds, strict=True) if set(it["expected"]) != p
            ]
            if sys_name == "rules_v2":
                m["examples"] = [{"id": it["id"], "actions": d} for it, d in zip(items[:3], details[:3], strict=True)]
            res[sys_name] = m
        out["sets"][set_name] = res
    out["elapsed_seconds"] = round(time.perf_counter() - started, 2)
    return out


def run() -> dict[str, Any]:
    out = asyncio.run(_run())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "insights_actions.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    _chart(out, RESULTS / "insights_actions.png")
    h = out["sets"]["holdout"]
    headline = {
        "holdout_precision": h["rules_v2"]["precision"],
        "holdout_recall": h["rules_v2"]["recall"],
        "holdout_f1": h["rules_v2"]["f1"],
        "baseline_v1_precision": h["rules_v1_baseline"]["precision"],
        "baseline_v1_recall": h["rules_v1_baseline"]["recall"],
    }
    return {"headline": headline, **headline}


def _chart(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, set_name in zip(axes, ("tune", "holdout"), strict=True):
        res = out["sets"][set_name]
        names = ["rules_v1_baseline", "rules_v2"]
        metrics = ["precision", "recall", "f1", "exact_set_accuracy"]
        for k, m in enumerate(metrics):
            vals = [res[n][m] for n in names]
            xs = [i + (k - 1.5) * 0.2 for i in range(len(names))]
            ax.bar(xs, vals, width=0.2, label=m)
            for x, v in zip(xs, vals, strict=True):
                ax.text(x, v + 0.01, f"{v:.2f}", ha="center", fontsize=7)
        ax.set_xticks(range(len(names)), names)
        ax.set_ylim(0, 1.1)
        ax.axhline(0.85, color="grey", lw=0.6, ls="--")
        ax.axhline(0.80, color="grey", lw=0.6, ls=":")
        ax.set_title(f"{set_name} (n={res['rules_v2']['n']})" + (" — never used to tune" if set_name == "holdout" else ""))
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Suggested actions vs the action sets a sales manager expects (targets: precision 0.85, recall 0.80)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    result = run()
    print(json.dumps(result["headline"], indent=2))
    data = json.loads((RESULTS / "insights_actions.json").read_text())
    for s, res in data["sets"].items():
        for n, m in res.items():
            print(f"{s:8s} {n:18s} P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} exact {m['exact_set_accuracy']:.3f}")
