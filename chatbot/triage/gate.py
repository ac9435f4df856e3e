"""Three-level triage: the emergency rules and a trained classifier, decided together.

    emergency  the emergency line instead of an answer: a rule fires and the emergency score clears
               the rules threshold, or the classifier is confident: the score clears the emergency
               threshold and the message shows which emergency (evidence, below), or it clears the
               higher "unnamed" threshold without. All are chosen on the dev split. The score is
               P(emergency), blended for the default head with the share of emergencies among the
               nearest labelled examples (`Head.emergency_score`)
    urgent     the answer, headed by advice. Either graded (`graded`, issue #28): the score clears the
               graded threshold but the classifier is not confident, so an emergency is not ruled out
               and the banner names what to watch for; or P(urgent) / (P(urgent) + P(routine)) clears
               the urgent threshold: see a doctor today
    routine    everything else

The category shown (its "while you wait" advice, or what to watch for) must have evidence in the
message: a rule's match or one of its red-flag patterns, or a near labelled emergency of that
category whose words the message has (`evidence.py`). Without evidence no category is named and the
advice is general. Files from before issue #28 have no graded or unnamed threshold: both are the
emergency one, and nothing is graded.

The frozen head (`head.npz`) reads the MiniLM sentence vector that retrieval computes for the question
anyway (pass it as `vector`), so it costs a matrix product and a nearest-neighbour lookup. A head
trained on a fine-tuned encoder (`tuned.npz`, `python -m chatbot.triage.tune`) carries low-rank
adapters; its vector comes from a private copy of the encoder with them merged in (`tuned.py`), one
more encoder pass per message.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.triage import evidence as proof
from chatbot.triage.guidance import (
    FALLBACK,
    GENERAL_SIGNS,
    GRADED_ADVICE,
    GUIDANCE,
    NOT_ENGLISH,
    URGENT_ADVICE,
    WATCH_FOR,
)
from chatbot.triage.language import non_english
from chatbot.triage.model import Head, Neighbour, TriageModelError
from chatbot.triage.tuned import TUNED_FILE

DEFAULT_HEAD = TUNED_FILE
"""The classifier file used unless another is given: the head on the fine-tuned encoder, chosen over
the frozen encoder's `head.npz` on the dev split (docs/benchmarks.md)."""

if TYPE_CHECKING:
    from chatbot.safety.emergency import EmergencyGate
    from chatbot.settings import SafetySettings
    from ingestion.embedding import Embedder

log = logging.getLogger(__name__)


PAST_MIN_WORDS = 30
"""Only a message longer than this is read sentence by sentence for a dated past (a short one is a
question, decided whole)."""
PAST = re.compile(
    r"\b(?:(?:in|since|back in|during) (?:19|20)\d\d\b|"
    r"last (?:year|winter|summer|spring|autumn|fall|christmas)|"
    r"(?:\d+|a|an|one|two|three|four|five|six|few|several|many) (?:years?|months?) ago|years ago|"
    r"as a (?:child|kid|baby|toddler|teenager)|when (?:i|he|she|they) (?:was|were) (?:a )?"
    r"(?:child|kid|little|young|baby|toddler|teenager))",
    re.IGNORECASE,
)
"""A dated past: a year, a season or year ago, childhood."""
RECENT = re.compile(
    r"\b(?:right now|now (?:he|she|they|i)|just now|tonight|today|this (?:morning|afternoon|evening|week)|"
    r"last night|yesterday|(?:an?|one|two|few|\d+) (?:minutes?|hours?|days?) ago|still|again)\b",
    re.IGNORECASE,
)
"""Words that bring an event to now: a message with them is decided whole."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    return [p.strip() for p in _SENTENCE_END.split(text) if p.strip()]


@dataclass
class TriageResult:
    """One decision and everything that explains it."""

    level: str
    category: str = ""
    probability: float = 0.0
    """The classifier's P(emergency), or for a head with `neighbours` the emergency score it blends
    with its nearest labelled examples (`Head.emergency_score`); 0 when the classifier did not run."""
    reasons: list[str] = field(default_factory=list)
    decided_by: str = ""
    """"rules", "classifier" or "" (routine)."""
    probabilities: dict[str, float] = field(default_factory=dict)
    nearest: list[Neighbour] = field(default_factory=list)
    language: str | None = None
    """The language the message seems to be in when it is not English."""
    graded: bool = False
    """An urgent level given because an emergency could not be ruled out (the score is between the
    graded and the confident thresholds): the answer is given under a banner naming what to watch for
    (`Triage.header`)."""
    evidence: proof.Evidence = proof.NONE
    """Why `category` is an emergency category: a rule's match or a near labelled emergency with the
    category's words (`evidence.py`); `proof.NONE` when no emergency category is named."""
    seconds: float = 0.0

    @property
    def emergency(self) -> bool:
        return self.level == "emergency"

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "category": self.category,
            "probability": round(self.probability, 4),
            "reasons": self.reasons,
            "decided_by": self.decided_by,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "nearest": [n.as_dict() for n in self.nearest],
            "language": self.language,
            "graded": self.graded,
            "evidence": self.evidence.as_dict(),
        }


SEARCH = (
    "not urgent: the message names no one and nothing happening now (a search or a topic, as the "
    "rules read it)"
)

VETO = (
    "The emergency score cleared the threshold, but the message names no one and nothing happening now "
    "(a topic or a search, as the rules read it): not raised"
)


def veto_applies(meta: dict[str, Any], text: str) -> bool:
    """Whether the "names no one" veto is checked for `text`, by the head's `needs_someone`: true (or
    absent: files from before 2026-11-29) always, false never, a number N for messages of at most N
    words (a search such as "warfarin INR target" or "INR 4.5")."""
    rule = meta.get("needs_someone", True)
    if isinstance(rule, bool):
        return rule
    return len(text.split()) <= int(rule)


QUERY = (
    "the message is short and names no one (a question about a thing, such as a medicine), which "
    "needs ≥ {threshold:.2f} from the classifier alone"
)


def asks_about_a_thing(meta: dict[str, Any], text: str) -> bool:
    """A message of at most the head's `query_words` words that names no one (`names_no_one`): "lorcet
    7.5 liquid whats in this", "vyvanse 10 what is all in this pill". Issue #28: the classifier alone
    takes such a message over only above the head's "query" threshold; under it the answer is graded.
    Both are chosen on dev (`tune.query_band`); files without them: off."""
    words = int(meta.get("query_words", 0))
    return words > 0 and len(text.split()) <= words and names_no_one(text)


def names_no_one(text: str) -> bool:
    """No person, and no "now", "help" or "please", in the message ("asthma inhalers", "What are the
    symptoms of sepsis?"): the rules' own test for a situation, applied to a classifier-only alarm as
    the head's `needs_someone` says (`veto_applies`). For the frozen head, always: on its dev data it
    removed false alarms and no emergency (MedQuAD sample: 82 alarms of 2,000 down to 4). For the
    fine-tuned head, messages of at most 4 words only: on hand-written dev the veto on every message
    cost 13 real emergencies ("stabbed in the leg, theres a lot of blood") to spare 4 false alarms,
    while searches such as "INR 4.5" or "nosebleed" were alarms without it. English only."""
    from chatbot.safety import emergency as safety

    return not safety._PERSONAL.search(" ".join(text.split()))


def known_categories() -> tuple[str, ...]:
    """Emergency categories with their own "while you wait" guidance (the rules' and `GUIDANCE`'s):
    a classifier's alarm is given the nearest of these (hand-written examples name their own)."""
    from chatbot.safety.emergency import EMERGENCY_GUIDANCE

    return (*EMERGENCY_GUIDANCE, *GUIDANCE)


def rule_evidence(text: str, category: str) -> str:
    """The words in `text` that the rule for `category` matched (for explanations only); for a
    category the rules chose from another one's words ("CANT TALK" in an asthma attack: breathing),
    those words."""
    try:
        from chatbot.safety.emergency import _PRIORITY, _RED_FLAGS

        flat = " ".join(text.split())
        match = _RED_FLAGS[category].search(flat) or next(
            (m for m in (_RED_FLAGS[c].search(flat) for c in _PRIORITY) if m), None
        )
    except (ImportError, KeyError):
        return ""
    return match.group(0).strip() if match else ""


class Triage:
    """The combined gate. Collaborators are passed in or built on first use."""

    def __init__(
        self,
        settings: SafetySettings | None = None,
        *,
        embedder: Embedder | None = None,
        head_path: Path | None = None,
        gate: EmergencyGate | None = None,
        neighbours: int = 3,
    ) -> None:
        from chatbot.safety.emergency import EmergencyGate
        from chatbot.settings import SafetySettings

        self.settings = settings or SafetySettings()
        self.gate = gate or EmergencyGate(self.settings)
        self._embedder = embedder
        self.head_path = head_path or DEFAULT_HEAD
        self.neighbours = neighbours
        self._head: Head | None = None
        self._tuned: Any = None
        self._categories: list[str] | None = None

    @property
    def head(self) -> Head:
        if self._head is None:
            self._head = Head.load(self.head_path)
            if self._embedder is not None:
                self._check_encoder(self._embedder)
        return self._head

    @property
    def encoder(self) -> Embedder:
        """The encoder whose vectors the head reads: the fine-tuned copy for a head with adapters,
        else the (retrieval) embedder."""
        head = self.head
        if not head.adapter:
            return self.embedder
        if self._tuned is None:
            from chatbot.triage.tuned import shared_tuned_encoder

            base = str(head.meta.get("base_encoder", ""))
            self._tuned = shared_tuned_encoder(head.adapter, head.encoder, base)
        return self._tuned

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from ingestion.embedding import PACKAGED_MINILM, shared_embedder

            self._embedder = shared_embedder(PACKAGED_MINILM)
            if self._head is not None:
                self._check_encoder(self._embedder)
        return self._embedder

    def _check_encoder(self, embedder: Embedder) -> None:
        head = self.head
        if head.adapter:  # the head brings its own encoder (`encoder`), checked when it is built
            return
        if head.encoder != embedder.id or head.dim != embedder.dim:
            raise TriageModelError(
                f"the triage classifier {self.head_path} was trained on {head.encoder} "
                f"({head.dim} dimensions) "
                f"but is given vectors from {embedder.id} ({embedder.dim}): use that encoder for triage, or "
                "retrain with `python -m chatbot.triage.train`"
            )

    def load(self) -> Triage:
        """Load the head and check it against the encoder now (fail at start-up, not mid-chat)."""
        if not self.head.adapter:
            self._check_encoder(self.embedder)
        _ = self.encoder
        return self

    def evidence(self, text: str, sims: Any, rule: str | None = None) -> proof.Evidence:
        """The emergency category `text` shows evidence of, or `proof.NONE`: the rule that fired
        (`rule`), else a red-flag pattern of a rule (`evidence.from_red_flags`), else a near labelled
        emergency (`sims`: the message's similarities to the examples; at least the head's
        `evidence_floor`) whose category's words are in the message (`evidence.from_neighbours`)."""
        if rule is not None:
            return proof.Evidence(rule, "rule", (rule_evidence(text, rule),))
        found = proof.from_red_flags(text)
        head = self.head
        if found.source or head.example_vectors is None:
            return found
        if self._categories is None:  # hand-written examples' own categories, mapped once
            known = known_categories()
            self._categories = [
                proof.canonical(c, known) if level == "emergency" else ""
                for c, level in zip(head.example_categories, head.example_levels, strict=True)
            ]
        floor = float(head.meta.get("evidence_floor", proof.FLOOR))
        return proof.from_neighbours(sims, text, head.example_texts, head.levels(), self._categories, floor)

    def embed(self, texts: Sequence[str]) -> Any:
        """The vectors the head reads, for `texts` (pass them to `assess`)."""
        return self.encoder.embed_documents(list(texts))

    def assess(self, text: str, vector: Sequence[float] | None = None) -> TriageResult:
        """The level of `text`; `vector` is its sentence vector from the triage encoder (`encoder`:
        the retrieval embedder for the frozen head), if known."""
        started = time.perf_counter()
        result = self._decide(text, vector)
        if result.level == "emergency" and not result.language:
            self._about_the_past(text, result)
        result.seconds = time.perf_counter() - started
        return result

    def _about_the_past(self, text: str, result: TriageResult) -> None:
        """A long message whose alarm rests on a sentence about a dated past ("my son was in intensive
        care in 2016", "since my gran collapsed last winter"): the rest of the message is decided
        alone, and when it is not an emergency the answer is given under the graded warning instead
        of the takeover (issue #28: a relative's past event, a long story with an incidental scary
        word). Recent times ("last night", "an hour ago", "yesterday") are never the past here."""
        if len(text.split()) <= PAST_MIN_WORDS:
            return
        parts = split_sentences(text)
        dated = [p for p in parts if PAST.search(p) and not RECENT.search(p)]
        rest = " ".join(p for p in parts if p not in dated).strip()
        if not dated or not rest or RECENT.search(rest):
            return
        alone = self._decide(rest, None)
        if alone.level == "emergency" and (alone.decided_by == "rules" or alone.evidence.source):
            return  # the rest names an emergency of its own
        level = (
            "an emergency by score alone, with no emergency named"
            if alone.level == "emergency"
            else alone.level
        )
        result.level, result.graded = "urgent", True
        when = PAST.search(dated[0])
        result.reasons.append(
            f"the alarm rests on a sentence about the past (“{when.group(0) if when else ''}”); the rest "
            f"of the message alone is {level}: answered under a warning naming what to watch for"
        )

    def _decide(self, text: str, vector: Sequence[float] | None) -> TriageResult:
        language = non_english(text)
        if not self.settings.emergency_gate:
            return TriageResult("routine", reasons=["the emergency gate is turned off"], language=language)
        head = self.head
        rule = self.gate.classify(text)
        if vector is None:
            vector = self.encoder.embed_query(text)
        from chatbot.triage.features import rule_features

        probs = head.probabilities(vector, rule_features(text, rule is not None))
        pu = probs["urgent"]
        sims = head.similarities(vector)  # to the labelled examples: once per decision
        pe, share = head.emergency_score(sims, probs["emergency"])  # P(emergency), or blended
        th_e, th_u = head.thresholds["emergency"], head.thresholds["urgent"]
        nearest = head.nearest(sims, self.neighbours)
        result = TriageResult(
            "routine", probability=pe, probabilities=probs, nearest=nearest, language=language
        )
        th_r = head.thresholds.get("rules", 0.0)  # files from before 2026-11-29: the rules always decide
        th_g = min(head.thresholds.get("graded", th_e), th_e)  # files from before issue #28: no graded band
        th_n = max(head.thresholds.get("unnamed", th_e), th_e)  # without evidence of which emergency
        name = "P(emergency)" if share is None else "emergency score"
        said = f"classifier: {name} {pe:.2f} (threshold {th_e:.2f}), P(urgent) {pu:.2f}"
        if share is not None:
            knn = head.meta["neighbours"]
            said += (
                f"; the score is {1 - knn['weight']:.2g} x P(emergency) {probs['emergency']:.2f} + "
                f"{knn['weight']:.2g} x the emergencies' share {share:.2f} among the {knn['k']} nearest "
                "labelled examples"
            )
        fired, vetoed = "", False
        search = veto_applies(head.meta, text) and not language and names_no_one(text)
        if rule is not None:
            matched = rule_evidence(text, rule)
            fired = f"rule '{rule}' fired" + (f" on “{matched}”" if matched else "")
        not_raised = (
            f"{fired}, but a rule's alarm needs {name} ≥ {th_r:.2f} from the classifier "
            "(chosen on dev, where such alarms were mostly false): not raised"
        )
        if rule is not None and pe >= min(th_r, th_e):  # raised: the rule names the kind
            result.level, result.category, result.decided_by = "emergency", rule, "rules"
            result.evidence = self.evidence(text, sims, rule)
            result.reasons = [fired, said]
        elif pe >= th_g and search:
            vetoed = True  # a search or a topic: not urgent either
            result.reasons = [said, not_raised if rule else "no rule fired", VETO]
        elif pe >= th_g:
            found = self.evidence(text, sims, rule)
            result.evidence, result.category = found, found.category
            th_q = head.thresholds.get("query", 0.0)  # files from before: no such band
            query = pe < th_q and not language and asks_about_a_thing(head.meta, text)
            if pe >= th_e and (found.source or pe >= th_n) and not query:  # confident
                result.level, result.decided_by = "emergency", "classifier"
                result.reasons = [
                    f"classifier: {name} {pe:.2f} ≥ threshold {th_e:.2f}"
                    + (
                        ""
                        if found.source
                        else f", and ≥ {th_n:.2f} as a message with no evidence of which one"
                    ),
                    "no rule fired",
                    found.describe(),
                ]
            else:  # an emergency is not ruled out: the answer, under what to watch for
                result.level, result.decided_by, result.graded = "urgent", "classifier", True
                short = (
                    f"under the confident threshold {th_e:.2f}"
                    if pe < th_e
                    else QUERY.format(threshold=th_q)
                    if query
                    else f"the message shows no evidence of which emergency, which needs ≥ {th_n:.2f}"
                )
                result.reasons = [
                    f"classifier: {name} {pe:.2f} ≥ {th_g:.2f} (graded) but {short}: an emergency is not "
                    "ruled out, so the answer is given under a warning naming what to watch for",
                    not_raised if rule else "no rule fired",
                    found.describe(),
                ]
        elif rule is not None:
            result.reasons = [said, not_raised]
        urgent_share = pu / max(pu + probs["routine"], 1e-9)
        if result.level == "routine" and not vetoed and urgent_share >= th_u:
            result.reasons = [
                said + f"; urgent rather than routine {urgent_share:.2f} ≥ {th_u:.2f}",
                *(result.reasons[1:] or ["no rule fired"]),
            ]
            if search:  # "warfarin INR target": no one to send to a doctor
                result.reasons.append(SEARCH)
            else:
                result.level, result.decided_by = "urgent", "classifier"
                result.category = head.nearest_category(sims, "urgent")
        elif result.level == "routine" and not result.reasons:
            result.reasons = [said, "no rule fired"]
        if nearest:
            result.reasons.append(
                "nearest labelled examples: "
                + "; ".join(f"{n.level} ({n.similarity:.2f}) “{n.text[:80]}”" for n in nearest)
            )
        if language:
            result.reasons.append(
                f"the message does not look like English ({language}): the emergency line is shown"
            )
        return result

    # -- what the user reads -----------------------------------------------------------------

    def emergency_message(self, category: str) -> str:
        if category in GUIDANCE or not category:
            s = self.settings
            return (
                f"This may be an emergency. Call {s.emergency_number} (your local emergency number) now.\n\n"
                f"While you wait: {GUIDANCE.get(category, FALLBACK)}\n\n"
                "medchat cannot assess emergencies; the emergency services can."
            )
        try:
            return self.gate.message(category)
        except KeyError:
            return self.emergency_message("")

    def header(self, result: TriageResult) -> str:
        """Advice that heads an answer that is still given: graded (what to watch for), urgent, or not
        English."""
        parts = []
        s = self.settings
        if result.language and not result.emergency:
            parts.append(NOT_ENGLISH.format(language=result.language, number=s.emergency_number))
        if result.graded:
            signs = WATCH_FOR.get(result.category, GENERAL_SIGNS).format(crisis_line=s.crisis_line)
            parts.append(GRADED_ADVICE.format(signs=signs, number=s.emergency_number))
        elif result.level == "urgent":
            parts.append(URGENT_ADVICE.format(number=s.emergency_number))
        return "\n\n".join(parts)
