"""Wording the product must always show, kept in one place."""

from __future__ import annotations

DISCLAIMER = (
    "This is general information from the cited sources, not medical advice; "
    "ask a doctor or pharmacist about your own situation, "
    "and call your local emergency number in an emergency."
)

INSUFFICIENT_EVIDENCE = (
    "I can't answer that from the indexed sources: none of them is relevant enough to rely on."
)
"""The one abstention answer, returned without calling the model when retrieval is weak."""
