"""Training on the collected judgments: DPO, KTO or a reward model, with LoRA (QLoRA on a GPU).

`data` selects the judgments the way `medchat export` does and splits them by question;
`base` finds and loads the model to train; `run` trains with TRL and writes the adapter,
the merged model, its card and the metrics; `gguf` writes the merged model as a GGUF for
llama.cpp; `register` adds the result to the variants file. Nothing here imports torch at
import time: the heavy libraries load inside the functions.
"""

from __future__ import annotations

from chatbot.errors import MedchatError

KINDS = ("dpo", "kto", "reward")


class TrainingError(MedchatError):
    """A training run cannot start or finish; the message says what to change."""


class TooFewPairsError(TrainingError):
    """Too few usable judgments to train on; the message counts them and the reasons for the rest."""


class BaseModelError(TrainingError):
    """The base model cannot be trained (e.g. a GGUF that transformers cannot dequantize)."""


class TrainingInterrupted(TrainingError):
    """Ctrl-C or SIGTERM during training: what was saved, and that a rerun continues from it."""
