"""Suggested actions: rules as data, evaluated by one small generic engine.

A rules file (YAML or JSON; see ``default_rules.yaml`` and docs/insights.md) lists rules; each
rule has a condition tree built from the leaf types ``sentiment``, ``phrases``, ``intent``,
``automated`` and ``context``, combined with ``all``/``any``/``not``. Intents are defined in the same
file by example sentences: a sentence matches an intent when its embedding is close to an example
and closer to the examples than to the counter-examples, so wording nobody listed still matches
("Are you free Thursday…" ≈ "Can we schedule a meeting next week?"). Every leaf that holds returns Evidence (the phrase and
sentence it matched, the sentiment drivers, the CRM value), so each suggestion explains itself.
Adding a rule is an edit of the file, not of this module.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.errors import ConfigurationError
from shared.insights.automated import AutomatedConfig, Classification, MessageClass, classify
from shared.insights.models import (
    CrmContext,
    Direction,
    EntityType,
    Evidence,
    ItemKind,
    SentimentLabel,
    SentimentResult,
    SuggestedAction,
)
from shared.insights.sentences import split_sentences

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")

# --- rule file models ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Negation(_Strict):
    """How far (in words, inside the same clause) a negator cancels a phrase match."""

    before: Annotated[int, Field(ge=0, le=10)] = 4
    after: Annotated[int, Field(ge=0, le=10)] = 0


class SentimentCondition(_Strict):
    type: Literal["sentiment"]
    labels: list[SentimentLabel] | None = None
    compound_max: float | None = None
    compound_min: float | None = None
    source: Literal["item", "attachments", "any"] = "item"


class PhraseCondition(_Strict):
    type: Literal["phrases"]
    phrases: list[str] = []  # matched as whole words, case-insensitive, any whitespace between words
    patterns: list[str] = []  # regular expressions, case-insensitive
    scope: list[Literal["subject", "body", "attachments"]] = ["subject", "body"]
    min_matches: Annotated[int, Field(ge=1)] = 1
    negation: Negation | None = Negation()  # null = negators do not cancel matches

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"invalid regex {p!r}: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _something(self) -> PhraseCondition:
        if not self.phrases and not self.patterns:
            raise ValueError("a phrases condition needs phrases or patterns")
        return self


class IntentCondition(_Strict):
    """A sentence of ``scope`` expresses one of ``intents`` (defined under ``intents:`` in the same file)."""

    type: Literal["intent"]
    intents: Annotated[list[str], Field(min_length=1)]
    scope: list[Literal["subject", "body", "attachments"]] = ["subject", "body"]
    negation: Negation | None = Negation()


class AutomatedCondition(_Strict):
    """The message is machine-written (headers or text; see shared/insights/automated.py)."""

    type: Literal["automated"]
    classes: list[MessageClass] | None = None  # None = any class


class ContextCondition(_Strict):
    type: Literal["context"]
    has_open_opportunity: bool | None = None
    entity_types: list[EntityType] | None = None
    directions: list[Direction] | None = None
    has_account_owner: bool | None = None
    days_since_last_outbound_without_reply_min: float | None = None
    thread_messages_min: int | None = None


class AllCondition(_Strict):
    type: Literal["all"]
    of: list[Condition]


class AnyCondition(_Strict):
    type: Literal["any"]
    of: list[Condition]


class NotCondition(_Strict):
    type: Literal["not"]
    condition: Condition


Condition = Annotated[
    SentimentCondition | PhraseCondition | IntentCondition | AutomatedCondition | ContextCondition | AllCondition
    | AnyCondition | NotCondition,
    Field(discriminator="type"),
]
AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()


class Rule(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    action: Annotated[str, Field(min_length=1, max_length=64)]
    title: str
    reason: str  # template; placeholders: {entity_type} {entity_name} {opportunity} {days_without_reply} {account_owner} {sentiment} {compound}
    priority: Annotated[int, Field(ge=1, le=9)] = 5
    due_in_hours: float | None = None
    applies_to: list[ItemKind] = [ItemKind.EMAIL]
    enabled: bool = True
    # machine-written mail (auto-replies, bounces, newsletters, notifications): skip the rule (default),
    # evaluate it only for such mail (the "no action" rule), or evaluate it either way
    automated: Literal["skip", "only", "any"] = "skip"
    when: Condition


class Intent(_Strict):
    """An intent, defined by example sentences (any language the sentence model reads; English here)."""

    examples: Annotated[list[str], Field(min_length=1)]
    counter_examples: list[str] = []  # near-misses: closer to one of these than to any example → no match
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.6  # cosine similarity to the nearest example
    margin: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02  # how much closer to an example than to a counter-example


class RuleSet(_Strict):
    version: Literal[1] = 1
    automated: AutomatedConfig = AutomatedConfig()
    intents: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")], Intent] = {}
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rule ids: {', '.join(dupes)}")
        missing = sorted({i for r in self.rules for i in _intents_used(r.when)} - set(self.intents))
        if missing:
            raise ValueError(f"rules use undefined intents: {', '.join(missing)}")
        return self

    @staticmethod
    def from_mapping(data: Mapping[str, Any]) -> RuleSet:
        try:
            return RuleSet.model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid insights rules: {exc}") from exc


def _intents_used(cond: Any) -> list[str]:
    if isinstance(cond, IntentCondition):
        return list(cond.intents)
    if isinstance(cond, (AllCondition, AnyCondition)):
        return [i for c in cond.of for i in _intents_used(c)]
    if isinstance(cond, NotCondition):
        return _intents_used(cond.condition)
    return []


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load a rules file (YAML or JSON). ``None`` = the packaged defaults (cached)."""
    if path is None:
        return _default_rules()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default_rules() -> RuleSet:
    return _load(DEFAULT_RULES_PATH)


def _load(path: Path) -> RuleSet:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read insights rules {path}: {exc}") from exc
    if path.suffix.lower() == ".json":
        data = json.loads(raw)
    else:
        import yaml  # type: ignore[import-untyped]

        data = yaml.safe_load(raw)
    if not isinstance(data, dict):
        raise ConfigurationError(f"insights rules {path}: top level must be a mapping")
    return RuleSet.from_mapping(data)


# --- facts --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleFacts:
    """Everything a rule may look at for one item."""

    kind: ItemKind
    context: CrmContext
    direction: Direction | None = None
    subject: str = ""
    body: str = ""
    attachments: tuple[tuple[str, str], ...] = ()  # (name, text)
    sentiment: SentimentResult | None = None
    attachment_sentiments: tuple[tuple[str, SentimentResult], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # Graph internetMessageHeaders (name, value)
    # sentence → unit-length embedding; None = the sentence model is unavailable (intents never match)
    embed: Callable[[Sequence[str]], Any] | None = None
    _sentences: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def classification(self, config: AutomatedConfig) -> Classification | None:
        """Machine-written class of an inbound email (computed once); outbound items and appointments are never."""
        if "class" not in self._cache:
            auto = self.kind is ItemKind.EMAIL and self.direction is Direction.INBOUND
            self._cache["class"] = classify(self.headers, self.subject, self.body, config) if auto else None
        result: Classification | None = self._cache["class"]
        return result

    def sentences(self, scope: str) -> list[tuple[str, str]]:
        """(where, sentence) pairs of one scope, split once and cached."""
        if scope not in self._sentences:
            if scope == "subject":
                self._sentences[scope] = [self.subject] if self.subject.strip() else []
            elif scope == "body":
                self._sentences[scope] = [s.text for s in split_sentences(self.body)]
            else:
                self._sentences[scope] = [
                    f"{name}\x00{s.text}" for name, text in self.attachments for s in split_sentences(text)
                ]
        out = []
        for s in self._sentences[scope]:
            if scope == "attachments":
                name, _, text = s.partition("\x00")
                out.append((f"attachment {name}", text))
            else:
                out.append((scope, s))
        return out

    def days_without_reply(self) -> float | None:
        # an inbound item is itself the reply to whatever we sent before it
        if self.direction is Direction.INBOUND:
            return None
        return self.context.days_since_last_outbound_without_reply()


# --- phrase matching ----------------------------------------------------------------------------
_NEGATORS = frozenset(
    {
        "no", "not", "never", "without", "nothing", "none", "nobody", "neither", "nor", "hardly",
        "cannot", "rather", "unnecessary",
    }
)  # fmt: skip
# negator-looking phrases that do not negate what follows
_NOT_NEGATING = re.compile(
    r"\b(?:can(?:'|’)?t\s+wait|cannot\s+wait|can\s+not\s+wait|not\s+only|no\s+doubt|nothing\s+but|why\s+(?:don(?:'|’)t|not)|no\s+later\s+than"
    r"|not\s+sure\s+(?:if|whether)|never\s+mind|(?:can|couldn|wouldn|won|shouldn)(?:'|’)?t\s+(?:we|you)|no\s+problem)\b",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(r"[,;:()\u2013\u2014]|\b(?:but|however|although|though|yet|and\s+then|so)\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")


def _is_negator(tok: str) -> bool:
    t = tok.lower().replace("’", "'")
    return t in _NEGATORS or t.endswith("n't")


def _negated(sentence: str, start: int, end: int, neg: Negation) -> str | None:
    """The negator word cancelling the match at [start, end), or None."""
    before = sentence[:start]
    cut = [m.end() for m in _CLAUSE_BREAK.finditer(before)]
    before = before[cut[-1] :] if cut else before
    before = _NOT_NEGATING.sub(" ", before)
    words = _WORD.findall(before)[-neg.before :] if neg.before else []
    for w in reversed(words):
        if _is_negator(w):
            return w
    if neg.after:
        after = sentence[end:]
        m = _CLAUSE_BREAK.search(after)
        after = after[: m.start()] if m else after
        after = _NOT_NEGATING.sub(" ", after)
        for w in _WORD.findall(after)[: neg.after]:
            if _is_negator(w):
                return w
    return None


def _negator_inside(matched: str, pattern: str) -> bool:
    """A regex with gaps can swallow a negator ("does not work for you"); one the pattern spells out is meant."""
    text = _NOT_NEGATING.sub(" ", matched)
    return any(_is_negator(w) and w.lower() not in pattern.lower() for w in _WORD.findall(text))


@functools.lru_cache(maxsize=512)
def _phrase_regex(phrase: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in phrase.split()]
    body = r"\s+".join(words)
    # word boundaries only where the phrase starts/ends with a word character
    left = r"\b" if re.match(r"\w", phrase) else ""
    right = r"\b" if re.search(r"\w$", phrase) else ""
    return re.compile(left + body + right, re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# --- evaluation ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outcome:
    matched: bool
    evidence: tuple[Evidence, ...] = ()


_NO = Outcome(False)


def evaluate(cond: Condition, facts: RuleFacts, ruleset: RuleSet | None = None) -> Outcome:
    rs = ruleset or load_rules()
    if isinstance(cond, AllCondition):
        ev: list[Evidence] = []
        for c in cond.of:
            o = evaluate(c, facts, rs)
            if not o.matched:
                return _NO
            ev.extend(o.evidence)
        return Outcome(True, tuple(ev))
    if isinstance(cond, AnyCondition):
        ev = []
        hit = False
        for c in cond.of:
            o = evaluate(c, facts, rs)
            if o.matched:
                hit = True
                ev.extend(o.evidence)
        return Outcome(hit, tuple(ev)) if hit else _NO
    if isinstance(cond, NotCondition):
        return _NO if evaluate(cond.condition, facts, rs).matched else Outcome(True)
    if isinstance(cond, SentimentCondition):
        return _eval_sentiment(cond, facts)
    if isinstance(cond, PhraseCondition):
        return _eval_phrases(cond, facts)
    if isinstance(cond, ContextCondition):
        return _eval_context(cond, facts)
    if isinstance(cond, IntentCondition):
        return _eval_intent(cond, facts, rs)
    if isinstance(cond, AutomatedCondition):
        found = facts.classification(rs.automated)
        if found is None or (cond.classes is not None and found.kind not in cond.classes):
            return _NO
        return Outcome(True, (Evidence("automated", f"{found.kind.value}: {found.reason}"),))
    raise TypeError(f"unknown condition {type(cond).__name__}")  # pragma: no cover


def _sentiment_holds(cond: SentimentCondition, r: SentimentResult) -> bool:
    if r.error:
        return False
    if cond.labels is not None and r.label not in cond.labels:
        return False
    if cond.compound_max is not None and r.scores.compound > cond.compound_max:
        return False
    return not (cond.compound_min is not None and r.scores.compound < cond.compound_min)


def _eval_sentiment(cond: SentimentCondition, facts: RuleFacts) -> Outcome:
    candidates: list[tuple[str, SentimentResult]] = []
    if cond.source in ("item", "any") and facts.sentiment is not None:
        candidates.append(("item", facts.sentiment))
    if cond.source in ("attachments", "any"):
        candidates.extend((f"attachment {n}", r) for n, r in facts.attachment_sentiments)
    ev: list[Evidence] = []
    for where, r in candidates:
        if not _sentiment_holds(cond, r):
            continue
        detail = f"{where}: sentiment {r.label.value} (compound {r.scores.compound:+.2f})"
        ev.append(Evidence("sentiment", detail))
        ev.extend(Evidence("sentiment", f"{where}: driver ({d.compound:+.2f})", sentence=d.text) for d in r.drivers)
    return Outcome(True, tuple(ev)) if ev else _NO


def _eval_phrases(cond: PhraseCondition, facts: RuleFacts) -> Outcome:
    regexes = [(p, _phrase_regex(p), False) for p in cond.phrases]
    regexes += [(p, _pattern_regex(p), True) for p in cond.patterns]
    ev: list[Evidence] = []
    seen: set[tuple[str, str]] = set()
    for scope in cond.scope:
        for where, sentence in facts.sentences(scope):
            for label, rx, is_pattern in regexes:
                for m in rx.finditer(sentence):
                    if cond.negation is not None and (
                        _negated(sentence, m.start(), m.end(), cond.negation)
                        or (is_pattern and _negator_inside(m.group(0), label))
                    ):
                        continue
                    key = (label, sentence)
                    if key in seen:
                        break
                    seen.add(key)
                    ev.append(Evidence("phrases", f"{where}: matched {m.group(0)!r}", phrase=label, sentence=sentence))
                    break
    distinct = {e.phrase for e in ev}
    return Outcome(True, tuple(ev[:10])) if len(distinct) >= cond.min_matches else _NO


def _intent_vectors(rs: RuleSet, name: str, embed: Callable[[Sequence[str]], Any]) -> tuple[Any, Any]:
    """Example and counter-example embeddings of one intent, computed once per rule set."""
    key = (id(rs), name)
    got = _INTENT_CACHE.get(key)
    if got is None or got[0] is not rs:
        intent = rs.intents[name]
        got = (rs, embed(intent.examples), embed(intent.counter_examples) if intent.counter_examples else None)
        if len(_INTENT_CACHE) > 256:
            _INTENT_CACHE.clear()
        _INTENT_CACHE[key] = got
    return got[1], got[2]


_INTENT_CACHE: dict[tuple[int, str], tuple[RuleSet, Any, Any]] = {}


def _eval_intent(cond: IntentCondition, facts: RuleFacts, rs: RuleSet) -> Outcome:
    if facts.embed is None:
        return _NO
    pairs = [(where, s) for scope in cond.scope for where, s in facts.sentences(scope) if len(s.split()) >= 3]
    if not pairs:
        return _NO
    try:
        vectors = facts.embed([s for _, s in pairs])
    except Exception:  # the sentence model failed: phrase rules still work
        return _NO
    ev: list[Evidence] = []
    for name in cond.intents:
        intent = rs.intents[name]
        try:
            ex, counter = _intent_vectors(rs, name, facts.embed)
        except Exception:
            return _NO
        sims = vectors @ ex.T
        anti = (vectors @ counter.T).max(axis=1) if counter is not None else None
        for i, (where, sentence) in enumerate(pairs):
            j = int(sims[i].argmax())
            score = float(sims[i, j])
            if score < intent.threshold:
                continue
            if anti is not None and float(anti[i]) + intent.margin > score:
                continue
            if cond.negation is not None and _negated_anywhere(sentence, cond.negation):
                continue
            ev.append(Evidence("intent", f"{where}: {name} (similar to {intent.examples[j]!r}, {score:.2f})",
                               phrase=name, sentence=sentence))  # fmt: skip
    return Outcome(True, tuple(ev[:10])) if ev else _NO


_LEADING_NEGATION = re.compile(r"^\W*(?:no\s+need|there\s+is\s+no\s+need|not\s+(?:now|necessary|needed|interested))\b", re.IGNORECASE)


def _negated_anywhere(sentence: str, neg: Negation) -> bool:
    """A sentence opening with a refusal ("No need for another meeting", "Not interested in a demo")."""
    return bool(_LEADING_NEGATION.match(sentence))


def _eval_context(cond: ContextCondition, facts: RuleFacts) -> Outcome:
    ctx = facts.context
    ev: list[Evidence] = []
    if cond.has_open_opportunity is not None:
        opps = ctx.open_opportunities
        if bool(opps) != cond.has_open_opportunity:
            return _NO
        if opps:
            names = ", ".join(f"{o.id}" + (f" ({o.name})" if o.name else "") for o in opps[:3])
            ev.append(Evidence("context", f"open opportunity: {names}"))
        else:
            ev.append(Evidence("context", "no open opportunity"))
    if cond.entity_types is not None:
        if ctx.entity_type not in cond.entity_types:
            return _NO
        ev.append(Evidence("context", f"associated {ctx.entity_type.value}" + (f" {ctx.entity_name}" if ctx.entity_name else "")))
    if cond.directions is not None:
        if facts.direction not in cond.directions:
            return _NO
        ev.append(Evidence("context", f"direction {facts.direction.value if facts.direction else 'none'}"))
    if cond.has_account_owner is not None:
        if bool(ctx.account_owner) != cond.has_account_owner:
            return _NO
        if ctx.account_owner:
            ev.append(Evidence("context", f"account owner {ctx.account_owner}"))
    if cond.days_since_last_outbound_without_reply_min is not None:
        days = facts.days_without_reply()
        if days is None or days < cond.days_since_last_outbound_without_reply_min:
            return _NO
        ev.append(Evidence("context", f"no reply for {days:.1f} days to the last outbound email"))
    if cond.thread_messages_min is not None:
        if ctx.thread.message_count < cond.thread_messages_min:
            return _NO
        ev.append(Evidence("context", f"{ctx.thread.message_count} messages in thread"))
    return Outcome(True, tuple(ev))


class _Defaults(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _reason(rule: Rule, facts: RuleFacts) -> str:
    ctx = facts.context
    opps = ctx.open_opportunities
    days = facts.days_without_reply()
    values = _Defaults(
        entity_type=ctx.entity_type.value,
        entity_name=ctx.entity_name or (ctx.entity_id or "the sender"),
        opportunity=(opps[0].name or opps[0].id) if opps else "",
        days_without_reply=f"{days:.0f}" if days is not None else "",
        account_owner=ctx.account_owner or "the account owner",
        sentiment=facts.sentiment.label.value if facts.sentiment else "",
        compound=f"{facts.sentiment.scores.compound:+.2f}" if facts.sentiment else "",
        message_class=found.kind.value.replace("_", " ") if (found := facts._cache.get("class")) else "",
    )
    try:
        return rule.reason.format_map(values)
    except (ValueError, IndexError, AttributeError):  # a malformed template must not fail the sync
        return rule.reason


def suggest_actions(facts: RuleFacts, rules: RuleSet | None = None) -> tuple[SuggestedAction, ...]:
    """Evaluate every enabled rule; one suggestion per action (the most urgent rule's), ordered by priority.

    Deterministic: depends only on ``facts`` and ``rules`` (order of rules breaks priority ties).
    """
    ruleset = rules or load_rules()
    by_action: dict[str, SuggestedAction] = {}
    order: list[str] = []
    automated = facts.classification(ruleset.automated) is not None
    for rule in ruleset.rules:
        if not rule.enabled or facts.kind not in rule.applies_to:
            continue
        if (rule.automated == "skip" and automated) or (rule.automated == "only" and not automated):
            continue
        outcome = evaluate(rule.when, facts, ruleset)
        if not outcome.matched:
            continue
        suggestion = SuggestedAction(
            action=rule.action,
            title=rule.title,
            rule_id=rule.id,
            priority=rule.priority,
            reason=_reason(rule, facts),
            evidence=outcome.evidence,
            due_in_hours=rule.due_in_hours,
        )
        prev = by_action.get(rule.action)
        if prev is None:
            by_action[rule.action] = suggestion
            order.append(rule.action)
        else:
            keep, other = (suggestion, prev) if suggestion.priority < prev.priority else (prev, suggestion)
            by_action[rule.action] = SuggestedAction(
                action=keep.action, title=keep.title, rule_id=keep.rule_id, priority=keep.priority,
                reason=keep.reason, evidence=keep.evidence, due_in_hours=keep.due_in_hours,
                also_matched_rules=(*keep.also_matched_rules, other.rule_id, *other.also_matched_rules),
            )  # fmt: skip
    ranked = sorted(order, key=lambda a: (by_action[a].priority, order.index(a)))
    return tuple(by_action[a] for a in ranked)


def rule_ids(rules: RuleSet | None = None) -> Sequence[str]:
    return [r.id for r in (rules or load_rules()).rules]
