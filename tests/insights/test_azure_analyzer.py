"""The Azure AI Language analyzer, through the real azure-ai-textanalytics async client, against a local stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from shared.errors import PermanentError, TransientError
from shared.insights import CrmContext, Direction, EmailInput, EntityType, Opportunity, SentimentLabel, analyze_email
from shared.insights.azure_analyzer import MAX_CHARACTERS_PER_DOCUMENT, AzureLanguageAnalyzer, chunk_text
from shared.insights.settings import build_analyzer, load_insights_settings
from tests.insights.language_standin import KEY, StandinState, build_app


@pytest.fixture
async def standin() -> AsyncIterator[tuple[str, StandinState]]:
    state = StandinState()
    runner = web.AppRunner(build_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # a free port: others run tests on this machine too
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        await runner.cleanup()


async def test_labels_scores_and_drivers_mapped(standin: tuple[str, StandinState]) -> None:
    endpoint, state = standin
    async with AzureLanguageAnalyzer(endpoint, KEY, retry_total=0) as az:
        res = await az.analyze([
            "The delivery was late and the invoice is wrong. Please fix it.",
            "Thanks, the workshop was excellent!",
            "The meeting is at 3 pm.",
            "",
        ])
    assert [r.label for r in res] == [SentimentLabel.NEGATIVE, SentimentLabel.POSITIVE, SentimentLabel.NEUTRAL, SentimentLabel.NEUTRAL]
    neg = res[0]
    assert neg.analyzer == "azure-language"
    assert neg.scores.negative == pytest.approx(0.9) and neg.scores.compound == pytest.approx(0.03 - 0.9)
    assert [d.text for d in neg.drivers] == ["The delivery was late and the invoice is wrong."]
    assert neg.sentences[1].offset == len("The delivery was late and the invoice is wrong. ")
    assert res[3].scores.neutral == 1.0  # empty text never goes over the wire
    assert state.requests[0]["path"] == "/language/:analyze-text" and state.requests[0]["api_version"] == "2023-04-01"
    assert len(state.requests[0]["documents"]) == 3


async def test_mixed_maps_to_the_stronger_side(standin: tuple[str, StandinState]) -> None:
    endpoint, _ = standin
    async with AzureLanguageAnalyzer(endpoint, KEY, retry_total=0) as az:
        (r,) = await az.analyze(["Great people. But the outage was terrible. And the invoice is wrong."])
    assert r.raw_label == "mixed" and r.label is SentimentLabel.NEGATIVE


async def test_batches_respect_ten_documents_per_request(standin: tuple[str, StandinState]) -> None:
    endpoint, state = standin
    texts = [f"Document number {i} is good." for i in range(23)]
    async with AzureLanguageAnalyzer(endpoint, KEY, retry_total=0) as az:
        res = await az.analyze(texts)
    assert len(res) == 23 and all(r.label is SentimentLabel.POSITIVE for r in res)
    assert sorted(len(r["documents"]) for r in state.requests) == [3, 10, 10]


async def test_long_text_is_chunked_under_the_character_limit(standin: tuple[str, StandinState]) -> None:
    endpoint, state = standin
    text = " ".join(["The outage was terrible and the service is broken."] * 300)  # ~15k chars
    async with AzureLanguageAnalyzer(endpoint, KEY, retry_total=0) as az:
        (r,) = await az.analyze([text])
    sent = [d["text"] for req in state.requests for d in req["documents"]]
    assert len(sent) >= 3 and all(len(t) <= MAX_CHARACTERS_PER_DOCUMENT for t in sent)
    assert r.label is SentimentLabel.NEGATIVE and r.error is None


async def test_stand_in_rejects_what_the_service_rejects(standin: tuple[str, StandinState]) -> None:
    """The stand-in enforces the limits, so the tests above would fail if batching/chunking were wrong."""
    from azure.ai.textanalytics.aio import TextAnalyticsClient
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import HttpResponseError

    endpoint, _ = standin
    async with TextAnalyticsClient(endpoint, AzureKeyCredential(KEY), retry_total=0) as client:
        with pytest.raises(HttpResponseError) as exc:
            await client.analyze_sentiment([f"doc {i}" for i in range(11)])
        assert exc.value.status_code == 400
        res = await client.analyze_sentiment(["x" * 6000, "fine"])
        assert res[0].is_error and res[0].error.code == "InvalidDocument"


async def test_v31_api_version_also_works(standin: tuple[str, StandinState]) -> None:
    endpoint, state = standin
    async with AzureLanguageAnalyzer(endpoint, KEY, retry_total=0, api_version="v3.1") as az:
        (r,) = await az.analyze(["This is unacceptable, the report is broken."])
    assert r.label is SentimentLabel.NEGATIVE
    assert state.requests[0]["path"] == "/text/analytics/v3.1/sentiment"


async def test_wrong_key_is_permanent_and_server_errors_transient(standin: tuple[str, StandinState]) -> None:
    endpoint, state = standin
    async with AzureLanguageAnalyzer(endpoint, "wrong-key", retry_total=0) as az:
        with pytest.raises(PermanentError):
            await az.analyze(["hello"])
    state.fail_status = 429
    async with AzureLanguageAnalyzer(endpoint, KEY, retry_total=0) as az:
        with pytest.raises(TransientError) as exc:
            await az.analyze(["hello"])
    assert exc.value.retry_after == 0


async def test_analyze_email_falls_back_to_local_when_azure_fails(standin: tuple[str, StandinState]) -> None:
    endpoint, state = standin
    state.fail_status = 500
    ctx = CrmContext(entity_type=EntityType.CONTACT, opportunities=(Opportunity("OPP-1"),))
    email = EmailInput(subject="x", body="<p>We are very disappointed, the rollout is a mess.</p>", direction=Direction.INBOUND)
    async with AzureLanguageAnalyzer(endpoint, KEY, retry_total=0) as az:
        insight = await analyze_email(email, ctx, analyzer=az)
    assert insight.sentiment.analyzer == "mpnet (fallback)"
    assert insight.sentiment.fallback_reason == "azure-language failed: TransientError"
    assert insight.sentiment.error is None
    assert insight.sentiment.label is SentimentLabel.NEGATIVE
    assert "call_back" in {a.action for a in insight.actions}


async def test_analyze_email_with_azure(standin: tuple[str, StandinState]) -> None:
    endpoint, _ = standin
    settings = load_insights_settings({"INSIGHTS_AZURE_LANGUAGE_ENDPOINT": endpoint, "INSIGHTS_AZURE_LANGUAGE_KEY": KEY})
    az = build_analyzer(settings)
    assert isinstance(az, AzureLanguageAnalyzer)
    email = EmailInput(subject="RE: go-live", body="Thanks, the go-live was excellent!\n\n-- \nDana", body_type="text")  # type: ignore[arg-type]
    try:
        insight = await analyze_email(email, CrmContext(), analyzer=az)
    finally:
        await az.close()
    assert insight.sentiment.analyzer == "azure-language" and insight.sentiment.label is SentimentLabel.POSITIVE
    assert insight.to_pega_fields()["SentimentAnalyzer"] == "azure-language"


def test_settings_choose_local_without_endpoint() -> None:
    assert build_analyzer(load_insights_settings({})).name == "mpnet"
    assert build_analyzer(load_insights_settings({"INSIGHTS_ANALYZER": "vader"})).name == "vader"


def test_chunking_keeps_sentences_whole() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(1000))
    chunks = chunk_text(text, max_chars=500, max_chunks=100)
    assert all(len(c) <= 500 for c in chunks)
    assert all(c.endswith(".") for c in chunks)
    assert chunk_text("x" * 1200, max_chars=500) == ["x" * 500, "x" * 500, "x" * 200]


async def test_the_engine_settings_build_scores_with_azure_and_falls_back_in_its_worker(
        standin: tuple[str, StandinState]) -> None:
    """INSIGHTS_AZURE_LANGUAGE_* select Azure for the host's engine; when Azure fails, the local model
    scores in the engine's worker process and says it is a fallback."""
    from shared.insights.engine import InsightsEngine

    endpoint, state = standin
    settings = load_insights_settings({"INSIGHTS_AZURE_LANGUAGE_ENDPOINT": endpoint, "INSIGHTS_AZURE_LANGUAGE_KEY": KEY,
                                       "INSIGHTS_WORKER_PROCESSES": "1"})
    engine = InsightsEngine(settings)
    email = EmailInput(subject="x", body="We are very disappointed, the rollout is a mess.", body_type="text",  # type: ignore[arg-type]
                       direction=Direction.INBOUND)
    ctx = CrmContext(entity_type=EntityType.CONTACT, opportunities=(Opportunity("OPP-1"),))
    try:
        remote = await engine.email(email, ctx)
        state.fail_status = 400
        fallback = await engine.email(email, ctx)
    finally:
        engine.close()
        await engine.analyzer.close()  # type: ignore[attr-defined]
    assert remote.sentiment.analyzer == "azure-language"
    assert fallback.sentiment.analyzer == "mpnet (fallback)" and fallback.sentiment.label is SentimentLabel.NEGATIVE
    assert fallback.sentiment.fallback_reason == "azure-language failed: PermanentError"
    assert "call_back" in {a.action for a in fallback.actions}
