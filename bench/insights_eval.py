"""Sentiment evaluation of the local analyzers on labelled text, with baselines from the same run.

Data:
- ``real_holdout``: the held-out 30 % of ``../shared/data/sentiment/sentiment_en.jsonl`` (real text
  nobody in the project wrote: DynaSent Yelp/Dynabench sentences, VADER's Amazon review snippets,
  business-filtered GoEmotions comments; the fixed hash split is in ``bench/insights_data.py``; the
  model head never saw these rows and nothing was chosen on them). Skipped when the data is absent.
- ``dev`` (bench/data/insights_sentiment.txt, 167 self-written business emails: used to set the VADER
  lexicon and thresholds, and part of the model head's training data) and ``holdout``
  (bench/data/insights_sentiment_holdout.txt, 60 self-written emails never used for either).

Systems compared:

- ``model``: the production default — new-text extraction, sentence splitting, the packaged MiniLM
  sentence model + trained head per sentence, calibrated and aggregated (shared/insights/model_analyzer.py);
- ``tuned``: the former default — the same extraction, sentence-level VADER with courtesy
  down-weighting, business lexicon, business thresholds;
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
from pathlib import Path
from typing import Any

from bench.insights_data import DATA, Item, load, sentiment_rows
from shared.insights.email_text import strip_quoted_and_signature
from shared.insights.model_analyzer import ModelAnalyzer
from shared.insights.sentiment import VaderAnalyzer, VaderConfig

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LABELS = ("positive", "neutral", "negative")


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


def by_source(items: list[Item], gold: list[str], pred: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for src in sorted({it.tags[0] for it in items if it.tags}):
        idx = [i for i, it in enumerate(items) if it.tags and it.tags[0] == src]
        m = metrics([gold[i] for i in idx], [pred[i] for i in idx])
        out[src] = {"n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
    return out


def real_holdout() -> list[Item]:
    return [Item(r["label"], r["text"], (r["source"],)) for r in sentiment_rows() if r["holdout"]]


def model_cost() -> dict[str, Any]:
    """Load time and memory of the packaged model, measured in a fresh interpreter (what a cold worker pays)."""
    import subprocess
    import sys

    code = (
        "import json, resource, time\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize() / 1e6\n"
        "t0 = time.perf_counter(); import shared.insights; t_import = time.perf_counter() - t0\n"
        "base = rss()\n"
        "from shared.insights.model_analyzer import ModelAnalyzer\n"
        "a = ModelAnalyzer(); t1 = time.perf_counter(); a.analyze_sync('Warm-up sentence.'); t_load = time.perf_counter() - t1\n"
        "t2 = time.perf_counter(); a.analyze_sync('We have decided not to renew. Support was slow.'); t_one = time.perf_counter() - t2\n"
        "print(json.dumps({'import_shared_insights_seconds': round(t_import, 3), 'rss_before_model_mb': round(base, 1),"
        " 'first_call_with_load_seconds': round(t_load, 3), 'rss_after_model_mb': round(rss(), 1),"
        " 'model_rss_mb': round(rss() - base, 1), 'second_call_seconds': round(t_one, 3),"
        " 'peak_rss_mb': round(int([x for x in open('/proc/self/status') if x.startswith('VmHWM')][0].split()[1]) / 1e3, 1)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(HERE.parent), check=True)  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run() -> dict[str, Any]:
    started = time.perf_counter()
    sets = {"dev": load(DATA / "insights_sentiment.txt"), "holdout": load(DATA / "insights_sentiment_holdout.txt")}
    real = real_holdout()
    if real:
        sets = {"real_holdout": real, **sets}
    model = ModelAnalyzer()
    tuned = VaderAnalyzer()
    plain = VaderAnalyzer(VaderConfig.plain(), name="vader-plain")
    majority = Counter(it.label for it in sets["dev"]).most_common(1)[0][0]

    def batch(analyzer: ModelAnalyzer) -> Callable[[list[str]], list[str]]:
        return lambda texts: [r.label.value for r in analyzer.analyze_many([strip_quoted_and_signature(t) for t in texts])]

    def each(fn: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
        return lambda texts: [fn(t) for t in texts]

    systems: dict[str, Callable[[list[str]], list[str]]] = {
        "model": batch(model),
        "tuned": each(lambda t: tuned.analyze_sync(strip_quoted_and_signature(t)).label.value),
        "vader_plain_stripped": each(lambda t: plain.analyze_sync(strip_quoted_and_signature(t)).label.value),
        "vader_plain": each(lambda t: plain.analyze_sync(t).label.value),
        "majority": each(lambda t: majority),
    }
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for set_name, items in sets.items():
        gold = [it.label for it in items]
        results[set_name] = {"label_counts": dict(Counter(gold)), "systems": {}}
        for sys_name, fn in systems.items():
            t0 = time.perf_counter()
            pred = fn([it.text for it in items])
            seconds[sys_name] = seconds.get(sys_name, 0.0) + time.perf_counter() - t0
            m = metrics(gold, pred)
            m["by_source" if set_name == "real_holdout" else "by_tag"] = (
                by_source(items, gold, pred) if set_name == "real_holdout" else by_tag(items, pred)
            )
            results[set_name]["systems"][sys_name] = m
        s = results[set_name]["systems"]
        results[set_name]["ratios"] = {
            "macro_f1_model_minus_vader_plain": round(s["model"]["macro_f1"] - s["vader_plain"]["macro_f1"], 4),
            "macro_f1_model_vs_vader_plain": _ratio(s["model"]["macro_f1"], s["vader_plain"]["macro_f1"]),
            "macro_f1_model_vs_majority": _ratio(s["model"]["macro_f1"], s["majority"]["macro_f1"]),
            "accuracy_model_vs_vader_plain": _ratio(s["model"]["accuracy"], s["vader_plain"]["accuracy"]),
        }
    n_items = sum(len(v) for v in sets.values())
    throughput = {name: {"items_per_second": round(n_items / max(sec, 1e-9), 1)} for name, sec in seconds.items()}
    out = {
        "data": {
            "real_holdout": "30% hash split of ../shared/data/sentiment/sentiment_en.jsonl; never used to fit or choose",
            "dev": "self-written business emails; used to tune VADER and part of the model head's training data",
            "holdout": "self-written business emails; never used for tuning or training",
        },
        "majority_label": majority,
        "results": results,
        "throughput": throughput,
        "model_cost": model_cost(),
        "elapsed_seconds": round(time.perf_counter() - started, 2),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "insights.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    _chart(out, RESULTS / "insights.png")
    main = "real_holdout" if "real_holdout" in results else "holdout"
    r = results[main]["systems"]
    headline = {
        "set": main,
        "model_macro_f1": r["model"]["macro_f1"],
        "vader_plain_macro_f1": r["vader_plain"]["macro_f1"],
        "tuned_vader_macro_f1": r["tuned"]["macro_f1"],
        "majority_macro_f1": r["majority"]["macro_f1"],
        "model_minus_vader": results[main]["ratios"]["macro_f1_model_minus_vader_plain"],
        "model_rss_mb": out["model_cost"]["model_rss_mb"],
        "model_first_call_seconds": out["model_cost"]["first_call_with_load_seconds"],
    }
    return {"headline": headline, **headline}


def _chart(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = ["majority", "vader_plain", "vader_plain_stripped", "tuned", "model"]
    set_names = list(out["results"])
    fig, axes = plt.subplots(1, len(set_names) + 1, figsize=(6 * len(set_names) + 4, 5))
    for ax, set_name in zip(axes[:-1], set_names, strict=True):
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
        n = res["model"]["n"]
        note = {"real_holdout": "real text, held out", "dev": "self-written, used for tuning", "holdout": "self-written, held out"}
        ax.set_title(f"{set_name} (n={n}) — {note.get(set_name, '')}", fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
    main = set_names[0]
    src = out["results"][main]["systems"]["model"].get("by_source") or {}
    ax = axes[-1]
    if src:
        names = list(src)
        vm = [src[n]["macro_f1"] for n in names]
        vv = [out["results"][main]["systems"]["vader_plain"]["by_source"][n]["macro_f1"] for n in names]
        ys = range(len(names))
        ax.barh([y + 0.2 for y in ys], vm, height=0.4, label="model")
        ax.barh([y - 0.2 for y in ys], vv, height=0.4, label="stock VADER")
        ax.set_yticks(list(ys), [n.replace("-", "\n", 1) for n in names], fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_title("macro-F1 per source (real held-out)", fontsize=9)
        ax.legend(fontsize=8)
    cost = out["model_cost"]
    fig.suptitle(f"Insights sentiment — model: +{cost['model_rss_mb']:.0f} MB RSS, first call (load) "
                 f"{cost['first_call_with_load_seconds']:.2f} s", fontsize=11)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    summary = run()
    print(json.dumps(summary["headline"], indent=2))
    data = json.loads((RESULTS / "insights.json").read_text())
    for set_name, res in data["results"].items():
        print(f"\n{set_name}:")
        for name, m in res["systems"].items():
            pc = " ".join(f"{c[:3]} {m['per_class'][c]['f1']:.2f}" for c in LABELS)
            print(f"  {name:22s} accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  ({pc})")
        print(f"  ratios: {res['ratios']}")
    print(f"\nmodel cost: {data['model_cost']}")
    print(f"throughput: {data['throughput']}")
