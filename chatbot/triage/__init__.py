"""Emergency triage: the rules in `chatbot.safety.emergency` and a trained classifier, three levels."""

from chatbot.triage.gate import Triage, TriageResult
from chatbot.triage.model import HEAD_FILE, LEVELS, Head, TriageModelError

__all__ = ["HEAD_FILE", "LEVELS", "Head", "Triage", "TriageModelError", "TriageResult"]
