"""The judgments database: preference comparisons, responses and votes, through SQLAlchemy."""

from chatbot.labelling.store.prefs import JudgmentIn, PreferenceStore, ResponseIn, open_store

__all__ = ["JudgmentIn", "PreferenceStore", "ResponseIn", "open_store"]
