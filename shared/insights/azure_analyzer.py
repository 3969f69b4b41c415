"""Sentiment through Azure AI Language (azure-ai-textanalytics, async client).

Documented limits for synchronous sentiment analysis (Azure AI Language "Service limits", data
limits page): at most 10 documents per request, at most 5,120 characters per document (measured
in text elements; we count code points, which is never fewer), 1 MB per request. Longer texts are
split at sentence boundaries into chunks and the chunk results are combined weighted by length;
a text is cut at ``max_chunks_per_text`` chunks to bound cost.

Errors: a per-document error becomes ``SentimentResult.empty(error=...)``; a request failure
(auth, throttling after the SDK's retries, network) raises a TransientError/PermanentError from
``analyze`` so the caller can fall back (``analyze_email`` falls back to the local analyzer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from shared.errors import PermanentError, TransientError
from shared.insights.models import SentenceSentiment, SentimentLabel, SentimentResult, SentimentScores
from shared.insights.sentences import split_sentences
from shared.insights.sentiment import pick_drivers

log = logging.getLogger(__name__)

MAX_DOCUMENTS_PER_REQUEST = 10
MAX_CHARACTERS_PER_DOCUMENT = 5120


def chunk_text(text: str, max_chars: int = MAX_CHARACTERS_PER_DOCUMENT, max_chunks: int = 10) -> list[str]:
    """Split at sentence boundaries into pieces of at most ``max_chars`` (hard-cut overlong sentences)."""
    if len(text) <= max_chars:
        return [text]
    chunks: list[str] = []
    cur = ""
    for s in split_sentences(text):
        piece = s.text
        while len(piece) > max_chars:
            if cur:
                chunks.append(cur)
                cur = ""
            chunks.append(piece[:max_chars])
            piece = piece[max_chars:]
        if len(cur) + len(piece) + 1 > max_chars:
            chunks.append(cur)
            cur = piece
        else:
            cur = f"{cur} {piece}" if cur else piece
        if len(chunks) >= max_chunks:
            return chunks[:max_chunks]
    if cur:
        chunks.append(cur)
    return chunks[:max_chunks]


def _label(value: str) -> SentimentLabel:
    try:
        return SentimentLabel(value)
    except ValueError:
        return SentimentLabel.NEUTRAL


class AzureLanguageAnalyzer:
    """Azure AI Language sentiment, mapped to the same SentimentResult as the local analyzer."""

    def __init__(
        self,
        endpoint: str,
        credential: Any,
        *,
        language: str = "en",
        batch_size: int = MAX_DOCUMENTS_PER_REQUEST,
        max_concurrency: int = 2,
        max_chunks_per_text: int = 10,
        timeout_seconds: float = 30.0,
        retry_total: int = 3,
        api_version: str | None = None,
        name: str = "azure-language",
        client: Any = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_DOCUMENTS_PER_REQUEST:
            raise ValueError(f"batch_size must be 1..{MAX_DOCUMENTS_PER_REQUEST} (service limit)")
        self.name = name
        self.language = language
        self.batch_size = batch_size
        self.max_chunks_per_text = max_chunks_per_text
        self.timeout_seconds = timeout_seconds
        self._sem = asyncio.Semaphore(max_concurrency)
        if client is None:
            from azure.ai.textanalytics.aio import TextAnalyticsClient
            from azure.core.credentials import AzureKeyCredential

            if isinstance(credential, str):
                credential = AzureKeyCredential(credential)
            kwargs: dict[str, Any] = {
                "connection_timeout": min(10.0, timeout_seconds),
                "read_timeout": timeout_seconds,
                "retry_total": retry_total,
            }
            if api_version:
                kwargs["api_version"] = api_version
            client = TextAnalyticsClient(endpoint, credential, **kwargs)
        self._client = client

    async def __aenter__(self) -> AzureLanguageAnalyzer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.close()

    async def analyze(self, texts: Sequence[str]) -> list[SentimentResult]:
        # every text → one or more chunks (documents); documents are sent in batches of batch_size
        docs: list[tuple[int, str]] = []
        for i, t in enumerate(texts):
            t = (t or "").strip()
            if t:
                docs.extend((i, c) for c in chunk_text(t, max_chunks=self.max_chunks_per_text))
        batches = [docs[k : k + self.batch_size] for k in range(0, len(docs), self.batch_size)]
        results = await asyncio.gather(*(self._send(b) for b in batches))
        per_text: dict[int, list[tuple[str, Any]]] = {}
        for batch, res in zip(batches, results, strict=True):
            for (i, chunk), r in zip(batch, res, strict=True):
                per_text.setdefault(i, []).append((chunk, r))
        return [self._combine(per_text.get(i, [])) for i in range(len(texts))]

    async def _send(self, batch: list[tuple[int, str]]) -> list[Any]:
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

        documents = [{"id": str(k), "text": text, "language": self.language} for k, (_, text) in enumerate(batch)]
        async with self._sem:
            try:
                return list(await self._client.analyze_sentiment(
                    documents, show_opinion_mining=False, disable_service_logs=True
                ))
            except ClientAuthenticationError as exc:
                raise PermanentError(f"Azure AI Language rejected the credential ({exc.status_code})") from exc
            except HttpResponseError as exc:
                code = exc.status_code or 0
                if code == 429 or code >= 500:
                    retry_after = None
                    if exc.response is not None:
                        ra = getattr(exc.response, "headers", {}).get("Retry-After")
                        retry_after = float(ra) if ra and ra.replace(".", "", 1).isdigit() else None
                    raise TransientError(f"Azure AI Language {code}", retry_after=retry_after) from exc
                raise PermanentError(f"Azure AI Language {code}: {exc.error.code if exc.error else ''}") from exc
            except ServiceRequestError as exc:
                raise TransientError(f"Azure AI Language unreachable ({type(exc).__name__})") from exc

    def _combine(self, parts: list[tuple[str, Any]]) -> SentimentResult:
        if not parts:
            return SentimentResult.empty(self.name)
        ok = [(c, r) for c, r in parts if not getattr(r, "is_error", False)]
        if not ok:
            err = parts[0][1].error
            return SentimentResult.empty(self.name, error=f"{getattr(err, 'code', 'error')}")
        total = sum(len(c) for c, _ in ok)
        pos = sum(len(c) * r.confidence_scores.positive for c, r in ok) / total
        neu = sum(len(c) * r.confidence_scores.neutral for c, r in ok) / total
        neg = sum(len(c) * r.confidence_scores.negative for c, r in ok) / total
        if len(ok) == 1:
            raw = ok[0][1].sentiment
        else:
            raw = max((("positive", pos), ("neutral", neu), ("negative", neg)), key=lambda x: x[1])[0]
        # "mixed" has no counterpart in our three labels: the stronger of its two sides wins
        mixed = SentimentLabel.POSITIVE if pos >= neg else SentimentLabel.NEGATIVE
        label = mixed if raw == "mixed" else _label(raw)
        sentences: list[SentenceSentiment] = []
        weights: list[float] = []
        base = 0
        for chunk, r in ok:
            for s in r.sentences:
                cs = s.confidence_scores
                sentences.append(SentenceSentiment(s.text, _label(s.sentiment), cs.positive - cs.negative, base + s.offset))
                weights.append(1.0)
            base += len(chunk) + 1
        return SentimentResult(
            label=label,
            scores=SentimentScores(pos, neu, neg, pos - neg),
            drivers=pick_drivers(sentences, weights, label, 3),
            sentences=tuple(sentences),
            analyzer=self.name,
            raw_label=raw if raw != label.value else None,
            confidence={SentimentLabel.POSITIVE: pos, SentimentLabel.NEUTRAL: neu, SentimentLabel.NEGATIVE: neg}[label],
        )
