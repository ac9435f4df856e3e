"""Emergency triage: the rules in `chatbot.safety.emergency` and a trained classifier, three levels."""

from chatbot.triage.gate import DEFAULT_HEAD, Triage, TriageResult
from chatbot.triage.model import HEAD_FILE, LEVELS, Head, TriageModelError
from chatbot.triage.tuned import TUNED_FILE

__all__ = [
    "DEFAULT_HEAD",
    "HEAD_FILE",
    "LEVELS",
    "TUNED_FILE",
    "Head",
    "Triage",
    "TriageModelError",
    "TriageResult",
]
