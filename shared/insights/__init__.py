"""Insights: sentiment of emails, appointments and attachments, and suggested actions with reasons.

Pure library (no Azure Functions, no settings read at import). See docs/insights.md.
"""

from shared.insights.analyze import analyze_appointment, analyze_email, suggest_follow_ups
from shared.insights.attachment_parsers import ExtractionLimits
from shared.insights.attachments import AttachmentExtractor, extract_attachment
from shared.insights.email_text import appointment_text, email_new_text, strip_quoted_and_signature
from shared.insights.models import (
    AppointmentInput,
    AttachmentInput,
    AttachmentInsight,
    BodyType,
    CrmContext,
    Direction,
    EmailInput,
    EntityType,
    Evidence,
    ExtractedText,
    Insight,
    ItemKind,
    Opportunity,
    SentenceSentiment,
    SentimentLabel,
    SentimentResult,
    SentimentScores,
    SkipReason,
    SuggestedAction,
    ThreadHistory,
)
from shared.insights.pega_fields import DEFAULT_FIELDS, PegaInsightFields, to_pega_fields
from shared.insights.rules import RuleFacts, RuleSet, load_rules, suggest_actions
from shared.insights.sentiment import SentimentAnalyzer, VaderAnalyzer, VaderConfig

__all__ = [
    "DEFAULT_FIELDS",
    "AppointmentInput",
    "AttachmentExtractor",
    "AttachmentInput",
    "AttachmentInsight",
    "BodyType",
    "CrmContext",
    "Direction",
    "EmailInput",
    "EntityType",
    "Evidence",
    "ExtractedText",
    "ExtractionLimits",
    "Insight",
    "ItemKind",
    "Opportunity",
    "PegaInsightFields",
    "RuleFacts",
    "RuleSet",
    "SentenceSentiment",
    "SentimentAnalyzer",
    "SentimentLabel",
    "SentimentResult",
    "SentimentScores",
    "SkipReason",
    "SuggestedAction",
    "ThreadHistory",
    "VaderAnalyzer",
    "VaderConfig",
    "analyze_appointment",
    "analyze_email",
    "appointment_text",
    "email_new_text",
    "extract_attachment",
    "load_rules",
    "strip_quoted_and_signature",
    "suggest_actions",
    "suggest_follow_ups",
    "to_pega_fields",
]
