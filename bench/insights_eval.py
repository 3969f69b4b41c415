"""Sentiment evaluation of the local analyzer on labelled business texts, with baselines from the same run.

Data: bench/data/insights_sentiment.txt (dev, 167 items: the analyzer's lexicon and thresholds were
set while looking at it) and bench/data/insights_sentiment_holdout.txt (60 items written afterwards
and never used for tuning). Both are self-written fictitious sales/customer emails (no third-party
text). Systems compared:

- ``tuned``: the production pipeline — new-text extraction (quotes/signatures stripped), sentence
  splitting, courtesy down-weighting, business lexicon, business thresholds;
- ``vader_plain``: stock VADER over the raw text with its documented ±0.05 thresholds;
- ``vader_plain_stripped``: stock VADER over the stripped text (isolates the extraction effect);
- ``tuned_no_strip``: the tuned analyzer over the raw text (isolates the analyzer effect);
- ``majority``: always the most frequent label of the dev set.

Writes bench/results/insights.json and bench/results/insights.png. Offline; well under 60 s.
Run: ``.venv/bin/python -m bench.insights_eval`` (or ``make bench`` / ``python -m bench insights_eval``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.insights.email_text import strip_quoted_and_signature
from shared.insights.sentiment import VaderAnalyzer, VaderConfig

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
LABELS = ("positive", "neutral", "negative")


@dataclass(frozen=True)
class Item:
    label: str
    text: str
    tags: tuple[str, ...]


def load(path: Path) -> list[Item]:
    items: list[Item] = []
    label: str | None = None
    tags: tuple[str, ...] = ()
    buf: list[str] = []

    def flush() -> None:
        if label is not None:
            items.append(Item(label, "".join(buf).strip(), tags))

    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("=== "):
            flush()
            head, _, rest = line[4:].partition("|")
            label = head.strip()
            if label not in LABELS:
                raise ValueError(f"{path.name}: unknown label {label!r}")
            tags = tuple(t.strip() for t in rest.split(",") if t.strip())
            buf = []
        elif label is not None:
            buf.append(line)
        elif not line.startswith("#") and line.strip():
            raise ValueError(f"{path.name}: text before the first header")
    flush()
    return items


def metrics(gold: list[str], pred: list[str]) -> dict[str, Any]:
    n = len(gold)
    confusion = {g: {p: 0 for p in LABELS} for g in LABELS}
    for g, p in zip(gold, pred, strict=True):
        confusion[g][p] += 1
    per_class: dict[str, dict[str, float]] = {}
    for c in LABELS:
        tp = confusion[c][c]
        fp = sum(confusion[g][c] for g in LABELS if g != c)
        fn = sum(confusion[c][p] for p in LABELS if p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[c] = {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4), "support": tp + fn}
    accuracy = sum(g == p for g, p in zip(gold, pred, strict=True)) / n if n else 0.0
    macro_f1 = sum(per_class[c]["f1"] for c in LABELS) / len(LABELS)
    return {
        "n": n,
        "accuracy": round(accuracy, 4),
        "macro_f1": round(macro_f1, 4),
        "per_class": per_class,
        "confusion": {"rows_gold_cols_pred": list(LABELS), "matrix": [[confusion[g][p] for p in LABELS] for g in LABELS]},
    }


def by_tag(items: list[Item], pred: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for tag in sorted({t for it in items for t in it.tags}):
        idx = [i for i, it in enumerate(items) if tag in it.tags]
        out[tag] = {"n": len(idx), "accuracy": round(sum(items[i].label == pred[i] for i in idx) / len(idx), 4)}
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def run() -> dict[str, Any]:
    started = time.perf_counter()
    sets = {"dev": load(DATA / "insights_sentiment.txt"), "holdout": load(DATA / "insights_sentiment_holdout.txt")}
    tuned = VaderAnalyzer()
    plain = VaderAnalyzer(VaderConfig.plain(), name="vader-plain")
    majority = Counter(it.label for it in sets["dev"]).most_common(1)[0][0]
    systems: dict[str, Callable[[str], str]] = {
        "tuned": lambda t: tuned.analyze_sync(strip_quoted_and_signature(t)).label.value,
        "tuned_no_strip": lambda t: tuned.analyze_sync(t).label.value,
        "vader_plain_stripped": lambda t: plain.analyze_sync(strip_quoted_and_signature(t)).label.value,
        "vader_plain": lambda t: plain.analyze_sync(t).label.value,
        "majority": lambda t: majority,
    }
    results: dict[str, Any] = {}
    for set_name, items in sets.items():
        gold = [it.label for it in items]
        results[set_name] = {"label_counts": dict(Counter(gold)), "systems": {}}
        for sys_name, fn in systems.items():
            pred = [fn(it.text) for it in items]
            m = metrics(gold, pred)
            m["by_tag"] = by_tag(items, pred)
            results[set_name]["systems"][sys_name] = m
        s = results[set_name]["systems"]
        results[set_name]["ratios"] = {
            "accuracy_tuned_vs_majority": _ratio(s["tuned"]["accuracy"], s["majority"]["accuracy"]),
            "macro_f1_tuned_vs_majority": _ratio(s["tuned"]["macro_f1"], s["majority"]["macro_f1"]),
            "accuracy_tuned_vs_vader_plain": _ratio(s["tuned"]["accuracy"], s["vader_plain"]["accuracy"]),
            "macro_f1_tuned_vs_vader_plain": _ratio(s["tuned"]["macro_f1"], s["vader_plain"]["macro_f1"]),
        }

    # throughput of the local analyzer: full pipeline (strip + analyze) and plain VADER, same texts
    texts = [it.text for items in sets.values() for it in items]
    throughput: dict[str, Any] = {}
    for name, fn in (("tuned_pipeline", systems["tuned"]), ("vader_plain", systems["vader_plain"])):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 2.0:
            for t in texts:
                fn(t)
            n += len(texts)
        elapsed = time.perf_counter() - t0
        throughput[name] = {"items": n, "seconds": round(elapsed, 3), "items_per_second": round(n / elapsed, 1)}
    throughput["ratio_tuned_vs_plain"] = _ratio(
        throughput["tuned_pipeline"]["items_per_second"], throughput["vader_plain"]["items_per_second"]
    )
    out = {
        "data": "self-written fictitious business emails (bench/data/insights_sentiment*.txt); dev set used for tuning, holdout not",
        "majority_label": majority,
        "results": results,
        "throughput": throughput,
        "mean_chars_per_item": round(sum(len(t) for t in texts) / len(texts), 1),
        "elapsed_seconds": round(time.perf_counter() - started, 2),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "insights.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    _chart(out, RESULTS / "insights.png")
    headline = {
        "holdout_accuracy": results["holdout"]["systems"]["tuned"]["accuracy"],
        "holdout_macro_f1": results["holdout"]["systems"]["tuned"]["macro_f1"],
        "holdout_accuracy_vs_majority": results["holdout"]["ratios"]["accuracy_tuned_vs_majority"],
        "holdout_accuracy_vs_vader_plain": results["holdout"]["ratios"]["accuracy_tuned_vs_vader_plain"],
        "items_per_second": throughput["tuned_pipeline"]["items_per_second"],
    }
    return {
        "headline": headline,
        "holdout_accuracy": results["holdout"]["systems"]["tuned"]["accuracy"],
        "holdout_macro_f1": results["holdout"]["systems"]["tuned"]["macro_f1"],
        "dev_accuracy": results["dev"]["systems"]["tuned"]["accuracy"],
        "dev_macro_f1": results["dev"]["systems"]["tuned"]["macro_f1"],
        "items_per_second": throughput["tuned_pipeline"]["items_per_second"],
        **{f"holdout_{k}": v for k, v in results["holdout"]["ratios"].items()},
    }


def _chart(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = ["majority", "vader_plain", "vader_plain_stripped", "tuned_no_strip", "tuned"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [2.2, 2.2, 1.3]})
    for ax, set_name in zip(axes[:2], ("dev", "holdout"), strict=True):
        res = out["results"][set_name]["systems"]
        xs = range(len(systems))
        acc = [res[s]["accuracy"] for s in systems]
        f1 = [res[s]["macro_f1"] for s in systems]
        ax.bar([x - 0.2 for x in xs], acc, width=0.4, label="accuracy")
        ax.bar([x + 0.2 for x in xs], f1, width=0.4, label="macro-F1")
        for x, a, f in zip(xs, acc, f1, strict=True):
            ax.text(x - 0.2, a + 0.01, f"{a:.2f}", ha="center", fontsize=7)
            ax.text(x + 0.2, f + 0.01, f"{f:.2f}", ha="center", fontsize=7)
        ax.set_xticks(list(xs), [s.replace("_", "\n") for s in systems], fontsize=8)
        ax.set_ylim(0, 1.05)
        n = out["results"][set_name]["systems"]["tuned"]["n"]
        ax.set_title(f"{set_name} set (n={n})" + (" — used for tuning" if set_name == "dev" else " — not used for tuning"))
        ax.legend(loc="upper left", fontsize=8)
    cm = out["results"]["holdout"]["systems"]["tuned"]["confusion"]["matrix"]
    ax = axes[2]
    ax.imshow(cm, cmap="Blues")
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=10)
    ax.set_xticks(range(3), LABELS, fontsize=8)
    ax.set_yticks(range(3), LABELS, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("tuned, holdout: confusion")
    tp = out["throughput"]["tuned_pipeline"]["items_per_second"]
    fig.suptitle(f"Insights sentiment (local VADER pipeline) — {tp:.0f} items/s on this machine", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    summary = run()
    print(json.dumps(summary, indent=2))
    data = json.loads((RESULTS / "insights.json").read_text())
    for set_name in ("dev", "holdout"):
        print(f"\n{set_name}:")
        for name, m in data["results"][set_name]["systems"].items():
            print(f"  {name:22s} accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}")
        print(f"  ratios: {data['results'][set_name]['ratios']}")
    print(f"\nthroughput: {data['throughput']}")
    print(f"elapsed: {data['elapsed_seconds']} s; wrote bench/results/insights.json and bench/results/insights.png")
