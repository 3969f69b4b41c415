"""Quote and signature removal against real reply samples with the expected new text.

Data: ``../shared/data/email_replies`` (221 cases, 205 plain text + 16 HTML, 19 languages; see its
README). Compared in the same run:

- ``ours``: ``email_new_text`` (shared/insights/email_text.py + html_text.py), the production path;
- ``mail_parser_reply`` (PyPI mail-parser-reply, MIT, all its languages enabled);
- ``email_reply_parser`` (PyPI email-reply-parser, MIT, Zapier's);
- ``quotequail`` (PyPI quotequail, MIT; ``quote``/``quote_html``, first unquoted part).

HTML bodies go to each plain-text library as our visible text (quotes kept) except quotequail,
which reads HTML itself. Note the libraries' own test fixtures are among the cases (crisp,
edgetier = a fork of Zapier's, alfonsrv = mail-parser-reply, quotequail), which favours each of
them on its own source: the per-source table shows it.

Scores: exact match after collapsing whitespace, and mean word-level F1 against the expected text
(partial credit). Writes bench/results/insights_replies.json and .png.
Run: ``.venv/bin/python -m bench insights_replies``
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.insights_data import REPLIES
from shared.insights.email_text import email_new_text
from shared.insights.html_text import html_to_text
from shared.insights.models import BodyType

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.UNICODE)


def norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def word_f1(got: str, want: str) -> float:
    g, w = Counter(_WORD.findall(got.lower())), Counter(_WORD.findall(want.lower()))
    if not g and not w:
        return 1.0
    common = sum((g & w).values())
    if not common:
        return 0.0
    p, r = common / sum(g.values()), common / sum(w.values())
    return 2 * p * r / (p + r)


def _systems() -> dict[str, Callable[[str, str], str]]:
    systems: dict[str, Callable[[str, str], str]] = {
        "ours": lambda body, fmt: email_new_text(body, BodyType.HTML if fmt == "html" else BodyType.TEXT),
    }

    def plain(body: str, fmt: str) -> str:
        return html_to_text(body)[0] if fmt == "html" else body

    try:
        from mailparser_reply import EmailReplyParser as MPR
        from mailparser_reply.constants import MAIL_LANGUAGES

        mpr = MPR(languages=list(MAIL_LANGUAGES))
        systems["mail_parser_reply"] = lambda body, fmt: mpr.parse_reply(text=plain(body, fmt)) or ""
    except ImportError:
        pass
    try:
        from email_reply_parser import EmailReplyParser as ERP

        systems["email_reply_parser"] = lambda body, fmt: ERP.parse_reply(plain(body, fmt)) or ""
    except ImportError:
        pass
    try:
        import quotequail

        def qq(body: str, fmt: str) -> str:
            parts = quotequail.quote_html(body) if fmt == "html" else quotequail.quote(body)
            first = next((t for keep, t in parts if keep), "")
            return html_to_text(first)[0] if fmt == "html" else first

        systems["quotequail"] = qq
    except ImportError:
        pass
    return systems


def run() -> dict[str, Any]:
    cases_file = REPLIES / "cases.jsonl"
    if not cases_file.exists():
        return {"headline": {"skipped": "../shared/data/email_replies not found"}}
    cases = [json.loads(line) for line in cases_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    systems = _systems()
    started = time.perf_counter()
    per_case: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    for c in cases:
        body = (REPLIES / c["input"]).read_text(encoding="utf-8", errors="replace")
        want = (REPLIES / c["expected"]).read_text(encoding="utf-8", errors="replace")
        if c["format"] == "html":
            want = html_to_text(want)[0] if want.lstrip().startswith("<") else want
        for name, fn in systems.items():
            try:
                got = fn(body, c["format"])
                error = None
            except Exception as exc:  # a library failing on a real email is a result, not a crash of the bench
                got, error = "", type(exc).__name__
            per_case[name].append({
                "id": c["id"], "source": c["source"], "language": c["language"], "format": c["format"],
                "exact": norm(got) == norm(want), "word_f1": round(word_f1(got, want), 4), "error": error,
            })  # fmt: skip

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(rows)
        return {"n": n, "exact": round(sum(r["exact"] for r in rows) / n, 4) if n else 0.0,
                "word_f1": round(sum(r["word_f1"] for r in rows) / n, 4) if n else 0.0,
                "errors": sum(1 for r in rows if r["error"])}  # fmt: skip

    out: dict[str, Any] = {"systems": {}, "elapsed_seconds": 0.0}
    for name, rows in per_case.items():
        by_source = {s: summary([r for r in rows if r["source"] == s]) for s in sorted({r["source"] for r in rows})}
        non_en = [r for r in rows if r["language"] not in ("en", "und")]
        out["systems"][name] = {
            "all": summary(rows),
            "by_source": by_source,
            "non_english": summary(non_en),
            "html": summary([r for r in rows if r["format"] == "html"]),
            "misses": [r["id"] for r in rows if not r["exact"]],
        }
    out["elapsed_seconds"] = round(time.perf_counter() - started, 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "insights_replies.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    _chart(out, RESULTS / "insights_replies.png")
    headline = {f"{n}_exact": s["all"]["exact"] for n, s in out["systems"].items()}
    headline.update({f"{n}_word_f1": s["all"]["word_f1"] for n, s in out["systems"].items()})
    return {"headline": headline, **headline}


def _chart(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(out["systems"])
    groups = ["all", "non_english", "html"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for k, g in enumerate(groups):
        vals = [out["systems"][n][g]["exact"] for n in names]
        xs = [i + (k - 1) * 0.25 for i in range(len(names))]
        ax.bar(xs, vals, width=0.25, label=f"exact match: {g.replace('_', '-')}")
        for x, v in zip(xs, vals, strict=True):
            ax.text(x, v + 0.01, f"{v:.2f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.1)
    n = out["systems"][names[0]]["all"]["n"]
    ax.set_title(f"Quote/signature removal on {n} real reply samples (expected new text)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    result = run()
    data = json.loads((RESULTS / "insights_replies.json").read_text())
    for n, s in data["systems"].items():
        print(f"{n:20s} exact {s['all']['exact']:.3f} wordF1 {s['all']['word_f1']:.3f} non-en {s['non_english']['exact']:.3f} "
              f"html {s['html']['exact']:.3f} errors {s['all']['errors']}")  # fmt: skip
        print("    " + ", ".join(f"{k}={v['exact']:.2f}" for k, v in s["by_source"].items()))
