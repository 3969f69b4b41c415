"""Attachment text extraction over the real files in ``../shared/data/attachments`` (59 files + manifest).

For each file: the kind sniffed from its content, text or the stated skip reason, characters, time,
and whether the first words of the manifest's ``text_hint`` (what poppler/plain XML reading gives)
appear in our text. Judged against the manifest's ``expect``: ``text``/``partial-text`` must yield
text; ``encrypted``, ``damaged``, ``unsupported``, ``no-text`` must yield a matching stated reason
(``text-or-policy-skip`` accepts either). Also run with a misleading file name (every file renamed
``attachment.eml``) to show the type comes from the content. Nothing may crash.

Writes bench/results/insights_attachments.json and .png.  Run: ``.venv/bin/python -m bench insights_attachments``
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from bench.insights_data import ATTACHMENTS
from shared.insights import AttachmentExtractor, AttachmentInput, ExtractionLimits, SkipReason

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
_ACCEPT: dict[str, set[str | None]] = {
    "text": {None},
    "partial-text": {None},
    "text-or-policy-skip": {None, SkipReason.ENCRYPTED.value},
    "encrypted": {SkipReason.ENCRYPTED.value},
    "damaged": {SkipReason.CORRUPT.value},
    "unsupported": {SkipReason.UNSUPPORTED_TYPE.value},
    "no-text": {SkipReason.EMPTY.value},
}
_WORD = re.compile(r"\w+", re.UNICODE)


def hint_found(text: str, hint: str) -> bool | None:
    words = _WORD.findall(hint.lower())[:6]
    if not words:
        return None
    have = set(_WORD.findall(text.lower()))
    return sum(w in have for w in words) >= max(1, int(len(words) * 0.6))


def run() -> dict[str, Any]:
    manifest = ATTACHMENTS / "manifest.jsonl"
    if not manifest.exists():
        return {"headline": {"skipped": "../shared/data/attachments not found"}}
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    started = time.perf_counter()
    files: list[dict[str, Any]] = []
    renamed_ok = 0
    with AttachmentExtractor(ExtractionLimits()) as ex:
        for r in rows:
            data = (ATTACHMENTS / r["file"]).read_bytes()
            name = Path(r["file"]).name
            t0 = time.perf_counter()
            got = ex.extract_sync(AttachmentInput(name=name, content=data))
            seconds = time.perf_counter() - t0
            renamed = ex.extract_sync(AttachmentInput(name="attachment.eml", content=data))
            same = (renamed.skipped, renamed.kind) == (got.skipped, got.kind)
            renamed_ok += same
            skipped = got.skipped.value if got.skipped else None
            files.append({
                "file": r["file"], "expect": r["expect"], "kind": got.kind, "skipped": skipped, "detail": got.detail,
                "chars": len(got.text), "truncated": got.truncated, "seconds": round(seconds, 3),
                "hint_found": hint_found(got.text, r.get("text_hint") or "") if got.ok else None,
                "meets_expectation": skipped in _ACCEPT.get(r["expect"], {None}),
                "same_result_when_named_attachment_eml": same,
            })  # fmt: skip
    n = len(files)
    met = sum(f["meets_expectation"] for f in files)
    with_text = [f for f in files if f["skipped"] is None]
    hints = [f for f in with_text if f["hint_found"] is not None]
    out = {
        "files": files,
        "summary": {
            "files": n,
            "crashed": 0,  # every file returned an ExtractedText (text or a typed reason); an exception would abort the run
            "meets_expectation": met,
            "with_text": len(with_text),
            "skipped_with_reason": n - len(with_text),
            "text_hint_found": sum(f["hint_found"] for f in hints),
            "text_hint_checked": len(hints),
            "same_result_with_misleading_name": renamed_ok,
            "elapsed_seconds": round(time.perf_counter() - started, 2),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "insights_attachments.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    _chart(out, RESULTS / "insights_attachments.png")
    s = out["summary"]
    headline = {k: s[k] for k in ("files", "meets_expectation", "with_text", "skipped_with_reason", "text_hint_found",
                                  "text_hint_checked", "same_result_with_misleading_name")}  # fmt: skip
    return {"headline": headline, **headline}


def _chart(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({f["file"].split("/")[0] for f in out["files"]})
    ok = [sum(1 for f in out["files"] if f["file"].startswith(k + "/") and f["meets_expectation"]) for k in kinds]
    bad = [sum(1 for f in out["files"] if f["file"].startswith(k + "/") and not f["meets_expectation"]) for k in kinds]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(kinds, ok, label="as expected (text, or the expected stated reason)")
    ax.bar(kinds, bad, bottom=ok, label="not as expected", color="tab:red")
    ax.set_ylabel("files")
    s = out["summary"]
    ax.set_title(f"Attachments: {s['meets_expectation']}/{s['files']} as expected, 0 crashes, "
                 f"{s['text_hint_found']}/{s['text_hint_checked']} text hints found")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    result = run()
    print(json.dumps(result["headline"], indent=2))
    data = json.loads((RESULTS / "insights_attachments.json").read_text())
    for f in data["files"]:
        mark = "ok " if f["meets_expectation"] else "BAD"
        print(f"{mark} {f['file']:48s} {f['expect']:20s} {f['kind']:12s} {f['skipped']!s:16s} {f['chars']:7d} "
              f"hint={f['hint_found']} {f['detail'][:60]}")  # fmt: skip
