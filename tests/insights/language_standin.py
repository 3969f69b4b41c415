"""A local stand-in for Azure AI Language sentiment analysis, speaking its REST shape.

Answers both the Language API (``POST /language/:analyze-text?api-version=2023-04-01``, the
azure-ai-textanalytics 5.3+ default) and Text Analytics v3.1 (``POST /text/analytics/v3.1/sentiment``),
enforces the documented synchronous limits (10 documents per request → HTTP 400
InvalidDocumentBatch; 5,120 characters per document → per-document InvalidDocument error) and the
``Ocp-Apim-Subscription-Key`` header. Scoring is a tiny keyword model: the point is the wire shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

KEY = "standin-key"
_POS = {"great", "love", "happy", "excellent", "thanks", "delighted", "good", "pleased", "fantastic"}
_NEG = {"bad", "angry", "unacceptable", "broken", "disappointed", "terrible", "late", "wrong", "outage"}
_SPLIT = re.compile(r"(?<=[.!?])\s+")


@dataclass
class StandinState:
    requests: list[dict[str, Any]] = field(default_factory=list)  # {"path", "api_version", "documents"}
    fail_status: int | None = None  # answer every request with this status (429/500/...) when set


def _scores(text: str) -> tuple[str, dict[str, float]]:
    words = set(re.findall(r"[a-z]+", text.lower()))
    p, n = len(words & _POS), len(words & _NEG)
    if p > n:
        return "positive", {"positive": 0.9, "neutral": 0.08, "negative": 0.02}
    if n > p:
        return "negative", {"positive": 0.03, "neutral": 0.07, "negative": 0.9}
    return "neutral", {"positive": 0.1, "neutral": 0.8, "negative": 0.1}


def _document(doc: dict[str, Any]) -> dict[str, Any]:
    text = doc["text"]
    sentences = []
    offset = 0
    labels = []
    for piece in _SPLIT.split(text):
        start = text.index(piece, offset)
        label, cs = _scores(piece)
        labels.append(label)
        sentences.append({"sentiment": label, "confidenceScores": cs, "offset": start, "length": len(piece), "text": piece})
        offset = start + len(piece)
    polar = {lab for lab in labels if lab != "neutral"}
    if len(polar) == 2:
        sentiment = "mixed"
        n_pos, n_neg = labels.count("positive"), labels.count("negative")
        tot = n_pos + n_neg
        cs = {"positive": round(0.9 * n_pos / tot, 3), "neutral": 0.1, "negative": round(0.9 * n_neg / tot, 3)}
    else:
        sentiment, cs = _scores(text)
    return {"id": doc["id"], "sentiment": sentiment, "confidenceScores": cs, "sentences": sentences, "warnings": []}


def _too_large(doc_id: str) -> dict[str, Any]:
    return {
        "id": doc_id,
        "error": {
            "code": "InvalidArgument",
            "message": "Invalid Document in request.",
            "innererror": {
                "code": "InvalidDocument",
                "message": "A document within the request was too large to be processed. Limit document size to: 5120 text elements.",
            },
        },
    }


def build_app(state: StandinState) -> web.Application:
    async def handle(request: web.Request, documents: list[dict[str, Any]]) -> tuple[web.Response | None, dict[str, Any]]:
        if request.headers.get("Ocp-Apim-Subscription-Key") != KEY:
            return web.json_response({"error": {"code": "401", "message": "Access denied due to invalid subscription key."}}, status=401), {}
        state.requests.append({"path": request.path, "api_version": request.query.get("api-version"), "documents": documents})
        if state.fail_status:
            return web.json_response({"error": {"code": "TooManyRequests" if state.fail_status == 429 else "InternalServerError",
                                                "message": "stand-in failure"}}, status=state.fail_status,
                                     headers={"Retry-After": "0"}), {}  # fmt: skip
        if len(documents) > 10:
            return web.json_response(
                {"error": {"code": "InvalidRequest", "message": "Invalid document in request.",
                           "innererror": {"code": "InvalidDocumentBatch",
                                          "message": "Batch request contains too many records. Max 10 records are permitted."}}},
                status=400,
            ), {}  # fmt: skip
        docs, errors = [], []
        for d in documents:
            (errors.append(_too_large(d["id"])) if len(d["text"]) > 5120 else docs.append(_document(d)))
        return None, {"documents": docs, "errors": errors, "modelVersion": "2022-11-01"}

    async def analyze_text(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("kind") != "SentimentAnalysis":
            return web.json_response({"error": {"code": "InvalidRequest", "message": "unsupported kind"}}, status=400)
        resp, results = await handle(request, body["analysisInput"]["documents"])
        return resp or web.json_response({"kind": "SentimentAnalysisResults", "results": results})

    async def v31_sentiment(request: web.Request) -> web.Response:
        body = await request.json()
        resp, results = await handle(request, body["documents"])
        return resp or web.json_response(results)

    app = web.Application()
    app.router.add_post("/language/:analyze-text", analyze_text)
    app.router.add_post("/text/analytics/v3.1/sentiment", v31_sentiment)
    return app
