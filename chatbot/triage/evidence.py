"""Which emergency category a message shows evidence of, and the words that are that evidence.

Why (issue #28): a classifier's alarm used to take the most common category among the nearest
labelled emergencies, however far they were. "qvar 40mg what is it for" was shown meningitis first
aid; "lorcet 7.5 liquid whats in this" a seizure's. A category is now shown only with evidence *in
the message*:

- a rule's match: the rule fired, or one of its red-flag patterns matched although the rule did not
  fire (a question, the past: `from_red_flags`); the words matched are quoted; else
- a labelled emergency of that category among the nearest, with a cosine similarity of at least the
  floor (`FLOOR`), **and** a word of that category in the message (`TERMS`: the words people use for
  it, "rash", "stiff", "neck", "purple", "glass" for meningitis); of several, the one whose words are
  the most its own (`specificity`). So a message that shares no word with meningitis is never shown
  meningitis first aid, however the encoder places it.

On dev, the old choice (the most common category of the 5 nearest labelled emergencies) named the
right category for 1 dev emergency in 5: the fine-tuned encoder groups messages by level more than by
kind. This one names one for about two in three, and the right one for about 7 in 10 of those
(docs/benchmarks.md).

Without evidence the category is empty: an emergency gets the general "while you wait" advice, a
graded answer the general list of signs to watch for.

Hand-written examples name their own categories ("gi_bleed", "paracetamol_overdose"); `canonical`
maps them onto the categories that have guidance, so they count as evidence for those.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

FLOOR = 0.45
"""The similarity a labelled emergency must reach to name its category, for a head without its own
(`meta["evidence_floor"]`, chosen on dev: docs/benchmarks.md, "Triage on consumer questions")."""


def _terms(*words: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)


# The words that name each guidance category, as people write them. Written from the guidance and
# the rules (`chatbot.safety.emergency`); not tuned on any data.
# fmt: off
TERMS: dict[str, re.Pattern[str]] = {
    "stroke": _terms(
        "stro+ke?s?", "tia", r"droop\w*", "lopsided", "crooked", r"slurr?\w*", "speech", "speak", "talking",
        r"numb\w*", r"weak\w*", r"paraly\w*", "face", "arm", "vision", "sight", "balance"
    ),
    "cardiac_chest_pain": _terms(
        "chest", "heart ?attacks?", "cardiac", "angina", "jaw", "clammy", r"crush\w*", "pressure", "gtn",
        r"nitro\w*"
    ),
    "anaphylaxis": _terms(
        r"allerg\w*", r"ana?ph?[iy]la\w*", r"swell\w*", "swollen", "lips?", "tongue", "throat", "hives?",
        "epi-?pens?", "adrenaline", r"wheez\w*", "stung", "sting", "peanuts?", "nuts?"
    ),
    "overdose_poisoning": _terms(
        r"overdos\w*", r"over ?dose\w*", r"poison\w*", r"swallow\w*", "pills?", "tablets?", "capsules?",
        "bottle", "packet", "bleach", "batter(?:y|ies)", "chemicals?", "fumes", "carbon monoxide", "boiler",
        "too (?:many|much)", "paracetamol", "tylenol", "acetaminophen", r"detergent\w*", "antifreeze"
    ),
    "suicidal": _terms(
        r"suicid\w*", "kill (?:my ?self|myself)", "end (?:it|my life|it all)", "die", "dying",
        r"hopeless\w*", r"self[- ]?harm\w*", "hurt myself", r"overdos\w*", "goodbye", "rope", "bridge",
        "jump", "no point", "better off"
    ),
    "severe_bleeding": _terms(
        r"bleed\w*", r"blood\w*", "bled", r"ha?emorrha\w*", "gash", "wounds?", "coffee grounds?", "tarry",
        "black (?:poo|stools?)"
    ),
    "infant_fever": _terms(
        "bab(?:y|ies)", "infant", "new-?born", r"\d+ ?(?:weeks?|wks?) old", "[12] ?months? old", "fever",
        r"temp\w*", "hot"
    ),
    "breathing": _terms(
        r"breath\w*", "breathe", r"asthma\w*", r"wheez\w*", r"chok\w*", "inhaler", "puffer", r"gasp\w*",
        "blue", "lips?", "airway", r"suffocat\w*", "oxygen", "sats", "croup", "stridor"
    ),
    "unconscious": _terms(
        "unconscious", "unresponsive", r"collaps\w*", r"faint\w*", "passed out", "wake", "waking",
        "responding", "pulse", "cpr", "slumped", "not breathing"
    ),
    "seizure": _terms(
        r"seiz\w*", "fit", "fits", "fitting", r"convuls\w*", r"epilep\w*", "jerking", r"twitch\w*",
        r"foam\w*"
    ),
    "head_injury": _terms(
        "head", "skull", r"concuss\w*", "knocked out", r"bump\w*", "banged"
    ),
    "sepsis": _terms(
        "sepsis", "septic", r"infect\w*", "fever", r"temp\w*", r"shiver\w*", "mottled", "blotchy",
        "rigors?", "chills?", r"confus\w*"
    ),
    "meningitis": _terms(
        r"meningi\w*", "rash", "spots?", "purple", "glass", "tumbler", r"blanch\w*", "fad(?:e|es|ing)",
        "stiff", "neck", "light", r"photophob\w*"
    ),
    "other_emergency": _terms(
        r"burn\w*", r"scald\w*", "boiling", r"pregnan\w*", r"testic\w*", "sugar", "hypo", r"diabet\w*",
        "excruciating", "worst pain"
    ),
    "aortic_vascular": _terms(
        r"aort\w*", "aneurysms?", "tearing", "ripping", "back", "chest", "belly", "tummy", r"abdom\w*",
        "leg", "foot", "limb", "cold", "pale", r"numb\w*"
    ),
    "pulmonary_embolism": _terms(
        r"breath\w*", "chest", "clots?", "calf", "leg", "flight", "flew", "surgery", r"pregnan\w*",
        r"cough\w*"
    ),
    "ectopic_pregnancy": _terms(
        r"pregnan\w*", "ectopic", "period", "positive test", "shoulder", "tummy", "belly", r"pelvi\w*",
        r"bleed\w*", "spotting"
    ),
    "testicular_torsion": _terms(
        r"testic\w*", "testes", "balls?", "scrotum", "groin"
    ),
    "diabetic": _terms(
        r"diabet\w*", "sugars?", "glucose", "insulin", "hypos?", "ketones?", "dka"
    ),
    "child_dehydration": _terms(
        r"dehydrat\w*", "napp(?:y|ies)", "diapers?", "wee", "pee", r"vomit\w*", r"diarrh\w*", "floppy",
        "sunken"
    ),
    "abdominal": _terms(
        "tummy", "belly", "stomach", r"abdom\w*", "bowel", r"vomit\w*", r"appendi\w*", "hernia", "rigid"
    ),
    "burns_other": _terms(
        r"burn\w*", r"scald\w*", "fire", "flames?", "boiling", "kettle", "chemicals?", "heatstroke",
        "heat stroke", r"hypotherm\w*", r"freez\w*", "frostbite", r"electr\w*"
    ),
    "eye": _terms(
        "eyes?", "vision", "sight", r"blind\w*", r"splash\w*"
    ),
}
# fmt: on
"""Per guidance category (the rules' and `guidance.GUIDANCE`'s), the words that mark it."""


def terms(category: str, text: str) -> list[str]:
    """The words of `category` in `text` (lower case, in order, once each)."""
    found = TERMS.get(category)
    if found is None:
        return []
    out: list[str] = []
    for m in found.finditer(" ".join(text.split())):
        w = m.group(0).lower()
        if w not in out:
            out.append(w)
    return out


# (pattern in a hand-written category name, the guidance category it counts for), first match wins
_ALIASES: tuple[tuple[str, str], ...] = (
    ("suicid|self_harm", "suicidal"),
    ("meningi|non_blanching", "meningitis"),
    ("overdose|poison|ingestion|toxicity|button_battery|caustic|medication_error", "overdose_poisoning"),
    ("dispensing|carbon_monoxide|toxic_gas|toxic_inhalation|smoke_inhalation", "overdose_poisoning"),
    ("anaphyla|angioedema|airway_swelling", "anaphylaxis"),
    ("head_injury", "head_injury"),
    ("stroke|^tia$|third_nerve", "stroke"),
    ("seizure|epilep", "seizure"),
    ("infant_fever|neonatal_fever", "infant_fever"),
    ("sepsis|septic", "sepsis"),
    ("chest_pain|angina|cardiac|heart_attack", "cardiac_chest_pain"),
    ("pulmonary_embolism", "pulmonary_embolism"),
    ("ectopic", "ectopic_pregnancy"),
    ("testicular", "testicular_torsion"),
    ("aortic|limb_ischaemia|aneurysm|ruptured_aaa", "aortic_vascular"),
    ("dka|ketoacidosis|hypoglyc|hyperglyc|hyperosmolar|t1d|diabetic|^hhs$", "diabetic"),
    ("child_dehydration|infant_dehydration|severe_dehydration_child", "child_dehydration"),
    ("abdominal|bowel|peritonitis|perforation|obstruction|intussusception|acute_abdomen", "abdominal"),
    ("burn|heat_?stroke|hypothermia|cold_injury|electric|lightning", "burns_other"),
    ("eye|vision_loss|glaucoma|retinal", "eye"),
    ("bleed|haemorrhage|hemorrhage|haemoptysis|vomiting_blood|amputation", "severe_bleeding"),
    ("asthma|breath|choking|croup|epiglottitis|copd|respiratory|stridor|airway|drowning", "breathing"),
    ("inhaled", "breathing"),
    ("unconscious|unresponsive|collapse|cardiac_arrest|blackout", "unconscious"),
)


def canonical(category: str, known: Collection[str]) -> str:
    """The guidance category a labelled example's category counts for: itself when it has guidance,
    else the first alias (`_ALIASES`) that has, else ""."""
    if category in known:
        return category
    for pattern, target in _ALIASES:
        if target in known and re.search(pattern, category):
            return target
    return ""


@dataclass(frozen=True)
class Evidence:
    """Why a category is shown: a rule's match, or a near labelled emergency and the shared words."""

    category: str
    source: str
    """"rule" (the rule fired), "pattern" (a red-flag pattern of the rule matched, the rule did not
    fire), "nearest" or "" (no evidence: no category)."""
    words: tuple[str, ...] = ()
    example: str = ""
    similarity: float = 0.0

    def describe(self) -> str:
        if self.source == "rule":
            return f"category '{self.category}' from the rule's match “{' '.join(self.words)}”"
        if self.source == "pattern":
            return (
                f"category '{self.category}' from the words “{' '.join(self.words)}”, a red flag of the rule "
                "(which did not fire on the message as a whole)"
            )
        if self.source == "nearest":
            return (
                f"category '{self.category}' from a labelled {self.category} emergency at similarity "
                f"{self.similarity:.2f} (“{self.example[:80]}”) and the message's words "
                f"“{', '.join(self.words)}”"
            )
        return (
            "no category shown: no rule matched, and no labelled emergency near enough has a category "
            "whose words are in the message"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "source": self.source,
            "words": list(self.words),
            "example": self.example,
            "similarity": round(self.similarity, 3),
        }


NONE = Evidence("", "")


def from_red_flags(text: str) -> Evidence:
    """The first category, in the rules' priority order, whose red-flag pattern matches `text` once
    negated findings are removed ("no fever"), whether or not the rule fires; `NONE` if none does."""
    from chatbot.safety import emergency as rules
    from chatbot.textnorm import skeleton

    flat = " ".join(skeleton(text).split())
    findings = rules._NEGATED.sub(" ", flat)
    for cat in rules._PRIORITY:
        m = rules._RED_FLAGS[cat].search(findings)
        if m:
            cat = rules._breathless_not_stroke(cat, findings)
            return Evidence(cat, "pattern", (m.group(0).strip(),))
    return NONE


def specificity(category: str, text: str) -> float:
    """How much the words of `category` in `text` are its own: each counts 1 / the number of
    categories whose words include it ("chest" is cardiac, aortic and a clot's; "rash" is meningitis's)."""
    return sum(1.0 / max(1, sum(1 for p in TERMS.values() if p.fullmatch(w))) for w in terms(category, text))


def from_neighbours(
    sims: Any,
    text: str,
    examples: Sequence[str],
    levels: Any,
    categories: Sequence[str],
    floor: float = FLOOR,
    k: int = 20,
) -> Evidence:
    """Of the categories of the k nearest labelled emergencies at similarity >= `floor` (`categories`
    already `canonical`; "" for none), the one whose words (`TERMS`) in the message are the most its
    own (`specificity`; on a tie, the most of the k, then the nearest). `NONE` when none of them has
    its words in the message."""
    import numpy as np

    sims = np.asarray(sims)
    near = np.flatnonzero((np.asarray(levels) == "emergency") & (sims >= floor))
    idx = np.array([int(i) for i in near if categories[int(i)]], dtype=np.int64)
    if not len(idx):
        return NONE
    top = idx[np.argsort(-sims[idx], kind="stable")[:k]]
    ranked = [categories[i] for i in top]
    votes = Counter(ranked)
    found = [c for c in votes if terms(c, text)]
    if not found:
        return NONE
    cat = min(found, key=lambda c: (-specificity(c, text), -votes[c], ranked.index(c)))
    best = next(i for i in top if categories[i] == cat)
    return Evidence(cat, "nearest", tuple(terms(cat, text)), examples[best], float(sims[best]))
