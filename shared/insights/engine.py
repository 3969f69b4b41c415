"""The insights a host runs, built once per process from its INSIGHTS_* settings.

Why one object: the analyzer (local model, VADER or Azure AI Language), the suggested-action rules
(INSIGHTS_RULES_FILE), the attachment limits and the model's worker processes are all chosen by
settings, and all are costly to build (a model load, a worker pool, a parser process). Every round
of the host shares them; a change of settings (tests) gets its own engine.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref

from shared.config import InsightsSettings
from shared.insights.analyze import CoreRunner, ThreadRunner, analyze_appointment, analyze_email
from shared.insights.attachments import AttachmentExtractor
from shared.insights.model_workers import LocalKind, ModelWorkers
from shared.insights.models import AppointmentInput, CrmContext, EmailInput, Insight
from shared.insights.rules import RuleSet, load_rules
from shared.insights.sentiment import SentimentAnalyzer
from shared.insights.settings import build_analyzer, extraction_limits


class InsightsEngine:
    """Raises ConfigurationError (on creation) for an unreadable or invalid rules file."""

    def __init__(self, settings: InsightsSettings) -> None:
        self.settings = settings
        self.rules: RuleSet = load_rules(settings.rules_file or None)
        self.extractor = AttachmentExtractor(extraction_limits(settings))
        # Azure AI Language's client is bound to the event loop it first ran on: one per loop
        self._local = None if settings.azure_configured else build_analyzer(settings)
        self._remote: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SentimentAnalyzer] = weakref.WeakKeyDictionary()
        local_kind: LocalKind = "vader" if self._local is not None and settings.analyzer == "vader" else "model"
        self.runner: CoreRunner
        if settings.worker_processes > 0:
            # a remote analyzer scores remotely; the intents (and its fallback) still run the local model
            self.runner = ModelWorkers(local=local_kind, rules=self.rules, processes=settings.worker_processes,
                                       nice=settings.worker_nice, sentiment_model=settings.sentiment_model)
        else:
            self.runner = ThreadRunner(self._local, self.rules)

    @property
    def busy(self) -> bool:
        """The local model has a job for every process it has: a new analysis would wait."""
        return bool(getattr(self.runner, "busy", False))

    @property
    def analyzer(self) -> SentimentAnalyzer:
        if self._local is not None:
            return self._local
        loop = asyncio.get_running_loop()
        found = self._remote.get(loop)
        if found is None:
            found = self._remote[loop] = build_analyzer(self.settings)
        return found

    async def email(self, email: EmailInput, context: CrmContext) -> Insight:
        return await analyze_email(email, context, analyzer=self.analyzer, rules=self.rules, extractor=self.extractor,
                                   runner=self.runner)  # fmt: skip

    async def appointment(self, appointment: AppointmentInput, context: CrmContext) -> Insight:
        return await analyze_appointment(appointment, context, analyzer=self.analyzer, rules=self.rules,
                                         extractor=self.extractor, runner=self.runner)  # fmt: skip

    def close(self) -> None:
        self.extractor.close()
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()


_lock = threading.Lock()
_engines: dict[str, InsightsEngine] = {}


def insights_engine(settings: InsightsSettings | None = None) -> InsightsEngine:
    """The process's engine for ``settings`` (default: INSIGHTS_* from the environment, read now)."""
    settings = settings or InsightsSettings()
    key = settings.model_dump_json()
    with _lock:
        found = _engines.get(key)
        if found is None:
            found = _engines[key] = InsightsEngine(settings)
            atexit.register(found.close)
        return found
