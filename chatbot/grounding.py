"""The grounding check: every sentence of an answer against the passages it was written from.

Each sentence gets one verdict:

- `supported`: a passage says it. The verdict names the passage (1-based) and the span, the passage
  sentence or adjacent pair that covers most of the sentence's content words.
- `contradicted`: a passage on the same point says otherwise: another figure or unit ("180/120"
  where the source gives "140/90"), the other direction ("90 or higher" against "90 or lower",
  "overactive" against "underactive"), the other polarity ("can be stopped abruptly" against "do not
  stop suddenly"), another time ("with breakfast" against "before breakfast"), route, population,
  or a benefit where the source gives a harm ("helps asthma" against "can trigger bronchospasm").
- `not_found`: no passage says it, and none says otherwise.

The check is lexical and rule-based on purpose: it runs in a few milliseconds per answer on a CPU,
it explains itself (the `reason`), and a small model's errors are mostly one swapped figure, word
or direction inside a sentence otherwise copied from its source, which is exactly what the rules
compare. What this module cannot see (a paraphrase with no shared words, a claim about a drug the
passages never name) falls to `not_found`, which the answer never shows as fact either.

`present()` turns the verdicts into what the user reads (see `docs/architecture.md#grounding`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from chatbot.attribution import _SENTENCE, content_words, named

SUPPORTED, NOT_FOUND, CONTRADICTED = "supported", "not_found", "contradicted"
VERDICTS = (SUPPORTED, NOT_FOUND, CONTRADICTED)

_CITE = re.compile(r"\s*\[\s*\d+\s*(?:[,;]\s*\d+\s*)*\]")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)(?:\s*(?:%|percent|per ?cent))?")
_UNIT = re.compile(
    r"(\d+(?:\.\d+)?)\s*(mg|g|kg|mcg|µg|ug|micrograms?|milligrams?|grams?|ml|mls|litres?|liters?|l|"
    r"mmol/l|mmol/mol|mmhg|mu/l|iu|units?|%|hours?|hrs?|days?|weeks?|months?|years?|minutes?|mins?|"
    r"times)\b",
    re.IGNORECASE,
)
_UNIT_CANON = {
    "mcg": "µg", "ug": "µg", "microgram": "µg", "micrograms": "µg", "milligram": "mg", "milligrams": "mg",
    "gram": "g", "grams": "g", "mls": "ml", "litre": "l", "litres": "l", "liter": "l", "liters": "l",
    "hour": "hours", "hrs": "hours", "hr": "hours", "day": "days", "week": "weeks", "month": "months",
    "year": "years", "minute": "minutes", "min": "minutes", "mins": "minutes", "unit": "units",
}  # fmt: skip
_TOKEN = re.compile(r"[a-zA-Z][a-zA-Z'-]*|\d+(?:\.\d+)?")
_NEGATORS = frozenset(
    "not no never don't doesn't didn't cannot can't shouldn't mustn't won't isn't aren't avoid without "
    "nor neither stop rather instead".split()
)
# words that take a side: a sentence with one side where its source has only the other contradicts it
_OPPOSITES: tuple[tuple[frozenset[str], frozenset[str]], ...] = tuple(
    (frozenset(a.split()), frozenset(b.split()))
    for a, b in (
        ("higher above over more greater exceed exceeds exceeding raised high elevated increase increased "
         "increases rise rises", "lower below under less fewer reduced low decrease decreased decreases "
         "falls fall drop"),
        ("overactive hyperthyroidism hyperthyroid", "underactive hypothyroidism hypothyroid"),
        ("maximum most", "minimum least"),
        ("hyperglycaemia hyperglycemia", "hypoglycaemia hypoglycemia"),
        ("hypertension", "hypotension"),
        ("faster fast quickly rapid", "slower slow slowly gradual gradually"),
        ("daily", "weekly monthly yearly annually"),
        ("yearly annually", "monthly weekly"),
    )
)  # fmt: skip
_BENEFIT = frozenset(
    "treat treats treating treated help helps helpful relieve relieves improve improves improved "
    "prevent prevents protect protects safe beneficial recommended cure cures ease eases".split()
)
_HARM = frozenset(
    "trigger triggers triggered worsen worsens worse cause causes provoke provokes dangerous harmful "
    "unsafe contraindicated avoid avoided bronchospasm harm harms damage damages".split()
)
# words that decide what a sentence claims: one its passage does not have keeps the sentence from being
# supported by the rest of its words ("ACE inhibitors are safe in pregnancy" is not "ACE inhibitors ...
# in pregnancy")
_DECISIVE = frozenset(
    "safe unsafe harmless dangerous recommended effective ineffective cure cures curable cured "
    "contagious infectious fatal permanent".split()
)
_TIMING = re.compile(
    r"\b(with|before|after|during|without|between)\s+(?:a\s+|the\s+|your\s+|any\s+|\w+\s+)?"
    r"(breakfast|food|meals?|eating|lunch|dinner|supper|bedtime|bed|milk|exercise|sleep)\b",
    re.IGNORECASE,
)
_EMPTY_STOMACH = re.compile(r"\bempty stomach\b", re.IGNORECASE)
_ROUTES = {
    "mouth": "oral", "oral": "oral", "orally": "oral", "tablet": "oral", "tablets": "oral",
    "swallow": "oral", "capsule": "oral", "capsules": "oral",
    "inject": "injection", "injection": "injection", "injections": "injection", "injected": "injection",
    "intravenous": "injection", "intravenously": "injection", "intramuscular": "injection",
    "subcutaneous": "injection", "drip": "injection",
    "inhale": "inhaled", "inhaled": "inhaled", "inhaler": "inhaled", "inhalers": "inhaled",
    "nebuliser": "inhaled", "cream": "topical", "ointment": "topical", "topical": "topical",
    "patch": "topical", "gel": "topical",
}  # fmt: skip
_POPULATIONS = {
    "child": "child", "children": "child", "childhood": "child", "infant": "child", "infants": "child",
    "baby": "child", "babies": "child", "toddler": "child", "toddlers": "child", "kids": "child",
    "newborn": "child", "newborns": "child", "paediatric": "child", "pediatric": "child",
    "adult": "adult", "adults": "adult",
    "pregnant": "pregnancy", "pregnancy": "pregnancy",
    "elderly": "older", "older": "older",
    "men": "men", "man": "men", "male": "men", "males": "men",
    "women": "women", "woman": "women", "female": "women", "females": "women",
}  # fmt: skip
# drug classes as models and notes name them; "X is a C" / "C such as X" tie a drug to a class
_CLASSES = (
    "nsaid", "nsaids", "beta blocker", "beta blockers", "beta-blocker", "beta-blockers", "ace inhibitor",
    "ace inhibitors", "ssri", "ssris", "statin", "statins", "antibiotic", "antibiotics", "steroid",
    "steroids", "corticosteroid", "corticosteroids", "anticoagulant", "anticoagulants", "doac", "doacs",
    "diuretic", "diuretics", "opioid", "opioids", "antihistamine", "antihistamines", "ppi", "ppis",
    "proton pump inhibitor", "proton pump inhibitors", "antiplatelet", "antiplatelets", "arb", "arbs",
    "calcium channel blocker", "calcium channel blockers", "bisphosphonate", "bisphosphonates",
    "antidepressant", "antidepressants", "biguanide", "sulfonylurea", "sulfonylureas", "insulin",
    "vaccine", "antiviral", "antivirals", "bronchodilator", "bronchodilators", "laxative", "laxatives",
    "painkiller", "painkillers", "xanthine oxidase inhibitor",
)  # fmt: skip
_CLASS_RE = "|".join(sorted((re.escape(c) for c in _CLASSES), key=len, reverse=True))
_IS_A = re.compile(
    rf"\b([A-Za-z][\w-]+)\s*(?:\([^)]*\)\s*)?,?\s+(?:is|are)\s+(?:a|an)?\s*(?:type of\s+)?({_CLASS_RE})\b",
    re.I,
)
_SUCH_AS = re.compile(
    rf"\b({_CLASS_RE})\s*\(?\s*(?:such as|like|e\.g\.,?|for example,?|including)\s+([A-Za-z][\w-]+)", re.I
)
_SYNONYMS = {
    "pregnancy": "pregnant", "pregnancies": "pregnant", "stones": "stone", "babies": "baby", "infant": "baby",
    "taken": "take", "took": "take", "tak": "take", "given": "give", "gave": "give", "giv": "give",
    "eaten": "eat", "ate": "eat", "written": "write", "shown": "show", "known": "know", "chosen": "choose",
    "abrupt": "sudden", "abruptly": "sudden", "suddenly": "sudden", "quit": "stop", "stopping": "stop",
    "stopped": "stop", "discontinue": "stop", "discontinued": "stop", "cease": "stop",
    "medicine": "medication", "medicines": "medication", "medications": "medication", "drug": "medication",
    "drugs": "medication", "tablets": "medication", "pills": "medication", "pill": "medication",
    "doctor": "clinician", "gp": "clinician", "physician": "clinician", "doctors": "clinician",
    "raised": "high", "elevated": "high", "higher": "high", "lower": "low", "reduced": "low",
    "shortness": "breathless", "breathlessness": "breathless",
    "kidney": "renal", "kidneys": "renal", "heart": "cardiac",
    "uti": "urinary", "utis": "urinary", "water": "urinary",
}  # fmt: skip
# sentences that state nothing to check: thanks, sign-offs, "see a doctor"
_NO_CLAIM = re.compile(
    r"^\W*(i hope|hope this|thank|please (?:consult|see|speak|talk|contact|ask)|consult|always consult|"
    r"speak to|talk to|see your|ask your|contact your|if you have (?:any )?(?:further |more |other )?"
    r"(?:questions|concerns)|let me know|feel free|in summary|sure|certainly|of course|here is|here are|"
    r"note:|disclaimer|this (?:information|answer) is not)",
    re.IGNORECASE,
)


_YES_NO = re.compile(r"^\W*(?:yes|no)\b|\b(?:answer|response) (?:is|should be|would be)\W+(?:yes|no)\b", re.I)


@dataclass(frozen=True)
class SentenceCheck:
    """One sentence's verdict and the evidence for it."""

    sentence: str
    """The sentence as the answer wrote it, its citation marks included."""
    verdict: str
    passage: int | None
    """The deciding passage, 1-based; None when no passage bears on the sentence."""
    span: str
    """The deciding words of that passage, verbatim ("" when none)."""
    score: float
    """Share of the sentence's content words the span holds, 0 to 1."""
    reason: str = ""
    """Why, in words: the figure, direction, negation, timing, route, population or class that differs."""
    claim: bool = True
    """False for a sentence that states nothing to check ("I hope this helps.")."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Unit:
    """A sentence of a passage, as a span of its text."""

    passage: int
    start: int
    end: int
    text: str
    words: frozenset[str]


_DOUBLED = re.compile(r"([b-df-hj-km-rtv-y])\1$")  # "stopp" (from "stopped") -> "stop"; not -ss, -ll


def _canon(word: str) -> str:
    word = _DOUBLED.sub(r"\1", word) if len(word) > 4 else word
    return _SYNONYMS.get(word, word)


def words_of(text: str) -> frozenset[str]:
    """Content words, stemmed, with a few lay synonyms folded together ("abruptly" and "suddenly")."""
    return frozenset(_canon(w) for w in content_words(_CITE.sub(" ", text)))


_PASSAGE_SENTENCE = re.compile(r"[^\n.!?]*(?:[.!?](?=\d)[^\n.!?]*|(?<=\b[a-z])\.(?=[a-z]\.)[^\n.!?]*)*[.!?]*")


_LEAD = re.compile(r"\s*(?:#+\s+|[-*•>]+\s+|\d+[.)]\s+)*")


def units(passages: Sequence[str]) -> list[Unit]:
    """Every passage split into sentences and list items, as spans of the passage text."""
    out: list[Unit] = []
    for n, text in enumerate(passages, start=1):
        for m in _PASSAGE_SENTENCE.finditer(text):
            piece = m.group(0)
            lead = _LEAD.match(piece)
            start = m.start() + (lead.end() if lead else 0)
            body = text[start : m.end()].rstrip()
            if len(body) < 3:
                continue
            words = words_of(body)
            if "#" in piece[: lead.end() if lead else 0] or (
                not body.endswith((".", "!", "?", ":"))
                and len(words) < 6
                and "\n" in text[m.end() : m.end() + 1]
            ):
                continue  # a heading: context for the sentences under it (`check_sentence`), no claim
            out.append(Unit(n, start, start + len(body), body, words))
    return out


def sentences(answer: str) -> list[str]:
    """The answer's sentences and list items, in order, as written."""
    out = []
    for line in answer.split("\n"):
        for m in _SENTENCE.finditer(line):
            s = m.group(0).strip()
            if re.search(r"\w", s):
                out.append(s)
    return out


_EVERY = (
    (re.compile(r"\b(?:yearly|annually|annual|every year|once a year|each year)\b"), "every 1 years"),
    (re.compile(r"\b(?:monthly|every month|once a month)\b"), "every 1 months"),
    (re.compile(r"\b(?:weekly|every week|once a week)\b"), "every 1 weeks"),
    (re.compile(r"\b(?:daily|every day|once a day)\b"), "every 1 days"),
    (re.compile(r"\btwice a day\b"), "2 times a day"),
)


def _figures(text: str) -> str:
    """`text` with frequencies written as figures ("yearly" -> "every 1 years")."""
    for pattern, figure in _EVERY:
        text = pattern.sub(figure, text)
    return text


def _numbers(text: str) -> set[str]:
    out = set()
    for m in _NUMBER.finditer(_figures(text)):
        v = (
            m.group(1).replace(",", ".")
            if re.fullmatch(r"\d+,\d{1,2}", m.group(1))
            else m.group(1).replace(",", "")
        )
        if "." in v:
            v = v.rstrip("0").rstrip(".")
        out.add(v)
    return out


def _units(text: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for m in _UNIT.finditer(_figures(text)):
        value = m.group(1).rstrip("0").rstrip(".") if "." in m.group(1) else m.group(1)
        unit = m.group(2).lower()
        found.setdefault(value, set()).add(_UNIT_CANON.get(unit, unit))
    return found


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text.replace("’", "'"))]


_CLAUSE = re.compile(r"[.;:,!?()\n]|\bbut\b|\bwhile\b|\bwhereas\b")


def _clauses(text: str) -> list[list[str]]:
    """The tokens of each clause: a negation reaches no further than its clause."""
    return [_tokens(c) for c in _CLAUSE.split(text.replace("’", "'"))]


def _negated(tokens: list[str], i: int) -> bool:
    """A token is negated when a negator stands within the three words before it."""
    return any(t in _NEGATORS or t.endswith("n't") for t in tokens[max(0, i - 3) : i])


def _polarity(text: str) -> dict[str, bool]:
    """Each stemmed content word of `text` and whether it is negated there (a negator within the
    three words before it, in the same clause)."""
    out: dict[str, bool] = {}
    for tokens in _clauses(text):
        for i, t in enumerate(tokens):
            w = _canon(t)
            if w in _NEGATORS:
                continue
            for s in words_of(w):
                out[s] = out.get(s, False) or _negated(tokens, i)
    return out


def _negative(text: str) -> bool:
    return any(t in _NEGATORS or t.endswith("n't") for t in _tokens(text))


def _timing(text: str) -> set[tuple[str, str]]:
    pairs = set()
    for m in _TIMING.finditer(text):
        when, what = m.group(1).lower(), m.group(2).lower().rstrip("s")
        what = {"eating": "food", "meal": "food", "supper": "dinner", "bed": "bedtime"}.get(what, what)
        pairs.add((when, what))
    if _EMPTY_STOMACH.search(text):
        pairs.add(("without", "food"))
    return pairs


def _kinds(text: str, table: dict[str, str]) -> set[str]:
    return {table[t] for t in _tokens(text) if t in table}


def _memberships(text: str) -> set[tuple[str, str]]:
    """(drug, class) pairs a text asserts: "colchicine is an NSAID", "an NSAID such as naproxen"."""
    pairs = set()
    for m in _IS_A.finditer(text):
        pairs.add((m.group(1).lower(), _class(m.group(2))))
    for m in _SUCH_AS.finditer(text):
        pairs.add((m.group(2).lower(), _class(m.group(1))))
    return pairs


def _class(name: str) -> str:
    name = name.lower().replace("-", " ")
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


_UP, _DOWN = "higher", "lower"
_BOUND_AFTER = re.compile(
    r"(\d+(?:[./]\d+)?)\s*(?:[a-zµ/%]+\s*)?(?:or|and)\s+"
    r"(higher|more|above|over|greater|lower|less|below|under|fewer)\b"
)
_BOUND_BEFORE = re.compile(
    r"\b(above|over|more than|greater than|at least|higher than|below|under|less than|fewer than|"
    r"at most|lower than)\s+(\d+(?:[./]\d+)?)"
)
_UPWARD = {
    "higher",
    "more",
    "above",
    "over",
    "greater",
    "more than",
    "greater than",
    "at least",
    "higher than",
}


def _bounds(text: str) -> dict[str, str]:
    """The direction each figure is bounded in: {"90": "lower"} for "90 mmHg or lower"."""
    out: dict[str, str] = {}
    for m in _BOUND_AFTER.finditer(text):
        out[m.group(1)] = _UP if m.group(2) in _UPWARD else _DOWN
    for m in _BOUND_BEFORE.finditer(text):
        out.setdefault(m.group(2), _UP if m.group(1) in _UPWARD else _DOWN)
    return out


_QUALIFIERS = {
    "high": "high", "higher": "high", "raised": "high", "elevated": "high", "increased": "high",
    "low": "low", "lower": "low", "reduced": "low", "decreased": "low", "suppressed": "low",
}  # fmt: skip
_WAYS = "|".join(_QUALIFIERS)
_QUALIFIED = re.compile(
    rf"\b({_WAYS})\s+([a-z][\w-]*)|\b([a-z][\w-]*)\s+(?:is|are|was|levels? (?:is|are)?)\s*({_WAYS})\b"
)


def _qualified(text: str) -> dict[str, set[str]]:
    """What a text calls high or low: {"tsh": {"low"}} for "Low TSH" or "TSH is low"."""
    out: dict[str, set[str]] = {}
    for m in _QUALIFIED.finditer(text):
        way, thing = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        if thing in _STOP_THINGS:
            continue
        out.setdefault(thing, set()).add(_QUALIFIERS[way])
    return out


_STOP_THINGS = frozenset("a an the in of or and dose doses risk blood levels level it they this that".split())


def conflict(sentence: str, span: str, passage: str = "", share: float = 1.0) -> tuple[str, str] | None:
    """The first way `sentence` says otherwise than `span` (kind, reason), or None.

    Called only for a span on the same point (it shares most of the sentence's words), so a word of
    one side in the sentence against only the other side in the span is a real disagreement."""
    s_low, p_low = sentence.lower(), span.lower()
    # figures and units: a number the span does not give, where the span gives numbers of its own
    s_units, p_units = _units(s_low), _units(p_low)
    for value, kinds in s_units.items():
        if value in p_units and not kinds & p_units[value]:
            given = "/".join(sorted(p_units[value]))
            return "unit", f"{value} {'/'.join(sorted(kinds))} where the source gives {value} {given}"
    s_num, p_num = _numbers(s_low), _numbers(p_low)
    extra = s_num - p_num
    if extra and p_num:
        return "figure", f"{', '.join(sorted(extra))} where the source gives {', '.join(sorted(p_num))}"
    # a bound's direction: "90 or higher" against "90 or lower", "over 65" against "under 65"
    s_bounds, p_bounds = _bounds(s_low), _bounds(p_low)
    for value, way in s_bounds.items():
        if value in p_bounds and p_bounds[value] != way:
            return "direction", f"'{value} or {way}' where the source says '{value} or {p_bounds[value]}'"
    # a qualifier on the same thing: "a high TSH" against "Low TSH, high free T4"
    s_q, p_q = _qualified(s_low), _qualified(p_low)
    for thing, ways in s_q.items():
        if thing in p_q and not ways & p_q[thing]:
            said, given = "/".join(sorted(ways)), "/".join(sorted(p_q[thing]))
            return "direction", f"'{said} {thing}' where the source says '{given} {thing}'"
    # timing: "with breakfast" against "before breakfast"
    s_time, p_time = _timing(s_low), _timing(p_low)
    for when, what in s_time - p_time:
        other = {w for w, x in p_time if x == what or {x, what} <= {"food", "breakfast"}}
        if other and when not in other:
            return "timing", f"'{when} {what}' where the source says '{' / '.join(sorted(other))} {what}'"
    close = share >= _CLOSE  # an opposite word, a negation or a harm decide only on the very same point
    # direction and opposites: one side only in the sentence, only the other in the span
    s_tok, p_tok = set(_tokens(s_low)), set(_tokens(p_low))
    for a, b in _OPPOSITES if share >= _CLOSE else ():
        for one, two in ((a, b), (b, a)):
            if s_tok & one and not s_tok & two and p_tok & two and not p_tok & one:
                return (
                    "direction",
                    f"'{sorted(s_tok & one)[0]}' where the source says '{sorted(p_tok & two)[0]}'",
                )
    # benefit against harm: "can help treat asthma" against "can trigger bronchospasm in asthma"
    s_benefit, s_harm = s_tok & _BENEFIT, s_tok & _HARM
    p_benefit, p_harm = p_tok & _BENEFIT, p_tok & _HARM
    if (
        close
        and s_benefit
        and not s_harm
        and p_harm
        and not p_benefit
        and not _any_negated(sentence, s_benefit)
    ):
        return "direction", f"'{sorted(s_benefit)[0]}' where the source says '{sorted(p_harm)[0]}'"
    # polarity: a shared word negated on one side only ("can be stopped abruptly" / "do not stop suddenly")
    # only when one side says no and the other does not: "not safe to take" and "never take" agree
    s_pol, p_pol = _polarity(sentence), _polarity(span)
    if _negative(sentence) == _negative(span):
        s_pol = p_pol = {}
    flipped = sorted(w for w in s_pol.keys() & p_pol.keys() if s_pol[w] != p_pol[w] and w not in _STOPLIKE)
    if flipped and close:
        side = "negates" if s_pol[flipped[0]] else "drops the negation of"
        return "negation", f"the sentence {side} '{flipped[0]}'"
    # route, population: the sentence names one the span does not, and the span names another
    for kind, table in (("route", _ROUTES), ("population", _POPULATIONS)):
        ours, theirs = _kinds(s_low, table), _kinds(p_low, table)
        if ours and theirs and not ours & theirs:
            return kind, f"'{'/'.join(sorted(ours))}' where the source says '{'/'.join(sorted(theirs))}'"
    # drug class: "colchicine is an NSAID" where the sources make it something else
    source_classes = _memberships(passage or span)
    for drug, cls in _memberships(sentence):
        classes = {c for d, c in source_classes if d == drug}
        if classes and cls not in classes:
            return "drug", f"'{drug}' called {cls} where the source has {'/'.join(sorted(classes))}"
    return None


_CLOSE = 0.6
_STOPLIKE = frozenset({"can", "may", "take", "use", "need", "clinician", "medication"})


def _any_negated(text: str, words: set[str]) -> bool:
    tokens = _tokens(text)
    return any(t in words and _negated(tokens, i) for i, t in enumerate(tokens))


def _windows(all_units: list[Unit]) -> list[tuple[Unit, frozenset[str]]]:
    """Each unit alone and joined with the next one of the same passage (models merge two sentences)."""
    out = [(u, u.words) for u in all_units]
    for a, b in pairwise(all_units):
        if a.passage == b.passage:
            joined = Unit(a.passage, a.start, b.end, "", a.words | b.words)
            out.append((joined, joined.words))
    return out


class Meaning:
    """Sentence-embedding similarity between claims and the passages' sentences (the bundled MiniLM):
    what the rules cannot see, a paraphrase that shares few words with its source ("The main cause of
    cataracts is aging" for "Most cataracts are related to aging").

    It only ever turns a `not_found` into `supported`, and only where every figure, drug, route and
    population of the claim is in that same passage sentence and no rule finds a conflict with it, so
    it cannot let a swapped figure or direction through that the rules catch. The passage sentences are
    embedded only when a claim reaches this check with a passage sentence holding most of its words,
    and then once per answer (and once per process for a sentence seen before)."""

    def __init__(self, embedder: Any, all_units: Sequence[Unit]) -> None:
        self.embedder = embedder
        self.units = list(all_units)
        self._matrix: Any = None

    def _vectors(self) -> Any:
        """The units' unit-length vectors. A passage sentence seen before (the same note retrieved for
        another question or another answer) is not embedded again."""
        import numpy as np

        cache = _MEANING_CACHE.setdefault(id(self.embedder), {})
        todo = sorted({u.text for u in self.units if u.text not in cache})
        if todo:
            m = np.asarray(self.embedder.embed_documents(todo), dtype=float)
            norms = np.linalg.norm(m, axis=1, keepdims=True)
            if len(cache) + len(todo) > _MEANING_CACHE_SIZE:
                cache.clear()
            cache.update(zip(todo, m / np.where(norms == 0, 1.0, norms), strict=True))
        return np.stack([cache[u.text] for u in self.units])

    def scores(self, claim: str) -> list[float]:
        """Cosine similarity of `claim` to each unit, in `units` order."""
        import numpy as np

        if not self.units:
            return []
        if self._matrix is None:
            self._matrix = self._vectors()
        q = np.asarray(self.embedder.embed_query(claim), dtype=float)
        q = q / (np.linalg.norm(q) or 1.0)
        return [float(x) for x in self._matrix @ q]


_MEANING_CACHE: dict[int, dict[str, Any]] = {}
_MEANING_CACHE_SIZE = 20_000  # passage sentences, per embedder (about 30 MB of MiniLM vectors)

MIN_MEANING = 0.7
"""Similarity at which a claim means what a passage sentence says (chosen on bench/grounding/labelled.jsonl,
measured on a set labelled later: docs/benchmarks.md#grounded-answers)."""

MEANING_WORDS = 4
"""...and only for a claim of at least this many content words."""

MEANING_SHARE = 0.6
"""...and shares at least this part of the claim's words with that sentence."""
_FRAGMENT = re.compile(
    r"^\W*(?:so,? )?(?:to answer your question[:,]? )?(?:the )?(?:answer|response)"
    r" (?:is|would be|should be)\W*",
    re.IGNORECASE,
)
"""An answer given as a bare fragment ("The answer is: 140/90 mmHg or higher")."""
_LEAD_VERDICT = re.compile(r"^\W*(?:yes|no)\b[\s,.;:!-]*", re.IGNORECASE)


def _by_meaning(
    bare: str, numbers: set[str], passages: Sequence[str], meaning: Meaning, min_meaning: float
) -> tuple[Unit, float] | None:
    """The passage sentence that says `bare` in other words, if one does (see `Meaning`)."""
    claim = _LEAD_VERDICT.sub("", bare).strip()
    claim_words = words_of(claim)
    if len(claim_words) < MEANING_WORDS:
        # a short claim is all relation ("Warfarin is a kind of vitamin" came 0.79 close to "Warfarin
        # ... blocks vitamin K"), and a bare "No." needs its question, which this check does not have
        return None
    if not any(len(claim_words & u.words) >= MEANING_SHARE * len(claim_words) for u in meaning.units):
        return None  # no passage sentence could pass the share test below: nothing to embed
    scores = meaning.scores(claim)
    if not scores:
        return None
    best = max(range(len(scores)), key=scores.__getitem__)
    if scores[best] < min_meaning:
        return None
    unit = meaning.units[best]
    text = passages[unit.passage - 1]
    span = text[unit.start : unit.end]
    if numbers - _numbers(span.lower()) or conflict(bare, span, text) or _missing_names(bare, span):
        return None
    if len(words_of(claim) & unit.words) < MEANING_SHARE * len(words_of(claim)):
        return None  # close in meaning overall, but half of what it says is not in that sentence
    return unit, scores[best]


def check_sentence(
    sentence: str,
    passages: Sequence[str],
    all_units: list[Unit] | None = None,
    *,
    min_support: float = 0.75,
    min_topic: float = 0.4,
    meaning: Meaning | None = None,
    min_meaning: float = MIN_MEANING,
    question: str = "",
) -> SentenceCheck:
    """One sentence's verdict against `passages` (see the module's docstring). With the `question`,
    an answer given as a bare fragment ("The answer is: 140/90 mmHg or higher") is checked as the
    answer to that question, as a reader takes it."""
    all_units = units(passages) if all_units is None else all_units
    bare = _CITE.sub("", sentence).strip()
    fragment = _FRAGMENT.match(bare)
    if question and fragment and words_of(bare[fragment.end() :]) and not _YES_NO.search(bare):
        bare = f"{question.strip().rstrip('?')}: {bare[fragment.end() :]}"
    words = words_of(bare)
    numbers = _numbers(bare.lower())
    verdict_word = _YES_NO.search(bare)  # "The answer should be 'yes'" takes a side
    if not verdict_word and (
        (_NO_CLAIM.match(bare) and not numbers) or (len(words) < 2 and not numbers and not named(bare))
    ):
        return SentenceCheck(sentence, SUPPORTED, None, "", 1.0, "states nothing to check", claim=False)
    answered = _answers_question(bare, question, passages, all_units) if question else None
    if answered:
        return SentenceCheck(
            sentence, SUPPORTED, answered.passage, answered.span, answered.score, answered.reason
        )
    if not words:
        return SentenceCheck(sentence, NOT_FOUND, None, "", 0.0, "no content words")
    cited = {int(n) for n in re.findall(r"\d+", " ".join(re.findall(r"\[[\d,;\s]+\]", sentence)))}
    scored = []
    # two sentences joined can lend a figure to the wrong condition ("3.0-4.0" from the valve line
    # to atrial fibrillation): a sentence with figures is compared with single sentences only
    candidates = _windows(all_units) if not numbers else [(u, u.words) for u in all_units]
    context = [words_of(p) for p in passages]
    for unit, uwords in candidates:
        inside = words & uwords
        if not inside:
            continue
        # a word elsewhere in the same passage (its heading: "Stopping an SSRI") counts half, for a
        # sentence that holds most of the rest itself
        around = (words - uwords) & context[unit.passage - 1]
        share = len(inside) / len(words)
        if share >= 0.6:
            share = (len(inside) + 0.5 * len(around)) / len(words)
        scored.append((share, unit.passage in cited, -(unit.end - unit.start), unit))
    scored.sort(key=lambda t: (t[0], t[1], t[2]), reverse=True)
    if not scored:
        return SentenceCheck(sentence, NOT_FOUND, None, "", 0.0, "no passage shares its words")
    # the best span supports it: every figure there, nothing said otherwise
    share, _, _, unit = scored[0]
    text = passages[unit.passage - 1]
    span = text[unit.start : unit.end]
    missing_numbers = numbers - _numbers(span.lower())
    undecided = (set(_tokens(bare.lower())) & _DECISIVE) - set(_tokens(text.lower()))
    supports = share >= min_support and not missing_numbers and not undecided
    if supports and not conflict(bare, span, text) and not _missing_names(bare, span):
        return SentenceCheck(sentence, SUPPORTED, unit.passage, span, round(share, 3))
    # a span on the same point that says otherwise decides
    for other_share, _, _, other in scored[:6]:
        if other_share < min_topic:
            break
        other_text = passages[other.passage - 1]
        other_span = other_text[other.start : other.end]
        found = conflict(bare, other_span, other_text, other_share)
        if found:
            kind, why = found
            return SentenceCheck(
                sentence, CONTRADICTED, other.passage, other_span, round(other_share, 3), f"{kind}: {why}"
            )
    if meaning is not None:
        same = _by_meaning(bare, numbers, passages, meaning, min_meaning)
        if same:
            found_unit, similarity = same
            found_span = passages[found_unit.passage - 1][found_unit.start : found_unit.end]
            return SentenceCheck(
                sentence,
                SUPPORTED,
                found_unit.passage,
                found_span,
                round(similarity, 3),
                f"says what the source says in other words (similarity {similarity:.2f})",
            )
    if share >= min_support and not missing_numbers:
        missing = _missing_names(bare, span) or "/".join(sorted(undecided))
        return SentenceCheck(
            sentence,
            NOT_FOUND,
            unit.passage,
            span,
            round(share, 3),
            f"says {missing} where the source does not",
        )
    why = (
        f"figures {sorted(missing_numbers)} are in no passage"
        if missing_numbers
        else "too few of its words in any passage"
    )
    return SentenceCheck(sentence, NOT_FOUND, unit.passage, span, round(share, 3), why)


_YES_NO_QUESTION = re.compile(
    r"^\W*(?:[^?]*?,\s*)?(?:can|could|should|shall|is|are|was|were|do|does|did|will|would|may|must|"
    r"has|have)\b",
    re.IGNORECASE,
)
_VERDICT = re.compile(
    r"^\W*(?:(yes|no)\b|(?:so,? )?(?:the )?(?:answer|response) (?:is|should be|would be)\W+(yes|no)\b)\W*",
    re.IGNORECASE,
)
_HEDGES = words_of(
    "recommended advised advisable necessary need needed good idea okay fine allowed usually generally"
)
"""Words that restate a question's "should I" or "can I" in an answer's "no" ("it is not recommended")."""
# a conflict of meaning, not of figures: a number in a question ("my 2 month old", "30 weeks") is the
# asker's, and a source's different number is about something else as often as not
_ANSWERING_KINDS = frozenset({"negation", "direction", "timing", "population", "route", "drug"})


def _answers_question(
    bare: str, question: str, passages: Sequence[str], all_units: list[Unit]
) -> SentenceCheck | None:
    """A "No." (or "No, you cannot stop it suddenly.") that answers a yes/no `question` the way its
    sources do: the question, read as a statement, is contradicted by a passage on the same point
    (its negation, direction, timing, population, route or drug class), and the sentence adds nothing
    to the question but its "no". A "Yes." needs the question, read as a statement, supported.
    Anything else is left to the other checks."""
    lead = _VERDICT.match(bare)
    if not lead or not _YES_NO_QUESTION.match(question):
        return None
    said_yes = (lead.group(1) or lead.group(2)).lower() == "yes"
    rest = words_of(bare[lead.end() :]) - words_of(question) - _HEDGES
    if any(t not in _NEGATORS and not t.endswith("n't") for t in _tokens(" ".join(sorted(rest)))):
        return None  # it says more than yes or no to the question: checked as a claim of its own
    statement = check_sentence(question.strip().rstrip("?"), passages, all_units)
    kind = statement.reason.split(":", 1)[0]
    if said_yes and statement.verdict == SUPPORTED:
        why = "answers yes to the question, which the source says"
    elif not said_yes and statement.verdict == CONTRADICTED and kind in _ANSWERING_KINDS:
        why = f"answers no to the question, as the source does ({statement.reason})"
    else:
        return None
    return SentenceCheck(bare, SUPPORTED, statement.passage, statement.span, statement.score, why)


def _missing_names(sentence: str, span: str) -> str:
    """A drug, route or population the sentence adds to the span."""
    low = span.lower()
    for table in (_ROUTES, _POPULATIONS):
        extra = _kinds(sentence.lower(), table) - _kinds(low, table)
        if extra:
            return "/".join(sorted(extra))
    s_words = words_of(sentence)
    extra_names = {n for n in named(sentence) if n not in words_of(span)} & s_words
    return "/".join(sorted(extra_names)) if extra_names else ""


def check_answer(
    answer: str, passages: Sequence[str], *, embedder: Any = None, **kw: Any
) -> list[SentenceCheck]:
    """Every sentence of `answer` checked against `passages` (`check_sentence`); with an `embedder`
    (the index's MiniLM), paraphrases are recognised too (`Meaning`)."""
    all_units = units(passages)
    if embedder is not None:
        kw["meaning"] = Meaning(embedder, all_units)
    return [check_sentence(s, passages, all_units, **kw) for s in sentences(answer)]


# -- what the user reads ----------------------------------------------------------------------


@dataclass
class Presented:
    """An answer as shown: the text, and what the check kept out of it."""

    text: str
    checks: list[SentenceCheck] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)
    """Sentences no passage supports, shown only under "Not in your sources"."""
    corrected: list[dict[str, Any]] = field(default_factory=list)
    """Contradicted sentences, each with what the source says instead."""

    @property
    def supported(self) -> int:
        return sum(1 for c in self.checks if c.verdict == SUPPORTED and c.claim)


def source_says(check: SentenceCheck) -> str:
    """What to show instead of a contradicted sentence: the source's own words, cited."""
    span = " ".join(check.span.split()).rstrip(".")
    return f"Your source says otherwise: “{span}.” [{check.passage}]"


def source_says_of(corrected: dict[str, Any]) -> str:
    """`source_says` for an entry of `Presented.corrected`."""
    check = SentenceCheck(corrected["sentence"], CONTRADICTED, corrected["passage"], corrected["source"], 0.0)
    return source_says(check)


def shown_sentence(check: SentenceCheck) -> str:
    """A supported sentence with its citation set to the passage that supports it (as written when
    the sentence already cites that passage alone)."""
    marks = re.findall(r"\[([\d,;\s]+)\]", check.sentence)
    if [m.strip() for m in marks] == [str(check.passage)]:
        return check.sentence.strip()
    bare = _CITE.sub("", check.sentence).rstrip()
    if check.passage is None:
        return bare
    end = len(bare.rstrip(".!?"))
    return f"{bare[:end]} [{check.passage}]{bare[end:]}"


def present(
    answer: str, passages: Sequence[str], *, inline: bool = False, embedder: Any = None, **kw: Any
) -> Presented:
    """`answer` as the user may read it: supported sentences cited where they are supported,
    contradicted ones replaced by what the source says, not-found ones withheld (or, with `inline`,
    kept in place behind a visible mark). Line breaks and list items keep their places. With an
    `embedder`, a paraphrase of a passage sentence is recognised too (`Meaning`)."""
    all_units = units(passages)
    if embedder is not None:
        kw["meaning"] = Meaning(embedder, all_units)
    out = Presented("")
    lines = []
    seen: set[str] = set()
    for line in answer.split("\n"):
        prefix = re.match(r"\s*(?:[-*•]|\d+[.)])\s+", line)
        lead = prefix.group(0) if prefix else ""
        kept = []
        for s in sentences(line[len(lead) :]):
            c = check_sentence(s, passages, all_units, **kw)
            out.checks.append(c)
            if c.verdict == SUPPORTED:
                said = shown_sentence(c)
                if said in seen:  # small models repeat themselves; a sentence is shown once
                    continue
                seen.add(said)
                kept.append(said)
            elif c.verdict == CONTRADICTED:
                out.corrected.append(
                    {"sentence": c.sentence, "source": c.span, "passage": c.passage, "reason": c.reason}
                )
                kept.append(source_says(c))
            else:
                out.withheld.append(_CITE.sub("", c.sentence).strip())
                if inline:
                    kept.append(f"{NOT_IN_SOURCES_MARK} {_CITE.sub('', c.sentence).strip()}")
        if kept:
            lines.append(lead + " ".join(kept))
        elif not line.strip() and lines and lines[-1]:
            lines.append("")
    out.text = "\n".join(lines).strip()
    return out


NOT_IN_SOURCES_MARK = "[not in your sources]"


def verify_record(record: Any) -> dict[str, Any]:
    """One `medchat verify` line: `{"answer": str, "passages": [str, ...]}` -> the verdicts.

    Raises ValueError naming what is wrong with the record."""
    if not isinstance(record, dict):
        raise ValueError('each line must be a JSON object {"answer": ..., "passages": [...]}')
    answer, passages = record.get("answer"), record.get("passages")
    if not isinstance(answer, str):
        raise ValueError('"answer" is missing or not a string')
    if not isinstance(passages, list) or not passages:
        raise ValueError('"passages" is missing or empty: give the passages the answer was written from')
    if not all(isinstance(p, str) for p in passages):
        raise ValueError('"passages" must be a list of strings')
    checks = check_answer(answer, passages)
    out = {k: v for k, v in record.items() if k not in ("answer", "passages")}
    out["sentences"] = [
        {
            k: v
            for k, v in c.as_dict().items()
            if k in ("sentence", "verdict", "passage", "span", "score", "reason")
        }
        for c in checks
    ]
    counts = {v: sum(1 for c in checks if c.verdict == v and c.claim) for v in VERDICTS}
    out["counts"] = counts
    return out


# -- answers made of the sources' own sentences ------------------------------------------------

_HEADING = re.compile(r"^[^.!?]{0,60}$")  # "Treatment", "When to seek help": a title, not an answer


def extract(
    question: str,
    passages: Sequence[str],
    *,
    similarity: Sequence[float] | None = None,
    all_units: list[Unit] | None = None,
    titles: Sequence[str] = (),
    max_sentences: int = 3,
    keep: float = 0.8,
) -> list[Unit]:
    """The passage sentences that best answer `question`, in reading order within each passage.

    A sentence's score is its share of the question's content words, each weighted by how rare it is
    among the passages' sentences (a word of its passage's title counts half: "Take it ... before
    breakfast" is about levothyroxine when its title says so), plus its dense `similarity` to the
    question when given (one value per unit of `all_units`). The best is always taken; others must
    score at least `keep` of it and say something the chosen ones do not already say."""
    all_units = units(passages) if all_units is None else all_units
    q = words_of(question)
    if not all_units:
        return []
    df: dict[str, int] = {}
    for u in all_units:
        for w in u.words:
            df[w] = df.get(w, 0) + 1
    n = len(all_units)
    context = [words_of(t) for t in titles]

    def weight(w: str) -> float:
        return 1.0 + (n / (1 + df.get(w, 0))) ** 0.5

    total = sum(weight(w) for w in q) or 1.0
    scores = []
    for i, u in enumerate(all_units):
        if _HEADING.match(u.text) and len(u.words) < 6:
            continue
        title = context[u.passage - 1] if u.passage <= len(context) else frozenset()
        lexical = sum(weight(w) for w in q & u.words) + 0.5 * sum(weight(w) for w in (q & title) - u.words)
        dense = similarity[i] if similarity is not None else 0.0
        scores.append((1.5 * lexical / total + dense, i, u))
    scores.sort(key=lambda t: -t[0])
    if not scores:
        return []
    best = scores[0][0]
    chosen: list[Unit] = []
    for score, _, u in scores:
        if len(chosen) >= max_sentences or score < keep * best:
            break
        if any(len(u.words & c.words) > 0.7 * len(u.words) for c in chosen):
            continue  # says again what a chosen sentence says
        chosen.append(u)
    order: dict[int, int] = {}
    for k, u in enumerate(chosen):  # passages in the order of their best sentence
        order.setdefault(u.passage, k)
    return sorted(chosen, key=lambda u: (order[u.passage], u.start))


def quoted(unit: Unit) -> SentenceCheck:
    """The verdict of a sentence taken word for word from its passage."""
    text = " ".join(unit.text.replace("**", "").split())
    return SentenceCheck(
        shown_sentence_of(text, unit.passage),
        SUPPORTED,
        unit.passage,
        unit.text,
        1.0,
        "quoted from the source",
    )


def shown_sentence_of(text: str, passage: int) -> str:
    bare = text.rstrip()
    end = len(bare.rstrip(".!?:;,"))
    return f"{bare[:end]} [{passage}]{bare[end:] or '.'}"


def extractive_text(chosen: Sequence[Unit], titles: Sequence[str]) -> str:
    """The chosen sentences under the title of their passage, each cited, as a short list."""
    lines: list[str] = []
    last = None
    for u in chosen:
        if u.passage != last:
            if lines:
                lines.append("")
            title = " ".join(titles[u.passage - 1].split()) if u.passage <= len(titles) else ""
            if title:
                lines.append(f"**{title}**")
            last = u.passage
        lines.append(f"- {quoted(u).sentence}")
    return "\n".join(lines)


# a sentence is complete at . ! or ? (and its citations) followed by a space and more text, or at a
# line break: only then can it be checked and shown
_BOUNDARY = re.compile(r"[.!?](?:\s*\[[\d,;\s]+\])*[.!?]?[ \t]+(?=[^\s\[])|\n")


class SentenceStream:
    """Checks a streamed answer sentence by sentence: `feed` returns what may be shown so far."""

    def __init__(self, passages: Sequence[str], question: str = "", embedder: Any = None) -> None:
        self.passages = list(passages)
        self.question = question
        self.embedder = embedder
        self.buffer = ""
        self.started = False

    def feed(self, piece: str) -> str:
        self.buffer += piece
        out = []
        while (m := _BOUNDARY.search(self.buffer)) is not None:
            done, self.buffer = self.buffer[: m.end()], self.buffer[m.end() :]
            out.append(self._show(done))
        return "".join(out)

    def finish(self) -> str:
        done, self.buffer = self.buffer, ""
        return self._show(done) if done.strip() else ""

    def _show(self, chunk: str) -> str:
        shown = present(chunk, self.passages, question=self.question, embedder=self.embedder).text
        if not shown:
            return "\n" if chunk.endswith("\n") and self.started else ""
        sep = "\n" if chunk.endswith("\n") else " "
        self.started = True
        return shown + sep
