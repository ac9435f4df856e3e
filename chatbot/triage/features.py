"""What the classifier reads beside the sentence vector: which of the rules' patterns match.

The rules' exceptions (questions about a topic, the past, fiction, clinicians, figures of speech,
negated findings) and their red-flag categories become 0/1 inputs, so the trained head learns how
much each is worth on the labelled data instead of each one vetoing or firing on its own.
"""

from __future__ import annotations

CONTEXT = (
    "_PERSONAL",
    "_ABOUT",
    "_PAST",
    "_STILL",
    "_RESOLVED",
    "_FIGURATIVE",
    "_FICTION",
    "_ROLE",
    "_NEGATED",
    "_ALWAYS",
)


def names() -> list[str]:
    from chatbot.safety import emergency as safety

    return [n.strip("_").lower() for n in CONTEXT] + [f"flag:{c}" for c in safety._PRIORITY] + ["rules_fire"]


def rule_features(text: str, fired: bool) -> list[float]:
    """0/1 per pattern group, in the order of `names()`; `fired` is the gate's own decision."""
    from chatbot.safety import emergency as safety

    flat = " ".join(text.split())
    values = [1.0 if getattr(safety, n).search(flat) else 0.0 for n in CONTEXT]
    values += [1.0 if safety._RED_FLAGS[c].search(flat) else 0.0 for c in safety._PRIORITY]
    values.append(1.0 if fired else 0.0)
    return values
